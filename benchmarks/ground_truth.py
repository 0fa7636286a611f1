"""The ground truth every accuracy estimate is judged by: stand-alone trainings of spread genotypes.

Two steps, both resumable and both deterministic:

``select``
    Chooses the genotypes and writes ``ground_truth/mdconv-genotypes.csv`` (committed), one row
    per (genotype, seed) job, in the order the jobs should run. The procedure, seeded and
    fixed (see :func:`draw_band`):

    - 4 cost bands around 2, 4, 8 and 16 MFLOPs at 28x28 (fvcore multiply-adds); a genotype
      belongs to a band when its MFLOPs are within +-10 % of the centre.
    - Per band, genotypes are drawn *uniformly from the space conditioned on the band*. Plain
      uniform draws of ``mdconv`` almost never reach the low bands, so draws come from a
      tilted proposal: every cost-setting decision (stage depth, width, expansion, block
      type, stem and head channels) favours its cheaper options with weight
      ``exp(-tilt * rank / (n - 1))``; every other decision (kernels, partition, padding,
      SE, activation, dilation) stays uniform. Each draw carries its importance weight
      ``p_uniform / q_tilted``, and the band's 16 genotypes are drawn from the accepted pool
      with those weights (without replacement), which undoes the tilt: what is left is the
      uniform distribution restricted to the band, fair to every choice.
    - Extra rows: the reference run's front and the hand-designed baselines
      (``mobilenetv2-3x3``, ``mixnet-s``, both at 28x28x1).
    - Seeds: every band genotype with seeds 0 and 1 (the truth is their mean; the two give the
      seed-to-seed ceiling of any predictor); the extra rows with seed 0; 2 genotypes of each
      band with seed 2 too (the noise floor). The table first held 8 genotypes per band (all
      with seed 0, the cheapest band's with seed 1 too); it grew to 16 with the same draw,
      whose first 8 per band are those, so every earlier row stays valid.

``run``
    Trains the jobs not yet in ``ground_truth/mdconv-fashion-mnist.csv`` (committed) and
    appends one row per finished job. The reference training is the user's real setting:
    28x28, the whole TRAIN split minus a fixed stratified validation part of 10,000 images
    (seed 0; the test split is never read), the project's retrain recipe
    (``nas.retrain.retrain_recipe``: SGD-Nesterov, warm-up + cosine, label smoothing, EMA)
    with ``--epochs`` epochs and its schedule compressed to them, one thread per process.

    Several processes (``--workers N``, or the command started on several machines sharing
    the folder) fill the table at once: a job is claimed by creating its claim file
    exclusively, rows are appended under a file lock, and a claim whose process has died is
    taken over. A killed job resumes from its per-epoch checkpoint in ``ground_truth/.work/``
    (never committed); a finished job is never trained twice.

    python benchmarks/ground_truth.py select
    python benchmarks/ground_truth.py run --workers 2          # in the background, hours
    python benchmarks/ground_truth.py status
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import fcntl
import hashlib
import math
import os
import platform
import random
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_model  # noqa: E402

FOLDER = Path(__file__).resolve().parent / "ground_truth"
GENOTYPES_CSV = FOLDER / "mdconv-genotypes.csv"
TABLE_CSV = FOLDER / "mdconv-fashion-mnist.csv"
WORK = FOLDER / ".work"  # claims and checkpoints: local, never committed

SPACE = "mdconv"
DATASET = "fashion-mnist"
RESOLUTION = 28
VAL_SIZE = 10_000
DEFAULT_EPOCHS = 3

BANDS = (2.0, 4.0, 8.0, 16.0)
TOLERANCE = 0.10
PER_BAND = 16
#: The band's first genotypes, before the ground truth grew to PER_BAND: their rows came first.
FIRST_PER_BAND = 8
POOL = 40  # accepted draws per band before the weighted choice of PER_BAND
MAX_DRAWS = 2500
SELECT_SEED = 2026
#: How strongly the proposal favours cheap options per band; 0 is the plain uniform draw.
#: Only changes how fast the pool fills: the importance weights undo it.
TILT = {2.0: 6.0, 4.0: 2.5, 8.0: 0.7, 16.0: 0.0}
NOISE_GENOTYPES_PER_BAND = 2
NOISE_SEEDS = (1, 2)
CEILING_SEED = 1
#: Every band genotype is trained with these seeds; the truth is their mean.
BAND_SEEDS = (0, 1)
BASELINES = ("mobilenetv2-3x3", "mixnet-s")
FRONT_RUN = ROOT / "results" / "reference"

JOB_COLUMNS = ["job", "genotype", "band", "role", "seed", "mflops", "params", "draw_weight"]
TABLE_COLUMNS = [
    "job", "genotype", "band", "role", "mflops", "params", "seed", "epochs", "resolution",
    "train_images", "val_images", "val_accuracy", "val_loss", "train_loss", "seconds", "cpu_seconds",
    "threads", "images_per_s", "machine", "commit", "torch", "finished",
]


# ------------------------------------------------------------------------ selection


def _cost_rank(options) -> list[int]:
    """Each option's place in the space's cost order (0: the cheapest)."""
    from nas.space import cost_key

    order = sorted(range(len(options)), key=lambda i: cost_key(options[i]))
    ranks = [0] * len(options)
    for rank, i in enumerate(order):
        ranks[i] = rank
    return ranks


def tilted_draw(space, tilt: float, rng: random.Random):
    """One architecture from the tilted proposal, with its log importance weight log(p/q): the
    decisions that set the cost most (``nas.space.COST_SETTING``) favour their cheaper options."""
    from nas.space import COST_SETTING, decision_kind

    log_weight = 0.0

    def choose(name: str, options):
        nonlocal log_weight
        n = len(options)
        if tilt > 0 and decision_kind(name) in COST_SETTING:
            ranks = _cost_rank(options)
            q = [math.exp(-tilt * r / (n - 1)) for r in ranks]
            total = sum(q)
            q = [x / total for x in q]
        else:
            q = [1.0 / n] * n
        k = rng.choices(range(n), weights=q)[0]
        log_weight += math.log(1.0 / n) - math.log(q[k])
        return options[k]

    return space.draw(choose), log_weight


def draw_band(space, centre: float, seed: int, log=print) -> list[dict]:
    """PER_BAND genotypes, uniform over the space restricted to ``centre`` +- TOLERANCE MFLOPs."""
    from evaluators.cost import measure_cost

    rng = random.Random(f"{seed}-{centre}")
    lo, hi = centre * (1 - TOLERANCE), centre * (1 + TOLERANCE)
    pool: dict[str, tuple[float, float, int]] = {}
    draws = 0
    while len(pool) < POOL and draws < MAX_DRAWS:
        arch, log_weight = tilted_draw(space, TILT[centre], rng)
        draws += 1
        text = str(arch)
        if text in pool:
            continue
        cost = measure_cost(text, space.input_channels, space.input_size, 10)
        if lo <= cost.mflops <= hi:
            pool[text] = (cost.mflops, log_weight, cost.params)
    log(f"  band {centre:g} MFLOPs: {len(pool)} accepted of {draws} draws (tilt {TILT[centre]})")
    if len(pool) < PER_BAND:
        raise SystemExit(f"band {centre:g}: only {len(pool)} genotypes within +-{TOLERANCE:.0%} after {draws} draws")
    # weighted sampling without replacement (Efraimidis-Spirakis keys u^(1/w))
    top = max(lw for _, lw, _ in pool.values())
    keys = []
    for text, (mflops, lw, params) in sorted(pool.items()):
        w = math.exp(lw - top)
        keys.append((rng.random() ** (1.0 / w) if w > 0 else 0.0, text, mflops, params, w))
    keys.sort(reverse=True)
    return [
        {"genotype": t, "band": f"{centre:g}", "mflops": f"{m:.4f}", "params": p, "draw_weight": f"{w:.4g}"}
        for _, t, m, p, w in keys[:PER_BAND]
    ]


def extra_genotypes() -> list[dict]:
    """The reference run's front and the hand-designed baselines, at 28x28x1."""
    import nas
    from evaluators.cost import measure_cost

    rows = []
    if (FRONT_RUN / "study.db").is_file():
        for arch in nas.load_run(str(FRONT_RUN)).pareto.sort_values("mflops").arch:
            rows.append({"genotype": str(arch), "band": "", "role": "front"})
    for name in BASELINES:
        rows.append({"genotype": str(nas.load_space(name).sample(0)), "band": "", "role": f"baseline:{name}"})
    for row in rows:
        cost = measure_cost(row["genotype"], 1, RESOLUTION, 10)
        row.update(mflops=f"{cost.mflops:.4f}", params=cost.params, draw_weight="")
    return rows


