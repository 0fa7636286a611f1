"""Parameter count: one function, plain torch (works on any device, including ``meta``)."""

from __future__ import annotations

import torch.nn as nn


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters of ``model`` (shared tensors counted once).

    ``trainable_only``: only those with ``requires_grad`` (the figure papers and timm report
    for these networks, where every parameter is trainable; batch-norm running statistics
    are buffers and never counted).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["count_params"]
