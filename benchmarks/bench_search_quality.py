"""Search quality, end to end: do a search's picks beat a random network of the same cost?

For each *arm* (a ``nas search`` command line, or an existing run folder) this benchmark:

1. runs the search (resuming it if it was stopped; skipped when its run folder is complete),
   recording its wall time and the CPU seconds of its whole process tree (the search, Ray's
   processes and workers: polled from /proc every half second);
2. takes the S/M/L picks from its front (``nas.picks.pick_tiers``, as ``nas retrain`` does);
3. trains each pick under the ground truth's protocol (``ground_truth.train_job``: 3 epochs,
   28x28, 1 thread, validated on the judge's 10,000 images that no search reads), seeds 0
   and 1. Jobs are claimed and checkpointed per epoch like ``ground_truth.py run``, so any
   number of processes fill the table and a killed job resumes. A (genotype, seed) that the
   ground truth table already holds is not trained again: the protocol is the same;
4. appends one row per (arm, pick, seed) to ``ground_truth/search-quality.csv`` (committed).

``report`` prints, per arm and pick: MFLOPs, accuracy per seed and their mean, and the
*residual* against the random-draw curve (``random_draw.py``: a quadratic of the ground
truth's band genotypes' seed-mean accuracy in log2(MFLOPs)). Per arm: the mean residual of
the (pick, seed) rows with a 90 % bootstrap interval, the lowest pick's residual, the front's
MFLOPs span and the S/M/L spacing, whether a pick at <= 6.3 MFLOPs beats MobileNetV2-3x3 by
0.5 points, the search's CPU seconds and wall time. MobileNetV2-3x3's own residual (the hand
design) is printed beside them.

    python benchmarks/bench_search_quality.py run --arm default --budget 200          # search + picks
    python benchmarks/bench_search_quality.py run --arm reference --run results/reference
    python benchmarks/bench_search_quality.py run --arm default --budget 200 --workers 2
    python benchmarks/bench_search_quality.py run --arm default-value --budget 200          # same search, value picks
    python benchmarks/bench_search_quality.py run --arm default-k9 --budget 200 --workers 2  # same search, 9 of its finals
    python benchmarks/bench_search_quality.py run --arm default-cost --budget 200 --workers 2  # same screening, finals by cost
    python benchmarks/bench_search_quality.py report
    python benchmarks/bench_search_quality.py arms                                    # what each arm runs

A larger budget can grow from a smaller one's run: copy ``.work/quality-runs/ARM-bN-sS`` (and
its ``.timing.json``) to ``ARM-bM-sS``; ``run --budget M`` then resumes it to M candidates and
adds the CPU and wall time to what the copy records.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import print_machine  # noqa: E402
from ground_truth import (  # noqa: E402
    FOLDER, TABLE_CSV, WORK, Reference, append_row, job_id, load_reference_data, machine, commit_id,
    read_table, train_job, work_through,
)
from random_draw import bootstrap_mean, fit  # noqa: E402

QUALITY_CSV = FOLDER / "search-quality.csv"
RUNS = WORK / "quality-runs"  # the arms' run folders: local, never committed
SPACE = "mdconv"
SEEDS = (0, 1)
BASELINE = "baseline:mobilenetv2-3x3"
#: The hand design's cost class: a pick at or below this many MFLOPs must beat it.
BASELINE_MFLOPS_LIMIT = 6.3
BASELINE_MARGIN = 0.5  # points

#: Arm name -> the ``nas search`` options beside ``--space mdconv --budget B --seed S``.
#: ``default`` is what the project ships: no options at all.
ARMS: dict[str, list[str]] = {
    "default": [],
    # each proxy alone, deciding the front (no finals)
    "scratch": ["--proxy", "scratch", "--final-epochs", "0"],
    "scratch-random": ["--proxy", "scratch", "--final-epochs", "0", "--sampler", "random"],
    "supernet": ["--proxy", "supernet", "--final-epochs", "0"],
    "supernet-random": ["--proxy", "supernet", "--final-epochs", "0", "--sampler", "random"],
    # the default scratch proxy shortened to 3 epochs (a rung at 1) screens the budget; then the
    # finals: 15 finalists, 5 per log-cost tier by their residual above the screening's own
    # cost curve, train 2 epochs for real and decide the front (nas.search.finals)
    "finals": ["--proxy", "scratch", "--epochs", "3", "--final-epochs", "2", "--finalists", "15"],
    # the same with 1 real epoch (measured on finals' own screening: its folder copied, the
    # finals removed, resumed)
    "finals-1ep": ["--proxy", "scratch", "--epochs", "3", "--final-epochs", "1", "--finalists", "15"],
    "finals-random": ["--proxy", "scratch", "--epochs", "3", "--final-epochs", "2", "--finalists", "15",
                      "--sampler", "random"],
    # the one-shot supernet (staged: the screen, then the full score of the promoted) screens the
    # budget, then the same finals as finals-1ep (measured on supernet's own screening: its folder
    # copied and resumed with the finals)
    "supernet-finals": ["--proxy", "supernet", "--final-epochs", "1", "--finalists", "15"],
}
#: Arms that take another arm's search and pick from its front by another rule
#: (``nas.picks.pick_tiers(by=...)``): name -> (the search's arm, the pick rule). Side by side
#: on one search, so the difference is the rule's alone.
PICK_ARMS: dict[str, tuple[str, str]] = {
    "default-value": ("default", "value"),
}
#: Arms that take another arm's search as if it had trained fewer finalists: name -> (the
#: search's arm, K). ``nas.search.finals.choose_finalists`` takes the top K/3 screening
#: residuals of each tier, so the finals of K are a subset of the search's finals: the front
#: is built from those real trainings alone, with no new search (``finalists_front``).
FINALIST_ARMS: dict[str, tuple[str, int]] = {
    "default-k9": ("default", 9),
}
#: Arms that take another arm's *screening* and train their own finals: name -> (the
#: search's arm, fidelity settings changed). The source's folder is copied, its finals
#: removed from the study, the settings changed in its config.json and the copy resumed, so
#: the two arms differ only in the finals (``derive_search``). The screening's share of the
#: source's time (its wall and CPU less its finals' trial seconds) is carried over.
DERIVED_ARMS: dict[str, tuple[str, dict]] = {
    "default-cost": ("default", {"finalists_by": "cost"}),
    # sharper finals in the same time: 9 finalists x 2 real epochs instead of 15 x 1
    "default-2ep-k9": ("default", {"final_epochs": 2, "finalists": 9}),
}
#: Arms measured by an earlier version of the project, kept in the table as they ran (their
#: options no longer reproduce them). "final-rung": the same 3-epoch screening with an
#: asynchronous last rung (the third promoted at epoch 3, from its 9th arrival on, trained
#: 1 epoch for real), replaced by the finals.
RETIRED_ARMS = {"final-rung": "asynchronous last rung, 1 epoch (replaced by the finals)"}

COLUMNS = [
    "arm", "budget", "search_seed", "run", "pick", "genotype", "mflops", "params", "seed", "epochs", "val_accuracy",
    "val_loss", "front_size", "front_mflops_min", "front_mflops_max", "search_cpu_seconds", "search_wall_seconds",
    "source", "job", "machine", "commit", "finished",
]


# ------------------------------------------------------------------------ the search


def _tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds (user + system) of ``root`` and every descendant alive now, by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return {pid: cpu[pid] for pid in tree if pid in cpu}


def run_command(command: list[str], log: Path) -> tuple[int, float, float]:
    """Run ``command``; (exit code, wall seconds, CPU seconds of its process tree).

    Two counts, the larger wins: the descendants polled from /proc every half second (Ray's
    workers, which their parents may never reap) and the kernel's count of every descendant
    that was waited for (a process that ends between two polls is in this one)."""
    seen: dict[int, float] = {}
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("a") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=FOLDER.parents[1])
        while process.poll() is None:
            seen.update(_tree_cpu(process.pid))
            time.sleep(0.5)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    waited = (after.ru_utime - reaped.ru_utime) + (after.ru_stime - reaped.ru_stime)
    return process.returncode, time.perf_counter() - start, max(sum(seen.values()), waited)


def search_folder(arm: str, budget: int, seed: int) -> Path:
    return RUNS / f"{arm}-b{budget}-s{seed}"


def ensure_search(arm: str, budget: int, seed: int) -> tuple[Path, dict]:
    """The arm's finished run folder (searched now if needed) and its timing record."""
    folder = search_folder(arm, budget, seed)
    record_path = folder.with_suffix(".timing.json")
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"cpu_seconds": 0.0, "wall_seconds": 0.0}
    if record.get("complete"):
        return folder, record
    RUNS.mkdir(parents=True, exist_ok=True)
    nas = [sys.executable, "-m", "nas"]
    if (folder / "config.json").is_file():
        command = nas + ["search", "--resume", str(folder), "--budget", str(budget)]
    else:
        command = nas + ["search", "--space", SPACE, "--budget", str(budget), "--seed", str(seed),
                         "--out", str(RUNS), "--name", folder.name, *ARMS[arm]]
    print(f"[{arm}] {shlex.join(command)}", flush=True)
    code, wall, cpu = run_command(command, folder.with_suffix(".log"))
    record = {"cpu_seconds": record["cpu_seconds"] + cpu, "wall_seconds": record["wall_seconds"] + wall,
              "command": shlex.join(command), "complete": code == 0}
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    if code != 0:
        raise SystemExit(f"[{arm}] the search exited {code}; see {folder.with_suffix('.log')}")
    return folder, record


