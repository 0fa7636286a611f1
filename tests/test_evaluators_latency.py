"""evaluators.latency: sane positive numbers, a much bigger model is slower, state restored."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from evaluators.latency import Latency, measure_latencies, measure_latency
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


def test_a_figure_settles_over_rounds_and_carries_its_spread():
    model = build("stem c8 s1 | ds k3 c8 | head c0", num_classes=10, in_chans=1)
    lat = measure_latency(model, (1, 28, 28), warmup=3, repeats=20, threads=1, max_rounds=12, tolerance=0.5)
    assert 3 <= lat.rounds <= 12 and lat.repeats == 3 * 20
    assert lat.spread >= 0 and ("unstable" in lat.describe()) != lat.stable
    one = measure_latency(model, (1, 28, 28), warmup=1, repeats=5, threads=1)
    assert one.rounds == 1 and one.repeats == 5


def test_a_figure_that_does_not_settle_is_flagged():
    """A model whose passes alternate 1x and 30x in time: no two rounds' medians agree within 1 %."""
    import time as _time

    class Jittery(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            _time.sleep(0.0001 if (self.calls // 7) % 2 else 0.003)
            return x

    lat = measure_latency(Jittery(), (1, 2, 2), warmup=0, repeats=5, threads=1, max_rounds=4, tolerance=0.01)
    assert not lat.stable and lat.rounds == 4 and lat.describe().endswith("(unstable)")


def test_a_figure_taken_while_another_process_burns_cpu_is_flagged():
    """A steady load shows in no spread: the other processes' CPU is what flags it."""
    import subprocess
    import sys

    model = build("stem c8 s1 | ds k3 c8 | head c0", num_classes=10, in_chans=1)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        lat = measure_latency(model, (1, 28, 28), warmup=3, repeats=200, threads=1, max_rounds=3, tolerance=1.0)
    finally:
        burner.kill()
        burner.wait()
    if lat.others_cpu is None:
        pytest.skip("no /proc/stat here")
    assert lat.others_cpu > 0.5 and not lat.stable, lat


def test_models_timed_in_the_same_rounds_carry_their_ratio_to_the_baseline():
    tiny = build(TINY, num_classes=10, in_chans=1).train()
    big = build(BIG, num_classes=10, in_chans=1).eval()
    lats = measure_latencies({"tiny": tiny, "big": big}, (1, 28, 28), baseline="tiny", warmup=2, repeats=10,
                             threads=1, max_rounds=8, tolerance=0.5)
    assert list(lats) == ["tiny", "big"] and lats["tiny"].rounds == lats["big"].rounds >= 3
    assert lats["tiny"].ratio == 1.0 and lats["tiny"].ratio_spread == 0.0
    assert lats["big"].baseline == "tiny" and lats["big"].ratio > 3, lats
    assert "x tiny" in lats["big"].describe()
    assert tiny.training and not big.training  # each model's own mode restored
    with pytest.raises(ValueError, match="baseline 'nope'"):
        measure_latencies({"tiny": tiny}, (1, 28, 28), baseline="nope")
    with pytest.raises(ValueError, match="at least one model"):
        measure_latencies({}, (1, 28, 28))


def test_a_slow_phase_of_the_machine_cancels_out_of_the_ratio():
    """Two models whose passes take 1 and 2 units while the 'machine' slows 3x every other pair of
    rounds: the medians move with the phase, the ratio of the shared rounds stays 2."""
    import time as _time

    clock = {"calls": 0}

    class Phased(torch.nn.Module):
        def __init__(self, units: int) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)
            self.units = units

        def forward(self, x):
            clock["calls"] += 1
            slow = 3 if (clock["calls"] // 40) % 2 else 1  # 20 calls a round: the phase flips every 2 rounds
            _time.sleep(0.002 * self.units * slow)
            return x

    lats = measure_latencies({"one": Phased(1), "two": Phased(2)}, (1, 2, 2), baseline="one", warmup=0,
                             repeats=10, threads=1, max_rounds=6, tolerance=0.01)
    assert lats["two"].rounds == 6 and not lats["two"].stable, "the medians never settle: the phase moves them"
    assert 1.7 < lats["two"].ratio < 2.3 and lats["two"].ratio_spread < 0.2, lats["two"]
