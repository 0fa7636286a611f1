"""Reliability contract, part 2: real `nas search` processes (real local Ray, real Optuna SQLite,
real training on digits) that are killed, crash their workers, collide, repeat themselves, or
meet candidates too large for the machine.

Every search here runs in its own session (start_new_session=True); whatever it leaves is
killed by that session id only (Ray's workers get process groups of their own but stay in the
session of the `nas search` that started them), never by name: other Ray instances on the
machine are not touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from test_search_e2e import TINY_SPACE, _env, nas_cmd, run_nas

pytestmark = pytest.mark.slow

# the screening alone (no finals: tests/test_search_finals.py has them)
FAST = ["--dataset", "digits", "--eta", "0", "--train-size", "300", "--val-size", "100", "--status-interval", "2",
        "--final-epochs", "0"]


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after "pid (comm)": state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def _kill_session(sid: int, wait: float = 15.0) -> list[int]:
    """SIGKILL every process of session ``sid`` (ours); returns those still alive after ``wait`` s."""
    deadline = time.time() + wait
    while True:
        pids = _session_pids(sid)
        if not pids or time.time() > deadline:
            return pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.3)


class Search:
    """A `nas search` subprocess in a session of its own, cleaned up by session id."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(nas_cmd("search", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=_env(), start_new_session=True)
        self.sid = self.proc.pid  # the session leader's pid is the session id

    def finish(self, timeout: float = 300) -> subprocess.CompletedProcess:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            _kill_session(self.sid)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)

    def describe(self) -> str:
        """Exit code and stderr tail of a search that ended on its own (for assertion messages)."""
        rc = self.proc.poll()
        if rc is None:
            return "still running"
        return f"rc={rc}; stderr: {self.proc.stderr.read()[-3000:]}"

    def __enter__(self) -> "Search":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        left = _kill_session(self.sid)
        assert not left, f"processes left in the search's session: {left}"


@pytest.fixture(scope="module")
def space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "tiny.toml"
    path.write_text(TINY_SPACE)
    return path


