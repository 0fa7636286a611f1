"""Multiply-adds (MACs) of a model at batch 1, counted by fvcore's ``FlopCountAnalysis``.

Convention: fvcore's defaults, the convention of timm's tables -- one fused multiply-add
is one "flop"; convolutions, linear layers, batch norm (eval mode: 2 per element with an
affine, 1 without) and pooling are counted; element-wise activations are not. On top of
fvcore's handles this module adds:

* ``aten::max_pool2d`` / ``aten::avg_pool2d``: ``kernel_h * kernel_w`` per output element
  (every output reads its full window; padded taps are counted like a conv counts them).
  For a global pool (window = whole map, one output per channel) this is exactly fvcore's
  ``adaptive_avg_pool2d`` rule, one per input element, so all pools agree.

and replaces fvcore's built-in list of silently ignored ops with :data:`IGNORED_OPS`,
every entry with the reason it is not counted. Any other op makes :func:`count_macs`
raise :class:`UnsupportedOpError` naming it (and the modules it appears in): a new op can
never be silently skipped. See ``docs/flops.md``.

Counting happens in eval mode (the model's mode is restored afterwards), after one plain
forward pass at the same shape so that per-shape caches (partial padding's ratio map) are
filled: the trace then holds the per-step work only, not the once-per-shape set-up.
What is counted is what the module executes: a ``MixConv2d`` running its ``padded``
implementation counts every group at the largest kernel (its real arithmetic); build with
``impl="split"`` to count the architecture's own MACs (:mod:`evaluators.cost` does).
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from contextlib import contextmanager
from math import prod
from typing import Any, Iterator, Sequence

import torch
import torch.nn as nn

with warnings.catch_warnings():
    # fvcore.nn's package import scripts its losses with torch.jit.script (deprecated in torch 2.x).
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis

# ------------------------------------------------------------------ handles


def _int_list(value: Any) -> list[int]:
    """The int list of a traced list argument (``prim::ListConstruct`` of constants, or a constant)."""
    ivalue = value.toIValue()
    if ivalue is not None:
        return [int(v) for v in (ivalue if isinstance(ivalue, (list, tuple)) else [ivalue])]
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        out = []
        for item in node.inputs():
            iv = item.toIValue()
            if iv is None:
                raise ValueError(f"pool kernel size is not a constant in the trace: {node}")
            out.append(int(iv))
        return out
    raise ValueError(f"cannot read a constant int list from {node}")


def pool_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """``aten::max_pool2d`` / ``aten::avg_pool2d``: kernel_h * kernel_w per output element."""
    kernel = _int_list(inputs[1])
    if len(kernel) == 1:
        kernel = kernel * 2
    out_shape = outputs[0].type().sizes()
    return prod(kernel) * prod(out_shape)


#: Ops counted by a handle of ours (fvcore's defaults stay as they are).
EXTRA_HANDLES = {
    "aten::max_pool2d": pool_flop_jit,
    "aten::avg_pool2d": pool_flop_jit,
}

# Element-wise ops are not counted by the convention (timm's tables / fvcore's defaults).
_ELEMENTWISE = "element-wise; the convention counts no element-wise op"

#: Ops our models emit that are deliberately not counted, with the reason. This *replaces*
#: fvcore's own ignore list: anything else untouched by a handle is an error.
IGNORED_OPS: dict[str, str] = {
    # activations
    "aten::relu": "activation (ReLU); " + _ELEMENTWISE,
    "aten::relu_": "activation (ReLU, in place); " + _ELEMENTWISE,
    "aten::silu": "activation (swish = SiLU); " + _ELEMENTWISE,
    "aten::silu_": "activation (swish = SiLU, in place); " + _ELEMENTWISE,
    "aten::sigmoid": "squeeze-excite gate activation; " + _ELEMENTWISE,
    # element-wise arithmetic
    "aten::add": "residual add (x + shortcut); " + _ELEMENTWISE,
    "aten::add_": "residual add, in place; " + _ELEMENTWISE,
    "aten::mul": "squeeze-excite gate multiply (x * sigmoid(s)), partial-ratio map set-up; " + _ELEMENTWISE,
    "aten::mul_": "partial-padding ratio re-weighting (one multiply per conv output); " + _ELEMENTWISE,
    # data movement, no arithmetic
    "aten::cat": "MixConv2d concatenates its groups' outputs: a copy",
    "aten::split_with_sizes": "MixConv2d splits channels into groups: a view",
    "aten::split": "channel split: a view",
    "aten::pad": "reflect / replicate / circular border padding: a copy",
    "aten::constant_pad_nd": "zero padding (MixConv2d padded impl pads kernels to the largest): a copy",
    "aten::reflection_pad2d": "reflect border padding: a copy",
    "aten::replication_pad2d": "replicate border padding: a copy",
    "aten::flatten": "global pool's flatten: a view",
    "aten::view": "a view",
    "aten::reshape": "a view / copy",
    "aten::contiguous": "a copy",
    "aten::expand": "broadcast view (padded impl's partial-ratio map)",
    "aten::size": "shape query (padding checks)",
    "aten::to": "dtype/device cast of a cached constant",
    "aten::detach": "no data change",
    # identity at inference
    "aten::dropout": "identity in eval mode (counts are inference counts)",
    "aten::feature_dropout": "identity in eval mode (counts are inference counts)",
}


class UnsupportedOpError(RuntimeError):
    """An op of the model is neither counted by a handle nor explicitly ignored."""


#: Ops that build partial padding's ratio map (``nas.layers.padding.partial_ratio``). The map
#: depends only on the input size and is cached per shape, so eagerly it is built once, not per
#: step. Under the JIT tracer, ``x.shape[-2]`` is a 0-d tensor, the size-keyed cache misses, and
#: the set-up is traced. These ops count 0 *inside a partial-padding conv only*; anywhere else
#: they are real, unhandled work and raise :class:`UnsupportedOpError`.
PARTIAL_RATIO_SETUP_OPS = (
    "aten::ScalarImplicit",
    "aten::__and__",
    "aten::arange",
    "aten::floor_divide",
    "aten::ge",
    "aten::lt",
    "aten::reciprocal",
    "aten::slice",
    "aten::sub",
    "aten::sum",
    "aten::unsqueeze",
)


def _is_partial_padding(module: nn.Module | None) -> bool:
    from nas.layers.mixconv import MixConv2d
    from nas.layers.padding import PartialConv2d

    return isinstance(module, PartialConv2d) or (
        isinstance(module, MixConv2d) and module.padding_mode == "partial"
    )


def _partial_setup_handle(model: nn.Module):
    modules = dict(model.named_modules())

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        node = outputs[0].node()
        scopes = [s for s in node.scopeName().split("/") if s]
        if not any(_is_partial_padding(modules.get(s)) for s in scopes):
            raise UnsupportedOpError(
                f"{node.kind()} outside a partial-padding conv (in {scopes[-1] if scopes else 'the top module'}): "
                f"neither counted nor ignored by evaluators.flops; add a handle or an IGNORED_OPS entry"
            )
        return 0

    return handle


# ------------------------------------------------------------------ analysis


def _input_tensor(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4 or shape[0] != 1 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) or (1, C, H, W), got {tuple(input_shape)}")
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return torch.zeros(shape, device=device, dtype=dtype)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


@contextmanager
def _quiet() -> Iterator[None]:
    """fvcore logs unsupported ops / uncalled modules; torch's tracer warns. Silence both."""
    logger = logging.getLogger("fvcore.nn.jit_analysis")  # the logger fvcore's warnings use
    previous = logger.disabled
    logger.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.disabled = previous


