"""The documented limits of every number a space file or a genotype may hold.

A number beyond its limit is refused where it is read, with the key or token named, before
anything is built: a width of 10**9 would try to allocate, a depth of 10**8 would hang the
sampler, an expansion of 1e300 would overflow to infinity. Each limit is far above any network
this engine is for (MixNet-L's widest layer has 1536 channels, its largest kernel is 11) and
low enough that the largest network a space can hold is still built on the meta device in
well under a second. Stdlib only: the genotype and the DSL both read it.
"""

from __future__ import annotations

#: Channels of any layer: input, stem, block output, head; also 1x1 conv groups.
MAX_CHANNELS = 4096
#: Expansion ratio of an inverted residual block.
MAX_EXPANSION = 16.0
#: Depthwise kernel size, and kernel groups in one mixed conv.
MAX_KERNEL = 31
MAX_KERNEL_GROUPS = 8
MAX_DILATION = 16
MAX_STRIDE = 8
#: Blocks in one stage (a genotype's ``r`` repeats count here), and stages in a network.
MAX_DEPTH = 32
MAX_STAGES = 16
#: Input height or width, in pixels.
MAX_INPUT_SIZE = 4096
#: Choices in one list of a space file.
MAX_CHOICES = 256


def digits_beyond(text: str, limit: int) -> bool:
    """Whether an integer written as ``text`` (digits only) exceeds ``limit``, without
    converting it: Python refuses to convert integers of more than 4300 digits."""
    return len(text) > len(str(limit)) or int(text) > limit


__all__ = [
    "MAX_CHANNELS",
    "MAX_CHOICES",
    "MAX_DEPTH",
    "MAX_DILATION",
    "MAX_EXPANSION",
    "MAX_INPUT_SIZE",
    "MAX_KERNEL",
    "MAX_KERNEL_GROUPS",
    "MAX_STAGES",
    "MAX_STRIDE",
    "digits_beyond",
]
