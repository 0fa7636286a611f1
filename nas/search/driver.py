"""The search run: take the run folder, start Ray, run Ray Tune over the study, write the views.

Order of work (nothing is started or written before the inputs are known good):

1. validate every input (nas.search.prepare: space, dataset, objectives, sampler, numbers,
   output folder writable or run folder resumable and not locked) -> ``NasInputError``;
2. create the run folder and take its lock (nas.runs.lock);
3. start Ray (nas.search.ray_setup: local by default, ``ray.init(address=...)`` for ``--address``);
4. write ``config.json`` + ``space.toml`` and create (or, on resume, open) the Optuna study;
5. ``tune.Tuner(...).fit()`` with :class:`~nas.search.searcher.StudySearcher`,
   :class:`~nas.search.scheduler.MultiObjectiveASHA` and the status line: the screening;
5b. with ``--final-epochs``, the finals (nas.search.finals): the chosen finalists train for
   real once the screening has trained its budget, and decide the front;
6. after every finished trial the CSV views are rewritten from the study
   (``pareto.png`` at most once a minute); at the end - and on Ctrl-C - all views.

Ctrl-C (nas.search.interrupt): the first one stops the search cleanly (running trials are
stopped and recorded as FAIL "interrupted", not counted; finished ones are kept; views are
rewritten); a second one aborts at once.

Resume (``--resume RUN``): trials left RUNNING by a killed search are marked FAIL
"interrupted" (not counted); the search trains ``budget - counted`` more candidates.
Finished trials are never re-run; the sampler sees all of them through the study, and the
successive-halving rungs are refilled from their learning curves so that promotion
decisions continue where they stopped. The sampler is re-seeded with ``seed + number of
trials in the study`` so a resumed search does not replay the random start-up suggestions
of the first session.
"""

from __future__ import annotations

import collections
import math
import shutil
import tempfile
import time
from typing import Any

from nas.errors import NasInputError
from nas.runs import folder
from nas.runs.lock import RunLock
from nas.runs.storage import create_study, open_study, storage_url, study_storage
from nas.runs.trial_attrs import ACCURACY_CURVE, FAIL_REASON
from nas.search.feasibility import cost_measurer, memory_measurer
from nas.search.live_views import LiveViews
from nas.search.prepare import Prepared, prepare, resources_record
from nas.search.ray_setup import describe_trial_error, quiet_loggers, ray_environment, silenced, start_ray, stop_ray
from nas.search.settings import SearchOutcome, SearchSettings, make_sampler
from nas.search.trainable import TrialSpec


def run_search(settings: SearchSettings) -> SearchOutcome:
    """Run (or resume) a search end to end; see the module docstring."""
    t_start = time.perf_counter()
    prepared = prepare(settings)
    with ray_environment(prepared.settings.verbose):
        quiet_loggers(prepared.settings.verbose)
        lock, created = _take_run_folder(prepared)
        try:
            t_ray = time.perf_counter()
            started_ray = _start_ray_unless_done(prepared, lock, created)
            ray_start = time.perf_counter() - t_ray
            try:
                outcome = _run_locked(prepared)
            finally:
                if started_ray:
                    stop_ray()
            outcome.timings["ray_start"] = ray_start
            outcome.timings["total"] = time.perf_counter() - t_start
            return outcome
        finally:
            lock.release()


def _take_run_folder(prepared: Prepared) -> tuple[RunLock, bool]:
    """The run folder (made for a new run) and its lock; returns (lock, whether we created the folder)."""
    run_path = prepared.run_path
    created = False
    if not prepared.resuming:
        created = not run_path.exists()
        run_path.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_path)
    # A lock we did not get belongs to another search: its .lock and folder are left alone.
    lock.acquire()
    if not prepared.resuming and (run_path / folder.CONFIG_FILE).exists():
        # another `nas search --name` on the same folder got there first and has finished
        lock.release()
        raise NasInputError(f"{run_path}: run folder already exists; continue it with --resume {run_path} "
                            f"or pick another --name")
    return lock, created


def _start_ray_unless_done(prepared: Prepared, lock: RunLock, created: bool) -> bool:
    """Start Ray unless a resumed run has trained its budget; returns whether we started it.
    Ray that cannot start leaves no trace: the lock is released and a folder we made removed."""
    try:
        if prepared.resuming and _budget_reached(prepared):
            return False
        return start_ray(prepared.settings)
    except NasInputError:
        lock.release()
        if created:
            shutil.rmtree(prepared.run_path, ignore_errors=True)
        raise


