"""benchmarks/ground_truth.py: the table fills without losing or duplicating a row, from
several processes at once, and a stopped worker's job is taken over and finished."""

from __future__ import annotations

import csv
import importlib.util
import math
import multiprocessing
import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["stem c8 s1 | ds k3 c8 | head c0", "stem c8 s1 | ds k3.5 c8 se0.25 | head c0", "stem c8 s1 | ir k3 e3 c8 | head c0"]


def _load():
    spec = importlib.util.spec_from_file_location("ground_truth", ROOT / "benchmarks" / "ground_truth.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ground_truth"] = module
    spec.loader.exec_module(module)
    return module


gt = _load()


def _jobs() -> list[dict]:
    return [
        {"job": gt.job_id(g, seed), "genotype": g, "band": "1", "role": "band", "seed": str(seed), "mflops": "0.01", "params": "1"}
        for g in TINY for seed in (0, 1)
    ]


def _digits():
    from nas.data import load_dataset, split_train_val

    dataset = load_dataset("digits")
    train, val = split_train_val(dataset, val_size=300, seed=0)
    return dataset, train, val


def _fill(table: str, work: str) -> int:
    import torch

    torch.set_num_threads(1)
    return gt.worker(gt.Reference(epochs=1), table=Path(table), work=Path(work), jobs=_jobs(), data=_digits())


def test_two_workers_fill_the_table_once_each_job(tmp_path):
    table, work = tmp_path / "table.csv", tmp_path / "work"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        appended = pool.starmap(_fill, [(str(table), str(work))] * 2)
    rows = gt.read_table(table)
    assert sum(appended) == len(_jobs()) == len(rows)
    assert sorted(r["job"] for r in rows) == sorted(j["job"] for j in _jobs())
    assert all(0.0 <= float(r["val_accuracy"]) <= 1.0 and r["epochs"] == "1" and r["val_images"] == "300" for r in rows)
    assert not list((work / "claims").iterdir()), "claims are released"
    # a second pass finds nothing to do
    assert _fill(str(table), str(work)) == 0


def _append(table: str, job: str) -> bool:
    return gt.append_row({"job": job, "epochs": 3, "genotype": "g"}, Path(table))


