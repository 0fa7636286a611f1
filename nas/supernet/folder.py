"""A supernet folder: its format, its :class:`OneShotConfig`, and making and loading one.

    config = OneShotConfig(space="mdconv")
    supernet = train_supernet(config, "results/supernet-mdconv")     # nas.supernet.lifecycle; resumes if killed
    supernet, config = load_supernet("results/supernet-mdconv")

A supernet folder holds ``config.json`` (the :class:`OneShotConfig`, the one record of how it
was trained) and ``supernet.pt`` (the checkpoint; ``complete`` in config.json once trained).
The data come from the same carving as the scratch proxy (:func:`evaluators.proxy.proxy_data_from`):
a stratified subset of the TRAIN split, a held-out validation part of it, optionally shrunk
to ``resolution``, both without the judge's images (:func:`nas.data.split.split_judge`, the
benchmarks' ground truth validates on them). The test split is never read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import torch

from evaluators.proxy import ProxyConfig, ProxyData, proxy_data_from
from nas.atomic import write_atomic
from nas.data import load_dataset
from nas.errors import NasInputError
from nas.supernet.supernet import Supernet
from nas.supernet.training import Sandwich, SupernetTrainer
from nas.training import TrainingDiverged, recipe_for

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


def default_folder(space: str) -> Path:
    """Where a space's supernet goes unless a folder is given: ``results/supernet-SPACE``."""
    return Path("results") / f"supernet-{Path(space).stem}"


def load_data(config: OneShotConfig) -> ProxyData:
    dataset = load_dataset(config.dataset, config.data_dir, download=False, seed=config.split_seed)
    return proxy_data_from(dataset, config.proxy_config())


def write_config(folder: Path, config: OneShotConfig, complete: bool, extra: dict | None = None) -> None:
    """``config.json``: the config, whether training is ``complete``, and what the training recorded."""
    write_atomic(folder / CONFIG_FILE, json.dumps({**config.to_dict(), "complete": complete, **(extra or {})}, indent=1) + "\n")


def read_config(folder: str | Path) -> tuple[OneShotConfig, dict[str, Any]]:
    """(the folder's :class:`OneShotConfig`, what its training recorded: ``complete``, ``seconds``, ...)."""
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NasInputError(f"{folder}: not a supernet folder (no {CONFIG_FILE})") from None
    except (OSError, ValueError) as exc:
        raise NasInputError(f"{path}: unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        if isinstance(data, dict) and data.get("format") == "nas.oneshot/1":
            raise NasInputError(f"{path}: a supernet of an older format (nas.oneshot/1) that trained on the "
                                f"judge's held-out images; train it anew (nas supernet train)")
        raise NasInputError(f"{path}: not a supernet config ({FORMAT})")
    extra = {k: data.pop(k) for k in list(data) if k in ("complete", "seconds", "train_images", "num_classes", "in_chans")}
    return OneShotConfig.from_dict(data, str(path)), extra


def new_supernet(config: OneShotConfig, num_classes: int, in_chans: int) -> Supernet:
    import nas

    torch.manual_seed(config.seed)  # the initial shared weights depend on the seed only
    return Supernet(nas.load_space(config.space), num_classes=num_classes, in_chans=in_chans,
                    kernel_transform=config.kernel == "transform")


def train_in_process(config: OneShotConfig, folder: Path, data: ProxyData, device: str, threads: int | None,
                     progress: Callable | None) -> None:
    """The training loop of one process (one Ray Train worker, or the whole training)."""
    supernet = new_supernet(config, data.num_classes, data.in_chans)
    trainer = SupernetTrainer(supernet, data.train, config.recipe(), Sandwich(config.random_subnets, config.distill),
                              device=device, seed=config.seed, threads=threads, checkpoint=folder / CHECKPOINT_FILE)
    try:
        for step in trainer.run():
            if progress is not None and trainer.rank == 0:
                progress(step)
    except TrainingDiverged as exc:
        raise NasInputError(f"supernet {exc}; try a smaller lr") from None


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
    dev = resolve_device(device)
    try:
        state = torch.load(folder / CHECKPOINT_FILE, map_location=dev, weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise NasInputError(f"{folder / CHECKPOINT_FILE}: cannot be read: {exc}") from None
    supernet.load_state_dict(state["shared"])
    return supernet.to(dev).eval(), config


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` holds a supernet trained to the end."""
    return bool(read_config(folder)[1].get("complete"))


__all__ = ["CHECKPOINT_FILE", "CONFIG_FILE", "OneShotConfig", "default_folder", "is_complete", "load_data", "load_supernet",
           "new_supernet", "read_config", "train_in_process", "write_config"]
