"""Partial padding overhead: one full training step (forward + backward + SGD step) of a small
built network with every depthwise conv at pad=zeros vs pad=partial (reflect for reference).

    python benchmarks/bench_padding.py            # batch 128, 28x28x1, 10 timed steps
    python benchmarks/bench_padding.py --quick    # batch 64, 6 timed steps

Variants are stepped round-robin (rotating who goes first) so load from other processes hits them
alike. Reported: wall-clock median and minimum, and process CPU time median (with --threads 1
the CPU time is the estimate least disturbed by other processes on a shared machine).
The partial ratio is cached per input shape, so after the first step its cost is one in-place
multiply per depthwise conv output (and its mirror in backward).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bench_mixconv import machine_info
from nas.builder import build

NETWORK = (
    "stem c16 s1 | ds k3 c16 PAD | ir k3.5 e3 c24 s2 PAD, ir k3.5 e3 c24 PAD"
    " | ir k3.5.7 e6 c40 s2 se0.25 act=swish PAD, ir k3.5.7.9 e3 c40 se0.25 act=swish PAD r2"
    " | ir k3.5.7.9 e6 c80 s2 se0.25 act=swish PAD, ir k3.5.7 e3 c80 se0.25 act=swish PAD | head c256"
)
MODES = ("zeros", "partial", "reflect")


def genotype(pad: str) -> str:
    return NETWORK.replace(" PAD", "" if pad == "zeros" else f" pad={pad}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batch 64, 6 timed steps")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels-last", action="store_true", help="model and input in channels_last")
    parser.add_argument("--impl", default="auto", choices=("auto", "split", "padded"))
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch or (64 if args.quick else 128)
    steps = args.steps or (6 if args.quick else 10)
    print(machine_info())
    print(f"network: {genotype('zeros')}")
    print(
        f"training step (fwd+bwd+SGD), batch {batch}, {args.size}x{args.size}x1, 10 classes, impl={args.impl}, "
        f"{'channels_last' if args.channels_last else 'contiguous'}, median of {steps} steps after 2 warm-up"
    )
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    runs = {}
    for mode in MODES:
        torch.manual_seed(0)
        model = build(genotype(mode), num_classes=10, in_chans=1, impl=args.impl).to(memory_format=fmt).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        runs[mode] = (model, opt)
    x = torch.randn(batch, 1, args.size, args.size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    times = {mode: [] for mode in MODES}
    cpu_times = {mode: [] for mode in MODES}
    for i in range(2 + steps):
        order = MODES[i % len(MODES):] + MODES[: i % len(MODES)]  # rotate who goes first
        for mode in order:
            model, opt = runs[mode]
            start, cpu_start = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            if i >= 2:
                times[mode].append(elapsed)
                cpu_times[mode].append(cpu)
    stats = {
        "wall median": {m: statistics.median(ts) * 1e3 for m, ts in times.items()},
        "wall min": {m: min(ts) * 1e3 for m, ts in times.items()},
        "cpu median": {m: statistics.median(ts) * 1e3 for m, ts in cpu_times.items()},
    }
    print(f"{'ms/step':12s}" + "".join(f"{'pad=' + m:>16s}" for m in MODES) + "".join(f"{m + '/zeros':>16s}" for m in MODES[1:]))
    for name, st in stats.items():
        print(
            f"{name:12s}" + "".join(f"{st[m]:16.1f}" for m in MODES)
            + "".join(f"{st[m] / st['zeros']:16.3f}" for m in MODES[1:])
        )
    print(
        "partial overhead: "
        + ", ".join(f"{100 * (st['partial'] / st['zeros'] - 1):+.1f}% ({name})" for name, st in stats.items())
    )


if __name__ == "__main__":
    main()
