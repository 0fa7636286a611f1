"""The one training loop: proxy training in the search and the final retrain both use it.

    for r in train_epochs(model, train, val, Recipe(epochs=5), device="auto", seed=0):
        report(r.val_accuracy)          # one EpochResult per epoch; stop whenever you like
    history = fit(model, train, val, recipe, device, seed, checkpoint="run/ckpt.pt")

Data are :class:`nas.data.TensorSplit` s (uint8 images in memory). A split is moved
to the device once; each step indexes a batch there, augments it as whole-batch
tensor ops (random crop with zero padding, horizontal flip), converts to float and
normalises on the device. Nothing here is CPU-only: the device is picked at run time
(``"auto"``: CUDA when present), CUDA runs with autocast (bf16 where supported,
else fp16 with a gradient scaler).

Reproducibility: the data order and augmentation come from a private
``torch.Generator`` seeded by ``seed``; the global torch RNG (dropout, ...) is seeded
with ``seed`` at the start. Both states go into a checkpoint, so a resumed run
continues exactly where the interrupted one stopped (bit-identical on CPU with the
same thread count).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.atomic import atomic_target
from nas.data.base import TensorSplit
from nas.errors import NasInputError

OPTIMIZERS = ("sgd-nesterov", "adamw")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")

# Measured on this repo's 2-core AMD EPYC (Zen 4, AVX-512) with torch 2.13 CPU, one
# thread, MixConv nets at 28x28 (benchmarks/bench_proxy_throughput.py, docs/proxy.md):
# channels_last trained 1.7-2.3x faster than contiguous (and evaluated faster), so
# "auto" means channels_last on CPU as on CUDA. Kept selectable: memory_format=.
CPU_CHANNELS_LAST = True


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int, loss: float):
        self.epoch, self.step, self.loss = epoch, step, loss
        super().__init__(f"training diverged: loss {loss} at epoch {epoch}, step {step}")


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


class EvalResult(NamedTuple):
    accuracy: float
    loss: float


# --------------------------------------------------------------------------- device


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"``: CUDA if available, else CPU; anything else as torch reads it."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise NasInputError(f"unknown device {device!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NasInputError(f"device {device!r} asked for, but CUDA is not available here")
    return dev


def use_channels_last(device: torch.device, memory_format: str | bool | None = "auto") -> bool:
    """Resolve ``memory_format`` (``"auto"``, ``"channels_last"``, ``"contiguous"`` or a bool)."""
    if isinstance(memory_format, bool):
        return memory_format
    if memory_format in (None, "auto"):
        return device.type == "cuda" or (device.type == "cpu" and CPU_CHANNELS_LAST)
    if memory_format not in MEMORY_FORMATS:
        raise NasInputError(f"unknown memory format {memory_format!r}; expected one of {', '.join(MEMORY_FORMATS)}")
    return memory_format == "channels_last"


def _amp_dtype(device: torch.device, recipe: Recipe) -> torch.dtype | None:
    if device.type != "cuda" or not recipe.amp:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# --------------------------------------------------------------------------- batch ops


def default_crop_padding(image_size: int) -> int:
    return max(1, round(image_size / 8))


def augment_batch(
    images: torch.Tensor, padding: int, hflip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Random crop (zero padding ``padding``) and random horizontal flip of a uint8
    batch (B, C, H, W), as whole-batch tensor ops on the batch's device. The random
    numbers come from ``generator`` (a CPU generator, so results match across devices)."""
    b, c, h, w = images.shape
    device = images.device
    if padding > 0:
        padded = F.pad(images, (padding, padding, padding, padding))
        offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator).to(device)
        rows = offsets[0][:, None] + torch.arange(h, device=device)[None, :]
        cols = offsets[1][:, None] + torch.arange(w, device=device)[None, :]
        images = padded[
            torch.arange(b, device=device)[:, None, None, None],
            torch.arange(c, device=device)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]
    if hflip:
        flip = (torch.rand(b, generator=generator) < 0.5).to(device)
        images = torch.where(flip[:, None, None, None], images.flip(3), images)
    return images