def job_id(genotype: str, seed: int) -> str:
    return hashlib.sha1(f"{genotype}|{seed}".encode()).hexdigest()[:12]


def select(args) -> None:
    import nas

    space = nas.load_space(SPACE)
    bands = {centre: draw_band(space, centre, args.seed) for centre in BANDS}
    jobs: list[dict] = []

    def add(row: dict, role: str, seed: int) -> None:
        jobs.append({**row, "role": row.get("role") or role, "seed": seed, "job": job_id(row["genotype"], seed)})

    # Order = run order, so that a table stopped at any point is as useful as it can be.
    # The first part is the table as it was before it grew (its rows stay valid): round-robin
    # over the bands (dearest first), each of the first FIRST_PER_BAND genotypes once and, in
    # the ceiling band, twice; then the front and the baselines; then the noise seeds.
    ceiling = min(BANDS)
    for k in range(FIRST_PER_BAND):
        for centre in sorted(BANDS, reverse=True):
            add(bands[centre][k], "band", 0)
            if centre == ceiling:
                add(bands[centre][k], "band", CEILING_SEED)
    for row in extra_genotypes():
        add(row, row["role"], 0)
    # The growth: every band genotype with every BAND_SEEDS seed (the second seed of the first
    # genotypes first, then the new genotypes, both seeds together), round-robin over the
    # bands, cheapest first so that a stopped table has the most genotypes per CPU hour.
    # The noise seeds not yet covered come last.
    for k in range(PER_BAND):
        for centre in sorted(BANDS):
            for seed in BAND_SEEDS:
                if not any(j["job"] == job_id(bands[centre][k]["genotype"], seed) for j in jobs):
                    add(bands[centre][k], "band", seed)
    for centre in BANDS:
        for row in bands[centre][:NOISE_GENOTYPES_PER_BAND]:
            for seed in NOISE_SEEDS:
                if not any(j["job"] == job_id(row["genotype"], seed) for j in jobs):
                    add(row, "band", seed)
    FOLDER.mkdir(parents=True, exist_ok=True)
    atomic_csv(GENOTYPES_CSV, JOB_COLUMNS, jobs)
    print(f"{GENOTYPES_CSV.relative_to(ROOT)}: {len(jobs)} jobs, "
          f"{len({j['genotype'] for j in jobs})} genotypes")


