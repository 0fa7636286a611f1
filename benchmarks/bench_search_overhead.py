"""Overhead of the search engine: the full Ray Tune path against a plain in-process loop.

The same fixed candidates (``--n`` architectures drawn from the space by Optuna's
RandomSampler with a fixed seed) are proxy-trained for the same epochs on the same
data subset, twice:

- **loop**: one Python process, for each candidate ``measure_cost`` + the trainable's
  own function (``nas.search.trainable.run_candidate``), one after the other;
- **ray**: ``nas.search.driver.run_search`` - the real thing: Optuna study on SQLite
  (the candidates enqueued), our Searcher, the multi-objective scheduler (``eta 0``:
  no early stops, so both paths do the same work), the status callback, CSV views
  rewritten after each trial, a function trainable with ``reuse_actors=True``.

Both run one candidate at a time with the same thread count (Ray: one slot of
``--threads`` CPUs), so the difference is the engine's overhead. Reported: the Ray
Tune loop time (``tuner.fit``) over the plain loop (target <= 1.05), the per-trial
overhead in seconds, and separately Ray's start-up (``ray.init``), a fixed cost per
search. The accuracies of both paths are compared too (same seeds and threads ->
the same numbers on CPU).

    python benchmarks/bench_search_overhead.py --quick       # digits, tiny space: ~1-2 min
    python benchmarks/bench_search_overhead.py               # mdconv on Fashion-MNIST, 12 candidates x 3 epochs
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import print_machine  # noqa: E402

QUICK_SPACE = """\
description = "tiny benchmark space for 8x8 digits"
[input]
channels = 1
size = [8, 8]
[stem]
channels = [8, 16]
stride = 1
[defaults]
type = "ir"
expansion = [3, 6]
kernels = [[3], [3, 5]]
[[stages]]
depth = [1, 2]
width = [16, 24]
stride = 2
[head]
channels = [0, 64]
"""


def fixed_candidates(space, n: int, seed: int) -> list[tuple[dict, str]]:
    """``n`` (optuna params, genotype) pairs drawn by a seeded RandomSampler through ``space.suggest``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        arch = space.suggest(trial)
        out.append((dict(trial.params), str(arch)))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return out


def run_loop(settings, info, candidates) -> tuple[float, list[float]]:
    from nas.genotype import Arch
    from nas.search.driver import trial_spec
    from nas.search.feasibility import cost_measurer
    from nas.search.trainable import run_candidate

    spec = trial_spec(settings, "mflops")
    measure = cost_measurer(info)
    accs, first = [], 0.0
    t0 = time.perf_counter()
    for i, (_, arch) in enumerate(candidates):
        mflops, params = measure(Arch.parse(arch))
        results: list[dict] = []
        run_candidate(spec, arch, results.append, mflops=mflops, params=params)
        accs.append(results[-1]["accuracy"] if results and not results[-1].get("failed") else math.nan)
        if i == 0:
            first = time.perf_counter() - t0
    return time.perf_counter() - t0, first, accs


