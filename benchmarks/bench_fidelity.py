"""Fidelity: how well does a predictor rank genotypes like their stand-alone training does?

The yardstick is the ground-truth table (``benchmarks/ground_truth.py``: every genotype
trained stand-alone on the full TRAIN split at 28x28). This benchmark never trains a
reference; it reads whatever rows exist. A *predictor* maps genotypes to scores (higher =
predicted more accurate); each one is reported with 90 % bootstrap intervals on:

- Kendall tau and Spearman rho over all genotypes of the table;
- **the headline within-band figure, pooled residual tau**: Kendall tau between the
  predictor's and the truth's *cost-residualised* values (each minus its own quadratic in
  log2(MFLOPs), ``random_draw.py``) over all band genotypes at once: how well the predictor
  ranks networks of similar cost, where FLOPs alone tell nothing. Beside it the ceiling
  computed the same way between two trainings that differ only in the seed (seed 0 as the
  "predictor" of seed 1, over the genotypes that have both);
- mean Kendall tau within each cost band, with the per-band seed-to-seed ceiling;
- **selection gain**, the same ranking in the units a search is judged in: the expected
  residual (points above the random-draw curve) of the genotype the predictor ranks first
  among ``n`` random draws of one band (``random_draw.selection_gain``; n = 3, 5, 8), beside
  the same figure for a second training (seed 0 choosing, judged by seed 1, and the reverse):
  what a search that trains every candidate once, for real, can at most expect to gain by
  choosing among random draws;
- regret: per band, how many accuracy points the predictor's top pick lies below the
  band's true best (mean over bands), and the share of each band's true top-3 that the
  predictor's top-3 recovers;
- the predictor's cost in CPU seconds per genotype.

The truth of a genotype is the mean of its seeds' accuracies (every band genotype has
seeds 0 and 1 once the table is complete; a genotype with only seed 0 so far counts with
that one). Bootstrap, 2000 rounds: for the rank correlations, genotypes resampled with
replacement within each band (all genotypes for the overall and pooled figures, the curves
refitted each round); for regret and top-3, the truth redrawn with the table's seed-to-seed
noise.

Built-in predictors: ``mflops``, ``params`` (fvcore multiply-adds, parameter count) and the
scratch proxy of the search at its default and two other settings (``proxy-default``: the
search's ``ProxyConfig()``, 2000 images x 9 epochs at 14x14; ``proxy-short``: 2000 x 3 at
14x14; ``proxy-more-data``: 6000 x 3 at 14x14, the default's image-epochs on 3x the images;
``proxy-tse-28``: 10,000 images x 1 epoch at 28x28 scored by minus the sum of its training
losses, TSE), the shipped search's finals (``finals-1ep``: ``Fidelity().final_proxy()``, one
real epoch on the search's 40,000 training images at 28x28, scored on its own 10,000 held-out ones),
and the one-shot ``supernet`` (one supernet of ``mdconv`` trained with the sandwich rule on
20,000 images x 2 epochs at 14x14, every genotype scored by inherited weights after BN
recalibration; ``supernet-short``: 10,000 images x 1 epoch; ``supernet-long``: 40,000 x 2; these
three score on 2,000 held-out images; ``supernet-full``: all 50,000 images x 1 epoch at 28x28, scored on
the ground truth's 10,000 held-out images; ``supernet-full-transform``: the same with OFA's
kernel transform, ``OneShotConfig()``). Any other predictor plugs in as
``--predictor NAME=module:function``, where ``function(genotypes: list[str]) -> list[float]``
(e.g. ``evaluators.oneshot:fidelity_scores`` with its defaults). Scores are cached per predictor in
``benchmarks/ground_truth/predictions/NAME.csv`` (committed: small), so a later run pays only
for new genotypes; ``--fresh`` recomputes them.

    python benchmarks/bench_fidelity.py                               # mflops, params, cached proxies
    python benchmarks/bench_fidelity.py --predictors mflops,params,proxy-default,proxy-short,proxy-more-data --workers 2
    python benchmarks/bench_fidelity.py --predictors proxy-default --prefetch   # score every listed genotype now
    python benchmarks/bench_fidelity.py --predictors supernet
    python benchmarks/bench_fidelity.py --predictor mine=evaluators.oneshot:fidelity_scores
"""

