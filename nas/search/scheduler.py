"""Multi-objective asynchronous successive halving as a Ray Tune ``TrialScheduler``.

Ray's own schedulers (ASHA, HyperBand, ...) rank one metric, and Optuna cannot
prune a multi-objective study, so this scheduler does it: rungs at ``r, r*eta,
r*eta^2, ...`` epochs below the full ``max_epochs``; when a trial reports the epoch
of a rung, its point (accuracy at that epoch, the cost objective) is recorded at
the rung and the trial continues only if its non-dominated rank - ties broken by
hypervolume contribution, then arrival - puts it in the top ``max(1, n // eta)`` of the
``n`` trials recorded at that rung so far (:func:`nas.moo.should_promote`).
This is the "MO-ASHA" of Schmucker et al. (2021) with NSGA-II-style selection
(non-dominated sorting; ties by hypervolume contribution, cost on a log scale).

The decision is asynchronous (made on arrival, never waiting for the rung to
fill), like ASHA, and budgeted: a rung lets at most its quota continue, except that
a trial on the rung's Pareto front always continues. Plain asynchronous promotion
let 60% of the trials through each rung of a 200-trial TPE search (an improving
sampler keeps sending top-ranked newcomers): twice the epochs that successive
halving at eta 3 plans for.

The scheduler only decides; what a stop means (the trial is PRUNED in the Optuna
study, at the fidelity it reached) is recorded by the searcher.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Dict, Optional

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from nas.moo import promotion_order, promotion_quota, rung_epochs, should_promote

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


class RungBook:
    """The points recorded at each rung and the decisions taken there, keyed by a stable
    trial key (the Optuna number).

    Kept apart from the scheduler so that it is a plain, testable value and can be
    re-filled from the study on ``--resume`` (decisions stay consistent across stops).
    ``budgeted`` (the default) keeps each rung to its ``1/eta`` promotion budget
    (:func:`nas.moo.should_promote` with ``promoted``); ``False`` is plain
    asynchronous ASHA.
    """

    def __init__(self, rungs: list[int], senses: tuple[str, str], eta: float, budgeted: bool = True) -> None:
        self.rungs = list(rungs)
        self.senses = senses
        self.eta = eta
        self.budgeted = budgeted
        self.records: Dict[int, Dict[int, tuple[float, float]]] = {r: {} for r in self.rungs}
        self.decisions: Dict[int, Dict[int, bool]] = {r: {} for r in self.rungs}
        self.reasons: Dict[tuple[int, int], str] = {}

    def record(self, rung: int, key: int, point: tuple[float, float]) -> bool:
        """Record ``key`` at ``rung`` (idempotent) and return the promotion decision."""
        return self.decide(rung, key, point)[0]

    def promoted(self, rung: int) -> int:
        """How many trials ``rung`` has let continue so far."""
        return sum(self.decisions[rung].values())

    def decide(self, rung: int, key: int, point: tuple[float, float]) -> tuple[bool, str]:
        """Record ``key`` at ``rung`` and decide; (promote?, a one-line explanation of the
        decision as it was taken). Idempotent: a key's first point and decision stand."""
        if key in self.decisions[rung]:
            return self.decisions[rung][key], self.reasons.get((rung, key), "decided before")
        at = self.records[rung]
        at.setdefault(key, self._point(point))
        keys = list(at)
        points = [at[k] for k in keys]
        index = keys.index(key)
        before = self.promoted(rung)
        promote = should_promote(points, self.senses, index, self.eta, before if self.budgeted else None)
        self.decisions[rung][key] = promote
        position = promotion_order(points, self.senses).index(index) + 1
        quota = promotion_quota(len(points), self.eta)
        why = (
            f"rung {rung} epoch(s): placed {position} of {len(points)} by non-dominated rank "
            f"(top {quota} continue"
            + (f"; {before} continued already, the rung's front always does)" if self.budgeted else ")")
        )
        self.reasons[(rung, key)] = why
        return promote, why

    @staticmethod
    def _point(point: tuple[float, float]) -> tuple[float, float]:
        """Costs span orders of magnitude: keep them as log10 (dominance is unchanged by a
        monotonic map; the hypervolume tie-break then weighs relative, not absolute, savings)."""
        acc, cost = float(point[0]), float(point[1])
        return acc, (math.log10(cost) if cost > 0 else cost)

    def preload(self, key: int, curve: list[float], cost: float, promoted_to: int) -> None:
        """Re-record a finished trial's rung points (from its accuracy curve) and the decisions
        they got (it went on past a rung iff it trained beyond it), without deciding anew."""
        for rung in self.rungs:
            if rung <= len(curve) and rung <= promoted_to:
                self.records[rung].setdefault(key, self._point((curve[rung - 1], cost)))
                self.decisions[rung].setdefault(key, promoted_to > rung)

    def counts(self) -> Dict[int, int]:
        return {r: len(v) for r, v in self.records.items()}


class MultiObjectiveASHA(FIFOScheduler):
    """Asynchronous successive halving promoting by non-dominated rank (see module doc).

    ``key_of(trial_id)`` maps a Ray trial id to the stable key used in the
    :class:`RungBook` (the Optuna trial number); ``on_error(trial)`` is told about
    trials whose worker raised or died (the searcher records the reason).
    Results must carry ``epoch`` (1-based, epochs trained so far), ``accuracy``
    and the cost objective ``cost_key``; a result with ``failed`` set is let through.
    """

    def __init__(
        self,
        book: RungBook,
        cost_key: str,
        key_of: Callable[[str], Optional[int]],
        on_error: Optional[Callable[["Trial"], None]] = None,
        on_decision: Optional[Callable[[int, int, bool, str], None]] = None,
    ) -> None:
        super().__init__()
        self.book = book
        self.cost_key = cost_key
        self.key_of = key_of
        self.on_error = on_error
        self.on_decision = on_decision
        self.stopped = 0

    def set_search_properties(self, metric: Optional[str], mode: Optional[str], **spec) -> bool:
        return True  # our metric and mode are fixed: accuracy (max) against a cost (min)

    def on_trial_result(self, tune_controller, trial: "Trial", result: Dict) -> str:
        if result.get("failed") or result.get("done"):
            return TrialScheduler.CONTINUE
        epoch = int(result.get("epoch", 0) or 0)
        if epoch not in self.book.records:
            return TrialScheduler.CONTINUE
        key = self.key_of(trial.trial_id)
        if key is None:
            return TrialScheduler.CONTINUE
        acc = float(result.get("accuracy", math.nan))
        cost = float(result.get(self.cost_key, math.nan))
        promote, why = self.book.decide(epoch, key, (acc, cost))
        if self.on_decision is not None:
            self.on_decision(key, epoch, promote, why)
        if promote:
            return TrialScheduler.CONTINUE
        self.stopped += 1
        return TrialScheduler.STOP

    def on_trial_error(self, tune_controller, trial: "Trial") -> None:
        if self.on_error is not None:
            self.on_error(trial)

    def debug_string(self) -> str:
        counts = ", ".join(f"{r} ep: {n}" for r, n in self.book.counts().items())
        return f"MultiObjectiveASHA(eta={self.book.eta}; recorded per rung {counts}; stopped {self.stopped})"


__all__ = ["MultiObjectiveASHA", "RungBook", "rung_epochs"]
