"""Full retraining of picked architectures, scored once on the official test split.

    picks = nas.picks.pick_tiers(nas.load_run(run).pareto)          # S/M/L
    for pick in picks:
        retrain_pick(pick, Path(run) / "picks" / pick.name, dataset, RetrainOptions(epochs=30))

Each pick gets a folder::

    genotype.txt          the genotype (one line)
    metrics.json          test accuracy/loss, MFLOPs, params, CPU latency, recipe, ... (see below)
    curve.csv, curve.png  the training curve: train loss (label-smoothed) and lr per epoch
    weights.safetensors   final weights (the EMA weights when EMA is on), SHA-256 in metrics.json
    checkpoint.pt         only while training: resume point (deleted when the pick is done)

Training uses :mod:`nas.training` (the same loop as the search's proxy training) on the
FULL training split with no validation split; the test split is touched exactly once,
after the last epoch. The default recipe is :func:`retrain_recipe`.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from nas.atomic import atomic_target, write_atomic
from nas.errors import NasInputError
from nas.genotype import Arch
from nas.picks import Pick, describe_bound

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.json"
GENOTYPE_FILE = "genotype.txt"
CURVE_CSV = "curve.csv"
CURVE_PNG = "curve.png"
METRICS_FORMAT = "nas.pick/1"

#: Retrain defaults on top of ``nas.training.recipe_for(dataset)``: more epochs than a
#: proxy, and an EMA of the weights (evaluated and saved).
DEFAULT_EPOCHS = 30
DEFAULT_EMA_DECAY = 0.999


@dataclass(frozen=True)
class RetrainOptions:
    epochs: int = DEFAULT_EPOCHS
    batch_size: int | None = None  # None: the recipe's (128)
    lr: float | None = None  # per 256 images; None: the recipe's (0.2)
    ema: bool = True
    device: str = "auto"
    seed: int = 0
    threads: int | None = None
    force: bool = False  # retrain even if the pick folder is complete
    latency_threads: int = 1
    init: str | None = None  # a trained supernet folder: start from the pick's inherited weights


def retrain_recipe(dataset_name: str, options: RetrainOptions):
    """The full-retrain recipe: ``recipe_for(dataset)`` (SGD-Nesterov, lr 0.2 per 256 images,
    linear warmup 1 epoch then cosine to 0, weight decay 5e-5 on weights only, label
    smoothing 0.1, random crop with zero padding of image/8 px, horizontal flips except for
    digits) with ``options.epochs`` epochs, EMA of the weights (decay 0.999) unless turned
    off, and the batch size / lr overrides."""
    from nas.training import recipe_for

    changes: dict[str, Any] = {"epochs": int(options.epochs)}
    if options.batch_size is not None:
        changes["batch_size"] = int(options.batch_size)
    if options.lr is not None:
        changes["lr"] = float(options.lr)
    changes["ema_decay"] = DEFAULT_EMA_DECAY if options.ema else None
    return recipe_for(dataset_name, **changes)


def read_metrics(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NasInputError(f"{path}: unreadable pick metrics: {exc}") from None
    return data if isinstance(data, dict) else None


def is_complete(folder: Path) -> bool:
    m = read_metrics(folder)
    return bool(m and m.get("complete") and (Path(folder) / str(m.get("weights_file", ""))).is_file())


def prepare_folder(folder: Path, arch: str, force: bool) -> None:
    """Create the pick folder; refuse one that holds another architecture."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasInputError(f"{folder}: cannot create pick folder: {exc.strerror or exc}") from None
    gfile = folder / GENOTYPE_FILE
    if gfile.is_file():
        old = gfile.read_text(encoding="utf-8").strip()
        try:
            same = str(Arch.parse(old)) == arch
        except NasInputError:
            same = False
        if not same:
            if not force:
                raise NasInputError(
                    f"{folder}: holds another architecture ({old[:60]}...); use --name for a new pick "
                    f"name, or --force to replace it"
                )
            for name in (CHECKPOINT_FILE, METRICS_FILE, CURVE_CSV, CURVE_PNG, "weights.safetensors", "weights.pt"):
                (folder / name).unlink(missing_ok=True)
    elif force:
        (folder / CHECKPOINT_FILE).unlink(missing_ok=True)
    gfile.write_text(arch + "\n", encoding="utf-8")


