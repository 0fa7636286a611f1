"""evaluators.latency: sane positive numbers, a much bigger model is slower, state restored."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from evaluators.latency import Latency, measure_latency
from nas.builder import build

torch.set_num_threads(1)

TINY = "stem c8 s1 | ds k3 c8 | head c0"
BIG = "stem c32 s1 | ir k3.5.7 e6 c64, ir k3.5.7.9 e6 c64 r3 | ir k3.5.7 e6 c128 | head c512"


def test_latency_sane_and_state_restored():
    model = build(TINY, num_classes=10, in_chans=1).train()
    before = torch.get_num_threads()
    lat = measure_latency(model, (1, 28, 28), warmup=2, repeats=7, threads=2)
    assert isinstance(lat, Latency)
    assert 0 < lat.min_ms <= lat.median_ms <= lat.p90_ms
    assert lat.mean_ms > 0 and lat.repeats == 7 and lat.batch_size == 1 and lat.threads == 2
    assert float(lat) == lat.median_ms
    assert torch.get_num_threads() == before
    assert model.training


def test_batch_from_four_d_shape():
    model = build(TINY, num_classes=10, in_chans=1)
    assert measure_latency(model, (1, 1, 28, 28), warmup=0, repeats=2).batch_size == 1
    assert measure_latency(model, (3, 1, 28, 28), warmup=0, repeats=2).batch_size == 3
    with pytest.raises(ValueError):
        measure_latency(model, (3, 1, 28, 28), batch_size=2)
    with pytest.raises(ValueError):
        measure_latency(model, (28, 28))


def test_bigger_model_is_slower():
    tiny = build(TINY, num_classes=10, in_chans=1)
    big = build(BIG, num_classes=10, in_chans=1)
    t = measure_latency(tiny, (1, 28, 28), warmup=3, repeats=15, threads=1)
    b = measure_latency(big, (1, 28, 28), warmup=3, repeats=15, threads=1)
    assert b.median_ms > 3 * t.median_ms, (t, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_latency():
    model = nn.Conv2d(1, 4, 3)
    lat = measure_latency(model, (1, 28, 28), device="cuda", warmup=1, repeats=3)
    assert lat.median_ms > 0 and lat.device.startswith("cuda")
    assert next(model.parameters()).device.type == "cpu"
