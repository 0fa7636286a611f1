"""``nas export``: a retrained pick as a standalone PyTorch module (+ TorchScript / ONNX).

    nas export results/RUN --pick m --out DIR                 # picks/m (after `nas retrain`)
    nas export results/RUN --trial 17 --out DIR --format torchscript,onnx
    nas export results/RUN --arch "stem c16 | ..." --out DIR  # a retrained pick with this genotype
    nas export --arch "..." --dataset digits --untrained --out DIR   # fresh weights, no training
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.errors import NasInputError


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help="write a retrained pick as a standalone PyTorch module (model.py + weights)",
        description="Write DIR/model.py (readable, torch-only network code whose state dict matches "
        "nas.build), the weights (weights.safetensors, SHA-256 checked), genotype.txt and metrics.json; "
        "optionally model.torchscript.pt and model.onnx. Every export is verified against the engine model.",
    )
    p.add_argument("run_path", metavar="RUN", nargs="?", help="run folder (its picks/ hold the retrained weights)")
    sel = p.add_mutually_exclusive_group(required=True)
    sel.add_argument("--pick", metavar="NAME", help="a retrained pick: s, m, l, trial-N, mixnet-s, ...")
    sel.add_argument("--trial", metavar="N", type=int, help="the retrained pick of trial N (folder trial-N)")
    sel.add_argument("--arch", metavar="GENOTYPE", help="the retrained pick with this genotype")
    sel.add_argument("--space", metavar="SPACE", help="the retrained pick of this one-point space")
    p.add_argument("--out", metavar="DIR", required=True, help="export folder (created; our files replaced)")
    p.add_argument("--format", default="pytorch",
                   help="comma-separated: pytorch (always), torchscript, onnx (default pytorch)")
    p.add_argument("--picks-dir", metavar="DIR", help="folder holding the pick folders (default RUN/picks)")
    p.add_argument("--untrained", action="store_true",
                   help="with --arch/--space and no retrained pick: export freshly initialised weights")
    p.add_argument("--dataset", help="with --untrained and no RUN: the data set (input shape, classes, mean/std)")
    p.add_argument("--data-dir", help="folder of the data set files (default: the run's)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from nas.export.bundle import export_bundle, parse_formats
    from nas.export.weights import load_weights
    from nas.genotype import Arch
    from nas.cli.context import make_context, space_pick
    from nas.runs.pick_folders import read_metrics

    formats = parse_formats(args.format)
    if args.run_path is None and args.picks_dir is None and not args.untrained:
        raise NasInputError("give the run folder (RUN) or --picks-dir DIR where the retrained picks are")
    ctx = make_context(args.run_path, args.picks_dir or (None if args.run_path else args.out),
                       args.dataset, args.data_dir)
    root = Path(args.picks_dir) if args.picks_dir else ctx.picks_root

    arch = None
    if args.pick or args.trial is not None:
        name = args.pick if args.pick else f"trial-{args.trial}"
        folder = root / name
    else:
        arch = str(space_pick(args.space).arch if args.space else Arch.parse(args.arch))
        folder = _find_by_arch(root, arch)

    metrics = read_metrics(folder) if folder is not None else None
    if metrics and metrics.get("complete"):
        # a finished pick whose weights file is gone is named as such (load_weights), not "not retrained"
        arch = str(Arch.parse(metrics["arch"]))
        weights_path = folder / str(metrics.get("weights_file") or "weights.safetensors")
        state = load_weights(weights_path, metrics.get("weights_sha256"))
        ds = metrics.get("dataset", {})
        info = dict(num_classes=int(ds["num_classes"]), in_chans=int(ds["in_chans"]),
                    image_size=int(ds["image_size"]), mean=ds.get("mean"), std=ds.get("std"),
                    classes=ds.get("classes"))
        weights_origin = str(weights_path)
        metrics = {k: v for k, v in metrics.items() if k not in ("weights_file", "weights_sha256", "format")}
        metrics["trained"] = True
        metrics["pick_folder"] = str(folder)
        title = (f"nas pick {metrics.get('name', folder.name)}: test accuracy "
                 f"{100 * float(metrics['test_accuracy']):.2f}% on {ds.get('name', '?')}, "
                 f"{float(metrics['mflops']):.3g} MFLOPs, {int(metrics['params'])} params.")
    elif arch is not None and args.untrained:
        import nas

        dataset = ctx.load_dataset()
        state = nas.build(arch, num_classes=dataset.num_classes, in_chans=dataset.in_chans).state_dict()
        info = dict(num_classes=dataset.num_classes, in_chans=dataset.in_chans, image_size=dataset.image_size,
                    mean=dataset.mean, std=dataset.std, classes=dataset.classes)
        weights_origin = "export (fresh weights)"
        metrics = {"trained": False, "dataset": {"name": dataset.name}}
        title = "A network generated by nas, with freshly initialised (UNTRAINED) weights."
        print("note: exporting UNTRAINED weights (--untrained)")
    else:
        what = f"pick {folder.name}" if folder is not None else "no retrained pick with this genotype"
        hint = ("run `nas retrain RUN ...` first" if args.pick or args.trial is not None
                else "retrain it first (`nas retrain RUN --arch ...`) or pass --untrained")
        where = f" in {root}" if folder is None else f" ({folder})"
        raise NasInputError(f"{what}{where} is not retrained yet: {hint}")

    result = export_bundle(arch, state, args.out, formats=formats, metrics=metrics, title=title,
                           weights_origin=weights_origin, **info)
    print(f"exported {arch}")
    for f in result.files:
        print(f"  {Path(args.out) / f}")
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in result.max_abs_diff.items())
    print(f"verified against nas.build (max |diff| of logits): {diffs}")
    return 0


def _find_by_arch(root: Path, arch: str) -> Path | None:
    """The first finished pick folder under ``root`` whose genotype is ``arch`` (its weights unchecked)."""
    from nas.genotype import Arch
    from nas.runs.pick_folders import read_metrics

    if not root.is_dir():
        return None
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            m = read_metrics(folder)
            if m and m.get("complete") and str(Arch.parse(m.get("arch", ""))) == arch:
                return folder
        except NasInputError:
            continue
    return None
