"""Supernet training throughput: images/s and achieved GMAC/s against this machine's matmul peak.

    python benchmarks/bench_supernet_throughput.py                 # mdconv at 28x28, batch 128
    python benchmarks/bench_supernet_throughput.py --threads 2 --steps 4

One sandwich step (largest, smallest and 2 random subnets, forward + backward on one batch, as
:class:`nas.supernet.training.SupernetTrainer` runs it) is timed in each variant, round-robin over
the same steps so load from other processes hits every variant alike:

- ``contiguous``: NCHW activations and views;
- ``channels_last``: the trainer's default on CPU and CUDA (views copied into channels_last);
- ``compiled largest``: channels_last, with the largest subnet (the teacher, run every step and
  the bulk of the work) through ``torch.compile``; the smallest and random ones stay eager
  (a random subnet is new each step, so compiling it would recompile every step). Its one-off
  compile time is printed apart.

Achieved GMAC/s = (multiply-adds of the step's subnets at batch 1, fvcore) x batch x 3
(backward ~ 2x forward) / seconds. The peak is a float32 ``torch.mm`` of 2048x2048 with the same
thread count, measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import print_machine  # noqa: E402


def matmul_peak_gmacs(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return n**3 / best / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="mdconv")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--kernel", choices=("transform", "centre"), default=None,
                        help="how a k-group takes its kernel (default: OneShotConfig()'s, what a search trains)")
    parser.add_argument("--profile", action="store_true",
                        help="also: one channels_last step by op (torch.profiler), and each depthwise kernel "
                             "size's forward, backward-data and backward-weight time at the step's shapes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import nas
    from evaluators.cost import measure_cost
    from nas.supernet import Supernet
    from nas.supernet.folder import OneShotConfig

    transform = (args.kernel or OneShotConfig().kernel) == "transform"

    print_machine()
    print(f"threads  : {args.threads}   batch {args.batch}   {args.image_size}x{args.image_size}   space {args.space}   "
          f"kernels {'transform' if transform else 'centre'}")
    space = nas.load_space(args.space)
    torch.manual_seed(0)
    supernet = Supernet(space, num_classes=10, kernel_transform=transform).train()  # its largest subnet is compiled
    in_chans = supernet.in_chans
    rng = random.Random(0)
    steps = [[supernet.largest(), supernet.smallest(), supernet.space.sample(rng), supernet.space.sample(rng)]
             for _ in range(args.steps + 1)]
    macs = [sum(measure_cost(a, in_chans, args.image_size, 10).mflops for a in archs) * 1e6 for archs in steps]
    x = torch.randn(args.batch, in_chans, args.image_size, args.image_size)
    y = torch.randint(0, 10, (args.batch,))

    eager = Supernet(space, num_classes=10, kernel_transform=transform).train()
    eager.load_state_dict(supernet.state_dict())
    supernet.compile_subnet(steps[0][0])

    def run_step(archs, channels_last: bool, compile_largest: bool) -> None:
        net = supernet if compile_largest else eager
        net.channels_last = channels_last
        net.zero_grad(set_to_none=True)
        for arch in archs:
            F.cross_entropy(net(x, arch), y).backward()

    variants = {"contiguous": (False, False), "channels_last": (True, False)}
    if not args.no_compile:
        variants["compiled largest"] = (True, True)
        compile_s = _timed(lambda: run_step(steps[0], True, True))
        print(f"torch.compile of the largest subnet (first step, compile included): {compile_s:.1f} s")
    peak = matmul_peak_gmacs()
    for flags in variants.values():  # warm-up
        run_step(steps[0], *flags)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for s in range(1, args.steps + 1):
        for name, flags in variants.items():
            times[name].append(_timed(lambda: run_step(steps[s], *flags)))
    total_macs = sum(macs[1:]) * args.batch * 3

    print(f"\nmatmul peak (float32 mm 2048x2048, {args.threads} thread(s)): {peak:.1f} GMAC/s\n")
    print("| variant | s per step (median) | images/s | achieved GMAC/s | % of matmul peak | vs contiguous |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(times["contiguous"])
    for name, t in times.items():
        med = statistics.median(t)
        achieved = total_macs / sum(t) / 1e9
        print(f"| {name} | {med:.2f} | {args.batch / med:.0f} | {achieved:.2f} | {100 * achieved / peak:.1f} | "
              f"{base / med:.2f}x |")
    largest, smallest = (measure_cost(a, in_chans, args.image_size, 10).mflops for a in steps[0][:2])
    print(f"\nsubnets per step: 4 (largest {largest:.1f} MMAC, smallest {smallest:.1f} MMAC, 2 random); "
          f"images/s counts the batch once per step")
    if args.profile:
        profile_step(lambda: run_step(steps[1], True, False))
        depthwise_breakdown(args.batch, args.image_size)


def profile_step(step) -> None:
    """One eager channels_last step by op (self CPU time), the biggest first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    print("\none eager channels_last step by op (torch.profiler, self CPU):\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=8,
                                                              max_name_column_width=32, max_shapes_column_width=90))


def depthwise_breakdown(batch: int, size: int, channels: int = 36, repeats: int = 3) -> None:
    """A depthwise conv's forward, backward-data and backward-weight per kernel size (channels_last,
    ``channels`` channels at ``size`` x ``size``), each timed round-robin; the ratio to the forward."""
    x = torch.randn(batch, channels, size, size).contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(x)
    rows = []
    for k in (3, 5, 7, 9):
        w, pad = torch.randn(channels, 1, k, k), k // 2

        def backward(which):
            return lambda: torch.ops.aten.convolution_backward(g, x, w, None, [1, 1], [pad, pad], [1, 1], False,
                                                              [0, 0], channels, which)

        parts = {"forward": lambda: F.conv2d(x, w, padding=pad, groups=channels),
                 "backward data": backward([True, False, False]), "backward weight": backward([False, True, False])}
        for fn in parts.values():
            fn()
        times = {name: [] for name in parts}
        for _ in range(repeats):
            for name, fn in parts.items():
                times[name].append(_timed(fn))
        rows.append((k, {name: 1000 * statistics.median(t) for name, t in times.items()}))
    print(f"\ndepthwise conv, {channels} channels at {size}x{size}, batch {batch}, channels_last (ms, median of {repeats}):\n")
    print("| kernel | forward | backward data | backward weight | backward weight / forward |")
    print("|---|---:|---:|---:|---:|")
    for k, t in rows:
        print(f"| {k}x{k} | {t['forward']:.1f} | {t['backward data']:.1f} | {t['backward weight']:.1f} | "
              f"{t['backward weight'] / t['forward']:.1f}x |")


if __name__ == "__main__":
    main()
