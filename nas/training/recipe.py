"""How one training runs: :class:`Recipe` and the augmentation suited to each data set."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from nas.errors import NasInputError

OPTIMIZERS = ("sgd-nesterov", "adamw")


@dataclass(frozen=True)
class Recipe:
    """How to train. ``lr`` is per 256 images: the optimiser gets ``lr * batch_size / 256``.

    ``crop_padding``: random-crop padding in pixels (``None``: image size / 8, so
    4 at 28 or 32 px, 1 at 8 px; 0 turns the crop off). ``hflip``: random horizontal
    flip (right for clothes and objects, wrong for digits: see :func:`recipe_for`).
    ``weight_decay`` applies to weights only, never to BN parameters or biases.
    ``ema_decay``: keep an exponential moving average of the weights, evaluate it
    and leave it in the model at the end (``None``: off).
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd-nesterov"
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-5
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.0
    label_smoothing: float = 0.1
    crop_padding: int | None = None
    hflip: bool = True
    ema_decay: float | None = None
    grad_clip: float | None = None
    amp: bool = True
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise NasInputError(f"recipe: epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise NasInputError(f"recipe: batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise NasInputError(f"recipe: unknown optimizer {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if not self.lr > 0:
            raise NasInputError(f"recipe: lr must be positive, got {self.lr}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise NasInputError(f"recipe: label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise NasInputError(f"recipe: ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.warmup_epochs < 0 or self.weight_decay < 0:
            raise NasInputError("recipe: warmup_epochs and weight_decay must be >= 0")

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / 256.0

    def with_(self, **changes: Any) -> "Recipe":
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise NasInputError(f"recipe: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(self, **changes)


# Augmentation suited to each data set: horizontal flips change what a digit means.
_AUGMENT = {
    "fashion-mnist": {"hflip": True},
    "mnist": {"hflip": False},
    "digits": {"hflip": False},
    "cifar10": {"hflip": True},
    "imagefolder": {"hflip": True},
}


def recipe_for(dataset_name: str, **overrides: Any) -> Recipe:
    """The default :class:`Recipe` with the augmentation suited to ``dataset_name``."""
    return Recipe().with_(**{**_AUGMENT.get(dataset_name, {}), **overrides})


__all__ = ["OPTIMIZERS", "Recipe", "recipe_for"]
