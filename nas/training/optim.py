"""The optimiser, its learning-rate schedule, and the setup both trainers share.

:class:`TrainingSetup` is what a training of a model (:class:`nas.training.Trainer`) and of
a supernet (:class:`nas.supernet.training.SupernetTrainer`) set up the same way from a
:class:`Recipe`: batches per epoch, crop padding, mixed precision, gradient scaler, optimiser
and warm-up + cosine schedule. A NaN or infinite loss raises :class:`TrainingDiverged` in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from nas.data.base import TensorSplit
from nas.training.batches import amp_dtype, default_crop_padding
from nas.training.recipe import Recipe


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int, loss: float):
        self.epoch, self.step, self.loss = epoch, step, loss
        super().__init__(f"training diverged: loss {loss} at epoch {epoch}, step {step}")


def raise_if_diverged(losses: torch.Tensor, epoch: int, first_step: int) -> None:
    """Raise :class:`TrainingDiverged` at the first non-finite loss of ``losses`` (the losses of
    steps ``first_step``, ``first_step + 1``, ... of ``epoch``, counted from 1). One host sync."""
    bad = ~torch.isfinite(losses)
    if bool(bad.any()):
        first = int(torch.nonzero(bad)[0])
        raise TrainingDiverged(epoch, first_step + first, float(losses[first]))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)  # BN weights/biases and all biases: no decay
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum or AdamW at the recipe's scaled lr; no weight decay on BN or biases."""
    groups = _param_groups(model, recipe.weight_decay)
    if recipe.optimizer == "sgd-nesterov":
        return torch.optim.SGD(groups, lr=recipe.scaled_lr, momentum=recipe.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=recipe.scaled_lr, betas=(recipe.momentum, 0.999))


class WarmupCosine:
    """LR multiplier per step: linear warmup, then cosine down to ``min_ratio``."""

    def __init__(self, total_steps: int, warmup_steps: int, min_ratio: float):
        self.total, self.warmup, self.min_ratio = total_steps, warmup_steps, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class TrainingSetup:
    """Batches, mixed precision, optimiser and schedule of one training (see the module docstring).

    The last partial batch of an epoch is dropped, so every step sees ``batch_size`` images.
    """

    batch_size: int
    steps_per_epoch: int
    total_steps: int
    padding: int
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR

    @classmethod
    def create(cls, model: nn.Module, train: TensorSplit, recipe: Recipe, device: torch.device) -> "TrainingSetup":
        """The setup for ``model`` (already on ``device``) trained on ``train`` by ``recipe``."""
        batch_size = min(recipe.batch_size, len(train))
        steps_per_epoch = max(1, len(train) // batch_size)
        total_steps = recipe.epochs * steps_per_epoch
        padding = recipe.crop_padding if recipe.crop_padding is not None else default_crop_padding(train.image_size)
        autocast_dtype = amp_dtype(device, recipe.amp)
        optimizer = make_optimizer(model, recipe)
        warmup = min(int(round(recipe.warmup_epochs * steps_per_epoch)), total_steps - 1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, WarmupCosine(total_steps, max(0, warmup), recipe.min_lr_ratio)
        )
        scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)  # fp16 only
        return cls(batch_size, steps_per_epoch, total_steps, padding, autocast_dtype, scaler, optimizer, scheduler)

    def step(self) -> None:
        """Apply the (scaled) gradients, update the scaler, advance the schedule by one step."""
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])


__all__ = ["TrainingDiverged", "TrainingSetup", "WarmupCosine", "make_optimizer", "raise_if_diverged"]
