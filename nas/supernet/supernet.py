"""Supernet: every architecture of a space in one set of shared weights.

The supernet does not re-implement a single layer. A subnet is the plain ``nas.build(arch)``
module (a *skeleton*); what the supernet adds is, for each of the skeleton's parameters, a
*view* into one shared tensor, and a forward pass runs the skeleton with those views in place
of its own parameters (``torch.func.functional_call``). Gradients flow through the views into
the shared tensors, so training any subnet trains the supernet, and :meth:`Supernet.subnet`
is the very network that was scored: the skeleton with the views copied in.

How each choice shares (OFA / BigNAS-style):

- width, expansion, stem and head channels, SE size: the leading channels of a full-size
  tensor (a 1x1 conv ``[out, in]`` takes ``[:out, :in]``; SE the leading channels of the
  full-size reduce/expand convs);
- depth: block ``j`` of a stage always uses the weights of position ``j`` (the first d blocks);
- kernel groups: one depthwise kernel per channel at the largest size the position allows;
  the partition decides which channels fall in which group, and a channel in a k-group uses
  the centre k x k of its kernel, or with ``kernel_transform=True`` (Once-for-All's elastic
  kernel) that centre passed through a learned (k*k x k*k) matrix per position and size,
  chained from the largest size down (7x7 -> 5x5 -> 3x3), each matrix starting as identity;
- activation, padding mode, dilation and downsampling: switches without weights of their own
  (their shapes never differ);
- block type (``ir`` / ``ds``), the 1x1 convs' groups and whether a head conv exists are
  alternatives with their own weights, since the shapes or meanings differ.

BN statistics are not shared meaningfully across subnets: scoring recalibrates them per
subnet (:func:`nas.supernet.scoring.recalibrate`). A one-point space gives a supernet whose
only subnet equals its plain network.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn
from torch.func import functional_call

from nas.builder import NasNet, build, create_block, init_weights
from nas.errors import NasInputError
from nas.genotype import Arch, Block
from nas.layers.mixconv import MixConv2d
from nas.space import WEIGHTLESS, Space, cost_key, decision_kind

#: A slicer takes the shared tensor and returns the view a subnet parameter uses.
Slicer = Callable[[torch.Tensor], torch.Tensor]

SKELETON_CACHE = 32


def _key(slot: str) -> str:
    return slot.replace(".", "__")  # ParameterDict keys cannot hold dots


def _leading(shape: Sequence[int]) -> Slicer:
    index = tuple(slice(0, n) for n in shape)
    return lambda shared: shared[index]


def _centre(channels: slice, kernel: int) -> Slicer:
    def view(shared: torch.Tensor) -> torch.Tensor:
        offset = (shared.shape[-1] - kernel) // 2
        return shared[channels, :, offset : offset + kernel, offset : offset + kernel]

    return view


def _block_signature(block: Block) -> str:
    return f"{block.kind}.g{block.pw_groups[0]}.{block.pw_groups[1]}"


def _slot(arch: Arch, name: str) -> str:
    """The shared slot a parameter of ``nas.build(arch)`` lives in (see the module docstring)."""
    parts = name.split(".")
    if parts[0] == "blocks":
        i, j = int(parts[1]), int(parts[2])
        block = arch.stages[i][j]
        rest = ".".join(parts[3:])
        if rest.startswith("conv_dw."):
            rest = "conv_dw"
        return f"s{i}.b{j}.{_block_signature(block)}.{rest}"
    if parts[0] == "classifier":
        return f"classifier.{'head' if arch.head.channels > 0 else 'nohead'}.{parts[-1]}"
    return name


class Supernet(nn.Module):
    """All architectures of ``space`` in shared weights.

    ``forward(x, arch)`` runs one subnet; ``subnet(arch)`` returns it as a plain module
    (``nas.build(arch)`` with the shared weights copied in); ``largest()``, ``smallest()``
    and ``sample(rng)`` draw architectures of the space.
    """

    def __init__(self, space: Space, num_classes: int = 10, in_chans: int | None = None,
                 channels_last: bool = False, kernel_transform: bool = False) -> None:
        super().__init__()
        self.kernel_transform = bool(kernel_transform)
        #: Run subnets in ``torch.channels_last``: the 4-D views are copied into that format each
        #: forward (a view of a shared tensor is never dense in it), which the depthwise convs'
        #: backward needs to be fast on CPU (``benchmarks/bench_supernet_throughput.py``).
        self.channels_last = bool(channels_last)
        self.space = space
        self.num_classes = int(num_classes)
        self.in_chans = int(in_chans or space.input_channels)
        self.shared = nn.ParameterDict()
        self._kernel_sizes: dict[str, tuple[int, ...]] = {}  # dw slot -> the sizes its groups take
        for slot, tensor in self._full_size_tensors().items():
            self.shared[_key(slot)] = nn.Parameter(tensor)
        if self.kernel_transform:
            for slot, sizes in self._kernel_sizes.items():
                for k in sizes[:-1]:  # the largest is the shared kernel itself
                    self.shared[_key(f"{slot}.t{k}")] = nn.Parameter(torch.eye(k * k))
        self._skeletons: OrderedDict[str, tuple[NasNet, dict[str, tuple[str, Slicer]]]] = OrderedDict()
        self._compiled: dict[str, Callable] = {}
        self._compiled_ok: set[str] = set()

    # ------------------------------------------------------------ full-size tensors

    def _full_size_tensors(self) -> dict[str, torch.Tensor]:
        """One tensor per slot at the largest shape the space gives it, timm-initialised."""
        spec = self.space.spec
        tensors: dict[str, torch.Tensor] = {}

        def take(prefix: str, module: nn.Module) -> None:
            init_weights(module)
            for name, p in module.named_parameters():
                tensors[f"{prefix}{name}"] = p.detach().clone()

        stem = max(spec.stem.channels)
        take("", nn.ModuleDict({"conv_stem": nn.Conv2d(self.in_chans, stem, 3, bias=False), "bn1": nn.BatchNorm2d(stem)}))
        previous = list(spec.stem.channels)
        for i, stage in enumerate(spec.stages):
            for j in range(max(stage.depth)):
                choices = stage.first if j == 0 else stage.rest
                in_max = max(previous) if j == 0 else max(stage.width)
                sizes = tuple(sorted({k for group in choices.kernels for k in group}))
                for block in self._full_size_blocks(choices, max(stage.width), stage.stride if j == 0 else 1):
                    module = create_block(block, in_max)
                    take(f"s{i}.b{j}.{_block_signature(block)}.", module)
                    self._kernel_sizes[f"s{i}.b{j}.{_block_signature(block)}.conv_dw"] = sizes
            previous = list(stage.width)
        last = max(previous)
        head = max(spec.head.channels)
        if head > 0:
            take("", nn.ModuleDict({"conv_head": nn.Conv2d(last, head, 1, bias=False), "bn2": nn.BatchNorm2d(head)}))
            take("classifier.head.", nn.Linear(head, self.num_classes))
        if min(spec.head.channels) == 0:
            take("classifier.nohead.", nn.Linear(last, self.num_classes))
        # the depthwise slot: named conv_dw (not conv_dw.weight) so all kernel groups share it
        return {(k[: -len(".weight")] if k.endswith(".conv_dw.weight") else k): v for k, v in tensors.items()}

    @staticmethod
    def _full_size_blocks(choices, width: int, stride: int) -> Iterator[Block]:
        """The full-size block of each alternative (type x 1x1 groups) of one position."""
        kernel = max(max(k) for k in choices.kernels)
        se = max(choices.se)
        for kind in choices.type:
            for groups in choices.pw_groups:
                if kind == "ds" and groups[0] != 1:
                    continue
                yield Block(kind=kind, kernels=(kernel,), out_channels=width,
                            expansion=max(choices.expansion) if kind == "ir" else 1.0,
                            stride=stride, pw_groups=tuple(groups), se=se)

    # ------------------------------------------------------------ subnets

    def _bind(self, arch: Arch) -> tuple[NasNet, dict[str, tuple[str, Slicer]]]:
        """The skeleton of ``arch`` and, per parameter name, its (slot, slicer). Cached."""
        text = str(arch)
        if text in self._skeletons:
            self._skeletons.move_to_end(text)
            return self._skeletons[text]
        skeleton = build(arch, num_classes=self.num_classes, in_chans=self.in_chans)
        for p in skeleton.parameters():
            p.requires_grad_(False)  # its own parameters are never used: the views replace them
        modules = dict(skeleton.named_modules())
        binding: dict[str, tuple[str, Slicer]] = {}
        for name, p in skeleton.named_parameters():
            slot = _slot(arch, name)
            if slot.endswith(".conv_dw"):
                binding[name] = (slot, self._dw_slicer(modules, name, p, slot))
            else:
                binding[name] = (slot, _leading(p.shape))
            shared = self.shared[_key(slot)] if _key(slot) in self.shared else None
            if shared is None or binding[name][1](shared).shape != p.shape:
                raise NasInputError(f"supernet of {self.space.name}: {arch} is not in the space ({name} has no shared weights)")
        skeleton.to(next(iter(self.shared.values())).device)
        self._skeletons[text] = (skeleton, binding)
        if len(self._skeletons) > SKELETON_CACHE:
            self._skeletons.popitem(last=False)
        return skeleton, binding

    def _dw_slicer(self, modules: dict[str, nn.Module], name: str, p: torch.Tensor, slot: str) -> Slicer:
        """A depthwise group's channels and centre kernel within the position's shared kernel
        (through the position's kernel transforms, when the supernet has them)."""
        parts = name.split(".")
        owner = modules[".".join(parts[: parts.index("conv_dw") + 1])]
        if isinstance(owner, MixConv2d):
            group = int(parts[parts.index("convs") + 1])
            start = sum(owner.out_splits[:group])
            channels = slice(start, start + owner.out_splits[group])
        else:
            channels = slice(0, p.shape[0])
        if not self.kernel_transform or p.shape[-1] == max(self._kernel_sizes[slot]):
            return _centre(channels, p.shape[-1])
        steps = [k for k in reversed(self._kernel_sizes[slot]) if k >= p.shape[-1]][1:]  # e.g. 5, 3 below 7
        transforms = [self.shared[_key(f"{slot}.t{k}")] for k in steps]

        def view(shared: torch.Tensor) -> torch.Tensor:
            kernel = shared[channels]
            for k, matrix in zip(steps, transforms):
                kernel = _centre(slice(None), k)(kernel)
                kernel = (kernel.reshape(-1, 1, k * k) @ matrix).reshape(-1, 1, k, k)
            return kernel

        return view

    def views(self, arch: Arch | str) -> tuple[NasNet, dict[str, torch.Tensor]]:
        """The skeleton of ``arch`` and its parameters as views of the shared weights."""
        arch = Arch.parse(arch) if isinstance(arch, str) else arch
        skeleton, binding = self._bind(arch)
        return skeleton, {name: slicer(self.shared[_key(slot)]) for name, (slot, slicer) in binding.items()}

    def forward(self, x: torch.Tensor, arch: Arch | str) -> torch.Tensor:
        skeleton, params = self.views(arch)
        skeleton.train(self.training)
        if self.channels_last:
            params = {name: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                      for name, v in params.items()}
            x = x.contiguous(memory_format=torch.channels_last)
        text = str(arch)
        run = self._compiled.get(text)
        if run is not None:
            if text in self._compiled_ok:
                return run(params, x)
            try:  # the first call compiles: a machine without a working compiler falls back to eager
                out = run(params, x)
                self._compiled_ok.add(text)
                return out
            except Exception as exc:  # inductor/dynamo raise many types
                warnings.warn(f"torch.compile of {text} failed, running it eagerly: {type(exc).__name__}: {exc}")
                del self._compiled[text]
        return functional_call(skeleton, params, (x,), strict=False)

    def compile_subnet(self, arch: Arch | str, **options) -> None:
        """Run ``arch`` through ``torch.compile`` from now on (``options`` go to it). Worth it for
        a subnet every step runs (the sandwich's largest), never for random ones: each new
        architecture would compile anew. The views are taken outside the compiled graph, so it
        sees fixed shapes and compiles once per mode (train/eval)."""
        arch = Arch.parse(arch) if isinstance(arch, str) else arch
        skeleton, _ = self._bind(arch)

        def call(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(skeleton, params, (x,), strict=False)

        self._compiled[str(arch)] = torch.compile(call, **options)

    @torch.no_grad()
    def subnet(self, arch: Arch | str) -> NasNet:
        """``nas.build(arch)`` with the shared weights (and the skeleton's BN statistics) in it."""
        skeleton, params = self.views(arch)
        model = build(arch, num_classes=self.num_classes, in_chans=self.in_chans)
        state = {**{k: v for k, v in skeleton.state_dict().items() if k not in params},
                 **{k: v.detach().clone() for k, v in params.items()}}
        model.load_state_dict(state)
        return model.to(next(iter(self.shared.values())).device)

    @torch.no_grad()
    def absorb(self, arch: Arch | str, model: nn.Module) -> None:
        """Write a trained ``nas.build(arch)`` module's weights into the shared tensors it maps to
        (the inverse of :meth:`subnet`; e.g. to start a supernet from a pretrained network)."""
        if self.kernel_transform:
            raise NasInputError("absorb: a supernet with kernel transforms has no inverse for its smaller kernels")
        _, params = self.views(arch)
        own = dict(model.named_parameters())
        for name, view in params.items():
            view.copy_(own[name])

    # ------------------------------------------------------------ drawing

    def extreme(self, largest: bool) -> Arch:
        """The largest (or smallest) subnet: every choice that sizes weights at its end (depth,
        width, expansion, kernels, SE, block type, stem and head); the switches without weights
        (activation, padding, partition, dilation, downsampling) at the space's first option."""
        def choose(name: str, options):
            if decision_kind(name) in WEIGHTLESS:
                return options[0]
            ranked = sorted(options, key=cost_key)
            return ranked[-1] if largest else ranked[0]

        return self.space.draw(choose)

    def largest(self) -> Arch:
        return self.extreme(True)

    def smallest(self) -> Arch:
        return self.extreme(False)

    def extra_repr(self) -> str:
        count = sum(p.numel() for p in self.shared.values())
        return f"space={self.space.name!r}, slots={len(self.shared)}, shared parameters={count:,}"


__all__ = ["Supernet"]
