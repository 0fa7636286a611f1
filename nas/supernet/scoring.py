"""Scoring a candidate by inherited weights: take its subnet, recalibrate BN, evaluate.

BN running statistics collected while the supernet trained mix every subnet that passed
through a layer, so they fit none of them; before a subnet is scored its statistics are
recomputed from a fixed set of training images (exact averages, not a running estimate).

A one-shot search scores in two stages (:class:`ScoringStage`): every candidate first on a
small fixed part of the held-out images after a short recalibration (the *screen*), and only
the ones that successive halving promotes on all of them. Each stage's images are a fixed
class-balanced subset, so a candidate gets the same score at the same stage every time.
The recalibrated batch norms are folded into the convs for the evaluation
(:func:`evaluate_folded`): the same scores, a quarter less CPU.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from nas.data.base import TensorSplit
from nas.data.split import stratified_subset
from nas.genotype import Arch
from nas.layers.fold import fold_batchnorm
from nas.supernet.supernet import Supernet
from nas.training.batches import EvalResult, Normalizer, evaluate, resolve_device, use_channels_last


@dataclass(frozen=True)
class ScoringStage:
    """How much data one scoring stage spends: ``calibration_images`` training images to
    recalibrate BN on and ``held_out_images`` to score on (each a class-balanced subset of the
    full sets, seeded by ``seed``; at most all of them)."""

    calibration_images: int
    held_out_images: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.calibration_images < 1 or self.held_out_images < 1:
            raise ValueError(f"a scoring stage needs >= 1 image of each kind, got {self}")

    def take(self, calibration: TensorSplit, held_out: TensorSplit) -> tuple[TensorSplit, TensorSplit]:
        """This stage's (calibration, held-out) images out of the full sets."""
        return (stratified_subset(calibration, self.calibration_images, seed=self.seed),
                stratified_subset(held_out, self.held_out_images, seed=self.seed))


#: The screen of a one-shot search: 1,000 held-out images after recalibrating on 500. Measured
#: against the full score (2,000 + 5,000) in BENCHMARKS.md, "Staged one-shot scoring".
SCREEN_CALIBRATION_IMAGES = 500
SCREEN_HELD_OUT_IMAGES = 1000


@torch.no_grad()
def recalibrate(model: nn.Module, images: TensorSplit, device: str | torch.device = "auto", batch_size: int = 256,
                memory_format: str | bool | None = "auto") -> nn.Module:
    """Recompute every BatchNorm's running mean/var of ``model`` on ``images`` (exact average)."""
    dev = resolve_device(device)
    cl = use_channels_last(dev, memory_format)
    model.to(dev, memory_format=torch.channels_last if cl else torch.contiguous_format)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all calibration batches
    normalize = Normalizer(images, dev, cl)
    model.train()
    x = images.images.to(dev)
    for start in range(0, len(images), batch_size):
        model(normalize(x[start : start + batch_size]))
    for bn in norms:
        bn.momentum = 0.1
    return model.eval()


def evaluate_folded(model: nn.Module, val: TensorSplit, device: str | torch.device = "auto",
                    in_place: bool = False) -> EvalResult:
    """:func:`nas.training.evaluate` of ``model`` with its batch norms folded into its convs
    (:func:`nas.layers.fold.fold_batchnorm`): the same scores within float rounding, without
    the batch norms' pass over the activations. On a copy unless ``in_place`` (the model is
    then for inference only)."""
    folded = fold_batchnorm(model if in_place else copy.deepcopy(model))
    return evaluate(folded, val, resolve_device(device))


def score(supernet: Supernet, arch: Arch | str, calibration: TensorSplit, val: TensorSplit,
          device: str | torch.device = "auto", stage: ScoringStage | None = None) -> EvalResult:
    """Validation accuracy/loss of ``arch``'s subnet with inherited weights and recalibrated BN
    (on ``stage``'s part of ``calibration`` and ``val``; None: all of them)."""
    if stage is not None:
        calibration, val = stage.take(calibration, val)
    model = recalibrate(supernet.subnet(arch), calibration, device)
    return evaluate_folded(model, val, device, in_place=True)


__all__ = ["SCREEN_CALIBRATION_IMAGES", "SCREEN_HELD_OUT_IMAGES", "ScoringStage", "evaluate_folded", "recalibrate",
           "score"]
