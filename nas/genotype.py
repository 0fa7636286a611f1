"""The genotype: one frozen value that describes a network completely.

An :class:`Arch` has exactly one canonical text form, a single line that a person
can read and that round-trips exactly (``Arch.parse(str(a)) == a``). That string
is the one source of truth for an architecture: it is what the ``arch`` column of
a run's DataFrames holds and what ``nas.build`` accepts.

Format (segments separated by ``" | "``, blocks within a stage by ``", "``)::

    stem c16 s2 | ds k3 c16 | ir k3 e6 c24 s2 g2.2, ir k3 e3 c24 g2.2 | ... | head c1536

Block words, in canonical order (defaults are omitted):

==========  =========================================================  =========
word        meaning                                                    default
==========  =========================================================  =========
``ir|ds``   block type: inverted residual / depthwise-separable         required
``k3.5.7``  MixConv kernel sizes, one depthwise group per kernel        required
``e6``      expansion ratio of the 1x1 expansion conv (``ir`` only)     ``e1``
``c40``     output channels                                             required
``s2``      stride of the block                                         ``s1``
``d2``      dilation of the mixed depthwise conv                        ``d1``
``g2.2``    groups of the expansion / projection 1x1 convs (MixNet)     ``g1.1``
``se0.25``  squeeze-excite ratio, relative to the block's input chans   none
``split=``  channel partition of the mixed conv: ``equal`` or ``exp``   ``equal``
``pad=``    padding: zeros, reflect, replicate, circular, partial       ``zeros``
``down=``   how a stride-2 block downsamples: ``conv``, ``max``, ``avg``  ``conv``
``act=``    activation: ``relu``, ``swish``                             ``relu``
``r3``      the block repeated 3 times                                  ``r1``
==========  =========================================================  =========

``stem cN sS act=A`` is a 3x3 conv; ``head cN act=A`` a 1x1 conv to N features
before global pooling (``head c0``: no head conv). Input channels and the number
of classes are not part of the genotype: they are arguments of ``nas.build``.
Parsing is strict: an unknown, duplicated or malformed word is an error naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from nas.errors import GenotypeError
from nas.limits import (
    MAX_CHANNELS,
    MAX_DEPTH,
    MAX_DILATION,
    MAX_EXPANSION,
    MAX_KERNEL,
    MAX_KERNEL_GROUPS,
    MAX_STAGES,
    MAX_STRIDE,
    digits_beyond,
)

BLOCK_KINDS = ("ir", "ds")
PADDINGS = ("zeros", "reflect", "replicate", "circular", "partial")
PARTITIONS = ("equal", "exp")
DOWNSAMPLES = ("conv", "max", "avg")
ACTIVATIONS = ("relu", "swish")


def split_channels(channels: int, groups: int, partition: str = "equal") -> list[int]:
    """Channels per MixConv group.

    ``equal``: the same share each, the remainder to the first group (32, 3 -> 12, 10, 10).
    ``exp``: 1/2, 1/4, ... of the channels, the last group takes the rest (32, 4 -> 16, 8, 4, 4).
    Raises :class:`GenotypeError` if a group would get no channel.
    """
    if groups < 1:
        raise GenotypeError(f"a mixed conv needs at least one kernel group, got {groups}")
    if partition == "equal":
        sizes = [channels // groups] * groups
        sizes[0] += channels - sum(sizes)
    elif partition == "exp":
        sizes = [channels // 2 ** (i + 1) for i in range(groups - 1)]
        sizes.append(channels - sum(sizes))
    else:
        raise GenotypeError(f"unknown channel partition {partition!r}; expected one of {PARTITIONS}")
    if min(sizes) < 1:
        raise GenotypeError(
            f"{partition} partition of {channels} channels into {groups} kernel groups "
            f"leaves a group with no channel ({sizes})"
        )
    return sizes


def _fmt_num(value: float) -> str:
    """The shortest text that parses back to exactly ``value`` ("6", "0.25", "1.0000001")."""
    short = format(value, "g")
    return short if float(short) == value else repr(value)


@dataclass(frozen=True)
class Stem:
    """The first layer: a 3x3 conv, batch norm and activation."""

    channels: int
    stride: int = 2
    act: str = "relu"

    def __post_init__(self) -> None:
        _check_positive("stem", "c", self.channels, MAX_CHANNELS)
        _check_positive("stem", "s", self.stride, MAX_STRIDE)
        _check_choice("stem", "act", self.act, ACTIVATIONS)

    def __str__(self) -> str:
        words = ["stem", f"c{self.channels}"]
        if self.stride != 2:
            words.append(f"s{self.stride}")
        if self.act != "relu":
            words.append(f"act={self.act}")
        return " ".join(words)


@dataclass(frozen=True)
class Head:
    """The 1x1 conv to ``channels`` features before pooling (0: none)."""

    channels: int
    act: str = "relu"

    def __post_init__(self) -> None:
        if not isinstance(self.channels, int) or isinstance(self.channels, bool) or not 0 <= self.channels <= MAX_CHANNELS:
            raise GenotypeError(f"head: 'c' must be an integer in [0, {MAX_CHANNELS}], got {self.channels!r}")
        _check_choice("head", "act", self.act, ACTIVATIONS)

    def __str__(self) -> str:
        words = ["head", f"c{self.channels}"]
        if self.act != "relu":
            words.append(f"act={self.act}")
        return " ".join(words)


@dataclass(frozen=True)
class Block:
    """One block: inverted residual (``ir``) or depthwise-separable (``ds``).

    The depthwise conv of either kind is a MixConv: ``kernels`` gives one depthwise
    group per kernel size, channels split by ``partition``; ``dilation`` and
    ``padding`` are shared by all groups.
    """

    kind: str
    kernels: tuple[int, ...]
    out_channels: int
    expansion: float = 1.0
    stride: int = 1
    dilation: int = 1
    pw_groups: tuple[int, int] = (1, 1)
    se: float = 0.0
    partition: str = "equal"
    padding: str = "zeros"
    downsample: str = "conv"
    act: str = "relu"

    def __post_init__(self) -> None:
        where = f"{self.kind} block"
        _check_choice("block", "type", self.kind, BLOCK_KINDS)
        kernels = tuple(self.kernels)
        if not 1 <= len(kernels) <= MAX_KERNEL_GROUPS:
            raise GenotypeError(f"{where}: 'k' needs 1 to {MAX_KERNEL_GROUPS} kernel sizes, got {len(kernels)}")
        for k in kernels:
            if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0 or k > MAX_KERNEL:
                raise GenotypeError(f"{where}: kernel size must be an odd integer in [1, {MAX_KERNEL}], got {k!r}")
        object.__setattr__(self, "kernels", kernels)
        _check_choice(where, "split", self.partition, PARTITIONS)  # before a single group drops it
        if len(kernels) == 1:
            # One group: the partition means nothing; keep the genotype canonical.
            object.__setattr__(self, "partition", "equal")
        _check_positive(where, "c", self.out_channels, MAX_CHANNELS)
        _check_positive(where, "s", self.stride, MAX_STRIDE)
        _check_positive(where, "d", self.dilation, MAX_DILATION)
        expansion = float(self.expansion)
        if not 0 < expansion <= MAX_EXPANSION:
            raise GenotypeError(f"{where}: expansion 'e' must be in (0, {MAX_EXPANSION:g}], got {self.expansion!r}")
        if self.kind == "ds" and expansion != 1.0:
            raise GenotypeError(f"{where}: a depthwise-separable block has no expansion, got e{_fmt_num(expansion)}")
        object.__setattr__(self, "expansion", expansion)
        se = float(self.se)
        if not 0.0 <= se <= 1.0:
            raise GenotypeError(f"{where}: squeeze-excite ratio 'se' must be in [0, 1], got {self.se!r}")
        object.__setattr__(self, "se", se)
        groups = tuple(self.pw_groups)
        if len(groups) != 2:
            raise GenotypeError(f"{where}: 'g' needs two group counts (expand.project), got {groups!r}")
        for g in groups:
            _check_positive(where, "g", g, MAX_CHANNELS)
        if self.kind == "ds" and groups[0] != 1:
            raise GenotypeError(f"{where}: a depthwise-separable block has no expansion conv to group")
        object.__setattr__(self, "pw_groups", groups)
        _check_choice(where, "pad", self.padding, PADDINGS)
        _check_choice(where, "down", self.downsample, DOWNSAMPLES)
        _check_choice(where, "act", self.act, ACTIVATIONS)
        if self.downsample != "conv" and self.stride == 1:
            raise GenotypeError(f"{where}: down={self.downsample} needs a stride > 1")

    def mid_channels(self, in_channels: int) -> int:
        """Channels of the depthwise conv for a given input width (``ds``: the input itself)."""
        if self.kind == "ds":
            return in_channels
        return max(1, int(round(in_channels * self.expansion)))

    def words(self) -> list[str]:
        """Canonical words, without the repeat count."""
        words = [self.kind, "k" + ".".join(str(k) for k in self.kernels)]
        if self.kind == "ir" and self.expansion != 1.0:
            words.append("e" + _fmt_num(self.expansion))
        words.append(f"c{self.out_channels}")
        if self.stride != 1:
            words.append(f"s{self.stride}")
        if self.dilation != 1:
            words.append(f"d{self.dilation}")
        if self.pw_groups != (1, 1):
            words.append(f"g{self.pw_groups[0]}.{self.pw_groups[1]}")
        if self.se > 0:
            words.append("se" + _fmt_num(self.se))
        if self.partition != "equal":
            words.append(f"split={self.partition}")
        if self.padding != "zeros":
            words.append(f"pad={self.padding}")
        if self.downsample != "conv":
            words.append(f"down={self.downsample}")
        if self.act != "relu":
            words.append(f"act={self.act}")
        return words

    def __str__(self) -> str:
        return " ".join(self.words())


@dataclass(frozen=True)
class Arch:
    """A complete network: stem, stages of blocks, head. See the module docstring."""

    stem: Stem
    stages: tuple[tuple[Block, ...], ...]
    head: Head

    def __post_init__(self) -> None:
        stages = tuple(tuple(stage) for stage in self.stages)
        if not stages or any(not stage for stage in stages):
            raise GenotypeError("an architecture needs at least one stage and every stage at least one block")
        if len(stages) > MAX_STAGES:
            raise GenotypeError(f"an architecture has at most {MAX_STAGES} stages, got {len(stages)}")
        for i, stage in enumerate(stages):
            if len(stage) > MAX_DEPTH:
                raise GenotypeError(f"stage {i + 1} has {len(stage)} blocks; a stage has at most {MAX_DEPTH}")
        object.__setattr__(self, "stages", stages)
        # A stage's channel counts must leave every mixed-conv group a channel for its real input.
        in_channels = self.stem.channels
        for block in self.blocks():
            split_channels(block.mid_channels(in_channels), len(block.kernels), block.partition)
            in_channels = block.out_channels

    def blocks(self) -> Iterator[Block]:
        """All blocks in order, stage by stage."""
        for stage in self.stages:
            yield from stage

    def __str__(self) -> str:
        segments = [str(self.stem)]
        for stage in self.stages:
            segments.append(", ".join(_format_run(block, count) for block, count in _runs(stage)))
        segments.append(str(self.head))
        return " | ".join(segments)

    @classmethod
    def parse(cls, text: str) -> "Arch":
        """Parse a genotype string strictly; raises :class:`GenotypeError` naming the bad token."""
        if not isinstance(text, str) or not text.strip():
            raise GenotypeError("empty genotype string")
        segments = [s.strip() for s in text.strip().split("|")]
        if len(segments) < 3:
            raise GenotypeError(
                f"genotype needs 'stem ... | <stage> | ... | head ...', got {len(segments)} segment(s): {text!r}"
            )
        stem = _parse_stem(segments[0])
        head = _parse_head(segments[-1])
        stages = tuple(_parse_stage(seg) for seg in segments[1:-1])
        return cls(stem=stem, stages=stages, head=head)


# ---------------------------------------------------------------- parsing helpers

_NUM = r"(\d+(?:\.\d+)?(?:e-?\d+)?)"
_INT = r"(\d+)"
_BLOCK_WORDS: dict[str, re.Pattern[str]] = {
    "k": re.compile(r"k(\d+(?:\.\d+)*)"),
    "e": re.compile(r"e" + _NUM),
    "c": re.compile(r"c" + _INT),
    "s": re.compile(r"s" + _INT),
    "d": re.compile(r"d" + _INT),
    "g": re.compile(r"g(\d+)\.(\d+)"),
    "se": re.compile(r"se" + _NUM),
    "r": re.compile(r"r" + _INT),
    "split": re.compile(r"split=(\w+)"),
    "pad": re.compile(r"pad=(\w+)"),
    "down": re.compile(r"down=(\w+)"),
    "act": re.compile(r"act=(\w+)"),
}


def _check_positive(where: str, key: str, value: object, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise GenotypeError(f"{where}: '{key}' must be an integer in [1, {maximum}], got {value!r}")


def _clip(text: str, keep: int = 40) -> str:
    """``text`` quoted, shortened for a message when it is absurdly long."""
    return repr(text) if len(text) <= keep else repr(text[:keep]) + f"... ({len(text):,} characters)"


def _number(match: re.Match[str], group: int = 1) -> int:
    """An integer of a matched token; one too long to be in range is refused by its token
    (every limit has a few digits: this keeps a 5000-digit token from reaching ``int``)."""
    text = match.group(group)
    if digits_beyond(text, 10**9):
        raise GenotypeError(f"token {_clip(match.group(0))}: number out of range")
    return int(text)


def _check_choice(where: str, key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise GenotypeError(f"{where}: unknown {key} {value!r}; expected one of {', '.join(choices)}")


def _match_words(segment: str, allowed: tuple[str, ...]) -> dict[str, re.Match[str]]:
    """Match each word of a segment to exactly one allowed key; reject unknown or repeated words."""
    found: dict[str, re.Match[str]] = {}
    for word in segment.split()[1:]:
        for key in allowed:
            m = _BLOCK_WORDS[key].fullmatch(word)
            if m:
                if key in found:
                    raise GenotypeError(f"token {word!r} repeats '{key}' in {segment!r}")
                found[key] = m
                break
        else:
            raise GenotypeError(f"unknown token {_clip(word)} in {_clip(segment, 120)}")
    return found


def _parse_stem(segment: str) -> Stem:
    words = segment.split()
    if not words or words[0] != "stem":
        raise GenotypeError(f"genotype must start with 'stem', got token {words[0] if words else ''!r}")
    found = _match_words(segment, ("c", "s", "act"))
    if "c" not in found:
        raise GenotypeError(f"stem needs a channel count 'c<N>' in {segment!r}")
    return Stem(
        channels=_number(found["c"]),
        stride=_number(found["s"]) if "s" in found else 2,
        act=found["act"].group(1) if "act" in found else "relu",
    )


def _parse_head(segment: str) -> Head:
    words = segment.split()
    if not words or words[0] != "head":
        raise GenotypeError(f"genotype must end with 'head', got token {words[0] if words else ''!r}")
    found = _match_words(segment, ("c", "act"))
    if "c" not in found:
        raise GenotypeError(f"head needs a channel count 'c<N>' in {segment!r}")
    return Head(channels=_number(found["c"]), act=found["act"].group(1) if "act" in found else "relu")


def _kernels(match: re.Match[str]) -> tuple[int, ...]:
    sizes = match.group(1).split(".")
    if len(sizes) > MAX_KERNEL_GROUPS or any(digits_beyond(k, MAX_KERNEL) for k in sizes):
        raise GenotypeError(f"token {_clip(match.group(0))}: 1 to {MAX_KERNEL_GROUPS} odd kernel sizes up to {MAX_KERNEL}")
    return tuple(int(k) for k in sizes)


def _parse_stage(segment: str) -> tuple[Block, ...]:
    if not segment:
        raise GenotypeError("empty stage between '|' separators")
    blocks: list[Block] = []
    for text in segment.split(","):
        text = text.strip()
        words = text.split()
        if not words:
            raise GenotypeError(f"empty block in stage {segment!r}")
        if words[0] not in BLOCK_KINDS:
            raise GenotypeError(f"unknown block type token {words[0]!r} in {text!r}; expected ir or ds")
        found = _match_words(text, tuple(_BLOCK_WORDS))
        for required in ("k", "c"):
            if required not in found:
                raise GenotypeError(f"block {text!r} needs '{required}'")
        repeat = _number(found["r"]) if "r" in found else 1
        if not 1 <= repeat <= MAX_DEPTH:
            raise GenotypeError(f"token {found['r'].group(0)!r}: repeat must be in [1, {MAX_DEPTH}]")
        try:
            block = Block(
                kind=words[0],
                kernels=_kernels(found["k"]),
                out_channels=_number(found["c"]),
                expansion=float(found["e"].group(1)) if "e" in found else 1.0,
                stride=_number(found["s"]) if "s" in found else 1,
                dilation=_number(found["d"]) if "d" in found else 1,
                pw_groups=(_number(found["g"]), _number(found["g"], 2)) if "g" in found else (1, 1),
                se=float(found["se"].group(1)) if "se" in found else 0.0,
                partition=found["split"].group(1) if "split" in found else "equal",
                padding=found["pad"].group(1) if "pad" in found else "zeros",
                downsample=found["down"].group(1) if "down" in found else "conv",
                act=found["act"].group(1) if "act" in found else "relu",
            )
        except GenotypeError as exc:
            raise GenotypeError(f"{exc} (in {_clip(text)})") from None
        blocks.extend([block] * repeat)
    return tuple(blocks)


def _runs(stage: tuple[Block, ...]) -> Iterator[tuple[Block, int]]:
    """Maximal runs of identical consecutive blocks (the canonical form merges them)."""
    i = 0
    while i < len(stage):
        j = i
        while j + 1 < len(stage) and stage[j + 1] == stage[i]:
            j += 1
        yield stage[i], j - i + 1
        i = j + 1


def _format_run(block: Block, count: int) -> str:
    words = block.words()
    if count > 1:
        words.append(f"r{count}")
    return " ".join(words)


__all__ = [
    "ACTIVATIONS",
    "Arch",
    "BLOCK_KINDS",
    "Block",
    "DOWNSAMPLES",
    "Head",
    "PADDINGS",
    "PARTITIONS",
    "Stem",
    "split_channels",
]
