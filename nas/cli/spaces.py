"""``nas spaces``: list the built-in search spaces; ``--check FILE`` validates a space file."""

from __future__ import annotations

import argparse

from nas.search.feasibility import check_space
from nas.space import builtin_names, format_size, load_space


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "spaces",
        help="list the built-in search spaces, or check a space file",
        description="List the built-in search spaces (name, size, input, description). "
        "With --check, validate space files (built-in names or paths) and describe them.",
    )
    parser.add_argument(
        "--check",
        metavar="SPACE",
        nargs="+",
        help="validate these spaces (a .toml path or a built-in name) and print their choices and size",
    )
    parser.add_argument(
        "--sample", metavar="N", type=int, default=0, help="with --check: also print N random architectures"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first --sample draw (default 0)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.check:
        for i, name in enumerate(args.check):
            space = load_space(name)
            check_space(space)  # what a search would refuse, --check refuses
            if i:
                print()
            print(space.describe())
            for k in range(max(0, args.sample)):
                print(f"  sample {args.seed + k}: {space.sample(args.seed + k)}")
        return 0
    rows = []
    for name in builtin_names():
        space = load_space(name)
        h, w = space.input_size
        rows.append((name, format_size(space.size()), f"{space.input_channels}x{h}x{w}", space.description.splitlines()[0] if space.description else ""))
    header = ("name", "size", "input", "description")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(3)]
    for row in [header] + rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    return 0
