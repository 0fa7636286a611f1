"""A trial's record in the run's study: the user attribute keys, and the one way to tell how it ended.

The keys are part of the run format: the searcher writes them, ``nas.runs.views`` and the
driver read them, and so do older runs' studies. Each is spelled here once.

- ``arch``: the genotype string
- ``mflops``: multiply-adds in millions (batch 1), measured before training
- ``params``: trainable parameters
- ``latency_ms``: measured latency (only when the run uses the latency objective)
- ``max_epochs``: the run's full fidelity
- ``train_memory_mb``: the memory one training step needs (only with ``--trial-memory``)
- ``fidelity``: epochs trained
- ``accuracy_curve``: validation accuracy after each epoch trained
- ``duration_s``: wall time of the training (+ evaluation)
- ``node``: the Ray node that trained it
- ``worker``: the process id of the worker that trained it (with ``node``: which worker)
- ``worker_rss_mb``: that worker's resident memory when the trial started, i.e. what the
  trials before it on the same worker left behind (a reused worker should stay flat)
- ``traceback``: the end of the worker's traceback, for a trial that raised
- ``fail_reason``: why a FAIL trial failed, one line
- ``counted``: a FAIL (or duplicate) trial: whether it used up a unit of the budget
- ``infeasible``: a FAIL trial rejected before training (a constraint, an invalid candidate)
- ``prune_reason``: where the scheduler stopped a PRUNED trial
- ``duplicate_of``: the number of the earlier trial whose outcome a repeated genotype took
- ``final_of``: a final's trial (nas.search.finals): the number of the screened trial it trained for real

The cost objectives' names (``mflops``, ``params``, ``latency_ms``) are their keys too.

:func:`tell_complete`, :func:`tell_pruned` and :func:`tell_fail` set a trial's closing
attributes and tell the study, in that order: Optuna refuses attributes on a finished trial.
What each end means for the search (values, budget) is in ``nas.search.searcher``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import optuna

ARCH = "arch"
MFLOPS = "mflops"
PARAMS = "params"
LATENCY_MS = "latency_ms"
MAX_EPOCHS = "max_epochs"
TRAIN_MEMORY_MB = "train_memory_mb"
FIDELITY = "fidelity"
ACCURACY_CURVE = "accuracy_curve"
DURATION_S = "duration_s"
NODE = "node"
WORKER = "worker"
WORKER_RSS_MB = "worker_rss_mb"
TRACEBACK = "traceback"
FAIL_REASON = "fail_reason"
COUNTED = "counted"
INFEASIBLE = "infeasible"
PRUNE_REASON = "prune_reason"
DUPLICATE_OF = "duplicate_of"
FINAL_OF = "final_of"


def tell_complete(study: "optuna.Study", trial: "optuna.Trial", values: Sequence[float]) -> None:
    """COMPLETE with the objective values ``[accuracy, cost]``."""
    from optuna.trial import TrialState

    study.tell(trial, list(values), state=TrialState.COMPLETE)


def tell_pruned(study: "optuna.Study", trial: "optuna.Trial", reason: str | None = None) -> None:
    """PRUNED (no values); ``reason``: where the scheduler stopped it (``prune_reason``)."""
    from optuna.trial import TrialState

    if reason is not None:
        trial.set_user_attr(PRUNE_REASON, reason)
    study.tell(trial, state=TrialState.PRUNED)


def tell_fail(study: "optuna.Study", trial: "optuna.Trial", reason: str, counted: bool, infeasible: bool = False,
              skip_if_finished: bool = False) -> None:
    """FAIL with ``fail_reason`` and ``counted`` (it trained, so it used up a unit of the budget);
    ``infeasible``: rejected before training. ``skip_if_finished``: a trial told already is left as it is."""
    from optuna.trial import TrialState

    trial.set_user_attr(FAIL_REASON, reason)
    if infeasible:
        trial.set_user_attr(INFEASIBLE, True)
    trial.set_user_attr(COUNTED, counted)
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=skip_if_finished)


__all__ = ["ACCURACY_CURVE", "ARCH", "COUNTED", "DUPLICATE_OF", "DURATION_S", "FAIL_REASON", "FIDELITY", "FINAL_OF",
           "INFEASIBLE", "LATENCY_MS", "MAX_EPOCHS", "MFLOPS", "NODE", "PARAMS", "PRUNE_REASON", "TRACEBACK",
           "TRAIN_MEMORY_MB", "WORKER", "WORKER_RSS_MB", "tell_complete", "tell_fail", "tell_pruned"]
