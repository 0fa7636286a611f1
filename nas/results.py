"""Open a run folder: ``nas.load_run(path)`` -> :class:`Run` with pandas views of the study.

A run folder (written by ``nas search``) holds::

    config.json   everything needed to resume or reproduce the run (see nas.search.runfolder)
    space.toml    the exact text of the search space the run used
    study.db      the Optuna SQLite storage - the one source of truth
                  (absent when the run used ``--storage URL``: config.json names the URL)
    trials.csv    one row per trial (a view of the study, rewritten as the search goes)
    pareto.csv    the Pareto front (a view)
    pareto.png    accuracy against the cost objective, all trials, the front highlighted

Columns of :attr:`Run.trials` (and ``trials.csv``)::

    number      Optuna trial number
    state       COMPLETE (trained to full fidelity), PRUNED (stopped early by the
                successive-halving scheduler), FAIL (raised, diverged, worker died,
                rejected by a constraint, or interrupted: see ``reason``), RUNNING
    arch        the genotype string (nas.Arch.parse(arch) gives the Arch back)
    accuracy    validation accuracy (0..1) at the last epoch trained; NaN if none
    mflops      multiply-adds in millions (batch 1), measured before training
    params      trainable parameters
    latency_ms  measured latency (only when the run used the latency objective)
    fidelity    epochs actually trained (0 for a candidate never trained)
    max_epochs  full fidelity of the run
    duration_s  wall time of the trial's training (+ evaluation), seconds
    reason      why a trial failed or was pruned ("" otherwise)
    node        the Ray node that trained it, ``host/node-id-prefix`` ("" if never trained)

:attr:`Run.pareto` holds the non-dominated set of the COMPLETE trials trained to full
fidelity (``fidelity == max_epochs``) in the run's objectives (accuracy up, cost down),
sorted by cost. A pruned trial never stands on the front: its accuracy is a
low-fidelity estimate.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import NasInputError
from nas.search.moo import pareto_mask

if TYPE_CHECKING:
    import optuna
    import pandas as pd

CONFIG_FILE = "config.json"
STUDY_FILE = "study.db"
SPACE_FILE = "space.toml"
TRIALS_CSV = "trials.csv"
PARETO_CSV = "pareto.csv"
PARETO_PNG = "pareto.png"

COST_OBJECTIVES = ("mflops", "params", "latency_ms")
TRIAL_COLUMNS = [
    "number",
    "state",
    "arch",
    "accuracy",
    "mflops",
    "params",
    "fidelity",
    "max_epochs",
    "duration_s",
    "reason",
    "node",
]


def storage_url(run_path: Path, config: dict[str, Any]) -> str:
    """The Optuna storage URL of a run: its ``study.db`` unless the run named an RDB URL."""
    url = config.get("storage")
    if url:
        return str(url)
    return f"sqlite:///{(Path(run_path) / STUDY_FILE).resolve()}"


def read_config(path: str | Path) -> dict[str, Any]:
    """The run's ``config.json``; a folder that is not a run -> :class:`NasInputError` naming it."""
    run_path = Path(path)
    if not run_path.is_dir():
        raise NasInputError(f"{path}: no such run folder")
    cfg_file = run_path / CONFIG_FILE
    if not cfg_file.is_file():
        raise NasInputError(f"{path}: not a run folder (no {CONFIG_FILE}; `nas search` writes one)")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NasInputError(f"{cfg_file}: unreadable run config: {exc}") from None
    for key in ("study_name", "objectives", "fidelity"):
        if key not in config:
            raise NasInputError(f"{cfg_file}: not a nas run config (missing key {key!r})")
    if not config.get("storage") and not (run_path / STUDY_FILE).is_file():
        raise NasInputError(f"{path}: run folder has no {STUDY_FILE}")
    return config


def study_storage(url: str, attempts: int = 5) -> Any:
    """The Optuna storage for ``url``.

    SQLite waits for a busy writer instead of failing after 5 s (a reader such as
    optuna-dashboard or ``nas pareto`` may hold the file while a search writes). Creating
    the storage creates its tables when they are missing; two processes doing that at once
    (a search starting while a dashboard opens the new file) make one of them fail with
    "table already exists" or a duplicate schema version, so that step is retried: the
    second attempt finds the schema the other process made.
    """
    import optuna
    import sqlalchemy.exc

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else {}
    for attempt in range(1, attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            time.sleep(0.2 * attempt)
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)  # the last attempt's error propagates