# ------------------------------------------------------------------------ the table


def atomic_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Write a whole CSV file atomically (a reader never sees half of it)."""
    import io

    from nas.atomic import write_atomic

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    write_atomic(path, buffer.getvalue())


def read_jobs() -> list[dict]:
    if not GENOTYPES_CSV.is_file():
        raise SystemExit(f"{GENOTYPES_CSV}: missing; run `python benchmarks/ground_truth.py select` first")
    with GENOTYPES_CSV.open(newline="") as fh:
        return list(csv.DictReader(fh))


def read_table(path: Path = TABLE_CSV) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [row for row in csv.DictReader(fh) if row.get("job")]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing), across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def append_row(row: dict, path: Path = TABLE_CSV, columns: list[str] = TABLE_COLUMNS,
               key: tuple[str, ...] = ("job", "epochs")) -> bool:
    """Append ``row`` unless a row with the same ``key`` fields is there; False if it was.
    Safe across processes (a file lock around the check and the append)."""
    def same(r: dict) -> bool:
        return all(str(r.get(k, "")) == str(row.get(k, "")) for k in key)

    with locked(path.with_name(path.name + ".lock")):
        if any(same(r) for r in read_table(path)):
            return False
        new = not path.is_file() or path.stat().st_size == 0
        with path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in columns})
            fh.flush()
            os.fsync(fh.fileno())
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(job: str, work: Path = WORK) -> bool:
    """Claim ``job`` for this process: create its claim file exclusively; take over a claim
    whose process (on this host) is gone. Claims on other hosts are respected."""
    path = work / "claims" / f"{job}.claim"
    path.parent.mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()} {os.getpid()}\n"
    with locked(work / "claims.lock"):
        if path.exists():
            try:
                host, pid = path.read_text().split()
                if host != socket.gethostname() or _alive(int(pid)):
                    return False
            except ValueError:
                pass  # a claim torn by a crash: take it over
        path.write_text(me)
        return True


def release(job: str, work: Path = WORK) -> None:
    (work / "claims" / f"{job}.claim").unlink(missing_ok=True)


def commit_id() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=10", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "nas", "evaluators"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> str:
    return f"{cpu_model()} x{os.cpu_count()} {platform.machine()}"


# ------------------------------------------------------------------------ training


@dataclass(frozen=True)
class Reference:
    """The reference training's settings (what the ``epochs`` etc. columns record)."""

    epochs: int = DEFAULT_EPOCHS
    threads: int = 1
    device: str = "cpu"


