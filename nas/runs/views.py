"""Views of a run folder: ``nas.load_run(path)`` -> :class:`Run` with pandas frames of the study,
and the files derived from it (``trials.csv``, ``pareto.csv``, ``pareto.png``; names in nas.runs.folder).

The views are computed from the study (the one source of truth) every time; the files are
rewritten whole, atomically, so a reader never sees half of one.

Columns of :attr:`Run.trials` (and ``trials.csv``)::

    number      Optuna trial number
    state       COMPLETE (trained to the screening's last epoch; with finals, the finals'
                real trainings are COMPLETE trials of their own, reason "final of trial N"),
                PRUNED (stopped early by the successive-halving scheduler), FAIL (raised, diverged, worker died,
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
    worker      the process id of the worker that trained it (with ``node``: which worker)
    worker_rss_mb  that worker's resident memory when the trial started: what the trials before
                it on the same worker left behind (NaN for older runs)

:attr:`Run.pareto` holds the non-dominated set of the COMPLETE trials trained to full
fidelity (``fidelity == max_epochs``) in the run's objectives (accuracy up, cost down),
sorted by cost. A pruned trial never stands on the front: its accuracy is a
low-fidelity estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from nas.atomic import atomic_target, write_atomic
from nas.moo import pareto_mask
from nas.runs.folder import PARETO_CSV, PARETO_PNG, TRIALS_CSV, full_fidelity, load_run_space, read_config
from nas.runs.storage import open_study
from nas.runs.trial_attrs import (
    ACCURACY_CURVE,
    ARCH,
    DUPLICATE_OF,
    DURATION_S,
    FAIL_REASON,
    FIDELITY,
    FINAL_OF,
    LATENCY_MS,
    MFLOPS,
    NODE,
    PARAMS,
    PRUNE_REASON,
    WORKER,
    WORKER_RSS_MB,
)

if TYPE_CHECKING:
    import optuna
    import pandas as pd

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
    "worker",
    "worker_rss_mb",
]


def cost_objective(config: dict[str, Any]) -> str:
    """The run's second objective (``mflops``, ``params`` or ``latency_ms``)."""
    return str(config["objectives"][1])


