"""The search driver: validate, set up the run folder and study, run Ray Tune, write the views.

Order of work (nothing is started or written before the inputs are known good):

1. validate every input (space, dataset, objectives, sampler, numbers, output
   folder writable or run folder resumable and not locked) -> ``NasInputError``;
2. start Ray (local by default, ``ray.init(address=...)`` for ``--address``);
3. create the run folder, take its lock, write ``config.json`` + ``space.toml``,
   create (or, on resume, open) the Optuna study;
4. ``tune.Tuner(...).fit()`` with :class:`~nas.search.searcher.StudySearcher`,
   :class:`~nas.search.scheduler.MultiObjectiveASHA` and the status line;
5. after every finished trial the CSV views are rewritten from the study
   (``pareto.png`` at most once a minute); at the end - and on Ctrl-C - all views.

Ctrl-C: the first one stops the search cleanly (running trials are stopped and
recorded as FAIL "interrupted", not counted; finished ones are kept; views are
rewritten); a second one aborts at once.

Resume (``--resume RUN``): the settings come from ``config.json`` and the space
from ``RUN/space.toml``; trials left RUNNING by a killed search are marked FAIL
"interrupted" (not counted); the search trains ``budget - counted`` more
candidates. Finished trials are never re-run; the sampler sees all of them through
the study, and the successive-halving rungs are refilled from their learning
curves so that promotion decisions continue where they stopped. The sampler is
re-seeded with ``seed + number of trials in the study`` so a resumed search does
not replay the random start-up suggestions of the first session.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

from nas.errors import NasInputError
from nas.results import SPACE_FILE, read_config, storage_url, study_storage, write_views
from nas.search import runfolder
from nas.search.moo import rung_epochs

SAMPLERS = ("tpe", "nsga2", "nsga3", "random")
# Picked by benchmarks/bench_samplers.py (hypervolume at equal budget); see its docstring.
DEFAULT_SAMPLER = "tpe"
PROMOTIONS = ("budgeted", "asha")
OBJECTIVES = {"mflops": "mflops", "flops": "mflops", "params": "params", "latency": "latency_ms", "latency_ms": "latency_ms"}
PNG_EVERY_S = 60.0


@dataclass
class Fidelity:
    """Proxy-training fidelity: successive halving from ``min_epochs`` to ``epochs`` by ``eta``.

    The proxy (``evaluators.proxy``) trains on ``train_size`` images of the dataset's
    TRAIN split and validates on ``val_size`` others of it (the test split is never
    used). ``None`` fields take the proxy's defaults (``ProxyConfig``; measured in
    docs/proxy.md) when the settings are validated. ``eta`` 0 turns successive
    halving off (every trial trains ``epochs`` epochs).
    """

    epochs: Optional[int] = None
    min_epochs: int = 1
    eta: float = 3.0
    train_size: Optional[int] = None
    val_size: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    # square size the proxy trains and scores at (images are shrunk, never enlarged);
    # 0: the data's own size; None: evaluators.proxy.ProxyConfig's default (14)
    resolution: Optional[int] = None
    # "budgeted": a rung lets at most 1/eta of its trials continue (its front always);
    # "asha": plain asynchronous promotion (see nas.search.moo.should_promote)
    promotion: str = "budgeted"

    def resolved(self) -> "Fidelity":
        from evaluators.proxy import ProxyConfig

        base = ProxyConfig()
        return Fidelity(
            epochs=int(self.epochs if self.epochs is not None else base.epochs),
            min_epochs=int(self.min_epochs),
            eta=float(self.eta),
            train_size=int(self.train_size if self.train_size is not None else base.train_size),
            val_size=int(self.val_size if self.val_size is not None else base.val_size),
            batch_size=int(self.batch_size if self.batch_size is not None else base.batch_size),
            lr=float(self.lr if self.lr is not None else base.lr),
            resolution=int(self.resolution if self.resolution is not None else (base.resolution or 0)),
            promotion=self.promotion,
        )

    def train_size_px(self, image_size: int) -> int:
        """The square size a candidate trains at for data of ``image_size`` (never upsampled)."""
        return min(int(image_size), self.resolution) if self.resolution else int(image_size)

    def rungs(self) -> list[int]:
        return rung_epochs(self.min_epochs, self.epochs, self.eta) if self.eta > 1 else []

    def validate(self) -> None:
        if self.promotion not in PROMOTIONS:
            raise NasInputError(f"--promotion {self.promotion!r}: expected one of {', '.join(PROMOTIONS)}")
        if self.epochs < 1:
            raise NasInputError(f"--epochs must be >= 1, got {self.epochs}")
        if not 1 <= self.min_epochs <= self.epochs:
            raise NasInputError(f"--min-epochs must be in 1..--epochs ({self.epochs}), got {self.min_epochs}")
        if not (self.eta > 1 or self.eta == 0):
            raise NasInputError(f"--eta must be > 1 (or 0 to turn successive halving off), got {self.eta:g}")
        if self.train_size < 1 or self.val_size < 1:
            raise NasInputError(f"--train-size and --val-size must be >= 1, got {self.train_size}, {self.val_size}")
        if self.batch_size < 1:
            raise NasInputError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise NasInputError(f"--lr must be a positive number, got {self.lr}")
        if self.resolution is not None and self.resolution != 0 and self.resolution < 4:
            raise NasInputError(f"--proxy-resolution must be >= 4 (or 0: the data's own size), got {self.resolution}")


@dataclass
class SearchSettings:
    """Everything ``nas search`` takes; ``resume`` set means: continue that run folder."""

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
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
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


# --------------------------------------------------------------------------- validation


@dataclass
class Prepared:
    """Validated inputs, ready to run."""

    settings: SearchSettings
    space: Any
    space_text: str
    dataset_info: dict[str, Any]
    run_path: Path
    config: dict[str, Any]
    resuming: bool


def _check_numbers(s: SearchSettings) -> None:
    if s.budget is None or s.budget < 1:
        raise NasInputError(f"--budget must be a positive number of trials, got {s.budget}")
    if s.max_mflops is not None and not s.max_mflops > 0:
        raise NasInputError(f"--max-mflops must be positive, got {s.max_mflops:g}")
    if s.max_params is not None and s.max_params < 1:
        raise NasInputError(f"--max-params must be positive, got {s.max_params}")
    if not s.cpus_per_trial > 0:
        raise NasInputError(f"--cpus-per-trial must be positive, got {s.cpus_per_trial:g}")
    if s.gpus_per_trial < 0:
        raise NasInputError(f"--gpus-per-trial must be >= 0, got {s.gpus_per_trial:g}")
    if s.sampler not in SAMPLERS:
        raise NasInputError(f"--sampler {s.sampler!r}: expected one of {', '.join(SAMPLERS)}")
    if s.num_cpus is not None and s.num_cpus < 1:
        raise NasInputError(f"--num-cpus must be >= 1, got {s.num_cpus}")
    if not s.address:
        cpus = s.num_cpus or os.cpu_count() or 1
        if s.cpus_per_trial > cpus:
            raise NasInputError(f"--cpus-per-trial {s.cpus_per_trial:g} exceeds the {cpus} CPU(s) of the local Ray: no trial could start")
        if s.gpus_per_trial > 0:
            import torch

            if not torch.cuda.is_available():
                raise NasInputError(f"--gpus-per-trial {s.gpus_per_trial:g}: no CUDA GPU is visible on this machine")
    if s.trial_memory_mb is not None and not s.trial_memory_mb > 0:
        raise NasInputError(f"--trial-memory must be a positive number of MB, got {s.trial_memory_mb:g}")
    if s.trial_cpu_limit is not None and not s.trial_cpu_limit >= 1:
        raise NasInputError(f"--trial-cpu-limit must be >= 1 CPU second, got {s.trial_cpu_limit:g}")
    if s.status_interval <= 0:
        raise NasInputError(f"status interval must be positive, got {s.status_interval}")
    s.fidelity.validate()


def _dataset_info(name: str, data_dir: Optional[str], fid: Fidelity, download: bool = False) -> dict[str, Any]:
    from nas.data import load_dataset

    # Downloading (checksummed) happens here, once, before Ray starts; workers then find the files.
    ds = load_dataset(name, data_dir, download=download)
    n = len(ds.train)
    if fid.val_size >= n:
        raise NasInputError(f"--val-size {fid.val_size} must be smaller than the {n} training images of {ds.name}")
    return {
        "name": ds.name,
        "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
        "num_classes": ds.num_classes,
        "in_chans": ds.in_chans,
        "image_size": ds.image_size,
        "train_images": n,
    }


def _check_space_matches(space: Any, info: dict[str, Any]) -> None:
    if space.input_channels != info["in_chans"]:
        raise NasInputError(
            f"space {space.name!r} expects {space.input_channels}-channel input but dataset "
            f"{info['name']!r} has {info['in_chans']} channel(s); pick a matching --space or --dataset"
        )


def _check_storage(url: str, new_study: Optional[str] = None) -> None:
    """The RDB storage opens; for a new run, it has no study of that name yet."""
    try:
        storage = study_storage(url)
        names = {st.study_name for st in storage.get_all_studies()}
    except Exception as exc:  # noqa: BLE001 - sqlalchemy & co raise many kinds
        raise NasInputError(f"--storage {url!r}: cannot open: {exc}") from None
    if new_study is not None and new_study in names:
        raise NasInputError(
            f"--storage {url}: it already holds a study named {new_study!r}; pick another --name "
            f"or --resume the run that owns it"
        )


def prepare(settings: SearchSettings) -> Prepared:
    """Validate everything; nothing is written except the output folder's existence."""
    if settings.resume:
        return _prepare_resume(settings)
    s = replace(settings, fidelity=settings.fidelity.resolved())
    if not s.space:
        raise NasInputError("--space is required (a built-in name such as mdconv, or a .toml file)")
    s.objectives = parse_objectives(s.objectives)
    _check_numbers(s)
    from nas.space import load_space

    space = load_space(s.space)
    space_text = runfolder.read_space_text(space)
    info = _dataset_info(s.dataset, s.data_dir, s.fidelity, s.download)
    _check_space_matches(space, info)
    out = Path(s.out)
    runfolder.check_writable_dir(out, "--out")
    name = runfolder.check_run_name(s.name) if s.name else runfolder.default_run_name(space.name, info["name"])
    run_path = out / name
    if run_path.exists() and any(run_path.iterdir()):
        raise NasInputError(f"{run_path}: run folder already exists; continue it with --resume {run_path} or pick another --name")
    if s.storage:
        _check_storage(s.storage, new_study=name)
    s.trial_memory_mb = s.trial_memory_mb or trial_memory_budget_mb(s)
    _check_feasible(space, s, info)
    config = _new_config(s, space, space_text, info, name)
    return Prepared(s, space, space_text, info, run_path, config, resuming=False)