def test_concurrent_appends_keep_one_row_per_job(tmp_path):
    table = tmp_path / "table.csv"
    jobs = [f"job{i % 5}" for i in range(40)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        results = pool.starmap(_append, [(str(table), j) for j in jobs])
    assert sum(results) == 5
    with table.open(newline="") as fh:
        assert sorted(r["job"] for r in csv.DictReader(fh)) == [f"job{i}" for i in range(5)]


def test_claims_of_dead_processes_are_taken_over_live_ones_respected(tmp_path):
    work = tmp_path / "work"
    assert gt.claim("a", work)
    assert not gt.claim("a", work), "our own live claim"
    (work / "claims" / "a.claim").write_text(f"{socket.gethostname()} {os.getppid()}\n")  # a live process
    assert not gt.claim("a", work)
    dead = multiprocessing.get_context("fork").Process(target=lambda: None)
    dead.start()
    dead.join()
    (work / "claims" / "a.claim").write_text(f"{socket.gethostname()} {dead.pid}\n")
    assert gt.claim("a", work)
    (work / "claims" / "b.claim").parent.mkdir(exist_ok=True)
    (work / "claims" / "b.claim").write_text(f"another-host.example {dead.pid}\n")
    assert not gt.claim("b", work), "a claim made on another machine is respected"


def test_a_stopped_job_resumes_from_its_checkpoint(tmp_path):
    table, work = tmp_path / "table.csv", tmp_path / "work"
    job = _jobs()[0]
    data = _digits()
    settings = gt.Reference(epochs=2)
    first = gt.train_job(job, settings, data, work)
    checkpoint = work / "checkpoints" / f"{job['job']}-e2.pt"
    assert checkpoint.is_file(), "the per-epoch checkpoint stays until the row is appended"
    # a later process finds every epoch in the checkpoint: it only evaluates
    again = gt.train_job(job, settings, data, work)
    assert again["val_accuracy"] == first["val_accuracy"]
    assert gt.worker(settings, table=table, work=work, jobs=[job], data=data) == 1
    assert not checkpoint.exists()


@pytest.mark.parametrize("epochs", [1, 2])
def test_pending_counts_rows_at_the_same_epochs_only(tmp_path, epochs):
    table = tmp_path / "table.csv"
    jobs = _jobs()
    gt.append_row({"job": jobs[0]["job"], "epochs": 1}, table)
    assert len(gt.pending(jobs, epochs, table)) == len(jobs) - (epochs == 1)


def _bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_fidelity", ROOT / "benchmarks" / "bench_fidelity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_fidelity"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def _table(tmp_path) -> Path:
    table = tmp_path / "table.csv"
    rng = __import__("random").Random(0)
    for band in ("2", "4"):
        for i in range(6):
            for seed in (0, 1) if band == "2" else (0,):
                acc = 0.80 + 0.05 * (band == "4") + 0.01 * i + (0.001 * rng.random() if seed else 0.0)
                gt.append_row({"job": f"{band}-{i}-{seed}", "genotype": f"g{band}-{i}", "band": band, "seed": seed,
                               "epochs": 3, "val_accuracy": acc, "mflops": float(band) * (1 + 0.02 * i)}, table)
    return table


def test_fidelity_metrics_of_a_perfect_a_reversed_and_a_partial_predictor(tmp_path):
    bench = _bench()
    truth = bench.load_truth(_table(tmp_path))
    assert len(truth.genotypes) == 12 and set(truth.bands()) == {"2", "4"}
    groups, everyone = truth.bands(), truth.genotypes
    perfect = bench.metrics(groups, everyone, dict(truth.accuracy), truth.accuracy)
    assert perfect == pytest.approx({"tau": 1.0, "rho": 1.0, "band_tau": 1.0, "regret": 0.0, "top3": 1.0})
    reversed_ = bench.metrics(groups, everyone, {g: -a for g, a in truth.accuracy.items()}, truth.accuracy)
    assert reversed_["tau"] == pytest.approx(-1.0) and reversed_["top3"] == 0.0
    assert reversed_["regret"] == pytest.approx(5.0, abs=0.1)  # the worst of each band lies 5 points below its best
    ceiling = bench.seed_ceiling(truth)
    assert set(ceiling) == {"2"} and ceiling["2"][0] == pytest.approx(1.0) and ceiling["2"][2] == 6  # seed 1 keeps seed 0's order
    ci = bench.bootstrap(groups, everyone, dict(truth.accuracy), truth.accuracy, noise=0.0, rounds=50)
    assert ci["tau"] == pytest.approx((1.0, 1.0)) and ci["regret"] == (0.0, 0.0)
    lines = bench.report(truth, {"half": {g: (a if "g2" in g else float("nan"), 0.0) for g, a in truth.accuracy.items()}},
                         {"half": "scores band 2 only"})
    assert any(line.startswith("| half (6 not scorable) | **1.00") for line in lines)
    assert any(line.startswith("seed-to-seed pooled residual tau (the ceiling): ") and line.endswith("(n=6)")
               for line in lines), "the 6 band-2 genotypes have seeds 0 and 1"


def test_the_truth_is_the_seed_mean(tmp_path):
    truth = _bench().load_truth(_table(tmp_path))
    g = "g2-3"
    assert truth.accuracy[g] == pytest.approx(sum(truth.seeds[g].values()) / 2) and len(truth.seeds[g]) == 2
    assert truth.mflops["g4-1"] == pytest.approx(4.08)


def test_pooled_residual_tau_sees_rank_within_cost_only():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import random_draw as rd

    rng = __import__("random").Random(3)
    members = [f"g{i}" for i in range(40)]
    mflops = {g: 2 ** rng.uniform(1, 4) for g in members}
    merit = {g: rng.gauss(0, 1) for g in members}
    curve = {g: 0.8 + 0.03 * math.log2(mflops[g]) - 0.002 * math.log2(mflops[g]) ** 2 for g in members}
    truth = {g: curve[g] + 0.004 * merit[g] for g in members}
    # cost alone (the curve itself) carries no within-cost rank: residualised it is ~0
    fitted = rd.fit(truth, mflops)
    assert fitted.sd == pytest.approx(0.004, rel=0.35)
    assert fitted(4.0) == pytest.approx(0.8 + 0.06 - 0.008, abs=0.003)
    assert rd.residualise(curve, mflops, members)[members[0]] == pytest.approx(0.0, abs=1e-9)
    # an estimate that knows the merit, on a different cost scale, ranks perfectly
    knows = {g: 10 * math.log2(mflops[g]) + merit[g] for g in members}
    assert rd.pooled_residual_tau(knows, truth, mflops, members) == pytest.approx(1.0)
    reversed_ = {g: -merit[g] for g in members}
    assert rd.pooled_residual_tau(reversed_, truth, mflops, members) == pytest.approx(-1.0)
    lo, hi = rd.bootstrap_pooled_tau(knows, truth, mflops, members, rounds=100)
    assert lo > 0.9 and hi == pytest.approx(1.0)
    half = {g: merit[g] + rng.gauss(0, 1) for g in members}
    tau = rd.pooled_residual_tau(half, truth, mflops, members)
    lo, hi = rd.bootstrap_pooled_tau(half, truth, mflops, members, rounds=200)
    assert 0.2 < tau < 0.8 and lo < tau < hi
    assert rd.Curve(fitted.coefficients, 0.0, 40).residual(fitted(8.0) + 0.01, 8.0) == pytest.approx(1.0)


def test_selection_gain_is_the_best_of_n_draws_residual_in_points():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import itertools
    import random_draw as rd

    rng = __import__("random").Random(5)
    bands = {b: [f"{b}-{i}" for i in range(9)] for b in ("2", "8")}
    mflops = {g: float(b) * 2 ** rng.uniform(-0.1, 0.1) for b, ms in bands.items() for g in ms}
    merit = {g: rng.gauss(0, 1) for g in mflops}
    truth = {g: 0.85 + 0.02 * math.log2(mflops[g]) + 0.004 * merit[g] for g in mflops}
    residual = {g: 100 * r for g, r in rd.residualise(truth, mflops, list(mflops)).items()}
    knows = {g: 3 * math.log2(mflops[g]) + merit[g] for g in mflops}  # the merit, on another cost scale

    def brute(estimate, n):  # every n-subset of each band, the estimate's favourite's true residual
        own = rd.residualise(estimate, mflops, list(mflops))  # the estimate's value above its own curve
        per_band = []
        for ms in bands.values():
            subsets = list(itertools.combinations(ms, n))
            per_band.append(sum(residual[max(c, key=lambda g: own[g])] for c in subsets) / len(subsets))
        return sum(per_band) / len(per_band)

    noisy = {g: merit[g] + rng.gauss(0, 1) for g in mflops}
    for n in (1, 3, 5, 9):
        for estimate in (knows, noisy):
            assert rd.selection_gain(estimate, truth, mflops, bands, n) == pytest.approx(brute(estimate, n), abs=1e-9)
    # one draw is a random draw; knowing the merit gains more with every draw, and the whole band
    # gives each band's best; the reverse of the merit loses as much
    assert abs(rd.selection_gain(knows, truth, mflops, bands, 1)) < 0.05
    gains = [rd.selection_gain(knows, truth, mflops, bands, n) for n in (2, 3, 5, 9)]
    assert gains == sorted(gains) and gains[0] > 0.1
    best = sum(max(residual[g] for g in ms) for ms in bands.values()) / 2
    assert gains[-1] == pytest.approx(best)
    reverse = {g: -merit[g] for g in mflops}
    assert rd.selection_gain(reverse, truth, mflops, bands, 5) < -0.1
    assert math.isnan(rd.selection_gain(knows, truth, mflops, bands, 10))  # no band has 10
    lo, hi = rd.bootstrap_selection_gain(knows, truth, mflops, bands, 3, rounds=200)
    assert lo < gains[1] < hi and lo > 0


def _quality():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_search_quality

    return bench_search_quality


def test_search_quality_counts_the_cpu_of_the_whole_process_tree(tmp_path):
    """A search's CPU is mostly in Ray's worker processes, grandchildren of the command."""
    burn = "import time; t = time.process_time(); exec('while time.process_time() - t < 1.0: pass')"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"
    code, wall, cpu = _quality().run_command([sys.executable, "-c", child], tmp_path / "log")
    assert code == 0 and cpu >= 0.8 and wall >= 1.0


def test_search_quality_summary_of_an_arm():
    q = _quality()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import random_draw as rd

    mflops = {f"g{i}": 2.0 * 1.2 ** i for i in range(12)}
    curve = rd.fit({g: 0.85 + 0.01 * math.log2(m) for g, m in mflops.items()}, mflops)
    common = {"front_mflops_min": "2.0", "front_mflops_max": "10.0", "search_cpu_seconds": "100",
              "search_wall_seconds": "60", "budget": "20"}
    rows = [{**common, "pick": name, "mflops": str(m), "seed": str(seed), "genotype": name,
             "val_accuracy": str(curve(m) + delta + 0.001 * seed)}
            for name, m, delta in (("s", 2.0, 0.006), ("m", 4.0, 0.010), ("l", 8.0, -0.002)) for seed in (0, 1)]
    s = q.arm_summary(rows, curve, baseline_accuracy=curve(4.0) - 0.002)
    assert [name for name, _ in s["picks"]] == ["s", "m", "l"]
    assert s["mean"] == pytest.approx((0.6 + 1.0 - 0.2) / 3 + 0.05, abs=1e-6)
    assert s["interval"][0] <= s["mean"] <= s["interval"][1]
    assert s["lowest"] == pytest.approx(-0.15) and s["span"] == pytest.approx(5.0) and s["spacing"] == pytest.approx(2.0)
    assert s["beats_baseline"] == ["m"], "s is below the baseline; l costs more than 6.3 MFLOPs"


def test_search_quality_report_keeps_each_search_of_an_arm_apart_and_pools_them(tmp_path, monkeypatch, capsys):
    """Two searches of one arm (search seeds 0 and 1) are two rows of the table and one pooled line."""
    import argparse

    q = _quality()
    monkeypatch.setattr(q, "QUALITY_CSV", tmp_path / "quality.csv")
    curve, _ = q.random_draw_curve(3)
    common = {"arm": "default", "budget": "200", "epochs": "3", "front_mflops_min": "2.0", "front_mflops_max": "10.0",
              "search_cpu_seconds": "100", "search_wall_seconds": "60"}
    for search_seed, delta in ((0, 0.002), (1, 0.006)):
        for name, m in (("s", 2.0), ("m", 4.0), ("l", 8.0)):
            for seed in (0, 1):
                q.append_row({**common, "search_seed": str(search_seed), "pick": name, "mflops": str(m),
                              "seed": str(seed), "genotype": name, "job": f"{name}{seed}",
                              "val_accuracy": str(curve(m) + delta)}, q.QUALITY_CSV, q.COLUMNS,
                             key=q.ROW_KEY)
    q.report(argparse.Namespace(epochs=3))
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| default")]
    assert len(table) == 2 and "+0.20 [" in table[0] and table[1].startswith("| default (search seed 1) |")
    assert "+0.60 [" in table[1]
    assert "2 searches (seed 0 +0.20, seed 1 +0.60): mean residual +0.40" in out


def test_the_tilted_draw_is_the_one_the_ground_truth_was_selected_with():
    """300 seeded draws per band, genotype and log importance weight each, hash to what they were
    when benchmarks/ground_truth/mdconv-genotypes.csv was selected: a change to the space's draw
    or its cost order would select other genotypes."""
    import hashlib
    import random

    import nas

    space = nas.load_space("mdconv")
    lines = []
    for centre, tilt in sorted(gt.TILT.items()):
        rng = random.Random(f"{gt.SELECT_SEED}-{centre}")
        for _ in range(300):
            arch, log_weight = gt.tilted_draw(space, tilt, rng)
            lines.append(f"{centre} {arch} {log_weight!r}\n")
    digest = hashlib.sha256("".join(lines).encode()).hexdigest()
    assert digest == "59d88f0ed87c2c40b107abe51ceacd98eaac47f40332e75b87975ce99d00cf5f"


def test_the_shared_claim_loop_skips_live_claims_rechecks_done_and_always_releases(tmp_path):
    """work_through is the loop of the ground truth's workers and of bench_search_quality's picks."""
    work = tmp_path / "work"
    jobs = [{"job": name} for name in ("a", "b", "c", "d")]
    (work / "claims").mkdir(parents=True)
    (work / "claims" / "b.claim").write_text(f"{socket.gethostname()} {os.getppid()}\n")  # a live process holds b
    (work / "checkpoints").mkdir()
    (work / "checkpoints" / "a-e1.pt").write_text("x")
    trained: list[str] = []
    asked: list[str] = []

    def done(job):  # another process finishes c between the first look and the claim
        asked.append(job["job"])
        return job["job"] == "c" and asked.count("c") > 1

    def train(job):
        trained.append(job["job"])
        if job["job"] == "d":
            raise RuntimeError("boom")
        return True

    with pytest.raises(RuntimeError, match="boom"):
        gt.work_through(jobs, done, train, epochs=1, work=work)
    assert trained == ["a", "d"], "b is claimed by a live process; c was done by the time it was claimed"
    assert not (work / "checkpoints" / "a-e1.pt").exists(), "a finished job's checkpoint is dropped"
    assert sorted(p.name for p in (work / "claims").iterdir()) == ["b.claim"], "a and d released, even after d failed"
    assert gt.work_through([{"job": "e"}, {"job": "f"}], lambda j: False, lambda j: True, epochs=1, work=work, limit=1) == 1


def test_the_finals_predictor_trains_as_the_shipped_search_trains_its_finalists():
    from dataclasses import replace

    from evaluators.proxy import ProxyConfig
    from nas.search.fidelity import Fidelity

    predictor = _bench().builtin_predictors()["finals-1ep"]
    assert predictor.kind == "proxy" and "validation accuracy" in predictor.describe
    assert replace(ProxyConfig(), **dict(predictor.settings)) == Fidelity.from_options().final_proxy()


def test_cached_only_scores_nothing_and_leaves_the_uncached_unscorable(tmp_path, monkeypatch):
    bench = _bench()
    monkeypatch.setattr(bench, "PREDICTIONS", tmp_path)
    calls: list[list[str]] = []
    plug = bench.Predictor("plug", "a plug-in", score_all=lambda gs: calls.append(list(gs)) or [0.5] * len(gs))
    assert all(math.isnan(v) for pair in bench.predictions(plug, ["a", "b"], 1, False, cached_only=True).values()
               for v in pair) and calls == []
    assert bench.predictions(plug, ["a"], 1, False)["a"][0] == 0.5 and calls == [["a"]]
    again = bench.predictions(plug, ["a", "b"], 1, False, cached_only=True)
    assert again["a"][0] == 0.5 and math.isnan(again["b"][0]) and calls == [["a"]]
    mflops = bench.builtin_predictors()["mflops"]  # free to compute: scored even so
    assert bench.predictions(mflops, [TINY[0]], 1, False, cached_only=True)[TINY[0]][0] > 0
