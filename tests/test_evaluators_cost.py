"""evaluators.cost / evaluators.params: cached MFLOPs + params, and the training-memory estimate."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.profiler import ProfilerActivity, profile

from evaluators.cost import (
    Cost,
    activation_elements,
    clear_cache,
    estimate_train_memory_bytes,
    measure_cost,
)
from evaluators.flops import count_macs
from evaluators.params import count_params
from nas.builder import build
from nas.errors import NasInputError
from nas.genotype import Arch

try:
    from mixnet_reference import MIXNET_S
except ImportError:  # tests/ imported as a package
    from tests.mixnet_reference import MIXNET_S

torch.set_num_threads(1)

SMALL = "stem c16 s1 | ds k3 c16, ir k3.5 e3 c24 s2 se0.25 | ir k3.5.7 e6 c40 s2 act=swish | head c128"
WIDE = "stem c32 s1 | ds k3 c32, ir k3.5 e3 c48 s2 se0.25 | ir k3.5.7 e6 c80 s2 act=swish | head c128"


def test_count_params_trainable_only():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    assert count_params(net) == 4 * 9 + 4 + 4 + 4 + 8 + 2
    net[0].weight.requires_grad_(False)
    assert count_params(net) == 4 + 4 + 4 + 8 + 2
    assert count_params(net, trainable_only=False) == 4 * 9 + 4 + 4 + 4 + 8 + 2


def test_measure_cost_matches_evaluators_and_caches():
    clear_cache()
    cost = measure_cost(SMALL, 1, 28, 10)
    assert isinstance(cost, Cost)
    model = build(SMALL, num_classes=10, in_chans=1)
    assert cost.mflops == count_macs(model, (1, 28, 28)) / 1e6
    assert cost.params == count_params(model)
    # same key however the arch is given (string, non-canonical string, Arch, (H, W))
    assert measure_cost(Arch.parse(SMALL), 1, (28, 28), 10) is cost
    assert measure_cost(SMALL.replace(" | ", "|"), 1, 28, 10) is cost
    assert measure_cost(SMALL, 1, 32, 10) != cost


def test_measure_cost_mixnet_s():
    cost = measure_cost(MIXNET_S, 3, 224, 1000)
    assert cost.params == 4_134_606  # timm's mixnet_s
    assert abs(cost.mflops - 256) / 256 < 0.03


def test_measure_cost_bad_input():
    with pytest.raises(NasInputError):
        measure_cost("stem c8 | bogus | head c0", 1, 28, 10)
    with pytest.raises(NasInputError):
        measure_cost(SMALL, 1, (28,), 10)
    with pytest.raises(NasInputError):  # reflect padding wider than the 1x1 map
        measure_cost("stem c8 | ir k3.5.7 e2 c8 s2 pad=reflect | head c0", 1, 2, 10)


def test_activation_elements_counts_distinct_outputs():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.ReLU(inplace=True), nn.Flatten(1))
    # input 1*8*8 + conv output 4*8*8; ReLU in place and Flatten's view share the conv's storage
    assert activation_elements(net, (1, 8, 8)) == 64 + 256


def test_estimate_grows_with_batch_and_width():
    b8 = estimate_train_memory_bytes(SMALL, 1, 28, 10, 8)
    b64 = estimate_train_memory_bytes(SMALL, 1, 28, 10, 64)
    wide = estimate_train_memory_bytes(WIDE, 1, 28, 10, 64)
    assert 0 < b8 < b64 < wide
    with pytest.raises(NasInputError):
        estimate_train_memory_bytes(SMALL, 1, 28, 10, 0)


def _profiled_peak_bytes(genotype: str, batch: int) -> int:
    """Peak bytes of one AdamW training step on CPU: resident weights + optimizer state + input,
    plus the highest running sum of the allocator's (de)allocations the profiler records."""
    torch.manual_seed(0)
    model = build(genotype, num_classes=10, in_chans=1)
    opt = torch.optim.AdamW(model.parameters())
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # optimizer state exists from here on
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    running = peak = 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    resident = count_params(model) * 4 * 3 + x.numel() * 4
    return peak + resident


@pytest.mark.parametrize("genotype", [SMALL, WIDE])
def test_estimate_is_conservative_within_3x_of_profiled_peak(genotype):
    real = _profiled_peak_bytes(genotype, 64)
    est = estimate_train_memory_bytes(genotype, 1, 28, 10, 64)
    assert real <= est <= 3 * real, (est / real, real)
