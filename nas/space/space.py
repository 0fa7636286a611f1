"""The :class:`Space`: a validated DSL file that counts, samples and suggests architectures.

One routine, :meth:`Space.draw`, walks the space and asks a *chooser* for every
decision that has more than one option, in a fixed order and only where the decision
matters (partition only for blocks with several kernel groups, expansion only for
``ir`` blocks, downsampling only for the first block of a strided stage, blocks only
up to the chosen depth). ``suggest`` answers through an Optuna trial, ``sample``
through a seeded ``random.Random``, ``iter_archs`` by walking every branch, and callers with a
policy of their own (a supernet's largest subnet, a tilted draw) through :meth:`Space.draw`
with the decision names and kinds of :mod:`nas.space.decisions`. So each
distinct architecture corresponds to exactly one set of answers and ``size()`` counts
them in closed form.
"""

from __future__ import annotations

import math

import random
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from nas.errors import NasInputError
from nas.genotype import Arch, Block, Head, Stem
from nas.space import decisions as d
from nas.space.decisions import Chooser
from nas.space.dsl import parse_space
from nas.space.spec import BlockChoices, SpaceSpec, StageSpec

if TYPE_CHECKING:
    import optuna

BUILTIN_PACKAGE = "search_spaces"


def builtin_names() -> list[str]:
    """Names of the built-in spaces (``.toml`` files shipped in the ``search_spaces`` package)."""
    root = resources.files(BUILTIN_PACKAGE)
    return sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))