from __future__ import annotations

import argparse
import csv
import importlib
import math
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import print_machine  # noqa: E402
from ground_truth import FOLDER, TABLE_CSV, atomic_csv, commit_id, read_jobs, read_table  # noqa: E402
from random_draw import (  # noqa: E402
    bootstrap_pooled_tau, bootstrap_selection_gain, kendall, pooled_residual_tau, selection_gain,
)

PREDICTIONS = FOLDER / "predictions"
BOOTSTRAP = 2000
TOP = 3
#: Draws per band for the selection gain (the middle one carries the interval).
SELECTION_DRAWS = (3, 5, 8)

#: The scratch-proxy settings: ProxyConfig field changes from the search's default.
PROXY_SETTINGS: dict[str, dict] = {
    "proxy-default": {},
    "proxy-short": {"epochs": 3},
    "proxy-more-data": {"train_size": 6000, "epochs": 3},
    # full resolution, many images, a fraction of the image-epochs: scored by TSE below
    "proxy-tse-28": {"train_size": 10000, "epochs": 1, "resolution": None},
}
#: Proxies scored by the sum of training losses (TSE, Ru et al. 2021: the training speed
#: ranks networks early), negated so that higher is better, instead of validation accuracy.
TSE_PROXIES = ("proxy-tse-28",)
#: The shipped estimator's last word: the finals' real training (``Fidelity().final_proxy()``,
#: what ``nas search`` trains its finalists with: 1 epoch on the search's 40,000 training
#: images at 28x28), scored on the search's own 10,000 held-out images, never the judge's.
FINALS = "finals-1ep"
#: The one-shot predictor's settings (nas.supernet.folder.OneShotConfig field changes).
SUPERNET_SETTINGS: dict[str, dict] = {
    "supernet": {"train_size": 20000, "epochs": 2, "resolution": 14, "val_size": 2000, "kernel": "centre"},
    "supernet-short": {"train_size": 10000, "epochs": 1, "resolution": 14, "val_size": 2000, "kernel": "centre"},
    "supernet-long": {"train_size": 40000, "epochs": 2, "resolution": 14, "val_size": 2000, "kernel": "centre"},
    # the ground truth's own data, all 50,000 training images at 28x28,
    # scored on its 10,000 held-out ones
    "supernet-full": {"train_size": 0, "val_size": 10000, "resolution": None, "epochs": 1, "kernel": "centre"},
    # the same with OFA's learned kernel transform instead of the centre crop (OneShotConfig())
    "supernet-full-transform": {"train_size": 0, "val_size": 10000, "resolution": None, "epochs": 1,
                                "kernel": "transform"},
    # OneShotConfig() as a one-shot search trains it: scored on the search's own 5,000 held-out images
    "supernet-oneshot": {},
}
#: Staged scoring (nas.supernet.scoring.ScoringStage): a supernet above, scored by a search's
#: first stage only: (that supernet's name, BN recalibration images, held-out images).
SUPERNET_SCREENS: dict[str, tuple[str, int, int]] = {
    "supernet-oneshot-screen": ("supernet-oneshot", 500, 1000),
}


# ------------------------------------------------------------------------ predictors


@dataclass(frozen=True)
class Predictor:
    """A way to score genotypes. Built-in ones score one genotype at a time through
    :func:`score_genotype` (``kind``, ``settings``), so they can run one per process;
    a plug-in scores the whole list in one call (``score_all``)."""

    name: str
    describe: str
    kind: str = ""
    settings: tuple = ()
    score_all: Callable[[list[str]], list[float]] | None = None


