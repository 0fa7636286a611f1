"""Full retraining of picked architectures, scored once on the official test split.

    picks = nas.picks.pick_tiers(nas.load_run(run).pareto)          # S/M/L
    for pick in picks:
        retrain_pick(pick, picks_root(run) / pick.name, dataset, RetrainOptions(epochs=30))

Each pick gets a folder (its format: :mod:`nas.runs.pick_folders`) holding its genotype,
``metrics.json`` (:func:`pick_metrics`), its training curve and its weights.

Training uses :mod:`nas.training` (the same loop as the search's proxy training) on the
FULL training split with no validation split; the test split is touched exactly once,
after the last epoch. The default recipe is :func:`retrain_recipe`.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from nas.errors import NasInputError
from nas.genotype import Arch
from nas.picks import Pick
from nas.runs.pick_folders import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    METRICS_FORMAT,
    is_complete,
    number_or_inf,
    prepare_folder,
    read_metrics,
    write_curve,
    write_metrics,
)

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
            f"{percent(metrics.get('test_accuracy'))}); --force to retrain")
        return metrics
    if options.force:
        (folder / METRICS_FILE).unlink(missing_ok=True)

    recipe = retrain_recipe(dataset.name, options)
    model, trainer, train_s = _train(pick, arch, folder, dataset, recipe, options, log)
    measured = _test_and_save(model, trainer, arch, folder, dataset, recipe, options)
    metrics = pick_metrics(pick, arch, dataset, recipe, options, trainer, train_s, measured)
    if extra:
        metrics.update(extra)
    write_metrics(folder, metrics)
    (folder / CHECKPOINT_FILE).unlink(missing_ok=True)  # done: the weights are the result, the checkpoint is not kept
    test, cost = measured["test"], measured["cost"]
    log(f"[{pick.name}] test accuracy {percent(test.accuracy)}  {cost['mflops']:.3g} MFLOPs  "
        f"{human_count(cost['params'])} params  {measured['latency']['median_ms']:.3g} ms CPU  -> {folder}")
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
    cost = _cost(arch, dataset)
    latency = _cpu_latency(model, dataset, options.latency_threads)
    wname = weights_filename()
    digest = save_weights(model.state_dict(), folder / wname, metadata={"genotype": arch, "format": "nas/1"})
    write_curve(folder, trainer.history, plot=True)
    return {"test": test, "cost": cost, "latency": latency, "weights_file": wname, "weights_sha256": digest}


def pick_metrics(pick: Pick, arch: str, dataset, recipe, options: RetrainOptions, trainer, train_s: float,
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


# --------------------------------------------------------------------------- measurements


def _cost(arch: str, dataset) -> dict[str, float]:
    """MFLOPs (fvcore multiply-adds, batch 1) and trainable params via ``evaluators.cost``."""
    from evaluators.cost import measure_cost

    cost = measure_cost(arch, dataset.in_chans, dataset.image_size, dataset.num_classes)
    return {"mflops": float(cost.mflops), "params": int(cost.params)}


#: Rounds of 50 passes a pick's latency may take to settle (evaluators.latency).
LATENCY_ROUNDS = 20


def _cpu_latency(model, dataset, threads: int = 1) -> dict[str, float]:
    """CPU latency at batch 1 via ``evaluators.latency`` with ``threads`` threads, timed in rounds
    until it settles: ``{"median_ms", "p90_ms", "threads", "repeats", "spread", "rounds", "stable",
    "others_cpu"}`` (the cores other processes used meanwhile)."""
    from evaluators.latency import measure_latency

    lat = measure_latency(model, (dataset.in_chans, dataset.image_size, dataset.image_size),
                          batch_size=1, device="cpu", threads=max(1, int(threads)), max_rounds=LATENCY_ROUNDS)
    return _latency_record(lat)


def _latency_record(lat) -> dict[str, Any]:
    """What ``metrics.json`` keeps of an ``evaluators.latency.Latency``."""
    record = {"median_ms": float(lat.median_ms), "p90_ms": float(lat.p90_ms), "threads": int(lat.threads),
              "repeats": int(lat.repeats), "spread": float(lat.spread), "rounds": int(lat.rounds),
              "stable": bool(lat.stable), "others_cpu": lat.others_cpu}
    if lat.ratio is not None:  # timed in the same rounds as a baseline
        record.update(baseline=lat.baseline, ratio=float(lat.ratio), ratio_spread=float(lat.ratio_spread))
    return record


#: The pick that ``measure_picks_latency`` divides by when present: the hand design.
LATENCY_BASELINE = "mobilenetv2-3x3"


def measure_picks_latency(folders: list[Path], threads: int | None = None,
                          baseline: str | None = LATENCY_BASELINE) -> dict[str, dict[str, Any]]:
    """Measure finished picks' CPU latency again, all in the same rounds (round-robin, so a slow
    phase of the machine hits every pick alike; ``evaluators.latency.measure_latencies``), and
    record each in its ``metrics.json``; returns the new ``latency`` per pick folder name.

    Each genotype is built afresh (timing does not depend on the weights). When a pick named
    ``baseline`` is among them, every figure also carries its ``ratio`` to that pick's time in
    the same rounds: the figure that stays comparable across runs on a machine whose speed
    drifts. A figure taken while the machine was busy is flagged ``stable: false``; this is how
    it is taken again on a quiet machine, without retraining. ``threads``: default the first
    pick's own."""
    from evaluators.latency import measure_latencies
    from nas.builder import build
    from nas.runs.pick_folders import read_metrics, write_metrics

    metrics, models, shapes = {}, {}, set()
    for folder in folders:
        m = read_metrics(folder)
        if not (m and m.get("complete")):
            raise NasInputError(f"{folder}: not a finished pick (no complete metrics.json)")
        old = m.get("latency", {})
        shape = old.get("input") or [1, m["dataset"]["in_chans"], m["dataset"]["image_size"], m["dataset"]["image_size"]]
        shapes.add(tuple(int(v) for v in shape))
        metrics[folder.name] = (folder, m, list(shape))
        models[folder.name] = build(m["arch"], num_classes=int(m["dataset"]["num_classes"]), in_chans=int(shape[1])).eval()
    if len(shapes) != 1:
        raise NasInputError(f"picks of different input shapes ({sorted(shapes)}) cannot share latency rounds; "
                            f"measure them apart")
    if threads is None:
        threads = int(next(iter(metrics.values()))[1].get("latency", {}).get("threads", 1))
    (shape,) = shapes
    lats = measure_latencies(models, shape[1:], batch_size=1, device="cpu", threads=max(1, int(threads)),
                             max_rounds=LATENCY_ROUNDS, baseline=baseline if baseline in models else None)
    measured = time.strftime("%Y-%m-%dT%H:%M:%S")
    out = {}
    for name, (folder, m, shape) in metrics.items():
        lat = lats[name]
        m["latency_ms"] = float(lat.median_ms)
        m["latency"] = {"device": "cpu", "batch": 1, "statistic": "median", **_latency_record(lat), "input": shape,
                        "measured": measured, "with": sorted(metrics)}
        write_metrics(folder, m)
        out[name] = m["latency"]
    return out


# --------------------------------------------------------------------------- numbers for people


def percent(v, sign: bool = True) -> str:
    """``0.8863`` -> ``88.63%`` (``-`` for a missing value)."""
    f = number_or_inf(v)
    if f == math.inf:
        return "-"
    return f"{100 * f:.2f}" + ("%" if sign else "")


def human_count(n) -> str:
    """``1234567`` -> ``1.23M``, ``4321`` -> ``4.3K`` (``-`` for a missing value)."""
    f = number_or_inf(n)
    if f == math.inf:
        return "-"
    if f >= 1e6:
        return f"{f / 1e6:.2f}M"
    if f >= 1e3:
        return f"{f / 1e3:.1f}K"
    return f"{int(f)}"


def _print(msg: str) -> None:
    print(msg, flush=True, file=sys.stdout)


__all__ = [
    "DEFAULT_EMA_DECAY",
    "DEFAULT_EPOCHS",
    "RetrainOptions",
    "human_count",
    "percent",
    "pick_metrics",
    "retrain_pick",
    "retrain_recipe",
]
