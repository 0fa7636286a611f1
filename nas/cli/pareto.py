"""``nas pareto RUN``: print a run's Pareto front (accuracy, MFLOPs, params, arch); ``--plot`` writes pareto.png."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "pareto",
        help="print a run's Pareto front (accuracy, MFLOPs, params, arch)",
        description="Print the Pareto front of a run folder: the non-dominated COMPLETE trials trained to "
        "full fidelity, by cost. Reads the study (the source of truth), so it works while a search runs.",
    )
    p.add_argument("run_path", metavar="RUN", help="a run folder written by `nas search` (results/<run>)")
    p.add_argument("--plot", action="store_true", help="also (re)write RUN/pareto.png and RUN/pareto.csv")
    p.add_argument("--csv", action="store_true", help="print the front as CSV instead of a table")
    p.set_defaults(run=run)
    return p


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "acc":
        return f"{float(value) * 100:.2f}%"
    if kind == "mflops":
        return f"{float(value):.2f}"
    if kind == "ms":
        return f"{float(value):.3f}"
    if kind == "int":
        return f"{int(value):,}"
    return str(value)


def format_front(front) -> str:
    """The front as an aligned text table (one line per architecture)."""
    cols = [("#", "number", "str"), ("accuracy", "accuracy", "acc"), ("MFLOPs", "mflops", "mflops"),
            ("params", "params", "int")]
    if "latency_ms" in front.columns:
        cols.append(("latency ms", "latency_ms", "ms"))
    rows = [[_fmt(r[key], kind) for _, key, kind in cols] + [str(r["arch"])] for _, r in front.iterrows()]
    header = [c[0] for c in cols] + ["arch"]
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) if rows else len(header[i]) for i in range(len(cols))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header[:-1], widths)) + "  arch"]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows]
    return "\n".join(lines)


def print_front(front, run_path: Path | str) -> None:
    if front is None or len(front) == 0:
        print(f"Pareto front of {run_path}: empty (no candidate trained to full fidelity yet)")
        return
    print(f"Pareto front of {run_path} ({len(front)} architectures, trained to full fidelity):")
    print(format_front(front))


def run(args: argparse.Namespace) -> int:
    from nas.runs.pick_folders import picks_decoration
    from nas.runs.views import load_run, write_views

    run_ = load_run(args.run_path)
    if args.plot:
        front = write_views(run_.path, run_.study, run_.config, plot=True, decorate=picks_decoration(run_.path))
    else:
        front = run_.pareto
    if args.csv:
        print(front.to_csv(index=False), end="")
    else:
        print_front(front, run_.path)
        if args.plot:
            print(f"wrote {Path(run_.path) / 'pareto.png'}")
    return 0
