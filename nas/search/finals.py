"""The finals: once the screening has trained its budget, a few candidates train for real.

A proxy (a few epochs on a few images at a small size) is cheap enough to screen hundreds of
candidates but ranks networks of *similar cost* poorly (``benchmarks/bench_fidelity.py``). The
finals spend the real trainings where that ranking matters:

1. **Choose** (:func:`choose_finalists`, a pure function of the screened trials). The
   screened candidates are the COMPLETE trials of the screening: trained to the proxy's last
   epoch (the successive halving promoted them). Their proxy accuracy is compared with the
   screening's *own* cost curve, a least-squares quadratic in log2(MFLOPs) of those same
   trials: what matters is how far a network stands above the networks of its cost, not its
   accuracy (which mostly follows its cost). The screened log-MFLOPs range is cut into
   ``tiers`` equal parts (the S/M/L of the picks); each tier sends its best residuals, the
   ``finalists`` split evenly among the tiers (a tier with too few candidates gives its
   places to the best of the rest). Ties go to the lower trial number, so the same screening
   always gives the same finalists (a resumed run trains the ones it is missing).
   ``--finalists-by cost`` does not trust the screening's ranking at all
   (``benchmarks/bench_fidelity.py`` measures it below a random choice within a cost band):
   the pool is every candidate the screening trained (pruned ones too), and each tier sends
   members evenly spaced in log-cost, whatever their proxy accuracy.
2. **Train** (:func:`run_finals`): each finalist trains ``final_epochs`` epochs from scratch on
   every image of the search's carve but its held-out ones, at the data's own size
   (``Fidelity.final_proxy``), in parallel on Ray like the screening. The held-out images are
   the search's own: never the ground truth's judge images, never the test split.
3. **Record**: each real training becomes a trial of its own in the study (its values
   ``[accuracy, cost]``, user attrs ``final_of`` = the screened trial's number and
   ``fidelity`` = the run's full fidelity), added the moment it finishes so that an
   interrupted finals round keeps what it trained. Finals do not count against the budget.
   Only full-fidelity trials stand on the front (:func:`nas.runs.views.pareto_frame`), so the
   front, and the S/M/L picks taken from it, are decided by real training.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ray.tune import Callback

from nas.picks import cost_residuals
from nas.search.fidelity import FINALIST_RULES
from nas.runs.trial_attrs import (
    ACCURACY_CURVE,
    ARCH,
    COUNTED,
    DUPLICATE_OF,
    DURATION_S,
    FAIL_REASON,
    FIDELITY,
    FINAL_OF,
    LATENCY_MS,
    MAX_EPOCHS,
    MFLOPS,
    NODE,
    PARAMS,
    TRAIN_MEMORY_MB,
)

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Screened:
    """One candidate of the screening: its trial number, genotype, proxy accuracy and MFLOPs."""

    number: int
    arch: str
    accuracy: float
    mflops: float


def choose_finalists(screened: Sequence[Screened], count: int, tiers: int, by: str = "screening") -> list[Screened]:
    """The ``count`` finalists of ``screened``, spread over ``tiers`` log-MFLOPs tiers and, within
    each, ranked by their residual above the screening's own cost curve (``by="screening"``)
    or taken evenly spaced in log-cost (``by="cost"``; see the module doc). Returned cheapest first."""
    usable = [s for s in screened if s.mflops > 0 and (by == "cost" or math.isfinite(s.accuracy))]
    pool = _one_per_genotype(usable)
    if len(pool) <= count:
        return sorted(pool, key=lambda s: (s.mflops, s.number))
    logs = [math.log2(s.mflops) for s in pool]
    lo, hi = min(logs), max(logs)
    width = (hi - lo) / tiers or 1.0
    tier_of = [min(tiers - 1, int((x - lo) / width)) for x in logs]
    quotas = [count // tiers + (1 if t < count % tiers else 0) for t in range(tiers)]
    if by == "cost":
        chosen = []
        for t in range(tiers):
            members = sorted((i for i in range(len(pool)) if tier_of[i] == t), key=lambda i: (logs[i], pool[i].number))
            chosen += _evenly_spaced(members, quotas[t])
        rest = sorted((i for i in range(len(pool)) if i not in chosen), key=lambda i: (logs[i], pool[i].number))
        chosen += _evenly_spaced(rest, count - len(chosen))  # places a thin tier left
        return sorted((pool[i] for i in chosen), key=lambda s: (s.mflops, s.number))
    residual = cost_residuals([s.mflops for s in pool], [s.accuracy for s in pool])
    ranked = sorted(range(len(pool)), key=lambda i: (-residual[i], pool[i].number))
    chosen = []
    for t in range(tiers):
        chosen += [i for i in ranked if tier_of[i] == t][:quotas[t]]
    chosen += [i for i in ranked if i not in chosen][:count - len(chosen)]  # places a thin tier left
    return sorted((pool[i] for i in chosen), key=lambda s: (s.mflops, s.number))


def _evenly_spaced(ordered: list[int], k: int) -> list[int]:
    """``k`` members of ``ordered`` at the centres of ``k`` equal slices of it (all when fewer)."""
    if k >= len(ordered):
        return list(ordered)
    return [ordered[int((j + 0.5) * len(ordered) / k)] for j in range(k)]


def _one_per_genotype(pool: list[Screened]) -> list[Screened]:
    first: dict[str, Screened] = {}
    for s in sorted(pool, key=lambda s: s.number):
        first.setdefault(s.arch, s)
    return list(first.values())


def screened_trials(study: "optuna.Study", screening_epochs: int, pruned_too: bool = False) -> list[Screened]:
    """The screening's candidates in ``study``: COMPLETE trials trained to the proxy's last
    epoch (not the finals, not the duplicates answered from an earlier trial); with
    ``pruned_too`` also every candidate successive halving stopped earlier (its accuracy: its
    last epoch's)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        if FINAL_OF in ua or DUPLICATE_OF in ua:
            continue
        if t.state.name == "COMPLETE" and t.values and int(ua.get(FIDELITY, 0)) == screening_epochs:
            accuracy = float(t.values[0])
        elif pruned_too and t.state.name in ("COMPLETE", "PRUNED") and int(ua.get(FIDELITY, 0)) >= 1:
            curve = ua.get(ACCURACY_CURVE) or [math.nan]
            accuracy = float(curve[-1])
        else:
            continue
        out.append(Screened(t.number, str(ua.get(ARCH, "")), accuracy, float(ua.get(MFLOPS, math.nan))))
    return out


def finals_done(study: "optuna.Study") -> set[int]:
    """Numbers of the screened trials that already have their final (trained, or failed for good)."""
    return {int(t.user_attrs[FINAL_OF]) for t in study.get_trials(deepcopy=False) if FINAL_OF in t.user_attrs}


def pending_finalists(study: "optuna.Study", fidelity: Any) -> list[Screened]:
    """The finalists of the study's screening that still need their real training ([] without finals)."""
    if not fidelity.final_epochs:
        return []
    from nas.search.fidelity import FINAL_TIERS

    by = fidelity.finalists_by
    screened = screened_trials(study, fidelity.screening_epochs, pruned_too=by == "cost")
    chosen = choose_finalists(screened, fidelity.finalists, FINAL_TIERS, by)
    done = finals_done(study)
    return [s for s in chosen if s.number not in done]


def record_final(study: "optuna.Study", screened: Any, result: dict, full_fidelity: int, cost_key: str) -> bool:
    """Add a finalist's real training to ``study`` as a trial of its own (see the module doc);
    returns whether it trained (a COMPLETE trial) rather than failed."""
    import optuna

    original = screened
    ua = original.user_attrs
    keep = {k: ua[k] for k in (ARCH, MFLOPS, PARAMS, LATENCY_MS, TRAIN_MEMORY_MB) if k in ua}
    attrs = {**keep, FINAL_OF: original.number, MAX_EPOCHS: full_fidelity, COUNTED: False,
             DURATION_S: float(result.get("duration_s", math.nan)), NODE: str(result.get("node", ""))}
    acc = float(result.get("accuracy", math.nan))
    cost = float(ua.get(cost_key, math.nan))
    trained = not result.get("failed") and math.isfinite(acc) and math.isfinite(cost)
    if trained:
        attrs.update({FIDELITY: full_fidelity, ACCURACY_CURVE: [*(ua.get(ACCURACY_CURVE) or []), acc]})
        trial = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, values=[acc, cost],
                                          params=original.params, distributions=original.distributions,
                                          user_attrs=attrs)
    else:
        reason = result.get("fail_reason") or f"no valid result (accuracy {acc}, {cost_key} {cost})"
        attrs.update({FIDELITY: int(ua.get(FIDELITY, 0)), FAIL_REASON: f"final: {reason}"[:500]})
        trial = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params=original.params,
                                          distributions=original.distributions, user_attrs=attrs)
    study.add_trial(trial)
    return trained


