"""The two block kinds of the genotype, after timm's InvertedResidual / DepthwiseSeparableConv.

Both take a :class:`nas.genotype.Block` and the block's input channels. Layout
(attribute names are stable: exported code and checkpoints rely on them):

InvertedResidual:    [pool] conv_pw (1x1, groups g[0]) bn1 act1 conv_dw (MixConv) bn2 act2
                     [se] conv_pwl (1x1, groups g[1]) bn3   (+ input if stride 1 and in == out)
DepthwiseSeparable:  [pool] conv_dw (MixConv) bn1 act1 [se] conv_pw (1x1, groups g[1]) bn2
                                                            (+ input if stride 1 and in == out)

``down=conv``: the depthwise conv carries the stride. ``down=max|avg``: a pooling layer
(kernel 3, padding 1, stride s; output size equal to the strided conv's) runs first and
the block itself runs at stride 1; a downsampling block never has a residual.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nas.genotype import Block
from nas.layers.activations import create_act
from nas.layers.factory import create_conv2d
from nas.layers.squeeze_excite import SqueezeExcite, se_channels


def create_pool(kind: str, stride: int) -> nn.Module:
    """The downsampling pool of ``down=max|avg``: odd kernel >= stride, 'same'-style padding,
    so the output size is ``(H - 1) // stride + 1`` like a strided 'same' conv (kernel 3 at stride 2)."""
    kernel = stride + 1 - stride % 2
    pad = (kernel - 1) // 2
    if kind == "max":
        return nn.MaxPool2d(kernel, stride, pad)
    if kind == "avg":
        return nn.AvgPool2d(kernel, stride, pad, count_include_pad=False)
    raise ValueError(f"no pooling layer for down={kind}")


class _BlockBase(nn.Module):
    def __init__(self, block: Block, in_channels: int) -> None:
        super().__init__()
        self.block = block
        self.in_channels = in_channels
        self.out_channels = block.out_channels
        pooled = block.downsample != "conv" and block.stride > 1
        self.pool = create_pool(block.downsample, block.stride) if pooled else None
        self.dw_stride = 1 if pooled else block.stride
        self.has_residual = block.stride == 1 and in_channels == block.out_channels

    def _mixconv(self, channels: int, impl: str) -> nn.Module:
        b = self.block
        return create_conv2d(
            channels, channels, list(b.kernels), stride=self.dw_stride, dilation=b.dilation,
            depthwise=True, padding_mode=b.padding, partition=b.partition, impl=impl,
        )

    def _se(self, channels: int) -> nn.Module | None:
        b = self.block
        if b.se <= 0:
            return None
        return SqueezeExcite(channels, se_channels(self.in_channels, b.se), b.act)

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, {self.block}, residual={self.has_residual}"


class InvertedResidual(_BlockBase):
    """1x1 expand -> BN -> act -> MixConv dw -> BN -> act -> [SE] -> 1x1 project -> BN (+ skip)."""

    def __init__(self, block: Block, in_channels: int, impl: str = "auto") -> None:
        super().__init__(block, in_channels)
        mid = block.mid_channels(in_channels)
        self.mid_channels = mid
        g_expand, g_project = block.pw_groups
        self.conv_pw = create_conv2d(in_channels, mid, 1, groups=g_expand)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act1 = create_act(block.act)
        self.conv_dw = self._mixconv(mid, impl)
        self.bn2 = nn.BatchNorm2d(mid)
        self.act2 = create_act(block.act)
        self.se = self._se(mid)
        self.conv_pwl = create_conv2d(mid, block.out_channels, 1, groups=g_project)
        self.bn3 = nn.BatchNorm2d(block.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        shortcut = x
        x = self.act1(self.bn1(self.conv_pw(x)))
        x = self.act2(self.bn2(self.conv_dw(x)))
        if self.se is not None:
            x = self.se(x)
        x = self.bn3(self.conv_pwl(x))
        if self.has_residual:
            x = x + shortcut
        return x


class DepthwiseSeparable(_BlockBase):
    """MixConv dw -> BN -> act -> [SE] -> 1x1 pointwise -> BN (+ skip)."""

    def __init__(self, block: Block, in_channels: int, impl: str = "auto") -> None:
        super().__init__(block, in_channels)
        self.mid_channels = block.mid_channels(in_channels)
        self.conv_dw = self._mixconv(in_channels, impl)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.act1 = create_act(block.act)
        self.se = self._se(in_channels)
        self.conv_pw = create_conv2d(in_channels, block.out_channels, 1, groups=block.pw_groups[1])
        self.bn2 = nn.BatchNorm2d(block.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        shortcut = x
        x = self.act1(self.bn1(self.conv_dw(x)))
        if self.se is not None:
            x = self.se(x)
        x = self.bn2(self.conv_pw(x))
        if self.has_residual:
            x = x + shortcut
        return x


BLOCK_TYPES: dict[str, type[_BlockBase]] = {"ir": InvertedResidual, "ds": DepthwiseSeparable}


def create_block(block: Block, in_channels: int, impl: str = "auto") -> nn.Module:
    """The module for one genotype block given its input channels."""
    return BLOCK_TYPES[block.kind](block, in_channels, impl=impl)


__all__ = ["BLOCK_TYPES", "DepthwiseSeparable", "InvertedResidual", "create_block", "create_pool"]
