"""The trainer of one model: proxy training in the search and the final retrain both use it.

    for r in train_epochs(model, train, val, Recipe(epochs=5), device="auto", seed=0):
        report(r.val_accuracy)          # one EpochResult per epoch; stop whenever you like

Data are :class:`nas.data.TensorSplit` s (uint8 images in memory), batched, augmented and
normalised on the device by :mod:`nas.training.batches`; the optimiser, schedule and mixed
precision are :class:`nas.training.optim.TrainingSetup`'s, shared with the supernet's trainer.

Reproducibility: the data order and augmentation come from a private
``torch.Generator`` seeded by ``seed``; the global torch RNG (dropout, ...) is seeded
with ``seed`` at the start. Both states go into a checkpoint, so a resumed run
continues exactly where the interrupted one stopped (bit-identical on CPU with the
same thread count).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Collection, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.atomic import atomic_target
from nas.data.base import TensorSplit
from nas.errors import NasInputError
from nas.training.batches import Normalizer, augment_batch, evaluate_tensors, resolve_device, use_channels_last
from nas.training.optim import TrainingSetup, raise_if_diverged
from nas.training.recipe import Recipe


@dataclass(frozen=True)
class EpochResult:
    """What one epoch produced. ``epoch`` counts from 1. Validation fields are NaN
    without validation data. ``images_per_s`` is training throughput (train steps only)."""

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    images_per_s: float
    seconds: float
    lr: float
    train_images: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelEma:
    """Exponential moving average of a model's parameters (buffers copied as they are).

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` so early averages are
    not dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for ema_p, p in zip(self.module.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - d)
        for ema_b, b in zip(self.module.buffers(), model.buffers()):
            ema_b.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        torch.save(obj, tmp)


# --------------------------------------------------------------------------- trainer


class Trainer:
    """One training run; :meth:`epochs` yields an :class:`EpochResult` per epoch.

    ``history`` holds every epoch's result, including those restored from a checkpoint;
    ``setup`` the batches, mixed precision, optimiser and schedule (:class:`TrainingSetup`).
    """

    def __init__(
        self,
        model: nn.Module,
        train: TensorSplit,
        val: TensorSplit | None,
        recipe: Recipe,
        device: str | torch.device | None = "auto",
        seed: int = 0,
        *,
        threads: int | None = None,
        checkpoint: str | Path | None = None,
        memory_format: str | bool | None = "auto",
        divergence_check_every: int | None = None,
        eval_epochs: Collection[int] | None = None,
    ):
        if len(train) == 0:
            raise NasInputError("training split is empty")
        if val is not None and (val.in_chans != train.in_chans or val.num_classes != train.num_classes):
            raise NasInputError("validation split does not match the training split (channels or classes)")
        if threads is not None:
            if threads < 1:
                raise NasInputError(f"threads must be >= 1, got {threads}")
            torch.set_num_threads(int(threads))
        self.model, self.train, self.val, self.recipe, self.seed = model, train, val, recipe, int(seed)
        self.device = resolve_device(device)
        self.channels_last = use_channels_last(self.device, memory_format)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.check_every = divergence_check_every or (1 if self.device.type == "cpu" else 25)
        self.history: list[EpochResult] = []
        # validate only where someone looks (a scheduler's rungs); the last epoch always
        self.eval_epochs = None if eval_epochs is None else frozenset(int(e) for e in eval_epochs) | {recipe.epochs}

        torch.manual_seed(self.seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        model.to(self.device, memory_format=fmt)
        self.setup = TrainingSetup.create(model, train, recipe, self.device)
        self.ema = ModelEma(model, recipe.ema_decay) if recipe.ema_decay is not None else None
        self.epoch = 0
        if self.checkpoint is not None and self.checkpoint.exists():
            self._restore(self.checkpoint)

    # -- checkpoint ---------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "format": "nas.training/1",
            "epoch": self.epoch,
            "recipe": asdict(self.recipe),
            "seed": self.seed,
            "model": self.model.state_dict(),
            **self.setup.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": {
                "data": self.generator.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
            "history": [r.as_dict() for r in self.history],
        }

    def _restore(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # truncated or not a checkpoint: many exception types
            raise NasInputError(f"checkpoint {path} cannot be read: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != "nas.training/1":
            raise NasInputError(f"checkpoint {path} is not a nas training checkpoint")
        if state["recipe"] != asdict(self.recipe) or state["seed"] != self.seed:
            raise NasInputError(
                f"checkpoint {path} was written with a different recipe or seed; "
                f"remove it to start over or use the same settings"
            )
        self.model.load_state_dict(state["model"])
        self.setup.load_state_dict(state)
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.generator.set_state(state["rng"]["data"].cpu())
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        self.epoch = int(state["epoch"])
        self.history = [EpochResult(**r) for r in state["history"]]

    # -- loop -----------------------------------------------------------------------

    def epochs(self) -> Iterator[EpochResult]:
        """Train the remaining epochs, yielding one result per epoch.

        After each epoch the checkpoint (if any) is written before the result is yielded,
        and after the last one the EMA weights (if any) are loaded into the model.
        """
        recipe, dev = self.recipe, self.device
        x = self.train.images.to(dev, non_blocking=True)
        y = self.train.labels.to(dev, non_blocking=True)
        normalize = Normalizer(self.train, dev, self.channels_last)
        val = None
        if self.val is not None:
            val = (self.val.images.to(dev, non_blocking=True), self.val.labels.to(dev, non_blocking=True))
        losses = torch.zeros(self.setup.steps_per_epoch, dtype=torch.float32, device=dev)
        while self.epoch < recipe.epochs:
            epoch = self.epoch + 1
            self.model.train()
            t0 = time.perf_counter()
            self._train_steps(epoch, x, y, normalize, losses)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            train_s = time.perf_counter() - t0
            train_loss = float(losses.mean())
            acc, vloss = self._validate(epoch, val, normalize)
            self.epoch = epoch
            images = self.setup.steps_per_epoch * self.setup.batch_size
            result = EpochResult(
                epoch=epoch,
                epochs=recipe.epochs,
                train_loss=train_loss,
                val_loss=vloss,
                val_accuracy=acc,
                images_per_s=images / train_s if train_s > 0 else float("inf"),
                seconds=time.perf_counter() - t0,
                lr=float(self.setup.optimizer.param_groups[0]["lr"]),
                train_images=images,
            )
            self.history.append(result)
            if self.checkpoint is not None:
                _atomic_save(self._state(), self.checkpoint)
            if epoch == recipe.epochs and self.ema is not None:
                self.model.load_state_dict(self.ema.module.state_dict())
            yield result
        if self.epoch == recipe.epochs and self.ema is not None:
            self.model.load_state_dict(self.ema.module.state_dict())

    def _train_steps(
        self, epoch: int, x: torch.Tensor, y: torch.Tensor, normalize: Normalizer, losses: torch.Tensor
    ) -> None:
        """One epoch of optimizer steps over a fresh permutation; ``losses[step]`` gets each loss.

        The loss is checked for NaN/inf every ``check_every`` steps (a host sync) before
        the step that would apply it, and once more at the end of the epoch.
        """
        recipe, setup = self.recipe, self.setup
        perm = torch.randperm(len(self.train), generator=self.generator).to(self.device)
        checked = 0
        for step in range(setup.steps_per_epoch):
            idx = perm[step * setup.batch_size : (step + 1) * setup.batch_size]
            xb = augment_batch(x[idx], setup.padding, recipe.hflip, self.generator)
            xb = normalize(xb)
            with torch.autocast(self.device.type, dtype=setup.amp_dtype, enabled=setup.amp_dtype is not None):
                logits = self.model(xb)
            loss = F.cross_entropy(logits.float(), y[idx], label_smoothing=recipe.label_smoothing)
            losses[step] = loss.detach()
            if (step + 1) % self.check_every == 0:
                self._check(losses, checked, step + 1, epoch)
                checked = step + 1
            self._optimizer_step(loss)
        self._check(losses, checked, setup.steps_per_epoch, epoch)

    def _optimizer_step(self, loss: torch.Tensor) -> None:
        """Backward (scaled under fp16), optional gradient clipping, step, lr schedule, EMA."""
        setup = self.setup
        setup.optimizer.zero_grad(set_to_none=True)
        setup.scaler.scale(loss).backward()
        if self.recipe.grad_clip is not None:
            setup.scaler.unscale_(setup.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
        setup.step()
        if self.ema is not None:
            self.ema.update(self.model)

    def _validate(
        self, epoch: int, val: tuple[torch.Tensor, torch.Tensor] | None, normalize: Normalizer
    ) -> tuple[float, float]:
        """(accuracy, loss) on the validation split (of the EMA weights when EMA is on) after
        the epochs someone looks at; NaN, NaN after the others or without a split."""
        if val is None or (self.eval_epochs is not None and epoch not in self.eval_epochs):
            return float("nan"), float("nan")
        eval_model = self.ema.module if self.ema is not None else self.model
        return evaluate_tensors(eval_model, val[0], val[1], normalize, self.recipe.eval_batch_size, self.setup.amp_dtype)

    def _check(self, losses: torch.Tensor, start: int, stop: int, epoch: int) -> None:
        if stop > start:
            raise_if_diverged(losses[start:stop], epoch, start + 1)


def train_epochs(
    model: nn.Module,
    train: TensorSplit,
    val: TensorSplit | None,
    recipe: Recipe,
    device: str | torch.device | None = "auto",
    seed: int = 0,
    *,
    threads: int | None = None,
    checkpoint: str | Path | None = None,
    memory_format: str | bool | None = "auto",
    eval_epochs: Collection[int] | None = None,
) -> Iterator[EpochResult]:
    """Train ``model`` in place, yielding an :class:`EpochResult` after each epoch.

    ``threads``: ``torch.set_num_threads`` for this process (match the trial's CPUs).
    ``eval_epochs``: validate only after these epochs and the last (the others yield NaN
    validation fields); ``None``: after every epoch.
    ``checkpoint``: a file written after every epoch (atomically); if it exists at the
    start, training resumes after its last epoch (only the remaining epochs are yielded).
    Raises :class:`TrainingDiverged` when the loss becomes NaN/inf.
    """
    trainer = Trainer(
        model, train, val, recipe, device, seed, threads=threads, checkpoint=checkpoint, memory_format=memory_format,
        eval_epochs=eval_epochs,
    )
    return trainer.epochs()


__all__ = ["EpochResult", "ModelEma", "Trainer", "train_epochs"]