def _trials(run_path: Path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = json.loads((run_path / "config.json").read_text())
    study = optuna.load_study(study_name=config["study_name"], storage=f"sqlite:///{run_path / 'study.db'}")
    return study.get_trials(deepcopy=True)


def _snapshot_trials(run_path: Path):
    try:
        return _trials(run_path)
    except Exception:  # noqa: BLE001 - study not created yet, or busy
        return []


# --------------------------------------------------------------------------- 2. SIGKILL + resume


def assert_resumed_to_budget(finished_before: dict, after: list, budget: int) -> None:
    """A killed-then-resumed study: unique trial numbers, exactly ``budget`` counted, none left
    RUNNING, every trial finished before the kill unchanged, the killed one marked interrupted
    and not counted."""
    from nas.search.searcher import counts_against_budget

    numbers = [t.number for t in after]
    assert len(numbers) == len(set(numbers))
    assert sum(counts_against_budget(t) for t in after) == budget
    assert not [t for t in after if t.state.name == "RUNNING"]
    by_number = {t.number: t for t in after}
    for number, old in finished_before.items():
        new = by_number[number]
        assert (new.state, new.values, new.user_attrs.get("arch"), new.user_attrs.get("fidelity")) == \
            (old.state, old.values, old.user_attrs.get("arch"), old.user_attrs.get("fidelity"))
    interrupted = [t for t in after if t.user_attrs.get("fail_reason") == "interrupted"]
    assert interrupted and not any(t.user_attrs.get("counted") for t in interrupted)


def test_sigkill_mid_trial_then_resume_reaches_budget(space_file, tmp_path):
    budget = 5
    run_path = tmp_path / "killed"
    with Search("--space", str(space_file), "--budget", str(budget), "--epochs", "8", "--num-cpus", "1",
                "--out", str(tmp_path), "--name", "killed", *FAST) as search:
        before = []
        while search.proc.poll() is None:
            # stopped while it is looked at: no trial can finish between the look and the kill
            os.kill(search.proc.pid, signal.SIGSTOP)
            trials = _snapshot_trials(run_path)
            states = [t.state.name for t in trials]
            if sum(s in ("COMPLETE", "PRUNED", "FAIL") for s in states) >= 2 and "RUNNING" in states:
                before = trials
                break
            os.kill(search.proc.pid, signal.SIGCONT)
            time.sleep(0.25)
        assert before, f"never saw 2 finished + 1 running trial; {search.describe()}"
        os.killpg(search.sid, signal.SIGKILL)  # the whole process group of `nas search` ...
        left = _kill_session(search.sid)  # ... and Ray's workers (own groups, same session)
        assert not left, left
        search.proc.wait(timeout=30)
    assert search.proc.returncode == -signal.SIGKILL
    finished_before = {t.number: t for t in _trials(run_path) if t.state.name != "RUNNING"}
    assert any(t.state.name == "RUNNING" for t in _trials(run_path))

    resumed = Search("--resume", str(run_path)).finish()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    after = _trials(run_path)
    assert_resumed_to_budget(finished_before, after, budget)
    # the architectures trained in the resumed session are new trial numbers, each trained once
    csv = (run_path / "trials.csv").read_text().splitlines()
    assert len(csv) - 1 == len(after)


# --------------------------------------------------------------------------- 3. worker dies


WORKER_SPACE = """\
description = "cheap candidates and CPU-hungry ones (width 4096)"
[input]
channels = 1
size = [8, 8]
[stem]
channels = 64
stride = 1
[defaults]
type = "ds"
kernels = [[3]]
[[stages]]
depth = 1
width = [8, 12, 16, 4096]
stride = 1
[head]
channels = [0, 16, 32]
"""


def test_worker_killed_by_cpu_limit_is_a_failed_trial(tmp_path):
    """--trial-cpu-limit (RLIMIT_CPU in the worker): the wide candidate's worker is stopped by the
    kernel (SIGXCPU) mid-training; the trial is FAIL and counted, the search trains its budget
    and its summary says how many failed and why."""
    space = tmp_path / "two.toml"
    space.write_text(WORKER_SPACE)
    budget = 4
    proc = Search("--space", str(space), "--budget", str(budget), "--epochs", "3", "--num-cpus", "2",
                  "--trial-cpu-limit", "10", "--sampler", "random", "--seed", "0", "--out", str(tmp_path),
                  "--name", "cpu", "--dataset", "digits", "--eta", "0", "--train-size", "1500", "--val-size", "100",
                  "--batch-size", "32", "--final-epochs", "0").finish()
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = _trials(tmp_path / "cpu")
    from nas.search.searcher import counts_against_budget

    assert sum(counts_against_budget(t) for t in trials) == budget
    died = [t for t in trials if t.state.name == "FAIL" and t.user_attrs.get("counted")]
    ok = [t for t in trials if t.state.name == "COMPLETE"]
    assert died and ok, [(t.user_attrs.get("arch"), t.state.name, t.user_attrs.get("fail_reason")) for t in trials]
    assert all("c4096" in t.user_attrs["arch"] for t in died)  # seed 0: the 3rd of 4 candidates
    for t in died:
        assert t.user_attrs["fail_reason"].startswith("worker died"), t.user_attrs["fail_reason"]
        assert "--trial-cpu-limit 10" in t.user_attrs["fail_reason"]
    assert f"failed: {len(died)} of {budget} trained candidates ({len(died)}x worker died" in proc.stdout, proc.stdout
    config = json.loads((tmp_path / "cpu" / "config.json").read_text())
    assert config["constraints"]["trial_cpu_limit_s"] == 10


# --------------------------------------------------------------------------- 4. two searches at once


def test_second_search_on_the_same_run_is_refused(space_file, tmp_path):
    budget = 3
    run_path = tmp_path / "shared"
    with Search("--space", str(space_file), "--budget", str(budget), "--epochs", "2", "--num-cpus", "2",
                "--out", str(tmp_path), "--name", "shared", *FAST) as first:
        while not (run_path / "config.json").exists() and first.proc.poll() is None:
            time.sleep(0.1)
        # Held on an event, not a clock: the first search is stopped (SIGSTOP; its lock stays
        # held) until both attempts have been refused, so it cannot end before them.
        os.kill(first.proc.pid, signal.SIGSTOP)
        try:
            assert (run_path / ".lock").exists() and (run_path / "config.json").exists(), first.describe()
            resume = run_nas("search", "--resume", str(run_path), timeout=300)
            fresh = run_nas("search", "--space", str(space_file), "--budget", "2", "--out", str(tmp_path), "--name",
                            "shared", *FAST, timeout=300)
        finally:
            os.kill(first.proc.pid, signal.SIGCONT)
        done = first.finish()
    for second, needle in ((resume, "another search is running"), (fresh, "already exists")):
        assert second.returncode == 2, second.stderr
        assert needle in second.stderr and str(run_path) in second.stderr
        assert "Traceback" not in second.stderr
    assert str(first.proc.pid) in resume.stderr  # names the lock's holder
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{budget}/{budget} candidates trained" in done.stdout
    from nas.search.searcher import counts_against_budget

    trials = _trials(run_path)
    assert sum(counts_against_budget(t) for t in trials) == budget
    assert (run_path / ".lock").exists()  # nobody removed the lock file from under the first search
    assert json.loads((run_path / "config.json").read_text())["resumes"] == []


# --------------------------------------------------------------------------- 5. reproducible search


def test_same_seed_one_trial_at_a_time_suggests_the_same_architectures(space_file, tmp_path):
    def one(name: str) -> subprocess.CompletedProcess:
        return Search("--space", str(space_file), "--budget", "5", "--epochs", "1", "--num-cpus", "1",
                      "--cpus-per-trial", "1", "--seed", "7", "--proxy-resolution", "0",
                      "--out", str(tmp_path), "--name", name, *FAST).finish()

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(one, ["a", "b"])
    assert a.returncode == 0 and b.returncode == 0, (a.stderr[-2000:], b.stderr[-2000:])
    seq = [[(t.number, t.user_attrs.get("arch")) for t in _trials(tmp_path / n)] for n in ("a", "b")]
    assert seq[0] == seq[1] and len(seq[0]) >= 5
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["fidelity"]["resolution"] == 0  # --proxy-resolution is recorded (0: native size)


# --------------------------------------------------------------------------- 7. too large for memory


def test_candidates_too_large_for_memory_are_rejected_before_training(tmp_path):
    space = tmp_path / "mixed.toml"
    # width 4096 (nas/limits.py allows no more): a 4096x4096 1x1 conv, ~270 MB with its
    # gradient and optimizer state; width 8: a few MB
    space.write_text(TINY_SPACE.replace("width = [8, 16]", "width = [8, 4096]"))
    proc = Search("--space", str(space), "--budget", "3", "--epochs", "1", "--num-cpus", "2",
                  "--trial-memory", "200", "--sampler", "random", "--seed", "0", "--out", str(tmp_path),
                  "--name", "mem", "--proxy-resolution", "6", *FAST).finish()
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = _trials(tmp_path / "mem")
    rejected = [t for t in trials if t.user_attrs.get("infeasible")]
    trained = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(trained) == 3
    assert rejected, [t.user_attrs.get("arch") for t in trials]
    for t in rejected:
        assert "c4096" in t.user_attrs["arch"]
        assert t.user_attrs["fail_reason"].startswith("infeasible: needs ~") and "--trial-memory" in t.user_attrs["fail_reason"]
        assert t.user_attrs["train_memory_mb"] > 200 and not t.user_attrs["counted"]
    assert all(t.user_attrs["train_memory_mb"] <= 200 for t in trained)
    config = json.loads((tmp_path / "mem" / "config.json").read_text())
    assert config["constraints"]["trial_memory_mb"] == 200
    assert config["fidelity"]["resolution"] == 6


def test_a_finished_trial_gives_its_freed_memory_back(tmp_path):
    """A reused Ray worker must not keep every trial's freed blocks: after release_memory the
    process's resident memory falls back (a fresh interpreter, so nothing else interferes)."""
    script = """
import sys, torch
from nas.search.trainable import release_memory
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
keep, junk = [], []
for i in range(60000):      # ~470 MB of 8 KB tensors, pinned in the heap by small survivors
    junk.append(torch.empty(2048))
    if i % 50 == 0:
        keep.append(torch.empty(16))
del junk
before = rss()
release_memory()
print(before, rss())
"""
    if not Path("/proc/self/statm").exists():
        pytest.skip("no /proc: resident memory cannot be read here")
    out = subprocess.run([nas_cmd()[0], "-c", script], capture_output=True, text=True, timeout=120, env=_env())
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = map(float, out.stdout.split())
    assert before - after > 150, (before, after)