def flop_analysis(model: nn.Module, input_shape: Sequence[int]) -> FlopCountAnalysis:
    """A finished, checked ``FlopCountAnalysis`` of ``model`` at batch 1 (eval mode).

    Query it with ``.total()``, ``.by_module()``, ``.by_operator()``; the statistics are
    computed here (the trace is cached), so later queries do not depend on the model's mode.
    Raises :class:`UnsupportedOpError` if an op is neither handled nor in :data:`IGNORED_OPS`.
    """
    x = _input_tensor(model, input_shape)
    analysis = FlopCountAnalysis(model, (x,))
    analysis.set_op_handle(**EXTRA_HANDLES)
    setup = _partial_setup_handle(model)
    analysis.set_op_handle(**{op: setup for op in PARTIAL_RATIO_SETUP_OPS})
    if not hasattr(analysis, "_ignored_ops"):  # pragma: no cover - guards an fvcore upgrade
        raise RuntimeError("fvcore changed: FlopCountAnalysis has no _ignored_ops to replace")
    # fvcore's built-in ignore list would hide ops silently; ours gives a reason for each.
    analysis._ignored_ops = set(IGNORED_OPS)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with _eval_mode(model), _quiet(), torch.no_grad():
        model(x)  # fill per-shape caches (partial-padding ratios) outside the trace
        analysis.total()
    unsupported = analysis.unsupported_ops()
    if unsupported:
        raise UnsupportedOpError(_describe_unsupported(analysis, unsupported))
    return analysis


def _describe_unsupported(analysis: FlopCountAnalysis, unsupported: Counter) -> str:
    where: dict[str, str] = {}  # op -> the innermost module it occurs in (the first such)
    depth: dict[str, int] = {}
    for name, module in analysis._model.named_modules():
        if not name:
            continue
        for op in analysis.unsupported_ops(name):
            if op not in where or name.count(".") > depth[op]:
                where[op] = f"{name} ({type(module).__name__})"
                depth[op] = name.count(".")
    ops = ", ".join(f"{op} x{n} (in {where.get(op, 'the top module')})" for op, n in sorted(unsupported.items()))
    return (
        f"ops neither counted nor ignored by evaluators.flops: {ops}; add a handle "
        f"(EXTRA_HANDLES) or an entry with its reason in IGNORED_OPS"
    )


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass at batch 1; ``input_shape`` is ``(C, H, W)``.

    Raises :class:`UnsupportedOpError` naming any op that is neither counted nor ignored.
    """
    return int(flop_analysis(model, input_shape).total())


def macs_by_module(model: nn.Module, input_shape: Sequence[int], max_depth: int | None = None) -> dict[str, int]:
    """MACs per submodule name (``""`` is the whole model), optionally down to ``max_depth`` dots."""
    counts = flop_analysis(model, input_shape).by_module()
    return {
        name: int(n)
        for name, n in counts.items()
        if max_depth is None or (name.count(".") + 1 if name else 0) <= max_depth
    }


def macs_by_operator(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """MACs per operator kind (``conv``, ``batch_norm``, ``linear``, ``max_pool2d``, ...)."""
    return {op: int(n) for op, n in flop_analysis(model, input_shape).by_operator().items()}


__all__ = [
    "EXTRA_HANDLES",
    "IGNORED_OPS",
    "PARTIAL_RATIO_SETUP_OPS",
    "UnsupportedOpError",
    "count_macs",
    "flop_analysis",
    "macs_by_module",
    "macs_by_operator",
    "pool_flop_jit",
]