def run_ray(settings, candidates, out: Path, name: str):
    from dataclasses import replace

    import nas
    from nas.search.driver import run_search

    s = replace(settings, out=str(out), name=name, enqueue=[p for p, _ in candidates])
    outcome = run_search(s)
    run = nas.load_run(outcome.path)
    trials = run.trials.sort_values("number")
    by_arch = dict(zip(trials["arch"], trials["accuracy"]))
    # steady state: from the first trial's completion to the last one's (worker start-up excluded)
    done = sorted(t.datetime_complete for t in run.study.trials if t.datetime_complete is not None)
    steady = (done[-1] - done[0]).total_seconds() if len(done) > 1 else math.nan
    return outcome, [by_arch.get(a, math.nan) for _, a in candidates], trials, steady


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="digits + a tiny space, 6 candidates")
    ap.add_argument("--space", default="mdconv")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--n", type=int, default=12, help="candidates")
    # default trainings: the default search's proxy (2000 + 1000 images at 14x14) for 3 epochs,
    # about its mean epochs per trial (2.3 by the rungs, 4.5 in the reference run)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--val-size", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1, help="threads per candidate (= CPUs of the one Ray slot)")
    ap.add_argument("--repeats", type=int, default=1, help="alternate loop/ray this many times; report medians")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from nas.search.fidelity import Fidelity
    from nas.search.prepare import dataset_info, prepare
    from nas.search.settings import SearchSettings
    from nas.space import load_space

    tmp = Path(tempfile.mkdtemp(prefix="bench-search-overhead-"))
    if args.quick:
        space_path = tmp / "quick.toml"
        space_path.write_text(QUICK_SPACE)
        args.space, args.dataset, args.n = str(space_path), "digits", min(args.n, 6)
        args.train_size, args.val_size = 600, 300

    print_machine()
    settings = SearchSettings(
        space=args.space, budget=args.n, dataset=args.dataset, sampler="random", seed=args.seed, out=str(tmp),
        cpus_per_trial=args.threads, num_cpus=args.threads, status_interval=3600,
        fidelity=Fidelity.from_options(epochs=args.epochs, eta=0, train_size=args.train_size, val_size=args.val_size,
                                       final_epochs=0),
    )
    settings = prepare(settings).settings  # validate + resolve the fidelity defaults
    space = load_space(args.space)
    info = dataset_info(settings.dataset, settings.data_dir, settings.fidelity)
    candidates = fixed_candidates(space, args.n, args.seed)
    torch.set_num_threads(args.threads)
    print(f"space    : {space.name}  dataset {info['name']}  {args.n} candidates x {args.epochs} epoch(s) on "
          f"{settings.fidelity.proxy.train_size} images (val {settings.fidelity.proxy.val_size}), {args.threads} thread(s), one at a time")

    loop_times, fit_times, ray_starts, totals, loop_steady, ray_steady = [], [], [], [], [], []
    max_diff = 0.0
    for r in range(args.repeats):
        loop_s, loop_first, loop_accs = run_loop(settings, info, candidates)
        outcome, ray_accs, trials, steady = run_ray(settings, candidates, tmp, f"run{r}")
        loop_steady.append(loop_s - loop_first)
        ray_steady.append(steady)
        states = trials["state"].value_counts().to_dict()
        if states.get("COMPLETE", 0) != args.n:
            print(f"warning: ray run states {states}", file=sys.stderr)
        loop_times.append(loop_s)
        fit_times.append(outcome.timings["fit"])
        ray_starts.append(outcome.timings["ray_start"])
        totals.append(outcome.timings["total"])
        diffs = [abs(a - b) for a, b in zip(loop_accs, ray_accs) if not (math.isnan(a) or math.isnan(b))]
        max_diff = max([max_diff, *diffs])
        print(f"repeat {r}: loop {loop_s:.1f} s | ray tune loop {outcome.timings['fit']:.1f} s "
              f"(+ ray.init {outcome.timings['ray_start']:.1f} s; whole run_search {outcome.timings['total']:.1f} s)")
        import ray

        ray.shutdown()

    loop_s, fit_s = statistics.median(loop_times), statistics.median(fit_times)
    print()
    print(f"{'path':<28}{'seconds':>10}{'per trial':>12}{'ratio':>9}")
    print(f"{'plain in-process loop':<28}{loop_s:>10.1f}{loop_s / args.n:>12.2f}{1.0:>9.3f}")
    print(f"{'Ray Tune (tuner.fit)':<28}{fit_s:>10.1f}{fit_s / args.n:>12.2f}{fit_s / loop_s:>9.3f}")
    start = statistics.median(ray_starts)
    print(f"{'  + ray.init (once)':<28}{start:>10.1f}")
    ls, rs = statistics.median(loop_steady), statistics.median(ray_steady)
    print(f"{'steady state, trials 2..n:':<28}")
    print(f"{'  plain loop':<28}{ls:>10.1f}{ls / (args.n - 1):>12.2f}{1.0:>9.3f}")
    print(f"{'  Ray Tune':<28}{rs:>10.1f}{rs / (args.n - 1):>12.2f}{rs / ls:>9.3f}")
    print()
    verdict = "OK" if fit_s / loop_s <= 1.05 else "ABOVE TARGET"
    print(f"overhead per trial: {(fit_s - loop_s) / args.n:+.2f} s   ratio {fit_s / loop_s:.3f} (target <= 1.05: {verdict})")
    print(f"  of which one-off worker start-up (first trial, Ray vs loop): "
          f"{(fit_s - rs) - (loop_s - ls):+.1f} s; steady-state overhead per trial {(rs - ls) / (args.n - 1):+.3f} s")
    print(f"same accuracies on both paths: max |difference| {max_diff:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