def score_genotype(kind: str, settings: tuple, genotype: str) -> float:
    """One built-in predictor's score of one genotype (module level: runs in worker processes)."""
    if kind in ("mflops", "params"):
        from evaluators.cost import measure_cost

        cost = measure_cost(genotype, 1, 28, 10)
        return float(cost.mflops if kind == "mflops" else cost.params)
    if kind == "proxy":
        import torch
        from dataclasses import replace

        from evaluators.proxy import ProxyConfig, prepare_proxy_data, proxy_train

        torch.set_num_threads(1)
        settings = dict(settings)
        tse = settings.pop("score", "") == "tse"
        config = replace(ProxyConfig(), **settings)
        data = prepare_proxy_data(config)
        losses = []
        last = None
        for last in proxy_train(genotype, data, config, device="cpu", seed=0, threads=1):
            losses.append(last.train_loss * last.train_images)
        return -float(sum(losses)) / data.train.images.shape[0] if tse else float(last.val_accuracy)
    raise ValueError(f"unknown predictor kind {kind!r}")


def supernet_folder(settings: tuple) -> Path:
    """Where the one-shot predictor with these settings keeps its supernet (local, never committed)."""
    import hashlib

    return FOLDER / ".work" / f"supernet-{hashlib.sha1(repr(settings).encode()).hexdigest()[:10]}"


def supernet_scores(settings: tuple, stage: tuple[int, int] | None = None) -> Callable[[list[str]], list[float]]:
    """The one-shot predictor: one supernet trained once (resumable, kept in the table's local
    work folder, keyed by its settings), every genotype scored by inherited weights (on
    ``stage``'s (calibration, held-out) images only, when given)."""
    def score_all(genotypes: list[str]) -> list[float]:
        from evaluators.oneshot import fidelity_scores
        from nas.supernet.scoring import ScoringStage

        staged = ScoringStage(*stage) if stage else None
        return fidelity_scores(genotypes, folder=supernet_folder(settings), stage=staged, **dict(settings))

    return score_all


def _finals_changes() -> dict:
    """The finals' training as changes to ``ProxyConfig()`` (taken from the shipped ``Fidelity``)."""
    from dataclasses import fields

    from evaluators.proxy import ProxyConfig
    from nas.search.fidelity import Fidelity

    final, base = Fidelity.from_options().final_proxy(), ProxyConfig()
    return {f.name: getattr(final, f.name) for f in fields(final) if getattr(final, f.name) != getattr(base, f.name)}


def builtin_predictors() -> dict[str, Predictor]:
    found = {
        "mflops": Predictor("mflops", "fvcore multiply-adds at 28x28 (bigger = better)", "mflops"),
        "params": Predictor("params", "trainable parameters (bigger = better)", "params"),
    }
    for name, changes in [*PROXY_SETTINGS.items(), (FINALS, _finals_changes())]:
        changes = dict(changes)
        scored = "minus the sum of training losses (TSE)" if name in TSE_PROXIES else "validation accuracy"
        if name in TSE_PROXIES:
            changes["score"] = "tse"
        found[name] = Predictor(name, f"scratch proxy, ProxyConfig() with {changes or 'no changes'}, seed 0, "
                                f"scored by {scored}", "proxy", tuple(sorted(changes.items())))
    for name, changes in SUPERNET_SETTINGS.items():
        settings = tuple(sorted(changes.items()))
        found[name] = Predictor(name, f"supernet, OneShotConfig() with {changes}; the CPU s column is what "
                                "its scoring call spent per genotype (the training included when it ran in "
                                "that call); the training alone is printed below", score_all=supernet_scores(settings))
    for name, (base, calibration, held_out) in SUPERNET_SCREENS.items():
        settings = tuple(sorted(SUPERNET_SETTINGS[base].items()))
        found[name] = Predictor(name, f"{base}'s supernet scored by a one-shot search's screen: BN recalibrated on "
                                f"{calibration} images, {held_out} held-out images",
                                score_all=supernet_scores(settings, (calibration, held_out)))
    return found


def plugin_predictor(spec: str) -> Predictor:
    """``NAME=module:function`` -> a predictor scoring all genotypes in one call."""
    name, sep, target = spec.partition("=")
    module_name, colon, attr = target.partition(":")
    if not (sep and colon and name and module_name and attr):
        raise SystemExit(f"--predictor {spec!r}: expected NAME=module:function")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"--predictor {spec!r}: cannot load {target}: {exc}") from None
    return Predictor(name, f"{target}(genotypes)", score_all=function)


