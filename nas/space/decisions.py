"""The decisions of a space: how :meth:`nas.space.Space.draw` names them, their kinds, and the
one cost order of their options.

A decision's name is its place and its kind: ``stem.channels``, ``s1.depth``, ``s1.width``,
``s1.downsample``, ``s1.b0.kernels``, ``s1.b0.se``, ``head.channels``. Callers that treat kinds
differently (the supernet's largest and smallest subnets, the ground truth's tilted draw) ask
:func:`decision_kind` and the kind sets here instead of spelling names themselves.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

#: Answers one decision: ``chooser(name, options) -> one of options``.
Chooser = Callable[[str, Sequence[Any]], Any]

# Kinds of the stem and the head (their whole name) ...
STEM_CHANNELS, STEM_ACT = "stem.channels", "stem.act"
HEAD_CHANNELS, HEAD_ACT = "head.channels", "head.act"
# ... of a stage (``s{i}.<kind>``) ...
DEPTH, WIDTH, DOWNSAMPLE = "depth", "width", "downsample"
# ... and of a block (``s{i}.b{j}.<kind>``).
TYPE, KERNELS, PARTITION, EXPANSION = "type", "kernels", "partition", "expansion"
DILATION, PW_GROUPS, SE, PADDING, ACT = "dilation", "pw_groups", "se", "padding", "act"

#: Kinds that own no weights (switches): a supernet holds one set of weights for all their options.
WEIGHTLESS = frozenset({STEM_ACT, HEAD_ACT, ACT, PADDING, PARTITION, DILATION, DOWNSAMPLE})
#: Kinds that set a network's cost (MFLOPs, parameters) most: depth, widths, expansion, block type.
COST_SETTING = frozenset({DEPTH, WIDTH, EXPANSION, TYPE, STEM_CHANNELS, HEAD_CHANNELS})

#: Block types in increasing cost: a depthwise-separable block is an inverted residual without expansion.
BLOCK_TYPE_COST = {"ds": 0, "ir": 1}


def stage_decision(stage: int, kind: str) -> str:
    return f"s{stage}.{kind}"


def block_decision(stage: int, block: int, kind: str) -> str:
    return f"s{stage}.b{block}.{kind}"


def decision_kind(name: str) -> str:
    """``s1.b0.kernels`` -> ``kernels``, ``s1.depth`` -> ``depth``; stem and head names are their kind."""
    if name.startswith(("stem.", "head.")):
        return name
    return name.rsplit(".", 1)[-1]


def cost_key(option: Any) -> tuple:
    """Sort key of a decision's options, cheaper first: numbers by value, block types ``ds``
    before ``ir`` (other strings as listed), kernel sets by their largest kernel, then by count."""
    if isinstance(option, str):
        return (BLOCK_TYPE_COST.get(option, 0),)
    if isinstance(option, tuple):
        return (max(option), len(option))
    return (option,) if not (isinstance(option, float) and math.isnan(option)) else (0,)


__all__ = [
    "COST_SETTING",
    "Chooser",
    "WEIGHTLESS",
    "block_decision",
    "cost_key",
    "decision_kind",
    "stage_decision",
]
