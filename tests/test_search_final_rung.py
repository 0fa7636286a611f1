"""The last rung (``--final-epochs``): the candidates promoted past the proxy's last epoch train
for real, and that training decides the front. Real torch, Optuna storage and a local Ray on
scikit-learn's digits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import pytest

from nas.errors import NasInputError
from nas.search.fidelity import FINAL_VAL_SIZE, Fidelity


def test_the_last_rung_is_one_more_step_decided_at_the_proxys_last_epoch():
    plain = Fidelity.from_options(epochs=4, eta=4)
    final = Fidelity.from_options(epochs=4, eta=4, final_epochs=2)
    assert plain.rungs() == [1] and plain.epochs == 4 and plain.final_proxy() is None
    assert final.rungs() == [1, 4] and final.epochs == 5
    assert Fidelity.from_dict(final.to_dict()) == final
    assert final.to_dict()["full_fidelity"] == 5 and final.to_dict()["final_epochs"] == 2
    older = {k: v for k, v in plain.to_dict().items() if k not in ("final_epochs", "full_fidelity")}
    assert Fidelity.from_dict(older).final_epochs == 0, "a run from before the last rung has none"
    with pytest.raises(NasInputError, match="--final-epochs must be >= 0"):
        Fidelity.from_options(final_epochs=-1)


def test_the_last_rung_trains_on_all_the_search_images_at_full_size():
    bound = Fidelity.from_options(epochs=4, eta=4, final_epochs=1).bound("fashion-mnist", None, 3, train_images=60_000)
    real = bound.final_proxy()
    assert real.resolution is None and real.epochs == 1 and real.eval_epochs == (1,)
    assert real.val_size == FINAL_VAL_SIZE and real.split_seed == 3 and real.train_size >= 50_000
    assert bound.proxy.eval_epochs == (1, 4), "the proxy validates at its own epochs only"
    small = Fidelity.from_options(final_epochs=1).bound("digits", None, 0, train_images=1437)
    assert small.final_proxy().val_size == (1437 - 1437 // 6) // 5


def test_the_last_rung_waits_for_arrivals_before_it_promotes():
    from nas.search.scheduler import RungBook

    book = RungBook([1, 3], ("max", "min"), 3.0, warmup={3: 9})
    first = [book.decide(3, k, (0.9 - 0.01 * k, 1.0 + k)) for k in range(8)]
    assert not any(p for p, _ in first) and "from its 9th arrival on" in first[0][1]
    assert book.decide(3, 8, (0.95, 0.5))[0], "the ninth, on the front, is the first to train for real"
    assert book.decide(1, 0, (0.1, 1.0))[0], "other rungs promote their first arrival as before"


@pytest.mark.slow
def test_a_search_with_a_last_rung_decides_its_front_by_the_real_training(tmp_path):
    from test_search_e2e import TINY_SPACE

    import nas
    from evaluators.proxy import prepare_proxy_data, proxy_train

    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    args = ["search", "--space", str(space), "--budget", "12", "--dataset", "digits", "--epochs", "2", "--eta", "2",
            "--train-size", "300", "--val-size", "100", "--lr", "0.5", "--num-cpus", "2", "--final-epochs", "2",
            "--out", str(tmp_path), "--name", "run", "--status-interval", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["fidelity"]["final_epochs"] == 2 and config["fidelity"]["full_fidelity"] == 3
    run = nas.load_run(str(tmp_path / "run"))
    trials = run.trials
    assert set(trials.max_epochs) == {3}
    finals = trials[(trials.state == "COMPLETE") & (trials.fidelity == 3)]
    assert len(finals) >= 1 and len(run.pareto) >= 1
    assert set(run.pareto.number) <= set(finals.number), "only real trainings stand on the front"
    stopped = trials[trials.state == "PRUNED"]
    assert set(stopped.fidelity) <= {1, 2}, "a pruned trial never reaches the last rung"
    # the front's accuracy is the real training's: redo one in-process, same seed, same data
    fidelity = Fidelity.from_dict(config["fidelity"]).bound("digits", None, 0, config["dataset"]["train_images"])
    real = fidelity.final_proxy()
    best = run.pareto.iloc[-1]
    last = None
    for last in proxy_train(best.arch, prepare_proxy_data(real), real, device="cpu", seed=0, threads=1):
        pass
    assert last.val_accuracy == pytest.approx(best.accuracy, abs=1e-6)