class _Normalizer:
    """uint8 -> float32, ``(x / 255 - mean) / std``, fused as one multiply-subtract."""

    def __init__(self, split: TensorSplit, device: torch.device, channels_last: bool):
        std = torch.tensor(split.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean = torch.tensor(split.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std)
        self.shift = mean / std
        self.channels_last = channels_last

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.mul_(self.scale).sub_(self.shift)


# --------------------------------------------------------------------------- evaluate


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: TensorSplit,
    device: str | torch.device | None = None,
    batch_size: int = 256,
    memory_format: str | bool | None = "auto",
    amp: bool = True,
) -> EvalResult:
    """Top-1 accuracy (0..1) and mean cross-entropy (no label smoothing) of ``model`` on ``data``.

    The model is moved to ``device`` and put in eval mode; its previous mode is restored.
    """
    dev = resolve_device(device)
    cl = use_channels_last(dev, memory_format)
    model.to(dev, memory_format=torch.channels_last if cl else torch.contiguous_format)
    images = data.images.to(dev, non_blocking=True)
    labels = data.labels.to(dev, non_blocking=True)
    return _evaluate(model, images, labels, _Normalizer(data, dev, cl), batch_size, _amp_dtype(dev, Recipe(amp=amp)))


def _evaluate(model, images, labels, normalize, batch_size, amp_dtype) -> EvalResult:
    n = int(labels.shape[0])
    if n == 0:
        return EvalResult(float("nan"), float("nan"))
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=labels.device)
    correct = torch.zeros((), dtype=torch.int64, device=labels.device)
    try:
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                x = normalize(images[start : start + batch_size])
                y = labels[start : start + batch_size]
                with torch.autocast(labels.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = model(x)
                logits = logits.float()
                loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
                correct += (logits.argmax(1) == y).sum()
    finally:
        model.train(was_training)
    return EvalResult(float(correct) / n, float(loss_sum) / n)


# --------------------------------------------------------------------------- helpers


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)  # BN weights/biases and all biases: no decay
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = _param_groups(model, recipe.weight_decay)
    if recipe.optimizer == "sgd-nesterov":
        return torch.optim.SGD(groups, lr=recipe.scaled_lr, momentum=recipe.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=recipe.scaled_lr, betas=(recipe.momentum, 0.999))


