"""Squeeze-and-excitation as in MixNet / timm's EfficientNet blocks."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.layers.activations import create_act


def se_channels(block_in_chs: int, se_ratio: float) -> int:
    """Reduced channels: ``max(1, int(block input channels * se_ratio))`` (MixNet's rule)."""
    return max(1, int(block_in_chs * se_ratio))


class SqueezeExcite(nn.Module):
    """Global average pool -> 1x1 reduce (bias) -> act -> 1x1 expand (bias) -> sigmoid gate.

    Args:
        channels: channels it gates (the block's depthwise width).
        reduced_channels: bottleneck width, see :func:`se_channels`.
        act: the block's activation name.
    """

    def __init__(self, channels: int, reduced_channels: int, act: str = "relu") -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced_channels, 1, bias=True)
        self.act = create_act(act)
        self.conv_expand = nn.Conv2d(reduced_channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)  # a pooling op fvcore counts
        s = self.conv_expand(self.act(self.conv_reduce(s)))
        return x * torch.sigmoid(s)


__all__ = ["SqueezeExcite", "se_channels"]
