"""Scoring a candidate by inherited weights: take its subnet, recalibrate BN, evaluate.

BN running statistics collected while the supernet trained mix every subnet that passed
through a layer, so they fit none of them; before a subnet is scored its statistics are
recomputed from a fixed set of training images (exact averages, not a running estimate).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nas.data.base import TensorSplit
from nas.genotype import Arch
from nas.supernet.supernet import Supernet
from nas.training.batches import EvalResult, Normalizer, evaluate, resolve_device, use_channels_last


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


def score(supernet: Supernet, arch: Arch | str, calibration: TensorSplit, val: TensorSplit,
          device: str | torch.device = "auto") -> EvalResult:
    """Validation accuracy/loss of ``arch``'s subnet with inherited weights and recalibrated BN."""
    model = recalibrate(supernet.subnet(arch), calibration, device)
    return evaluate(model, val, resolve_device(device))


__all__ = ["recalibrate", "score"]
