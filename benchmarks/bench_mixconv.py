"""MixConv2d implementations side by side: split-and-concatenate vs one zero-padded depthwise conv,
contiguous (NCHW) vs channels_last, forward + backward, at realistic small-input shapes.

    python benchmarks/bench_mixconv.py            # full: batch 128, 5 timed repeats
    python benchmarks/bench_mixconv.py --quick    # batch 32, 3 repeats
    python benchmarks/bench_mixconv.py --quick --threads 1   # steadiest on a shared machine

Variants are timed round-robin (one call of each in turn, repeated) so that load from other
processes on a shared machine hits all of them alike; the median is reported, in process CPU
time by default (--clock wall for wall-clock).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from nas.genotype import split_channels
from nas.layers.mixconv import AUTO_IMPL, MixConv2d

KERNEL_GROUPS = ([3], [3, 5], [3, 5, 7], [3, 5, 7, 9], [3, 5, 7, 9, 11])
SHAPES = ((96, 28), (240, 14))  # (channels, H = W): MixNet-S stage-2/stage-4 widths
VARIANTS = (("split", False), ("padded", False), ("split", True), ("padded", True))


def machine_info() -> str:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"platform: {platform.platform()}\ncpu: {cpu}\ncores: {os.cpu_count()}\n"
        f"python: {platform.python_version()}  torch: {torch.__version__}  threads: {torch.get_num_threads()}"
    )


def _step(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor, clock) -> float:
    start = clock()
    y = module(x)
    y.backward(grad)
    end = clock()
    x.grad = None
    for p in module.parameters():
        p.grad = None
    return end - start


def run(batch: int, repeats: int, warmup: int, clock) -> list[dict]:
    rows = []
    for channels, size in SHAPES:
        for kernels in KERNEL_GROUPS:
            torch.manual_seed(0)
            mods, inputs, grads = {}, {}, {}
            for impl, cl in VARIANTS:
                splits = split_channels(channels, len(kernels))
                m = MixConv2d(splits, splits, kernels, impl=impl)
                x = torch.randn(batch, channels, size, size)
                if cl:
                    m = m.to(memory_format=torch.channels_last)
                    x = x.contiguous(memory_format=torch.channels_last)
                x.requires_grad_(True)
                with torch.no_grad():
                    g = torch.ones_like(m(x))
                mods[impl, cl], inputs[impl, cl], grads[impl, cl] = m, x, g
            times: dict = {v: [] for v in VARIANTS}
            for i in range(warmup + repeats):
                for v in VARIANTS:
                    t = _step(mods[v], inputs[v], grads[v], clock)
                    if i >= warmup:
                        times[v].append(t)
            med = {v: statistics.median(ts) * 1e3 for v, ts in times.items()}
            rows.append({"channels": channels, "size": size, "kernels": kernels, "ms": med})
            k = ".".join(map(str, kernels))
            print(
                f"C={channels:3d} {size:2d}x{size:<2d} k{k:<10s} "
                + "  ".join(f"{impl}{'/CL' if cl else '   '} {med[impl, cl]:7.1f}" for impl, cl in VARIANTS)
                + f"   padded/split NCHW {med['padded', False] / med['split', False]:4.2f}"
                + f"  CL {med['padded', True] / med['split', True]:4.2f}"
                + f"   CL/NCHW split {med['split', True] / med['split', False]:4.2f}",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batch 32, 3 repeats")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default="cpu",
        help="cpu: process CPU time (steadiest on a shared machine with --threads 1); wall: perf_counter",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch or (32 if args.quick else 128)
    repeats = args.repeats or (3 if args.quick else 5)
    print(machine_info())
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"MixConv2d forward+backward, batch {batch}, median of {repeats} ({args.clock} time, ms); CL = channels_last")
    print(f"auto currently means: {AUTO_IMPL} (others: padded)")
    rows = run(batch, repeats, warmup=1, clock=clock)
    geo = {}
    for key in (("padded", False, "split", False), ("padded", True, "split", True), ("split", True, "split", False), ("padded", True, "split", False)):
        ratios = [r["ms"][key[0], key[1]] / r["ms"][key[2], key[3]] for r in rows]
        geo[key] = statistics.geometric_mean(ratios)
    print("geometric mean of time ratios over all shapes and kernel groups:")
    print(f"  padded / split (NCHW):          {geo['padded', False, 'split', False]:.2f}")
    print(f"  padded / split (channels_last): {geo['padded', True, 'split', True]:.2f}")
    print(f"  split CL / split NCHW:          {geo['split', True, 'split', False]:.2f}")
    print(f"  padded CL / split NCHW:         {geo['padded', True, 'split', False]:.2f}")
    multi = [r for r in rows if len(r["kernels"]) > 1]
    best = {}
    for r in multi:
        v = min(r["ms"], key=r["ms"].get)
        best[v] = best.get(v, 0) + 1
    print("fastest variant count (multi-kernel rows):", {f"{i}{'/CL' if c else ''}": n for (i, c), n in best.items()})


if __name__ == "__main__":
    main()
