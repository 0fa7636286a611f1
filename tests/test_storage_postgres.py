"""``--storage postgresql://``: real `nas search` processes (real local Ray, real training on
digits) against a real PostgreSQL server that the session starts itself (the ``postgres``
fixture, tests/postgres_server.py; password authentication, so the URLs carry a password).

- a search SIGKILLed mid-trial, then ``--resume``d to its budget on the server;
- two runs sharing one database at once (one study per run, named after it), and a third
  run of an existing name refused;
- the URL's password is in no output and nowhere in the run folder; the run folder records
  the URL without it, and a resume or ``nas pareto`` gets it from PGPASSWORD or a repeated
  ``--storage``.

Skipped (by the fixture) only when no PostgreSQL binaries are installed; CI installs them.
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

from test_reliability_search import FAST, Search, _kill_session, assert_resumed_to_budget
from test_search_e2e import TINY_SPACE, _env, nas_cmd, run_nas


@pytest.fixture(scope="module")
def space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "tiny.toml"
    path.write_text(TINY_SPACE)
    return path


def _no_pg_env(**extra: str) -> dict:
    """The tests' environment without any PostgreSQL password source, plus ``extra``."""
    env = _env()
    for key in ("PGPASSWORD", "PGPASSFILE"):
        env.pop(key, None)
    env["PGPASSFILE"] = "/nonexistent/pgpass"  # not the user's ~/.pgpass either
    env.update(extra)
    return env