RESUME_OVERRIDABLE = ("cpus_per_trial", "gpus_per_trial", "address", "verbose", "status_interval", "num_cpus", "budget")


def _prepare_resume(settings: SearchSettings) -> Prepared:
    run_path = Path(settings.resume)
    if run_path.is_dir():
        runfolder.RunLock(run_path).check_free()  # a running search first: its files may still be appearing
    config = read_config(run_path)
    runfolder.check_writable_dir(run_path, "--resume")
    space = runfolder.load_run_space(run_path, config)
    space_text = (run_path / SPACE_FILE).read_text(encoding="utf-8")
    # keys older runs lack: the value they ran with (the proxy's 14 px before --proxy-resolution,
    # plain asynchronous promotion before --promotion)
    before = {"resolution": 14, "promotion": "asha"}
    fid = Fidelity(**{k: config["fidelity"].get(k, before.get(k)) for k in (f.name for f in fields(Fidelity))})
    res = config.get("resources", {})
    budget = settings.budget if settings.budget is not None else int(config["budget"])
    s = SearchSettings(
        space=config["space"].get("source"),
        budget=budget,
        dataset=config["dataset"]["name"],
        data_dir=config["dataset"].get("data_dir"),
        objectives=tuple(config["objectives"]),
        max_mflops=config.get("constraints", {}).get("max_mflops"),
        max_params=config.get("constraints", {}).get("max_params"),
        sampler=config["sampler"],
        seed=int(config["seed"]),
        out=str(run_path.parent),
        name=run_path.name,
        cpus_per_trial=settings.cpus_per_trial if settings.cpus_per_trial != 1.0 else float(res.get("cpus_per_trial", 1.0)),
        gpus_per_trial=settings.gpus_per_trial if settings.gpus_per_trial else float(res.get("gpus_per_trial", 0.0)),
        address=settings.address or None,
        storage=config.get("storage"),
        fidelity=fid,
        resume=str(run_path),
        verbose=settings.verbose,
        status_interval=settings.status_interval,
        num_cpus=settings.num_cpus,
        trial_memory_mb=config.get("constraints", {}).get("trial_memory_mb"),
        trial_cpu_limit=config.get("constraints", {}).get("trial_cpu_limit_s"),
    )
    _check_numbers(s)
    if budget < int(config["budget"]):
        raise NasInputError(f"--budget {budget} is below the run's budget {config['budget']}; a resume can only extend it")
    info = _dataset_info(s.dataset, s.data_dir, fid)
    _check_space_matches(space, info)
    if s.storage:
        _check_storage(s.storage)
    return Prepared(s, space, space_text, info, run_path, config, resuming=True)