def load_space(name_or_path: str | Path) -> "Space":
    """A built-in space by name (``mdconv``) or a space file by path (``my_space.toml``)."""
    text_name = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or text_name.endswith(".toml") or "/" in text_name or "\\" in text_name
    if looks_like_path or Path(text_name).is_file():
        path = Path(text_name)
        if path.is_dir():
            raise NasInputError(f"{text_name}: is a directory, not a space file")
        if not path.is_file():
            raise NasInputError(f"{text_name}: no such space file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise NasInputError(f"{text_name}: cannot read space file: {exc}") from None
        return Space(parse_space(text, text_name, name=path.stem))
    names = builtin_names()
    if text_name not in names:
        raise NasInputError(
            f"unknown space {text_name!r}; built-in spaces: {', '.join(names)} (or give a path to a .toml file)"
        )
    resource = resources.files(BUILTIN_PACKAGE) / f"{text_name}.toml"
    return Space(parse_space(resource.read_text(encoding="utf-8"), str(resource), name=text_name))


def format_size(n: int) -> str:
    """Exact below a million, else ``~3.2e+14`` (works for integers beyond float range)."""
    if n < 1_000_000:
        return str(n)
    exponent = len(str(n)) - 1 if n.bit_length() < 10_000 else int(math.log10(n))  # str() stops at 4300 digits
    mantissa = round(n // 10 ** (exponent - 2) / 100, 1)
    if mantissa >= 10:
        mantissa, exponent = 1.0, exponent + 1
    return f"~{mantissa:.1f}e+{exponent:02d}"


def _encode(value: Any) -> Any:
    """Optuna categorical values: tuples as dotted strings ("3.5.7"), the rest as they are."""
    if isinstance(value, tuple):
        return ".".join(str(v) for v in value)
    return value


def _block_count(bc: BlockChoices) -> int:
    """Distinct blocks one position can hold (conditional keys counted only where they matter)."""
    n = 0
    for kind in bc.type:
        for kernels in bc.kernels:
            n += (len(bc.partition) if len(kernels) > 1 else 1) * (len(bc.expansion) if kind == "ir" else 1)
    return n * len(bc.dilation) * len(bc.padding) * len(bc.se) * len(bc.act) * len(bc.pw_groups)


class Space:
    """A parsed, validated search space. Build one with :func:`load_space`."""

    def __init__(self, spec: SpaceSpec) -> None:
        self.spec = spec

    # ------------------------------------------------------------ identity

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def path(self) -> str:
        return self.spec.path

    @property
    def input_channels(self) -> int:
        return self.spec.input_channels

    @property
    def input_size(self) -> tuple[int, int]:
        return self.spec.input_size

    @staticmethod
    def builtin_names() -> list[str]:
        return builtin_names()

    # ------------------------------------------------------------ counting

    def size(self) -> int:
        """The exact number of distinct architectures in the space."""
        spec = self.spec
        total = len(spec.stem.channels) * len(spec.stem.act) * len(spec.head.channels) * len(spec.head.act)
        for stage in spec.stages:
            first = _block_count(stage.first) * (len(stage.downsample) if stage.stride > 1 else 1)
            rest = _block_count(stage.rest)
            total *= len(stage.width) * sum(first * rest ** (d - 1) for d in stage.depth)
        return total

    # ------------------------------------------------------------ drawing

    def draw(self, choose: Chooser) -> Arch:
        """The architecture whose every decision with more than one option ``choose(name, options)``
        answers, in a fixed order, only where it matters (names: :mod:`nas.space.decisions`)."""

        def pick(name: str, options: Sequence[Any]) -> Any:
            return options[0] if len(options) == 1 else choose(name, options)

        spec = self.spec
        stem = Stem(
            channels=pick(d.STEM_CHANNELS, spec.stem.channels),
            stride=spec.stem.stride,
            act=pick(d.STEM_ACT, spec.stem.act),
        )
        stages = []
        for i, stage in enumerate(spec.stages):
            depth = pick(d.stage_decision(i, d.DEPTH), stage.depth)
            width = pick(d.stage_decision(i, d.WIDTH), stage.width)
            blocks = []
            for j in range(depth):
                blocks.append(self._draw_block(pick, i, j, stage, width))
            stages.append(tuple(blocks))
        head = Head(channels=pick(d.HEAD_CHANNELS, spec.head.channels), act=pick(d.HEAD_ACT, spec.head.act))
        return Arch(stem=stem, stages=tuple(stages), head=head)

    @staticmethod
    def _draw_block(pick: Chooser, i: int, j: int, stage: StageSpec, width: int) -> Block:
        bc = stage.first if j == 0 else stage.rest

        def p(kind: str) -> str:
            return d.block_decision(i, j, kind)

        kind = pick(p(d.TYPE), bc.type)
        kernels = pick(p(d.KERNELS), bc.kernels)
        partition = pick(p(d.PARTITION), bc.partition) if len(kernels) > 1 else "equal"
        expansion = pick(p(d.EXPANSION), bc.expansion) if kind == "ir" else 1.0
        strided = j == 0 and stage.stride > 1
        downsample = pick(d.stage_decision(i, d.DOWNSAMPLE), stage.downsample) if strided else "conv"
        return Block(
            kind=kind,
            kernels=kernels,
            out_channels=width,
            expansion=expansion,
            stride=stage.stride if j == 0 else 1,
            dilation=pick(p(d.DILATION), bc.dilation),
            pw_groups=pick(p(d.PW_GROUPS), bc.pw_groups),
            se=pick(p(d.SE), bc.se),
            partition=partition,
            padding=pick(p(d.PADDING), bc.padding),
            downsample=downsample,
            act=pick(p(d.ACT), bc.act),
        )

    def suggest(self, trial: "optuna.trial.BaseTrial") -> Arch:
        """Define-by-run: one categorical Optuna parameter per decision that matters.

        Names look like ``s2.depth``, ``s2.width``, ``s2.b0.kernels`` (values "3.5.7"),
        ``s2.downsample``, ``stem.channels``, ``head.channels``. Decisions with a single
        option are not suggested; blocks beyond the chosen depth are not suggested.
        """

        def choose(name: str, options: Sequence[Any]) -> Any:
            encoded = [_encode(o) for o in options]
            value = trial.suggest_categorical(name, encoded)
            return options[encoded.index(value)]

        return self.draw(choose)

    def sample(self, seed: int | str | random.Random) -> Arch:
        """A random architecture: each decision uniform over its options, seeded (or drawn from
        ``seed`` itself when it is a ``random.Random``, for several draws from one stream)."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        return self.draw(lambda _name, options: options[rng.randrange(len(options))])

    def iter_archs(self, limit: int | None = None) -> Iterator[Arch]:
        """Every architecture, one per branch of the decision tree (for small spaces and tests)."""
        path: list[int] = []  # chosen option index per decision, in draw order
        count = 0
        while True:
            widths: list[int] = []

            def choose(_name: str, options: Sequence[Any]) -> Any:
                k = len(widths)
                widths.append(len(options))
                if k >= len(path):
                    path.append(0)
                return options[path[k]]

            yield self.draw(choose)
            count += 1
            if limit is not None and count >= limit:
                return
            del path[len(widths):]
            # advance the odometer from the last decision
            while path and path[-1] + 1 >= widths[len(path) - 1]:
                path.pop()
            if not path:
                return
            path[-1] += 1

    # ------------------------------------------------------------ text

    def describe(self) -> str:
        """A readable multi-line summary of the choices."""
        spec = self.spec
        h, w = spec.input_size
        lines = [
            f"space {spec.name}: {spec.description or '(no description)'}",
            f"  file:  {spec.path}",
            f"  input: {spec.input_channels}x{h}x{w}   size: {format_size(self.size())} architecture{'' if self.size() == 1 else 's'}",
            f"  stem:  channels {_opts(spec.stem.channels)}  stride {spec.stem.stride}  act {_opts(spec.stem.act)}",
        ]
        for i, st in enumerate(spec.stages):
            down = f"  downsample {_opts(st.downsample)}" if st.stride > 1 else ""
            lines.append(
                f"  s{i}:    depth {_opts(st.depth)}  width {_opts(st.width)}  stride {st.stride}{down}"
                f"  (feature map {st.resolution[0]}x{st.resolution[1]})"
            )
            if st.first != st.rest and max(st.depth) > 1:
                lines.append(f"          first block: {_block_text(st.first)}")
                lines.append(f"          other blocks: {_block_text(st.rest)}")
            else:
                lines.append(f"          blocks: {_block_text(st.first)}")
        lines.append(f"  head:  channels {_opts(spec.head.channels)}  act {_opts(spec.head.act)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        h, w = self.input_size
        return (
            f"Space({self.name!r}, size={format_size(self.size())}, input={self.input_channels}x{h}x{w}, "
            f"stages={len(self.spec.stages)}, path={self.path!r})"
        )


def _opts(options: Sequence[Any]) -> str:
    text = [str(_encode(o)) if not isinstance(o, float) else format(o, "g") for o in options]
    return text[0] if len(text) == 1 else "{" + ", ".join(text) + "}"


def _block_text(bc: BlockChoices) -> str:
    parts = [f"type {_opts(bc.type)}", f"kernels {_opts(bc.kernels)}"]
    if any(len(k) > 1 for k in bc.kernels):
        parts.append(f"partition {_opts(bc.partition)}")
    if "ir" in bc.type:
        parts.append(f"expansion {_opts(bc.expansion)}")
    parts += [
        f"dilation {_opts(bc.dilation)}",
        f"padding {_opts(bc.padding)}",
        f"se {_opts(bc.se)}",
        f"act {_opts(bc.act)}",
        f"pw_groups {_opts(bc.pw_groups)}",
    ]
    return "  ".join(parts)


__all__ = ["Space", "builtin_names", "format_size", "load_space"]