class PgSearch(Search):
    """A `nas search` in a session of its own (see test_reliability_search.Search), with its own env."""

    def __init__(self, *args: str, env: dict) -> None:
        self.proc = subprocess.Popen(nas_cmd("search", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, start_new_session=True)
        self.sid = self.proc.pid


def _run(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(nas_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env)


def _study_trials(url: str, name: str):
    import optuna

    from nas.runs.storage import study_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=name, storage=study_storage(url)).get_trials(deepcopy=True)


def _snapshot(url: str, name: str):
    try:
        return _study_trials(url, name)
    except Exception:  # noqa: BLE001 - study not created yet
        return []


def _assert_password_nowhere(password: str, run_path: Path, *outputs: str) -> None:
    for i, text in enumerate(outputs):
        assert password not in text, f"output {i} shows the password: ...{text[max(0, text.find(password) - 200):][:400]}"
    files = [p for p in run_path.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert password.encode() not in path.read_bytes(), f"{path} holds the password"


# --------------------------------------------------------------------------- URL handling (no server)


def test_urls_masked_recorded_and_compared():
    from nas.runs.urls import connect_url, mask_command, mask_text, mask_url, public_url, same_storage

    url = "postgresql://nas:s%40cret@db.example:5433/runs?sslmode=require"
    assert mask_url(url) == "postgresql://nas:***@db.example:5433/runs?sslmode=require"
    assert public_url(url) == "postgresql://nas@db.example:5433/runs?sslmode=require"
    assert public_url("postgresql://nas@h/db?password=x&sslmode=require") == "postgresql://nas@h/db?sslmode=require"
    assert mask_url("postgresql://nas@h/db?password=x") == "postgresql://nas@h/db?password=***"
    assert public_url("sqlite:////tmp/x/study.db") == "sqlite:////tmp/x/study.db"
    assert same_storage(url, public_url(url)) and not same_storage(url, url.replace("/runs", "/other"))
    assert mask_command(["nas", "search", f"--storage={url}", "--name", "a"]) == \
        ["nas", "search", "--storage=postgresql://nas:***@db.example:5433/runs?sslmode=require", "--name", "a"]
    assert mask_text("FATAL: bad s@cret and s%40cret", url) == "FATAL: bad *** and ***"
    assert connect_url(url).startswith("postgresql+psycopg://nas:s%40cret@")  # the driver the extra installs
    assert connect_url("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"


# --------------------------------------------------------------------------- bad storage: exit 2, no password


@pytest.mark.slow
def test_unusable_postgres_storage_exits_2_without_showing_the_password(postgres, space_file, tmp_path):
    base = ["search", "--space", str(space_file), "--budget", "2", "--out", str(tmp_path / "out"), "--name", "x",
            "--dataset", "digits", "--train-size", "200", "--val-size", "100", "--final-epochs", "0"]
    wrong = postgres.url("postgres").replace(postgres.password, "pw-wrong-0123")
    cases = [
        (wrong, "pw-wrong-0123", "password authentication failed"),
        (postgres.url("no_such_db"), postgres.password, "no_such_db"),
        (postgres.url("postgres", password=False), postgres.password, "PGPASSWORD"),  # no password anywhere
    ]
    for url, secret, needle in cases:
        proc = _run(*base, "--storage", url, env=_no_pg_env(), timeout=120)
        assert proc.returncode == 2, (needle, proc.stderr[-2000:])
        assert needle in proc.stderr and "cannot open" in proc.stderr, proc.stderr
        assert secret not in proc.stderr + proc.stdout
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "x").exists()


# --------------------------------------------------------------------------- SIGKILL + resume


@pytest.mark.slow
def test_sigkill_mid_search_then_resume_on_postgres(postgres, space_file, tmp_path):
    budget = 5
    url = postgres.create_database("killed")
    run_path = tmp_path / "killed"
    env = _no_pg_env()
    with PgSearch("--space", str(space_file), "--budget", str(budget), "--epochs", "8", "--num-cpus", "1",
                  "--out", str(tmp_path), "--name", "killed", "--storage", url, *FAST, env=env) as search:
        before = []
        while search.proc.poll() is None:
            # stopped while it is looked at: no trial can finish between the look and the kill
            os.kill(search.proc.pid, signal.SIGSTOP)
            trials = _snapshot(url, "killed")
            states = [t.state.name for t in trials]
            if sum(s in ("COMPLETE", "PRUNED", "FAIL") for s in states) >= 2 and "RUNNING" in states:
                before = trials
                break
            os.kill(search.proc.pid, signal.SIGCONT)
            time.sleep(0.25)
        assert before, f"never saw 2 finished + 1 running trial; {search.describe()}"
        os.killpg(search.sid, signal.SIGKILL)
        left = _kill_session(search.sid)
        assert not left, left
        search.proc.wait(timeout=30)
        first_out, first_err = search.proc.stdout.read(), search.proc.stderr.read()
    assert search.proc.returncode == -signal.SIGKILL
    after_kill = _study_trials(url, "killed")
    finished_before = {t.number: t for t in after_kill if t.state.name != "RUNNING"}
    assert any(t.state.name == "RUNNING" for t in after_kill)  # the kill left it so, in the server's study

    # the run folder: no study.db, the URL recorded without its password, the command masked
    config = json.loads((run_path / "config.json").read_text())
    assert config["storage"] == postgres.url("killed", password=False)
    assert config["study_name"] == "killed"
    assert "--storage" in config["command"] and postgres.url("killed").replace(postgres.password, "***") in config["command"]
    assert not (run_path / "study.db").exists()

    # a resume without the password: refused before anything runs, saying where to give it
    no_pw = _run("search", "--resume", str(run_path), env=env, timeout=120)
    assert no_pw.returncode == 2 and "PGPASSWORD" in no_pw.stderr and "Traceback" not in no_pw.stderr, no_pw.stderr
    # --storage with --resume: only the run's own storage
    other = _run("search", "--resume", str(run_path), "--storage", postgres.url("postgres"), env=env, timeout=120)
    assert other.returncode == 2 and "is not the storage of" in other.stderr, other.stderr
    assert json.loads((run_path / "config.json").read_text())["resumes"] == []

    resumed = PgSearch("--resume", str(run_path), "--storage", url, env=env).finish()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    after = _study_trials(url, "killed")
    assert_resumed_to_budget(finished_before, after, budget)
    config = json.loads((run_path / "config.json").read_text())
    assert len(config["resumes"]) == 1 and config["storage"] == postgres.url("killed", password=False)
    assert len((run_path / "trials.csv").read_text().splitlines()) - 1 == len(after)

    # reading the run: the password from PGPASSWORD (the recorded URL has none)
    shown = _run("pareto", str(run_path), env=_no_pg_env(PGPASSWORD=postgres.password), timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    front = [t for t in after if t.state.name == "COMPLETE"]
    assert front and any(t.user_attrs["arch"] in shown.stdout for t in front)

    _assert_password_nowhere(postgres.password, run_path, first_out, first_err, no_pw.stdout, no_pw.stderr,
                             other.stderr, resumed.stdout, resumed.stderr, shown.stdout, shown.stderr)


# --------------------------------------------------------------------------- two runs, one server


@pytest.mark.slow
def test_two_runs_share_one_postgres_database(postgres, space_file, tmp_path):
    """One study per run, named after it: two searches at once on one (new) database, one with
    the password in its URL and one with PGPASSWORD; each run sees only its own trials."""
    from nas.search.searcher import counts_against_budget

    budget = 3
    url = postgres.create_database("shared")
    bare = postgres.url("shared", password=False)
    runs = {"a": (url, _no_pg_env()), "b": (bare, _no_pg_env(PGPASSWORD=postgres.password))}

    def one(name: str) -> subprocess.CompletedProcess:
        storage, env = runs[name]
        return PgSearch("--space", str(space_file), "--budget", str(budget), "--epochs", "2", "--num-cpus", "1",
                        "--seed", str(ord(name)), "--out", str(tmp_path), "--name", name, "--storage", storage,
                        *FAST, env=env).finish()

    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(runs, pool.map(one, runs)))
    for name, proc in done.items():
        assert proc.returncode == 0, (name, proc.stderr[-3000:])
        assert f"{budget}/{budget} candidates trained" in proc.stdout, proc.stdout

    import optuna

    from nas.runs.storage import study_storage

    storage = study_storage(url)
    assert sorted(s.study_name for s in storage.get_all_studies()) == ["a", "b"]
    for name in runs:
        study = optuna.load_study(study_name=name, storage=storage)
        assert study.user_attrs["nas_run"] == name
        trials = study.get_trials(deepcopy=False)
        assert sum(counts_against_budget(t) for t in trials) == budget
        csv = (tmp_path / name / "trials.csv").read_text().splitlines()
        assert len(csv) - 1 == len(trials)  # the run's views hold its own study only
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["storage"] == bare and config["study_name"] == name

    # a new run whose name is already a study there: refused, nothing made
    other = tmp_path / "elsewhere"
    clash = _run("search", "--space", str(space_file), "--budget", "2", "--out", str(other), "--name", "a",
                 "--storage", url, *FAST, env=_no_pg_env(), timeout=120)
    assert clash.returncode == 2, clash.stderr[-2000:]
    assert "already holds a study named 'a'" in clash.stderr and "Traceback" not in clash.stderr
    assert not (other / "a").exists()
    assert sorted(s.study_name for s in storage.get_all_studies()) == ["a", "b"]
    storage.engine.dispose()

    for name, proc in done.items():
        _assert_password_nowhere(postgres.password, tmp_path / name, proc.stdout, proc.stderr, clash.stderr)