def _timed(job: tuple[str, tuple, str]) -> tuple[str, float, float]:
    kind, settings, genotype = job
    start = time.process_time()
    value = score_genotype(kind, settings, genotype)
    return genotype, value, time.process_time() - start


def predictions(predictor: Predictor, genotypes: Sequence[str], workers: int, fresh: bool,
                cached_only: bool = False) -> dict[str, tuple[float, float]]:
    """genotype -> (score, CPU seconds), from the cache where present; new scores are cached.
    ``cached_only``: score nothing, a genotype not in the cache is NaN (not scorable)."""
    path = PREDICTIONS / f"{predictor.name}.csv"
    cached: dict[str, tuple[float, float]] = {}
    if path.is_file() and not fresh:
        with path.open(newline="") as fh:
            cached = {r["genotype"]: (float(r["score"]), float(r["cpu_seconds"])) for r in csv.DictReader(fh)}
    missing = [g for g in genotypes if g not in cached]

    def save() -> None:
        PREDICTIONS.mkdir(parents=True, exist_ok=True)
        atomic_csv(path, ["genotype", "score", "cpu_seconds", "commit"],
                   [{"genotype": g, "score": repr(s), "cpu_seconds": f"{c:.3f}", "commit": commit_id()}
                    for g, (s, c) in sorted(cached.items())])

    if cached_only and predictor.kind not in ("mflops", "params"):  # those two cost nothing: always scored
        return {g: cached.get(g, (math.nan, math.nan)) for g in genotypes}
    if not missing:
        return {g: cached[g] for g in genotypes}
    print(f"  {predictor.name}: scoring {len(missing)} genotypes ({len(cached)} cached)", flush=True)
    if predictor.score_all is not None:
        start = time.process_time()
        scores = predictor.score_all(list(missing))
        each = (time.process_time() - start) / len(missing)
        cached.update({g: (float(s), each) for g, s in zip(missing, scores)})
        save()
    else:  # one genotype at a time, each result kept as soon as it is there
        jobs = [(predictor.kind, predictor.settings, g) for g in missing]
        pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
        try:
            for g, v, c in (pool.map(_timed, jobs) if pool else map(_timed, jobs)):
                cached[g] = (v, c)
                save()
        finally:
            if pool:
                pool.shutdown()
    return {g: cached[g] for g in genotypes}


# ------------------------------------------------------------------------ the truth


@dataclass(frozen=True)
class Truth:
    """The table, per genotype: the seed-mean accuracy, band ('' for the extra rows), all
    seeds, MFLOPs."""

    accuracy: dict[str, float]
    band: dict[str, str]
    seeds: dict[str, dict[int, float]]
    mflops: dict[str, float]

    @property
    def genotypes(self) -> list[str]:
        return sorted(self.accuracy)

    def bands(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for g in self.genotypes:
            if self.band[g]:
                out.setdefault(self.band[g], []).append(g)
        return dict(sorted(out.items(), key=lambda kv: float(kv[0])))


def load_truth(path: Path = TABLE_CSV, epochs: int | None = None) -> Truth:
    rows = read_table(path)
    if epochs is None and rows:
        epochs = max(int(r["epochs"]) for r in rows)
    seeds: dict[str, dict[int, float]] = {}
    band: dict[str, str] = {}
    mflops: dict[str, float] = {}
    for r in rows:
        if int(r["epochs"]) != epochs:
            continue
        seeds.setdefault(r["genotype"], {})[int(r["seed"])] = float(r["val_accuracy"])
        band[r["genotype"]] = r["band"]
        mflops[r["genotype"]] = float(r["mflops"])
    accuracy = {g: sum(s.values()) / len(s) for g, s in seeds.items() if 0 in s}
    return Truth(accuracy, {g: band[g] for g in accuracy}, {g: seeds[g] for g in accuracy},
                 {g: mflops[g] for g in accuracy})


# ------------------------------------------------------------------------ metrics


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic) if len(set(x)) > 1 and len(set(y)) > 1 else float("nan")


def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else float("nan")