def _check_feasible(space: Any, s: SearchSettings, info: dict[str, Any], samples: int = 40) -> None:
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
            f"({best_mem:,.0f} MB needed at least to train at batch {s.fidelity.batch_size}, "
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
                                           int(s.fidelity.batch_size), device="meta") / 2**20

    return measure


def cost_measurer(info: dict[str, Any]):
    """``arch -> (mflops, params)`` for the run's input shape and classes (evaluators.cost)."""
    from evaluators.cost import measure_cost

    def measure(arch: Any) -> tuple[float, int]:
        cost = measure_cost(arch, info["in_chans"], info["image_size"], info["num_classes"])
        return float(cost.mflops), int(cost.params)

    return measure


def _new_config(s: SearchSettings, space: Any, space_text: str, info: dict[str, Any], name: str) -> dict[str, Any]:
    import datetime

    fid = asdict(s.fidelity)
    fid["rungs"] = s.fidelity.rungs()
    return {
        "format": runfolder.CONFIG_FORMAT,
        "name": name,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": runfolder.command_line(),
        "study_name": name,  # one study per run: several runs can share one --storage
        "storage": s.storage,
        "space": runfolder.space_record(space, space_text),
        "dataset": info,
        "objectives": list(s.objectives),
        "constraints": {"max_mflops": s.max_mflops, "max_params": s.max_params,
                        "trial_memory_mb": None if not math.isfinite(s.trial_memory_mb) else round(float(s.trial_memory_mb), 1),
                        "trial_cpu_limit_s": s.trial_cpu_limit},
        "sampler": s.sampler,
        "seed": s.seed,
        "budget": s.budget,
        "budget_counts": "trained candidates: COMPLETE + PRUNED + FAIL while training; infeasible and interrupted ones do not count",
        "fidelity": fid,
        "resources": {"cpus_per_trial": s.cpus_per_trial, "gpus_per_trial": s.gpus_per_trial, "address": s.address},
        "versions": runfolder.versions(),
        "resumes": [],
    }