def derive_search(arm: str, budget: int, seed: int) -> None:
    """Make ``arm``'s run folder from its source arm's (see :data:`DERIVED_ARMS`), unless it exists."""
    import shutil

    import optuna

    import nas
    from nas.runs.folder import read_config
    from nas.runs.storage import open_study
    from nas.runs.trial_attrs import FINAL_OF

    folder = search_folder(arm, budget, seed)
    if (folder / "config.json").is_file():
        return
    source_arm, changes = DERIVED_ARMS[arm]
    source, source_timing = ensure_search(source_arm, budget, seed)
    loaded = nas.load_run(str(source))
    finals_seconds = float(loaded.trials[loaded.trials.reason.str.startswith("final of trial")].duration_s.fillna(0).sum())
    at_once = max(1.0, (os.cpu_count() or 1) / float(loaded.config["resources"].get("cpus_per_trial") or 1))
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(".lock", "picks"))
    config = json.loads((folder / "config.json").read_text())
    config["fidelity"].update(changes)
    config["name"] = config["study_name"] = folder.name
    study = open_study(source, read_config(source))
    kept = optuna.create_study(directions=study.directions)
    for t in study.get_trials(deepcopy=False):
        if FINAL_OF not in t.user_attrs:
            kept.add_trial(t)
    (folder / "study.db").unlink()
    optuna.copy_study(from_study_name=kept.study_name, from_storage=kept._storage,
                      to_storage=f"sqlite:///{folder / 'study.db'}", to_study_name=folder.name)
    (folder / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    folder.with_suffix(".timing.json").write_text(json.dumps({
        "cpu_seconds": source_timing.get("cpu_seconds", 0.0) - finals_seconds,
        "wall_seconds": max(0.0, source_timing.get("wall_seconds", 0.0) - finals_seconds / at_once),
        "derived": f"the screening of {source_arm} ({source}), its finals removed: {finals_seconds:.0f} trial s",
    }, indent=1) + "\n")


# ------------------------------------------------------------------------ the picks


def finalists_front(loaded, finalists: int):
    """The run's front had it trained only ``finalists`` finalists: its full-fidelity trials
    restricted to the finals ``choose_finalists`` gives for K = ``finalists`` (a subset of the
    run's own, which must all be trained), and the front of those; (front, peers)."""
    from nas.runs.views import pareto_frame
    from nas.search.fidelity import FINAL_TIERS, Fidelity
    from nas.search.finals import choose_finalists, screened_trials

    fidelity = Fidelity.from_dict(loaded.config["fidelity"])
    trained = int(fidelity.finalists)
    if not fidelity.final_epochs or finalists > trained:
        raise SystemExit(f"{loaded.path}: {finalists} finalists asked of a run that trained "
                         f"{trained if fidelity.final_epochs else 0}")
    chosen = {s.arch for s in choose_finalists(screened_trials(loaded.study, fidelity.screening_epochs),
                                               finalists, FINAL_TIERS)}
    trials = loaded.trials
    full = loaded.full_fidelity
    missing = chosen - set(full["arch"])
    if missing:
        raise SystemExit(f"{loaded.path}: {len(missing)} of the {finalists} finalists have no real training")
    kept = trials[~trials.index.isin(full.index) | trials["arch"].isin(chosen)]
    return pareto_frame(kept, loaded.config), full[full["arch"].isin(chosen)]


def finalists_timing(run: Path, timing: dict, finalists: int) -> dict:
    """The search's timing had it trained only ``finalists`` finals: a projection, not a
    measurement. The dropped finals' trial seconds come off the CPU seconds (one thread each),
    and off the wall time divided by the trials that ran at once (this machine's cores over
    the run's CPUs per trial)."""
    import nas

    loaded = nas.load_run(str(run))
    _, kept = finalists_front(loaded, finalists)
    full = loaded.full_fidelity
    dropped = float(full[~full["arch"].isin(set(kept["arch"]))]["duration_s"].fillna(0).sum())
    at_once = max(1.0, (os.cpu_count() or 1) / float(loaded.config["resources"].get("cpus_per_trial") or 1))
    return {**timing, "cpu_seconds": timing.get("cpu_seconds", 0.0) - dropped,
            "wall_seconds": max(0.0, timing.get("wall_seconds", 0.0) - dropped / at_once),
            "projected": f"{finalists} of the run's finals: {dropped:.0f} trial seconds dropped"}


def picks_of(run: Path, by: str = "accuracy", finalists: int | None = None) -> tuple[list, "object"]:
    """The S/M/L picks of a run's front (as ``nas retrain --pick-by BY`` takes them) and the
    front; with ``finalists``, of the front of that many finals (:func:`finalists_front`)."""
    import nas
    from nas.picks import pick_tiers

    loaded = nas.load_run(str(run))
    front, peers = finalists_front(loaded, finalists) if finalists else (loaded.pareto, loaded.full_fidelity)
    if front.empty:
        raise SystemExit(f"{run}: the front is empty; nothing to pick")
    return pick_tiers(front, by=by, peers=peers if by == "value" else None), front


def quality_jobs(arm: str, run: Path, budget: int, search_seed: int, timing: dict, by: str = "accuracy",
                 finalists: int | None = None) -> list[dict]:
    picks, front = picks_of(run, by, finalists)
    from evaluators.cost import measure_cost

    jobs = []
    for pick in picks:
        cost = measure_cost(pick.arch, 1, 28, 10)
        for seed in SEEDS:
            jobs.append({
                "arm": arm, "budget": budget, "search_seed": search_seed, "run": str(run), "pick": pick.name,
                "genotype": pick.arch, "mflops": f"{cost.mflops:.4f}", "params": cost.params, "seed": seed,
                "front_size": len(front), "front_mflops_min": f"{front.mflops.min():.4f}",
                "front_mflops_max": f"{front.mflops.max():.4f}",
                "search_cpu_seconds": f"{timing.get('cpu_seconds', 0.0):.0f}",
                "search_wall_seconds": f"{timing.get('wall_seconds', 0.0):.0f}",
                "job": job_id(pick.arch, seed), "band": "", "role": f"pick:{arm}:{pick.name}",
            })
    return jobs


#: What makes a row of the table one: an arm's search (budget, search seed) and one training.
ROW_KEY = ("arm", "budget", "search_seed", "job", "epochs")


def _done(arm: str, budget, search_seed) -> set[tuple[str, int]]:
    """The (job, seed) pairs the table holds for this arm's search at this budget and seed."""
    return {(r["job"], int(r["seed"])) for r in read_table(QUALITY_CSV)
            if r["arm"] == arm and str(r["budget"]) == str(budget) and str(r["search_seed"]) == str(search_seed)}


def train_picks(jobs: list[dict], settings: Reference) -> int:
    """Train the picks' (genotype, seed) jobs not yet in the table; returns rows appended. A job
    the ground truth or another arm already trained under the same protocol (the same genotype,
    seed and epochs: the training is deterministic) takes that row instead."""
    truth = {(r["job"], int(r["epochs"])): r for r in read_table(TABLE_CSV)}
    earlier = {(r["job"], int(r["epochs"])): r for r in read_table(QUALITY_CSV) if r.get("source") == "trained"}
    loaded = {"data": None}

    def done(job: dict) -> bool:
        return (job["job"], int(job["seed"])) in _done(job["arm"], job["budget"], job["search_seed"])

    def train(job: dict) -> bool:
        known = truth.get((job["job"], settings.epochs))
        again = earlier.get((job["job"], settings.epochs))
        if known is not None:
            row, source = known, "ground truth row"
        elif again is not None:
            row, source = again, f"row of arm {again['arm']}"
        else:
            if loaded["data"] is None:
                loaded["data"] = load_reference_data()
            print(f"[{job['arm']}] {job['pick']} seed {job['seed']} {float(job['mflops']):.2f} MFLOPs: "
                  f"{job['genotype']}", flush=True)
            row, source = train_job(job, settings, loaded["data"]), "trained"
        out = {**job, "epochs": settings.epochs, "val_accuracy": row["val_accuracy"], "val_loss": row["val_loss"],
               "source": source, "machine": machine(), "commit": commit_id(),
               "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if not append_row(out, QUALITY_CSV, COLUMNS, key=ROW_KEY):
            return False
        print(f"[{job['arm']}] {job['pick']} seed {job['seed']}: {float(out['val_accuracy']):.2%} ({source})", flush=True)
        return True

    return work_through(jobs, done, train, settings.epochs)


def _train_worker(payload: tuple[list[dict], int]) -> int:
    jobs, epochs = payload
    return train_picks(jobs, Reference(epochs=epochs))


def run(args) -> None:
    search_arm, by = PICK_ARMS.get(args.arm, (args.arm, args.pick_by))
    search_arm, finalists = FINALIST_ARMS.get(args.arm, (search_arm, None))
    if args.run:
        import nas

        run_folder = Path(args.run)
        run = nas.load_run(args.run)
        budget = int(run.config["budget"])
        timing_path = run_folder.with_suffix(".timing.json")
        if timing_path.is_file():  # searched by this benchmark: its process-tree record
            timing = json.loads(timing_path.read_text())
        else:  # a finished run records no process-tree CPU: its trials' own seconds (one thread each)
            timing = {"cpu_seconds": float(run.trials.duration_s.fillna(0).sum()), "wall_seconds": 0.0}
    else:
        if search_arm not in ARMS and search_arm not in DERIVED_ARMS:
            raise SystemExit(f"--arm {args.arm!r}: one of {', '.join([*ARMS, *PICK_ARMS, *FINALIST_ARMS, *DERIVED_ARMS])}, "
                             "or give --run FOLDER")
        if search_arm in DERIVED_ARMS:
            derive_search(search_arm, args.budget, args.seed)
        run_folder, timing = ensure_search(search_arm, args.budget, args.seed)
        budget = args.budget
    if finalists:  # the search's time as if it had trained only these finals
        timing = finalists_timing(run_folder, timing, finalists)
    jobs = quality_jobs(args.arm, run_folder, budget, args.seed, timing, by, finalists)
    if args.workers <= 1:
        total = train_picks(jobs, Reference(epochs=args.epochs))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            total = sum(pool.map(_train_worker, [(jobs, args.epochs)] * args.workers))
    print(f"[{args.arm}] {total} rows appended to {QUALITY_CSV.relative_to(FOLDER.parents[1])}")


# ------------------------------------------------------------------------ the report


def random_draw_curve(epochs: int = 3):
    """The curve fitted on the ground truth's band genotypes (seed means) and the table's rows."""
    rows = [r for r in read_table(TABLE_CSV) if int(r["epochs"]) == epochs]
    seeds: dict[str, list[float]] = {}
    mflops: dict[str, float] = {}
    for r in rows:
        if r["band"]:
            seeds.setdefault(r["genotype"], []).append(float(r["val_accuracy"]))
            mflops[r["genotype"]] = float(r["mflops"])
    return fit({g: sum(v) / len(v) for g, v in seeds.items()}, mflops), rows


def arm_summary(rows: list[dict], curve, baseline_accuracy: float | None) -> dict:
    picks: dict[str, dict] = {}
    for r in rows:
        p = picks.setdefault(r["pick"], {"mflops": float(r["mflops"]), "genotype": r["genotype"], "seeds": {}})
        p["seeds"][int(r["seed"])] = float(r["val_accuracy"])
    residuals = [curve.residual(float(r["val_accuracy"]), float(r["mflops"])) for r in rows]
    for p in picks.values():
        p["accuracy"] = sum(p["seeds"].values()) / len(p["seeds"])
        p["residual"] = curve.residual(p["accuracy"], p["mflops"])
    ordered = sorted(picks.items(), key=lambda kv: kv[1]["mflops"])
    costs = [p["mflops"] for _, p in ordered]
    spacing = min((b / a for a, b in zip(costs, costs[1:])), default=float("nan"))
    beats = [name for name, p in ordered if baseline_accuracy is not None and p["mflops"] <= BASELINE_MFLOPS_LIMIT
             and 100 * (p["accuracy"] - baseline_accuracy) >= BASELINE_MARGIN]
    first = rows[0]
    return {
        "picks": ordered,
        "mean": sum(residuals) / len(residuals),
        "interval": bootstrap_mean(residuals),
        "lowest": min(p["residual"] for _, p in ordered),
        "span": float(first["front_mflops_max"]) / float(first["front_mflops_min"]),
        "spacing": spacing,
        "beats_baseline": beats,
        "cpu": float(first["search_cpu_seconds"] or 0),
        "wall": float(first["search_wall_seconds"] or 0),
        "budget": first["budget"],
        "rows": len(rows),
    }


def report(args) -> None:
    print_machine()
    curve, truth_rows = random_draw_curve(args.epochs)
    print(f"random-draw curve: {curve.describe()}")
    print("  at " + ", ".join(f"{m:g} MFLOPs {100 * curve(m):.2f} %" for m in (2, 4, 8, 16)))
    base = [float(r["val_accuracy"]) for r in truth_rows if r["role"] == BASELINE]
    base_mflops = next((float(r["mflops"]) for r in truth_rows if r["role"] == BASELINE), None)
    baseline = sum(base) / len(base) if base else None
    if baseline is not None:
        print(f"MobileNetV2-3x3 (the hand design): {100 * baseline:.2f} % at {base_mflops:.2f} MFLOPs, "
              f"residual {curve.residual(baseline, base_mflops):+.2f} points ({len(base)} seed(s))")
    by_arm: dict[tuple[str, int, int], list[dict]] = {}  # one search per (arm, budget, search seed)
    for r in read_table(QUALITY_CSV):
        if int(r["epochs"]) == args.epochs:
            by_arm.setdefault((r["arm"], int(r["budget"]), int(r["search_seed"] or 0)), []).append(r)
    print()
    print("| arm | budget | picks (MFLOPs: residual) | mean residual [90 % CI] | lowest pick | front span | "
          "S/M/L spacing | beats MobileNetV2 by 0.5 at <= 6.3 MFLOPs | search CPU s | search wall s |")
    print("|---|---:|---|---:|---:|---:|---:|---|---:|---:|")
    details = []
    for (arm, budget, search_seed), rows in sorted(by_arm.items()):
        s = arm_summary(rows, curve, baseline)
        if search_seed:  # a second search of the arm: its run-to-run spread
            arm = f"{arm} (search seed {search_seed})"
        picks = ", ".join(f"{name} {p['mflops']:.2f}: {p['residual']:+.2f}" for name, p in s["picks"])
        print(f"| {arm} | {s['budget']} | {picks} | {s['mean']:+.2f} [{s['interval'][0]:+.2f}, {s['interval'][1]:+.2f}] "
              f"({s['rows']} rows) | {s['lowest']:+.2f} | {s['span']:.1f}x | "
              f"{'-' if s['spacing'] != s['spacing'] else format(s['spacing'], '.2f') + 'x'} | "
              f"{', '.join(s['beats_baseline']) or 'no'} | {s['cpu']:.0f} | {s['wall']:.0f} |")
        for name, p in s["picks"]:
            accs = ", ".join(f"seed {k}: {100 * v:.2f} %" for k, v in sorted(p["seeds"].items()))
            details.append(f"- {arm} (budget {budget}) {name}: {p['mflops']:.2f} MFLOPs, {accs}, mean {100 * p['accuracy']:.2f} %, "
                           f"residual {p['residual']:+.2f}; `{p['genotype']}`")
    searched_again = sorted({(arm, budget) for arm, budget, seed in by_arm if seed})
    if searched_again:
        print("\nOver every search of an arm (its picks' rows pooled; the interval resamples rows, not searches):")
        for arm, budget in searched_again:
            keys = [k for k in sorted(by_arm) if k[:2] == (arm, budget)]
            residuals = [curve.residual(float(r["val_accuracy"]), float(r["mflops"])) for k in keys for r in by_arm[k]]
            means = ", ".join(f"seed {k[2]} {arm_summary(by_arm[k], curve, baseline)['mean']:+.2f}" for k in keys)
            low, high = bootstrap_mean(residuals)
            print(f"- {arm} (budget {budget}), {len(keys)} searches ({means}): mean residual "
                  f"{sum(residuals) / len(residuals):+.2f} [{low:+.2f}, {high:+.2f}] ({len(residuals)} rows)")
    retired = sorted({arm for arm, _, _ in by_arm if arm in RETIRED_ARMS})
    for arm in retired:
        print(f"\n{arm}: {RETIRED_ARMS[arm]}; measured by an earlier version, not reproducible with today's options")
    print()
    print("\n".join(details))


def arms(args) -> None:
    for name, options in ARMS.items():
        print(f"{name:16s} nas search --space {SPACE} --budget B --seed S {shlex.join(options)}")
    for name, (search_arm, by) in PICK_ARMS.items():
        print(f"{name:16s} the search of {search_arm}, picked with nas retrain --pick-by {by}")
    for name, (search_arm, changes) in DERIVED_ARMS.items():
        print(f"{name:16s} the screening of {search_arm}, its finals trained again with {changes}")
    for name, (search_arm, k) in FINALIST_ARMS.items():
        print(f"{name:16s} the search of {search_arm}, its front from {k} of its finals (a subset; time projected)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="search (or take --run) and train the picks, appending rows")
    p.add_argument("--arm", required=True, help=f"one of {', '.join([*ARMS, *PICK_ARMS, *FINALIST_ARMS, *DERIVED_ARMS])}; "
                   "with --run, any name for that folder")
    p.add_argument("--run", help="an existing run folder instead of a search")
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--seed", type=int, default=0, help="the search's seed")
    p.add_argument("--epochs", type=int, default=3, help="the ground truth protocol's epochs")
    p.add_argument("--workers", type=int, default=1, help="processes training the picks, one thread each")
    p.add_argument("--pick-by", choices=("accuracy", "value"), default="accuracy",
                   help="the tiers' pick rule (nas retrain --pick-by); the arms of PICK_ARMS set their own")
    p.set_defaults(func=run)
    p = sub.add_parser("report", help="the table of every arm in the CSV")
    p.add_argument("--epochs", type=int, default=3)
    p.set_defaults(func=report)
    p = sub.add_parser("arms", help="what each arm runs")
    p.set_defaults(func=arms)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
