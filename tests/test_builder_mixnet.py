"""MixNet-S/M/L parity with timm: exact parameter counts, and the paper's within 2%."""

from __future__ import annotations

import pytest
import torch

from nas.builder import build
from nas.genotype import Arch

try:
    from mixnet_reference import MIXNET_L, MIXNET_M, MIXNET_S, PAPER_PARAMS_M
except ImportError:  # tests/ imported as a package
    from tests.mixnet_reference import MIXNET_L, MIXNET_M, MIXNET_S, PAPER_PARAMS_M

torch.set_num_threads(1)

GENOTYPES = {"s": MIXNET_S, "m": MIXNET_M, "l": MIXNET_L}
# timm's mixnet_s / mixnet_m / mixnet_l (EfficientNet, 1000 classes): sum of parameter numels.
TIMM_PARAMS = {"s": 4_134_606, "m": 5_014_382, "l": 7_329_252}


@pytest.mark.parametrize("name", ["s", "m", "l"])
def test_reference_strings_are_canonical(name):
    assert str(Arch.parse(GENOTYPES[name])) == GENOTYPES[name]


@pytest.mark.parametrize("name", ["s", "m", "l"])
def test_mixnet_params_match_timm_and_paper(name):
    model = build(GENOTYPES[name], num_classes=1000, in_chans=3)
    params = sum(p.numel() for p in model.parameters())
    assert params == TIMM_PARAMS[name]
    assert abs(params / 1e6 - PAPER_PARAMS_M[name]) / PAPER_PARAMS_M[name] < 0.02


def test_mixnet_s_structure_224():
    model = build(MIXNET_S, num_classes=1000, in_chans=3).eval()
    assert [len(stage) for stage in model.blocks] == [1, 2, 4, 3, 3, 3]
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 224, 224))
    assert feats.shape == (1, 1536, 7, 7)


@pytest.mark.parametrize("name", ["s", "m", "l"])
def test_mixnet_small_input_trains(name):
    model = build(GENOTYPES[name], num_classes=10, in_chans=1)
    out = model(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10)
    out.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
