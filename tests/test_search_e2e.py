"""End-to-end: real `nas search` runs (subprocess, real local Ray on 2 CPUs, real Optuna SQLite, real
training on scikit-learn's digits) with a tiny space written to tmp_path.

One search is interrupted with SIGINT (as Ctrl-C) after a few trials, then resumed to its budget;
a second search uses a NaN-diverging learning rate so every candidate really fails. The
infeasible path is real too: --max-params rejects the wider candidates before training.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TINY_SPACE = """\
description = "tiny test space for 8x8 digits"
[input]
channels = 1
size = [8, 8]
[stem]
channels = [4, 8]
stride = 1
[defaults]
type = "ds"
kernels = [[3], [3, 5]]
[[stages]]
depth = [1, 2]
width = [8, 16]
stride = 2
[head]
channels = [0, 32]
"""

# the screening alone (no finals: tests/test_search_finals.py has them)
COMMON = ["--dataset", "digits", "--epochs", "3", "--eta", "3", "--train-size", "400", "--val-size", "200", "--final-epochs", "0",
          "--lr", "0.5", "--num-cpus", "2", "--status-interval", "2"]
BUDGET = 10
MAX_PARAMS = 1500


def nas_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas", *args]


def run_nas(*args: str, timeout: float = 480) -> subprocess.CompletedProcess:
    return subprocess.run(nas_cmd(*args), capture_output=True, text=True, timeout=timeout, env=_env())


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@pytest.fixture(scope="module")
def space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "tiny.toml"
    path.write_text(TINY_SPACE)
    return path


def _finished(run_path: Path) -> int:
    csv = run_path / "trials.csv"
    if not csv.exists():
        return 0
    text = csv.read_text()
    return text.count(",COMPLETE,") + text.count(",PRUNED,")


@pytest.fixture(scope="module")
def interrupted_then_resumed(space_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    run_path = out / "run"
    args = ["search", "--space", str(space_file), "--budget", str(BUDGET), "--max-params", str(MAX_PARAMS),
            "--out", str(out), "--name", "run", *COMMON]
    proc = subprocess.Popen(nas_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    # waits for the event (3 trials finished), however long a loaded machine takes to get there
    while proc.poll() is None and _finished(run_path) < 3:
        time.sleep(0.2)
    interrupted = proc.poll() is None
    if interrupted:
        proc.send_signal(signal.SIGINT)
    out1, err1 = proc.communicate(timeout=120)
    first = {
        "returncode": proc.returncode,
        "stdout": out1,
        "stderr": err1,
        "sent_sigint": interrupted,
        "trials": (run_path / "trials.csv").read_text() if (run_path / "trials.csv").exists() else "",
    }
    import nas

    before = nas.load_run(run_path).trials
    second = run_nas("search", "--resume", str(run_path))
    return run_path, first, before, second


def test_interrupt_keeps_finished_trials_and_rewrites_views(interrupted_then_resumed):
    run_path, first, before, _ = interrupted_then_resumed
    assert first["sent_sigint"], "the search finished before it could be interrupted; make it longer"
    assert first["returncode"] == 130, first["stderr"][-2000:]
    assert "--resume" in first["stderr"]
    # every trial of the first session is finished in the study; none left RUNNING
    assert not (before["state"] == "RUNNING").any()
    assert ((before["state"] == "COMPLETE") | (before["state"] == "PRUNED")).sum() >= 3
    interrupted = before[before["reason"] == "interrupted"]
    assert (interrupted["state"] == "FAIL").all()
    # the CSV view was rewritten at the interrupt and matches the study
    assert first["trials"].count("\n") - 1 == len(before)


def test_resume_reaches_budget_without_rerunning(interrupted_then_resumed):
    import nas
    from nas.search.searcher import counts_against_budget

    run_path, _, before, second = interrupted_then_resumed
    assert second.returncode == 0, second.stderr[-3000:]
    run = nas.load_run(run_path)
    counted = [t for t in run.study.get_trials(deepcopy=False) if counts_against_budget(t)]
    assert len(counted) == BUDGET
    after = run.trials.set_index("number")
    # trials finished before the interrupt are untouched: same state, arch, accuracy, fidelity
    done_before = before[before["state"].isin(["COMPLETE", "PRUNED", "FAIL"])].set_index("number")
    for number, row in done_before.iterrows():
        assert after.loc[number, "state"] == row["state"]
        assert after.loc[number, "arch"] == row["arch"]
        assert after.loc[number, "fidelity"] == row["fidelity"]
        if not math.isnan(row["accuracy"]):
            assert after.loc[number, "accuracy"] == row["accuracy"]
    # the resumed session only added new trial numbers
    new = set(after.index) - set(done_before.index)
    assert new and min(new) > max(done_before.index)
    config = json.loads((run_path / "config.json").read_text())
    assert len(config["resumes"]) == 1 and config["resumes"][0]["budget"] == BUDGET
    assert f"{BUDGET}/{BUDGET} candidates trained" in second.stdout


def test_run_folder_files_and_frames(interrupted_then_resumed):
    import nas
    from nas.moo import pareto_mask

    run_path, _, _, _ = interrupted_then_resumed
    for name in ("study.db", "config.json", "trials.csv", "pareto.csv", "pareto.png", "space.toml"):
        assert (run_path / name).is_file(), name
    assert (run_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((run_path / "config.json").read_text())
    for key in ("space", "dataset", "objectives", "sampler", "seed", "fidelity", "budget", "versions", "constraints"):
        assert key in config
    assert config["space"]["sha256"] and (run_path / "space.toml").read_text() == TINY_SPACE
    assert config["fidelity"]["rungs"] == [1]

    run = nas.load_run(run_path)
    trials, front = run.trials, run.pareto
    for col in ("number", "arch", "accuracy", "mflops", "params", "state", "fidelity", "duration_s", "reason"):
        assert col in trials.columns and col in front.columns
    assert len(trials) == len(run.study.trials)
    # every arch string round-trips
    for text in trials["arch"]:
        assert str(nas.Arch.parse(text)) == text

    # fidelity: complete trials are at full fidelity, pruned ones below it
    # (a genotype proposed again is answered from its first trial, see test_search_duplicates.py)
    original = ~trials["reason"].str.startswith("duplicate of trial")
    complete = trials[(trials["state"] == "COMPLETE") & original]
    pruned = trials[(trials["state"] == "PRUNED") & original]
    assert (complete["fidelity"] == 3).all()
    assert (pruned["fidelity"] < 3).all() and (pruned["fidelity"] >= 1).all()
    assert pruned["reason"].str.contains("rung 1").all()

    # the front is exactly the non-dominated set of COMPLETE full-fidelity trials
    assert complete["arch"].is_unique
    pts = list(zip(complete["accuracy"], complete["mflops"]))
    expected = set(complete["number"][pareto_mask(pts, ("max", "min"))])
    assert set(front["number"]) == expected and len(expected) >= 1
    assert not set(front["number"]) & set(pruned["number"])
    assert list(front["mflops"]) == sorted(front["mflops"])

    # infeasible candidates: FAIL with the reason, never trained, not counted
    infeasible = trials[trials["reason"].str.startswith("infeasible")]
    assert len(infeasible) >= 1
    assert (infeasible["state"] == "FAIL").all() and (infeasible["fidelity"] == 0).all()
    assert (infeasible["params"] > MAX_PARAMS).all()
    assert (trials[trials["state"] != "FAIL"]["params"] <= MAX_PARAMS).all()
    for t in run.study.get_trials(deepcopy=False):
        if t.user_attrs.get("infeasible"):
            assert t.user_attrs["fail_reason"].startswith("infeasible") and not t.user_attrs["counted"]

    # CSV views agree with the study
    import pandas as pd

    assert list(pd.read_csv(run_path / "pareto.csv")["number"]) == list(front["number"])
    assert len(pd.read_csv(run_path / "trials.csv")) == len(trials)

    # nas pareto prints the same front
    shown = run_nas("pareto", str(run_path), "--plot", timeout=120)
    assert shown.returncode == 0, shown.stderr
    for arch in front["arch"]:
        assert arch in shown.stdout


def test_diverging_candidates_are_recorded_as_failed(space_file, tmp_path):
    args = ["search", "--space", str(space_file), "--budget", "3", "--out", str(tmp_path), "--name", "nan",
            "--dataset", "digits", "--epochs", "2", "--eta", "0", "--train-size", "200", "--val-size", "100",
            "--lr", "1e30", "--num-cpus", "2", "--seed", "1", "--final-epochs", "0"]
    proc = run_nas(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import nas

    run = nas.load_run(tmp_path / "nan")
    trials = run.trials
    assert len(trials) == 3 and (trials["state"] == "FAIL").all()
    assert trials["reason"].str.startswith("diverged").all(), trials["reason"].tolist()
    assert run.pareto.empty
    assert all(t.user_attrs["counted"] for t in run.study.trials)
    assert "empty" in proc.stdout


def test_lock_refuses_a_second_search(interrupted_then_resumed):
    from nas.runs.lock import RunLock

    run_path = interrupted_then_resumed[0]
    with RunLock(run_path):
        proc = run_nas("search", "--resume", str(run_path), "--budget", str(BUDGET + 1), timeout=120)
    assert proc.returncode == 2
    assert "another search is running" in proc.stderr and str(run_path) in proc.stderr
    assert "Traceback" not in proc.stderr
    config = json.loads((run_path / "config.json").read_text())
    assert config["budget"] == BUDGET  # nothing written to the locked run


def test_bad_inputs_exit_2_before_anything_starts(space_file, tmp_path):
    cases = [
        (["search", "--space", "no-such-space", "--budget", "3"], "no-such-space"),
        (["search", "--space", str(space_file), "--budget", "0", "--dataset", "digits"], "--budget"),
        (["search", "--space", str(space_file), "--budget", "3", "--dataset", "digits", "--objectives", "accuracy,speed"], "--objectives"),
        (["search", "--space", str(space_file), "--budget", "3", "--dataset", "digits", "--sampler", "cmaes"], "--sampler"),
        (["search", "--space", str(space_file), "--budget", "3", "--dataset", "digits", "--max-params", "10"], "--max-params"),
        (["search", "--resume", str(tmp_path)], "not a run folder"),
        (["pareto", str(tmp_path)], "not a run folder"),
    ]
    out = tmp_path / "out"
    for args, needle in cases:
        full = args + (["--out", str(out)] if args[0] == "search" and "--resume" not in args else [])
        proc = run_nas(*full, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr, (needle, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_trials_ray_ends_before_they_train_are_replaced_until_the_budget_is_trained(space_file, tmp_path):
    """Ray reuses a worker only once the previous trial's training thread has ended, waiting
    TUNE_FUNCTION_THREAD_TIMEOUT_S (a search sets 60 s) for it; a pruned trial's thread is still in its next epoch,
    and under load that wait runs out: Ray then ends the next trial before it trains, telling the
    searcher nothing. With the wait at 0 every reuse after a prune fails that way, deterministically.
    Such trials are never trained, so they must not use up the budget's Ray samples."""
    budget = 6
    env = dict(_env(), TUNE_FUNCTION_THREAD_TIMEOUT_S="0")
    args = ["search", "--space", str(space_file), "--budget", str(budget), "--out", str(tmp_path), "--name", "reuse",
            "--seed", "1", *COMMON]
    proc = subprocess.run(nas_cmd(*args), capture_output=True, text=True, timeout=480, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import nas
    from nas.search.searcher import counts_against_budget

    run = nas.load_run(tmp_path / "reuse")
    trials = run.study.get_trials(deepcopy=False)
    assert sum(counts_against_budget(t) for t in trials) == budget, run.trials[["number", "state", "reason"]]
    lost = [t for t in trials if str(t.user_attrs.get("fail_reason", "")).startswith("not started")]
    assert lost, "no worker reuse failed: the test did not exercise the lost-trial path"
    assert all("worker not reused" in t.user_attrs["fail_reason"] for t in lost), [t.user_attrs for t in lost]
    assert not any(t.user_attrs["counted"] for t in lost) and not any(t.state.name == "RUNNING" for t in trials)
    assert f"{budget}/{budget} candidates trained" in proc.stdout
