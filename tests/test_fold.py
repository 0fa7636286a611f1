"""nas.layers.fold: batch norms folded into the convs before them compute the same function."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn

import nas
from nas.genotype import split_channels
from nas.layers import MixConv2d, PartialConv2d, fold_batchnorm
from nas.layers.fold import bn_affine, fold_conv
from nas.layers.padding import partial_ratio

torch.set_num_threads(1)
PADS = ("zeros", "reflect", "replicate", "circular", "partial")


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norms with statistics and affine parameters far from the identity, as trained ones are."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                n = bn.num_features
                bn.running_mean.copy_(torch.randn(n, generator=g))
                bn.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
                bn.weight.copy_(torch.randn(n, generator=g))
                bn.bias.copy_(torch.randn(n, generator=g))
    return model.eval()


def test_partial_conv_bias_comes_after_the_ratio_as_in_nvidias_reference():
    """NVIDIA's PartialConv2d: (raw - bias) * ratio + bias, the bias not re-weighted."""
    torch.manual_seed(0)
    conv = PartialConv2d(4, 6, 5, padding=2, bias=True)
    x = torch.randn(2, 4, 9, 8)
    raw = nn.functional.conv2d(x, conv.weight, conv.bias, padding=2)
    bias = conv.bias.view(1, -1, 1, 1)
    expected = (raw - bias) * partial_ratio(9, 8, 5)[None, None].float() + bias
    assert torch.allclose(conv(x), expected, atol=1e-5)
    unpadded = PartialConv2d(4, 6, 1, bias=True)
    assert torch.allclose(unpadded(x), nn.functional.conv2d(x, unpadded.weight, unpadded.bias), atol=1e-6)


@pytest.mark.parametrize("pad,impl,dilation,stride", list(itertools.product(PADS, ("split", "padded"), (1, 2), (1, 2))))
def test_a_mixconv_with_its_batch_norm_folded_computes_the_same(pad, impl, dilation, stride):
    torch.manual_seed(0)
    splits = split_channels(30, 4, "exp")
    conv = MixConv2d(splits, splits, (3, 5, 7, 9), stride=stride, dilation=dilation, padding_mode=pad, impl=impl)
    bn = randomize_norms(nn.BatchNorm2d(30))
    x = torch.randn(2, 30, 19, 20)
    with torch.no_grad():
        expected = bn(conv(x))
        fold_conv(conv, *bn_affine(bn))
        folded = conv(x)
        other = conv.forward_split(x) if impl == "padded" else conv.forward_padded(x)
    assert torch.allclose(folded, expected, atol=1e-4, rtol=1e-4)
    assert torch.allclose(other, expected, atol=1e-4, rtol=1e-4), "both implementations carry the folded bias"


GENOTYPES = [
    # every padding mode, both block kinds, SE, swish, exponential split, dilation, pooled downsampling
    "stem c16 s1 | ds k3.5.7 c8 se0.25 split=exp pad=partial | ir k3.5.7.9 e6 c24 s2 pad=reflect act=swish"
    " | ir k3.5 e3 c40 s2 se0.25 pad=circular, ir k3 e3 c40 d2 pad=replicate | head c256",
    # no head conv (its batch norm is nn.Identity), grouped 1x1 convs, max-pool downsampling
    "stem c16 s1 | ir k3.5.7 e3 c24 s2 down=max pad=partial, ir k3 e6 c24 g2.2 | ir k3.5 e6 c40 s2 split=exp | head c0",
]


@pytest.mark.parametrize("genotype", GENOTYPES)
@pytest.mark.parametrize("impl", ["split", "padded"])
def test_a_folded_network_has_no_batch_norm_left_and_the_same_logits(genotype, impl):
    model = randomize_norms(nas.build(genotype, num_classes=10, in_chans=1, impl=impl))
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batchnorm(model)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        got = folded(x)
        got_cl = folded.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    scale = expected.abs().max()
    assert torch.allclose(got, expected, atol=1e-4 * scale, rtol=1e-4)
    assert torch.allclose(got_cl, expected, atol=1e-4 * scale, rtol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_every_batch_norm_of_a_built_network_is_named_by_a_conv_bn_pair():
    """A block that forgot to declare a pair would keep its batch norm (slower, still right):
    the pairs must cover every batch norm the builder makes."""
    for genotype in GENOTYPES:
        model = nas.build(genotype, num_classes=10, in_chans=1)
        declared = {id(getattr(m, bn)) for m in model.modules() for _, bn in getattr(type(m), "conv_bn_pairs", ())}
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert norms and all(id(bn) in declared for bn in norms)


def test_folding_a_batch_norm_into_something_else_is_refused():
    with pytest.raises(TypeError, match="Linear"):
        fold_conv(nn.Linear(3, 3), torch.ones(3), torch.zeros(3))
