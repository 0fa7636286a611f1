"""Training a supernet with the sandwich rule and in-place distillation (BigNAS, AttentiveNAS).

Every step trains, on the same batch, the largest subnet (on the labels), the smallest and
``random_subnets`` uniformly drawn ones (each on the largest one's soft predictions), and
takes one optimiser step on the summed gradients of the shared weights. The batches,
optimiser, schedule and mixed precision are :class:`nas.training.optim.TrainingSetup`'s (the
same setup as a model's training), augmentation and normalisation :mod:`nas.training.batches`',
from a :class:`nas.training.Recipe`.

Everything random is a function of ``(seed, epoch)`` or ``(seed, step)``: the batch order of
an epoch, a step's augmentation and its subnets. So a checkpoint needs no RNG state, and a
training killed at any step resumes from its last checkpoint to the same weights as one that
was never stopped (same device, thread count and compile choice).
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from nas.atomic import atomic_target
from nas.data.base import TensorSplit
from nas.errors import NasInputError
from nas.genotype import Arch
from nas.supernet.supernet import Supernet
from nas.training.batches import Normalizer, augment_batch, resolve_device, use_channels_last
from nas.training.optim import TrainingSetup, raise_if_diverged
from nas.training.recipe import Recipe

CHECKPOINT_FORMAT = "nas.supernet/1"
#: ``compile_largest=None`` compiles the largest subnet (the teacher, most of every step's work)
#: for trainings of at least this many steps. Measured on mdconv at 28x28, 1 CPU thread
#: (benchmarks/bench_supernet_throughput.py): the compile costs ~33 s once and saves ~1.2 s per
#: step (2.90 s vs 4.13 s eager channels_last), so it pays after ~30 steps.
COMPILE_MIN_STEPS = 100


@dataclass(frozen=True)
class Sandwich:
    """Which subnets each step trains: largest + smallest + ``random_subnets`` random ones.

    ``distill``: the weight of in-place distillation in the other subnets' loss,
    ``distill * KL(largest's predictions || theirs) + (1 - distill) * CE(labels)``. Pure
    distillation (1.0, BigNAS) needs a long training before the teacher is worth following;
    on a CPU budget of a few epochs the labels carry the small subnets. Measured on digits
    (tests' tiny space, 2 random subnets, 12 epochs), accuracy of 4 random subnets after BN
    recalibration: 0.46-0.63 with 0.5, 0.63-0.70 with 0.0; with 1 random subnet and 6
    epochs the smallest reached 22% with 1.0, 41% with 0.0. The default 0.5 keeps the
    teacher's signal; which weight ranks best is for ``benchmarks/bench_fidelity.py``.
    """

    random_subnets: int = 2
    distill: float = 0.5

    def __post_init__(self) -> None:
        if self.random_subnets < 0:
            raise NasInputError(f"sandwich: random_subnets must be >= 0, got {self.random_subnets}")
        if not 0.0 <= float(self.distill) <= 1.0:
            raise NasInputError(f"sandwich: distill must be in [0, 1], got {self.distill}")


@dataclass(frozen=True)
class SupernetProgress:
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    images_per_s: float
    eta_s: float


class SupernetTrainer:
    """Trains ``supernet`` on ``train``; :meth:`run` yields progress every ``report_every`` steps.

    ``checkpoint``: written every ``checkpoint_every`` steps and at the end of each epoch
    (atomically); if it exists at the start, training resumes from it. ``setup``: the batches,
    mixed precision, optimiser and schedule. A NaN or infinite loss raises
    :class:`nas.training.TrainingDiverged`.
    """

    def __init__(self, supernet: Supernet, train: TensorSplit, recipe: Recipe, sandwich: Sandwich = Sandwich(),
                 device: str = "auto", seed: int = 0, *, threads: int | None = None,
                 checkpoint: str | Path | None = None, checkpoint_every: int = 200,
                 memory_format: str | bool | None = "auto", compile_largest: bool | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.supernet, self.train, self.recipe, self.sandwich, self.seed = supernet, train, recipe, sandwich, int(seed)
        self.device = resolve_device(device)
        # data-parallel (Ray Train / torch.distributed): each rank trains its share of every batch
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = torch.distributed.get_rank() if distributed else 0
        self.world = torch.distributed.get_world_size() if distributed else 1
        supernet.to(self.device)
        supernet.channels_last = use_channels_last(self.device, memory_format)
        self.setup = TrainingSetup.create(supernet, train, recipe, self.device)
        self.largest, self.smallest = supernet.largest(), supernet.smallest()
        if compile_largest if compile_largest is not None else self.setup.total_steps >= COMPILE_MIN_STEPS:
            supernet.compile_subnet(self.largest)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = int(checkpoint_every)
        self.step = 0
        if self.checkpoint is not None and self.checkpoint.exists():
            self._restore()

    # ------------------------------------------------------------ checkpoint

    def _settings(self) -> dict:
        return {"recipe": asdict(self.recipe), "sandwich": asdict(self.sandwich), "seed": self.seed,
                "space": str(self.supernet.space.spec), "train_images": len(self.train)}

    def save(self) -> None:
        if self.checkpoint is None or self.rank != 0:  # every rank holds the same weights
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        state = {"format": CHECKPOINT_FORMAT, "step": self.step, "settings": self._settings(),
                 "shared": self.supernet.state_dict(), **self.setup.state_dict()}
        with atomic_target(self.checkpoint) as tmp:
            torch.save(state, tmp)

    def _restore(self) -> None:
        try:
            state = torch.load(self.checkpoint, map_location=self.device, weights_only=True)
        except Exception as exc:  # truncated or not a checkpoint: many exception types
            raise NasInputError(f"{self.checkpoint}: cannot be read as a supernet checkpoint: {exc}") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise NasInputError(f"{self.checkpoint}: not a supernet checkpoint")
        if state["settings"] != self._settings():
            raise NasInputError(f"{self.checkpoint}: written with other settings (space, recipe, sandwich, seed "
                                f"or data); remove it to start over")
        self.supernet.load_state_dict(state["shared"])
        self.setup.load_state_dict(state)
        self.step = int(state["step"])

    # ------------------------------------------------------------ training

    def archs(self, step: int) -> list[Arch]:
        """The subnets of one step: largest first (the teacher), smallest, then random ones."""
        rng = random.Random(f"{self.seed}-{step}")
        return [self.largest, self.smallest] + [self.supernet.space.sample(rng) for _ in range(self.sandwich.random_subnets)]

    def _train_step(self, images: torch.Tensor, labels: torch.Tensor, step: int) -> float:
        smoothing, setup = self.recipe.label_smoothing, self.setup
        setup.optimizer.zero_grad(set_to_none=True)
        teacher = None
        total = 0.0
        for i, arch in enumerate(self.archs(step)):
            with torch.autocast(self.device.type, dtype=setup.amp_dtype, enabled=setup.amp_dtype is not None):
                logits = self.supernet(images, arch).float()
            hard = F.cross_entropy(logits, labels, label_smoothing=smoothing)
            if i == 0:
                loss, teacher = hard, logits.detach().softmax(1)
            else:
                soft = F.kl_div(logits.log_softmax(1), teacher, reduction="batchmean")
                loss = self.sandwich.distill * soft + (1.0 - self.sandwich.distill) * hard
            epoch, within = divmod(step, setup.steps_per_epoch)
            raise_if_diverged(loss.detach().reshape(1), epoch + 1, within + 1)
            setup.scaler.scale(loss).backward()
            total += float(loss.detach())
        if self.world > 1:
            self._average_gradients()
        setup.step()
        return total

    def _average_gradients(self) -> None:
        """All-reduce the shared weights' gradients (zeros where a rank's subnets did not use a
        weight: every rank draws the same subnets, so the same weights are touched everywhere)."""
        for p in self.supernet.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad)
            p.grad.div_(self.world)

    def run(self, report_every: int = 20) -> Iterator[SupernetProgress]:
        """Train to the end from where the checkpoint left off."""
        dev = self.device
        x, y = self.train.images.to(dev), self.train.labels.to(dev)
        normalize = Normalizer(self.train, dev, self.supernet.channels_last)
        self.supernet.train()
        started, done_here, loss_sum = time.perf_counter(), 0, 0.0
        setup = self.setup
        total, batch_size = setup.total_steps, setup.batch_size
        while self.step < total:
            epoch, within = divmod(self.step, setup.steps_per_epoch)
            perm = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)).to(dev)
            idx = perm[within * batch_size : (within + 1) * batch_size][self.rank :: self.world]
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)
            images = normalize(augment_batch(x[idx], setup.padding, self.recipe.hflip, generator))
            loss_sum += self._train_step(images, y[idx], self.step)
            self.step += 1
            done_here += 1
            if self.step % self.checkpoint_every == 0 or self.step % setup.steps_per_epoch == 0:
                self.save()
            if self.step % report_every == 0 or self.step == total:
                elapsed = time.perf_counter() - started
                rate = done_here * batch_size / elapsed
                yield SupernetProgress(epoch + 1, self.recipe.epochs, self.step, total, loss_sum / done_here,
                                       rate, (total - self.step) * batch_size / rate)
        self.save()
        self.supernet.eval()


def print_progress(p: SupernetProgress, stream=sys.stderr) -> None:
    """One status line: epoch, step, loss, images/s and ETA (redrawn in place on a terminal)."""
    width = 24
    filled = int(width * p.step / p.steps)
    minutes, seconds = divmod(int(p.eta_s), 60)
    line = (f"epoch {p.epoch}/{p.epochs} [{'#' * filled}{'.' * (width - filled)}] step {p.step}/{p.steps} "
            f"loss {p.loss:.3f}  {p.images_per_s:,.0f} img/s  ETA {minutes}:{seconds:02d}")
    if stream.isatty():
        stream.write("\r" + line + ("\n" if p.step == p.steps else ""))
    else:
        stream.write(line + "\n")
    stream.flush()


__all__ = ["Sandwich", "SupernetProgress", "SupernetTrainer", "print_progress"]
