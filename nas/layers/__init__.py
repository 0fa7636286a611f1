"""Small layers, one idea each: padding modes, MixConv2d, activations, squeeze-excite, conv factory,
and folding batch norms into convs for inference.

``padding``, ``mixconv``, ``activations`` and ``squeeze_excite`` import only torch, the stdlib,
:mod:`nas.errors` and each other: an exported ``model.py`` carries their source verbatim.
``factory`` is the engine's side (it applies the genotype's channel split).
"""

from nas.layers.activations import ACTIVATION_LAYERS, create_act, get_act_layer
from nas.layers.factory import conv2d_call, create_conv2d
from nas.layers.fold import fold_batchnorm
from nas.layers.mixconv import AUTO_IMPL, IMPLS, MixConv2d, resolve_impl
from nas.layers.padding import (
    PADDING_MODES,
    PaddedConv2d,
    PartialConv2d,
    RatioCache,
    check_border_padding,
    name_layers,
    partial_ratio,
    same_padding,
)
from nas.layers.squeeze_excite import SqueezeExcite, se_channels

__all__ = [
    "ACTIVATION_LAYERS",
    "AUTO_IMPL",
    "IMPLS",
    "MixConv2d",
    "PADDING_MODES",
    "PaddedConv2d",
    "PartialConv2d",
    "RatioCache",
    "SqueezeExcite",
    "check_border_padding",
    "conv2d_call",
    "create_act",
    "create_conv2d",
    "fold_batchnorm",
    "get_act_layer",
    "name_layers",
    "partial_ratio",
    "resolve_impl",
    "same_padding",
    "se_channels",
]
