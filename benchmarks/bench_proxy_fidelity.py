"""Proxy fidelity: does the search's cheap training rank candidates like a longer training does?

Takes ``--archs`` candidates of a finished run (spread evenly over its MFLOPs range) and
trains each, side by side in one run, with

- each proxy setting given by ``--proxies`` (``TRAIN_SIZExEPOCHS``, e.g. ``2000x9`` is the
  default search proxy; ``2000x9b32`` with batch size 32 instead of the proxy's 64), and
- a reference training: ``--reference-epochs`` epochs over the whole TRAIN split (minus
  the validation part), at the same resolution.

All score on the same held-out validation part of the TRAIN split. Reports each
setting's accuracy per candidate, its Kendall tau and Spearman rho against the
reference ranking, and the training time (process CPU time, one thread per training).
MFLOPs alone is listed as a predictor too: a proxy is only worth its training if it ranks
better than the candidates' size does.

``--save FILE`` writes every (setting, arch) result as JSON; ``--reference-from FILE``
takes the reference accuracies from such a file instead of training them again (same
run and ``--archs``), so further proxy settings cost only their own trainings.

    python benchmarks/bench_proxy_fidelity.py --quick
    python benchmarks/bench_proxy_fidelity.py --run results/reference --archs 8 \
        --proxies 2000x9,6000x3 --reference-epochs 2 --save fidelity.json
    python benchmarks/bench_proxy_fidelity.py --run results/reference --archs 8 \
        --proxies 2000x9b32,6000x3b32 --reference-from fidelity.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import print_machine  # noqa: E402


def pick_archs(run_path: str, count: int) -> list[tuple[str, float]]:
    """``count`` distinct genotypes of the run, evenly spread over its MFLOPs range (by rank)."""
    import nas

    trials = nas.load_run(run_path).trials
    trials = trials[trials["fidelity"] > 0].drop_duplicates("arch").sort_values("mflops").reset_index(drop=True)
    if len(trials) < count:
        raise SystemExit(f"{run_path}: only {len(trials)} trained genotypes, asked for {count}")
    rows = [round(i * (len(trials) - 1) / (count - 1)) for i in range(count)] if count > 1 else [0]
    return [(trials.loc[i, "arch"], float(trials.loc[i, "mflops"])) for i in rows]


def train_one(job: tuple[str, str, dict]) -> tuple[str, str, float, float]:
    """(setting, arch, final validation accuracy, CPU seconds) of one training."""
    import torch

    from evaluators.proxy import ProxyConfig, prepare_proxy_data, proxy_train

    setting, arch, config_dict = job
    torch.set_num_threads(1)
    config = ProxyConfig.from_dict(config_dict)
    data = prepare_proxy_data(config)
    start = time.process_time()
    last = None
    for last in proxy_train(arch, data, config, device="cpu", seed=0, threads=1):
        pass
    return setting, arch, float(last.val_accuracy), time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="results/reference", help="run folder whose candidates to use")
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--proxies", default="2000x9,6000x3", help="comma list of TRAIN_SIZExEPOCHS")
    parser.add_argument("--reference-epochs", type=int, default=2)
    parser.add_argument("--reference-size", type=int, default=0, help="0: all TRAIN images but the validation part")
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--resolution", type=int, default=14)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="4 candidates, 2000x3 vs 6000x1, reference 12000x1")
    parser.add_argument("--save", help="write all results to this JSON file")
    parser.add_argument("--reference-from", help="reference accuracies from a JSON file written by --save")
    args = parser.parse_args()
    if args.quick:
        args.archs, args.proxies, args.reference_epochs, args.reference_size = 4, "2000x3,6000x1", 1, 12000

    from scipy.stats import kendalltau, spearmanr

    from evaluators.proxy import ProxyConfig
    from nas.data import load_dataset

    print_machine()
    archs = pick_archs(args.run, args.archs)
    base = ProxyConfig(dataset=args.dataset, val_size=args.val_size, resolution=args.resolution)
    n_train = len(load_dataset(args.dataset).train) - args.val_size
    settings: dict[str, ProxyConfig] = {}
    for token in args.proxies.split(","):
        match = re.fullmatch(r"(\d+)x(\d+)(?:b(\d+))?", token.strip().lower())
        if not match:
            raise SystemExit(f"--proxies: {token!r} is not TRAIN_SIZExEPOCHS[bBATCH], e.g. 2000x9 or 2000x9b32")
        size, epochs, batch = int(match[1]), int(match[2]), int(match[3] or base.batch_size)
        settings[f"proxy {token.strip().lower()}"] = replace(base, train_size=size, epochs=epochs, batch_size=batch)
    results: dict[tuple[str, str], tuple[float, float]] = {}
    if args.reference_from:
        saved = json.loads(Path(args.reference_from).read_text())
        reference = saved["reference"]
        for arch, _ in archs:
            row = saved["results"].get(reference, {}).get(arch)
            if row is None:
                raise SystemExit(f"{args.reference_from}: no reference result for {arch}")
            results[(reference, arch)] = (row["accuracy"], row["cpu_s"])
        print(f"reference accuracies from {args.reference_from} ({reference})")
    else:
        ref_size = args.reference_size or n_train
        reference = f"reference {ref_size}x{args.reference_epochs}"
        settings[reference] = replace(base, train_size=ref_size, epochs=args.reference_epochs)

    jobs = [(name, arch, cfg.as_dict()) for name, cfg in settings.items() for arch, _ in archs]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for setting, arch, acc, cpu in pool.map(train_one, jobs):
            results[(setting, arch)] = (acc, cpu)
            print(f"  {setting:<22} {acc:6.1%} {cpu:6.1f} s  {arch[:90]}", flush=True)
    print(f"wall time {time.perf_counter() - t0:.0f} s, {len(jobs)} trainings on {args.workers} workers\n")

    names = [n for n in settings if n != reference] + [reference]
    if args.save:
        nested: dict[str, dict] = {}
        for (name, arch), (acc, cpu) in results.items():
            nested.setdefault(name, {})[arch] = {"accuracy": acc, "cpu_s": cpu}
        Path(args.save).write_text(json.dumps({"reference": reference, "results": nested}, indent=1))
    header = "| MFLOPs | " + " | ".join(names) + " |"
    print(header)
    print("|" + "---:|" * (len(names) + 1))
    for arch, mflops in archs:
        print(f"| {mflops:.2f} | " + " | ".join(f"{results[(n, arch)][0]:.1%}" for n in names) + " |")
    ref = [results[(reference, a)][0] for a, _ in archs]
    print("\n| setting | Kendall tau vs reference | Spearman rho | mean accuracy | CPU s per candidate |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        accs = [results[(name, a)][0] for a, _ in archs]
        cpu = sum(results[(name, a)][1] for a, _ in archs) / len(archs)
        tau = kendalltau(accs, ref).statistic if name != reference else 1.0
        rho = spearmanr(accs, ref).statistic if name != reference else 1.0
        print(f"| {name} | {tau:.2f} | {rho:.2f} | {sum(accs) / len(accs):.1%} | {cpu:.1f} |")
    sizes = [mflops for _, mflops in archs]
    print(f"| MFLOPs alone | {kendalltau(sizes, ref).statistic:.2f} | {spearmanr(sizes, ref).statistic:.2f} | - | 0 |")


if __name__ == "__main__":
    main()
