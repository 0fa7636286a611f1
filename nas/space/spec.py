"""The parsed space file: plain frozen dataclasses, the output of :func:`nas.space.dsl.parse_space`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class BlockChoices:
    """The choices of one block position (each block draws its own from these)."""

    type: tuple[str, ...]
    kernels: tuple[tuple[int, ...], ...]
    partition: tuple[str, ...]
    dilation: tuple[int, ...]
    padding: tuple[str, ...]
    expansion: tuple[float, ...]
    se: tuple[float, ...]
    act: tuple[str, ...]
    pw_groups: tuple[tuple[int, int], ...]
    # key -> key path it came from (for error messages); not part of the value.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class StemSpec:
    channels: tuple[int, ...]
    stride: int
    act: tuple[str, ...]


@dataclass(frozen=True)
class HeadSpec:
    channels: tuple[int, ...]
    act: tuple[str, ...]


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``first`` for its first block, ``rest`` for the others."""

    depth: tuple[int, ...]
    width: tuple[int, ...]
    stride: int
    downsample: tuple[str, ...]
    first: BlockChoices
    rest: BlockChoices
    resolution: tuple[int, int]  # feature-map size (H, W) at the stage's output, declared input


@dataclass(frozen=True)
class SpaceSpec:
    name: str
    description: str
    path: str
    input_channels: int
    input_size: tuple[int, int]
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    head: HeadSpec


__all__ = ["BlockChoices", "HeadSpec", "SpaceSpec", "StageSpec", "StemSpec"]