def top(genotypes: Sequence[str], key: dict[str, float], k: int) -> list[str]:
    """The k genotypes with the highest key; ties broken by the genotype string (stable)."""
    return sorted(genotypes, key=lambda g: (-key[g], g))[:k]


def band_metrics(members: Sequence[str], score: dict[str, float], truth: dict[str, float]) -> tuple[float, float, float]:
    """(Kendall tau, regret in points, top-3 recovery) of one band's members (may repeat)."""
    tau = kendall([score[g] for g in members], [truth[g] for g in members])
    distinct = sorted(set(members))
    best = max(truth[g] for g in distinct)
    regret = 100.0 * (best - truth[top(distinct, score, 1)[0]])
    k = min(TOP, len(distinct))
    recovered = len(set(top(distinct, score, k)) & set(top(distinct, truth, k))) / k
    return tau, regret, recovered


def metrics(groups: dict[str, list[str]], everyone: list[str], score: dict[str, float], truth: dict[str, float]) -> dict[str, float]:
    per_band = [band_metrics(m, score, truth) for m in groups.values()]
    return {
        "tau": kendall([score[g] for g in everyone], [truth[g] for g in everyone]),
        "rho": spearman([score[g] for g in everyone], [truth[g] for g in everyone]),
        "band_tau": _nanmean([b[0] for b in per_band]),
        "regret": _nanmean([b[1] for b in per_band]),
        "top3": _nanmean([b[2] for b in per_band]),
    }


