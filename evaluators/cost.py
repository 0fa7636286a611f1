"""Cheap, cached cost of an architecture: MFLOPs, params, and a training-memory estimate.

This is what the search uses to reject infeasible candidates (``--max-mflops``,
``--max-params``, a memory budget) before any training. Both functions build the network
on the CPU with ``impl="split"`` (MixConv2d's per-group convs), so the MACs are the
architecture's own, whatever device the candidate later trains on.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from typing import Sequence

import torch
import torch.nn as nn

from evaluators.flops import count_macs
from evaluators.params import count_params
from nas.errors import NasInputError
from nas.genotype import Arch

#: How many (arch, shape, classes) results :func:`measure_cost` keeps.
CACHE_SIZE = 512

#: Multiplier on the summed module outputs for one training step (see
#: :func:`estimate_train_memory_bytes`): 1x for the activations autograd keeps for the
#: backward pass, +1x for what the backward allocates on top (the gradient of each
#: activation, live while its layer's backward runs, transient buffers of ops that are not
#: modules, and allocator slack).
ACTIVATION_FACTOR = 2.0


@dataclass(frozen=True)
class Cost:
    """``mflops``: millions of multiply-adds at batch 1 (evaluators.flops); ``params``: trainable."""

    mflops: float
    params: int


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        hw = (image_size, image_size)
    else:
        hw = tuple(int(s) for s in image_size)
    if len(hw) != 2 or min(hw) < 1:
        raise NasInputError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return hw  # type: ignore[return-value]


def _canonical(arch: Arch | str) -> str:
    return str(arch if isinstance(arch, Arch) else Arch.parse(arch))


def _build(arch: str, in_chans: int, num_classes: int, device: str = "cpu") -> nn.Module:
    from nas.builder import build

    with torch.device(device):
        return build(arch, num_classes=num_classes, in_chans=in_chans, impl="split")


class _LRU:
    """A small thread-safe LRU of computed costs, keyed by canonical genotype and shape."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[tuple, Cost] = OrderedDict()
        self._lock = Lock()

    def get(self, key: tuple) -> Cost | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple, value: Cost) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


_CACHE = _LRU(CACHE_SIZE)


def measure_cost(
    arch: Arch | str, in_chans: int, image_size: int | Sequence[int], num_classes: int
) -> Cost:
    """MFLOPs (multiply-adds at batch 1, millions) and trainable parameters of ``arch``.

    Cached by (canonical genotype, input shape, classes). Raises :class:`NasInputError` for a
    bad genotype or an input too small for the architecture (e.g. reflect padding wider than
    the feature map), :class:`evaluators.flops.UnsupportedOpError` for an uncounted op.
    """
    text = _canonical(arch)
    h, w = _size(image_size)
    key = (text, int(in_chans), h, w, int(num_classes))
    cost = _CACHE.get(key)
    if cost is None:
        model = _build(text, int(in_chans), int(num_classes))
        macs = count_macs(model, (int(in_chans), h, w))
        cost = Cost(mflops=macs / 1e6, params=count_params(model))
        _CACHE.put(key, cost)
    return cost


def clear_cache() -> None:
    """Forget every cached :func:`measure_cost` result."""
    _CACHE.clear()


def activation_elements(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Elements of every distinct tensor the modules of ``model`` output in one forward pass
    at batch 1, the input included (output sizes do not depend on the mode; eval is used).

    Forward hooks on *every* module (not only leaves) also see tensors made by functional ops
    inside a module (a squeeze-excite gate multiply, a MixConv2d concat, a residual add).
    Tensors are told apart by storage, so an in-place op (``ReLU(inplace=True)``, partial
    padding's ratio multiply) or a container passing its last child's output on is counted once.
    """
    shape = tuple(int(s) for s in input_shape)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    meta = device.type == "meta"
    x = torch.zeros((1,) + shape, device=device)

    def key(t: torch.Tensor) -> int:
        # meta tensors have no storage address: tell them apart by object (a view is then
        # counted twice, which only makes the estimate more conservative)
        return id(t) if meta else t.untyped_storage().data_ptr()

    seen: dict[int, int] = {key(x): x.numel()}
    # Every output stays alive until the pass is over: a freed storage's address could be
    # reused by a later tensor, which would then be taken for the same one.
    alive: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs, output) -> None:
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        for t in outputs:
            if isinstance(t, torch.Tensor):
                alive.append(t)
                ptr = key(t)
                seen[ptr] = max(seen.get(ptr, 0), t.numel())

    modes = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
        alive.clear()
    return sum(seen.values())


def estimate_train_memory_bytes(
    arch: Arch | str,
    in_chans: int,
    image_size: int | Sequence[int],
    num_classes: int,
    batch_size: int,
    *,
    bytes_per_element: int = 4,
    activation_factor: float = ACTIVATION_FACTOR,
    optimizer_states: int = 2,
    device: str = "cpu",
) -> int:
    """A conservative estimate of the memory one training step of ``arch`` needs, in bytes.

    ``activations = batch_size * activation_elements(batch 1) * bytes_per_element * activation_factor``
    (every module output at batch 1, see :func:`activation_elements`; the factor, default
    :data:`ACTIVATION_FACTOR` = 2, covers the backward pass's gradient buffers on top of the
    saved activations), plus
    ``parameters = params * bytes_per_element * (2 + optimizer_states)`` (weights, their
    gradients, and per-parameter optimizer state: 2 for Adam/AdamW, the conservative default;
    1 for SGD with momentum). fp32 by default; pass ``bytes_per_element=2`` for a pure
    half-precision estimate (autocast keeps fp32 weights: leave it at 4 then). Not included:
    the framework's own fixed overhead (CUDA context, kernels' workspaces), the data batch
    on the host side.

    ``device="meta"`` builds and runs the network on PyTorch's meta device: nothing is
    allocated, so even a network far too large for the machine is estimated safely (at a
    small cost in precision: a view of an output is counted as a tensor of its own). This is
    what the search uses to reject candidates that would not fit before any training.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise NasInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    text = _canonical(arch)
    h, w = _size(image_size)
    model = _build(text, int(in_chans), int(num_classes), device=device)
    elements = activation_elements(model, (int(in_chans), h, w))
    activations = batch_size * elements * bytes_per_element * activation_factor
    parameters = count_params(model) * bytes_per_element * (2 + optimizer_states)
    return int(activations + parameters)


__all__ = [
    "ACTIVATION_FACTOR",
    "CACHE_SIZE",
    "Cost",
    "activation_elements",
    "clear_cache",
    "estimate_train_memory_bytes",
    "measure_cost",
]
