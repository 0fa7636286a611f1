"""Folding each batch norm into the conv before it, for inference.

In eval mode a batch norm is a per-channel affine map, ``y * scale + shift`` with
``scale = gamma / sqrt(running_var + eps)`` and ``shift = beta - running_mean * scale``. Folded,
the conv's weights are multiplied by ``scale`` and ``shift`` becomes its bias: the same
function without the batch norm's pass over the activations, which costs a quarter of an
evaluation on a CPU (BENCHMARKS.md, "Folded batch norms"). Where the bias goes is each conv's
own rule: ``nn.Conv2d`` adds it inside the conv, :class:`~nas.layers.padding.PartialConv2d`
after the partial ratio, and a :class:`~nas.layers.mixconv.MixConv2d` gives each channel group
its slice.

A module says which of its convs each of its batch norms follows with a ``conv_bn_pairs``
class attribute of ``(conv attribute, batch norm attribute)`` pairs (the blocks and the
network do); nothing is inferred from the forward. Folding is for inference only: the
folded network has no batch norm left to train or recalibrate.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nas.layers.mixconv import MixConv2d


@torch.no_grad()
def fold_conv(conv: nn.Module, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """Make ``conv`` compute ``conv(x) * scale + shift`` per output channel, in place."""
    if isinstance(conv, MixConv2d):
        start = 0
        for group, width in zip(conv.convs, conv.out_splits):
            fold_conv(group, scale[start : start + width], shift[start : start + width])
            start += width
        return
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"cannot fold a batch norm into {type(conv).__name__}")
    conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.dim() - 1))).to(conv.weight))
    bias = shift if conv.bias is None else conv.bias * scale + shift
    conv.bias = nn.Parameter(bias.to(conv.weight), requires_grad=conv.weight.requires_grad)


def bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of ``bn`` in eval mode."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every batch norm a module's ``conv_bn_pairs`` names into its conv (in place; the
    batch norm becomes ``nn.Identity``); returns ``model`` in eval mode. Outputs equal the
    unfolded eval-mode model's within float rounding."""
    model.eval()
    for module in list(model.modules()):
        for conv_name, bn_name in getattr(type(module), "conv_bn_pairs", ()):
            bn = getattr(module, bn_name)
            if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
                continue  # e.g. a network without a head conv: both are nn.Identity
            if bn.running_mean is None:
                raise ValueError(f"{bn_name} of {type(module).__name__} keeps no running statistics: nothing to fold")
            fold_conv(getattr(module, conv_name), *bn_affine(bn))
            setattr(module, bn_name, nn.Identity())
    return model


__all__ = ["bn_affine", "fold_batchnorm", "fold_conv"]
