"""The pick folders of a run: ``<RUN>/picks/<name>/``, written by ``nas retrain``, read by
``nas retrain --table``, ``nas export`` and the front's plot. The one owner of their format::

    genotype.txt          the genotype (one line)
    metrics.json          test accuracy/loss, MFLOPs, params, CPU latency, recipe, ... (nas.retrain)
    curve.csv, curve.png  the training curve: train loss (label-smoothed) and lr per epoch
    weights.safetensors   final weights (the EMA weights when EMA is on), SHA-256 in metrics.json
    checkpoint.pt         only while training: resume point (deleted when the pick is done)

Every file is written atomically (:mod:`nas.atomic`), so a killed retrain leaves either the old
file or the new one.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

from nas.atomic import atomic_target, write_atomic
from nas.errors import NasInputError
from nas.genotype import Arch
from nas.picks import TIER_NAMES, Pick

PICKS_DIR = "picks"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.json"
GENOTYPE_FILE = "genotype.txt"
CURVE_CSV = "curve.csv"
CURVE_PNG = "curve.png"
METRICS_FORMAT = "nas.pick/1"


def picks_root(run_dir: str | Path) -> Path:
    """Where a run's pick folders go: ``<run_dir>/picks``."""
    return Path(run_dir) / PICKS_DIR


def read_metrics(folder: Path) -> dict[str, Any] | None:
    """A pick folder's ``metrics.json`` (None when there is none)."""
    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NasInputError(f"{path}: unreadable pick metrics: {exc}") from None
    return data if isinstance(data, dict) else None


def is_complete(folder: Path) -> bool:
    """Whether the pick is retrained to the end: complete metrics and their weights file."""
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
    write_atomic(gfile, arch + "\n")


def metrics_text(metrics: dict[str, Any]) -> str:
    """The text of a ``metrics.json`` (numbers torch or numpy hold are written as floats); an
    export bundle's copy is written the same way."""
    return json.dumps(metrics, indent=2, default=_json_default) + "\n"


def write_metrics(folder: Path, metrics: dict[str, Any]) -> None:
    write_atomic(Path(folder) / METRICS_FILE, metrics_text(metrics))


def copy_pick(src: Path, dst: Path, pick: Pick) -> dict[str, Any]:
    """A duplicate pick (same trial as an earlier one): copy its finished folder."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    metrics = read_metrics(src) or {}
    for name in (GENOTYPE_FILE, CURVE_CSV, CURVE_PNG, str(metrics.get("weights_file", "weights.safetensors"))):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    metrics.update({"name": pick.name, "bound": pick.bound, "source": pick.source, "same_as": pick.same_as})
    write_metrics(dst, metrics)
    return metrics


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


def _pick_metrics(root: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(folder name, metrics) of every pick folder under ``root`` with a readable ``metrics.json``."""
    if not root.is_dir():
        return
    for path in sorted(root.glob(f"*/{METRICS_FILE}")):
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(metrics, dict):
            yield path.parent.name, metrics


def number_or_inf(value: Any) -> float:
    """A metric as a finite float, else infinity (a missing or broken metric sorts and prints last)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.inf
    return number if math.isfinite(number) else math.inf


def collect_picks(root: str | Path) -> list[dict[str, Any]]:
    """Every finished pick's metrics under ``root`` (``<run>/picks``), by MFLOPs, then s, m, l."""
    rows = [{**m, "name": name} for name, m in _pick_metrics(Path(root)) if m.get("complete")]
    order = {name: i for i, name in enumerate(TIER_NAMES)}
    rows.sort(key=lambda m: (number_or_inf(m.get("mflops")), order.get(m["name"], len(order)), m["name"]))
    return rows


def load_picks(run_dir: str | Path) -> list[Pick]:
    """The picks retrained in ``<run_dir>/picks``, as :class:`nas.picks.Pick` s sorted by MFLOPs.

    ``accuracy`` is the *search* accuracy (so the pick sits on the front in a plot);
    the test accuracy is in each ``metrics.json``. Unreadable folders are skipped.
    """
    picks: list[Pick] = []
    for name, m in _pick_metrics(picks_root(run_dir)):
        try:
            picks.append(Pick(
                name=name,
                arch=str(m["arch"]),
                number=int(m["number"]) if m.get("number") is not None else None,
                accuracy=_finite_or_none(m.get("search_accuracy")),
                mflops=_finite_or_none(m.get("mflops")),
                params=_finite_or_none(m.get("params")),
                bound=_finite_or_none(m.get("bound")),
                source=str(m.get("source", "tier")),
            ))
        except (ValueError, KeyError, TypeError):
            continue
    picks.sort(key=lambda p: (p.mflops if p.mflops is not None else math.inf, p.name))
    return picks


def _finite_or_none(value: Any) -> float | None:
    number = number_or_inf(value)
    return number if number != math.inf else None


# --------------------------------------------------------------------------- marks on the front's plot


def mark_picks(ax, picks: Sequence[Pick], x: str = "mflops", y: str = "accuracy", **kwargs) -> None:
    """Mark picks on a matplotlib axes showing the front (``x``=MFLOPs, ``y``=accuracy).

    Each picked point gets a hollow ring and its name(s) as a label (``S/M`` when two
    names picked the same trial). Picks without both coordinates (e.g. ``--arch`` or
    baseline picks, which have no search accuracy) are skipped. Meant for
    ``pareto.png`` / ``nas pareto --plot``: ``mark_picks(ax, load_picks(run_dir))``.
    """
    color = kwargs.get("color", "crimson")
    groups: dict[tuple[float, float], list[str]] = {}
    for p in picks:
        xv, yv = getattr(p, x), getattr(p, y)
        if _finite_or_none(xv) is None or _finite_or_none(yv) is None:
            continue
        label = p.name.upper() if p.name in TIER_NAMES else p.name
        groups.setdefault((float(xv), float(yv)), []).append(label)
    for (xv, yv), labels in groups.items():
        ax.scatter([xv], [yv], s=kwargs.get("s", 160), facecolors="none", edgecolors=color,
                   linewidths=1.8, zorder=5)
        ax.annotate("/".join(labels), (xv, yv), textcoords="offset points", xytext=(6, 8),
                    fontsize=kwargs.get("fontsize", 10), fontweight="bold", color=color, zorder=6)


def picks_decoration(run_dir):
    """A ``decorate(ax, cost)`` for ``nas.runs.views.plot_front``: rings the picks already
    retrained in ``<run_dir>/picks`` (None when there are none)."""
    if not picks_root(run_dir).is_dir():
        return None

    def decorate(ax, cost: str) -> None:
        try:
            picks = [p for p in load_picks(run_dir) if hasattr(p, cost)]
            if picks:
                mark_picks(ax, picks, x=cost, y="accuracy")
        except Exception:  # noqa: BLE001 - decoration only: the front is drawn whatever happens here
            return

    return decorate


def _json_default(obj):
    try:
        return float(obj)
    except (TypeError, ValueError):
        return str(obj)


__all__ = [
    "CHECKPOINT_FILE",
    "CURVE_CSV",
    "CURVE_PNG",
    "GENOTYPE_FILE",
    "METRICS_FILE",
    "METRICS_FORMAT",
    "PICKS_DIR",
    "collect_picks",
    "copy_pick",
    "is_complete",
    "load_picks",
    "mark_picks",
    "metrics_text",
    "number_or_inf",
    "picks_decoration",
    "picks_root",
    "prepare_folder",
    "read_metrics",
    "write_curve",
    "write_metrics",
]
