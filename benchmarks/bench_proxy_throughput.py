"""Proxy-training throughput against the machine's matrix-multiply peak.

For a few networks (small .. large candidates of the ``mdconv`` space at 28x28x1) it
runs the real training loop (``nas.training.train_epochs``: augmentation,
normalisation, forward, backward, SGD step) on a Fashion-MNIST subset and reports:

- images/s of training (epochs after the first; the first one is reported apart,
  it holds one-off costs such as allocator warm-up);
- achieved GFLOP/s, by the convention ``3 x forward MACs x 2 FLOPs`` per image
  (backward ~ 2x forward; one multiply-add = 2 FLOPs; MACs counted by fvcore at
  batch 1, as ``evaluators.flops.count_macs`` when present);
- the ratio of that to the fp32 ``torch.mm`` peak measured in the same run with
  the same thread count;
- channels_last vs contiguous (``--formats``), side by side;
- with ``--compile``, each format again with the model under ``torch.compile`` (the compile
  time lands in the first epoch's seconds, reported apart);
- with ``--profile``, where a training epoch's CPU time goes, by op group (convolutions, batch
  norm, copies and concatenation, activations, the rest), from ``torch.profiler``.

    python benchmarks/bench_proxy_throughput.py --quick          # ~1 minute
    python benchmarks/bench_proxy_throughput.py --threads 2 --images 4096 --epochs 3
    python benchmarks/bench_proxy_throughput.py --space mdconv --samples 8 --formats channels_last \
        --batch-size 64 --images 512 --resolution 14      # the search's candidates, reduced resolution
    python benchmarks/bench_proxy_throughput.py --formats channels_last --compile --profile \
        --networks tiny,mid --images 2560 --epochs 2      # does compiling pay? where does a step go?
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_model  # noqa: E402

from nas.data import load_dataset, split_train_val, stratified_subset  # noqa: E402
from nas.training import Recipe, train_epochs  # noqa: E402

NETWORKS = {
    # name: genotype (28x28x1 input); "tiny" is the smallest mdconv-like candidate.
    "tiny": "stem c16 | ir k3 e3 c16 | ir k3 e3 c24 s2 | ir k3 e3 c40 s2 | ir k3 e3 c80 s2 | head c0",
    "mid": "stem c16 | ir k3.5 e3 c24 | ir k3.5.7 e6 c32 s2, ir k3 e3 c32 | ir k3.5 e6 c56 s2 se0.25 act=swish, "
    "ir k3.5.7 e3 c56 | ir k3.5.7.9 e6 c96 s2 se0.25 act=swish, ir k3 e3 c96 | head c256",
    "large": "stem c16 | ir k3.5.7.9 e6 c24 se0.25 act=swish, ir k3.5.7 e6 c24 se0.25 | "
    "ir k3.5.7.9 e6 c40 s2 se0.25 act=swish, ir k3.5.7 e6 c40 se0.25, ir k3.5 e6 c40 se0.25 | "
    "ir k3.5.7.9 e6 c80 s2 se0.25 act=swish, ir k3.5.7 e6 c80 se0.25, ir k3.5 e6 c80 se0.25 | "
    "ir k3.5.7.9 e6 c120 s2 se0.25 act=swish, ir k3.5.7 e6 c120 se0.25, ir k3.5 e6 c120 se0.25 | head c256",
}


def print_machine(threads: int, device: torch.device) -> None:
    print(f"platform : {platform.platform()}")
    print(f"cpu      : {cpu_model()}  ({os.cpu_count()} logical cores)")
    if device.type == "cuda":
        print(f"gpu      : {torch.cuda.get_device_name(device)}")
    print(f"torch    : {torch.__version__}  threads={threads}  device={device}")


def matmul_peak_gflops(device: torch.device, n: int = 2048, reps: int = 5) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def forward_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    try:
        from evaluators.flops import count_macs
    except ImportError:
        count_macs = None
    if count_macs is not None:
        return int(count_macs(model, input_shape))
    from fvcore.nn import FlopCountAnalysis

    model.eval()
    analysis = FlopCountAnalysis(model, torch.zeros(input_shape))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(analysis.total())


def build(genotype: str) -> nn.Module:
    import nas

    return nas.build(genotype, num_classes=10, in_chans=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small run: 1536 images, 2 epochs, tiny+mid only")
    p.add_argument("--threads", type=int, default=1, help="torch threads (a search trial gets 1)")
    p.add_argument("--images", type=int, default=3072, help="training images per epoch")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--networks", default="tiny,mid,large")
    p.add_argument("--formats", default="contiguous,channels_last")
    p.add_argument("--device", default="auto")
    p.add_argument("--space", default=None, help="also time candidates sampled from this space")
    p.add_argument("--samples", type=int, default=0, help="how many candidates to sample (seeds 0..N-1)")
    p.add_argument("--resolution", type=int, default=None, help="train at this square size (the proxy option)")
    p.add_argument("--val-images", type=int, default=1000)
    p.add_argument("--compile", action="store_true", help="also time each format under torch.compile")
    p.add_argument("--profile", action="store_true", help="split one epoch's CPU time by op group (channels_last)")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.epochs, args.networks = 1536, 2, "tiny,mid"

    torch.set_num_threads(args.threads)
    from nas.training import resolve_device

    device = resolve_device(args.device)
    print_machine(args.threads, device)
    peak = matmul_peak_gflops(device)
    print(f"fp32 torch.mm peak (2048^3): {peak:.1f} GFLOP/s")
    print("FLOP convention: training FLOPs/image = 3 x forward MACs x 2")
    print()

    ds = load_dataset("fashion-mnist")
    train, val = split_train_val(ds, val_size=args.val_images, seed=0)
    train = stratified_subset(train, args.images, seed=0)
    size = 28
    if args.resolution:
        from evaluators.proxy import _resize

        train, val, size = _resize(train, args.resolution), _resize(val, args.resolution), args.resolution
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    variants = [(f, False) for f in formats] + ([(f, True) for f in formats] if args.compile else [])
    networks = {n.strip(): NETWORKS[n.strip()] for n in args.networks.split(",") if n.strip()}
    if args.space and args.samples:
        import nas

        space = nas.load_space(args.space)
        networks.update({f"{args.space}#{i}": str(space.sample(i)) for i in range(args.samples)})
    print(f"data: {len(train)} train / {len(val)} val images at {size}x{size}, batch {args.batch_size}")

    header = (
        f"{'network':10} {'MMACs':>7} {'format':>21} {'img/s':>8} {'1st ep s':>8} {'eval img/s':>10} "
        f"{'GFLOP/s':>8} {'% peak':>7}"
    )
    print(header)
    print("-" * len(header))
    rates: dict[tuple[str, str], float] = {}
    for name, genotype in networks.items():
        macs = forward_macs(build(genotype), (1, 1, size, size))
        for fmt, compiled in variants:
            torch.manual_seed(0)
            model = build(genotype)
            label = fmt + "+compile" if compiled else fmt
            if compiled:
                model = torch.compile(model)
            results = list(train_epochs(model, train, val, recipe, device, seed=0, memory_format=fmt))
            steady = results[1:] or results
            ips = sum(r.train_images for r in steady) / sum(r.train_images / r.images_per_s for r in steady)
            eval_s = sum(r.seconds - r.train_images / r.images_per_s for r in steady) / len(steady)
            eval_ips = len(val) / eval_s if eval_s > 0 else float("inf")
            gflops = ips * 3 * macs * 2 / 1e9
            rates[(name, label)] = ips
            print(
                f"{name:10} {macs / 1e6:7.2f} {label:>21} {ips:8.0f} {results[0].seconds:8.2f} {eval_ips:10.0f} "
                f"{gflops:8.2f} {100 * gflops / peak:6.1f}%",
                flush=True,
            )
    if len(formats) == 2:
        print()
        a, b = formats
        for name in dict.fromkeys(n for n, _ in rates):
            if (name, a) in rates and (name, b) in rates:
                print(f"{name}: {b} / {a} throughput = {rates[(name, b)] / rates[(name, a)]:.2f}x")
    if args.compile:
        print()
        for name in dict.fromkeys(n for n, _ in rates):
            for fmt in formats:
                if (name, fmt) in rates and (name, fmt + "+compile") in rates:
                    print(f"{name}: {fmt}+compile / {fmt} throughput = "
                          f"{rates[(name, fmt + '+compile')] / rates[(name, fmt)]:.2f}x (steady epochs)")
    if args.profile:
        print()
        print_profile(networks, train, recipe, device)
    return 0


#: Op groups of a training step, by the aten op names torch.profiler reports (self CPU time).
OP_GROUPS = {
    "convolution": ("convolution", "conv2d", "mkldnn_convolution", "convolution_backward", "_convolution"),
    "batch norm": ("native_batch_norm", "native_batch_norm_backward", "batch_norm", "_batch_norm_impl_index"),
    "copies, concat": ("copy_", "cat", "_to_copy", "clone", "contiguous", "narrow_copy", "as_strided_scatter"),
    "activations": ("silu", "silu_", "silu_backward", "relu", "relu_", "threshold_backward", "sigmoid",
                    "sigmoid_backward", "hardswish", "hardswish_backward", "clamp_min_"),
}


def print_profile(networks: dict[str, str], train, recipe, device: torch.device) -> None:
    """One channels_last epoch per network under torch.profiler: the share of self CPU time by op group."""
    from torch.profiler import ProfilerActivity, profile

    groups = {op: group for group, ops in OP_GROUPS.items() for op in ops}
    names = list(OP_GROUPS) + ["everything else"]
    print("share of a training epoch's self CPU time (channels_last, torch.profiler):")
    print(f"{'network':10} " + " ".join(f"{n:>15}" for n in names) + f" {'CPU s':>7}")
    for name, genotype in networks.items():
        torch.manual_seed(0)
        model = build(genotype)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            list(train_epochs(model, train, None, recipe.with_(epochs=1), device, seed=0,
                              memory_format="channels_last"))
        totals = dict.fromkeys(names, 0.0)
        for event in prof.key_averages():
            op = event.key.removeprefix("aten::")
            totals[groups.get(op, "everything else")] += event.self_cpu_time_total
        whole = sum(totals.values()) or 1.0
        print(f"{name:10} " + " ".join(f"{100 * totals[n] / whole:14.1f}%" for n in names) + f" {whole / 1e6:7.1f}",
              flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
