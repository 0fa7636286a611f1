"""One-shot evaluation: train one supernet, then score any candidate by inherited weights.

    config = OneShotConfig(space="mdconv")
    supernet = train_supernet(config, "results/supernet-mdconv")     # resumes if killed
    scorer = OneShotScorer.from_folder("results/supernet-mdconv")
    scorer.score("stem c16 s1 | ds k3 c8 | ...")                     # validation accuracy

A supernet folder holds ``config.json`` (the :class:`OneShotConfig`, the one record of how it
was trained) and ``supernet.pt`` (the checkpoint; ``complete`` in config.json once trained).
The data come from the same carving as the scratch proxy (:func:`evaluators.proxy.proxy_data_from`):
a stratified subset of the TRAIN split, a held-out validation part of it, optionally shrunk
to ``resolution``, both without the judge's images (:func:`nas.data.split.split_judge`, the
benchmarks' ground truth validates on them). The test split is never read.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from evaluators.proxy import ProxyConfig, ProxyData, proxy_data_from
from nas.atomic import write_atomic
from nas.data import load_dataset
from nas.errors import NasInputError
from nas.supernet import Supernet
from nas.supernet.scoring import score
from nas.supernet.training import Sandwich, SupernetTrainer, print_progress
from nas.training import recipe_for

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "supernet.pt"
#: /2: the held-out images no longer include the judge's (a /1 folder was trained on them).
FORMAT = "nas.oneshot/2"
KERNEL_SHARING = ("centre", "transform")


@dataclass(frozen=True)
class OneShotConfig:
    """How a supernet is trained and how candidates are scored.

    ``train_size`` images of the TRAIN split (0: all but the validation part) at
    ``resolution`` (``None``: full size) for ``epochs`` epochs of the sandwich rule;
    ``calibration_size`` training images recalibrate BN before a candidate is scored on the
    ``val_size`` held-out ones.

    The defaults are the setting that ranked best against the ground truth
    (``benchmarks/bench_fidelity.py``, BENCHMARKS.md "Fidelity"): all 50,000 training images at
    full size for one epoch gave Kendall tau 0.35 over 40 genotypes, against 0.16-0.18 for
    20,000-40,000 images x 2 epochs at 14x14. Candidates are scored on ``val_size`` images of
    the search's own held-out carve, disjoint from the ground truth's (the judge's) 10,000.
    """

    space: str = "mdconv"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    train_size: int = 0
    val_size: int = 5000
    resolution: int | None = None
    split_seed: int = 0
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.2
    warmup_epochs: float = 0.3
    random_subnets: int = 2
    distill: float = 0.5
    seed: int = 0
    calibration_size: int = 2000
    #: How a k-group takes its kernel from the shared one: ``transform`` (OFA's learned kernel
    #: transform; see nas.supernet.supernet) or ``centre`` (its centre k x k). Measured with the
    #: other defaults: tau 0.41 [0.25, 0.56] over all, 0.13 within bands, against 0.35 and
    #: -0.10 for the centre crop (BENCHMARKS.md, "Fidelity").
    kernel: str = "transform"

    def __post_init__(self) -> None:
        if self.kernel not in KERNEL_SHARING:
            raise NasInputError(f"supernet: kernel must be one of {', '.join(KERNEL_SHARING)}, got {self.kernel!r}")
        for name in ("val_size", "epochs", "batch_size", "calibration_size"):
            if int(getattr(self, name)) < 1:
                raise NasInputError(f"supernet: {name} must be >= 1, got {getattr(self, name)}")
        if self.train_size < 0:
            raise NasInputError(f"supernet: train_size must be >= 0 (0: all), got {self.train_size}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = CONFIG_FILE) -> "OneShotConfig":
        data = {k: v for k, v in data.items() if k not in ("format", "complete")}
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise NasInputError(f"{where}: unknown supernet setting(s) {', '.join(unknown)}")
        return cls(**data)

    def proxy_config(self) -> ProxyConfig:
        """The data carving, in the proxy's terms (so both estimators see the same kind of data)."""
        return ProxyConfig(dataset=self.dataset, data_dir=self.data_dir, train_size=self.train_size or 10**9,
                           val_size=self.val_size, resolution=self.resolution, split_seed=self.split_seed)

    def recipe(self):
        return recipe_for(self.dataset, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                          warmup_epochs=self.warmup_epochs)


def load_data(config: OneShotConfig) -> ProxyData:
    dataset = load_dataset(config.dataset, config.data_dir, download=False, seed=config.split_seed)
    return proxy_data_from(dataset, config.proxy_config())


def _write_config(folder: Path, config: OneShotConfig, complete: bool, extra: dict | None = None) -> None:
    write_atomic(folder / CONFIG_FILE, json.dumps({**config.to_dict(), "complete": complete, **(extra or {})}, indent=1) + "\n")


def read_config(folder: str | Path) -> tuple[OneShotConfig, dict[str, Any]]:
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NasInputError(f"{folder}: not a supernet folder (no {CONFIG_FILE})") from None
    except (OSError, ValueError) as exc:
        raise NasInputError(f"{path}: unreadable: {exc}") from None
    if isinstance(data, dict) and data.get("format") == "nas.oneshot/1":
        raise NasInputError(f"{path}: a supernet of an older format (nas.oneshot/1) that trained on the judge's "
                            f"held-out images; train it anew (nas supernet train)")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NasInputError(f"{path}: not a supernet config ({FORMAT})")
    extra = {k: data.pop(k) for k in list(data) if k in ("complete", "seconds", "train_images", "num_classes", "in_chans")}
    return OneShotConfig.from_dict(data, str(path)), extra


def new_supernet(config: OneShotConfig, num_classes: int, in_chans: int) -> Supernet:
    import nas

    torch.manual_seed(config.seed)  # the initial shared weights depend on the seed only
    return Supernet(nas.load_space(config.space), num_classes=num_classes, in_chans=in_chans,
                    kernel_transform=config.kernel == "transform")


def train_supernet(config: OneShotConfig, folder: str | Path, device: str = "auto", threads: int | None = None,
                   progress: Callable | None = print_progress, data: ProxyData | None = None,
                   workers: int = 1, address: str | None = None) -> Supernet:
    """Train (or finish training) the supernet of ``folder``; a complete folder is loaded as it is.

    ``workers`` > 1: data-parallel over that many Ray Train workers (``TorchTrainer``; CPU
    processes, or one GPU each where the cluster has them), on a local Ray or the cluster at
    ``address``; the folder must be on storage every worker sees. A folder holding another
    configuration is refused: the checkpoint would not fit it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / CONFIG_FILE).exists():
        old, extra = read_config(folder)
        if old != config:
            raise NasInputError(f"{folder}: holds a supernet trained with other settings; use another folder")
        if extra.get("complete"):
            return load_supernet(folder, device)[0]
    _write_config(folder, config, complete=False)
    started = time.perf_counter()
    if workers > 1:
        from evaluators.oneshot_ray import train_data_parallel

        train_data_parallel(config, folder, workers, address, threads or 1)
        data = data or load_data(config)
    else:
        data = data or load_data(config)
        _train_here(config, folder, data, device, threads, progress)
    _write_config(folder, config, complete=True, extra={"seconds": round(time.perf_counter() - started, 1),
                                                          "train_images": len(data.train),
                                                          "num_classes": data.num_classes, "in_chans": data.in_chans})
    return load_supernet(folder, device)[0]


def _train_here(config: OneShotConfig, folder: Path, data: ProxyData, device: str, threads: int | None,
                progress: Callable | None) -> None:
    """The training loop of one process (one Ray Train worker, or the whole training)."""
    supernet = new_supernet(config, data.num_classes, data.in_chans)
    trainer = SupernetTrainer(supernet, data.train, config.recipe(), Sandwich(config.random_subnets, config.distill),
                              device=device, seed=config.seed, threads=threads, checkpoint=folder / CHECKPOINT_FILE)
    for step in trainer.run():
        if progress is not None and trainer.rank == 0:
            progress(step)


def load_supernet(folder: str | Path, device: str = "auto") -> tuple[Supernet, OneShotConfig]:
    """A trained supernet from its folder."""
    from nas.training import resolve_device

    folder = Path(folder)
    config, extra = read_config(folder)
    if not extra.get("complete"):
        raise NasInputError(f"{folder}: the supernet is not trained to the end yet; run `nas supernet train` again")
    if "num_classes" in extra and "in_chans" in extra:  # recorded since; older folders: read the data
        shape = int(extra["num_classes"]), int(extra["in_chans"])
    else:
        data = load_data(config)
        shape = data.num_classes, data.in_chans
    supernet = new_supernet(config, *shape)
    try:
        state = torch.load(folder / CHECKPOINT_FILE, map_location=resolve_device(device), weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise NasInputError(f"{folder / CHECKPOINT_FILE}: cannot be read: {exc}") from None
    supernet.load_state_dict(state["shared"])
    return supernet.to(resolve_device(device)).eval(), config


class OneShotScorer:
    """Scores candidates by inherited weights: subnet, BN recalibrated, validation accuracy."""

    def __init__(self, supernet: Supernet, config: OneShotConfig, data: ProxyData | None = None, device: str = "auto") -> None:
        from nas.data import stratified_subset

        self.supernet, self.config, self.device = supernet, config, device
        self.data = data or load_data(config)
        self.calibration = stratified_subset(self.data.train, config.calibration_size, seed=config.split_seed)

    @classmethod
    def from_folder(cls, folder: str | Path, device: str = "auto") -> "OneShotScorer":
        supernet, config = load_supernet(folder, device)
        return cls(supernet, config, device=device)

    def score(self, arch) -> float:
        return float(score(self.supernet, arch, self.calibration, self.data.val, self.device).accuracy)

    def score_all(self, archs: Sequence, outside: float = float("nan")) -> list[float]:
        """Scores of ``archs``; ``outside`` for one the supernet's space does not hold (a baseline
        from another space, say) instead of an error."""
        scores = []
        for arch in archs:
            try:
                scores.append(self.score(arch))
            except NasInputError as exc:
                if "is not in the space" not in str(exc):
                    raise
                scores.append(outside)
        return scores


@functools.lru_cache(maxsize=1)
def _cached_supernet(folder: str) -> Supernet:
    return load_supernet(folder, "auto")[0]  # once per worker process: a reused actor loads it once


def inherited(folder: str | Path, arch, data: ProxyData):
    """A search trial's first epoch by inherited weights: (the subnet, BN recalibrated on the
    trial's training images, ready to fine-tune; its :class:`nas.training.EpochResult` on the
    trial's validation images)."""
    from nas.supernet.scoring import recalibrate
    from nas.training import EpochResult, evaluate

    started = time.perf_counter()
    supernet = _cached_supernet(str(folder))
    model = recalibrate(supernet.subnet(arch), data.train)
    result = evaluate(model, data.val)
    seconds = time.perf_counter() - started
    return model, EpochResult(epoch=1, epochs=1, train_loss=float("nan"), val_loss=result.loss,
                              val_accuracy=result.accuracy, images_per_s=float("nan"), seconds=seconds,
                              lr=0.0, train_images=0)


