"""MixConv2d: mixed depthwise convolution (MixConv, arXiv 1907.09595) in one module.

Channels come split into groups (``in_splits``, ``out_splits``: the builder splits them with
:func:`nas.genotype.split_channels`, and an exported ``model.py`` writes the lists out);
group ``i`` is a depthwise conv with kernel ``kernels[i]``; stride, dilation and padding
mode are shared; outputs are concatenated in group order.

Two implementations compute the same function from the same parameters (``convs.<i>.weight``,
one ``nn.Conv2d`` per group, so the state dict does not depend on the implementation):

``split``   split the input by channel, run each group's conv, concatenate;
``padded``  zero-pad every group's kernel to the largest one and run a single depthwise conv
            (more multiply-adds, one kernel launch). Zero taps contribute nothing, and
            reflect/replicate/circular padding values at a given offset do not depend on how
            wide the padding is, so the result equals the split one for every padding mode;
            for ``partial`` the per-group ratio is applied per channel.

``impl="auto"`` picks per device type at forward time (see :data:`AUTO_IMPL`, from
``benchmarks/bench_mixconv.py``). A non-depthwise MixConv2d (``depthwise=False``, used for
grouped 1x1 convs whose channels do not divide evenly) always runs ``split``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.errors import NasInputError
from nas.layers.padding import (
    PaddedConv2d,
    PartialConv2d,
    RatioCache,
    check_border_padding,
    check_padding_mode,
    partial_ratio,
    same_padding,
)

IMPLS = ("auto", "split", "padded")

# Which implementation "auto" uses per device type. CPU: measured by benchmarks/bench_mixconv.py
# (see BENCHMARKS.md). Other devices: not measured here; one depthwise launch instead of one per
# group is the usual win on accelerators.
AUTO_IMPL = {"cpu": "split"}
AUTO_IMPL_OTHER = "padded"


def resolve_impl(impl: str, device_type: str) -> str:
    """The concrete implementation ``impl`` means on a device type (``cpu``, ``cuda``, ...)."""
    if impl == "auto":
        return AUTO_IMPL.get(device_type, AUTO_IMPL_OTHER)
    return impl


def _group_conv(in_chs: int, out_chs: int, kernel: int, stride: int, dilation: int, groups: int, padding_mode: str) -> nn.Conv2d:
    pad = same_padding(kernel, dilation)
    kwargs = dict(stride=stride, padding=pad, dilation=dilation, groups=groups, bias=False)
    if pad == 0:
        return nn.Conv2d(in_chs, out_chs, kernel, **kwargs)  # no padding: every mode is the same conv
    if padding_mode == "partial":
        return PartialConv2d(in_chs, out_chs, kernel, **kwargs)
    if padding_mode in ("reflect", "circular"):
        return PaddedConv2d(in_chs, out_chs, kernel, padding_mode=padding_mode, **kwargs)
    return nn.Conv2d(in_chs, out_chs, kernel, padding_mode=padding_mode, **kwargs)


class MixConv2d(nn.Module):
    """Mixed depthwise conv: one depthwise kernel size per channel group.

    Args:
        in_splits: input channels of each group (== ``out_splits`` when ``depthwise``).
        out_splits: output channels of each group.
        kernels: one odd kernel size per group, e.g. ``(3, 5, 7)``.
        stride, dilation: shared by all groups.
        padding_mode: one of ``zeros, reflect, replicate, circular, partial``.
        depthwise: each group a depthwise conv (the MixConv case); otherwise each group a dense
            conv from its input split to its output split (a grouped conv with uneven groups).
        impl: ``auto``, ``split`` or ``padded`` (``padded`` needs ``depthwise``).
    """

    layer_name: str = "mixconv"

    def __init__(
        self,
        in_splits: list[int],
        out_splits: list[int],
        kernels: list[int] | tuple[int, ...],
        stride: int = 1,
        dilation: int = 1,
        padding_mode: str = "zeros",
        depthwise: bool = True,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        kernels = tuple(int(k) for k in kernels)
        in_splits, out_splits = [int(c) for c in in_splits], [int(c) for c in out_splits]
        check_padding_mode(padding_mode)
        if impl not in IMPLS:
            raise NasInputError(f"unknown MixConv2d impl {impl!r}; expected one of {', '.join(IMPLS)}")
        if not len(kernels) == len(in_splits) == len(out_splits) or not kernels:
            raise NasInputError(
                f"MixConv2d needs one kernel per channel group, got kernels {kernels}, "
                f"splits {in_splits} -> {out_splits}"
            )
        if depthwise and in_splits != out_splits:
            raise NasInputError(f"a depthwise MixConv2d keeps its channels, got {in_splits} -> {out_splits}")
        if not depthwise and impl == "padded":
            raise NasInputError("the padded implementation needs a depthwise MixConv2d")
        self.in_chs = sum(in_splits)
        self.out_chs = sum(out_splits)
        self.kernels = kernels
        self.stride = stride
        self.dilation = dilation
        self.padding_mode = padding_mode
        self.depthwise = depthwise
        self.impl = impl if depthwise else "split"
        self.in_splits = in_splits
        self.out_splits = out_splits
        self.max_kernel = max(kernels)
        self.max_pad = same_padding(self.max_kernel, dilation)
        self.convs = nn.ModuleList(
            _group_conv(cin, cout, k, stride, dilation, cin if depthwise else 1, padding_mode)
            for cin, cout, k in zip(self.in_splits, self.out_splits, kernels)
        )
        self._ratios = RatioCache()

    def extra_repr(self) -> str:
        return (
            f"{self.in_chs}, {self.out_chs}, kernels={self.kernels}, splits={self.out_splits}, "
            f"stride={self.stride}, dilation={self.dilation}, padding_mode={self.padding_mode}, impl={self.impl}"
        )

    def _check_input(self, x: torch.Tensor) -> None:
        check_border_padding(
            self.padding_mode, self.max_pad, x.shape[-2], x.shape[-1],
            f"{self.layer_name} (kernels {'.'.join(map(str, self.kernels))}, dilation {self.dilation})",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        if resolve_impl(self.impl, x.device.type) == "padded":
            return self.forward_padded(x)
        return self.forward_split(x)

    def forward_split(self, x: torch.Tensor) -> torch.Tensor:
        """Split by channel, one conv per group, concatenate."""
        if len(self.convs) == 1:
            return self.convs[0](x)
        parts = torch.split(x, self.in_splits, dim=1)
        return torch.cat([conv(part) for conv, part in zip(self.convs, parts)], dim=1)

    def padded_weight(self) -> torch.Tensor:
        """All groups' kernels zero-padded to the largest, stacked: (C, 1, K, K)."""
        weights = []
        for conv, k in zip(self.convs, self.kernels):
            m = (self.max_kernel - k) // 2
            weights.append(F.pad(conv.weight, (m, m, m, m)) if m else conv.weight)
        return torch.cat(weights, dim=0) if len(weights) > 1 else weights[0]

    def _make_ratio(self, height: int, width: int) -> torch.Tensor:
        maps = [
            partial_ratio(height, width, k, self.stride, self.dilation)[None].expand(c, -1, -1)
            for k, c in zip(self.kernels, self.out_splits)
        ]
        return torch.cat(maps, dim=0)[None]  # (1, C, Ho, Wo)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """One depthwise conv with every kernel zero-padded to the largest."""
        if not self.depthwise:
            raise NasInputError("the padded implementation needs a depthwise MixConv2d")
        weight = self.padded_weight()
        bias = self.padded_bias()
        pad = self.max_pad
        partial = self.padding_mode == "partial" and pad
        conv_bias = None if partial else bias  # partial: the bias comes after the ratio
        if self.padding_mode in ("zeros", "partial"):
            y = F.conv2d(x, weight, conv_bias, self.stride, pad, self.dilation, self.out_chs)
        else:
            if pad:
                x = F.pad(x, (pad, pad, pad, pad), mode=self.padding_mode)
            y = F.conv2d(x, weight, conv_bias, self.stride, 0, self.dilation, self.out_chs)
        if partial:
            ratio = self._ratios.get(x.shape[-2], x.shape[-1], y, self._make_ratio)
            y = y.mul_(ratio) if bias is None else torch.addcmul(bias.view(1, -1, 1, 1), y, ratio)
        return y

    def padded_bias(self) -> torch.Tensor | None:
        """All groups' biases stacked (a group without one adds 0); None when no group has one
        (the built networks: a batch norm follows; :mod:`nas.layers.fold` gives them one)."""
        if all(conv.bias is None for conv in self.convs):
            return None
        return torch.cat([conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
                          for conv in self.convs])


__all__ = ["AUTO_IMPL", "IMPLS", "MixConv2d", "resolve_impl"]
