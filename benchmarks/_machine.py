"""Shared by the search benchmarks: print the machine (platform, CPU model, cores, torch version)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_machine() -> None:
    import optuna
    import ray
    import torch

    print(f"platform : {platform.platform()}")
    print(f"cpu      : {cpu_model()}  ({os.cpu_count()} logical cores)")
    try:
        print(f"load avg : {' '.join(f'{x:.2f}' for x in os.getloadavg())}  (1, 5, 15 min; other work on the machine skews timings)")
    except OSError:
        pass
    print(f"torch    : {torch.__version__}   optuna {optuna.__version__}   ray {ray.__version__}")
