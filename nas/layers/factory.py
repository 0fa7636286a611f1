"""create_conv2d: the one place that picks a conv class and its arguments.

:func:`conv2d_call` makes the choice and returns it as a :class:`nas.construct.Call`, so the
builder can run it and the exporter can write it out as a literal constructor call;
:func:`create_conv2d` is the same choice, built. This is the engine side of the layers: it
applies the genotype's channel split (:func:`nas.genotype.split_channels`); the layer classes
it picks are torch-only and are what an exported ``model.py`` carries.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from nas.construct import Call
from nas.errors import NasInputError
from nas.genotype import split_channels
from nas.layers.mixconv import IMPLS, MixConv2d
from nas.layers.padding import PaddedConv2d, PartialConv2d, check_padding_mode, same_padding


def conv2d_call(
    in_chs: int,
    out_chs: int,
    kernel_size: int | Sequence[int],
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    depthwise: bool = False,
    padding_mode: str = "zeros",
    partition: str = "equal",
    impl: str = "auto",
) -> Call:
    """The bias-free 2-d conv with 'same' padding ``dilation*(k-1)//2`` these arguments mean.

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
        if in_chs != out_chs:
            raise NasInputError(f"a depthwise conv keeps its channels, got {in_chs} -> {out_chs}")
        groups = in_chs
    if len(kernels) > 1:
        if not depthwise:
            raise NasInputError("several kernel sizes make a mixed depthwise conv: pass depthwise=True")
        splits = split_channels(in_chs, len(kernels), partition)
        return Call(MixConv2d, (splits, splits), dict(
            kernels=kernels, stride=stride, dilation=dilation, padding_mode=padding_mode, depthwise=True, impl=impl,
        ))
    k = kernels[0]
    if in_chs % groups or out_chs % groups:
        return Call(MixConv2d, (split_channels(in_chs, groups, "equal"), split_channels(out_chs, groups, "equal")), dict(
            kernels=[k] * groups, stride=stride, dilation=dilation, padding_mode=padding_mode, depthwise=False, impl=impl,
        ))
    pad = same_padding(k, dilation)
    kwargs = dict(stride=stride, padding=pad, dilation=dilation, groups=groups, bias=False)
    if padding_mode == "partial" and pad > 0:
        return Call(PartialConv2d, (in_chs, out_chs, k), kwargs)
    if padding_mode in ("reflect", "circular") and pad > 0:
        return Call(PaddedConv2d, (in_chs, out_chs, k), dict(kwargs, padding_mode=padding_mode))
    if padding_mode == "partial" or pad == 0:
        padding_mode = "zeros"  # no padding at all: every mode is the same plain conv
    return Call(nn.Conv2d, (in_chs, out_chs, k), dict(kwargs, padding_mode=padding_mode))


def create_conv2d(*args, **kwargs) -> nn.Module:
    """The conv :func:`conv2d_call` picks for these arguments, built."""
    return conv2d_call(*args, **kwargs).build()


__all__ = ["conv2d_call", "create_conv2d"]
