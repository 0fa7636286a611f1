"""build(): the nn.Module a genotype describes.

Layout (stable; exported code and checkpoints rely on these names, which follow timm's
EfficientNet so a reader of either recognises the other)::

    conv_stem (3x3, stride from Stem) -> bn1 -> act1
    blocks: nn.Sequential of stages, each an nn.Sequential of blocks (nas.blocks)
    conv_head (1x1 to Head.channels) -> bn2 -> act2      (nn.Identity for ``head c0``)
    global_pool (adaptive avg + flatten) -> dropout -> classifier (nn.Linear)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from nas.errors import NasInputError
from nas.genotype import Arch
from nas.blocks import create_block
from nas.layers.activations import create_act
from nas.layers.factory import create_conv2d
from nas.layers.mixconv import IMPLS


class NasNet(nn.Module):
    """A network built from an :class:`Arch`; ``self.arch`` is that Arch."""

    def __init__(self, arch: Arch, num_classes: int, in_chans: int, drop_rate: float = 0.0, impl: str = "auto") -> None:
        super().__init__()
        self.arch = arch
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate

        stem = arch.stem
        self.conv_stem = create_conv2d(in_chans, stem.channels, 3, stride=stem.stride)
        self.bn1 = nn.BatchNorm2d(stem.channels)
        self.act1 = create_act(stem.act)

        channels = stem.channels
        stages = []
        for stage in arch.stages:
            blocks = []
            for block in stage:
                blocks.append(create_block(block, channels, impl=impl))
                channels = block.out_channels
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)

        if arch.head.channels > 0:
            self.conv_head = create_conv2d(channels, arch.head.channels, 1)
            self.bn2 = nn.BatchNorm2d(arch.head.channels)
            self.act2 = create_act(arch.head.act)
            channels = arch.head.channels
        else:
            self.conv_head = nn.Identity()
            self.bn2 = nn.Identity()
            self.act2 = nn.Identity()
        self.num_features = channels

        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(channels, num_classes)

        for name, module in self.named_modules():
            if hasattr(type(module), "layer_name"):
                module.layer_name = name  # named in padding errors
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, blocks and head conv: the (N, num_features, H', W') map before pooling."""
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return self.act2(self.bn2(self.conv_head(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.global_pool(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def extra_repr(self) -> str:
        return f"arch={str(self.arch)!r}"


def init_weights(model: nn.Module) -> None:
    """timm's EfficientNet ('goog') init: conv N(0, sqrt(2/fan_out)), BN 1/0, linear U(+-1/sqrt(out))."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.weight.size(0))
            nn.init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise NasInputError(f"build: {name} must be a positive integer, got {value!r}")
    return value


def build(
    arch: Arch | str, num_classes: int, in_chans: int, drop_rate: float = 0.0, impl: str = "auto"
) -> nn.Module:
    """The ``nn.Module`` an architecture describes.

    Args:
        arch: an :class:`Arch` or its genotype string (parsed strictly with ``Arch.parse``).
        num_classes: outputs of the classifier.
        in_chans: input image channels.
        drop_rate: dropout before the classifier.
        impl: MixConv2d implementation, ``auto`` (per device type), ``split`` or ``padded``.
    """
    if isinstance(arch, str):
        arch = Arch.parse(arch)
    elif not isinstance(arch, Arch):
        raise NasInputError(f"build: expected an Arch or a genotype string, got {type(arch).__name__}")
    _positive_int("num_classes", num_classes)
    _positive_int("in_chans", in_chans)
    if not 0.0 <= float(drop_rate) < 1.0:
        raise NasInputError(f"build: drop_rate must be in [0, 1), got {drop_rate!r}")
    if impl not in IMPLS:
        raise NasInputError(f"build: unknown impl {impl!r}; expected one of {', '.join(IMPLS)}")
    return NasNet(arch, num_classes, in_chans, float(drop_rate), impl)


__all__ = ["NasNet", "build", "init_weights"]
