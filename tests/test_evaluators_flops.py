"""evaluators.flops: every op of our models accounted for, exact counts on hand-computed nets,
MixNet-S/M/L within 3% of the paper's multiply-adds."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from evaluators.flops import (
    IGNORED_OPS,
    UnsupportedOpError,
    count_macs,
    flop_analysis,
    macs_by_module,
    macs_by_operator,
)
from nas.builder import build
from nas.space import builtin_names, load_space

try:
    from mixnet_reference import MIXNET_L, MIXNET_M, MIXNET_S
except ImportError:  # tests/ imported as a package
    from tests.mixnet_reference import MIXNET_L, MIXNET_M, MIXNET_S

torch.set_num_threads(1)

# Hand-written genotypes: every padding mode, dilation, down=max/avg, ds/ir, se, swish,
# exp split, grouped 1x1s, head c0 -- at 28x28x1 (the small-input default).
COVERAGE = [
    "stem c8 s1 act=swish | ds k3.5 c8 pad=reflect, ir k3 e2 c16 s2 d2 pad=circular down=max"
    " | ir k3.5.7 e3 c16 se0.25 split=exp pad=replicate, ir k3 e2 c24 s2 pad=partial down=avg act=swish"
    " | ir k3.5 e2 c24 g2.2 se0.5 pad=partial | head c0",
    "stem c16 | ds k3 c16 d2 pad=partial, ds k3.5.7 c24 s2 se0.5 pad=partial down=avg act=swish"
    " | ir k3.5 e6 c32 s2 d2 pad=reflect, ir k5 e3 c32 d2 pad=circular act=swish"
    " | ds k3 c48 s2 pad=replicate down=max, ir k3.5.7.9 e3 c48 g2.2 se0.25 split=exp | head c64 act=swish",
    "stem c8 s1 | ir k3 c8 pad=partial, ir k3.5 e2 c16 s2 pad=zeros | head c32",
]

PAPER_MMACS = {"s": 256, "m": 360, "l": 565}
MIXNETS = {"s": MIXNET_S, "m": MIXNET_M, "l": MIXNET_L}


# ------------------------------------------------------------------ exact counts


def test_hand_computed_conv_plus_linear():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.Flatten(1), nn.Linear(4 * 8 * 8, 10))
    # conv: every output (4 x 8 x 8) takes 1 * 3 * 3 multiply-adds; linear: 256 * 10 (bias not counted)
    assert count_macs(net, (1, 8, 8)) == 4 * 8 * 8 * 9 + 256 * 10


def test_hand_computed_conv_bn_relu_eval_convention():
    net = nn.Sequential(nn.Conv2d(2, 4, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    conv, bn, pool = 4 * 5 * 5 * 2, 2 * 4 * 5 * 5, 4 * 5 * 5  # bn eval: scale + shift per element
    net.train()
    assert count_macs(net, (2, 5, 5)) == conv + bn + pool
    assert net.training, "count_macs must restore the model's mode"


@pytest.mark.parametrize("pool", [nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(3, 2, 1, count_include_pad=False)])
def test_pool_handle_counts_window_per_output(pool):
    net = nn.Sequential(nn.Conv2d(1, 4, 1, bias=False), pool)
    ops = macs_by_operator(net, (1, 8, 8))
    assert ops[type(pool).__name__.lower().replace("pool2d", "_pool2d")] == 4 * 4 * 4 * 9
    assert ops["conv"] == 4 * 8 * 8


def test_global_pool_rule_agrees_with_window_rule():
    x_shape = (3, 6, 6)
    adaptive = count_macs(nn.Sequential(nn.Conv2d(3, 3, 1, bias=False), nn.AdaptiveAvgPool2d(1)), x_shape)
    windowed = count_macs(nn.Sequential(nn.Conv2d(3, 3, 1, bias=False), nn.AvgPool2d(6)), x_shape)
    assert adaptive == windowed


# ------------------------------------------------------------------ failing loudly


class _Tanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)

    def forward(self, x):
        return torch.tanh(self.conv(x))


class _Sum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)

    def forward(self, x):
        return self.conv(x).sum(dim=1)


@pytest.mark.parametrize("module, op", [(_Tanh(), "aten::tanh"), (_Sum(), "aten::sum")])
def test_unsupported_op_raises_naming_it(module, op):
    with pytest.raises(UnsupportedOpError, match=op):
        count_macs(module, (1, 4, 4))


def test_fvcore_default_ignores_are_replaced():
    # fvcore silently ignores aten::clamp (a ReLU6's op) by default; we have no reason for it here.
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU6())
    assert "aten::clamp" not in IGNORED_OPS
    with pytest.raises(UnsupportedOpError, match="aten::hardtanh|aten::clamp"):
        count_macs(net, (1, 4, 4))


def test_bad_input_shape():
    with pytest.raises(ValueError):
        count_macs(nn.Conv2d(1, 1, 1), (2, 1, 4, 4))
    with pytest.raises(ValueError):
        count_macs(nn.Conv2d(1, 1, 1), (4, 4))


def test_quiet(caplog, recwarn):
    count_macs(build(COVERAGE[0], num_classes=10, in_chans=1), (1, 28, 28))
    assert not [r for r in caplog.records if r.name.startswith("fvcore")]
    assert not [w for w in recwarn if "trac" in str(w.message).lower()]


# ------------------------------------------------------------------ our models


@pytest.mark.parametrize("impl", ["split", "padded"])
@pytest.mark.parametrize("genotype", COVERAGE)
def test_coverage_genotypes_fully_accounted(genotype, impl):
    model = build(genotype, num_classes=10, in_chans=1, impl=impl)
    analysis = flop_analysis(model, (1, 28, 28))
    assert not analysis.unsupported_ops()
    total = analysis.total()
    assert total > 0
    assert set(analysis.by_operator()) <= {"conv", "batch_norm", "linear", "adaptive_avg_pool2d", "max_pool2d", "avg_pool2d"}
    by_module = macs_by_module(model, (1, 28, 28), max_depth=1)
    assert by_module[""] == total
    assert sum(n for name, n in by_module.items() if name) == total


def test_count_is_stable_across_calls_and_caches():
    model = build(COVERAGE[0], num_classes=10, in_chans=1)
    first = count_macs(model, (1, 28, 28))
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))  # partial-padding ratio caches warm
    assert count_macs(model, (1, 28, 28)) == first


def test_split_impl_counts_each_group_at_its_kernel():
    g = "stem c8 s1 | ir k3.5.7 e3 c8 | head c0"
    split = macs_by_operator(build(g, 10, 1, impl="split"), (1, 12, 12))["conv"]
    padded = macs_by_operator(build(g, 10, 1, impl="padded"), (1, 12, 12))["conv"]
    mid = 24  # 8, 8, 8 channels at kernels 3, 5, 7
    dw_split = 12 * 12 * 8 * (9 + 25 + 49)
    dw_padded = 12 * 12 * mid * 49
    assert padded - split == dw_padded - dw_split


def _space_archs():
    params = []
    for name in builtin_names():
        space = load_space(name)
        seeds = [0] if space.size() == 1 else [0, 1, 2, 3]
        params += [pytest.param(name, seed, id=f"{name}-{seed}") for seed in seeds]
    return params


@pytest.mark.parametrize("name, seed", _space_archs())
def test_builtin_space_samples_fully_accounted(name, seed):
    space = load_space(name)
    arch = space.sample(seed)
    model = build(arch, num_classes=10, in_chans=space.input_channels)
    assert count_macs(model, (space.input_channels, *space.input_size)) > 0


@pytest.mark.parametrize("name", ["s", "m", "l"])
def test_mixnet_macs_match_paper(name):
    model = build(MIXNETS[name], num_classes=1000, in_chans=3)
    macs = count_macs(model, (3, 224, 224))
    assert abs(macs / 1e6 - PAPER_MMACS[name]) / PAPER_MMACS[name] < 0.03