def load_reference_data():
    """(dataset, train, val): the TRAIN split minus the judge's part, which it validates on
    (nas.data.split.split_judge: VAL_SIZE images, no search ever reads them)."""
    from nas.data import load_dataset
    from nas.data.split import split_judge

    dataset = load_dataset(DATASET)
    train, val = split_judge(dataset)
    assert len(val) == VAL_SIZE, (len(val), VAL_SIZE)
    return dataset, train, val


def train_job(job: dict, settings: Reference, data, work: Path = WORK) -> dict:
    """Train one (genotype, seed) stand-alone; the table row."""
    import torch

    import nas
    from nas.retrain import RetrainOptions, retrain_recipe
    from nas.training import Trainer

    dataset, train, val = data
    seed = int(job["seed"])
    recipe = retrain_recipe(dataset.name, RetrainOptions(epochs=settings.epochs))
    torch.manual_seed(seed)
    model = nas.build(job["genotype"], num_classes=dataset.num_classes, in_chans=dataset.in_chans)
    checkpoint = work / "checkpoints" / f"{job['job']}-e{settings.epochs}.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model, train, val, recipe, settings.device, seed, threads=settings.threads,
                      checkpoint=checkpoint, eval_epochs=[settings.epochs])
    wall0, cpu0 = time.perf_counter(), time.process_time()
    last = None
    for last in trainer.epochs():
        print(f"    [{job['job']}] epoch {last.epoch}/{last.epochs} loss {last.train_loss:.4f} "
              f"{last.images_per_s:,.0f} img/s", flush=True)
    if last is None:  # every epoch was in the checkpoint: only the evaluation is left
        from nas.training import evaluate

        ev = evaluate(model, val, trainer.device, batch_size=recipe.eval_batch_size)
        last_loss, val_acc, val_loss = trainer.history[-1].train_loss, ev.accuracy, ev.loss
    else:
        last_loss, val_acc, val_loss = last.train_loss, last.val_accuracy, last.val_loss
    seconds = sum(r.seconds for r in trainer.history)
    train_images = len(train)
    return {
        **{k: job[k] for k in ("job", "genotype", "band", "role", "mflops", "params", "seed")},
        "epochs": settings.epochs,
        "resolution": RESOLUTION,
        "train_images": train_images,
        "val_images": len(val),
        "val_accuracy": f"{val_acc:.6f}",
        "val_loss": f"{val_loss:.6f}",
        "train_loss": f"{last_loss:.6f}",
        "seconds": f"{seconds:.1f}",
        "cpu_seconds": f"{time.process_time() - cpu0:.1f}",
        "threads": settings.threads,
        "images_per_s": f"{settings.epochs * trainer.setup.steps_per_epoch * trainer.setup.batch_size / max(seconds, 1e-9):.0f}",
        "machine": machine(),
        "commit": commit_id(),
        "torch": torch.__version__,
        "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "_wall": time.perf_counter() - wall0,
    }


