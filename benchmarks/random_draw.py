"""The random-draw curve: what a *random* mdconv network of a given cost reaches.

The ground truth's band genotypes (``benchmarks/ground_truth.py``) are uniform draws of the
space conditioned on a cost band, so their accuracies, against cost, say what a random
network of that cost reaches. The curve is a least-squares quadratic of accuracy in
log2(MFLOPs) over the band genotypes (each genotype's accuracy is its seed mean). A
network's *residual* is its accuracy minus the curve at its cost, in points: > 0 means
better than a random draw of the same cost. A search earns its keep when its picks have a
positive residual.

The same residualisation gives the within-band yardstick of ``bench_fidelity.py``: the
Kendall tau between an estimate's and the truth's cost-residualised values over all band
genotypes (:func:`pooled_residual_tau`), one number where FLOPs alone tell nothing, and its
translation into what a search is judged by (:func:`selection_gain`): the residual, in
points, of the network an estimate picks as the best of ``n`` random draws of one band.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

DEGREE = 2


@dataclass(frozen=True)
class Curve:
    """accuracy(MFLOPs) = c0 + c1 x + c2 x^2 with x = log2(MFLOPs); ``sd`` of the residuals."""

    coefficients: tuple[float, ...]  # highest power first (numpy.polyfit order)
    sd: float
    n: int

    def __call__(self, mflops: float) -> float:
        return float(np.polyval(self.coefficients, math.log2(mflops)))

    def residual(self, accuracy: float, mflops: float) -> float:
        """Points above (> 0) or below the curve at this cost; accuracy as a fraction."""
        return 100.0 * (accuracy - self(mflops))

    def describe(self) -> str:
        c2, c1, c0 = self.coefficients
        return (f"accuracy = {c0:.4f} + {c1:.4f} x + {c2:.5f} x^2, x = log2(MFLOPs); {self.n} band genotypes, "
                f"residual sd {100 * self.sd:.2f} points")


def fit(values: Mapping[str, float], mflops: Mapping[str, float], members: Sequence[str] | None = None) -> Curve:
    """The least-squares quadratic of ``values`` in log2(MFLOPs) over ``members`` (default: all)."""
    members = list(values if members is None else members)
    if len(members) < DEGREE + 2:
        raise ValueError(f"need at least {DEGREE + 2} genotypes to fit the curve, got {len(members)}")
    x = np.log2([mflops[g] for g in members])
    y = np.array([values[g] for g in members])
    coefficients = np.polyfit(x, y, DEGREE)
    residuals = y - np.polyval(coefficients, x)
    sd = float(np.sqrt((residuals ** 2).sum() / max(len(members) - DEGREE - 1, 1)))
    return Curve(tuple(float(c) for c in coefficients), sd, len(members))


def residualise(values: Mapping[str, float], mflops: Mapping[str, float], members: Sequence[str]) -> dict[str, float]:
    """Each member's value minus the quadratic in log2(MFLOPs) fitted over the members."""
    curve = fit(values, mflops, members)
    return {g: values[g] - curve(mflops[g]) for g in members}


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(x, y).statistic) if len(set(x)) > 1 and len(set(y)) > 1 else float("nan")


def pooled_residual_tau(estimate: Mapping[str, float], truth: Mapping[str, float], mflops: Mapping[str, float],
                        members: Sequence[str]) -> float:
    """Kendall tau between the estimate's and the truth's cost-residualised values over ``members``
    (each residualised by its own quadratic in log2(MFLOPs)): how well the estimate ranks
    networks *of similar cost*, pooled over every band at once."""
    e = residualise(estimate, mflops, members)
    t = residualise(truth, mflops, members)
    return kendall([e[g] for g in members], [t[g] for g in members])


def bootstrap_pooled_tau(estimate: Mapping[str, float], truth: Mapping[str, float], mflops: Mapping[str, float],
                         members: Sequence[str], rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """90 % percentile interval of :func:`pooled_residual_tau`, genotypes resampled with
    replacement and both curves refitted in every round (the fit's own uncertainty is in it)."""
    rng = random.Random(seed)
    values = []
    for _ in range(rounds):
        sample = rng.choices(list(members), k=len(members))
        if len(set(sample)) < DEGREE + 2:
            continue
        v = pooled_residual_tau(estimate, truth, mflops, sample)
        if not math.isnan(v):
            values.append(v)
    return percentile_interval(values)


def selection_gain(estimate: Mapping[str, float], truth: Mapping[str, float], mflops: Mapping[str, float],
                   bands: Mapping[str, Sequence[str]], n: int) -> float:
    """The expected true residual (points above the random-draw curve) of the genotype that
    ``estimate`` ranks first among ``n`` genotypes drawn at random, without replacement, from
    one band; the mean over the bands that have at least ``n`` members.

    This is what a search that draws ``n`` candidates of a cost class and keeps the one its
    estimate likes best gains over a random draw of that cost: 0 for an estimate that knows
    nothing, the band's mean of its top residuals for a perfect one. Both residuals come from
    quadratics in log2(MFLOPs) fitted over all the bands' members (the estimate's own curve,
    as the search's value rule fits one). Exact, not sampled: the member the estimate ranks
    ``i``-th of ``m`` (0 = best) is the best of a random ``n``-subset with probability
    C(m-1-i, n-1) / C(m, n)."""
    members = [g for ms in bands.values() for g in ms]
    est = residualise(estimate, mflops, members)
    true = residualise(truth, mflops, members)
    gains = []
    for ms in bands.values():
        m = len(ms)
        if m < n:
            continue
        ranked = sorted(range(m), key=lambda i: -est[ms[i]])  # stable: ties go to the earlier member
        total = math.comb(m, n)
        gains.append(sum(math.comb(m - 1 - r, n - 1) * true[ms[i]] for r, i in enumerate(ranked)) / total)
    return 100.0 * sum(gains) / len(gains) if gains else math.nan


def bootstrap_selection_gain(estimate: Mapping[str, float], truth: Mapping[str, float], mflops: Mapping[str, float],
                             bands: Mapping[str, Sequence[str]], n: int, rounds: int = 2000,
                             seed: int = 0) -> tuple[float, float]:
    """90 % percentile interval of :func:`selection_gain`, each band's genotypes resampled with
    replacement (a genotype drawn twice counts as two draws of its values) and the curves refitted."""
    rng = random.Random(seed)
    values = []
    for _ in range(rounds):
        sample = {b: rng.choices(list(ms), k=len(ms)) for b, ms in bands.items()}
        if len({g for ms in sample.values() for g in ms}) < DEGREE + 2:
            continue
        v = selection_gain(estimate, truth, mflops, sample, n)
        if not math.isnan(v):
            values.append(v)
    return percentile_interval(values)


def percentile_interval(values: Sequence[float], level: float = 0.90) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    ordered = sorted(values)
    lo = (1 - level) / 2
    return ordered[int(lo * (len(ordered) - 1))], ordered[int((1 - lo) * (len(ordered) - 1))]


def bootstrap_mean(values: Sequence[float], rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """90 % percentile interval of the mean of ``values`` (resampled with replacement)."""
    rng = random.Random(seed)
    means = [sum(s) / len(s) for s in (rng.choices(list(values), k=len(values)) for _ in range(rounds))]
    return percentile_interval(means)