def _budget_reached(prepared: Prepared) -> bool:
    """A resumed run that already trained its budget needs no Ray (views and front only)."""
    from nas.search.searcher import counts_against_budget

    try:
        study = open_study(prepared.run_path, prepared.config)
    except Exception:  # noqa: BLE001 - let the real run report storage problems
        return False
    from nas.search.finals import pending_finalists

    s = prepared.settings
    counted = sum(1 for t in study.get_trials(deepcopy=False) if counts_against_budget(t))
    return counted >= s.budget and not pending_finalists(study, s.fidelity)


def _run_locked(prepared: Prepared) -> SearchOutcome:
    s = prepared.settings
    quiet_loggers(s.verbose)  # again: ray.init may have reset its loggers
    study = _open_run_study(prepared)
    state = _search_state(prepared, study)
    views = LiveViews(prepared.run_path, study, prepared.config)
    state.on_finished = views.after_trial
    remaining = s.budget - state.done
    interrupted, fit_s, finals_s = False, 0.0, 0.0
    try:
        if remaining > 0:
            interrupted, fit_s = _fit(prepared, state)
        if not interrupted and not state.stop_reason and state.done >= s.budget:
            t_finals = time.perf_counter()
            interrupted = _finals(prepared, study, views)
            finals_s = time.perf_counter() - t_finals
    finally:
        front = views.write_all()
    return SearchOutcome(prepared.run_path, front, state.done, s.budget, interrupted, state.stop_reason,
                         timings={"fit": fit_s, "finals": finals_s}, failures=_failures(study))


def _finals(prepared: Prepared, study: Any, views: LiveViews) -> bool:
    """Train the screening's pending finalists for real (nas.search.finals); returns whether
    Ctrl-C stopped them."""
    from dataclasses import replace

    from nas.search.finals import run_finals

    s = prepared.settings
    if not s.fidelity.final_epochs:
        return False
    spec = replace(trial_spec(s, _cost_key(prepared)), final=s.fidelity.final_proxy(), latency=False, supernet=None,
                   screen=None)
    resources = {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial}
    _, interrupted = run_finals(study, s.fidelity, spec, resources, _cost_key(prepared),
                                on_recorded=views.after_trial, quiet=not s.verbose)
    return interrupted


def _open_run_study(prepared: Prepared):
    """A new run: its files written and its study created. A resumed one: its study opened with a
    sampler re-seeded past the trials it has, stale RUNNING trials failed, the resume recorded."""
    from nas.search.searcher import counts_against_budget, fail_running_trials

    s, config, run_path = prepared.settings, prepared.config, prepared.run_path
    if not prepared.resuming:
        folder.write_space_text(run_path, prepared.space_text)
        folder.write_config(run_path, config)
        return create_study(run_path, config, make_sampler(s.sampler, s.seed, s.budget), s.enqueue)
    n_existing = len(open_study(run_path, config).trials)
    study = open_study(run_path, config, make_sampler(s.sampler, s.seed + n_existing, s.budget))
    stale = fail_running_trials(study, study_storage(storage_url(run_path, config)))
    config["budget"] = s.budget
    config["resources"] = resources_record(s)
    config.setdefault("resumes", []).append({
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "trials_in_study": n_existing,
        "counted_before": sum(1 for t in study.get_trials(deepcopy=False) if counts_against_budget(t)),
        "marked_interrupted": stale,
        "budget": s.budget,
    })
    folder.write_config(run_path, config)
    return study


def _search_state(prepared: Prepared, study: Any):
    """What the searcher, scheduler and status line share, counted from the study so far."""
    from nas.search.searcher import SearchState

    s, info = prepared.settings, prepared.dataset_info
    limited = s.trial_memory_mb and math.isfinite(s.trial_memory_mb)
    state = SearchState(
        study=study,
        space=prepared.space,
        budget=s.budget,
        max_epochs=s.fidelity.screening_epochs,
        cost_key=_cost_key(prepared),
        measure_cost=cost_measurer(info),
        max_mflops=s.max_mflops,
        max_params=s.max_params,
        measure_memory=memory_measurer(s, info) if limited else None,
        max_memory_mb=s.trial_memory_mb,
    )
    state.load_counts()
    return state


def _cost_key(prepared: Prepared) -> str:
    return str(prepared.config["objectives"][1])


