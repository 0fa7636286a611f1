"""The finals (``--final-epochs``, ``--finalists``): once the screening has trained its budget,
finalists chosen across cost tiers train for real, and that training decides the front. Real
torch, Optuna storage and a local Ray on scikit-learn's digits."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas.errors import NasInputError
from nas.runs.folder import OLDER_RUNS_FIDELITY
from nas.search.fidelity import DEFAULT_FINALISTS, FINAL_VAL_SIZE, Fidelity
from nas.search.finals import Screened, choose_finalists


def test_finals_are_one_step_after_the_screening_and_round_trip_through_the_config():
    plain = Fidelity.from_options(epochs=4, eta=4, final_epochs=0)
    final = Fidelity.from_options(epochs=4, eta=4, final_epochs=2, finalists=6)
    assert plain.rungs() == [1] and plain.epochs == 4 and plain.final_proxy() is None
    assert final.rungs() == [1], "the finals are chosen after the screening, not promoted at a rung"
    assert final.epochs == 5 and final.screening_epochs == 4
    assert Fidelity.from_dict(final.to_dict()) == final
    assert final.to_dict()["full_fidelity"] == 5 and final.to_dict()["finalists"] == 6
    older = {k: v for k, v in plain.to_dict().items() if k not in ("final_epochs", "finalists", "full_fidelity")}
    assert Fidelity().final_epochs == 1 and Fidelity().proxy.epochs == 3, "the default search has finals"
    assert Fidelity.from_options().proxy.epochs == 3 and Fidelity.from_options().rungs() == [1]
    assert Fidelity.from_options(final_epochs=0).proxy.epochs == 9, "without finals the proxy keeps its 9 epochs"
    assert Fidelity.from_dict(older).final_epochs == 0, "a run from before the finals has none"
    assert Fidelity.from_dict(older).finalists == DEFAULT_FINALISTS == OLDER_RUNS_FIDELITY["finalists"]
    with pytest.raises(NasInputError, match="--final-epochs must be >= 0"):
        Fidelity.from_options(final_epochs=-1)
    with pytest.raises(NasInputError, match="--finalists must be >= 1"):
        Fidelity.from_options(final_epochs=1, finalists=0)
    by_cost = Fidelity.from_options(finalists_by="cost")
    assert Fidelity.from_dict(by_cost.to_dict()) == by_cost and by_cost.to_dict()["finalists_by"] == "cost"
    assert Fidelity.from_dict(older).finalists_by == OLDER_RUNS_FIDELITY["finalists_by"] == "screening"
    with pytest.raises(NasInputError, match="--finalists-by 'best': expected one of screening, cost"):
        Fidelity.from_options(finalists_by="best")


def test_the_finals_train_on_all_the_search_images_at_full_size():
    bound = Fidelity.from_options(epochs=4, eta=4, final_epochs=1).bound("fashion-mnist", None, 3, train_images=60_000)
    real = bound.final_proxy()
    assert real.resolution is None and real.epochs == 1 and real.eval_epochs == (1,)
    assert real.val_size == FINAL_VAL_SIZE and real.split_seed == 3 and real.train_size >= 50_000
    small = Fidelity.from_options(final_epochs=1).bound("digits", None, 0, train_images=1437)
    assert small.final_proxy().val_size == (1437 - 1437 // 6) // 5


def _screening(points):
    return [Screened(n, f"arch{n}", acc, mflops) for n, (mflops, acc) in enumerate(points)]


def test_finalists_are_spread_over_the_cost_tiers_by_their_residual_above_the_screenings_curve():
    # a cost curve acc = 0.80 + 0.02 * log2(mflops), with two networks above it in every tier
    points = []
    for mflops in (1, 1.2, 1.4, 1.6, 3, 3.5, 4, 4.5, 9, 10, 12, 14):
        points.append((mflops, 0.80 + 0.02 * math.log2(mflops)))
    lifted = {1: 0.01, 3: 0.02, 5: 0.01, 6: 0.03, 9: 0.02, 11: 0.01}  # index -> points above the curve
    points = [(m, a + lifted.get(i, 0.0)) for i, (m, a) in enumerate(points)]
    chosen = choose_finalists(_screening(points), count=6, tiers=3)
    assert [s.number for s in chosen] == [1, 3, 5, 6, 9, 11], "the two best residuals of each tier, cheapest first"
    # the most accurate networks overall are the costliest: raw accuracy would have chosen them
    assert {s.number for s in choose_finalists(_screening(points), count=3, tiers=3)} == {3, 6, 9}


def test_finalists_by_cost_are_evenly_spaced_in_each_tier_whatever_the_screening_says():
    mflops = [2 ** (1 + i / 8) for i in range(24)]  # 2 to ~15 MFLOPs, 8 per tier of 3
    noise = [0.0, 0.03, -0.02, 0.05, 0.01, -0.04, 0.02, 0.0]
    points = [(m, 0.8 + 0.02 * math.log2(m) + noise[i % 8]) for i, m in enumerate(mflops)]
    chosen = choose_finalists(_screening(points), count=6, tiers=3, by="cost")
    assert [s.number for s in chosen] == [2, 6, 10, 14, 18, 22], "the centres of two halves of each tier"
    flipped = [(m, 1.6 - a) for m, a in points]  # the screening's ranking reversed: the same finalists
    assert choose_finalists(_screening(flipped), count=6, tiers=3, by="cost") == [
        Screened(s.number, s.arch, 1.6 - s.accuracy, s.mflops) for s in chosen]
    unscored = [Screened(s.number, s.arch, math.nan, s.mflops) for s in _screening(points)]
    assert [s.number for s in choose_finalists(unscored, count=6, tiers=3, by="cost")] == [2, 6, 10, 14, 18, 22]
    assert choose_finalists(unscored, count=6, tiers=3) == [], "the screening rule needs a proxy accuracy"
    thin = _screening([(1.0, 0.8)] + [(8.0 + i, 0.85) for i in range(6)])
    assert len(choose_finalists(thin, count=4, tiers=3, by="cost")) == 4 and 0 in {
        s.number for s in choose_finalists(thin, count=4, tiers=3, by="cost")}


def test_the_cost_rule_pools_pruned_candidates_too():
    import optuna

    from nas.runs.trial_attrs import ACCURACY_CURVE, ARCH, FIDELITY, FINAL_OF, MFLOPS
    from nas.search.finals import pending_finalists, screened_trials

    study = optuna.create_study(directions=["maximize", "minimize"])
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}

    def add(state, number, fidelity, curve, **extra):
        attrs = {ARCH: f"a{number}", MFLOPS: 2.0 + number, FIDELITY: fidelity, ACCURACY_CURVE: curve, **extra}
        values = [curve[-1], 2.0 + number] if state == optuna.trial.TrialState.COMPLETE else None
        study.add_trial(optuna.trial.create_trial(state=state, values=values, params={"x": 0.5}, distributions=dist,
                                                  user_attrs=attrs))

    done, pruned = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED
    add(done, 0, 3, [0.5, 0.6, 0.7])
    add(pruned, 1, 1, [0.4])
    add(done, 2, 3, [0.5, 0.6, 0.65])
    add(done, 3, 4, [0.5, 0.6, 0.7, 0.8], **{FINAL_OF: 0})  # a final: never a screened candidate
    assert [s.number for s in screened_trials(study, 3)] == [0, 2]
    both = screened_trials(study, 3, pruned_too=True)
    assert [(s.number, s.accuracy) for s in both] == [(0, 0.7), (1, 0.4), (2, 0.65)]
    fidelity = Fidelity.from_options(final_epochs=1, finalists=3, finalists_by="cost")
    assert [s.number for s in pending_finalists(study, fidelity)] == [1, 2], "trial 0 has its final"


def test_a_thin_tier_gives_its_places_to_the_best_of_the_rest_and_the_choice_is_deterministic():
    points = [(1.0, 0.80), (8.0, 0.86), (8.5, 0.87), (9.0, 0.85), (10.0, 0.88), (12.0, 0.86), (16.0, 0.89)]
    first = choose_finalists(_screening(points), count=4, tiers=3)
    assert len(first) == 4 and 0 in {s.number for s in first}, "the cheap tier's one network is a finalist"
    assert first == choose_finalists(list(reversed(_screening(points))), count=4, tiers=3)
    few = choose_finalists(_screening(points[:3]), count=5, tiers=3)
    assert [s.number for s in few] == [0, 1, 2], "fewer candidates than places: all of them"
    same = [Screened(0, "a", 0.8, 2.0), Screened(1, "a", 0.9, 2.0), Screened(2, "b", 0.7, 4.0)]
    assert [s.number for s in choose_finalists(same, count=5, tiers=3)] == [0, 2], "one final per genotype"


@pytest.mark.slow
def test_a_search_with_finals_decides_its_front_by_the_real_training_and_resumes_them(tmp_path):
    from test_search_e2e import TINY_SPACE

    import optuna

    import nas
    from evaluators.proxy import prepare_proxy_data, proxy_train
    from nas.runs.folder import read_config
    from nas.runs.storage import open_study
    from nas.search.searcher import counts_against_budget

    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    args = ["search", "--space", str(space), "--budget", "12", "--dataset", "digits", "--epochs", "2", "--eta", "2",
            "--train-size", "300", "--val-size", "100", "--lr", "0.5", "--num-cpus", "2", "--final-epochs", "2",
            "--finalists", "4", "--out", str(tmp_path), "--name", "run", "--status-interval", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "finals: 4 finalist(s) train for real" in proc.stderr
    run_path = tmp_path / "run"
    config = json.loads((run_path / "config.json").read_text())
    assert config["fidelity"]["final_epochs"] == 2 and config["fidelity"]["full_fidelity"] == 3
    run = nas.load_run(str(run_path))
    trials = run.trials
    finals = trials[trials.reason.str.startswith("final of trial")]
    assert len(finals) == 4 and set(finals.state) == {"COMPLETE"} and set(finals.fidelity) == {3}
    screening = trials[~trials.index.isin(finals.index)]
    assert screening.fidelity.max() == 2, "the screening never trains past the proxy"
    assert set(run.pareto.number) <= set(finals.number), "only real trainings stand on the front"
    # each final is its screened trial's genotype, and its accuracy is the real training's
    study = open_study(run_path, read_config(run_path))
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    fidelity = Fidelity.from_dict(config["fidelity"]).bound("digits", None, 0, config["dataset"]["train_images"])
    real = fidelity.final_proxy()
    best = run.pareto.iloc[-1]
    original = by_number[by_number[int(best.number)].user_attrs["final_of"]]
    assert original.user_attrs["arch"] == best.arch and original.user_attrs["fidelity"] == 2
    last = None
    for last in proxy_train(best.arch, prepare_proxy_data(real), real, device="cpu", seed=0, threads=1):
        pass
    assert last.val_accuracy == pytest.approx(best.accuracy, abs=1e-6)
    counted = sum(1 for t in study.get_trials(deepcopy=False) if counts_against_budget(t))
    assert counted == 12, "the finals do not count against the budget"
    _fewer_finalists_are_a_subset_of_the_finals(run, study, fidelity)

    # a finals round cut short: drop two finals, resume; exactly those two train again
    kept = [t for t in study.get_trials(deepcopy=False) if t.number not in set(finals.number[:2])]
    fresh = optuna.create_study(directions=["maximize", "minimize"])
    for t in kept:
        fresh.add_trial(t)
    (run_path / "study.db").unlink()
    storage = optuna.storages.RDBStorage(f"sqlite:///{run_path / 'study.db'}")
    optuna.copy_study(from_study_name=fresh.study_name, from_storage=fresh._storage, to_storage=storage,
                      to_study_name=config["study_name"])
    proc = subprocess.run([sys.executable, "-m", "nas", "search", "--resume", str(run_path), "--status-interval", "5"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "finals: 2 finalist(s) train for real" in proc.stderr
    again = nas.load_run(str(run_path)).trials
    assert (again.reason.str.startswith("final of trial")).sum() == 4
    proc = subprocess.run([sys.executable, "-m", "nas", "search", "--resume", str(run_path), "--status-interval", "5"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0 and "finals:" not in proc.stderr, "a finished run trains nothing more"


def _fewer_finalists_are_a_subset_of_the_finals(run, study, fidelity):
    """bench_search_quality's K-finalist arms: the front of a run had it trained K < its finals."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_search_quality as quality
    from nas.search.fidelity import FINAL_TIERS
    from nas.search.finals import choose_finalists, screened_trials

    two = {s.arch for s in choose_finalists(screened_trials(study, fidelity.screening_epochs), 2, FINAL_TIERS)}
    front, peers = quality.finalists_front(run, 2)
    assert set(peers.arch) == two and len(peers) == 2
    assert set(front.arch) <= two and not front.empty
    assert set(quality.finalists_front(run, 4)[0].arch) == set(run.pareto.arch)
    with pytest.raises(SystemExit, match="5 finalists asked of a run that trained 4"):
        quality.finalists_front(run, 5)
