"""What ``nas search`` takes (:class:`SearchSettings`) and gives back (:class:`SearchOutcome`),
and the checks of its plain values (numbers, objectives, sampler) - no file, data or Ray yet."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from nas.errors import NasInputError
from nas.search.fidelity import Fidelity

SAMPLERS = ("tpe", "nsga2", "nsga3", "random")
# Picked by benchmarks/bench_samplers.py (hypervolume at equal budget); see its docstring.
DEFAULT_SAMPLER = "tpe"
OBJECTIVES = {"mflops": "mflops", "flops": "mflops", "params": "params", "latency": "latency_ms", "latency_ms": "latency_ms"}
DEFAULT_CPUS_PER_TRIAL = 1.0
DEFAULT_GPUS_PER_TRIAL = 0.0


@dataclass
class SearchSettings:
    """Everything ``nas search`` takes; ``resume`` set means: continue that run folder.

    ``cpus_per_trial`` / ``gpus_per_trial`` None means "not given": a new run takes the
    defaults (1 CPU, no GPU), a resumed one what its config.json records. On resume the
    resources (these two, ``address``, ``num_cpus``), ``budget`` (raise only), ``verbose`` and
    ``status_interval`` may change; everything else comes from the run's config.json.
    """

    space: Optional[str] = None
    budget: Optional[int] = None
    dataset: str = "fashion-mnist"
    data_dir: Optional[str] = None
    download: bool = False
    objectives: tuple[str, str] = ("accuracy", "mflops")
    max_mflops: Optional[float] = None
    max_params: Optional[int] = None
    sampler: str = DEFAULT_SAMPLER
    seed: int = 0
    out: str = "results"
    name: Optional[str] = None
    cpus_per_trial: Optional[float] = None
    gpus_per_trial: Optional[float] = None
    address: Optional[str] = None
    storage: Optional[str] = None
    fidelity: Fidelity = field(default_factory=Fidelity)
    resume: Optional[str] = None
    verbose: bool = False
    status_interval: float = 30.0
    num_cpus: Optional[int] = None  # local Ray only: cores to give Ray (default: all)
    # memory one trial may need for training (MB, estimated before training; None: the
    # machine's available memory divided by the trials that run at once)
    trial_memory_mb: Optional[float] = None
    # CPU seconds one trial may use; past it the kernel stops its worker (RLIMIT_CPU)
    trial_cpu_limit: Optional[float] = None
    # Optuna params of candidates to try first (study.enqueue_trial), e.g. a fixed set for a benchmark.
    enqueue: list = field(default_factory=list)


@dataclass
class SearchOutcome:
    path: Path
    front: Any  # pandas DataFrame
    done: int
    budget: int
    interrupted: bool
    stop_reason: Optional[str]
    timings: dict = field(default_factory=dict)  # seconds: ray_start, fit (Ray Tune loop), total
    failures: list = field(default_factory=list)  # [(fail_reason, count)] of counted FAIL trials, most common first


def parse_objectives(text: str | tuple | list) -> tuple[str, str]:
    items = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    if len(items) != 2 or items[0] != "accuracy" or items[1] not in OBJECTIVES:
        raise NasInputError(
            f"--objectives {','.join(items) if items else text!r}: expected accuracy plus one of "
            f"mflops, params, latency (e.g. accuracy,mflops)"
        )
    return ("accuracy", OBJECTIVES[items[1]])


def make_sampler(name: str, seed: int, budget: int):
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                          n_startup_trials=max(5, min(20, budget // 10)))
    population = max(8, min(50, budget // 5))
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=population)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise NasInputError(f"--sampler {name!r}: expected one of {', '.join(SAMPLERS)}")


def check_numbers(s: SearchSettings) -> None:
    """The plain values are in range (resources resolved: not None)."""
    if s.budget is None or s.budget < 1:
        raise NasInputError(f"--budget must be a positive number of trials, got {s.budget}")
    if s.max_mflops is not None and not s.max_mflops > 0:
        raise NasInputError(f"--max-mflops must be positive, got {s.max_mflops:g}")
    if s.max_params is not None and s.max_params < 1:
        raise NasInputError(f"--max-params must be positive, got {s.max_params}")
    if s.sampler not in SAMPLERS:
        raise NasInputError(f"--sampler {s.sampler!r}: expected one of {', '.join(SAMPLERS)}")
    _check_resources(s)
    if s.trial_memory_mb is not None and not s.trial_memory_mb > 0:
        raise NasInputError(f"--trial-memory must be a positive number of MB, got {s.trial_memory_mb:g}")
    if s.trial_cpu_limit is not None and not s.trial_cpu_limit >= 1:
        raise NasInputError(f"--trial-cpu-limit must be >= 1 CPU second, got {s.trial_cpu_limit:g}")
    if s.status_interval <= 0:
        raise NasInputError(f"status interval must be positive, got {s.status_interval}")


def _check_resources(s: SearchSettings) -> None:
    if not s.cpus_per_trial > 0:
        raise NasInputError(f"--cpus-per-trial must be positive, got {s.cpus_per_trial:g}")
    if s.gpus_per_trial < 0:
        raise NasInputError(f"--gpus-per-trial must be >= 0, got {s.gpus_per_trial:g}")
    if s.num_cpus is not None and s.num_cpus < 1:
        raise NasInputError(f"--num-cpus must be >= 1, got {s.num_cpus}")
    if s.address:
        return
    cpus = s.num_cpus or os.cpu_count() or 1
    if s.cpus_per_trial > cpus:
        raise NasInputError(f"--cpus-per-trial {s.cpus_per_trial:g} exceeds the {cpus} CPU(s) of the local Ray: no trial could start")
    if s.gpus_per_trial > 0:
        import torch

        if not torch.cuda.is_available():
            raise NasInputError(f"--gpus-per-trial {s.gpus_per_trial:g}: no CUDA GPU is visible on this machine")


__all__ = ["DEFAULT_SAMPLER", "OBJECTIVES", "SAMPLERS", "SearchOutcome", "SearchSettings", "check_numbers",
           "make_sampler", "parse_objectives"]
