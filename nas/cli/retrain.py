"""``nas retrain``: pick networks from a run's front (or name them), train them fully, test once.

    nas retrain results/RUN                       # --pick s,m,l: three MFLOPs tiers of the front
    nas retrain results/RUN --targets 3,8,20      # most accurate at or under 3, 8, 20 MFLOPs
    nas retrain results/RUN --trial 17            # any trial, as picks/trial-17
    nas retrain results/RUN --space mixnet-s      # a hand-designed baseline, same recipe and data
    nas retrain results/RUN --arch "stem c16 | ..." --name mine
    nas retrain results/RUN --table               # markdown table of every finished pick
    nas retrain results/RUN --measure-latency     # time every finished pick again, in shared rounds (no training)
    nas retrain --arch "..." --dataset digits --out DIR   # no run folder
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from nas.errors import NasInputError


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "retrain",
        help="retrain picked architectures (S/M/L of the front, a trial, a genotype, a baseline) and test them",
        description="Pick architectures from a run's Pareto front the way MixNet-S/M/L span a compute range, "
        "train each on the FULL training split with the retrain recipe, and score it once on the official "
        "test split. Each pick gets RUN/picks/<name>/ (genotype.txt, metrics.json, curve.csv/png, "
        "weights.safetensors). Interrupted trainings resume from their last epoch.",
    )
    p.add_argument("run_path", metavar="RUN", nargs="?", help="run folder written by `nas search`")
    sel = p.add_argument_group("what to retrain (default: --pick s,m,l)")
    sel.add_argument("--pick", metavar="NAMES",
                     help="tier names, cheapest first (default s,m,l). With s,m,l (or a subset) the front's "
                          "log-MFLOPs range is cut in 3 equal parts and each pick is the most accurate member at "
                          "or under its part's upper bound; other names make that many tiers. With --targets: "
                          "the names of the targets.")
    sel.add_argument("--pick-by", choices=("accuracy", "value"), default="accuracy",
                     help="how a tier chooses: accuracy (default), the most accurate member under its bound; value, "
                          "the member furthest above the run's own accuracy-for-cost curve (fitted on its "
                          "full-fidelity trials)")
    sel.add_argument("--targets", metavar="MFLOPS",
                     help="comma-separated MFLOPs targets, e.g. 3,8,20: the most accurate front member at or "
                          "under each (named s,m,l for three targets, else le<target>)")
    sel.add_argument("--trial", metavar="N", type=int, action="append",
                     help="retrain trial N of the run (repeatable); folder trial-N")
    sel.add_argument("--arch", metavar="GENOTYPE", help="retrain this genotype (folder --name or arch-<hash>)")
    sel.add_argument("--space", metavar="SPACE", action="append",
                     help="retrain the one architecture of a one-point space (mixnet-s, mixnet-m, "
                          "mobilenetv2-3x3, or a .toml path) as a baseline (repeatable)")
    sel.add_argument("--name", help="folder name for --arch / a single --space or --trial pick")
    sel.add_argument("--table", action="store_true",
                     help="print a markdown table of every finished pick (after training, if any was asked)")
    sel.add_argument("--measure-latency", action="store_true",
                     help="measure the CPU latency of every finished pick again (no retraining; e.g. after a "
                          "figure flagged unstable), all in the same rounds, round-robin, each also as a ratio to "
                          "the mobilenetv2-3x3 baseline pick when there is one; recorded in its metrics.json")
    tr = p.add_argument_group("training")
    tr.add_argument("--epochs", type=int, default=None, help="epochs (default 30)")
    tr.add_argument("--batch-size", type=int, default=None, help="batch size (default 128)")
    tr.add_argument("--lr", type=float, default=None, help="learning rate per 256 images (default 0.2)")
    tr.add_argument("--no-ema", action="store_true", help="no EMA of the weights (default: EMA decay 0.999)")
    tr.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda, cuda:1, ...")
    tr.add_argument("--seed", type=int, default=0, help="training seed (default 0); the test split never changes")
    tr.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    tr.add_argument("--force", action="store_true", help="retrain picks that are already finished")
    tr.add_argument("--init", choices=("scratch", "supernet"), default="scratch",
                    help="scratch (default): seeded random weights; supernet: the pick's inherited weights")
    tr.add_argument("--supernet", metavar="DIR", help="with --init supernet: the supernet folder "
                    "(default: the one a --proxy supernet run searched with)")
    io = p.add_argument_group("data and output")
    io.add_argument("--dataset", help="data set when there is no RUN (fashion-mnist, mnist, digits, cifar10, ...)")
    io.add_argument("--data-dir", help="folder of the data set files (default: the run's)")
    io.add_argument("--out", metavar="DIR", help="folder that holds the pick folders (default RUN/picks)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from nas.cli.context import make_context
    from nas.runs.pick_folders import collect_picks

    _check_numbers(args)
    ctx = make_context(args.run_path, args.out, args.dataset, args.data_dir)
    picks = _choose_picks(args, ctx)
    if picks:
        _retrain_all(args, ctx, picks)
    if args.measure_latency:
        _measure_latencies(ctx.picks_root, args.threads)
    if args.table or picks:
        if picks and not args.table:
            print()
        print(markdown_table(collect_picks(ctx.picks_root)))
    return 0


def _measure_latencies(picks_root, threads: int | None) -> None:
    from pathlib import Path

    from nas.retrain import measure_picks_latency
    from nas.runs.pick_folders import collect_picks

    rows = collect_picks(picks_root)
    if not rows:
        raise NasInputError(f"{picks_root}: no finished picks to measure (run `nas retrain RUN --pick s,m,l`)")
    lats = measure_picks_latency([Path(picks_root) / m["name"] for m in rows], threads)
    for name, lat in lats.items():
        flag = "" if lat["stable"] else "  unstable: the machine is busy, measure again"
        others = "" if lat.get("others_cpu") is None else f", other processes {lat['others_cpu']:.2f} cores"
        ratio = "" if "ratio" not in lat else f", {lat['ratio']:.2f}x {lat['baseline']} ±{100 * lat['ratio_spread']:.0f}%"
        print(f"{name}: {lat['median_ms']:.3g} ms ±{100 * lat['spread']:.0f}%{ratio} "
              f"({lat['rounds']} round(s) shared by {len(lats)} pick(s), {lat['threads']} thread(s){others}){flag}")


def _check_numbers(args: argparse.Namespace) -> None:
    for opt in ("epochs", "batch_size", "threads"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            raise NasInputError(f"--{opt.replace('_', '-')} must be >= 1, got {value}")
    if args.lr is not None and not args.lr > 0:
        raise NasInputError(f"--lr must be positive, got {args.lr}")


def _choose_picks(args: argparse.Namespace, ctx) -> list:
    """The picks the flags ask for: front tiers/targets, then --trial, --arch, --space."""
    from nas.picks import parse_names, parse_targets, pick_arch, pick_targets, pick_tiers, pick_trial
    from nas.cli.context import space_pick

    explicit = bool(args.trial or args.arch or args.space)
    front_wanted = args.pick is not None or args.targets is not None or not (explicit or args.table or args.measure_latency)
    picks = []
    if front_wanted:
        if ctx.run is None:
            raise NasInputError("--pick/--targets choose from a run's front: give the run folder (RUN)")
        front = ctx.run.pareto
        if args.targets is not None:
            if args.pick_by != "accuracy":
                raise NasInputError("--pick-by value chooses within the S/M/L tiers; --targets takes the most "
                                    "accurate member under each target")
            targets = parse_targets(args.targets)
            picks += pick_targets(front, targets, parse_names(args.pick) if args.pick else None)
        else:
            picks += pick_tiers(front, parse_names(args.pick) if args.pick else ("s", "m", "l"), by=args.pick_by,
                                peers=ctx.run.full_fidelity if args.pick_by == "value" else None)
    single = sum([len(args.trial or []), bool(args.arch), len(args.space or [])]) == 1
    if args.name is not None and not single:
        raise NasInputError("--name names one --arch / --space / --trial pick; give exactly one of them")
    for number in args.trial or []:
        if ctx.run is None:
            raise NasInputError("--trial needs the run folder (RUN)")
        picks.append(pick_trial(ctx.run.trials, number, args.name))
    if args.arch:
        picks.append(pick_arch(args.arch, args.name))
    for space in args.space or []:
        picks.append(space_pick(space, args.name))
    names = [p.name for p in picks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise NasInputError(f"two picks would share the folder name {dup[0]!r}; use --name")
    return picks


def _supernet_init(args: argparse.Namespace, ctx) -> str | None:
    """The supernet folder ``--init supernet`` starts from (None: from scratch)."""
    if args.init != "supernet":
        if args.supernet:
            raise NasInputError("--supernet needs --init supernet")
        return None
    folder = args.supernet
    if folder is None and ctx.run is not None:
        folder = (ctx.run.config.get("fidelity") or {}).get("supernet")
    if not folder:
        raise NasInputError("--init supernet: give --supernet DIR (the run did not search with a supernet)")
    from nas.supernet.folder import is_complete

    if not is_complete(folder):
        raise NasInputError(f"--supernet {folder}: not trained to the end yet")
    return str(folder)


def _retrain_all(args: argparse.Namespace, ctx, picks: list) -> None:
    """List the picks, retrain each (a duplicate of an earlier one is copied), redraw the run's front."""
    from nas.picks import describe_bound
    from nas.retrain import DEFAULT_EPOCHS, RetrainOptions, retrain_pick
    from nas.runs.pick_folders import copy_pick

    options = RetrainOptions(
        epochs=args.epochs or DEFAULT_EPOCHS, batch_size=args.batch_size, lr=args.lr, ema=not args.no_ema,
        device=args.device, seed=args.seed, threads=args.threads, force=args.force,
        init=_supernet_init(args, ctx),
    )
    dataset = ctx.load_dataset()
    print(f"{len(picks)} pick(s) -> {ctx.picks_root}  ({dataset!r}); interrupt any time: the same "
          f"command resumes after the last finished epoch", flush=True)
    for p in picks:
        where = f"trial {p.number}" if p.number is not None else p.source
        extra = f", search accuracy {p.accuracy:.4f}" if p.accuracy is not None else ""
        bound = f" ({describe_bound(p.bound, p.mflops)} MFLOPs)" if p.bound is not None else ""
        mf = f", {p.mflops:.3g} MFLOPs" if p.mflops is not None else ""
        print(f"  {p.name}: {where}{bound}{mf}{extra}" + (f"  = {p.same_as}" if p.same_as else ""))
    for p in picks:
        folder = ctx.picks_root / p.name
        if p.same_as is not None:
            copy_pick(ctx.picks_root / p.same_as, folder, p)
            print(f"[{p.name}] same trial as {p.same_as}: copied {ctx.picks_root / p.same_as} -> {folder}")
            continue
        info = {"space": p.name} if p.source == "space" else None
        retrain_pick(p, folder, dataset, options, extra=info)
    from nas.runs.pick_folders import picks_root

    if ctx.run is not None and ctx.picks_root == picks_root(ctx.run.path):
        _replot(ctx.run)


