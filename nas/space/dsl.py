"""The search-space DSL: a TOML file parsed and validated into plain frozen dataclasses.

Every error is a :class:`NasInputError` whose message reads
``<file>:<line>: <key path>: <what is wrong>``, e.g.
``search_spaces/x.toml:14: stages[2].defaults.kernels: kernel 4 is even``.

This module is the schema: which tables and keys a space file has, their defaults, how
block defaults layer (built-in < ``[defaults]`` < a stage's ``defaults`` < its ``first``).
It reads values with :mod:`nas.space.values`, locates and reports errors with
:mod:`nas.space.source`, and runs the cross-key checks of :mod:`nas.space.checks`.

A value that may be searched is either one value or a list of choices
(``expansion = 6`` or ``expansion = [3, 6]``). ``kernels`` and ``pw_groups`` are
lists themselves, so for them a flat list is one value (``kernels = [3, 5, 7]``, one
mixed conv with three groups) and a list of lists holds the choices
(``kernels = [[3], [3, 5]]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from nas.genotype import ACTIVATIONS, BLOCK_KINDS, DOWNSAMPLES, PADDINGS, PARTITIONS
from nas.limits import (
    MAX_CHANNELS,
    MAX_DEPTH,
    MAX_DILATION,
    MAX_EXPANSION,
    MAX_INPUT_SIZE,
    MAX_KERNEL,
    MAX_KERNEL_GROUPS,
    MAX_STAGES,
    MAX_STRIDE,
)
from nas.space.checks import check_block, downscale
from nas.space.source import Reporter, key_lines, load_toml
from nas.space.spec import BlockChoices, HeadSpec, SpaceSpec, StageSpec, StemSpec
from nas.space.values import (
    OneValue,
    check_keys,
    choices,
    int_reader,
    is_int,
    is_num,
    nested_choices,
    one_positive_int,
    shown,
    str_reader,
    table,
    type_name,
)

TOP_KEYS = ("description", "input", "stem", "defaults", "stages", "head")
INPUT_KEYS = ("channels", "size")
STEM_KEYS = ("channels", "stride", "act")
HEAD_KEYS = ("channels", "act")
STAGE_KEYS = ("depth", "width", "stride", "downsample", "defaults", "first")
BLOCK_KEYS = ("type", "kernels", "partition", "dilation", "padding", "expansion", "se", "act", "pw_groups")

# Built-in block defaults: the genotype's own defaults.
BLOCK_DEFAULTS: dict[str, Any] = {
    "type": "ir",
    "kernels": [3],
    "partition": "equal",
    "dilation": 1,
    "padding": "zeros",
    "expansion": 1,
    "se": 0,
    "act": "relu",
    "pw_groups": [1, 1],
}

# One layer of block keys: key -> (its choices, the key path they came from).
BlockLayer = Mapping[str, tuple[tuple[Any, ...], str]]


# ---------------------------------------------------------------- block keys


def _expansion(rep: Reporter) -> OneValue:
    def one(k: str, v: object) -> float:
        if not is_num(v):
            raise rep.error(k, f"expected a number or a list of numbers, got {type_name(v)} {shown(v)}")
        if not 0 < v <= MAX_EXPANSION:
            raise rep.error(k, f"expansion must be in (0, {MAX_EXPANSION:g}], got {shown(v)}")
        return float(v)

    return one


def _se(rep: Reporter) -> OneValue:
    def one(k: str, v: object) -> float:
        if not is_num(v):
            raise rep.error(k, f"expected a number or a list of numbers, got {type_name(v)} {v!r}")
        if not 0 <= v <= 1:
            raise rep.error(k, f"squeeze-excite ratio must be in [0, 1], got {v}")
        return float(v)

    return one


def _kernel_group(rep: Reporter) -> OneValue:
    def one(k: str, v: list) -> tuple[int, ...]:
        if not v:
            raise rep.error(k, "a kernel group list needs at least one kernel size")
        if len(v) > MAX_KERNEL_GROUPS:
            raise rep.error(k, f"{len(v)} kernel groups; a mixed conv has at most {MAX_KERNEL_GROUPS}")
        for size in v:
            if not is_int(size):
                raise rep.error(k, f"kernel sizes must be integers, got {type_name(size)} {shown(size)}")
            if not 1 <= size <= MAX_KERNEL:
                raise rep.error(k, f"kernel {shown(size)} out of range; kernel sizes are 1 to {MAX_KERNEL}")
            if size % 2 == 0:
                raise rep.error(k, f"kernel {size} is even (MixConv kernels must be odd)")
        return tuple(int(s) for s in v)

    return one


def _group_pair(rep: Reporter) -> OneValue:
    def one(k: str, v: list) -> tuple[int, int]:
        if len(v) != 2 or not all(is_int(g) for g in v):
            raise rep.error(k, f"pw_groups needs two integers [expand, project], got {v!r}")
        if not 1 <= min(v) <= max(v) <= MAX_CHANNELS:
            raise rep.error(k, f"group counts must be in [1, {MAX_CHANNELS}], got {[shown(g) for g in v]}")
        return (int(v[0]), int(v[1]))

    return one


# Block keys whose value is one string of a vocabulary: key -> (allowed, what it is called).
_WORD_KEYS = {
    "type": (BLOCK_KINDS, "block type"),
    "partition": (PARTITIONS, "partition"),
    "padding": (PADDINGS, "padding mode"),
    "act": (ACTIVATIONS, "activation"),
}


def _read_block_key(rep: Reporter, key_path: str, key: str, raw: object) -> tuple[Any, ...]:
    """The choices of one block key (``key``, found at ``key_path``)."""
    if key in _WORD_KEYS:
        allowed, what = _WORD_KEYS[key]
        return choices(rep, key_path, raw, str_reader(rep, allowed, what), what)
    if key == "dilation":
        return choices(rep, key_path, raw, int_reader(rep, 1, "dilation", MAX_DILATION), "dilation")
    if key == "expansion":
        return choices(rep, key_path, raw, _expansion(rep), "expansion ratio")
    if key == "se":
        return choices(rep, key_path, raw, _se(rep), "squeeze-excite ratio")
    if key == "kernels":
        return nested_choices(rep, key_path, raw, _kernel_group(rep), "kernel group list")
    if key == "pw_groups":
        return nested_choices(rep, key_path, raw, _group_pair(rep), "[expand, project] pair")
    raise AssertionError(key)  # pragma: no cover - keys are checked first


def _block_layer(rep: Reporter, path: str, raw: object) -> BlockLayer:
    """Parse one table of block keys -> {key: (choices, key path)}."""
    tbl = table(rep, path, raw)
    check_keys(rep, path, tbl, BLOCK_KEYS)
    return {key: (_read_block_key(rep, f"{path}.{key}", key, value), f"{path}.{key}") for key, value in tbl.items()}


def _merge(*layers: BlockLayer) -> BlockChoices:
    """Later layers override earlier ones, key by key."""
    merged: dict[str, tuple[tuple[Any, ...], str]] = {}
    for layer in layers:
        merged.update(layer)
    values = {key: merged[key][0] for key in BLOCK_KEYS}
    sources = {key: merged[key][1] for key in BLOCK_KEYS}
    return BlockChoices(**values, sources=sources)


# ---------------------------------------------------------------- tables


def _read_input(rep: Reporter, data: Mapping[str, Any]) -> tuple[int, tuple[int, int]]:
    """``[input]`` -> (channels, (height, width))."""
    if "input" not in data:
        raise rep.error("input", "missing table [input] (channels, size)")
    inp = table(rep, "input", data["input"])
    check_keys(rep, "input", inp, INPUT_KEYS)
    for key in INPUT_KEYS:
        if key not in inp:
            raise rep.error(f"input.{key}", "missing key")
    in_chans = one_positive_int(rep, "input.channels", inp["channels"], "expected a positive integer", MAX_CHANNELS)
    size_raw = inp["size"]
    if is_int(size_raw):
        size_raw = [size_raw, size_raw]
    if not (isinstance(size_raw, list) and len(size_raw) == 2 and all(is_int(s) and 1 <= s <= MAX_INPUT_SIZE for s in size_raw)):
        given = shown(size_raw) if not isinstance(size_raw, list) else "[" + ", ".join(shown(s) for s in size_raw) + "]"
        raise rep.error("input.size", f"expected a positive integer or [height, width] up to {MAX_INPUT_SIZE}, got {given}")
    return in_chans, (int(size_raw[0]), int(size_raw[1]))


def _read_stem(rep: Reporter, data: Mapping[str, Any]) -> StemSpec:
    stem_raw = table(rep, "stem", data.get("stem", {}))
    check_keys(rep, "stem", stem_raw, STEM_KEYS)
    if "channels" not in stem_raw:
        raise rep.error("stem.channels", "missing key (the stem's output channels)")
    stride = one_positive_int(
        rep, "stem.stride", stem_raw.get("stride", 2), "expected one positive integer (a stride is not searched)", MAX_STRIDE
    )
    return StemSpec(
        channels=choices(rep, "stem.channels", stem_raw["channels"], int_reader(rep, 1, "channels", MAX_CHANNELS), "channel count"),
        stride=stride,
        act=choices(rep, "stem.act", stem_raw.get("act", "relu"), str_reader(rep, ACTIVATIONS, "activation"), "activation"),
    )


def _read_head(rep: Reporter, data: Mapping[str, Any]) -> HeadSpec:
    head_raw = table(rep, "head", data.get("head", {}))
    check_keys(rep, "head", head_raw, HEAD_KEYS)
    if "channels" not in head_raw:
        raise rep.error("head.channels", "missing key (0 for no head conv)")
    return HeadSpec(
        channels=choices(rep, "head.channels", head_raw["channels"], int_reader(rep, 0, "channels", MAX_CHANNELS), "channel count"),
        act=choices(rep, "head.act", head_raw.get("act", "relu"), str_reader(rep, ACTIVATIONS, "activation"), "activation"),
    )


def _read_stage(
    rep: Reporter,
    p: str,
    st: Mapping[str, Any],
    defaults: tuple[BlockLayer, BlockLayer],
    prev_widths: tuple[int, ...],
    resolution: tuple[int, int],
    input_size: tuple[int, int],
) -> StageSpec:
    """One ``[[stages]]`` table at key path ``p``, its blocks checked against the widths that
    feed it and the feature map it produces (``resolution`` is the one it receives)."""
    check_keys(rep, p, st, STAGE_KEYS)
    for key in ("depth", "width"):
        if key not in st:
            raise rep.error(f"{p}.{key}", "missing key")
    depth = choices(rep, f"{p}.depth", st["depth"], int_reader(rep, 1, "depth", MAX_DEPTH), "depth")
    width = choices(rep, f"{p}.width", st["width"], int_reader(rep, 1, "width", MAX_CHANNELS), "width")
    stride = one_positive_int(
        rep, f"{p}.stride", st.get("stride", 1), "expected one positive integer (a stride is not searched)", MAX_STRIDE
    )
    downsample = choices(
        rep, f"{p}.downsample", st.get("downsample", "conv"), str_reader(rep, DOWNSAMPLES, "downsample"), "downsample"
    )
    if stride == 1 and downsample != ("conv",):
        raise rep.error(f"{p}.downsample", "max/avg pooling needs a stage stride > 1; this stage has stride 1")
    stage_defaults = _block_layer(rep, f"{p}.defaults", st["defaults"]) if "defaults" in st else {}
    first_layer = _block_layer(rep, f"{p}.first", st["first"]) if "first" in st else {}
    rest = _merge(*defaults, stage_defaults)
    first = _merge(*defaults, stage_defaults, first_layer)
    resolution = downscale(resolution, stride)
    check_block(rep, p, first, in_widths=prev_widths, widths=width, resolution=resolution, input_size=input_size)
    if max(depth) > 1:
        check_block(rep, p, rest, in_widths=width, widths=width, resolution=resolution, input_size=input_size)
    return StageSpec(depth=depth, width=width, stride=stride, downsample=downsample, first=first, rest=rest,
                     resolution=resolution)


def _read_stages(
    rep: Reporter, data: Mapping[str, Any], defaults: tuple[BlockLayer, BlockLayer], stem: StemSpec,
    input_size: tuple[int, int],
) -> tuple[StageSpec, ...]:
    if "stages" not in data:
        raise rep.error("stages", "missing: declare at least one [[stages]] table")
    stages_raw = data["stages"]
    if not isinstance(stages_raw, list) or not all(isinstance(s, dict) for s in stages_raw):
        raise rep.error("stages", "expected an array of tables ([[stages]])")
    if not stages_raw:
        raise rep.error("stages", "declare at least one [[stages]] table")
    if len(stages_raw) > MAX_STAGES:
        raise rep.error("stages", f"{len(stages_raw)} stages; a network has at most {MAX_STAGES}")
    stages: list[StageSpec] = []
    resolution = downscale(input_size, stem.stride)
    prev_widths: tuple[int, ...] = stem.channels
    for i, st in enumerate(stages_raw):
        stage = _read_stage(rep, f"stages[{i}]", st, defaults, prev_widths, resolution, input_size)
        stages.append(stage)
        resolution, prev_widths = stage.resolution, stage.width
    return tuple(stages)


# ---------------------------------------------------------------- whole file


def parse_space(text: str, path: str, name: str | None = None) -> SpaceSpec:
    """Parse and validate the text of a space file; ``path`` is used in messages."""
    data = load_toml(text, path)
    rep = Reporter(path, text)
    check_keys(rep, "", data, TOP_KEYS)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise rep.error("description", f"expected a string, got {type_name(description)}")
    in_chans, input_size = _read_input(rep, data)
    stem = _read_stem(rep, data)
    head = _read_head(rep, data)
    builtin = {key: (_read_block_key(rep, key, key, value), f"defaults.{key}") for key, value in BLOCK_DEFAULTS.items()}
    top_defaults = _block_layer(rep, "defaults", data["defaults"]) if "defaults" in data else {}
    return SpaceSpec(
        name=name if name is not None else Path(path).stem,
        description=description.strip(),
        path=path,
        input_channels=in_chans,
        input_size=input_size,
        stem=stem,
        stages=_read_stages(rep, data, (builtin, top_defaults), stem, input_size),
        head=head,
    )


__all__ = [
    "BLOCK_DEFAULTS",
    "BLOCK_KEYS",
    "BlockChoices",
    "HeadSpec",
    "SpaceSpec",
    "StageSpec",
    "StemSpec",
    "key_lines",
    "parse_space",
]
