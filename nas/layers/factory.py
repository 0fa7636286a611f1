"""create_conv2d: the one place that picks a conv class from its arguments."""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from nas.errors import NasInputError
from nas.layers.mixconv import IMPLS, MixConv2d
from nas.layers.padding import PaddedConv2d, PartialConv2d, check_padding_mode, same_padding


def create_conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    depthwise: bool = False,
    padding_mode: str = "zeros",
    partition: str = "equal",
    impl: str = "auto",
) -> nn.Module:
    """A bias-free 2-d conv with 'same' padding ``dilation*(k-1)//2``.

    - a list of several kernel sizes: :class:`MixConv2d` (depthwise) split by ``partition``;
    - one kernel and ``padding_mode`` ``partial``: :class:`PartialConv2d`;
    - one kernel, ``reflect``/``circular``: :class:`PaddedConv2d` (an ``nn.Conv2d`` that checks
      the input is larger than the padding);
    - otherwise a plain ``nn.Conv2d(padding_mode=...)``.

    ``groups`` that do not divide both channel counts (a grouped 1x1 conv in a searched
    space) give a non-depthwise :class:`MixConv2d` with uneven groups, as timm does.
    ``impl`` (``auto``, ``split``, ``padded``) is passed to :class:`MixConv2d`.
    """
    check_padding_mode(padding_mode)
    if impl not in IMPLS:
        raise NasInputError(f"unknown conv impl {impl!r}; expected one of {', '.join(IMPLS)}")
    kernels = [kernel_size] if isinstance(kernel_size, int) else [int(k) for k in kernel_size]
    if not kernels:
        raise NasInputError("create_conv2d needs at least one kernel size")
    if depthwise:
        if in_channels != out_channels:
            raise ValueError(f"a depthwise conv keeps its channels, got {in_channels} -> {out_channels}")
        groups = in_channels
    if len(kernels) > 1:
        if not depthwise:
            raise ValueError("several kernel sizes make a mixed depthwise conv: pass depthwise=True")
        return MixConv2d(in_channels, out_channels, kernels, stride, dilation, padding_mode, partition, True, impl)
    k = kernels[0]
    if in_channels % groups or out_channels % groups:
        return MixConv2d(in_channels, out_channels, [k] * groups, stride, dilation, padding_mode, "equal", False, impl)
    pad = same_padding(k, dilation)
    kwargs = dict(stride=stride, padding=pad, dilation=dilation, groups=groups, bias=False)
    if padding_mode == "partial" and pad > 0:
        return PartialConv2d(in_channels, out_channels, k, **kwargs)
    if padding_mode in ("reflect", "circular") and pad > 0:
        return PaddedConv2d(in_channels, out_channels, k, padding_mode=padding_mode, **kwargs)
    if padding_mode == "partial" or pad == 0:
        padding_mode = "zeros"  # no padding at all: every mode is the same plain conv
    return nn.Conv2d(in_channels, out_channels, k, padding_mode=padding_mode, **kwargs)


__all__ = ["create_conv2d"]
