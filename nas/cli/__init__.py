"""The ``nas`` command: one sub-module per sub-command, each with ``add_parser`` and ``run``.

Exit codes: 0 success, 2 bad input (one line naming the file, key or token; no
traceback), 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from nas.errors import NasInputError

# Sub-command modules, in the order `nas --help` lists them.
_COMMANDS = ("spaces", "search", "pareto", "retrain", "export", "supernet")


def _load(name: str):
    import importlib

    return importlib.import_module(f"nas.cli.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas",
        description="Multi-objective architecture search for MixConv-style networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        try:
            module = _load(name)
        except ModuleNotFoundError as exc:
            if exc.name == f"nas.cli.{name}":
                continue  # sub-command not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except NasInputError as exc:
        print(f"nas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
