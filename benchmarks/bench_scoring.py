"""What one-shot scoring costs a candidate, and what folding the batch norms saves.

A one-shot candidate's score is a BN recalibration on training images, then an evaluation on
held-out images (:func:`nas.supernet.scoring.score`). This times, per candidate and one
thread (a search worker's), the recalibration and three evaluations of the same recalibrated
subnet side by side, in rotating order:

``unfolded``        ``nas.training.evaluate`` of the subnet as built (before 2026-12-05)
``folded``          its batch norms folded into the convs (``evaluate_folded``, shipped)
``folded-padded``   folded, and every MixConv2d run as one zero-padded depthwise conv

It also checks the three give the same accuracy. The subnets are ``--n`` seeded random draws
of ``mdconv`` (TPE's first proposals are such draws); their weights are the supernet's as
initialised, which costs what trained ones do. Data: the one-shot search's own carve of
Fashion-MNIST (``OneShotConfig()``), never the ground truth's images.

    python benchmarks/bench_scoring.py --n 20                  # the screen and the full score
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import print_machine  # noqa: E402
from bench_search_overhead import fixed_candidates  # noqa: E402

VARIANTS = ("unfolded", "folded", "folded-padded")


def evaluation(variant: str):
    """The evaluation ``variant`` names: a function (recalibrated model, held-out images) -> EvalResult."""
    from nas.layers import MixConv2d
    from nas.supernet.scoring import evaluate_folded
    from nas.training import evaluate

    def run(model, val):
        model = copy.deepcopy(model)
        if variant == "unfolded":
            return evaluate(model, val, "cpu")
        if variant == "folded-padded":
            for m in model.modules():
                if isinstance(m, MixConv2d) and m.depthwise:
                    m.impl = "padded"
        return evaluate_folded(model, val, "cpu", in_place=True)

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="candidates (seeded random draws of the space)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from evaluators.cost import measure_cost
    from nas.space import load_space
    from nas.supernet import Supernet
    from nas.supernet.folder import OneShotConfig, load_data
    from nas.supernet.scoring import SCREEN_CALIBRATION_IMAGES, SCREEN_HELD_OUT_IMAGES, ScoringStage, recalibrate

    torch.set_num_threads(1)
    print_machine()
    config = OneShotConfig()
    data = load_data(config)
    space = load_space(config.space)
    supernet = Supernet(space, num_classes=10, in_chans=1, kernel_transform=True)
    stages = {"screen": ScoringStage(SCREEN_CALIBRATION_IMAGES, SCREEN_HELD_OUT_IMAGES),
              "full": ScoringStage(config.calibration_size, config.val_size)}
    runs = {v: evaluation(v) for v in VARIANTS}
    seconds = {(s, v): [] for s in stages for v in ("recalibration", *VARIANTS)}
    mismatches = {v: 0 for v in VARIANTS}
    mflops = []
    print(f"\n{args.n} candidates of {config.space}, 1 thread; stages: "
          + ", ".join(f"{k} {s.calibration_images} + {s.held_out_images} images" for k, s in stages.items()))
    for i, (_, genotype) in enumerate(fixed_candidates(space, args.n, args.seed)):
        mflops.append(measure_cost(genotype, 1, 28, 10).mflops)
        for name, stage in stages.items():
            calibration, val = stage.take(data.train, data.val)
            start = time.perf_counter()
            model = recalibrate(supernet.subnet(genotype), calibration, "cpu")
            seconds[(name, "recalibration")].append(time.perf_counter() - start)
            order = VARIANTS[i % 3:] + VARIANTS[: i % 3]  # rotating: a slow phase hits each alike
            accuracy = {}
            for variant in order:
                start = time.perf_counter()
                accuracy[variant] = runs[variant](model, val).accuracy
                seconds[(name, variant)].append(time.perf_counter() - start)
            for variant in VARIANTS:
                mismatches[variant] += round(abs(accuracy[variant] - accuracy["unfolded"]) * len(val))
        print(f"  {i + 1:3d}/{args.n} {mflops[-1]:6.2f} MFLOPs  full: "
              + ", ".join(f"{v} {seconds[('full', v)][-1]:.2f} s" for v in ("recalibration", *VARIANTS)), flush=True)

    print(f"\nMFLOPs of the candidates: median {statistics.median(mflops):.2f}, {min(mflops):.2f}-{max(mflops):.2f}")
    print("| stage | recalibration s | " + " | ".join(f"{v} eval s" for v in VARIANTS)
          + " | folded / unfolded (eval) | folded-padded / unfolded (eval) | candidate s, unfolded -> folded |")
    print("|---|---:|" + "---:|" * len(VARIANTS) + "---:|---:|---:|")
    for name in stages:
        med = {v: statistics.median(seconds[(name, v)]) for v in ("recalibration", *VARIANTS)}
        ratios = [statistics.median(f / u for f, u in zip(seconds[(name, v)], seconds[(name, "unfolded")]))
                  for v in ("folded", "folded-padded")]
        total = [statistics.mean(r + e for r, e in zip(seconds[(name, "recalibration")], seconds[(name, v)]))
                 for v in ("unfolded", "folded")]
        print(f"| {name} | {med['recalibration']:.2f} | " + " | ".join(f"{med[v]:.2f}" for v in VARIANTS)
              + f" | {ratios[0]:.2f}x | {ratios[1]:.2f}x | {total[0]:.2f} -> {total[1]:.2f} (mean) |")
    print("(medians over candidates; ratios are the median of per-candidate ratios, timed side by side)")
    print("held-out images scored differently from unfolded: "
          + ", ".join(f"{v} {mismatches[v]}" for v in VARIANTS[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