class _WarmupCosine:
    """LR multiplier per step: linear warmup, then cosine down to ``min_ratio``."""

    def __init__(self, total_steps: int, warmup_steps: int, min_ratio: float):
        self.total, self.warmup, self.min_ratio = total_steps, warmup_steps, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


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

    ``history`` holds every epoch's result, including those restored from a checkpoint.
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
        self.amp_dtype = _amp_dtype(self.device, recipe)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.check_every = divergence_check_every or (1 if self.device.type == "cpu" else 25)
        self.history: list[EpochResult] = []
        # validate only where someone looks (a scheduler's rungs); the last epoch always
        self.eval_epochs = None if eval_epochs is None else frozenset(int(e) for e in eval_epochs) | {recipe.epochs}

        n, bs = len(train), recipe.batch_size
        self.batch_size = min(bs, n)
        self.steps_per_epoch = max(1, n // self.batch_size)  # drop the last partial batch
        self.padding = recipe.crop_padding if recipe.crop_padding is not None else default_crop_padding(train.image_size)

        torch.manual_seed(self.seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        model.to(self.device, memory_format=fmt)
        self.optimizer = _make_optimizer(model, recipe)
        total = recipe.epochs * self.steps_per_epoch
        warmup = min(int(round(recipe.warmup_epochs * self.steps_per_epoch)), total - 1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _WarmupCosine(total, max(0, warmup), recipe.min_lr_ratio)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
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
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
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
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
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
        normalize = _Normalizer(self.train, dev, self.channels_last)
        val = None
        if self.val is not None:
            val = (self.val.images.to(dev, non_blocking=True), self.val.labels.to(dev, non_blocking=True))
        losses = torch.zeros(self.steps_per_epoch, dtype=torch.float32, device=dev)
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
            images = self.steps_per_epoch * self.batch_size
            result = EpochResult(
                epoch=epoch,
                epochs=recipe.epochs,
                train_loss=train_loss,
                val_loss=vloss,
                val_accuracy=acc,
                images_per_s=images / train_s if train_s > 0 else float("inf"),
                seconds=time.perf_counter() - t0,
                lr=float(self.optimizer.param_groups[0]["lr"]),
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
        self, epoch: int, x: torch.Tensor, y: torch.Tensor, normalize: _Normalizer, losses: torch.Tensor
    ) -> None:
        """One epoch of optimizer steps over a fresh permutation; ``losses[step]`` gets each loss.

        The loss is checked for NaN/inf every ``check_every`` steps (a host sync) before
        the step that would apply it, and once more at the end of the epoch.
        """
        recipe = self.recipe
        perm = torch.randperm(len(self.train), generator=self.generator).to(self.device)
        checked = 0
        for step in range(self.steps_per_epoch):
            idx = perm[step * self.batch_size : (step + 1) * self.batch_size]
            xb = augment_batch(x[idx], self.padding, recipe.hflip, self.generator)
            xb = normalize(xb)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                logits = self.model(xb)
            loss = F.cross_entropy(logits.float(), y[idx], label_smoothing=recipe.label_smoothing)
            losses[step] = loss.detach()
            if (step + 1) % self.check_every == 0:
                self._check(losses, checked, step + 1, epoch)
                checked = step + 1
            self._optimizer_step(loss)
        self._check(losses, checked, self.steps_per_epoch, epoch)

    def _optimizer_step(self, loss: torch.Tensor) -> None:
        """Backward (scaled under fp16), optional gradient clipping, step, lr schedule, EMA."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.recipe.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)

    def _validate(
        self, epoch: int, val: tuple[torch.Tensor, torch.Tensor] | None, normalize: _Normalizer
    ) -> tuple[float, float]:
        """(accuracy, loss) on the validation split (of the EMA weights when EMA is on) after
        the epochs someone looks at; NaN, NaN after the others or without a split."""
        if val is None or (self.eval_epochs is not None and epoch not in self.eval_epochs):
            return float("nan"), float("nan")
        eval_model = self.ema.module if self.ema is not None else self.model
        return _evaluate(eval_model, val[0], val[1], normalize, self.recipe.eval_batch_size, self.amp_dtype)

    def _check(self, losses: torch.Tensor, start: int, stop: int, epoch: int) -> None:
        if stop <= start:
            return
        chunk = losses[start:stop]
        bad = ~torch.isfinite(chunk)
        if bool(bad.any()):
            first = int(torch.nonzero(bad)[0])
            raise TrainingDiverged(epoch, start + first + 1, float(chunk[first]))


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


def fit(
    model: nn.Module,
    train: TensorSplit,
    val: TensorSplit | None,
    recipe: Recipe,
    device: str | torch.device | None = "auto",
    seed: int = 0,
    on_epoch: Callable[[EpochResult], None] | None = None,
    checkpoint: str | Path | None = None,
    *,
    threads: int | None = None,
    memory_format: str | bool | None = "auto",
) -> list[EpochResult]:
    """Train to the end; return every epoch's result (restored ones included).

    ``on_epoch`` is called with each newly trained epoch's result.
    """
    trainer = Trainer(
        model, train, val, recipe, device, seed, threads=threads, checkpoint=checkpoint, memory_format=memory_format
    )
    for result in trainer.epochs():
        if on_epoch is not None:
            on_epoch(result)
    return list(trainer.history)


__all__ = [
    "EpochResult",
    "EvalResult",
    "ModelEma",
    "Recipe",
    "Trainer",
    "TrainingDiverged",
    "augment_batch",
    "evaluate",
    "fit",
    "recipe_for",
    "resolve_device",
    "train_epochs",
    "use_channels_last",
]
