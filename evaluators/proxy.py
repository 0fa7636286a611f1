"""Proxy training: the cheap, short training that scores a candidate during the search.

A candidate is trained from scratch on a fixed, stratified subset of the data set's
TRAIN split and scored, after every epoch (or only after ``ProxyConfig.eval_epochs``:
a scheduler's rungs and the last), on a held-out validation part of that
same TRAIN split (the test split is never seen by the search). Results come one
epoch at a time, so a multi-fidelity scheduler (successive halving / ASHA) can
promote a trial rung by rung and stop the rest early:

    data = prepare_proxy_data(ProxyConfig())               # once per process (cached)
    for r in proxy_train(arch, data, ProxyConfig(), seed=trial_seed, threads=1):
        report(accuracy=r.val_accuracy, epoch=r.epoch)      # the scheduler may stop here

It knows nothing about Optuna or Ray. Defaults, and the throughput measurements
behind them, are in docs/proxy.md.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Iterator

import torch
import torch.nn.functional as F

from nas.data import Dataset, TensorSplit, load_dataset, search_split, stratified_subset
from nas.errors import NasInputError
from nas.training import EpochResult, Recipe, recipe_for, train_epochs

if TYPE_CHECKING:
    import torch.nn as nn

    from nas.genotype import Arch


@dataclass(frozen=True)
class ProxyConfig:
    """What the proxy trains on and how (defaults: see docs/proxy.md).

    ``train_size`` images (a stratified subset) are one proxy epoch; ``val_size``
    images held out of the TRAIN split score it. ``epochs`` is the most a trial can
    get (the last rung); the learning-rate schedule spans all of them, so an early
    rung sees a not-yet-annealed model, the same for every trial.
    ``resolution``: train and score at this square size when the data are larger
    (never upsampled; ``None``: the data's own size). The images are shrunk once,
    with area averaging. At 14 (Fashion-MNIST is 28) a candidate trains 3-6x faster:
    that is what fits a 200-trial search in ~20 minutes on 2 CPU cores; see
    docs/proxy.md for the measurements and what it costs in fidelity.
    ``split_seed`` fixes the data subset for the whole search (all trials see the
    same images); the per-trial seed passed to :func:`proxy_train` fixes the
    initialisation and the batch order.
    """

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    train_size: int = 2000
    val_size: int = 1000
    epochs: int = 9
    batch_size: int = 64
    lr: float = 0.2
    optimizer: str = "sgd-nesterov"
    weight_decay: float = 5e-5
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1
    resolution: int | None = 14
    split_seed: int = 0
    memory_format: str = "auto"
    # validate after these epochs and the last only (a scheduler's rungs); None: every epoch
    eval_epochs: tuple[int, ...] | None = None
    recipe_overrides: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("train_size", "val_size", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise NasInputError(f"proxy: {name} must be >= 1, got {getattr(self, name)}")
        if self.eval_epochs is not None:
            object.__setattr__(self, "eval_epochs", tuple(sorted({int(e) for e in self.eval_epochs})))
        if self.resolution is not None and self.resolution < 4:
            raise NasInputError(f"proxy: resolution must be >= 4, got {self.resolution}")

    def recipe(self) -> Recipe:
        """The training recipe of one proxy run."""
        return recipe_for(
            self.dataset,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            optimizer=self.optimizer,
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_epochs,
            label_smoothing=self.label_smoothing,
            eval_batch_size=250,
            **dict(self.recipe_overrides),
        )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["recipe_overrides"] = dict(self.recipe_overrides)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProxyConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise NasInputError(f"proxy: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        d = dict(d)
        if "recipe_overrides" in d:
            d["recipe_overrides"] = tuple(sorted(dict(d["recipe_overrides"]).items()))
        return cls(**d)


@dataclass(frozen=True, eq=False)
class ProxyData:
    """The proxy's fixed train subset and validation part (both from the TRAIN split)."""

    dataset: str
    train: TensorSplit
    val: TensorSplit
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_chans(self) -> int:
        return self.train.in_chans

    @property
    def image_size(self) -> int:
        return self.train.image_size


def _resize(split: TensorSplit, size: int) -> TensorSplit:
    """Shrink a split's images to ``size`` x ``size`` (area averaging); never enlarges."""
    if split.image_size <= size:
        return split
    x = F.interpolate(split.images.float(), size=(size, size), mode="area")
    x = x.round_().clamp_(0, 255).to(torch.uint8)
    return TensorSplit(x, split.labels, split.mean, split.std, split.num_classes)


def proxy_data_from(dataset: Dataset, config: ProxyConfig) -> ProxyData:
    """Carve the proxy's data out of an already loaded data set's TRAIN split, without the
    judge's images (:func:`nas.data.split.search_split`)."""
    try:
        rest, val = search_split(dataset, val_size=config.val_size, seed=config.split_seed)
    except NasInputError as exc:
        raise NasInputError(f"proxy: {exc}") from None
    train = stratified_subset(rest, config.train_size, seed=config.split_seed)
    if config.resolution is not None:
        train, val = _resize(train, config.resolution), _resize(val, config.resolution)
    return ProxyData(dataset.name, train, val, dataset.classes)


def prepare_proxy_data(config: ProxyConfig) -> ProxyData:
    """Load ``config.dataset`` and carve out the proxy's data. Cached per process on
    the data settings only (a reused Ray actor pays the loading once); the result is
    shared, never modified."""
    return _cached_proxy_data(
        config.dataset, config.data_dir, config.train_size, config.val_size, config.resolution, config.split_seed
    )


@functools.lru_cache(maxsize=2)
def _cached_proxy_data(dataset, data_dir, train_size, val_size, resolution, split_seed) -> ProxyData:
    config = ProxyConfig(
        dataset=dataset,
        data_dir=data_dir,
        train_size=train_size,
        val_size=val_size,
        resolution=resolution,
        split_seed=split_seed,
    )
    loaded = load_dataset(dataset, data_dir, download=False, seed=split_seed)
    return proxy_data_from(loaded, config)


def proxy_train(
    candidate: "Arch | str | nn.Module",
    data: ProxyData,
    config: ProxyConfig = ProxyConfig(),
    device: str | torch.device | None = "auto",
    seed: int = 0,
    threads: int | None = None,
) -> Iterator[EpochResult]:
    """Train a candidate (genotype, Arch or a built module) with the proxy recipe,
    yielding one :class:`EpochResult` per epoch (``val_accuracy`` is the score; NaN
    after an epoch not in ``config.eval_epochs`` when that is set).

    ``seed`` fixes the initialisation (when building from a genotype) and the batch
    order; ``threads`` sets ``torch.set_num_threads`` (match the trial's CPUs).
    Raises :class:`nas.training.TrainingDiverged` if the loss becomes NaN/inf.
    """
    if threads is not None:
        torch.set_num_threads(int(threads))
    if isinstance(candidate, torch.nn.Module):
        model = candidate
    else:
        from nas.builder import build

        torch.manual_seed(seed)
        model = build(candidate, num_classes=data.num_classes, in_chans=data.in_chans)
    return train_epochs(
        model, data.train, data.val, config.recipe(), device, seed, threads=threads, memory_format=config.memory_format,
        eval_epochs=config.eval_epochs,
    )


__all__ = ["ProxyConfig", "ProxyData", "prepare_proxy_data", "proxy_data_from", "proxy_train"]