#: Fine-tuning from inherited weights: a quarter of the proxy's learning rate, no warm-up
#: (the weights are trained already; the full proxy lr would undo them).
FINE_TUNE_LR_FACTOR = 0.25


def fine_tune_config(proxy: ProxyConfig) -> ProxyConfig:
    """The proxy training of epochs 2..E of a one-shot trial (epoch 1 was the inherited score)."""
    evals = None if proxy.eval_epochs is None else tuple(e - 1 for e in proxy.eval_epochs if e > 1)
    return replace(proxy, epochs=proxy.epochs - 1, lr=proxy.lr * FINE_TUNE_LR_FACTOR, warmup_epochs=0.0,
                   eval_epochs=evals)


def fidelity_scores(genotypes: Sequence[str], folder: str | Path | None = None, **settings: Any) -> list[float]:
    """``benchmarks/bench_fidelity.py --predictor supernet=evaluators.oneshot:fidelity_scores``:
    trains (once; resumable) a supernet of ``mdconv`` in ``folder`` and scores ``genotypes``."""
    torch.set_num_threads(1)
    config = replace(OneShotConfig(), **settings)
    folder = Path(folder or Path(__file__).resolve().parents[1] / "benchmarks" / "ground_truth" / ".work" / "supernet")
    supernet = train_supernet(config, folder, device="cpu", threads=1)
    return OneShotScorer(supernet, config, device="cpu").score_all(genotypes)


__all__ = ["OneShotConfig", "OneShotScorer", "fidelity_scores", "fine_tune_config", "inherited", "load_supernet", "train_supernet"]
