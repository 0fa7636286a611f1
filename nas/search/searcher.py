"""The bridge between Ray Tune and the Optuna study: a custom ``Searcher`` plus the shared state.

The study (Optuna RDB storage, owned by the driver process) is the one source of
truth. ``suggest()`` asks the study for a trial (``study.ask()``), lets the space
suggest an architecture through it (define-by-run), measures its cost and checks
the constraints; ``on_trial_result()`` records the learning curve as user attrs;
``on_trial_complete()`` tells the study how the trial ended.

How trials are told to Optuna (the attribute keys and the tell functions are the run
format's, in :mod:`nas.runs.trial_attrs`):

- trained to full fidelity -> ``COMPLETE`` with values ``[accuracy, cost]``;
- stopped at a rung by the successive-halving scheduler -> ``PRUNED``, no values,
  user attrs ``fidelity`` (epochs trained), ``accuracy_curve``, ``prune_reason``.
  Why PRUNED: it keeps a low-fidelity accuracy out of ``study.best_trials`` and
  the dashboard's Pareto front (they use COMPLETE trials only), and Optuna's
  samplers treat pruned trials as intended for "worse than the complete ones":
  TPE puts them in its "bad" group (no intermediate values are reported - Optuna
  forbids ``Trial.report`` in multi-objective studies - so they all rank alike),
  NSGA-II/III select parents from COMPLETE trials only, random ignores them.
- raised / diverged / worker died -> ``FAIL`` with user attr ``fail_reason``;
- rejected by ``--max-mflops`` / ``--max-params`` before training -> ``FAIL`` with
  ``fail_reason`` "infeasible: ..." and ``infeasible=True``;
- still running when the search was interrupted -> ``FAIL`` with ``fail_reason``
  "interrupted";
- ended by Ray before it trained -> ``FAIL`` with ``fail_reason`` "not started: ...".

Budget: the budget counts TRAINED candidates of the screening - COMPLETE + PRUNED + FAIL
while training (user attr ``counted=True``); the finals' real trainings (nas.search.finals)
are extra. Infeasible candidates cost no training and
do not count; neither do interrupted ones (``--resume`` trains a fresh candidate
instead). To never loop forever on an over-tight constraint, at most
``max_rejections`` candidates in a row may be rejected; then the search ends early
saying why.

The searcher, not Ray's sample count, ends the search: it suggests while the counted
trials plus those in flight are short of the budget, and says FINISHED once the counted
ones reach it. A Ray trial that ends without training (Ray could not reuse a worker for it,
see :class:`LostTrials`) is told FAIL "not started", not counted, and replaced.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from ray.tune import Callback
from ray.tune.search import Searcher

from nas.errors import NasInputError
from nas.moo import pareto_mask
from nas.runs.storage import running_trial
from nas.runs.trial_attrs import (
    ACCURACY_CURVE,
    ARCH,
    COUNTED,
    DUPLICATE_OF,
    DURATION_S,
    FIDELITY,
    FINAL_OF,
    INFEASIBLE,
    LATENCY_MS,
    MAX_EPOCHS,
    MFLOPS,
    NODE,
    PARAMS,
    PRUNE_REASON,
    TRACEBACK,
    TRAIN_MEMORY_MB,
    WORKER,
    WORKER_RSS_MB,
    tell_complete,
    tell_fail,
    tell_pruned,
)
from nas.search.ray_setup import describe_trial_error

if TYPE_CHECKING:
    import optuna

INTERRUPTED = "interrupted"


def counts_against_budget(trial: "optuna.trial.FrozenTrial") -> bool:
    """Whether a finished trial used up one unit of the budget (see the module doc)."""
    name = trial.state.name
    if DUPLICATE_OF in trial.user_attrs:
        return False  # answered from an earlier trial of the same genotype, never trained
    if FINAL_OF in trial.user_attrs:
        return False  # a finalist's real training (nas.search.finals): the budget is the screening's
    if name in ("COMPLETE", "PRUNED"):
        return True
    if name == "FAIL":
        return bool(trial.user_attrs.get(COUNTED, False))
    return False


@dataclass
class SearchState:
    """Everything the searcher, scheduler and status line share, in the driver process."""

    study: "optuna.Study"
    space: Any
    budget: int
    max_epochs: int
    cost_key: str
    measure_cost: Callable[[Any], tuple[float, int]]
    max_mflops: Optional[float] = None
    max_params: Optional[int] = None
    # arch -> MB one training step needs (estimated on the meta device), and the per-trial limit
    measure_memory: Optional[Callable[[Any], float]] = None
    max_memory_mb: Optional[float] = None
    max_rejections: int = 500
    on_finished: Optional[Callable[[], None]] = None
    started: float = field(default_factory=time.time)

    live: Dict[str, int] = field(default_factory=dict)  # Ray trial id -> Optuna number
    asked: Dict[int, Any] = field(default_factory=dict)  # Optuna number -> optuna.Trial (running)
    errors: Dict[str, str] = field(default_factory=dict)  # Ray trial id -> reason (worker errors)
    pruned_at: Dict[int, str] = field(default_factory=dict)  # Optuna number -> why it was stopped
    curves: Dict[int, list] = field(default_factory=dict)
    interrupted: bool = False
    stop_reason: Optional[str] = None

    done: int = 0  # counted trials, previous sessions included
    session_done: int = 0
    failed: int = 0
    pruned: int = 0
    rejected: int = 0
    duplicates: int = 0  # genotypes proposed again: answered from their first trial, not retrained
    running: int = 0
    full_points: list = field(default_factory=list)  # (accuracy, cost) of COMPLETE trials
    lock: threading.Lock = field(default_factory=threading.Lock)

    # Ray pickles its Tuner state for Tuner.restore, which we never use (the study is the
    # truth, see --resume): this driver-side object travels as an empty shell.
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def load_counts(self) -> None:
        """Counters from the trials already in the study (``--resume``)."""
        for t in self.study.get_trials(deepcopy=False):
            if counts_against_budget(t):
                self.done += 1
            name = t.state.name
            if name == "PRUNED":
                self.pruned += 1
            elif name == "FAIL":
                if t.user_attrs.get(INFEASIBLE):
                    self.rejected += 1
                elif t.user_attrs.get(COUNTED):
                    self.failed += 1
            elif name == "COMPLETE" and t.values:
                self.full_points.append((float(t.values[0]), float(t.values[1])))

    def stats(self) -> dict[str, Any]:
        front = pareto_mask(self.full_points, ("max", "min")) if self.full_points else []
        best = max((p[0] for p in self.full_points), default=None)
        return {
            "done": self.done,
            "budget": self.budget,
            "running": self.running,
            "queued": max(0, len(self.live) - self.running),
            "pruned": self.pruned,
            "failed": self.failed,
            "rejected": self.rejected,
            "front": sum(front),
            "best": best,
            "started": self.started,
            "session_done": self.session_done,
        }

    def fail_leftovers(self, reason: str = INTERRUPTED) -> int:
        """Tell FAIL (not counted) for every trial asked this session and never told."""
        with self.lock:
            leftovers = list(self.asked.values())
            self.asked.clear()
            self.live.clear()
        for trial in leftovers:
            tell_fail(self.study, trial, reason, counted=False, skip_if_finished=True)
        return len(leftovers)

    def constraint_violation(self, mflops: float, params: int) -> Optional[str]:
        problems = []
        if self.max_mflops is not None and mflops > self.max_mflops:
            problems.append(f"{mflops:.3g} MFLOPs > --max-mflops {self.max_mflops:g}")
        if self.max_params is not None and params > self.max_params:
            problems.append(f"{params} params > --max-params {self.max_params}")
        return "; ".join(problems) or None


class StudySearcher(Searcher):
    """Ray Tune ``Searcher`` backed by the Optuna study in :class:`SearchState` (see module doc)."""

    def __init__(self, state: SearchState) -> None:
        super().__init__(metric="accuracy", mode="max")
        self.state = state
        self._consecutive_rejections = 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the space comes from the Space object, not from a Tune param_space

    # -- suggest -------------------------------------------------------------------

    def suggest(self, trial_id: str) -> Optional[Dict[str, Any]]:
        """The next candidate's Ray config; ``None``: enough in flight; ``FINISHED``: the search is over.

        Candidates that are rejected or were trained already are told at once and the next one is
        asked, up to ``max_rejections`` of them in a row (see the module doc).
        """
        st = self.state
        if st.interrupted or st.stop_reason or st.done >= st.budget:
            return Searcher.FINISHED
        if st.done + len(st.live) >= st.budget:
            return None  # enough in flight; asked again if one of them ends without counting
        while True:
            trial = st.study.ask()
            config = self._trainable_config(trial)
            if config is None:
                if self._too_many_rejections():
                    return Searcher.FINISHED
                continue
            self._consecutive_rejections = 0
            with st.lock:
                st.live[trial_id] = trial.number
                st.asked[trial.number] = trial
            return config

    def _trainable_config(self, trial) -> Optional[Dict[str, Any]]:
        """The Ray config of the candidate ``trial`` suggests, its measures recorded; ``None`` once
        the trial is told instead: rejected (too large, invalid, infeasible) or a duplicate."""
        st = self.state
        try:
            arch = st.space.suggest(trial)
            # memory first: a candidate too large for the machine is never built for real
            need_mb = st.measure_memory(arch) if st.measure_memory is not None else None
            if need_mb is not None and st.max_memory_mb is not None and need_mb > st.max_memory_mb:
                trial.set_user_attr(ARCH, str(arch))
                trial.set_user_attr(TRAIN_MEMORY_MB, float(need_mb))
                self._reject(trial, f"infeasible: needs ~{need_mb:,.0f} MB to train > {st.max_memory_mb:,.0f} MB "
                                    f"per trial (--trial-memory)")
                return None
            mflops, params = st.measure_cost(arch)
        except NasInputError as exc:
            self._reject(trial, f"invalid candidate: {exc}")
            return None
        trial.set_user_attr(ARCH, str(arch))
        trial.set_user_attr(MFLOPS, float(mflops))
        trial.set_user_attr(PARAMS, int(params))
        trial.set_user_attr(MAX_EPOCHS, st.max_epochs)
        if need_mb is not None:
            trial.set_user_attr(TRAIN_MEMORY_MB, float(need_mb))
        trial.set_user_attr(FIDELITY, 0)
        violation = st.constraint_violation(mflops, params)
        if violation:
            self._reject(trial, f"infeasible: {violation}")
            return None
        original = self._already_trained(str(arch), trial.number)
        if original is not None:
            self._tell_duplicate(trial, original)
            return None
        return {"number": trial.number, "arch": str(arch), "mflops": float(mflops), "params": int(params)}

    def _already_trained(self, arch: str, number: int):
        """The earliest trial with this genotype that trained or is training (not failed), if any."""
        import optuna

        TS = optuna.trial.TrialState
        for t in self.state.study.get_trials(deepcopy=False, states=(TS.COMPLETE, TS.PRUNED, TS.RUNNING)):
            if t.number != number and t.user_attrs.get(ARCH) == arch and DUPLICATE_OF not in t.user_attrs:
                return t
        return None

    def _tell_duplicate(self, trial, original) -> None:
        """A genotype the sampler proposed again: never train it twice.

        The new trial gets the original's outcome (so the sampler learns it) with
        ``duplicate_of`` set; it does not count against the budget and never stands on
        the front beside its original.
        """
        import optuna

        TS = optuna.trial.TrialState
        st = self.state
        for key in (FIDELITY, ACCURACY_CURVE, PRUNE_REASON, DURATION_S, LATENCY_MS):
            if key in original.user_attrs:
                trial.set_user_attr(key, original.user_attrs[key])
        trial.set_user_attr(DUPLICATE_OF, original.number)
        trial.set_user_attr(COUNTED, False)
        if original.state == TS.COMPLETE:
            tell_complete(st.study, trial, original.values)
        elif original.state == TS.PRUNED:
            tell_pruned(st.study, trial)
        else:
            tell_fail(st.study, trial, f"duplicate of trial {original.number}, still training", counted=False)
        st.duplicates += 1
        self._consecutive_rejections += 1

    def _reject(self, trial, reason: str) -> None:
        """FAIL, infeasible and not counted: the candidate is never trained."""
        st = self.state
        tell_fail(st.study, trial, reason, counted=False, infeasible=True)
        st.rejected += 1
        self._consecutive_rejections += 1

    def _too_many_rejections(self) -> bool:
        st = self.state
        if self._consecutive_rejections >= st.max_rejections:
            st.stop_reason = (
                f"stopped early: {self._consecutive_rejections} candidates in a row were rejected by the "
                f"constraints (--max-mflops/--max-params/--trial-memory) or were already trained; "
                f"loosen the constraints or widen the space"
            )
            return True
        return False

    # -- results -------------------------------------------------------------------

    def on_trial_result(self, trial_id: str, result: Dict) -> None:
        st = self.state
        number = st.live.get(trial_id)
        if number is None or result.get("failed"):
            return
        epoch = int(result.get("epoch", 0) or 0)
        if epoch < 1:
            return
        curve = st.curves.setdefault(number, [])
        if len(curve) < epoch:
            curve.append(float(result.get("accuracy", math.nan)))
        trial = st.asked[number]
        trial.set_user_attr(ACCURACY_CURVE, list(curve))
        trial.set_user_attr(FIDELITY, epoch)

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        """Tell the study how the trial ended (see the module doc), then refresh the views."""
        st = self.state
        with st.lock:
            number = st.live.pop(trial_id, None)
            trial = st.asked.pop(number, None) if number is not None else None
        if trial is None:
            return
        result = result or {}
        epoch, curve = self._record_measures(trial, number, result)
        if st.interrupted:
            self._tell_fail(trial, INTERRUPTED, counted=False)
        elif error or result.get("failed"):
            reason = result.get("fail_reason") or st.errors.pop(trial_id, None) or "worker error"
            trial.set_user_attr(FIDELITY, max(epoch, len(curve)))
            if result.get("traceback"):
                trial.set_user_attr(TRACEBACK, str(result["traceback"]))
            self._tell_fail(trial, reason, counted=True)
        elif not result:
            # removed while pending (the experiment ended first): never trained
            self._tell_fail(trial, "not started", counted=False)
        elif epoch >= st.max_epochs:
            self._tell_full_fidelity(trial, epoch, result)
        elif number in st.pruned_at:
            trial.set_user_attr(FIDELITY, epoch)
            tell_pruned(st.study, trial, st.pruned_at[number])
            st.pruned += 1
            self._counted()
        else:
            # ended early without a scheduler decision: the experiment was stopped
            self._tell_fail(trial, INTERRUPTED, counted=False)
        if st.on_finished is not None:
            st.on_finished()

    def tell_lost(self, trials: list) -> None:
        """Tell FAIL (not counted) every Ray trial that ended without the searcher being told.

        Ray does so when it cannot reuse a worker for a trial: ``reset_config`` waits only
        ``TUNE_FUNCTION_THREAD_TIMEOUT_S`` (Ray's default 2 s, a search's 60 s:
        ``ray_setup.WORKER_ENV``) for the previous trial's training thread, and a pruned
        trial's thread is still in its next epoch. Ray then ends the new trial (ERROR) before
        it trains and calls no searcher hook.
        """
        st = self.state
        for ray_trial in trials:
            if getattr(ray_trial, "status", None) not in ("ERROR", "TERMINATED"):
                continue
            with st.lock:
                number = st.live.pop(ray_trial.trial_id, None)
                trial = st.asked.pop(number, None) if number is not None else None
            if trial is None:
                continue
            st.curves.pop(number, None)
            reason = INTERRUPTED if st.interrupted else f"not started: {describe_trial_error(ray_trial)}"
            self._tell_fail(trial, reason[:500], counted=False)
            if st.on_finished is not None:
                st.on_finished()

    def _record_measures(self, trial, number: int, result: Dict) -> tuple[int, list]:
        """Duration, latency, node and the learning curve of a finished trial; (last epoch, curve)."""
        attr = trial.set_user_attr
        if "duration_s" in result and not math.isnan(float(result["duration_s"])):
            attr(DURATION_S, float(result["duration_s"]))
        if "latency_ms" in result:
            attr(LATENCY_MS, float(result["latency_ms"]))
        if result.get("node"):
            attr(NODE, str(result["node"]))
        if result.get("worker"):
            attr(WORKER, int(result["worker"]))
        if result.get("worker_rss_mb") is not None:
            attr(WORKER_RSS_MB, round(float(result["worker_rss_mb"]), 1))
        epoch = int(result.get("epoch", 0) or 0)
        curve = self.state.curves.pop(number, [])
        # Ray does not pass the result that made the scheduler stop a trial to
        # on_trial_result, so the last epoch of a pruned trial is added here.
        if not result.get("failed") and epoch > len(curve) and "accuracy" in result:
            curve.append(float(result["accuracy"]))
        if curve:
            attr(ACCURACY_CURVE, list(curve))
        if epoch or curve:
            attr(FIDELITY, max(epoch, len(curve)))
        return epoch, curve

    def _tell_full_fidelity(self, trial, epoch: int, result: Dict) -> None:
        """A trial trained to full fidelity: COMPLETE with [accuracy, cost], or FAIL without both."""
        st = self.state
        acc = float(result["accuracy"])
        cost = float(result.get(st.cost_key, math.nan))
        if math.isnan(acc) or math.isnan(cost):
            self._tell_fail(trial, f"no valid result (accuracy {acc}, {st.cost_key} {cost})", counted=True)
            return
        trial.set_user_attr(FIDELITY, epoch)
        tell_complete(st.study, trial, [acc, cost])
        st.full_points.append((acc, cost))
        self._counted()

    def _tell_fail(self, trial, reason: str, counted: bool) -> None:
        """FAIL with ``reason``; ``counted``: it trained, so it uses up one unit of the budget."""
        tell_fail(self.state.study, trial, reason, counted)
        if counted:
            self._counted(failed=True)

    def _counted(self, failed: bool = False) -> None:
        st = self.state
        st.done += 1
        st.session_done += 1
        if failed:
            st.failed += 1

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the Optuna study is the searcher's state (Ray calls this on checkpoints)."""

    def restore(self, checkpoint_path: str) -> None:
        pass


class LostTrials(Callback):
    """Before each Tune step asks the searcher for trials: :meth:`StudySearcher.tell_lost`."""

    def __init__(self, searcher: StudySearcher) -> None:
        self.searcher = searcher

    # Driver-side only, like SearchState (Ray pickles its Tuner state, never restored here).
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self.searcher.tell_lost(trials)


def fail_running_trials(study: "optuna.Study", storage: Any, reason: str = INTERRUPTED) -> int:
    """Mark trials left RUNNING (a killed or interrupted search) as FAIL, not counted. Returns how many.

    ``storage``: one on the study's database (nas.runs.storage.study_storage), through which
    those trials are reached (nas.runs.storage.running_trial).
    """
    import optuna

    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        tell_fail(study, running_trial(study, storage, t.number), reason, counted=False)
        n += 1
    return n


__all__ = ["INTERRUPTED", "LostTrials", "SearchState", "StudySearcher", "counts_against_budget", "fail_running_trials"]
