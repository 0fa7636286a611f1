"""What a candidate costs and needs before it trains: FLOPs/params, training memory, the
memory a trial may use, and whether a space has any candidate that fits at all."""

from __future__ import annotations

import math
import os
from typing import Any, Optional

from nas.errors import NasInputError
from nas.search.settings import SearchSettings


def check_feasible(space: Any, s: SearchSettings, info: dict[str, Any], samples: int = 40) -> None:
    """Some sampled candidates fit the trial memory and satisfy the constraints (else the
    search would only reject). Memory is estimated first, on the meta device, so a network
    far too large for the machine is never built for real."""
    fits = memory_measurer(s, info)
    measure = cost_measurer(info)
    constrained = s.max_mflops is not None or s.max_params is not None
    best_mflops, best_params, best_mem, fitting = math.inf, math.inf, math.inf, 0
    for seed in range(samples):
        arch = space.sample(seed)
        need = fits(arch)
        if need > s.trial_memory_mb:
            best_mem = min(best_mem, need)
            continue
        fitting += 1
        if not constrained:
            return
        mflops, params = measure(arch)
        ok = (s.max_mflops is None or mflops <= s.max_mflops) and (s.max_params is None or params <= s.max_params)
        if ok:
            return
        best_mflops, best_params = min(best_mflops, mflops), min(best_params, params)
    if not fitting:
        raise NasInputError(
            f"space {space.name!r}: none of {samples} sampled architectures fits the trial memory "
            f"({best_mem:,.0f} MB needed at least to train at batch {s.fidelity.proxy.batch_size}, "
            f"{s.trial_memory_mb:,.0f} MB per trial); narrow the space, lower --batch-size or raise --trial-memory"
        )
    raise NasInputError(
        f"constraints --max-mflops {s.max_mflops} / --max-params {s.max_params}: none of {samples} sampled "
        f"architectures of space {space.name!r} satisfies them (smallest seen: {best_mflops:.3g} MFLOPs, "
        f"{int(best_params)} params)"
    )


def available_memory_bytes() -> Optional[int]:
    """MemAvailable from /proc/meminfo (Linux), else physical memory; None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def trial_memory_budget_mb(s: SearchSettings) -> float:
    """Default memory per trial: available memory / trials running at once (local Ray)."""
    avail = available_memory_bytes()
    if avail is None:
        return math.inf
    if s.address:
        return avail / 2**20
    cpus = s.num_cpus or os.cpu_count() or 1
    concurrent = max(1, int(cpus // s.cpus_per_trial))
    return avail / concurrent / 2**20


def memory_measurer(s: SearchSettings, info: dict[str, Any]):
    """``arch -> MB`` one proxy-training step needs (evaluators.cost, on the meta device)."""
    from evaluators.cost import estimate_train_memory_bytes

    size = s.fidelity.train_size_px(info["image_size"])

    def measure(arch: Any) -> float:
        return estimate_train_memory_bytes(arch, info["in_chans"], size, info["num_classes"],
                                           int(s.fidelity.proxy.batch_size), device="meta") / 2**20

    return measure


def cost_measurer(info: dict[str, Any]):
    """``arch -> (mflops, params)`` for the run's input shape and classes (evaluators.cost)."""
    from evaluators.cost import measure_cost

    def measure(arch: Any) -> tuple[float, int]:
        cost = measure_cost(arch, info["in_chans"], info["image_size"], info["num_classes"])
        return float(cost.mflops), int(cost.params)

    return measure


__all__ = ["available_memory_bytes", "check_feasible", "cost_measurer", "memory_measurer", "trial_memory_budget_mb"]
