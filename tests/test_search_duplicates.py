"""A genotype the sampler proposes again is never trained twice (real Ray, real study)."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest

import nas

pytestmark = pytest.mark.slow

# Three architectures in all: the random sampler soon proposes one again.
THREE_ARCHS = """\
description = "three architectures"
[input]
channels = 1
size = 8
[stem]
channels = 4
stride = 1
[defaults]
type = "ds"
kernels = [[3], [3, 5], [3, 5, 7]]
[[stages]]
depth = 1
width = 8
stride = 2
[head]
channels = 0
"""


def test_duplicates_are_answered_from_their_first_trial(tmp_path):
    space = tmp_path / "three.toml"
    space.write_text(THREE_ARCHS)
    assert nas.load_space(str(space)).size() == 3
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "nas", "search", "--space", str(space), "--budget", "3", "--sampler", "random",
         "--seed", "7", "--dataset", "digits", "--epochs", "1", "--eta", "0", "--train-size", "200",
         "--val-size", "100", "--num-cpus", "1", "--final-epochs", "0", "--out", str(tmp_path / "results"),
         "--name", "dup"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = nas.load_run(tmp_path / "results" / "dup")
    study = run.study
    trained = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    duplicates = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    # the budget is spent on three distinct genotypes, each trained once
    assert len(trained) == 3
    assert len({t.user_attrs["arch"] for t in trained}) == 3
    assert duplicates, "seed 7 of the random sampler proposes a genotype twice"
    by_number = {t.number: t for t in study.trials}
    for dup in duplicates:
        original = by_number[dup.user_attrs["duplicate_of"]]
        assert original.user_attrs["arch"] == dup.user_attrs["arch"]
        if dup.state == optuna.trial.TrialState.COMPLETE:
            assert dup.values == original.values  # the sampler learns the original's outcome
        else:  # proposed while its original was still training (Ray asks ahead)
            assert dup.state == optuna.trial.TrialState.FAIL
            assert "still training" in dup.user_attrs["fail_reason"]
    # the front holds each genotype once, and duplicates are labelled in the trials table
    assert run.pareto["arch"].is_unique
    assert run.trials["reason"].str.startswith("duplicate of trial").sum() == len(duplicates)
