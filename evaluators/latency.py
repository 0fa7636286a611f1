"""Measured inference latency of a model: eval mode, no autograd, warm-up, median and p90.

Timing is wall-clock (``time.perf_counter``) around each forward pass; on CUDA the device
is synchronized before starting and after finishing each pass so the time covers the
kernels, not just their launch. The model's train/eval mode, its device and the torch
thread count are restored afterwards.

A figure is only worth what the machine lets it be: on a shared machine one pass in a
round may take 10x another. So passes are timed in rounds until the medians of the last
:data:`SETTLE_ROUNDS` rounds agree within ``tolerance`` (or ``max_rounds`` is reached), and
the result carries its spread (the interquartile range over the median) and ``stable``:
the rounds settled, the spread is at most :data:`MAX_SPREAD` and other processes used at
most :data:`MAX_OTHERS_CPU` cores meanwhile. A caller shows an unstable figure as such
rather than as a measurement.

The last condition is there because a steady load is invisible in the spread: with the other
core of this 2-core machine busy, the same networks timed 1.7x slower in tight, settled
rounds (BENCHMARKS.md, "Latency you can trust"). The CPU that other processes used is read
from ``/proc/stat`` around the measurement (Linux; elsewhere it is not checked).

Even settled figures taken in runs one after another disagree on a VM whose host load is
invisible from inside (one network read 1.75 ms in one quiet run and 3.21 ms in the next).
:func:`measure_latencies` therefore times several models *in the same rounds*, round-robin,
so a slow phase of the machine hits all of them alike, and reports each as a ratio to a
baseline model timed alongside: the median over rounds of (its round median / the
baseline's round median in that round). The ratio is what compares networks across runs.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch
import torch.nn as nn

#: Rounds whose medians must agree for the figure to count as settled.
SETTLE_ROUNDS = 3
#: Widest interquartile range, relative to the median, of a stable figure.
MAX_SPREAD = 0.25
#: Most CPU (in cores, averaged over the measurement) other processes may use beside a stable figure.
MAX_OTHERS_CPU = 0.25


@dataclass(frozen=True)
class Latency:
    """Per-forward-pass wall time in milliseconds over ``repeats`` timed passes."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    repeats: int
    batch_size: int
    device: str
    threads: int
    spread: float = 0.0  # (p75 - p25) / median of the timed passes
    rounds: int = 1
    stable: bool = True  # settled, spread <= MAX_SPREAD, others' CPU <= MAX_OTHERS_CPU
    others_cpu: float | None = None  # cores other processes used meanwhile (None: not known)
    baseline: str | None = None  # the model timed in the same rounds that ``ratio`` divides by
    ratio: float | None = None  # median over rounds of this round median / the baseline's
    ratio_spread: float | None = None  # (p75 - p25) / median of those per-round ratios

    def __float__(self) -> float:
        return self.median_ms

    def describe(self) -> str:
        """``0.782 ms ±6%`` or ``12.8 ms ±140% (unstable)``."""
        text = f"{self.median_ms:.3g} ms ±{100 * self.spread:.0f}%"
        if self.ratio is not None:
            text += f", {self.ratio:.2f}x {self.baseline} ±{100 * (self.ratio_spread or 0.0):.0f}%"
        return text if self.stable else text + " (unstable)"


class _OthersCpu:
    """Cores that processes other than this one used between :meth:`__init__` and :meth:`cores`
    (``/proc/stat`` busy time minus this process's own CPU time); None where unreadable."""

    def __init__(self) -> None:
        self.start = (_machine_busy_s(), time.process_time(), time.perf_counter())

    def cores(self) -> float | None:
        busy, own, wall = _machine_busy_s(), time.process_time(), time.perf_counter()
        if busy is None or self.start[0] is None or wall <= self.start[2]:
            return None
        others = (busy - self.start[0]) - (own - self.start[1])
        return max(0.0, others / (wall - self.start[2]))


