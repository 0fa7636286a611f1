"""The budget across an interrupt and --resume, driven through the searcher's API (the calls Ray
Tune makes) on a real Optuna SQLite study and a real space: interrupted at every stage of a
search - before the first trial, mid-trial, at the instant a trial finishes, during the last
trials - and resumed, the run ends with exactly ``budget`` counted trials, none re-run."""

from __future__ import annotations

import optuna
import pytest

from test_search_e2e import TINY_SPACE

BUDGET = 6
MAX_PARAMS = 1500  # rejects some candidates of the tiny space before training


def _session(study, space, stop_at: int | None):
    """One search session with 2 trial slots; ``stop_at``: the event (0, 1, ...) at which Ctrl-C
    comes. Every trial reports epoch 1; odd numbers are then pruned at rung 1, even ones train
    to 3 epochs. Returns (interrupted, events seen)."""
    from nas.search.searcher import SearchState, StudySearcher

    state = SearchState(study=study, space=space, budget=BUDGET, max_epochs=3, cost_key="mflops",
                        measure_cost=lambda arch: (float(len(str(arch))), _params(arch)), max_params=MAX_PARAMS)
    state.load_counts()
    searcher = StudySearcher(state)
    running: list[tuple[str, int]] = []  # (Ray trial id, epochs reported)
    events, ids = 0, iter(range(10**6))

    def event() -> bool:
        nonlocal events
        events += 1
        if stop_at is not None and events - 1 == stop_at:
            state.interrupted = True  # what the driver's first Ctrl-C does
        return state.interrupted

    while True:
        while len(running) < 2:
            tid = f"t{next(ids)}"
            config = searcher.suggest(tid)
            if config is None or config == searcher.FINISHED:
                break
            running.append((tid, 0))
            if event():
                break
        if not running or state.interrupted:
            break
        tid, epochs = running.pop(0)
        number = state.live[tid]
        result = {"epoch": 1, "accuracy": 0.1 + number / 100, "mflops": 1.0, "duration_s": 1.0, "failed": False}
        searcher.on_trial_result(tid, result)
        if event():
            # a trial finishing at the instant of the interrupt: Ray still reports it complete
            searcher.on_trial_complete(tid, {**result, "epoch": 3})
            break
        if number % 2:
            state.pruned_at[number] = "stopped at rung 1 epoch(s)"
            searcher.on_trial_complete(tid, result)
        else:
            searcher.on_trial_complete(tid, {**result, "epoch": 3})
        if event():
            break
    state.fail_leftovers()
    return state.interrupted, events


def _params(arch) -> int:
    from nas.builder import build

    return sum(p.numel() for p in build(arch, num_classes=10, in_chans=1).parameters())


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    import nas

    path = tmp_path_factory.mktemp("space") / "tiny.toml"
    path.write_text(TINY_SPACE)
    return nas.load_space(str(path))


def _study(path):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.create_study(storage=f"sqlite:///{path}", directions=["maximize", "minimize"],
                               sampler=optuna.samplers.RandomSampler(seed=0))


def test_an_uninterrupted_session_trains_exactly_the_budget(space, tmp_path):
    from nas.search.searcher import counts_against_budget

    study = _study(tmp_path / "whole.db")
    interrupted, _ = _session(study, space, None)
    assert not interrupted
    assert sum(counts_against_budget(t) for t in study.trials) == BUDGET
    assert any(t.user_attrs.get("infeasible") for t in study.trials)  # rejections did happen


def test_interrupted_at_every_stage_then_resumed_trains_exactly_the_budget(space, tmp_path):
    from nas.search.searcher import counts_against_budget, fail_running_trials

    _, total = _session(_study(tmp_path / "count.db"), space, None)
    for stop_at in range(total):
        path = tmp_path / f"stop{stop_at}.db"
        study = _study(path)
        interrupted, _ = _session(study, space, stop_at)
        assert interrupted
        before = {t.number: (t.state, t.values, t.user_attrs.get("arch"), t.user_attrs.get("fidelity"))
                  for t in study.get_trials(deepcopy=False)}
        assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
        assert fail_running_trials(study, optuna.storages.RDBStorage(f"sqlite:///{path}")) == 0
        assert not _session(study, space, None)[0]
        after = study.get_trials(deepcopy=False)
        assert sum(counts_against_budget(t) for t in after) == BUDGET, stop_at
        for t in after:  # every trial of the first session is unchanged: nothing re-run
            if t.number in before:
                assert (t.state, t.values, t.user_attrs.get("arch"), t.user_attrs.get("fidelity")) == before[t.number]
        interrupted_trials = [t for t in after if t.user_attrs.get("fail_reason") == "interrupted"]
        assert not any(t.user_attrs["counted"] for t in interrupted_trials)