def run_finals(study: "optuna.Study", fidelity: Any, spec: Any, resources: dict, cost_key: str,
               on_recorded: Optional[Callable[[], None]] = None, quiet: bool = True) -> tuple[int, bool]:
    """Train the pending finalists for real on Ray (already started) and record each as it
    finishes; returns (finals recorded this call, whether Ctrl-C stopped it)."""
    import shutil
    import tempfile

    from ray import tune

    from nas.search.interrupt import Interrupt, stopper
    from nas.search.ray_setup import silenced
    from nas.search.trainable import train_candidate

    pending = pending_finalists(study, fidelity)
    if not pending:
        return 0, False
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    by_arch = {s.arch: trials[s.number] for s in pending}
    stop = {"stop": False}
    recorder = _FinalsRecorder(study, by_arch, fidelity.epochs, cost_key, on_recorded)
    costs = ", ".join(f"{s.mflops:.2f}" for s in pending)
    print(f"[nas] finals: {len(pending)} finalist(s) train for real, {fidelity.final_epochs} epoch(s) on all the "
          f"search's training images at full size (MFLOPs {costs})", file=sys.stderr, flush=True)
    ray_dir = tempfile.mkdtemp(prefix="nas-ray-finals-")
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(train_candidate, spec=spec), resources),
        param_space={"arch": tune.grid_search([s.arch for s in pending])},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(name="finals", storage_path=ray_dir, verbose=0 if quiet else 2,
                                  callbacks=[recorder], stop=stopper(lambda: stop["stop"]),
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
                                  log_to_file=quiet),
    )
    interrupted = False
    try:
        with Interrupt(lambda: stop.update(stop=True)) as intr:
            with silenced(quiet):
                tuner.fit()
        interrupted = intr.stopped
    except KeyboardInterrupt:
        interrupted = True
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    return recorder.recorded, interrupted


