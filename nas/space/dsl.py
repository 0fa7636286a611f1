"""The search-space DSL: a TOML file parsed and validated into plain frozen dataclasses.

Every error is a :class:`NasInputError` whose message reads
``<file>:<line>: <key path>: <what is wrong>``, e.g.
``search_spaces/x.toml:14: stages[2].defaults.kernels: kernel 4 is even``.
The line of a semantic error is found by a simple scan of the text (good enough:
it points at the key, or at the table that holds it).

A value that may be searched is either one value or a list of choices
(``expansion = 6`` or ``expansion = [3, 6]``). ``kernels`` and ``pw_groups`` are
lists themselves, so for them a flat list is one value (``kernels = [3, 5, 7]``, one
mixed conv with three groups) and a list of lists holds the choices
(``kernels = [[3], [3, 5]]``).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from nas.errors import GenotypeError, NasInputError
from nas.genotype import ACTIVATIONS, BLOCK_KINDS, DOWNSAMPLES, PADDINGS, PARTITIONS, split_channels

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

# Padding modes that read real pixels from the other side / the inside of the map:
# their pad must stay below the feature-map size.
_WRAP_PADDINGS = ("reflect", "circular")


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


# ---------------------------------------------------------------- errors and line lookup


def key_lines(text: str) -> dict[str, int]:
    """Map key paths (``stages[2].defaults.kernels``) to the 1-based line that declares them."""
    lines: dict[str, int] = {}
    prefix = ""
    array_counts: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^\[\[\s*([^\]]+?)\s*\]\]", line)
        if m:
            name = re.sub(r"\s*\.\s*", ".", m.group(1))
            index = array_counts.get(name, 0)
            array_counts[name] = index + 1
            prefix = f"{name}[{index}]"
            lines.setdefault(prefix, number)
            continue
        m = re.match(r"^\[\s*([^\]]+?)\s*\]", line)
        if m:
            name = re.sub(r"\s*\.\s*", ".", m.group(1))
            head, _, tail = name.partition(".")
            if head in array_counts and tail:
                name = f"{head}[{array_counts[head] - 1}].{tail}"
            prefix = name
            lines.setdefault(prefix, number)
            continue
        m = re.match(r'^([A-Za-z0-9_\-."\' ]+?)\s*=', line)
        if m:
            key = re.sub(r"\s*\.\s*", ".", m.group(1)).replace('"', "").replace("'", "")
            lines.setdefault(f"{prefix}.{key}" if prefix else key, number)
    return lines


class _Reporter:
    """Builds the NasInputError for a key path of one file."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self._lines = key_lines(text)

    def line_of(self, key_path: str) -> int | None:
        probe = key_path
        while probe:
            if probe in self._lines:
                return self._lines[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return None

    def error(self, key_path: str, message: str) -> NasInputError:
        line = self.line_of(key_path)
        where = f"{self.path}:{line}" if line is not None else self.path
        return NasInputError(f"{where}: {key_path}: {message}")


# ---------------------------------------------------------------- typed value readers


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _type_name(v: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}.get(
        type(v), type(v).__name__
    )


def _choices(rep: _Reporter, key: str, raw: object, one: Callable[[str, object], Any], what: str) -> tuple[Any, ...]:
    """A scalar value or a non-empty list of them -> a tuple of distinct converted choices."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise rep.error(key, f"empty choice list; give at least one {what}")
    out: list[Any] = []
    for item in items:
        value = one(key, item)
        if value in out:
            raise rep.error(key, f"duplicate choice {item!r}")
        out.append(value)
    return tuple(out)


def _nested_choices(
    rep: _Reporter, key: str, raw: object, one: Callable[[str, list], Any], what: str
) -> tuple[Any, ...]:
    """``kernels``/``pw_groups``: a flat list is one value, a list of lists the choices."""
    if _is_int(raw):
        raw = [raw]
    if not isinstance(raw, list):
        raise rep.error(key, f"expected {what} (a list of integers) or a list of them, got {_type_name(raw)}")
    if not raw:
        raise rep.error(key, "empty choice list")
    if all(isinstance(item, list) for item in raw):
        items = raw
    elif any(isinstance(item, list) for item in raw):
        raise rep.error(key, f"mixes lists and scalars; write one {what} as [3, 5] or choices as [[3], [3, 5]]")
    else:
        items = [raw]
    out: list[Any] = []
    for item in items:
        value = one(key, item)
        if value in out:
            raise rep.error(key, f"duplicate choice {item!r}")
        out.append(value)
    return tuple(out)


def _int_reader(minimum: int, what: str) -> Callable[[_Reporter], Callable[[str, object], int]]:
    def make(rep: _Reporter) -> Callable[[str, object], int]:
        def one(key: str, v: object) -> int:
            if not _is_int(v):
                raise rep.error(key, f"expected an integer or a list of integers, got {_type_name(v)} {v!r}")
            if v < minimum:
                raise rep.error(key, f"{what} must be >= {minimum}, got {v}")
            return int(v)

        return one

    return make


def _str_reader(allowed: tuple[str, ...], what: str) -> Callable[[_Reporter], Callable[[str, object], str]]:
    def make(rep: _Reporter) -> Callable[[str, object], str]:
        def one(key: str, v: object) -> str:
            if not isinstance(v, str):
                raise rep.error(key, f"expected a string or a list of strings, got {_type_name(v)} {v!r}")
            if v not in allowed:
                raise rep.error(key, f"unknown {what} {v!r}; expected one of {', '.join(allowed)}")
            return v

        return one

    return make


def _check_keys(rep: _Reporter, path: str, table: Mapping[str, object], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            full = f"{path}.{key}" if path else key
            raise rep.error(full, f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}")


def _table(rep: _Reporter, path: str, raw: object) -> Mapping[str, object]:
    if not isinstance(raw, dict):
        raise rep.error(path, f"expected a table, got {_type_name(raw)}")
    return raw


# ---------------------------------------------------------------- block choices


def _read_block_key(rep: _Reporter, key_path: str, key: str, raw: object) -> tuple[Any, ...]:
    if key == "type":
        return _choices(rep, key_path, raw, _str_reader(BLOCK_KINDS, "block type")(rep), "block type")
    if key == "partition":
        return _choices(rep, key_path, raw, _str_reader(PARTITIONS, "partition")(rep), "partition")
    if key == "padding":
        return _choices(rep, key_path, raw, _str_reader(PADDINGS, "padding mode")(rep), "padding mode")
    if key == "act":
        return _choices(rep, key_path, raw, _str_reader(ACTIVATIONS, "activation")(rep), "activation")
    if key == "dilation":
        return _choices(rep, key_path, raw, _int_reader(1, "dilation")(rep), "dilation")
    if key == "expansion":

        def expansion(k: str, v: object) -> float:
            if not _is_num(v):
                raise rep.error(k, f"expected a number or a list of numbers, got {_type_name(v)} {v!r}")
            if not v > 0:
                raise rep.error(k, f"expansion must be > 0, got {v}")
            return float(v)

        return _choices(rep, key_path, raw, expansion, "expansion ratio")
    if key == "se":

        def se(k: str, v: object) -> float:
            if not _is_num(v):
                raise rep.error(k, f"expected a number or a list of numbers, got {_type_name(v)} {v!r}")
            if not 0 <= v <= 1:
                raise rep.error(k, f"squeeze-excite ratio must be in [0, 1], got {v}")
            return float(v)

        return _choices(rep, key_path, raw, se, "squeeze-excite ratio")
    if key == "kernels":

        def kernels(k: str, v: list) -> tuple[int, ...]:
            if not v:
                raise rep.error(k, "a kernel group list needs at least one kernel size")
            for size in v:
                if not _is_int(size):
                    raise rep.error(k, f"kernel sizes must be integers, got {_type_name(size)} {size!r}")
                if size <= 0:
                    raise rep.error(k, f"kernel {size} must be positive")
                if size % 2 == 0:
                    raise rep.error(k, f"kernel {size} is even (MixConv kernels must be odd)")
            return tuple(int(s) for s in v)

        return _nested_choices(rep, key_path, raw, kernels, "kernel group list")
    if key == "pw_groups":

        def groups(k: str, v: list) -> tuple[int, int]:
            if len(v) != 2 or not all(_is_int(g) for g in v):
                raise rep.error(k, f"pw_groups needs two integers [expand, project], got {v!r}")
            if min(v) < 1:
                raise rep.error(k, f"group counts must be >= 1, got {v!r}")
            return (int(v[0]), int(v[1]))

        return _nested_choices(rep, key_path, raw, groups, "[expand, project] pair")
    raise AssertionError(key)  # pragma: no cover - keys are checked first


def _block_layer(rep: _Reporter, path: str, raw: object) -> dict[str, tuple[tuple[Any, ...], str]]:
    """Parse one table of block keys -> {key: (choices, key path)}."""
    table = _table(rep, path, raw)
    _check_keys(rep, path, table, BLOCK_KEYS)
    return {key: (_read_block_key(rep, f"{path}.{key}", key, value), f"{path}.{key}") for key, value in table.items()}


def _merge(*layers: Mapping[str, tuple[tuple[Any, ...], str]]) -> BlockChoices:
    """Later layers override earlier ones, key by key."""
    merged: dict[str, tuple[tuple[Any, ...], str]] = {}
    for layer in layers:
        merged.update(layer)
    values = {key: merged[key][0] for key in BLOCK_KEYS}
    sources = {key: merged[key][1] for key in BLOCK_KEYS}
    return BlockChoices(**values, sources=sources)


# ---------------------------------------------------------------- whole file


def parse_space(text: str, path: str, name: str | None = None) -> SpaceSpec:
    """Parse and validate the text of a space file; ``path`` is used in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        line = getattr(exc, "lineno", None) or (int(m.group(1)) if m else None)
        where = f"{path}:{line}" if line else path
        raise NasInputError(f"{where}: invalid TOML: {msg}") from None
    rep = _Reporter(path, text)
    _check_keys(rep, "", data, TOP_KEYS)

    description = data.get("description", "")
    if not isinstance(description, str):
        raise rep.error("description", f"expected a string, got {_type_name(description)}")

    # input
    if "input" not in data:
        raise rep.error("input", "missing table [input] (channels, size)")
    inp = _table(rep, "input", data["input"])
    _check_keys(rep, "input", inp, INPUT_KEYS)
    for key in INPUT_KEYS:
        if key not in inp:
            raise rep.error(f"input.{key}", "missing key")
    in_chans = inp["channels"]
    if not _is_int(in_chans) or in_chans < 1:
        raise rep.error("input.channels", f"expected a positive integer, got {in_chans!r}")
    size_raw = inp["size"]
    if _is_int(size_raw):
        size_raw = [size_raw, size_raw]
    if not (isinstance(size_raw, list) and len(size_raw) == 2 and all(_is_int(s) and s >= 1 for s in size_raw)):
        raise rep.error("input.size", f"expected a positive integer or [height, width], got {size_raw!r}")
    input_size = (int(size_raw[0]), int(size_raw[1]))

    # stem
    stem_raw = _table(rep, "stem", data.get("stem", {}))
    _check_keys(rep, "stem", stem_raw, STEM_KEYS)
    if "channels" not in stem_raw:
        raise rep.error("stem.channels", "missing key (the stem's output channels)")
    stem_stride = stem_raw.get("stride", 2)
    if not _is_int(stem_stride) or stem_stride < 1:
        raise rep.error("stem.stride", f"expected one positive integer (a stride is not searched), got {stem_stride!r}")
    stem = StemSpec(
        channels=_choices(rep, "stem.channels", stem_raw["channels"], _int_reader(1, "channels")(rep), "channel count"),
        stride=int(stem_stride),
        act=_choices(rep, "stem.act", stem_raw.get("act", "relu"), _str_reader(ACTIVATIONS, "activation")(rep), "activation"),
    )

    # head
    head_raw = _table(rep, "head", data.get("head", {}))
    _check_keys(rep, "head", head_raw, HEAD_KEYS)
    if "channels" not in head_raw:
        raise rep.error("head.channels", "missing key (0 for no head conv)")
    head = HeadSpec(
        channels=_choices(rep, "head.channels", head_raw["channels"], _int_reader(0, "channels")(rep), "channel count"),
        act=_choices(rep, "head.act", head_raw.get("act", "relu"), _str_reader(ACTIVATIONS, "activation")(rep), "activation"),
    )

    # block defaults
    builtin = {key: (_read_block_key(rep, key, key, value), f"defaults.{key}") for key, value in BLOCK_DEFAULTS.items()}
    top_defaults = _block_layer(rep, "defaults", data["defaults"]) if "defaults" in data else {}

    # stages
    if "stages" not in data:
        raise rep.error("stages", "missing: declare at least one [[stages]] table")
    stages_raw = data["stages"]
    if not isinstance(stages_raw, list) or not all(isinstance(s, dict) for s in stages_raw):
        raise rep.error("stages", "expected an array of tables ([[stages]])")
    if not stages_raw:
        raise rep.error("stages", "declare at least one [[stages]] table")

    stages: list[StageSpec] = []
    resolution = _downscale(input_size, stem.stride)
    prev_widths: tuple[int, ...] = stem.channels
    for i, st in enumerate(stages_raw):
        p = f"stages[{i}]"
        _check_keys(rep, p, st, STAGE_KEYS)
        for key in ("depth", "width"):
            if key not in st:
                raise rep.error(f"{p}.{key}", "missing key")
        depth = _choices(rep, f"{p}.depth", st["depth"], _int_reader(1, "depth")(rep), "depth")
        width = _choices(rep, f"{p}.width", st["width"], _int_reader(1, "width")(rep), "width")
        stride = st.get("stride", 1)
        if not _is_int(stride) or stride < 1:
            raise rep.error(f"{p}.stride", f"expected one positive integer (a stride is not searched), got {stride!r}")
        downsample = _choices(
            rep, f"{p}.downsample", st.get("downsample", "conv"), _str_reader(DOWNSAMPLES, "downsample")(rep), "downsample"
        )
        if stride == 1 and downsample != ("conv",):
            raise rep.error(f"{p}.downsample", "max/avg pooling needs a stage stride > 1; this stage has stride 1")
        stage_defaults = _block_layer(rep, f"{p}.defaults", st["defaults"]) if "defaults" in st else {}
        first_layer = _block_layer(rep, f"{p}.first", st["first"]) if "first" in st else {}
        rest = _merge(builtin, top_defaults, stage_defaults)
        first = _merge(builtin, top_defaults, stage_defaults, first_layer)
        resolution = _downscale(resolution, stride)
        _validate_block(rep, p, first, in_widths=prev_widths, widths=width, resolution=resolution, input_size=input_size)
        if max(depth) > 1:
            _validate_block(rep, p, rest, in_widths=width, widths=width, resolution=resolution, input_size=input_size)
        stages.append(
            StageSpec(depth=depth, width=width, stride=int(stride), downsample=downsample, first=first, rest=rest,
                      resolution=resolution)
        )
        prev_widths = width

    return SpaceSpec(
        name=name if name is not None else Path(path).stem,
        description=description.strip(),
        path=path,
        input_channels=int(in_chans),
        input_size=input_size,
        stem=stem,
        stages=tuple(stages),
        head=head,
    )


def _downscale(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Feature-map size after a stride: ``(H - 1) // stride + 1``, the same for a 'same'-padded
    strided conv and for the builder's max/avg pooling (odd kernel >= stride, 'same' padding)."""
    return tuple((s - 1) // stride + 1 for s in size)  # type: ignore[return-value]


def _validate_block(
    rep: _Reporter,
    stage_path: str,
    bc: BlockChoices,
    in_widths: tuple[int, ...],
    widths: tuple[int, ...],
    resolution: tuple[int, int],
    input_size: tuple[int, int],
) -> None:
    """Cross-key checks with the real channel counts and feature-map sizes of this stage."""
    src = bc.sources
    if "ds" in bc.type:
        for g in bc.pw_groups:
            if g[0] != 1:
                raise rep.error(
                    src["pw_groups"],
                    f"pw_groups {list(g)} with block type 'ds' (used in {stage_path}): a depthwise-separable "
                    "block has no expansion conv, its expand group count must be 1",
                )
    for kind in bc.type:
        expansions = bc.expansion if kind == "ir" else (1.0,)
        for e in expansions:
            for cin in in_widths:
                mid = cin if kind == "ds" else max(1, int(round(cin * e)))
                for g in bc.pw_groups:
                    if kind == "ir" and g[0] > min(cin, mid):
                        raise rep.error(
                            src["pw_groups"],
                            f"expand group count {g[0]} exceeds the channels of the expansion conv "
                            f"({cin} -> {mid}) in {stage_path}",
                        )
                    for cout in widths:
                        if g[1] > min(mid, cout):
                            raise rep.error(
                                src["pw_groups"],
                                f"project group count {g[1]} exceeds the channels of the projection conv "
                                f"({mid} -> {cout}) in {stage_path}",
                            )
                for kernels in bc.kernels:
                    if len(kernels) > mid:
                        raise rep.error(
                            src["kernels"],
                            f"{len(kernels)} kernel groups {_k(kernels)} but only {mid} channels in the mixed conv "
                            f"of a {kind} block in {stage_path} ({_mid_text(kind, cin, e)})",
                        )
                    partitions = bc.partition if len(kernels) > 1 else ("equal",)
                    for partition in partitions:
                        try:
                            split_channels(mid, len(kernels), partition)
                        except GenotypeError:
                            sizes = _raw_split(mid, len(kernels), partition)
                            raise rep.error(
                                src["partition"] if partition != "equal" else src["kernels"],
                                f"partition {partition!r} of {mid} channels ({_mid_text(kind, cin, e)}) into "
                                f"{len(kernels)} kernel groups {_k(kernels)} leaves a group with no channel "
                                f"{sizes} in {stage_path}",
                            ) from None
    h, w = resolution
    for padding in bc.padding:
        if padding not in _WRAP_PADDINGS:
            continue
        for d in bc.dilation:
            for kernels in bc.kernels:
                pad = d * (max(kernels) - 1) // 2
                if pad >= min(h, w):
                    raise rep.error(
                        src["padding"],
                        f"padding {padding!r} with kernel {max(kernels)} and dilation {d} pads {pad} pixels, but the "
                        f"feature map of {stage_path} is only {h}x{w} (declared input {input_size[0]}x{input_size[1]}); "
                        f"{padding} padding needs pad < feature-map size",
                    )


def _k(kernels: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(k) for k in kernels) + "]"


def _mid_text(kind: str, cin: int, e: float) -> str:
    if kind == "ds":
        return f"input width {cin}"
    return f"input width {cin} x expansion {format(e, 'g')}"


def _raw_split(channels: int, groups: int, partition: str) -> list[int]:
    if partition == "equal":
        sizes = [channels // groups] * groups
        sizes[0] += channels - sum(sizes)
        return sizes
    sizes = [channels // 2 ** (i + 1) for i in range(groups - 1)]
    sizes.append(channels - sum(sizes))
    return sizes


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
