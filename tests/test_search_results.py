"""nas.runs (load_run, trials/pareto frames, views), the run lock and small searcher helpers.

Real Optuna SQLite storage, no Ray: the study is filled the way the searcher fills it.
"""

from __future__ import annotations

import json
import math

import optuna
import pytest

from nas.errors import NasInputError

TS = optuna.trial.TrialState


def make_run(tmp_path, objectives=("accuracy", "mflops")):
    from nas.runs.folder import write_config

    run = tmp_path / "run"
    run.mkdir()
    config = {
        "format": 1, "name": "run", "study_name": "run", "storage": None,
        "space": {"name": "t", "source": "t.toml", "sha256": ""},
        "dataset": {"name": "digits"}, "objectives": list(objectives),
        "fidelity": {"epochs": 3, "min_epochs": 1, "eta": 3.0, "rungs": [1]},
        "budget": 6, "sampler": "tpe", "seed": 0,
    }
    write_config(run, config)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="run", storage=f"sqlite:///{run / 'study.db'}",
                                directions=["maximize", "minimize"])

    def add(state, arch, acc, mflops, fidelity, **attrs):
        t = study.ask()
        t.set_user_attr("arch", arch)
        t.set_user_attr("mflops", mflops)
        t.set_user_attr("params", int(mflops * 1000))
        t.set_user_attr("fidelity", fidelity)
        t.set_user_attr("duration_s", 1.5)
        if acc is not None:
            t.set_user_attr("accuracy_curve", [acc] * max(fidelity, 1))
        for k, v in attrs.items():
            t.set_user_attr(k, v)
        if state == TS.COMPLETE:
            study.tell(t, [acc, mflops], state=state)
        else:
            study.tell(t, state=state)

    def a(width: int) -> str:
        return f"stem c8 s1 | ds k3 c{width} s2 | head c0"

    add(TS.COMPLETE, a(8), 0.80, 1.0, 3)            # 0 front
    add(TS.COMPLETE, a(16), 0.90, 4.0, 3)           # 1 front
    add(TS.COMPLETE, a(24), 0.85, 5.0, 3)           # 2 dominated by 1
    add(TS.PRUNED, a(4), 0.99, 0.5, 1, prune_reason="stopped at rung 1")  # 3 high low-fidelity acc: never on the front
    add(TS.FAIL, a(2), None, 0.2, 0, fail_reason="infeasible: 0.2 MFLOPs", infeasible=True, counted=False)  # 4
    add(TS.FAIL, a(12), 0.1, 2.0, 1, fail_reason="diverged: loss nan", counted=True)  # 5
    add(TS.COMPLETE, a(8), 0.80, 1.0, 3)            # 6 same genotype as 0: the front holds it once, as trial 0
    return run, study


def test_load_run_frames_and_exact_front(tmp_path):
    import nas

    run_path, _ = make_run(tmp_path)
    run = nas.load_run(run_path)
    t = run.trials
    assert list(t["number"]) == list(range(7))
    assert list(t["state"]) == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED", "FAIL", "FAIL", "COMPLETE"]
    assert t.loc[3, "accuracy"] == 0.99 and t.loc[3, "fidelity"] == 1 and t.loc[3, "reason"] == "stopped at rung 1"
    assert math.isnan(t.loc[4, "accuracy"]) and t.loc[4, "reason"].startswith("infeasible")
    assert t.loc[5, "reason"] == "diverged: loss nan"
    assert str(t["params"].dtype) == "Int64"
    front = run.pareto
    assert list(front["number"]) == [0, 1]
    assert run.objectives == ["accuracy", "mflops"]


def test_write_views_and_pareto_cli(tmp_path, capsys):
    import pandas as pd

    from nas.cli import main
    from nas.runs.views import load_run, write_views

    run_path, study = make_run(tmp_path)
    run = load_run(run_path)
    front = write_views(run_path, study, run.config, plot=True)
    assert list(pd.read_csv(run_path / "pareto.csv")["number"]) == list(front["number"])
    assert len(pd.read_csv(run_path / "trials.csv")) == 7
    assert (run_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["pareto", str(run_path)]) == 0
    out = capsys.readouterr().out
    assert "2 architectures" in out and "90.00%" in out and "stem c8 s1" in out
    assert main(["pareto", str(run_path), "--csv"]) == 0
    assert capsys.readouterr().out.startswith("number,state,arch,accuracy,mflops,params")


