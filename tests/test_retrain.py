"""Retrain on the real `digits` data set: pick folder contents, resume, table, export from a pick."""

from __future__ import annotations

import json

import pytest
import torch

from nas.cli import main
from nas.errors import NasInputError
from nas.picks import pick_arch
from nas.cli.retrain import markdown_table
from nas.retrain import RetrainOptions, retrain_pick, retrain_recipe
from nas.runs.pick_folders import collect_picks

TINY = "stem c8 s1 | ds k3.5 c8 pad=partial, ir k3 e2 c12 s2 se0.25 act=swish | head c16"
OPTS = RetrainOptions(epochs=2, threads=1, batch_size=64)


@pytest.fixture(scope="module")
def digits():
    from nas.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class _Stop(Exception):
    pass


def test_recipe_defaults():
    r = retrain_recipe("digits", RetrainOptions())
    assert r.epochs == 30 and r.ema_decay == 0.999 and r.label_smoothing == 0.1 and r.hflip is False
    r = retrain_recipe("fashion-mnist", RetrainOptions(epochs=3, lr=0.1, batch_size=64, ema=False))
    assert (r.epochs, r.lr, r.batch_size, r.ema_decay, r.hflip) == (3, 0.1, 64, None, True)


def test_cli_retrain_writes_pick_folder_and_table(tmp_path, capsys):
    out = tmp_path / "picks"
    rc = main(["retrain", "--arch", TINY, "--name", "tiny", "--dataset", "digits", "--out", str(out),
               "--epochs", "2", "--batch-size", "64", "--threads", "1"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "epoch   1/2" in text and "epoch   2/2" in text and "| tiny |" in text
    folder = out / "tiny"
    names = {p.name for p in folder.iterdir()}
    assert names == {"genotype.txt", "metrics.json", "curve.csv", "curve.png", "weights.safetensors"}
    m = json.loads((folder / "metrics.json").read_text())
    assert m["complete"] and m["name"] == "tiny" and m["arch"] == TINY and m["epochs"] == 2
    assert 0.0 <= m["test_accuracy"] <= 1.0 and m["dataset"]["test_images"] == 359
    assert m["mflops"] > 0 and m["params"] > 0 and m["latency_ms"] > 0
    assert m["latency"]["rounds"] >= 3 and m["latency"]["spread"] >= 0 and isinstance(m["latency"]["stable"], bool)
    assert m["recipe"]["ema_decay"] == 0.999 and m["recipe"]["batch_size"] == 64
    assert (folder / "curve.csv").read_text().splitlines()[0].startswith("epoch,train_loss")
    assert len((folder / "curve.csv").read_text().splitlines()) == 3

    # a finished pick is not trained again
    rc = main(["retrain", "--arch", TINY, "--name", "tiny", "--dataset", "digits", "--out", str(out), "--epochs", "2"])
    assert rc == 0 and "already retrained" in capsys.readouterr().out
    # another architecture in the same folder is refused (exit 2, one line)
    rc = main(["retrain", "--arch", "stem c8 | ds k3 c8 | head c0", "--name", "tiny", "--dataset", "digits",
               "--out", str(out)])
    assert rc == 2 and "another architecture" in capsys.readouterr().err
    # the table alone
    rc = main(["retrain", "--table", "--out", str(out)])
    table = capsys.readouterr().out
    assert rc == 0 and table.startswith("| pick | from | test acc. (%) | MFLOPs | params | CPU latency (ms) | epochs |")
    assert f"`{TINY}`" in table
    assert f"{m['latency_ms']:.3g} ±" in table, "the latency carries its spread"
    # the latency measured again, without training: recorded in metrics.json, the rest kept
    rc = main(["retrain", "--measure-latency", "--out", str(out)])
    text = capsys.readouterr().out
    again = json.loads((folder / "metrics.json").read_text())
    assert rc == 0 and text.startswith("tiny: ") and "thread(s)" in text
    assert again["latency"]["measured"] and again["latency_ms"] == again["latency"]["median_ms"] > 0
    assert {k: v for k, v in again.items() if not k.startswith("latency")} == \
        {k: v for k, v in m.items() if not k.startswith("latency")}
    assert main(["retrain", "--measure-latency", "--out", str(tmp_path / "none")]) == 2
    assert "no finished picks" in capsys.readouterr().err
    m = again

    # beside the hand-design baseline pick, every pick is timed in the same rounds and carries its ratio to it
    import shutil

    base = out / "mobilenetv2-3x3"
    shutil.copytree(folder, base)
    bm = json.loads((base / "metrics.json").read_text())
    bm["arch"] = "stem c32 s1 | ir k3 e6 c64, ir k3 e6 c64 r3 | head c256"
    (base / "metrics.json").write_text(json.dumps(bm))
    rc = main(["retrain", "--measure-latency", "--table", "--out", str(out)])
    text = capsys.readouterr().out
    lat, blat = (json.loads((f / "metrics.json").read_text())["latency"] for f in (folder, base))
    assert rc == 0 and "x mobilenetv2-3x3" in text and "shared by 2 pick(s)" in text
    assert blat["ratio"] == 1.0 and lat["baseline"] == "mobilenetv2-3x3" and 0 < lat["ratio"] < 1, (lat, blat)
    assert lat["rounds"] == blat["rounds"] and lat["with"] == ["mobilenetv2-3x3", "tiny"]
    assert f"({lat['ratio']:.2f}x)" in text and "both timed in the same rounds" in text
    shutil.rmtree(base)
    m = json.loads((folder / "metrics.json").read_text())

    # export the pick; its weights are checked against metrics.json
    exp = tmp_path / "export"
    rc = main(["export", "--pick", "tiny", "--picks-dir", str(out), "--out", str(exp)])
    assert rc == 0, capsys.readouterr().err
    em = json.loads((exp / "metrics.json").read_text())
    assert em["test_accuracy"] == m["test_accuracy"] and em["trained"] is True
    assert (exp / "model.py").is_file() and (exp / "weights.safetensors").is_file()
    # --arch finds the same pick
    rc = main(["export", "--arch", TINY, "--picks-dir", str(out), "--out", str(tmp_path / "export2")])
    assert rc == 0
    # a tampered pick is refused
    w = folder / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:-8])
    rc = main(["export", "--pick", "tiny", "--picks-dir", str(out), "--out", str(tmp_path / "export3")])
    assert rc == 2 and "SHA-256" in capsys.readouterr().err
    # an unknown pick, and an arch never retrained
    assert main(["export", "--pick", "nope", "--picks-dir", str(out), "--out", str(tmp_path / "e4")]) == 2
    assert "not retrained yet" in capsys.readouterr().err
    assert main(["export", "--arch", "stem c8 | ds k3 c8 | head c0", "--picks-dir", str(out),
                 "--out", str(tmp_path / "e5")]) == 2