def _replot(run) -> None:
    """Redraw RUN/pareto.png so it shows the new picks (nas.runs.pick_folders.picks_decoration)."""
    try:
        from nas.runs.pick_folders import picks_decoration
        from nas.runs.views import write_views

        write_views(run.path, run.refresh().study, run.config, plot=True, decorate=picks_decoration(run.path))
    except Exception as exc:  # noqa: BLE001 - a plot is never worth failing a finished retrain
        print(f"note: could not redraw {run.path / 'pareto.png'}: {exc}")


# --------------------------------------------------------------------------- the picks table


def markdown_table(rows: list[dict[str, Any]], with_arch: bool = True) -> str:
    """One markdown table of picks: name, source, test accuracy, MFLOPs, params, latency."""
    from nas.retrain import human_count, percent

    if not rows:
        return "(no retrained picks yet: run `nas retrain RUN --pick s,m,l`)"
    ds = rows[0].get("dataset", {})
    lines = [
        "| pick | from | test acc. (%) | MFLOPs | params | CPU latency (ms) | epochs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for m in rows:
        lines.append(
            f"| {m['name']} | {_source(m)} | {percent(m.get('test_accuracy'), sign=False)} | "
            f"{_fmt(m.get('mflops'), '.3g')} | {human_count(m.get('params'))} | {_latency(m)} | "
            f"{m.get('epochs', '')} |"
        )
    lat = rows[0].get("latency", {})
    note = (f"\n{ds.get('name', '?')} ({ds.get('in_chans', '?')}x{ds.get('image_size', '?')}x"
            f"{ds.get('image_size', '?')}, {ds.get('num_classes', '?')} classes): trained on the full "
            f"training split ({ds.get('train_images', '?')} images), tested once on the official test split "
            f"({ds.get('test_images', '?')}). MFLOPs = fvcore multiply-adds at batch 1; latency = median, "
            f"CPU, batch 1, {lat.get('threads', 1)} thread(s), ± the interquartile range over the median; "
            f"\"unstable\": the figure did not settle or other processes used the CPU meanwhile (the "
            f"machine was busy): measure it again with "
            f"`nas retrain RUN --measure-latency`.")
    baseline = next((r["latency"]["baseline"] for r in rows if "ratio" in r.get("latency", {})), None)
    if baseline:
        note += (f" The figure in brackets (e.g. 0.59x) is the pick's time over {baseline}'s, both timed in the same rounds "
                 f"(round-robin), which stays comparable when the machine's speed drifts between runs.")
    out = "\n".join(lines) + "\n" + note
    if with_arch:
        out += "\n\n" + "\n".join(f"- **{m['name']}**: `{m['arch']}`" for m in rows)
    return out


def _latency(m: dict[str, Any]) -> str:
    """``0.782 ±6%``; ``12.8 ±140% unstable`` for a figure that did not settle; the bare median for
    picks measured before the spread was recorded."""
    lat = m.get("latency", {})
    text = _fmt(m.get("latency_ms"), ".3g")
    if "spread" not in lat:
        return text
    text += f" ±{100 * float(lat['spread']):.0f}%"
    if "ratio" in lat:  # measured in the same rounds as the baseline pick
        text += f" ({float(lat['ratio']):.2f}x)"
    return text if lat.get("stable", True) else text + " unstable"


def _source(m: dict[str, Any]) -> str:
    src = m.get("source")
    number = m.get("number")
    if src in ("tier", "tier:value"):
        s = f"trial {number}, tier {_tier_bound(m)} MF" + (", by value" if src == "tier:value" else "")
    elif src == "target":
        s = f"trial {number}, target <= {_fmt(m.get('bound'), '.3g')} MF"
    elif src == "trial":
        s = f"trial {number}"
    elif src == "space":
        s = f"space {m.get('space', m['name'])} (baseline)"
    else:
        s = "--arch"
    if m.get("same_as"):
        s += f" (= {m['same_as']})"
    return s


def _tier_bound(m: dict[str, Any]) -> str:
    from nas.picks import describe_bound
    from nas.runs.pick_folders import number_or_inf

    bound = number_or_inf(m.get("bound"))
    return describe_bound(bound, number_or_inf(m.get("mflops"))) if bound != math.inf else "<= -"


def _fmt(v, spec: str) -> str:
    from nas.runs.pick_folders import number_or_inf

    f = number_or_inf(v)
    return format(f, spec) if f != math.inf else "-"
