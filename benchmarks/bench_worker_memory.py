"""Does a reused search worker stay flat? Resident memory across many trials in one process.

A Ray worker is reused trial after trial (``reuse_actors=True``), so whatever a trial leaves
behind adds up over a 200-trial search. This runs the worker's own function
(``nas.search.trainable.run_candidate``, which ends each trial with ``release_memory()``) on
``--n`` fixed candidates (a seeded random draw of the space) one after another in this
process, and reports resident memory (``/proc/self/statm``) after each trial. With
``--trace`` it also keeps ``tracemalloc`` snapshots at trial ``--from`` and at the end and
prints where Python-level allocations grew, so a leak in a cache or in Python objects is
named; growth that ``tracemalloc`` does not see is native (torch, oneDNN, glibc).

    python benchmarks/bench_worker_memory.py --quick                      # digits, ~1 min
    python benchmarks/bench_worker_memory.py --n 200 --trace              # mdconv, scratch proxy
    python benchmarks/bench_worker_memory.py --n 200 --supernet DIR       # one-shot trials

Target (issue 20): RSS after the last trial within 50 MB of RSS after trial 20.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import print_machine  # noqa: E402
from bench_search_overhead import QUICK_SPACE, fixed_candidates  # noqa: E402

TARGET_MB = 50.0


def rss_mb() -> float:
    """This process's resident memory now, in MB (what a search's trials record as ``worker_rss_mb``)."""
    from nas.search.trainable import resident_mb

    return float(resident_mb())


def top_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, limit: int = 12) -> list[str]:
    """The source lines whose live Python allocations grew most between two snapshots."""
    stats = after.compare_to(before, "lineno")
    return [str(s) for s in stats[:limit] if s.size_diff > 0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="digits + a tiny space, 40 candidates")
    ap.add_argument("--space", default="mdconv")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--n", type=int, default=200, help="trials in one process")
    ap.add_argument("--from", dest="start", type=int, default=20, help="the trial the growth is measured from")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-size", type=int, default=500)
    ap.add_argument("--val-size", type=int, default=500)
    ap.add_argument("--resolution", type=int, default=14, help="0: the data's own size")
    ap.add_argument("--supernet", default=None, help="a trained supernet folder: one-shot trials")
    ap.add_argument("--trace", action="store_true", help="tracemalloc snapshots (slows every allocation)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from evaluators.proxy import ProxyConfig
    from nas.search.trainable import TrialSpec, run_candidate
    from nas.space import load_space

    if args.quick:
        space_path = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-worker-memory-quick.toml"
        space_path.write_text(QUICK_SPACE)
        args.space, args.dataset, args.n = str(space_path), "digits", min(args.n, 40)
        args.start = min(args.start, args.n // 2)
        args.train_size, args.val_size = 600, 300
    if not 1 <= args.start < args.n:
        print(f"--from must be in 1..--n - 1 ({args.n - 1}), got {args.start}", file=sys.stderr)
        return 2

    print_machine()
    torch.set_num_threads(1)
    proxy = ProxyConfig(dataset=args.dataset, train_size=args.train_size, val_size=args.val_size, epochs=args.epochs,
                        resolution=args.resolution or None)
    spec = TrialSpec(proxy=proxy, seed=args.seed, threads=1, supernet=args.supernet)
    candidates = fixed_candidates(load_space(args.space), args.n, args.seed)
    print(f"worker  : {args.n} trials of {args.space} on {args.dataset} ({args.train_size} + {args.val_size} images, "
          f"{args.epochs} epoch(s), {'one-shot: ' + args.supernet if args.supernet else 'scratch proxy'}), one process")

    if args.trace:
        tracemalloc.start(8)
    rss, failed, snapshot_from = [], 0, None
    t0 = time.perf_counter()
    for i, (_, arch) in enumerate(candidates, start=1):
        results: list[dict] = []
        run_candidate(spec, arch, results.append)
        failed += bool(results and results[-1].get("failed"))
        rss.append(rss_mb())
        if i == args.start and args.trace:
            snapshot_from = tracemalloc.take_snapshot()
        if i == 1 or i % 10 == 0 or i == args.n:
            print(f"  trial {i:>4}: RSS {rss[-1]:7.1f} MB  ({time.perf_counter() - t0:6.1f} s)", flush=True)

    growth = rss[-1] - rss[args.start - 1]
    peak = max(rss[args.start - 1:])
    print()
    print(f"RSS after trial {args.start}: {rss[args.start - 1]:.1f} MB; after trial {args.n}: {rss[-1]:.1f} MB; "
          f"peak between {peak:.1f} MB")
    per_trial = growth / (args.n - args.start)
    verdict = "OK" if growth <= TARGET_MB else "ABOVE TARGET"
    print(f"growth {growth:+.1f} MB over {args.n - args.start} trials ({per_trial:+.2f} MB a trial); "
          f"target <= {TARGET_MB:.0f} MB: {verdict}")
    if failed:
        print(f"{failed} trial(s) failed (recorded, as in a search)")
    if args.trace and snapshot_from is not None:
        after = tracemalloc.take_snapshot()
        traced_from = sum(s.size for s in snapshot_from.statistics("filename"))
        traced_to = sum(s.size for s in after.statistics("filename"))
        print(f"tracemalloc: Python-level live allocations {traced_from / 2**20:.1f} -> {traced_to / 2**20:.1f} MB "
              f"({(traced_to - traced_from) / 2**20:+.1f} MB); the rest of the growth is native")
        for line in top_growth(snapshot_from, after):
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