# --------------------------------------------------------------------------- running


def _quiet_ray_env(verbose: bool) -> None:
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no per-trial CSV/JSON/TBX files
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # our own Ctrl-C handling (see _Interrupt)
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if not verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        os.environ.setdefault("TUNE_WARN_INSUFFICENT_RESOURCE_THRESHOLD_S", "600")
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


def _quiet_loggers(verbose: bool) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.ERROR)
    # Ray Tune logs every failed trial at ERROR with a traceback; the search records the
    # reason in the study (fail_reason) and the status line counts it, so keep it quiet.
    logging.getLogger("ray").setLevel(logging.INFO if verbose else logging.ERROR)
    for name in ("ray.tune", "ray.train", "ray.air", "ray.data"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)
    if not verbose:
        warnings.filterwarnings("ignore", module="ray")
        warnings.filterwarnings("ignore", category=FutureWarning)
        with contextlib.suppress(Exception):
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast on a wrong ``--address``: ``ray.init`` retries an unreachable GCS for minutes."""
    host_port = address.split("://", 1)[-1].rstrip("/")
    if host_port == "auto" or ":" not in host_port:
        return
    host, _, port = host_port.rpartition(":")
    if not port.isdigit():
        raise NasInputError(f"--address {address}: expected HOST:PORT (e.g. 10.0.0.5:6379), got port {port!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise NasInputError(f"cannot reach the Ray cluster at --address {address}: "
                            f"{exc.strerror or exc} (is `ray start --head` running there?)") from None


def _start_ray(s: SearchSettings) -> bool:
    """Start (or connect to) Ray; returns whether we started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.INFO if s.verbose else logging.ERROR,
        "log_to_driver": bool(s.verbose),
        "configure_logging": True,
    }
    if s.address:
        _check_reachable(s.address)
        kwargs["address"] = s.address
        kwargs["runtime_env"] = {"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0"}}
    else:
        # "local": a private Ray instance even when RAY_ADDRESS is set or a `ray start`
        # cluster runs on this machine (joining one is what --address is for).
        kwargs["address"] = "local"
        kwargs["num_cpus"] = s.num_cpus or os.cpu_count() or 1
        kwargs["num_gpus"] = None
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"Ray cluster at --address {s.address}" if s.address else "local Ray"
        hint = (" (is the cluster up? with token authentication, set RAY_AUTH_MODE=token and the token "
                "as for the `ray` command itself)") if s.address else ""
        raise NasInputError(f"cannot start/connect {where}: {str(exc).splitlines()[0] if str(exc) else exc}{hint}") from None
    return True