def _machine_busy_s() -> float | None:
    """CPU seconds all processes have been busy since boot (``/proc/stat``; None elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        import os

        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    values = [int(v) for v in fields[1:9]]
    return (sum(values) - values[3] - values[4]) / ticks


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of already sorted values."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@contextmanager
def _threads(n: int | None) -> Iterator[int]:
    previous = torch.get_num_threads()
    if n is not None:
        if n < 1:
            raise ValueError(f"threads must be >= 1, got {n}")
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    warmup: int = 10,
    repeats: int = 50,
    threads: int | None = None,
    max_rounds: int = 1,
    tolerance: float = 0.05,
) -> Latency:
    """Time rounds of ``repeats`` forward passes after ``warmup`` untimed ones.

    Args:
        model: the module; moved to ``device`` for the measurement and moved back after.
        input_shape: ``(C, H, W)`` of one input, or ``(N, C, H, W)`` (then N is the batch size).
        batch_size: inputs per forward pass (1: the latency of one image).
        device: ``cpu``, ``cuda``, ``cuda:1``, ...
        warmup: untimed passes first (allocator, caches, cuDNN autotuning).
        repeats: timed passes; median and p90 are over these.
        threads: torch intra-op threads during the measurement (``None``: leave as is);
            the previous setting is restored afterwards.
        max_rounds: at most this many rounds; more than one: stop once the medians of the
            last SETTLE_ROUNDS rounds are within ``tolerance`` of each other. Median, p90
            and spread are over the passes of those last rounds.
    """
    return measure_latencies({"model": model}, input_shape, batch_size=batch_size, device=device, warmup=warmup,
                             repeats=repeats, threads=threads, max_rounds=max_rounds, tolerance=tolerance)["model"]


def measure_latencies(
    models: Mapping[str, nn.Module],
    input_shape: Sequence[int],
    *,
    baseline: str | None = None,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    warmup: int = 10,
    repeats: int = 50,
    threads: int | None = None,
    max_rounds: int = 1,
    tolerance: float = 0.05,
) -> dict[str, Latency]:
    """Time several models in the same rounds, round-robin: each round times ``repeats`` passes
    of every model in turn (the order rotates from round to round), so a slow phase of the
    machine lands on all of them. Rounds go on until every model's last SETTLE_ROUNDS round
    medians agree within ``tolerance`` (or ``max_rounds``). The arguments are those of
    :func:`measure_latency`; ``baseline`` names one of ``models``: each figure then carries its
    ``ratio`` to it (the median of the per-round ratios of round medians) and that ratio's
    spread. Returns a :class:`Latency` per name, in the order of ``models``."""
    if not models:
        raise ValueError("measure_latencies needs at least one model")
    if baseline is not None and baseline not in models:
        raise ValueError(f"baseline {baseline!r} is not one of the models: {', '.join(models)}")
    batch_size, shape = _batch_and_shape(input_shape, batch_size, repeats, warmup)
    device = torch.device(device)
    names = list(models)
    homes, modes, inputs = {}, {}, {}
    with _threads(threads) as n_threads:
        try:
            for name, model in models.items():
                param = next(iter(model.parameters()), None)
                homes[name] = param.device if param is not None else torch.device("cpu")
                dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
                modes[name] = {m: m.training for m in model.modules()}
                model.to(device).eval()
                inputs[name] = torch.randn((batch_size,) + shape, device=device, dtype=dtype)
            others = _OthersCpu()
            rounds, settled = _settled_rounds(models, inputs, warmup, repeats, max_rounds, tolerance)
            others_cpu = others.cores()
        finally:
            for name, model in models.items():
                if name in homes:
                    model.to(homes[name])
                for m, training in modes.get(name, {}).items():
                    m.training = training
    stable_machine = others_cpu is None or others_cpu <= MAX_OTHERS_CPU
    out = {}
    for name in names:
        times = sorted(t for r in rounds[-SETTLE_ROUNDS:] for t in r[name])
        median = statistics.median(times)
        spread = (_percentile(times, 0.75) - _percentile(times, 0.25)) / median if median > 0 else 0.0
        ratio = ratio_spread = None
        if baseline is not None:
            per_round = sorted(statistics.median(r[name]) / statistics.median(r[baseline]) for r in rounds)
            ratio = statistics.median(per_round)
            ratio_spread = (_percentile(per_round, 0.75) - _percentile(per_round, 0.25)) / ratio if ratio > 0 else 0.0
        out[name] = Latency(
            median_ms=median, p90_ms=_percentile(times, 0.9), mean_ms=statistics.fmean(times), min_ms=times[0],
            repeats=len(times), batch_size=batch_size, device=str(device), threads=n_threads, spread=spread,
            rounds=len(rounds), stable=settled and spread <= MAX_SPREAD and stable_machine, others_cpu=others_cpu,
            baseline=baseline, ratio=ratio, ratio_spread=ratio_spread,
        )
    return out


def _settled_rounds(models: Mapping[str, nn.Module], inputs: dict[str, torch.Tensor], warmup: int, repeats: int,
                    max_rounds: int, tolerance: float) -> tuple[list[dict[str, list[float]]], bool]:
    """(every round's times per model, whether the last SETTLE_ROUNDS rounds' medians settled
    for every model). One round (max_rounds <= 1) counts as settled."""
    names = list(models)
    for name in names:  # warm every model up before the first timed round
        _time_passes(models[name], inputs[name], warmup, 0)
    rounds: list[dict[str, list[float]]] = []
    while len(rounds) < max(1, max_rounds):
        start = len(rounds) % len(names)
        rounds.append({name: _time_passes(models[name], inputs[name], 0, repeats)
                       for name in names[start:] + names[:start]})
        if max_rounds <= 1:
            return rounds, True
        last = rounds[-SETTLE_ROUNDS:]
        if len(last) == SETTLE_ROUNDS and all(_agree([statistics.median(r[n]) for r in last], tolerance) for n in names):
            return rounds, True
    return rounds, False


def _agree(medians: list[float], tolerance: float) -> bool:
    return max(medians) - min(medians) <= tolerance * min(medians)


def _batch_and_shape(
    input_shape: Sequence[int], batch_size: int, repeats: int, warmup: int
) -> tuple[int, tuple[int, ...]]:
    """(batch size, (C, H, W)) from ``input_shape`` (C, H, W) or (N, C, H, W); ValueError if inconsistent."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 4:  # (N, C, H, W): N is the batch size
        if batch_size not in (1, shape[0]):
            raise ValueError(f"input_shape {shape} says batch {shape[0]} but batch_size is {batch_size}")
        batch_size, shape = shape[0], shape[1:]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) or (N, C, H, W), got {tuple(input_shape)}")
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need batch_size >= 1, repeats >= 1, warmup >= 0; got {batch_size}, {repeats}, {warmup}")
    return batch_size, shape


def _time_passes(model: nn.Module, x: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` forward passes of ``x`` after ``warmup`` untimed ones."""
    cuda = x.device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(x.device)

    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        sync()
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            times.append((time.perf_counter() - start) * 1000.0)
    return times


__all__ = ["Latency", "measure_latencies", "measure_latency"]
