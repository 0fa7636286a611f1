"""``nas supernet train`` / ``score`` as a user runs them: real processes, real digits data,
a SIGKILL in the middle of training and a resume that ends where an unbroken run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from test_supernet import TINY_SPACE

pytestmark = pytest.mark.slow

ARCH = "stem c8 s1 | ds k3.5 c8 se0.25 | ir k3 e3 c16 s2 | head c32"


def _nas(*args, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "nas", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _train(space, out):
    return _nas("supernet", "train", "--space", str(space), "--out", str(out), "--dataset", "digits",
                "--resolution", "0", "--epochs", "6", "--train-size", "900", "--val-size", "200",
                "--batch-size", "32", "--threads", "1", "--device", "cpu")


def _score(out) -> str:
    proc = _nas("supernet", "score", str(out), ARCH, "--device", "cpu")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    return stdout.split()[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(space file, trained supernet folder) shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("supernet")
    space = root / "tiny.toml"
    space.write_text(TINY_SPACE)
    proc = _train(space, root / "net")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    return space, root / "net"


def test_killed_training_resumes_to_the_same_supernet(tmp_path):
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    whole = _train(space, tmp_path / "whole")
    _, stderr = whole.communicate(timeout=300)
    assert whole.returncode == 0, stderr
    assert "img/s" in stderr and "ETA" in stderr

    broken = _train(space, tmp_path / "broken")
    checkpoint = tmp_path / "broken" / "supernet.pt"
    while not checkpoint.exists() and broken.poll() is None:  # the event, however long it takes
        time.sleep(0.05)
    assert broken.poll() is None, "killed before it ended"
    broken.send_signal(signal.SIGKILL)
    broken.wait()
    assert json.loads((tmp_path / "broken" / "config.json").read_text())["complete"] is False
    resumed = _train(space, tmp_path / "broken")
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert _score(tmp_path / "whole") == _score(tmp_path / "broken")


def test_bad_input_is_named_with_exit_2(tmp_path, trained):
    proc = _nas("supernet", "score", str(tmp_path), ARCH)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "not a supernet folder" in stderr and "Traceback" not in stderr
    proc = _nas("supernet", "score", str(trained[1]), "stem c8 s1 | ds k3.5.7 c8 | head c0")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "not in the space" in stderr and "Traceback" not in stderr


def test_one_shot_search_scores_by_inherited_weights_then_fine_tunes(tmp_path, trained):
    import nas

    space, net = trained
    proc = _nas("search", "--space", str(space), "--dataset", "digits", "--proxy", "supernet", "--supernet",
                str(net), "--proxy-resolution", "0", "--budget", "6", "--epochs", "3", "--eta", "3",
                "--train-size", "400", "--val-size", "200", "--num-cpus", "2", "--final-epochs", "0", "--out", str(tmp_path),
                "--name", "oneshot")
    _, stderr = proc.communicate(timeout=480)
    assert proc.returncode == 0, stderr
    run_dir = tmp_path / "oneshot"
    fidelity = json.loads((run_dir / "config.json").read_text())["fidelity"]
    assert fidelity["proxy"] == "supernet" and fidelity["supernet"] == str(net.resolve())
    run = nas.load_run(str(run_dir))
    # Under load Ray may end a trial before it trains (a pruned trial's thread outlived the worker
    # reuse wait): the searcher records it FAIL "not started", uncounted, and asks a replacement.
    lost = {t.number for t in run.study.trials
            if t.state.name == "FAIL" and str(t.user_attrs.get("fail_reason", "")).startswith("not started")
            and not t.user_attrs.get("counted")}
    trials = run.trials[~run.trials.number.isin(lost)]
    assert len(trials) >= 6 and set(trials.state) <= {"COMPLETE", "PRUNED"}, run.trials[["state", "reason"]]
    assert trials.accuracy.between(0, 1).all()
    assert set(trials.fidelity) <= {1, 3} and 3 in set(trials.fidelity)  # scored at rung 1, some fine-tuned to 3


def test_a_staged_one_shot_search_screens_every_candidate_and_scores_the_promoted_fully(tmp_path, trained):
    import nas

    space, net = trained
    proc = _nas("search", "--space", str(space), "--dataset", "digits", "--proxy", "supernet", "--supernet",
                str(net), "--budget", "6", "--eta", "3", "--screen-size", "60", "--train-size", "400",
                "--val-size", "200", "--num-cpus", "2", "--final-epochs", "0", "--out", str(tmp_path),
                "--name", "staged")
    _, stderr = proc.communicate(timeout=480)
    assert proc.returncode == 0, stderr
    fidelity = json.loads((tmp_path / "staged" / "config.json").read_text())["fidelity"]
    assert fidelity["screen_size"] == 60 and fidelity["epochs"] == 2 and fidelity["rungs"] == [1]
    run = nas.load_run(str(tmp_path / "staged"))
    trials = run.trials[run.trials.state.isin(["COMPLETE", "PRUNED"])]
    assert len(trials) >= 6 and set(trials.fidelity) <= {1, 2} and 2 in set(trials.fidelity)
    assert set(trials[trials.state == "PRUNED"].fidelity) <= {1}  # stopped after the screen


@pytest.mark.parametrize("options, message", [
    (["--proxy", "supernet", "--screen-size", "300", "--val-size", "200"], "--screen-size 300 must be smaller"),
    (["--screen-size", "100"], "--screen-size needs --proxy supernet"),
    (["--proxy", "supernet", "--screen-size", "-1"], "--screen-size must be >= 0"),
])
def test_a_bad_screen_size_is_named_with_exit_2(tmp_path, trained, options, message):
    space, net = trained
    if "supernet" in options:
        options = [*options, "--supernet", str(net)]
    proc = _nas("search", "--space", str(space), "--dataset", "digits", "--budget", "2", *options,
                "--out", str(tmp_path))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and message in stderr and "Traceback" not in stderr, stderr


def test_supernet_of_another_space_is_refused(trained):
    proc = _nas("search", "--space", "mdconv", "--proxy", "supernet", "--supernet", str(trained[1]), "--budget", "2")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "not of mdconv" in stderr and "Traceback" not in stderr


def test_a_bad_search_option_fails_before_the_supernet_trains(tmp_path, trained):
    space, _ = trained
    proc = _nas("search", "--space", str(space), "--dataset", "digits", "--proxy", "supernet", "--budget", "0",
                "--out", str(tmp_path / "runs"), cwd=tmp_path)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "--budget" in stderr and "Traceback" not in stderr, stderr
    assert "training the supernet" not in stderr and not (tmp_path / "results").exists()


def test_retrain_init_supernet_starts_from_the_inherited_weights(tmp_path, trained):
    import torch

    from nas.supernet.folder import load_supernet
    from nas.data import load_dataset
    from nas.export.weights import load_weights
    from nas.picks import pick_arch
    from nas.retrain import RetrainOptions, retrain_pick

    _, net = trained
    dataset = load_dataset("digits")
    # a learning rate too small to move the weights: what is saved is what training started from
    options = RetrainOptions(epochs=1, lr=1e-9, ema=False, device="cpu", threads=1, init=str(net))
    metrics = retrain_pick(pick_arch(ARCH, "p"), tmp_path / "p", dataset, options, log=lambda _m: None)
    assert metrics["init"] == str(net)
    saved = load_weights(tmp_path / "p" / metrics["weights_file"])
    inherited = load_supernet(net, "cpu")[0].subnet(ARCH).state_dict()
    for key, value in inherited.items():
        if "running" not in key and "num_batches" not in key:  # BN statistics are re-estimated
            torch.testing.assert_close(saved[key], value, rtol=0, atol=1e-6)
    proc = _nas("retrain", "--arch", ARCH, "--dataset", "digits", "--init", "supernet", "--epochs", "1",
                "--out", str(tmp_path / "cli"), "--device", "cpu")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "--supernet DIR" in stderr


def test_data_parallel_training_on_two_ray_train_workers(tmp_path):
    import torch

    from nas.supernet.folder import load_supernet

    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    proc = _nas("supernet", "train", "--space", str(space), "--out", str(tmp_path / "ddp"), "--dataset", "digits",
                "--resolution", "0", "--epochs", "3", "--train-size", "900", "--val-size", "200",
                "--batch-size", "64", "--threads", "1", "--workers", "2")
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert config["complete"] is True
    state = torch.load(tmp_path / "ddp" / "supernet.pt", weights_only=True)
    assert state["step"] == 3 * (900 // 64)  # every step of the global batch, taken once by the group
    supernet = load_supernet(tmp_path / "ddp", "cpu")[0]
    assert all(torch.isfinite(p).all() for p in supernet.parameters())
    import re

    losses = [float(x) for x in re.findall(r"step \d+/\d+ loss ([0-9.]+)", stderr)]
    assert len(losses) >= 2 and losses[-1] < losses[0], losses  # the mean loss since the start falls: it learns
    assert 0.0 <= float(_score(tmp_path / "ddp")) <= 1.0