class _Interrupt:
    """First Ctrl-C (or SIGTERM): stop the search cleanly; second Ctrl-C: abort (KeyboardInterrupt)."""

    def __init__(self, on_stop) -> None:
        self.on_stop = on_stop
        self.stopped = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_Interrupt":
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.stopped:
            raise KeyboardInterrupt
        self.stopped = True
        self.on_stop()
        print("\n[nas] stopping: finishing bookkeeping, keeping every finished trial "
              "(Ctrl-C again to abort at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def run_search(settings: SearchSettings) -> SearchOutcome:
    """Run (or resume) a search end to end; see the module docstring."""
    t_start = time.perf_counter()
    prepared = prepare(settings)
    s = prepared.settings
    _quiet_ray_env(s.verbose)
    _quiet_loggers(s.verbose)

    run_path = prepared.run_path
    created = False
    if not prepared.resuming:
        created = not run_path.exists()
        run_path.mkdir(parents=True, exist_ok=True)
    lock = runfolder.RunLock(run_path)
    # A lock we did not get belongs to another search: its .lock and folder are left alone.
    lock.acquire()
    if not prepared.resuming and (run_path / "config.json").exists():
        # another `nas search --name` on the same folder got there first and has finished
        lock.release()
        raise NasInputError(f"{run_path}: run folder already exists; continue it with --resume {run_path} "
                            f"or pick another --name")
    try:
        started_ray = False
        t_ray = time.perf_counter()
        try:
            if not (prepared.resuming and _budget_reached(prepared)):
                started_ray = _start_ray(s)
        except NasInputError:
            lock.release()
            if created:
                shutil.rmtree(run_path, ignore_errors=True)
            raise
        ray_start = time.perf_counter() - t_ray
        try:
            outcome = _run_locked(prepared, started_ray)
            outcome.timings["ray_start"] = ray_start
            outcome.timings["total"] = time.perf_counter() - t_start
            return outcome
        finally:
            if started_ray:
                import ray

                with contextlib.suppress(Exception):
                    ray.shutdown()
    finally:
        lock.release()


def _budget_reached(prepared: Prepared) -> bool:
    """A resumed run that already trained its budget needs no Ray (views and front only)."""
    from nas.search.searcher import counts_against_budget

    try:
        study = _open_study(prepared, None)
    except Exception:  # noqa: BLE001 - let the real run report storage problems
        return False
    return sum(1 for t in study.get_trials(deepcopy=False) if counts_against_budget(t)) >= prepared.settings.budget


def _open_study(prepared: Prepared, sampler: Any):
    import optuna

    config = prepared.config
    url = storage_url(prepared.run_path, config)
    storage = study_storage(url)
    directions = ["maximize", "minimize"]
    if prepared.resuming:
        study = optuna.load_study(study_name=config["study_name"], storage=storage, sampler=sampler)
    else:
        try:
            study = optuna.create_study(study_name=config["study_name"], storage=storage, sampler=sampler,
                                        directions=directions, load_if_exists=False)
        except optuna.exceptions.DuplicatedStudyError:
            raise NasInputError(
                f"--storage {url}: a study named {config['study_name']!r} already exists there; "
                f"use a fresh storage or --resume the run that owns it"
            ) from None
        study.set_metric_names(list(config["objectives"]))
        study.set_user_attr("nas_run", config["name"])
        for params in prepared.settings.enqueue:
            study.enqueue_trial(dict(params), skip_if_exists=False)
    return study


def trial_spec(s: SearchSettings, info: dict[str, Any], cost_key: str) -> dict[str, Any]:
    """What every trial's worker needs besides its arch (see nas.search.trainable.run_candidate)."""
    fid = s.fidelity
    return {
        "dataset": info["name"],
        "data_dir": info["data_dir"],
        "train_size": fid.train_size,
        "val_size": fid.val_size,
        "data_seed": s.seed,
        "seed": s.seed,
        "epochs": fid.epochs,
        # validation only where the scheduler decides and at the end (~10% of a trial's time)
        "eval_epochs": [*fid.rungs(), fid.epochs],
        "batch_size": fid.batch_size,
        "lr": fid.lr,
        "threads": max(1, int(s.cpus_per_trial)),
        "latency": cost_key == "latency_ms",
        "resolution": fid.resolution or None,
        "cpu_limit_s": s.trial_cpu_limit,
    }


def _run_locked(prepared: Prepared, started_ray: bool) -> SearchOutcome:
    import optuna
    from ray import tune

    from nas.search.progress import StatusLine
    from nas.search.scheduler import MultiObjectiveASHA, RungBook
    from nas.search.searcher import SearchState, StudySearcher, counts_against_budget, describe_trial_error, fail_running_trials
    from nas.search.trainable import train_candidate

    s, config, run_path = prepared.settings, prepared.config, prepared.run_path
    info = prepared.dataset_info
    _quiet_loggers(s.verbose)  # again: ray.init may have reset its loggers
    cost_key = config["objectives"][1]

    if not prepared.resuming:
        (run_path / SPACE_FILE).write_text(prepared.space_text, encoding="utf-8")
        runfolder.write_config(run_path, config)
        study = _open_study(prepared, make_sampler(s.sampler, s.seed, s.budget))
    else:
        probe = _open_study(prepared, None)
        n_existing = len(probe.trials)
        study = _open_study(prepared, make_sampler(s.sampler, s.seed + n_existing, s.budget))
        stale = fail_running_trials(study)
        config["budget"] = s.budget
        config["resources"] = {"cpus_per_trial": s.cpus_per_trial, "gpus_per_trial": s.gpus_per_trial, "address": s.address}
        config.setdefault("resumes", []).append({
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "trials_in_study": n_existing,
            "counted_before": sum(1 for t in study.get_trials(deepcopy=False) if counts_against_budget(t)),
            "marked_interrupted": stale,
            "budget": s.budget,
        })
        runfolder.write_config(run_path, config)

    fid = s.fidelity
    state = SearchState(
        study=study,
        space=prepared.space,
        budget=s.budget,
        max_epochs=fid.epochs,
        cost_key=cost_key,
        measure_cost=cost_measurer(info),
        max_mflops=s.max_mflops,
        max_params=s.max_params,
        measure_memory=memory_measurer(s, info) if s.trial_memory_mb and math.isfinite(s.trial_memory_mb) else None,
        max_memory_mb=s.trial_memory_mb,
    )
    state.load_counts()
    remaining = s.budget - state.done

    views = _Views(run_path, study, config)
    state.on_finished = views.after_trial

    book = RungBook(fid.rungs(), ("max", "min"), fid.eta if fid.eta > 1 else 2.0, budgeted=fid.promotion == "budgeted")
    _preload_rungs(book, study, cost_key)

    def on_error(trial) -> None:
        reason = describe_trial_error(trial)
        if s.trial_cpu_limit and reason.startswith("worker died"):
            reason += f"; or stopped at --trial-cpu-limit {s.trial_cpu_limit:g} CPU s"
        state.errors[trial.trial_id] = reason[:500]

    def on_decision(number: int, rung: int, promote: bool, why: str) -> None:
        if not promote:
            state.pruned_at[number] = f"stopped at {why}"

    scheduler = MultiObjectiveASHA(book, cost_key, key_of=lambda tid: state.live.get(tid), on_error=on_error,
                                   on_decision=on_decision)
    searcher = StudySearcher(state)
    status = StatusLine(state.stats, interval=s.status_interval, on_running=lambda n: setattr(state, "running", n))

    outcome_interrupted = False
    if remaining > 0:
        spec = trial_spec(s, info, cost_key)
        resources = {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial}
        trainable = tune.with_resources(tune.with_parameters(train_candidate, spec=spec), resources)
        interrupt_flag = {"stop": False}

        class _StopOnInterrupt(tune.Stopper):
            def __call__(self, trial_id, result):
                return False

            def stop_all(self):
                return interrupt_flag["stop"]

        def request_stop() -> None:
            interrupt_flag["stop"] = True
            state.interrupted = True

        ray_dir = tempfile.mkdtemp(prefix="nas-ray-")
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=remaining,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=ray_dir,
                verbose=2 if s.verbose else 0,
                callbacks=[status],
                stop=_StopOnInterrupt(),
                failure_config=tune.FailureConfig(max_failures=0),
                checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
                log_to_file=not s.verbose,
            ),
        )
        t_fit = time.perf_counter()
        try:
            with _Interrupt(request_stop) as intr:
                with _silenced(not s.verbose):
                    tuner.fit()
            outcome_interrupted = intr.stopped
        except KeyboardInterrupt:
            outcome_interrupted = True
            state.interrupted = True
        finally:
            state.fail_leftovers()
            status.close()
            shutil.rmtree(ray_dir, ignore_errors=True)
            fit_s = time.perf_counter() - t_fit
            front = views.write_all()
    else:
        fit_s = 0.0
        front = views.write_all()

    return SearchOutcome(run_path, front, state.done, s.budget, outcome_interrupted, state.stop_reason,
                         timings={"fit": fit_s}, failures=_failures(study))