def trial_spec(s: SearchSettings, cost_key: str) -> TrialSpec:
    """What every trial's worker needs besides its arch (see nas.search.trainable.run_candidate)."""
    return TrialSpec(proxy=s.fidelity.proxy, seed=s.seed, threads=max(1, int(s.cpus_per_trial)),
                     latency=cost_key == "latency_ms", cpu_limit_s=s.trial_cpu_limit,
                     supernet=s.fidelity.supernet, screen=s.fidelity.screen())


def _scheduler(prepared: Prepared, state: Any):
    """The multi-objective successive-halving scheduler, its rungs refilled from the study."""
    from nas.search.scheduler import MultiObjectiveASHA, RungBook

    s, fid, cost_key = prepared.settings, prepared.settings.fidelity, _cost_key(prepared)
    eta = fid.eta if fid.eta > 1 else 2.0
    book = RungBook(fid.rungs(), ("max", "min"), eta, budgeted=fid.promotion == "budgeted")
    _preload_rungs(book, state.study, cost_key)

    def on_error(trial) -> None:
        reason = describe_trial_error(trial)
        if s.trial_cpu_limit and reason.startswith("worker died"):
            reason += f"; or stopped at --trial-cpu-limit {s.trial_cpu_limit:g} CPU s"
        state.errors[trial.trial_id] = reason[:500]

    def on_decision(number: int, rung: int, promote: bool, why: str) -> None:
        if not promote:
            state.pruned_at[number] = f"stopped at {why}"

    return MultiObjectiveASHA(book, cost_key, key_of=lambda tid: state.live.get(tid), on_error=on_error,
                              on_decision=on_decision)


def _preload_rungs(book: Any, study: Any, cost_key: str) -> None:
    for t in study.get_trials(deepcopy=False):
        curve = t.user_attrs.get(ACCURACY_CURVE) or []
        if not curve or t.state.name not in ("COMPLETE", "PRUNED", "FAIL"):
            continue
        cost = t.user_attrs.get(cost_key)  # the cost objective's name is its attribute key
        if cost is None:
            continue
        book.preload(t.number, curve, float(cost), promoted_to=len(curve))


def _tuner(prepared: Prepared, state: Any, callbacks: list, stop: Any, ray_dir: str):
    from ray import tune

    from nas.search.searcher import LostTrials, StudySearcher
    from nas.search.trainable import train_candidate

    s = prepared.settings
    resources = {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial}
    spec = trial_spec(s, _cost_key(prepared))
    trainable = tune.with_resources(tune.with_parameters(train_candidate, spec=spec), resources)
    searcher = StudySearcher(state)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=_scheduler(prepared, state),
            # The searcher ends the search once the counted trials reach the budget: a Ray
            # trial that ends untrained does not count, and another one takes its place.
            num_samples=-1,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=ray_dir,
            verbose=2 if s.verbose else 0,
            callbacks=[LostTrials(searcher), *callbacks],
            stop=stop,
            failure_config=tune.FailureConfig(max_failures=0),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
            log_to_file=not s.verbose,
        ),
    )


def _fit(prepared: Prepared, state: Any) -> tuple[bool, float]:
    """Train candidates with Ray Tune until the counted ones reach the budget; returns (interrupted, seconds in the Tune loop)."""
    from nas.search.interrupt import Interrupt, stopper
    from nas.search.progress import StatusLine

    s = prepared.settings
    status = StatusLine(state.stats, interval=s.status_interval, on_running=lambda n: setattr(state, "running", n))
    stop_requested = {"stop": False}

    def request_stop() -> None:
        stop_requested["stop"] = True
        state.interrupted = True

    ray_dir = tempfile.mkdtemp(prefix="nas-ray-")
    tuner = _tuner(prepared, state, [status], stopper(lambda: stop_requested["stop"]), ray_dir)
    t_fit = time.perf_counter()
    interrupted = False
    try:
        with Interrupt(request_stop) as intr:
            with silenced(not s.verbose):
                tuner.fit()
        interrupted = intr.stopped
    except KeyboardInterrupt:
        interrupted = True
        state.interrupted = True
    finally:
        state.fail_leftovers()
        status.close()
        shutil.rmtree(ray_dir, ignore_errors=True)
    return interrupted, time.perf_counter() - t_fit


def _failures(study: Any) -> list:
    """``[(fail_reason, count)]`` of the trained candidates that failed, most common first."""
    from nas.search.searcher import counts_against_budget

    reasons = collections.Counter(
        str(t.user_attrs.get(FAIL_REASON) or "unknown")
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "FAIL" and counts_against_budget(t)
    )
    return reasons.most_common()


__all__ = ["run_search", "trial_spec"]