class _FinalsRecorder(Callback):
    """Ray Tune callback: a finalist's last result is recorded in the study as it arrives."""

    def __init__(self, study: Any, by_arch: dict, full_fidelity: int, cost_key: str,
                 on_recorded: Optional[Callable[[], None]]) -> None:
        self.study, self.by_arch, self.full, self.cost_key = study, by_arch, full_fidelity, cost_key
        self.on_recorded = on_recorded
        self.recorded = 0
        self.seen: set[str] = set()
        self.started = time.time()

    # Driver-side only, like the searcher's state (Ray pickles its Tuner state, never restored here).
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        arch = trial.config.get("arch")
        if arch in self.seen or arch not in self.by_arch:
            return
        if not result.get("failed") and int(result.get("epoch", 0) or 0) < self.full:
            return
        self.seen.add(arch)
        original = self.by_arch[arch]
        trained = record_final(self.study, original, result, self.full, self.cost_key)
        self.recorded += 1
        outcome = f"{100 * float(result['accuracy']):.2f} %" if trained else f"failed: {result.get('fail_reason')}"
        print(f"[nas] finals: {len(self.seen)}/{len(self.by_arch)} done (trial {original.number}, "
              f"{float(original.user_attrs.get(MFLOPS, math.nan)):.2f} MFLOPs: {outcome}; "
              f"{time.time() - self.started:.0f} s)", file=sys.stderr, flush=True)
        if self.on_recorded is not None:
            self.on_recorded()


__all__ = ["FINALIST_RULES", "Screened", "choose_finalists", "finals_done", "pending_finalists", "record_final",
           "run_finals", "screened_trials"]