def retrain_pick(
    pick: Pick,
    folder: str | Path,
    dataset,
    options: RetrainOptions = RetrainOptions(),
    log: Callable[[str], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``pick`` on ``dataset.train`` (full), test once, write the pick folder.

    Resumes from ``<folder>/checkpoint.pt`` when present. A complete folder (same arch)
    is left as it is unless ``options.force``. Returns the metrics dict.
    """
    log = log or _print
    folder = Path(folder)
    arch = str(Arch.parse(pick.arch))
    prepare_folder(folder, arch, options.force)
    if not options.force and is_complete(folder):
        metrics = read_metrics(folder)
        log(f"[{pick.name}] already retrained ({metrics.get('epochs')} epochs, test accuracy "
            f"{_pct(metrics.get('test_accuracy'))}); --force to retrain")
        return metrics
    if options.force:
        (folder / METRICS_FILE).unlink(missing_ok=True)

    recipe = retrain_recipe(dataset.name, options)
    model, trainer, train_s = _train(pick, arch, folder, dataset, recipe, options, log)
    measured = _test_and_save(model, trainer, arch, folder, dataset, recipe, options)
    metrics = _metrics(pick, arch, dataset, recipe, options, trainer, train_s, measured)
    if extra:
        metrics.update(extra)
    _write_json(folder / METRICS_FILE, metrics)
    (folder / CHECKPOINT_FILE).unlink(missing_ok=True)  # done: the weights are the result, the checkpoint is not kept
    test, cost = measured["test"], measured["cost"]
    log(f"[{pick.name}] test accuracy {_pct(test.accuracy)}  {cost['mflops']:.3g} MFLOPs  "
        f"{_human(cost['params'])} params  {measured['latency']['median_ms']:.3g} ms CPU  -> {folder}")
    return metrics


def _train(pick: Pick, arch: str, folder: Path, dataset, recipe, options: RetrainOptions,
           log: Callable[[str], None]):
    """Build the seeded model and train it (resuming from the folder's checkpoint), writing
    ``curve.csv`` after every epoch. Returns (model, trainer, training seconds incl. resumed epochs)."""
    import torch

    import nas
    from nas.training import Trainer, TrainingDiverged

    torch.manual_seed(options.seed)  # the initial weights depend on the seed only
    model = nas.build(arch, num_classes=dataset.num_classes, in_chans=dataset.in_chans)
    if options.init is not None:
        model.load_state_dict(_inherited_state(options.init, arch, dataset))
    ckpt = folder / CHECKPOINT_FILE
    resumed = ckpt.exists()
    trainer = Trainer(model, dataset.train, None, recipe, options.device, options.seed,
                      threads=options.threads, checkpoint=ckpt)
    done = trainer.epoch
    log(f"[{pick.name}] {arch}")
    log(f"[{pick.name}] {len(dataset.train)} train images, {recipe.epochs} epochs x {trainer.setup.steps_per_epoch} "
        f"steps of {trainer.setup.batch_size} on {trainer.device}"
        + (f"; resuming after epoch {done}" if resumed and done else ""))
    started = time.perf_counter()
    try:
        for r in trainer.epochs():
            write_curve(folder, trainer.history, plot=False)
            log(f"[{pick.name}] epoch {r.epoch:>3}/{r.epochs}  loss {r.train_loss:.4f}  lr {r.lr:.4g}  "
                f"{r.images_per_s:,.0f} img/s  {r.seconds:.1f} s")
    except TrainingDiverged as exc:
        raise NasInputError(f"[{pick.name}] {exc}; try a smaller --lr") from None
    train_s = time.perf_counter() - started + sum(r.seconds for r in trainer.history[:done])
    return model, trainer, train_s


def _inherited_state(supernet_folder: str, arch: str, dataset) -> dict[str, Any]:
    """The pick's weights as its supernet holds them (``nas retrain --init supernet``)."""
    from nas.supernet.folder import load_supernet

    supernet, config = load_supernet(supernet_folder, "cpu")
    if supernet.num_classes != dataset.num_classes or supernet.in_chans != dataset.in_chans:
        raise NasInputError(f"--supernet {supernet_folder}: trained for {supernet.in_chans}-channel images and "
                            f"{supernet.num_classes} classes, not {dataset.in_chans} and {dataset.num_classes}")
    return supernet.subnet(arch).state_dict()


def _test_and_save(model, trainer, arch: str, folder: Path, dataset, recipe, options: RetrainOptions) -> dict[str, Any]:
    """The one look at the test split, then cost, CPU latency, the weights file and the
    final curve (with its plot). Returns what they measured, by name."""
    from nas.export.weights import save_weights, weights_filename
    from nas.training import evaluate

    test = evaluate(model, dataset.test, trainer.device, batch_size=recipe.eval_batch_size)
    model = model.to("cpu").eval()
    cost = measure_cost(arch, dataset)
    latency = measure_cpu_latency(model, dataset, options.latency_threads)
    wname = weights_filename()
    digest = save_weights(model.state_dict(), folder / wname, metadata={"genotype": arch, "format": "nas/1"})
    write_curve(folder, trainer.history, plot=True)
    return {"test": test, "cost": cost, "latency": latency, "weights_file": wname, "weights_sha256": digest}


def _metrics(pick: Pick, arch: str, dataset, recipe, options: RetrainOptions, trainer, train_s: float,
             measured: dict[str, Any]) -> dict[str, Any]:
    """The content of ``metrics.json`` (format ``nas.pick/1``) of a finished pick."""
    import torch

    import nas

    test, cost, latency = measured["test"], measured["cost"], measured["latency"]
    return {
        "format": METRICS_FORMAT,
        "complete": True,
        "name": pick.name,
        "arch": arch,
        "source": pick.source,
        "number": pick.number,
        "bound": pick.bound,
        "search_accuracy": pick.accuracy,
        "search_mflops": pick.mflops,
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "mflops": cost["mflops"],
        "params": cost["params"],
        "latency_ms": latency["median_ms"],
        "latency": {"device": "cpu", "batch": 1, "statistic": "median", **latency,
                    "input": [1, dataset.in_chans, dataset.image_size, dataset.image_size]},
        "epochs": recipe.epochs,
        "final_train_loss": trainer.history[-1].train_loss if trainer.history else None,
        "train_seconds": round(train_s, 2),
        "dataset": {"name": dataset.name, "num_classes": dataset.num_classes, "in_chans": dataset.in_chans,
                    "image_size": dataset.image_size, "train_images": len(dataset.train),
                    "test_images": len(dataset.test), "mean": list(dataset.mean), "std": list(dataset.std),
                    "classes": list(dataset.classes)},
        "recipe": asdict(recipe),
        "seed": options.seed,
        "init": options.init or "scratch",
        "device": str(trainer.device),
        "weights_file": measured["weights_file"],
        "weights_sha256": measured["weights_sha256"],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": {"nas": nas.__version__, "torch": torch.__version__},
    }


def copy_pick(src: Path, dst: Path, pick: Pick) -> dict[str, Any]:
    """A duplicate pick (same trial as an earlier one): copy its finished folder."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    metrics = read_metrics(src) or {}
    for name in (GENOTYPE_FILE, CURVE_CSV, CURVE_PNG, str(metrics.get("weights_file", "weights.safetensors"))):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    metrics.update({"name": pick.name, "bound": pick.bound, "source": pick.source, "same_as": pick.same_as})
    _write_json(dst / METRICS_FILE, metrics)
    return metrics


# --------------------------------------------------------------------------- measurements


def measure_cost(arch: str, dataset) -> dict[str, float]:
    """MFLOPs (fvcore multiply-adds, batch 1) and trainable params via ``evaluators.cost``."""
    from evaluators.cost import measure_cost as _measure_cost

    cost = _measure_cost(arch, dataset.in_chans, dataset.image_size, dataset.num_classes)
    return {"mflops": float(cost.mflops), "params": int(cost.params)}


def measure_cpu_latency(model, dataset, threads: int = 1) -> dict[str, float]:
    """CPU latency at batch 1 via ``evaluators.latency`` with ``threads`` threads:
    ``{"median_ms", "p90_ms", "threads", "repeats"}``."""
    from evaluators.latency import measure_latency

    lat = measure_latency(model, (dataset.in_chans, dataset.image_size, dataset.image_size),
                          batch_size=1, device="cpu", threads=max(1, int(threads)))
    return {"median_ms": float(lat.median_ms), "p90_ms": float(lat.p90_ms), "threads": int(lat.threads),
            "repeats": int(lat.repeats)}


# --------------------------------------------------------------------------- curve + table


def write_curve(folder: Path, history, plot: bool = True) -> None:
    """``curve.csv`` (epoch, train_loss, lr, images_per_s, seconds) and ``curve.png``."""
    folder = Path(folder)
    rows = ["epoch,train_loss,lr,images_per_s,seconds"]
    for r in history:
        rows.append(f"{r.epoch},{r.train_loss:.6g},{r.lr:.6g},{r.images_per_s:.6g},{r.seconds:.4g}")
    write_atomic(folder / CURVE_CSV, "\n".join(rows) + "\n")
    if not plot or not history:
        return
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    try:
        epochs = [r.epoch for r in history]
        ax.plot(epochs, [r.train_loss for r in history], "o-", c="#4c72b0", ms=3, label="train loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("train loss (label-smoothed)")
        ax.grid(True, alpha=0.3)
        ax2 = ax.twinx()
        ax2.plot(epochs, [r.lr for r in history], "--", c="#dd8452", label="lr (end of epoch)")
        ax2.set_ylabel("learning rate")
        ax.set_title(folder.name, fontsize=10)
        lines = ax.get_lines() + ax2.get_lines()
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper right")
        fig.tight_layout()
        with atomic_target(folder / CURVE_PNG) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)


def collect_picks(picks_root: str | Path) -> list[dict[str, Any]]:
    """Every finished pick's metrics under ``picks_root`` (``<run>/picks``), by MFLOPs."""
    root = Path(picks_root)
    rows = []
    if root.is_dir():
        for path in sorted(root.glob(f"*/{METRICS_FILE}")):
            try:
                m = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(m, dict) and m.get("complete"):
                m["name"] = path.parent.name
                rows.append(m)
    order = {"s": 0, "m": 1, "l": 2}
    rows.sort(key=lambda m: (_num(m.get("mflops")), order.get(m["name"], 3), m["name"]))
    return rows


def markdown_table(rows: list[dict[str, Any]], with_arch: bool = True) -> str:
    """One markdown table of picks: name, source, test accuracy, MFLOPs, params, latency."""
    if not rows:
        return "(no retrained picks yet: run `nas retrain RUN --pick s,m,l`)"
    ds = rows[0].get("dataset", {})
    lines = [
        "| pick | from | test acc. (%) | MFLOPs | params | CPU latency (ms) | epochs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for m in rows:
        lines.append(
            f"| {m['name']} | {_source(m)} | {_pct(m.get('test_accuracy'), sign=False)} | "
            f"{_fmt(m.get('mflops'), '.3g')} | {_human(m.get('params'))} | {_fmt(m.get('latency_ms'), '.3g')} | "
            f"{m.get('epochs', '')} |"
        )
    lat = rows[0].get("latency", {})
    note = (f"\n{ds.get('name', '?')} ({ds.get('in_chans', '?')}x{ds.get('image_size', '?')}x"
            f"{ds.get('image_size', '?')}, {ds.get('num_classes', '?')} classes): trained on the full "
            f"training split ({ds.get('train_images', '?')} images), tested once on the official test split "
            f"({ds.get('test_images', '?')}). MFLOPs = fvcore multiply-adds at batch 1; latency = median, "
            f"CPU, batch 1, {lat.get('threads', 1)} thread(s).")
    out = "\n".join(lines) + "\n" + note
    if with_arch:
        out += "\n\n" + "\n".join(f"- **{m['name']}**: `{m['arch']}`" for m in rows)
    return out


def _source(m: dict[str, Any]) -> str:
    src = m.get("source")
    number = m.get("number")
    if src == "tier":
        s = f"trial {number}, tier {_tier_bound(m)} MF"
    elif src == "target":
        s = f"trial {number}, target <= {_fmt(m.get('bound'), '.3g')} MF"
    elif src == "trial":
        s = f"trial {number}"
    elif src == "space":
        s = f"space {m.get('space', m['name'])} (baseline)"
    else:
        s = "--arch"
    if m.get("same_as"):
        s += f" (= {m['same_as']})"
    return s


def _num(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.inf
    return f if math.isfinite(f) else math.inf


def _tier_bound(m: dict[str, Any]) -> str:
    bound = _num(m.get("bound"))
    return describe_bound(bound, _num(m.get("mflops"))) if bound != math.inf else "<= -"


def _fmt(v, spec: str) -> str:
    f = _num(v)
    return format(f, spec) if f != math.inf else "-"


def _pct(v, sign: bool = True) -> str:
    f = _num(v)
    if f == math.inf:
        return "-"
    return f"{100 * f:.2f}" + ("%" if sign else "")


def _human(n) -> str:
    f = _num(n)
    if f == math.inf:
        return "-"
    if f >= 1e6:
        return f"{f / 1e6:.2f}M"
    if f >= 1e3:
        return f"{f / 1e3:.1f}K"
    return f"{int(f)}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(obj):
    try:
        return float(obj)
    except (TypeError, ValueError):
        return str(obj)


def _print(msg: str) -> None:
    print(msg, flush=True, file=sys.stdout)


__all__ = [
    "DEFAULT_EMA_DECAY",
    "DEFAULT_EPOCHS",
    "RetrainOptions",
    "collect_picks",
    "copy_pick",
    "is_complete",
    "markdown_table",
    "measure_cost",
    "measure_cpu_latency",
    "prepare_folder",
    "read_metrics",
    "retrain_pick",
    "retrain_recipe",
    "write_curve",
]


# --------------------------------------------------------------------------- run / dataset context


@dataclass
class Context:
    """Where picks go and what data they train on."""

    picks_root: Path
    run: Any = None  # nas.runs.Run or None
    dataset_name: str | None = None
    data_dir: str | None = None

    def load_dataset(self):
        from nas.data import load_dataset

        if not self.dataset_name:
            raise NasInputError("no data set: give a run folder (RUN) or --dataset NAME")
        ds = load_dataset(self.dataset_name, self.data_dir)
        if self.run is not None:
            rec = self.run.config.get("dataset", {}) or {}
            for key, have in (("num_classes", ds.num_classes), ("in_chans", ds.in_chans), ("image_size", ds.image_size)):
                want = rec.get(key)
                if want is not None and int(want) != int(have):
                    raise NasInputError(
                        f"{self.run.path}: the run used {self.dataset_name} with {key}={want}, "
                        f"but the data loaded now has {key}={have} (check --data-dir)"
                    )
        return ds


def make_context(run_path: str | None, out: str | None = None, dataset: str | None = None,
                 data_dir: str | None = None) -> Context:
    """Open ``RUN`` (if given): picks go to ``<RUN>/picks`` unless ``out``; the data set is the
    run's (``dataset``, if also given, must agree). Without RUN, ``out`` and ``dataset`` are needed."""
    run = None
    name, ddir = dataset, data_dir
    if run_path:
        import nas

        run = nas.load_run(run_path)
        rec = run.config.get("dataset", {}) or {}
        run_ds = rec.get("name") if isinstance(rec, dict) else rec
        if dataset and run_ds and _ds_key(dataset) != _ds_key(run_ds):
            raise NasInputError(f"--dataset {dataset}: the run {run_path} was searched on {run_ds}; "
                                f"picks are retrained on the run's data set")
        name = run_ds or dataset
        ddir = data_dir or (rec.get("data_dir") if isinstance(rec, dict) else None)
        root = Path(out) if out else Path(run_path) / "picks"
    else:
        if not out:
            raise NasInputError("without a run folder (RUN), give --out DIR for the pick folders")
        root = Path(out)
    return Context(picks_root=root, run=run, dataset_name=name, data_dir=ddir)


def _ds_key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def space_pick(name_or_path: str, pick_name: str | None = None) -> Pick:
    """The one architecture of a one-point space (``mixnet-s``, a ``.toml`` path) as a pick."""
    import nas

    space = nas.load_space(name_or_path)
    size = space.size()
    if size != 1:
        raise NasInputError(f"--space {name_or_path}: a space with {size} architectures, not a one-point space; "
                            f"use --arch with one of its genotypes")
    arch = str(space.sample(0))
    return Pick(name=pick_name or space.name, arch=arch, source="space")


__all__ += ["Context", "make_context", "space_pick"]