def _key(row: dict) -> tuple[str, int]:
    return row["job"], int(row["epochs"])


def pending(jobs: list[dict], epochs: int, table: Path = TABLE_CSV) -> list[dict]:
    """The jobs without a row at ``epochs`` epochs, in order."""
    done = {_key(r) for r in read_table(table)}
    return [j for j in jobs if (j["job"], epochs) not in done]


def work_through(jobs: list[dict], done: Callable[[dict], bool], train: Callable[[dict], bool], epochs: int,
                 work: Path = WORK, limit: int | None = None) -> int:
    """The claim loop every table shares: for each job in order that is not ``done`` and that
    this process can claim, ``train(job)`` (True when it appended a row), then drop the job's
    checkpoint and release the claim, whatever happened. ``done`` is asked again once the job
    is claimed: another process may have finished it meanwhile. Returns rows appended (stops
    at ``limit``)."""
    appended = 0
    for job in jobs:
        if limit is not None and appended >= limit:
            break
        if done(job) or not claim(job["job"], work):
            continue
        try:
            if not done(job):
                appended += bool(train(job))
                (work / "checkpoints" / f"{job['job']}-e{epochs}.pt").unlink(missing_ok=True)
        finally:
            release(job["job"], work)
    return appended


def worker(settings: Reference, limit: int | None = None, table: Path = TABLE_CSV, work: Path = WORK,
           jobs: list[dict] | None = None, data=None) -> int:
    """Train pending jobs in order until none is left (or ``limit`` done); returns rows appended.

    ``jobs`` and ``data`` (dataset, train, val) default to the job list and the reference
    data; the tests give small ones."""
    jobs = read_jobs() if jobs is None else jobs
    loaded = {"data": data}

    def done(job: dict) -> bool:
        return (job["job"], settings.epochs) in {_key(r) for r in read_table(table)}

    def train(job: dict) -> bool:
        if loaded["data"] is None:
            import nas

            loaded["data"] = load_reference_data()
            print(f"[{os.getpid()}] nas from {Path(nas.__file__).parent}, commit {commit_id()}", flush=True)
        print(f"[{os.getpid()}] {job['role']} band {job['band'] or '-'} seed {job['seed']} "
              f"{float(job['mflops']):.2f} MFLOPs: {job['genotype']}", flush=True)
        row = train_job(job, settings, loaded["data"], work)
        if not append_row(row, table):
            return False
        print(f"[{os.getpid()}] done {job['job']}: {float(row['val_accuracy']):.2%} in {row['seconds']} s", flush=True)
        return True

    return work_through(jobs, done, train, settings.epochs, work, limit)


def _worker_main(epochs: int) -> int:
    return worker(Reference(epochs=epochs))


def run(args) -> None:
    if args.workers <= 1:
        worker(Reference(epochs=args.epochs), limit=args.limit)
        return
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
        total = sum(pool.map(_worker_main, [args.epochs] * args.workers))
    print(f"{total} rows appended")


def status(args) -> None:
    jobs = read_jobs()
    rows = read_table()
    left = pending(jobs, args.epochs)
    print(f"{len(rows)} rows in {TABLE_CSV.relative_to(ROOT)}; {len(left)} of {len(jobs)} jobs pending")
    for j in left:
        claim = WORK / "claims" / f"{j['job']}.claim"
        running = f"  (claimed by {claim.read_text().strip()})" if claim.exists() else ""
        where = f"band {j['band']:>2}" if j["band"] else j["role"]
        print(f"  {j['job']}  {where:<24} seed {j['seed']}  {float(j['mflops']):6.2f} MFLOPs{running}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("select", help="choose the genotypes (writes the job list)")
    p.add_argument("--seed", type=int, default=SELECT_SEED)
    p.set_defaults(func=select)
    p = sub.add_parser("run", help="train the pending jobs, appending rows to the table")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.add_argument("--workers", type=int, default=1, help="processes, one thread each (one per core)")
    p.add_argument("--limit", type=int, help="stop after this many rows (one worker)")
    p.set_defaults(func=run)
    p = sub.add_parser("status", help="rows done and jobs pending")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.set_defaults(func=status)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
