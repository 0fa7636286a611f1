"""What a candidate costs and needs before it trains: FLOPs/params, training memory, the
memory a trial may use, and whether a space has any candidate that fits at all."""

from __future__ import annotations

import math
import os
import time
from typing import Any, Optional

from nas.errors import NasInputError
from nas.search.settings import SearchSettings


#: The feasibility check stops drawing after this many seconds (a huge space's candidates
#: take long to build even on the meta device); what it has seen by then decides.
FEASIBILITY_SECONDS = 30.0


def check_space(space: Any, samples: int = 8, seconds: float = 10.0) -> None:
    """What ``nas spaces --check`` and every new search run on a space before anything else:
    sampled candidates print and parse back to themselves (so the search can read its own
    genotypes) and build on the meta device at the space's input size (nothing allocated).
    At least one sample, then as many as ``seconds`` allow."""
    import torch

    from nas.builder import build
    from nas.errors import GenotypeError
    from nas.genotype import Arch

    h, w = space.input_size
    deadline = time.monotonic() + seconds
    for seed in range(samples):
        if seed and time.monotonic() > deadline:
            return
        arch = space.sample(seed)
        text = str(arch)
        try:
            same = Arch.parse(text) == arch
        except GenotypeError as exc:
            raise NasInputError(f"space {space.name!r}: its sample {seed} prints as a genotype that does not parse "
                                f"({exc}): {text}") from None
        if not same:
            raise NasInputError(f"space {space.name!r}: its sample {seed} does not parse back to itself: {text}")
        try:
            with torch.device("meta"):
                build(arch, in_chans=space.input_channels)(torch.empty(1, space.input_channels, h, w))
        except (RuntimeError, ValueError) as exc:
            raise NasInputError(f"space {space.name!r}: its sample {seed} cannot run on a "
                                f"{space.input_channels}x{h}x{w} input ({exc}): {text}") from None


def check_feasible(space: Any, s: SearchSettings, info: dict[str, Any], samples: int = 40,
                   seconds: float = FEASIBILITY_SECONDS) -> None:
    """Some sampled candidates fit the trial memory and satisfy the constraints (else the
    search would only reject). Memory is estimated first, on the meta device, so a network
    far too large for the machine is never built for real. Bounded by ``samples`` draws and
    ``seconds``."""
    fits = memory_measurer(s, info)
    measure = cost_measurer(info)
    constrained = s.max_mflops is not None or s.max_params is not None
    best_mflops, best_params, best_mem, fitting = math.inf, math.inf, math.inf, 0
    deadline = time.monotonic() + seconds
    for seed in range(samples):
        if seed and time.monotonic() > deadline:
            samples = seed  # what the messages below report
            break
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


__all__ = ["available_memory_bytes", "check_feasible", "check_space", "cost_measurer", "memory_measurer", "trial_memory_budget_mb"]