def _interval(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return values[int(0.05 * (len(values) - 1))], values[int(0.95 * (len(values) - 1))]


def bootstrap(groups: dict[str, list[str]], everyone: list[str], score: dict[str, float], truth: dict[str, float],
              noise: float, rounds: int = BOOTSTRAP, seed: int = 0) -> dict[str, tuple[float, float]]:
    """90 % percentile intervals of :func:`metrics`.

    Rank correlations: genotypes resampled with replacement (within each band for the
    within-band tau). Regret and top-3: a resampled band holds fewer distinct genotypes, which
    makes picking its best easier, so these resample the *truth* instead: every accuracy
    redrawn with the table's own seed-to-seed noise (``noise``, a standard deviation), the
    uncertainty those two figures actually carry."""
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        g2 = {b: rng.choices(m, k=len(m)) for b, m in groups.items()}
        e2 = rng.choices(everyone, k=len(everyone))
        ranks = metrics(g2, e2, score, truth)
        noisy = {g: a + rng.gauss(0.0, noise) for g, a in truth.items()}
        picks = metrics(groups, everyone, score, noisy)
        for name in ("tau", "rho", "band_tau"):
            if not math.isnan(ranks[name]):
                samples.setdefault(name, []).append(ranks[name])
        for name in ("regret", "top3"):
            if not math.isnan(picks[name]):
                samples.setdefault(name, []).append(picks[name])
    return {name: _interval(values) for name, values in samples.items()}


def seed_noise(truth: Truth) -> float:
    """The pooled seed-to-seed standard deviation of the table (0.003 until it has repeats)."""
    devs = [(v, len(s)) for s in truth.seeds.values() if len(s) >= 2 for v in [_std(list(s.values())) ** 2]]
    if not devs:
        return 0.003
    return math.sqrt(sum(v * (n - 1) for v, n in devs) / sum(n - 1 for _, n in devs))


def pooled_ceiling(truth: Truth) -> tuple[float, tuple[float, float], int]:
    """The pooled residual tau between two trainings (seed 0 vs seed 1) of the band genotypes
    that have both: the most a predictor can be expected to reach, computed the same way."""
    paired = [g for g in truth.genotypes if truth.band[g] and 1 in truth.seeds[g]]
    if len(paired) < 5:
        return math.nan, (math.nan, math.nan), len(paired)
    s0 = {g: truth.seeds[g][0] for g in paired}
    s1 = {g: truth.seeds[g][1] for g in paired}
    return (pooled_residual_tau(s0, s1, truth.mflops, paired),
            bootstrap_pooled_tau(s0, s1, truth.mflops, paired), len(paired))


def seed_ceiling(truth: Truth, rounds: int = BOOTSTRAP) -> dict[str, tuple[float, tuple[float, float], int]]:
    """Per band with >= 3 genotypes trained with seeds 0 and 1: tau(seed 0, seed 1), interval, n."""
    out = {}
    rng = random.Random(1)
    for band, members in truth.bands().items():
        paired = [g for g in members if 1 in truth.seeds[g]]
        if len(paired) < 3:
            continue
        s0 = {g: truth.seeds[g][0] for g in paired}
        s1 = {g: truth.seeds[g][1] for g in paired}
        value = kendall([s1[g] for g in paired], [s0[g] for g in paired])
        boots = []
        for _ in range(rounds):
            m = rng.choices(paired, k=len(paired))
            v = kendall([s1[g] for g in m], [s0[g] for g in m])
            if not math.isnan(v):
                boots.append(v)
        interval = _interval(boots) if boots else (math.nan, math.nan)
        out[band] = (value, interval, len(paired))
    return out


def selection_row(estimate: dict[str, float], truth: dict[str, float], mflops: dict[str, float],
                  bands: dict[str, list[str]]) -> list[str]:
    """The selection gain at each of :data:`SELECTION_DRAWS` (the middle one with its interval)."""
    middle = SELECTION_DRAWS[len(SELECTION_DRAWS) // 2]
    cells = []
    for n in SELECTION_DRAWS:
        value = selection_gain(estimate, truth, mflops, bands, n)
        interval = bootstrap_selection_gain(estimate, truth, mflops, bands, n, rounds=BOOTSTRAP // 4) if n == middle else None
        cells.append(_signed(value, interval))
    return cells


def seed_selection_row(truth: Truth) -> tuple[list[str], int]:
    """The selection gain of a second training: seed 0 chooses and seed 1 judges, and the
    reverse (their mean), over the band genotypes that have both seeds; with the count."""
    bands = {b: [g for g in m if 1 in truth.seeds[g]] for b, m in truth.bands().items()}
    bands = {b: m for b, m in bands.items() if len(m) >= 3}
    paired = [g for m in bands.values() for g in m]
    if len(paired) < 5:
        return ["-"] * len(SELECTION_DRAWS), len(paired)
    s0 = {g: truth.seeds[g][0] for g in paired}
    s1 = {g: truth.seeds[g][1] for g in paired}
    middle = SELECTION_DRAWS[len(SELECTION_DRAWS) // 2]
    cells = []
    for n in SELECTION_DRAWS:
        value = (selection_gain(s0, s1, truth.mflops, bands, n) + selection_gain(s1, s0, truth.mflops, bands, n)) / 2
        interval = None
        if n == middle:
            lo = bootstrap_selection_gain(s0, s1, truth.mflops, bands, n, rounds=BOOTSTRAP // 4)
            hi = bootstrap_selection_gain(s1, s0, truth.mflops, bands, n, rounds=BOOTSTRAP // 4)
            interval = ((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2)
        cells.append(_signed(value, interval))
    return cells, len(paired)


def _signed(value: float, interval: tuple[float, float] | None) -> str:
    if math.isnan(value):
        return "-"
    text = f"{value:+.2f}"
    return text + (f" [{interval[0]:+.2f}, {interval[1]:+.2f}]" if interval is not None else "")


# ------------------------------------------------------------------------ report


def noise_table(truth: Truth) -> list[str]:
    lines = ["| band (MFLOPs) | genotypes | accuracy range, seed 0 | std over genotypes | genotypes with >= 2 seeds | "
             "mean seed-to-seed std | max seed-to-seed range |", "|---|---:|---:|---:|---:|---:|---:|"]
    groups = dict(truth.bands())
    extras = [g for g in truth.genotypes if not truth.band[g]]
    if extras:
        groups["front + baselines"] = extras
    for band, members in groups.items():
        accs = [truth.accuracy[g] for g in members]
        multi = [list(truth.seeds[g].values()) for g in members if len(truth.seeds[g]) >= 2]
        stds = [_std(v) for v in multi]
        ranges = [max(v) - min(v) for v in multi]
        lines.append(
            f"| {band} | {len(members)} | {100 * min(accs):.2f}-{100 * max(accs):.2f}% | {100 * _std(accs):.2f} | {len(multi)} | "
            + (f"{100 * sum(stds) / len(stds):.2f} | {100 * max(ranges):.2f} |" if multi else "- | - |")
        )
    return lines


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _fmt(value: float, interval: tuple[float, float] | None, digits: int = 2, pct: bool = False) -> str:
    if math.isnan(value):
        return "-"
    scale, unit = (100.0, "%") if pct else (1.0, "")
    text = f"{scale * value:.{digits}f}{unit}"
    if interval is not None:
        text += f" [{scale * interval[0]:.{digits}f}, {scale * interval[1]:.{digits}f}]"
    return text


def report(truth: Truth, scored: dict[str, dict[str, tuple[float, float]]], describe: dict[str, str]) -> list[str]:
    groups = {b: m for b, m in truth.bands().items() if len(m) >= 3}
    everyone = truth.genotypes
    ceiling = seed_ceiling(truth)
    noise = seed_noise(truth)
    ceiling_text = "; ".join(f"band {b}: {_fmt(v, i)} (n={n})" for b, (v, i, n) in ceiling.items()) or "not measured yet"
    pooled_value, pooled_interval, paired = pooled_ceiling(truth)
    band_members = [g for m in groups.values() for g in m]
    lines = [
        f"{len(everyone)} genotypes ({sum(len(s) for s in truth.seeds.values())} rows), "
        f"bands with >= 3 genotypes: {', '.join(f'{b} ({len(m)})' for b, m in groups.items())}; "
        f"{sum(len(truth.seeds[g]) >= 2 for g in band_members)} band genotypes with >= 2 seeds",
        f"seed-to-seed pooled residual tau (the ceiling): {_fmt(pooled_value, pooled_interval)} (n={paired})",
        f"seed-to-seed within-band tau, per band: {ceiling_text}",
        f"seed-to-seed noise of one accuracy (pooled std): {100 * noise:.2f} points",
        "",
        "| predictor | pooled residual tau (within bands) | Kendall tau, all | Spearman rho, all | mean tau within bands | regret, points | top-3 recovered | CPU s / genotype |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if ceiling:
        value = _nanmean([v for v, _, _ in ceiling.values()])
        lines.append(f"| *seed-to-seed (ceiling)* | {_fmt(pooled_value, pooled_interval)} | - | - | {value:.2f} | - | - | - |")
    for name, values in scored.items():
        score = {g: v[0] for g, v in values.items() if math.isfinite(v[0])}  # NaN: cannot score it
        cpu = _nanmean([v[1] for v in values.values()])  # over the scored genotypes
        mine = {b: [g for g in m if g in score] for b, m in groups.items()}
        mine = {b: m for b, m in mine.items() if len(m) >= 3}
        scorable = [g for g in everyone if g in score]
        point = metrics(mine, scorable, score, truth.accuracy)
        ci = bootstrap(mine, scorable, score, truth.accuracy, noise)
        pooled_members = [g for m in mine.values() for g in m]
        pooled = pooled_residual_tau(score, truth.accuracy, truth.mflops, pooled_members)
        pooled_ci = bootstrap_pooled_tau(score, truth.accuracy, truth.mflops, pooled_members)
        left = f" ({len(everyone) - len(scorable)} not scorable)" if len(scorable) < len(everyone) else ""
        lines.append(
            f"| {name}{left} | **{_fmt(pooled, pooled_ci)}** | {_fmt(point['tau'], ci.get('tau'))} | {_fmt(point['rho'], ci.get('rho'))} | "
            f"{_fmt(point['band_tau'], ci.get('band_tau'))} | {_fmt(point['regret'], ci.get('regret'))} | "
            f"{_fmt(point['top3'], ci.get('top3'), 0, pct=True)} | {cpu:.2f} |"
        )
    lines += selection_table(truth, scored, groups)
    lines += ["", "predictors:"] + [f"- {n}: {describe[n]}" for n in scored]
    for name, changes in SUPERNET_SETTINGS.items():
        if name in scored:
            import json

            config = supernet_folder(tuple(sorted(changes.items()))) / "config.json"
            if config.is_file():
                seconds = json.loads(config.read_text()).get("seconds")
                lines.append(f"- {name}: training took {seconds} s wall (one thread), once for all genotypes")
    lines += ["", "noise floor (the table's own spread):", ""] + noise_table(truth)
    return lines


def selection_table(truth: Truth, scored: dict[str, dict[str, tuple[float, float]]],
                    groups: dict[str, list[str]]) -> list[str]:
    """The selection gains: each predictor's, a second training's (the ceiling of one real
    training per candidate) and the truth's own (in-sample: flattered by its seed noise)."""
    heads = " | ".join(f"best of {n}" for n in SELECTION_DRAWS)
    lines = ["", "selection gain: the true residual (points above the random-draw curve) of the genotype an estimate "
             "ranks first among n random draws of one band (mean over bands; 90 % interval on the middle n)", "",
             f"| estimate | {heads} |", "|---|" + "---:|" * len(SELECTION_DRAWS)]
    seed_cells, paired = seed_selection_row(truth)
    lines.append(f"| *a second training (seed 0 vs 1, n={paired})* | " + " | ".join(seed_cells) + " |")
    lines.append("| *the truth itself (in-sample)* | "
                 + " | ".join(selection_row(truth.accuracy, truth.accuracy, truth.mflops, groups)) + " |")
    for name, values in scored.items():
        score = {g: v[0] for g, v in values.items() if math.isfinite(v[0])}
        mine = {b: [g for g in m if g in score] for b, m in groups.items()}
        mine = {b: m for b, m in mine.items() if len(m) >= 3}
        if mine:
            lines.append(f"| {name} | " + " | ".join(selection_row(score, truth.accuracy, truth.mflops, mine)) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=TABLE_CSV)
    parser.add_argument("--epochs", type=int, help="reference epochs to use (default: the largest in the table)")
    parser.add_argument("--predictors", default="mflops,params,cached",
                        help="comma list of built-in predictors; 'cached' adds every proxy with a cache file")
    parser.add_argument("--predictor", action="append", default=[], metavar="NAME=module:function",
                        help="a plug-in predictor (repeatable)")
    parser.add_argument("--workers", type=int, default=1, help="processes for per-genotype predictors (one thread each)")
    parser.add_argument("--fresh", action="store_true", help="recompute cached scores")
    parser.add_argument("--cached-only", action="store_true",
                        help="score nothing: report what the caches hold (the rest counts as not scorable)")
    parser.add_argument("--prefetch", action="store_true",
                        help="score every genotype of the job list (not only those with a row yet), then stop")
    args = parser.parse_args()

    print_machine()
    available = builtin_predictors()
    names: list[str] = []
    for token in (t.strip() for t in args.predictors.split(",") if t.strip()):
        if token == "cached":
            names += [n for n in [*PROXY_SETTINGS, FINALS, *SUPERNET_SETTINGS, *SUPERNET_SCREENS]
                      if (PREDICTIONS / f"{n}.csv").is_file() and n not in names]
        elif token in available:
            names.append(token)
        else:
            raise SystemExit(f"--predictors: unknown predictor {token!r}; built-in: {', '.join(available)}, cached")
    chosen = [available[n] for n in dict.fromkeys(names)] + [plugin_predictor(s) for s in args.predictor]
    if args.prefetch:
        listed = sorted({job["genotype"] for job in read_jobs()})
        for predictor in chosen:
            predictions(predictor, listed, args.workers, args.fresh)
        return
    truth = load_truth(args.table, args.epochs)
    if len(truth.genotypes) < 3:
        raise SystemExit(f"{args.table}: {len(truth.genotypes)} genotypes with a seed-0 row; need at least 3")
    scored = {p.name: predictions(p, truth.genotypes, args.workers, args.fresh, args.cached_only) for p in chosen}
    print("\n".join(report(truth, scored, {p.name: p.describe for p in chosen})))


if __name__ == "__main__":
    main()