def test_front_uses_the_runs_cost_objective(tmp_path):
    from nas.runs.views import pareto_frame, trials_frame

    run_path, study = make_run(tmp_path)
    config = json.loads((run_path / "config.json").read_text())
    config["objectives"] = ["accuracy", "params"]
    trials = trials_frame(study, config)
    assert set(pareto_frame(trials, config)["number"]) == {0, 1}


def test_not_a_run_folder_is_bad_input(tmp_path, capsys):
    import nas
    from nas.cli import main

    with pytest.raises(NasInputError, match="no such run folder"):
        nas.load_run(tmp_path / "missing")
    with pytest.raises(NasInputError, match="not a run folder"):
        nas.load_run(tmp_path)
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(NasInputError, match="unreadable run config"):
        nas.load_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"study_name": "x", "objectives": [], "fidelity": {}}))
    with pytest.raises(NasInputError, match="no study.db"):
        nas.load_run(tmp_path)
    assert main(["pareto", str(tmp_path / "missing")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_run_lock_is_exclusive_and_released(tmp_path):
    from nas.runs.lock import RunLock

    with RunLock(tmp_path):
        with pytest.raises(NasInputError, match="another search is running"):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path):  # released: can be taken again
        pass


def test_fail_running_trials_marks_interrupted_not_counted(tmp_path):
    from nas.runs.storage import study_storage
    from nas.search.searcher import counts_against_budget, fail_running_trials

    run_path, study = make_run(tmp_path)
    study.ask()  # left RUNNING, as by a killed search
    assert fail_running_trials(study, study_storage(f"sqlite:///{run_path / 'study.db'}")) == 1
    last = study.trials[-1]
    assert last.state == TS.FAIL and last.user_attrs == {"fail_reason": "interrupted", "counted": False}
    assert [counts_against_budget(t) for t in study.trials] == [True, True, True, True, False, True, True, False]


def test_describe_trial_error_from_ray_error_file(tmp_path):
    from types import SimpleNamespace

    from nas.search.ray_setup import describe_trial_error

    err = tmp_path / "error.txt"
    err.write_text(
        "Failure # 1 (occurred at 2026-01-01)\nTraceback (most recent call last):\n  File \"x\", line 1\n"
        "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.\n\tclass_name: ImplicitFunc\n"
        "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit detail: x\n"
    )
    reason = describe_trial_error(SimpleNamespace(error_file=str(err)))
    assert reason.startswith("worker died: ActorDiedError: The actor died unexpectedly")
    assert "SYSTEM_ERROR" in reason
    assert describe_trial_error(SimpleNamespace(error_file=None)) == "worker error"
    # Ray 2.60's text for a worker it could not reuse (the lost-trial path, test_search_e2e)
    err.write_text("Failure # 1 (occurred at 2026-12-02_06-36-58)\n"
                   "Trainable runner reuse requires reset_config() to be implemented and return True.\n")
    assert describe_trial_error(SimpleNamespace(error_file=str(err))).startswith("worker not reused")


def test_failure_reason_names_divergence():
    from nas.search.trainable import failure_reason
    from nas.training import TrainingDiverged

    assert failure_reason(TrainingDiverged(1, 3, float("nan"))).startswith("diverged: training diverged: loss nan")
    assert failure_reason(RuntimeError("boom\nmore")) == "RuntimeError: boom"


def test_parse_objectives_and_settings_validation():
    from nas.search.fidelity import Fidelity
    from nas.search.settings import parse_objectives

    assert parse_objectives("accuracy,mflops") == ("accuracy", "mflops")
    assert parse_objectives("accuracy, latency") == ("accuracy", "latency_ms")
    for bad in ("mflops,accuracy", "accuracy", "accuracy,speed", "accuracy,mflops,params"):
        with pytest.raises(NasInputError, match="--objectives"):
            parse_objectives(bad)
    with pytest.raises(NasInputError, match="--min-epochs"):
        Fidelity.from_options(epochs=3, min_epochs=4, train_size=1, val_size=1, batch_size=1, lr=0.1)
    with pytest.raises(NasInputError, match="--eta"):
        Fidelity.from_options(epochs=3, eta=1.0, train_size=1, val_size=1, batch_size=1, lr=0.1)
    assert Fidelity.from_options(epochs=9, eta=3, train_size=1, val_size=1, batch_size=1, lr=0.1).rungs() == [1, 3]
    assert Fidelity.from_options(epochs=9, eta=0, train_size=1, val_size=1, batch_size=1, lr=0.1).rungs() == []


def test_resume_keeps_the_promotion_rule_a_run_was_made_with(tmp_path):
    """A run folder from before --promotion resumes with the plain rule it ran with;
    a new run records the budgeted default in its config.json."""
    import shutil
    from pathlib import Path

    from nas.search.prepare import prepare
    from nas.search.settings import SearchSettings

    run = tmp_path / "reference"
    shutil.copytree(Path(__file__).resolve().parents[1] / "results" / "reference", run)
    config = json.loads((run / "config.json").read_text())
    assert config["fidelity"]["promotion"] == "budgeted"
    assert prepare(SearchSettings(resume=str(run))).settings.fidelity.promotion == "budgeted"
    del config["fidelity"]["promotion"]
    (run / "config.json").write_text(json.dumps(config))
    assert prepare(SearchSettings(resume=str(run))).settings.fidelity.promotion == "asha"


def _open_new_storage(path: str, barrier, results) -> None:
    from nas.runs.storage import study_storage

    barrier.wait()  # every process creates the schema at the same moment
    try:
        storage = study_storage(f"sqlite:///{path}")
        optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"], load_if_exists=True)
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(f"{type(exc).__name__}: {exc}")


def test_storages_opened_at_once_on_a_new_file_all_succeed(tmp_path):
    """A search creating study.db while optuna-dashboard (or a poller) opens it: both create the
    schema; without a retry one of them fails with "table already exists" or a duplicate version."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    files, per_file = 4, 2
    barrier, results = ctx.Barrier(files * per_file), ctx.Queue()
    procs = [ctx.Process(target=_open_new_storage, args=(str(tmp_path / f"s{i}.db"), barrier, results))
             for i in range(files) for _ in range(per_file)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert outcomes == ["ok"] * len(procs)


def _reference_copy(tmp_path):
    import shutil
    from pathlib import Path

    run = tmp_path / "reference"
    shutil.copytree(Path(__file__).resolve().parents[1] / "results" / "reference", run)
    return run


def test_fidelity_round_trips_through_its_config_form_and_reaches_the_trial(tmp_path):
    """The fidelity section of config.json is read into the one typed value, which the trial gets whole."""
    from nas.runs.folder import read_config
    from nas.search.driver import trial_spec
    from nas.search.fidelity import Fidelity
    from nas.search.prepare import prepare
    from nas.search.settings import SearchSettings

    config = read_config(_reference_copy(tmp_path))
    fid = Fidelity.from_dict(config["fidelity"])
    assert fid.to_dict() == config["fidelity"]
    s = prepare(SearchSettings(resume=str(tmp_path / "reference"))).settings
    spec = trial_spec(s, "mflops")
    assert spec.proxy is s.fidelity.proxy
    assert (spec.proxy.dataset, spec.proxy.epochs, spec.proxy.resolution, spec.proxy.eval_epochs) == \
        ("fashion-mnist", 3, 14, (1, 3))  # the default: a 3-epoch screening (a rung at 1), then the finals
    assert (s.fidelity.final_epochs, s.fidelity.finalists) == (1, 15)
    assert Fidelity.from_options(resolution=0).proxy.resolution is None  # 0: the data's own size
    with pytest.raises(NasInputError, match="fidelity lacks 'lr'"):
        Fidelity.from_dict({k: v for k, v in config["fidelity"].items() if k != "lr"})


def test_resume_cpus_per_trial_given_overrides_the_recorded_one(tmp_path):
    """`nas search --resume RUN --cpus-per-trial 1` takes effect even though 1 is the default:
    a run recorded with 2 CPUs per trial resumes with 1 (and records it)."""
    from nas.cli import main

    run = _reference_copy(tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["resources"]["cpus_per_trial"] = 2.0
    (run / "config.json").write_text(json.dumps(config))
    # the reference run has trained its budget: the resume starts no Ray, it rewrites views and config
    assert main(["search", "--resume", str(run), "--cpus-per-trial", "1"]) == 0
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["resources"]["cpus_per_trial"] == 1.0
    assert recorded["resumes"][-1]["budget"] == config["budget"]
    # not given: the recorded value stays
    assert main(["search", "--resume", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["resources"]["cpus_per_trial"] == 1.0


def test_resume_refuses_options_that_change_the_run_naming_them(tmp_path, capsys):
    from nas.cli import main

    run = _reference_copy(tmp_path)
    before = (run / "config.json").read_text()
    assert main(["search", "--resume", str(run), "--epochs", "3", "--space", "mdconv", "--seed", "0"]) == 2
    err = capsys.readouterr().err
    assert "drop --space, --seed, --epochs" in err and "Traceback" not in err
    assert (run / "config.json").read_text() == before


def test_ray_environment_is_restored_after_the_search(monkeypatch):
    import os
    import warnings

    from nas.search.ray_setup import ray_environment

    monkeypatch.delenv("TUNE_DISABLE_SIGINT_HANDLER", raising=False)
    monkeypatch.delenv("RAY_CHDIR_TO_TRIAL_DIR", raising=False)
    monkeypatch.delenv("TUNE_FUNCTION_THREAD_TIMEOUT_S", raising=False)
    monkeypatch.setenv("RAY_DEDUP_LOGS", "0")  # the user's choice is kept
    filters = list(warnings.filters)
    with ray_environment(verbose=False):
        assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1" and os.environ["RAY_DEDUP_LOGS"] == "0"
        assert os.environ["RAY_CHDIR_TO_TRIAL_DIR"] == "0"
        assert os.environ["TUNE_FUNCTION_THREAD_TIMEOUT_S"] == "60", "a pruned trial's epoch outlasts Ray's 2 s"
        with warnings.catch_warnings(record=True) as seen:
            warnings.warn("hidden", FutureWarning)
        assert not seen
    assert "TUNE_DISABLE_SIGINT_HANDLER" not in os.environ and os.environ["RAY_DEDUP_LOGS"] == "0"
    assert warnings.filters == filters


def _front_tick_labels(run_path, tmp_path) -> list[tuple[float, str]]:
    """(position, text) of every labelled x tick of the run's pareto.png, as plot_front draws it."""
    import nas
    from nas.runs.views import plot_front

    run = nas.load_run(run_path)
    axes = []
    plot_front(run.trials, run.pareto, run.config, tmp_path / "pareto.png", decorate=lambda ax, cost: axes.append(ax))
    (ax,) = axes
    assert ax.get_xscale() == "log"
    ax.figure.canvas.draw()
    return [(t.get_position()[0], t.get_text()) for t in ax.get_xticklabels(which="both") if t.get_text()]


@pytest.mark.parametrize("which", ["reference", "made"])
def test_pareto_png_log_axis_prints_plain_numbers(tmp_path, which):
    """Not matplotlib's `3x10^0`: plain numbers, each the value of its tick."""
    import re
    from pathlib import Path

    if which == "reference":
        run_path = Path(__file__).resolve().parents[1] / "results" / "reference"  # 2.6-18.6 MFLOPs: a decade tick and minor ticks
        if not (run_path / "config.json").is_file():
            pytest.skip("no committed reference run")
    else:
        run_path, _ = make_run(tmp_path)  # 0.5-5 MFLOPs: a decade tick and minor ticks
    labels = _front_tick_labels(run_path, tmp_path)
    assert labels, "no labelled x tick"
    for position, text in labels:
        assert re.fullmatch(r"\d+(\.\d+)?", text), labels
        assert float(text) == pytest.approx(position, rel=1e-3), labels