def open_study(run_path: str | Path, config: dict[str, Any], sampler: Any = None) -> "optuna.Study":
    import optuna

    url = storage_url(Path(run_path), config)
    try:
        return optuna.load_study(study_name=config["study_name"], storage=study_storage(url), sampler=sampler)
    except KeyError:
        raise NasInputError(f"{run_path}: study {config['study_name']!r} not found in {url}") from None
    except Exception as exc:  # noqa: BLE001 - storage errors come in many types (sqlalchemy, ...)
        raise NasInputError(f"{run_path}: cannot open study storage {url}: {exc}") from None


def cost_objective(config: dict[str, Any]) -> str:
    """The run's second objective (``mflops``, ``params`` or ``latency_ms``)."""
    return str(config["objectives"][1])


def trials_frame(study: "optuna.Study", config: dict[str, Any]) -> "pd.DataFrame":
    """One row per trial of the study, columns as in the module docstring."""
    import pandas as pd

    max_epochs = int(config["fidelity"]["epochs"])
    with_latency = "latency_ms" in config["objectives"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        curve = ua.get("accuracy_curve") or []
        if t.state.name == "COMPLETE" and t.values:
            accuracy = float(t.values[0])
        elif curve:
            accuracy = float(curve[-1])
        else:
            accuracy = math.nan
        row = {
            "number": t.number,
            "state": t.state.name,
            "arch": ua.get("arch", ""),
            "accuracy": accuracy,
            "mflops": float(ua.get("mflops", math.nan)),
            "params": ua.get("params", None),
            "fidelity": int(ua.get("fidelity", 0)),
            "max_epochs": max_epochs,
            "duration_s": float(ua.get("duration_s", math.nan)),
            "reason": (f"duplicate of trial {ua['duplicate_of']} (not retrained)" if "duplicate_of" in ua
                       else str(ua.get("fail_reason", ua.get("prune_reason", "")))),
            "node": str(ua.get("node", "")),
        }
        if with_latency:
            row["latency_ms"] = float(ua.get("latency_ms", math.nan))
        rows.append(row)
    columns = TRIAL_COLUMNS[:6] + (["latency_ms"] if with_latency else []) + TRIAL_COLUMNS[6:]
    frame = pd.DataFrame(rows, columns=columns)
    frame["params"] = frame["params"].astype("Int64")
    frame["fidelity"] = frame["fidelity"].astype("int64")
    frame["number"] = frame["number"].astype("int64")
    return frame


def pareto_frame(trials: "pd.DataFrame", config: dict[str, Any]) -> "pd.DataFrame":
    """The non-dominated COMPLETE full-fidelity trials (accuracy up, cost down), by cost."""
    cost = cost_objective(config)
    full = trials[(trials["state"] == "COMPLETE") & (trials["fidelity"] >= trials["max_epochs"])]
    full = full[full["accuracy"].notna() & full[cost].notna()]
    # One point per genotype: a genotype proposed again stands on the front once, as its first trial.
    full = full.sort_values("number", kind="stable").drop_duplicates("arch", keep="first")
    if full.empty:
        return full.copy().reset_index(drop=True)
    points = list(zip(full["accuracy"].astype(float), full[cost].astype(float)))
    mask = pareto_mask(points, ("max", "min"))
    front = full[mask].sort_values([cost, "accuracy"], ascending=[True, False], kind="stable")
    return front.reset_index(drop=True)


def write_views(run_path: str | Path, study: "optuna.Study", config: dict[str, Any], plot: bool = True) -> "pd.DataFrame":
    """(Re)write trials.csv, pareto.csv and (if ``plot``) pareto.png from the study; return the front.

    Each file is written to a temporary name and renamed, so a reader never sees half a file.
    """
    run_path = Path(run_path)
    trials = trials_frame(study, config)
    front = pareto_frame(trials, config)
    _atomic_csv(trials, run_path / TRIALS_CSV)
    _atomic_csv(front, run_path / PARETO_CSV)
    if plot:
        plot_front(trials, front, config, run_path / PARETO_PNG)
    return front


def _atomic_csv(frame: "pd.DataFrame", path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def plot_front(trials: "pd.DataFrame", front: "pd.DataFrame", config: dict[str, Any], path: str | Path) -> None:
    """Accuracy against the cost objective for every trained trial; the front as a step line."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cost = cost_objective(config)
    label = {"mflops": "MFLOPs (multiply-adds, millions)", "params": "parameters", "latency_ms": "latency (ms)"}[cost]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    try:
        trained = trials[trials["accuracy"].notna() & trials[cost].notna()]
        full = trained[(trained["state"] == "COMPLETE") & (trained["fidelity"] >= trained["max_epochs"])]
        early = trained[trained["state"] != "COMPLETE"]
        if len(early):
            ax.scatter(early[cost], early["accuracy"], s=14, c="#bbbbbb", marker="x",
                       label=f"stopped early / failed ({len(early)}; low-fidelity accuracy)")
        if len(full):
            ax.scatter(full[cost], full["accuracy"], s=18, c="#4c72b0", alpha=0.7,
                       label=f"trained to {int(config['fidelity']['epochs'])} epochs ({len(full)})")
        if len(front):
            ax.step(front[cost], front["accuracy"], where="post", c="#dd5533", lw=1.2)
            ax.scatter(front[cost], front["accuracy"], s=36, c="#dd5533", zorder=3,
                       label=f"Pareto front ({len(front)})")
        _mark_picks(ax, Path(path).parent, cost)
        ax.set_xscale("log" if cost != "latency_ms" and len(trained) and float(trained[cost].min()) > 0 else "linear")
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy (proxy)")
        ax.set_title(f"{config.get('name', '')}: {config.get('space', {}).get('name', '')} on "
                     f"{config.get('dataset', {}).get('name', '')}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        if len(trained):
            ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        tmp = Path(path).with_name(Path(path).name + ".tmp.png")
        fig.savefig(tmp)
        tmp.replace(path)
    finally:
        plt.close(fig)


def _mark_picks(ax: Any, run_path: Path, cost: str) -> None:
    """Ring the S/M/L (and other) picks already retrained in ``<run>/picks`` (nas.picks)."""
    if not (run_path / "picks").is_dir():
        return
    try:
        from nas.picks import load_picks, mark_picks

        picks = [p for p in load_picks(run_path) if hasattr(p, cost)]
        if picks:
            mark_picks(ax, picks, x=cost, y="accuracy")
    except Exception:  # noqa: BLE001 - decoration only: the front is drawn whatever happens here
        return


@dataclass
class Run:
    """A run folder opened by :func:`load_run`. ``trials``/``pareto`` are computed from the study."""

    path: Path
    config: dict[str, Any]
    _study: Any = field(default=None, repr=False)
    _trials: Any = field(default=None, repr=False)

    @property
    def study(self) -> "optuna.Study":
        if self._study is None:
            self._study = open_study(self.path, self.config)
        return self._study

    @property
    def trials(self) -> "pd.DataFrame":
        if self._trials is None:
            self._trials = trials_frame(self.study, self.config)
        return self._trials

    @property
    def pareto(self) -> "pd.DataFrame":
        return pareto_frame(self.trials, self.config)

    @property
    def objectives(self) -> list[str]:
        return list(self.config["objectives"])

    @property
    def space(self):
        """The run's search space, parsed from the exact text the run used."""
        from nas.search.runfolder import load_run_space

        return load_run_space(self.path, self.config)

    def refresh(self) -> "Run":
        """Forget cached frames (the study may have grown while a search runs)."""
        self._trials = None
        return self


def load_run(path: str | Path) -> Run:
    """Open a run folder written by ``nas search``; see the module docstring."""
    run_path = Path(path)
    config = read_config(run_path)
    run = Run(path=run_path, config=config)
    run.study  # open now so a broken storage is reported here, as bad input
    return run


__all__ = ["Run", "load_run", "pareto_frame", "plot_front", "read_config", "trials_frame", "write_views"]