def trials_frame(study: "optuna.Study", config: dict[str, Any]) -> "pd.DataFrame":
    """One row per trial of the study, columns as in the module docstring."""
    import pandas as pd

    max_epochs = full_fidelity(config["fidelity"])
    with_latency = "latency_ms" in config["objectives"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        curve = ua.get(ACCURACY_CURVE) or []
        if t.state.name == "COMPLETE" and t.values:
            accuracy = float(t.values[0])
        elif curve:
            accuracy = float(curve[-1])
        else:
            accuracy = math.nan
        row = {
            "number": t.number,
            "state": t.state.name,
            "arch": ua.get(ARCH, ""),
            "accuracy": accuracy,
            "mflops": float(ua.get(MFLOPS, math.nan)),
            "params": ua.get(PARAMS, None),
            "fidelity": int(ua.get(FIDELITY, 0)),
            "max_epochs": max_epochs,
            "duration_s": float(ua.get(DURATION_S, math.nan)),
            "reason": _reason(ua),
            "node": str(ua.get(NODE, "")),
            "worker": ua.get(WORKER),
            "worker_rss_mb": float(ua.get(WORKER_RSS_MB, math.nan)),
        }
        if with_latency:
            row["latency_ms"] = float(ua.get(LATENCY_MS, math.nan))
        rows.append(row)
    columns = TRIAL_COLUMNS[:6] + (["latency_ms"] if with_latency else []) + TRIAL_COLUMNS[6:]
    frame = pd.DataFrame(rows, columns=columns)
    frame["params"] = frame["params"].astype("Int64")
    frame["worker"] = frame["worker"].astype("Int64")
    frame["fidelity"] = frame["fidelity"].astype("int64")
    frame["number"] = frame["number"].astype("int64")
    return frame


def _reason(ua: dict[str, Any]) -> str:
    if DUPLICATE_OF in ua:
        return f"duplicate of trial {ua[DUPLICATE_OF]} (not retrained)"
    why = str(ua.get(FAIL_REASON, ua.get(PRUNE_REASON, "")))
    if FINAL_OF in ua:  # nas.search.finals
        return f"final of trial {ua[FINAL_OF]}" + (f": {why}" if why else "")
    return why


def full_fidelity_frame(trials: "pd.DataFrame") -> "pd.DataFrame":
    """The COMPLETE trials trained to the run's full fidelity (the finals, in a run with finals):
    the only ones whose accuracies are comparable, so the front and the pick rules use these."""
    return trials[(trials["state"] == "COMPLETE") & (trials["fidelity"] >= trials["max_epochs"])]


def pareto_frame(trials: "pd.DataFrame", config: dict[str, Any]) -> "pd.DataFrame":
    """The non-dominated COMPLETE full-fidelity trials (accuracy up, cost down), by cost."""
    cost = cost_objective(config)
    full = full_fidelity_frame(trials)
    full = full[full["accuracy"].notna() & full[cost].notna()]
    # One point per genotype: a genotype proposed again stands on the front once, as its first trial.
    full = full.sort_values("number", kind="stable").drop_duplicates("arch", keep="first")
    if full.empty:
        return full.copy().reset_index(drop=True)
    points = list(zip(full["accuracy"].astype(float), full[cost].astype(float)))
    mask = pareto_mask(points, ("max", "min"))
    front = full[mask].sort_values([cost, "accuracy"], ascending=[True, False], kind="stable")
    return front.reset_index(drop=True)


PlotDecoration = Callable[[Any, str], None]  # (matplotlib axes, cost column) -> draws on the axes


def write_views(run_path: str | Path, study: "optuna.Study", config: dict[str, Any], plot: bool = True,
                decorate: Optional[PlotDecoration] = None) -> "pd.DataFrame":
    """(Re)write trials.csv, pareto.csv and (if ``plot``) pareto.png from the study; return the front.

    ``decorate`` draws extra marks on the plot (e.g. nas.runs.pick_folders.picks_decoration: the retrained picks).
    """
    run_path = Path(run_path)
    trials = trials_frame(study, config)
    front = pareto_frame(trials, config)
    write_atomic(run_path / TRIALS_CSV, trials.to_csv(index=False))
    write_atomic(run_path / PARETO_CSV, front.to_csv(index=False))
    if plot:
        plot_front(trials, front, config, run_path / PARETO_PNG, decorate=decorate)
    return front


def plot_front(trials: "pd.DataFrame", front: "pd.DataFrame", config: dict[str, Any], path: str | Path,
               decorate: Optional[PlotDecoration] = None) -> None:
    """Accuracy against the cost objective for every trained trial; the front as a step line."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cost = cost_objective(config)
    label = {"mflops": "MFLOPs (multiply-adds, millions)", "params": "parameters", "latency_ms": "latency (ms)"}[cost]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    try:
        trained = trials[trials["accuracy"].notna() & trials[cost].notna()]
        full = full_fidelity_frame(trained)
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
        if decorate is not None:
            decorate(ax, cost)
        if cost != "latency_ms" and len(trained) and float(trained[cost].min()) > 0:
            ax.set_xscale("log")
            plain_log_labels(ax.xaxis)
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy (proxy)")
        ax.set_title(f"{config.get('name', '')}: {config.get('space', {}).get('name', '')} on "
                     f"{config.get('dataset', {}).get('name', '')}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        if len(trained):
            ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        with atomic_target(path) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)


def plain_log_labels(axis) -> None:
    """Label a log axis with plain numbers (``3``, ``0.5``, ``20000``), not ``3x10^0``; which
    ticks get a label (majors, and minors on a short range) stays matplotlib's choice."""
    from matplotlib.ticker import Formatter

    class PlainLabels(Formatter):
        def __init__(self, chooser: Formatter) -> None:
            self.chooser = chooser

        def set_axis(self, axis) -> None:
            super().set_axis(axis)
            self.chooser.set_axis(axis)

        def set_locs(self, locs) -> None:
            super().set_locs(locs)
            self.chooser.set_locs(locs)

        def __call__(self, x, pos=None) -> str:
            return plain_number(x) if self.chooser(x, pos) else ""

    axis.set_major_formatter(PlainLabels(axis.get_major_formatter()))
    axis.set_minor_formatter(PlainLabels(axis.get_minor_formatter()))


def plain_number(x: float) -> str:
    """``3``, ``0.3``, ``2500000``: four significant digits, never an exponent."""
    import numpy as np

    return np.format_float_positional(float(f"{float(x):.4g}"), trim="-")


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
    def full_fidelity(self) -> "pd.DataFrame":
        """The COMPLETE trials trained to full fidelity: the front's candidates (see :func:`full_fidelity_frame`)."""
        return full_fidelity_frame(self.trials)

    @property
    def objectives(self) -> list[str]:
        return list(self.config["objectives"])

    @property
    def space(self):
        """The run's search space, parsed from the exact text the run used."""
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


__all__ = ["COST_OBJECTIVES", "PlotDecoration", "Run", "TRIAL_COLUMNS", "cost_objective", "full_fidelity_frame", "load_run", "pareto_frame",
           "plain_log_labels", "plot_front", "trials_frame", "write_views"]
