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

from nas.blocks import DepthwiseSeparable, InvertedResidual
from nas.construct import Call
from nas.errors import NasInputError
from nas.genotype import Arch, Block
from nas.layers.activations import create_act
from nas.layers.factory import conv2d_call
from nas.layers.mixconv import IMPLS
from nas.layers.padding import name_layers
from nas.layers.squeeze_excite import se_channels


def block_call(block: Block, in_chs: int, impl: str = "auto") -> Call:
    """The constructor call of one genotype block given its input channels.

    Names follow timm's blocks: ``in_chs``, ``mid_chs``, ``out_chs``, ``se_chs``. The convs
    are decided here (by :func:`nas.layers.factory.conv2d_call`) and handed to the block.
    """
    b = block
    pooled = b.downsample != "conv" and b.stride > 1
    dw_stride = 1 if pooled else b.stride
    tail = dict(stride=b.stride, down=b.downsample if pooled else "conv", act=b.act,
                se_chs=se_channels(in_chs, b.se) if b.se > 0 else 0)

    def mixconv(chs: int) -> Call:
        return conv2d_call(chs, chs, list(b.kernels), stride=dw_stride, dilation=b.dilation, depthwise=True,
                           padding_mode=b.padding, partition=b.partition, impl=impl)

    g_expand, g_project = b.pw_groups
    if b.kind == "ir":
        mid = b.mid_channels(in_chs)
        convs = dict(conv_pw=conv2d_call(in_chs, mid, 1, groups=g_expand), conv_dw=mixconv(mid),
                     conv_pwl=conv2d_call(mid, b.out_channels, 1, groups=g_project))
        return Call(InvertedResidual, (in_chs, mid, b.out_channels), dict(convs, **tail), comment=str(b))
    if b.kind == "ds":
        convs = dict(conv_dw=mixconv(in_chs), conv_pw=conv2d_call(in_chs, b.out_channels, 1, groups=g_project))
        return Call(DepthwiseSeparable, (in_chs, b.out_channels), dict(convs, **tail), comment=str(b))
    raise NasInputError(f"block {b}: unknown block kind {b.kind!r}; expected ir or ds")


def create_block(block: Block, in_chs: int, impl: str = "auto") -> nn.Module:
    """The module for one genotype block given its input channels."""
    return block_call(block, in_chs, impl).build()


def net_calls(arch: Arch, num_classes: int, in_chans: int, drop_rate: float = 0.0, impl: str = "auto") -> dict[str, Call]:
    """Every top-level module of the network, by attribute name, in registration order."""
    stem, head = arch.stem, arch.head
    calls = {
        "conv_stem": conv2d_call(in_chans, stem.channels, 3, stride=stem.stride),
        "bn1": Call(nn.BatchNorm2d, (stem.channels,)),
        "act1": Call(create_act, (stem.act,)),
    }
    chs = stem.channels
    stages = []
    for i, stage in enumerate(arch.stages, 1):
        blocks = []
        for block in stage:
            blocks.append(block_call(block, chs, impl))
            chs = block.out_channels
        stages.append(Call(nn.Sequential, tuple(blocks), comment=f"stage {i}"))
    calls["blocks"] = Call(nn.Sequential, tuple(stages))
    if head.channels > 0:
        calls["conv_head"] = conv2d_call(chs, head.channels, 1)
        calls["bn2"] = Call(nn.BatchNorm2d, (head.channels,))
        calls["act2"] = Call(create_act, (head.act,))
        chs = head.channels
    else:
        calls.update(conv_head=Call(nn.Identity), bn2=Call(nn.Identity), act2=Call(nn.Identity))
    calls["global_pool"] = Call(nn.Sequential, (Call(nn.AdaptiveAvgPool2d, (1,)), Call(nn.Flatten, (1,))))
    calls["dropout"] = Call(nn.Dropout, (drop_rate,))
    calls["classifier"] = Call(nn.Linear, (chs, num_classes))
    return calls


def num_features(arch: Arch) -> int:
    """Channels of the feature map before pooling: the head conv's, or the last block's (``head c0``)."""
    if arch.head.channels > 0:
        return arch.head.channels
    blocks = list(arch.blocks())
    return blocks[-1].out_channels if blocks else arch.stem.channels


class NasNet(nn.Module):
    """A network built from an :class:`Arch`; ``self.arch`` is that Arch.

    Its modules are :func:`net_calls` built, in that order; an exported ``model.py`` writes
    the same calls out and carries this class's ``forward*`` methods verbatim.
    """

    #: Which conv each batch norm follows (:func:`nas.layers.fold.fold_batchnorm`).
    conv_bn_pairs = (("conv_stem", "bn1"), ("conv_head", "bn2"))

    def __init__(self, arch: Arch, num_classes: int, in_chans: int, drop_rate: float = 0.0, impl: str = "auto") -> None:
        super().__init__()
        self.arch = arch
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        for name, call in net_calls(arch, num_classes, in_chans, drop_rate, impl).items():
            setattr(self, name, call.build())
        self.num_features = num_features(arch)
        name_layers(self)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, blocks and head conv: the (N, num_features, H', W') map before pooling."""
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return self.act2(self.bn2(self.conv_head(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Pool, dropout, classifier: features -> logits."""
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
    arch: Arch | str, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, impl: str = "auto"
) -> nn.Module:
    """The ``nn.Module`` an architecture describes (this is ``nas.build``).

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


__all__ = ["NasNet", "block_call", "build", "create_block", "init_weights", "net_calls", "num_features"]
