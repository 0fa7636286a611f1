"""Which Optuna sampler finds the best accuracy/MFLOPs front at equal budget?

Each sampler (tpe, nsga2, nsga3, random) runs the real search (``run_search``: Ray
Tune, the multi-objective successive-halving scheduler, the Optuna study) with the
same budget, space, data and fidelity, for several seeds. Score: the hypervolume of
the run's Pareto front (COMPLETE full-fidelity trials) in the plane

    x = accuracy (maximised),  y = log10(MFLOPs) (minimised)

against a FIXED reference point: accuracy = chance (1 / classes) and
log10(1.1 x the largest MFLOPs among 200 architectures sampled from the space with
seeds 0..199) - printed, and overridable with ``--ref-mflops``. Log MFLOPs because
the candidates span orders of magnitude; chance accuracy because a model at chance
is worth nothing whatever its cost. Larger is better.

Fidelity: cheaper than a real search to fit the time (default 3 epochs max with
eta 3 on 1000 training / 500 validation images); the ranking of samplers at a cheap
fidelity is the question here, not the absolute accuracies. The sampler settings
are the engine's own (``nas.search.settings.make_sampler``).

    python benchmarks/bench_samplers.py --quick      # digits, small 8x8 space, budget 10, 1 seed
    python benchmarks/bench_samplers.py              # mdconv on Fashion-MNIST, budget 60, 3 seeds
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
description = "small benchmark space for 8x8 digits"
[input]
channels = 1
size = [8, 8]
[stem]
channels = [8, 16]
stride = 1
[defaults]
type = "ir"
expansion = [1, 3, 6]
kernels = [[3], [3, 5], [3, 5, 7]]
se = [0, 0.25]
act = ["relu", "swish"]
[[stages]]
depth = [1, 2]
width = [8, 16, 24]
stride = 1
[[stages]]
depth = [1, 2]
width = [16, 32, 48]
stride = 2
[head]
channels = [0, 64]
"""


def reference_mflops(space, info, n: int = 200) -> float:
    from nas.search.feasibility import cost_measurer

    measure = cost_measurer(info)
    return 1.1 * max(measure(space.sample(seed))[0] for seed in range(n))


def front_hypervolume(front, chance: float, ref_mflops: float) -> float:
    from nas.moo import hypervolume_2d

    pts = [(float(a), math.log10(float(m))) for a, m in zip(front["accuracy"], front["mflops"]) if m > 0]
    return hypervolume_2d(pts, ("max", "min"), (chance, math.log10(ref_mflops)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--samplers", default="tpe,nsga2,nsga3,random")
    ap.add_argument("--space", default="mdconv")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--eta", type=float, default=3.0)
    ap.add_argument("--train-size", type=int, default=1000)
    ap.add_argument("--val-size", type=int, default=500)
    ap.add_argument("--cpus-per-trial", type=float, default=1.0)
    ap.add_argument("--ref-mflops", type=float, default=None, help="reference MFLOPs (default: 1.1 x max of 200 samples)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-samplers-"))
    if args.quick:
        space_path = tmp / "quick.toml"
        space_path.write_text(QUICK_SPACE)
        args.space, args.dataset = str(space_path), "digits"
        args.budget, args.seeds, args.train_size, args.val_size = 10, 1, 600, 300

    import logging

    import ray

    from nas.search.driver import run_search
    from nas.search.fidelity import Fidelity
    from nas.search.prepare import dataset_info
    from nas.search.settings import SearchSettings
    from nas.space import load_space

    print_machine()
    space = load_space(args.space)
    info = dataset_info(args.dataset, None, Fidelity.from_options(val_size=args.val_size))
    ref = args.ref_mflops or reference_mflops(space, info)
    chance = 1.0 / info["num_classes"]
    print(f"space    : {space.name} ({space.size():.3g} archs)  dataset {info['name']}  budget {args.budget}  "
          f"seeds {args.seeds}  fidelity {args.epochs} epochs (eta {args.eta:g}) on {args.train_size}/{args.val_size} images")
    print(f"reference: accuracy {chance:.3f} (chance), MFLOPs {ref:.4g} (log10 {math.log10(ref):.3f})")
    ray.init(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)

    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    results: dict[str, list[tuple[float, int, float]]] = {s: [] for s in samplers}
    for seed in range(args.seeds):
        for sampler in samplers:  # interleaved so machine-load drift hits every sampler alike
            t0 = time.perf_counter()
            outcome = run_search(SearchSettings(
                space=args.space, budget=args.budget, dataset=args.dataset, sampler=sampler, seed=seed,
                out=str(tmp), name=f"{sampler}-{seed}", cpus_per_trial=args.cpus_per_trial, status_interval=3600,
                fidelity=Fidelity.from_options(epochs=args.epochs, eta=args.eta, train_size=args.train_size,
                                               val_size=args.val_size, final_epochs=0),
            ))
            hv = front_hypervolume(outcome.front, chance, ref)
            results[sampler].append((hv, len(outcome.front), time.perf_counter() - t0))
            print(f"  {sampler:<7} seed {seed}: hypervolume {hv:.4f}  front {len(outcome.front)}  "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    ray.shutdown()

    print()
    print(f"{'sampler':<9}{'HV mean':>9}{'HV sd':>8}{'vs random':>11}{'front':>7}{'time s':>8}   per seed")
    base = statistics.mean(h for h, _, _ in results["random"]) if results.get("random") else None
    ranking = []
    for sampler, rows in results.items():
        hvs = [h for h, _, _ in rows]
        mean = statistics.mean(hvs)
        sd = statistics.stdev(hvs) if len(hvs) > 1 else 0.0
        rel = f"{mean / base:.3f}" if base else "-"
        print(f"{sampler:<9}{mean:>9.4f}{sd:>8.4f}{rel:>11}{statistics.mean(f for _, f, _ in rows):>7.1f}"
              f"{statistics.mean(t for _, _, t in rows):>8.0f}   {' '.join(f'{h:.4f}' for h in hvs)}")
        ranking.append((mean, sampler))
    best = max(ranking)[1]
    print(f"\nbest mean hypervolume: {best}  (nas.search.settings.DEFAULT_SAMPLER should follow the full run, "
          f"not --quick: one seed at budget 10 decides nothing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
