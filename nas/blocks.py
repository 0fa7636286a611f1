"""The two block kinds of the genotype, after timm's InvertedResidual / DepthwiseSeparableConv.

A block is given its convs (built by :mod:`nas.builder` from the genotype) and plain
numbers for the rest, so this module imports only torch and the torch-only layers: an
exported ``model.py`` carries it verbatim. Layout (attribute names are stable: exported
code and checkpoints rely on them):

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

from nas.errors import NasInputError
from nas.layers.activations import create_act
from nas.layers.squeeze_excite import SqueezeExcite


def create_pool(kind: str, stride: int) -> nn.Module:
    """The downsampling pool of ``down=max|avg``: odd kernel >= stride, 'same'-style padding,
    so the output size is ``(H - 1) // stride + 1`` like a strided 'same' conv (kernel 3 at stride 2)."""
    kernel = stride + 1 - stride % 2
    pad = (kernel - 1) // 2
    if kind == "max":
        return nn.MaxPool2d(kernel, stride, pad)
    if kind == "avg":
        return nn.AvgPool2d(kernel, stride, pad, count_include_pad=False)
    raise NasInputError(f"no pooling layer for down={kind}")


class _BlockBase(nn.Module):
    """What both kinds share: the optional downsampling pool and the residual rule.

    ``stride`` is the block's; with ``down`` ``max``/``avg`` the pool carries it and the
    given depthwise conv must run at stride 1 (the builder builds it so).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, down: str) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.out_chs = out_chs
        self.stride = stride
        self.down = down
        self.pool = create_pool(down, stride) if down != "conv" and stride > 1 else None
        self.has_residual = stride == 1 and in_chs == out_chs

    def extra_repr(self) -> str:
        return f"{self.in_chs} -> {self.out_chs}, stride={self.stride}, down={self.down}, residual={self.has_residual}"


class InvertedResidual(_BlockBase):
    """1x1 expand -> BN -> act -> MixConv dw -> BN -> act -> [SE] -> 1x1 project -> BN (+ skip).

    ``se_chs``: the squeeze-excite bottleneck width (0: no SE), see
    :func:`nas.layers.squeeze_excite.se_channels`.
    """

    #: Which conv each batch norm follows (:func:`nas.layers.fold.fold_batchnorm`).
    conv_bn_pairs = (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3"))

    def __init__(
        self, in_chs: int, mid_chs: int, out_chs: int, conv_pw: nn.Module, conv_dw: nn.Module, conv_pwl: nn.Module,
        stride: int = 1, down: str = "conv", se_chs: int = 0, act: str = "relu",
    ) -> None:
        super().__init__(in_chs, out_chs, stride, down)
        self.mid_chs = mid_chs
        self.conv_pw = conv_pw
        self.bn1 = nn.BatchNorm2d(mid_chs)
        self.act1 = create_act(act)
        self.conv_dw = conv_dw
        self.bn2 = nn.BatchNorm2d(mid_chs)
        self.act2 = create_act(act)
        self.se = SqueezeExcite(mid_chs, se_chs, act) if se_chs else None
        self.conv_pwl = conv_pwl
        self.bn3 = nn.BatchNorm2d(out_chs)

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
    """MixConv dw -> BN -> act -> [SE] -> 1x1 pointwise -> BN (+ skip). ``se_chs`` as above."""

    conv_bn_pairs = (("conv_dw", "bn1"), ("conv_pw", "bn2"))

    def __init__(
        self, in_chs: int, out_chs: int, conv_dw: nn.Module, conv_pw: nn.Module,
        stride: int = 1, down: str = "conv", se_chs: int = 0, act: str = "relu",
    ) -> None:
        super().__init__(in_chs, out_chs, stride, down)
        self.mid_chs = in_chs
        self.conv_dw = conv_dw
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.act1 = create_act(act)
        self.se = SqueezeExcite(in_chs, se_chs, act) if se_chs else None
        self.conv_pw = conv_pw
        self.bn2 = nn.BatchNorm2d(out_chs)

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


__all__ = ["DepthwiseSeparable", "InvertedResidual", "create_pool"]