def _failures(study: Any) -> list:
    """``[(fail_reason, count)]`` of the trained candidates that failed, most common first."""
    import collections

    from nas.search.searcher import counts_against_budget

    reasons = collections.Counter(
        str(t.user_attrs.get("fail_reason") or "unknown")
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "FAIL" and counts_against_budget(t)
    )
    return reasons.most_common()


@contextlib.contextmanager
def _silenced(active: bool):
    """Keep Ray Tune's own prints (its end-of-run table, hints) off stdout unless --verbose."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(open(os.devnull, "w")) as devnull:  # noqa: SIM115
        try:
            yield
        finally:
            devnull.close()


def _preload_rungs(book: Any, study: Any, cost_key: str) -> None:
    for t in study.get_trials(deepcopy=False):
        curve = t.user_attrs.get("accuracy_curve") or []
        if not curve or t.state.name not in ("COMPLETE", "PRUNED", "FAIL"):
            continue
        cost = t.user_attrs.get(cost_key)
        if cost is None:
            continue
        book.preload(t.number, curve, float(cost), promoted_to=len(curve))


class _Views:
    """Rewrites trials.csv/pareto.csv after each finished trial, pareto.png at most every minute."""

    def __init__(self, run_path: Path, study: Any, config: dict[str, Any]) -> None:
        self.run_path, self.study, self.config = run_path, study, config
        self._last_png = time.time()  # the first plot after a minute; write_all() plots at the end

    def after_trial(self) -> None:
        now = time.time()
        plot = now - self._last_png >= PNG_EVERY_S
        try:
            write_views(self.run_path, self.study, self.config, plot=plot)
        except Exception as exc:  # noqa: BLE001 - a view that fails to render must not stop the search
            print(f"[nas] warning: could not rewrite the run's CSV/PNG views: {exc}", file=sys.stderr)
            return
        if plot:
            self._last_png = now

    def write_all(self):
        return write_views(self.run_path, self.study, self.config, plot=True)


__all__ = ["DEFAULT_SAMPLER", "Fidelity", "SAMPLERS", "SearchOutcome", "SearchSettings", "make_sampler", "parse_objectives", "prepare", "run_search"]