def test_resume_from_last_epoch_is_exact(tmp_path, digits):
    pick = pick_arch(TINY, name="r")
    logs: list[str] = []

    def stop_after_first_epoch(msg: str) -> None:
        logs.append(msg)
        if "epoch   1/2" in msg:
            raise _Stop

    with pytest.raises(_Stop):
        retrain_pick(pick, tmp_path / "r", digits, OPTS, log=stop_after_first_epoch)
    assert (tmp_path / "r" / "checkpoint.pt").is_file()
    assert not (tmp_path / "r" / "metrics.json").exists()
    assert len((tmp_path / "r" / "curve.csv").read_text().splitlines()) == 2  # header + epoch 1

    resumed_log: list[str] = []
    m = retrain_pick(pick, tmp_path / "r", digits, OPTS, log=resumed_log.append)
    assert any("resuming after epoch 1" in line for line in resumed_log)
    assert not any("epoch   1/2" in line for line in resumed_log)
    assert any("epoch   2/2" in line for line in resumed_log)
    assert not (tmp_path / "r" / "checkpoint.pt").exists()  # removed when the pick is done
    assert len((tmp_path / "r" / "curve.csv").read_text().splitlines()) == 3

    # same result as an uninterrupted run (CPU, same seed and thread count)
    full = retrain_pick(pick_arch(TINY, name="f"), tmp_path / "f", digits, OPTS, log=lambda s: None)
    assert m["test_accuracy"] == full["test_accuracy"]
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "r" / "weights.safetensors"))
    b = load_file(str(tmp_path / "f" / "weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    rows = collect_picks(tmp_path)
    assert [r["name"] for r in rows] == ["f", "r"]
    assert "| f | --arch |" in markdown_table(rows)


def test_checkpoint_with_other_settings_is_refused(tmp_path, digits):
    pick = pick_arch(TINY, name="c")

    def stop(msg: str) -> None:
        if "epoch   1/2" in msg:
            raise _Stop

    with pytest.raises(_Stop):
        retrain_pick(pick, tmp_path / "c", digits, OPTS, log=stop)
    with pytest.raises(NasInputError, match="different recipe or seed"):
        retrain_pick(pick, tmp_path / "c", digits, RetrainOptions(epochs=3, threads=1, batch_size=64), log=print)


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["retrain", "--arch", "stem c8 | ds k4 c8 | head c0", "--dataset", "digits", "--out", str(tmp_path)]) == 2
    assert "kernel size" in capsys.readouterr().err
    assert main(["retrain", "--arch", TINY, "--out", str(tmp_path)]) == 2
    assert "--dataset" in capsys.readouterr().err
    assert main(["retrain", "--pick", "s", "--out", str(tmp_path)]) == 2
    assert "run folder" in capsys.readouterr().err
    assert main(["retrain", "--arch", TINY, "--dataset", "digits", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert main(["retrain", "--space", "mdconv", "--dataset", "digits", "--out", str(tmp_path)]) == 2
    assert "one-point" in capsys.readouterr().err


def _make_run(tmp_path):
    """A real run folder: config.json + an Optuna SQLite study whose trials carry the user attrs
    the search writes (arch, mflops, params, fidelity, duration_s), read back by nas.load_run."""
    import optuna

    from evaluators.cost import measure_cost

    run = tmp_path / "run"
    run.mkdir()
    config = {
        "format": 1, "name": "run", "study_name": "run", "storage": None,
        "space": {"name": "test"}, "dataset": {"name": "digits", "data_dir": None, "num_classes": 10,
                                               "in_chans": 1, "image_size": 8},
        "objectives": ["accuracy", "mflops"], "fidelity": {"epochs": 2},
    }
    (run / "config.json").write_text(json.dumps(config))
    study = optuna.create_study(study_name="run", storage=f"sqlite:///{run / 'study.db'}",
                                directions=["maximize", "minimize"])

    archs = [  # cheapest to largest; accuracies rise with cost, so all are on the front
        ("stem c4 s1 | ds k3 c4 | head c0", 0.60),
        ("stem c8 s1 | ds k3 c8 | head c0", 0.70),
        ("stem c8 s1 | ds k3.5 c8 pad=partial, ir k3 e2 c12 s2 | head c16", 0.80),
        ("stem c16 s1 | ir k3.5 e3 c16, ir k3 e3 c24 s2 se0.25 | head c32", 0.90),
    ]
    for arch, acc in archs:
        cost = measure_cost(arch, in_chans=1, image_size=8, num_classes=10)
        study.add_trial(optuna.trial.create_trial(
            values=[acc, cost.mflops],
            user_attrs={"arch": arch, "mflops": cost.mflops, "params": cost.params, "fidelity": 2,
                        "duration_s": 1.0}))
    # a pruned trial never stands on the front
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                              user_attrs={"arch": archs[0][0], "fidelity": 1}))
    return run, [a for a, _ in archs]


def test_run_folder_picks_retrain_and_export(tmp_path, capsys):
    import nas
    from nas.picks import pick_tiers
    from nas.runs.pick_folders import load_picks

    run, archs = _make_run(tmp_path)
    front = nas.load_run(run).pareto
    assert len(front) == 4
    s, m, l = pick_tiers(front)
    assert l.arch == archs[3] and s.arch in archs[:2]

    rc = main(["retrain", str(run), "--pick", "s", "--epochs", "1", "--batch-size", "64", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "| s | trial " in out and "tier <=" in out
    assert "could not redraw" not in out and (run / "pareto.png").is_file()  # redrawn with the picks
    ms = json.loads((run / "picks" / "s" / "metrics.json").read_text())
    assert ms["source"] == "tier" and ms["number"] == s.number and ms["search_accuracy"] == s.accuracy
    # trial picks, targets naming, and the picks for a plot
    # the value rule picks distinct networks from the run's own full-fidelity trials; not with --targets
    loaded = nas.load_run(run)
    assert len(loaded.full_fidelity) == 4  # the pruned trial is not among them
    by_value = pick_tiers(front, by="value", peers=loaded.full_fidelity)
    assert len({p.number for p in by_value}) == 3 and all(p.source == "tier:value" for p in by_value)
    rc = main(["retrain", str(run), "--pick-by", "value", "--targets", "1", "--epochs", "1"])
    assert rc == 2 and "--pick-by" in capsys.readouterr().err
    rc = main(["retrain", str(run), "--trial", str(s.number), "--targets", "0.0001", "--epochs", "1",
               "--batch-size", "64", "--threads", "1"])
    assert rc == 2 and "cheapest has" in capsys.readouterr().err
    rc = main(["retrain", str(run), "--trial", str(s.number), "--epochs", "1", "--batch-size", "64", "--threads", "1"])
    assert rc == 0
    capsys.readouterr()
    assert (run / "picks" / f"trial-{s.number}" / "weights.safetensors").is_file()
    assert [p.name for p in load_picks(run)] in (["s", f"trial-{s.number}"], [f"trial-{s.number}", "s"])
    rc = main(["retrain", str(run), "--table"])
    table = capsys.readouterr().out
    assert rc == 0 and table.count("\n| ") == 2  # 2 picks
    rc = main(["export", str(run), "--pick", "s", "--out", str(tmp_path / "exp")])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "exp" / "genotype.txt").read_text().strip() == s.arch
