"""Genotype text form: exact round trip (property-based) and strict, token-naming parse errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.errors import GenotypeError
from nas.genotype import ACTIVATIONS, DOWNSAMPLES, PADDINGS, PARTITIONS, Arch, Block, Head, Stem
from nas.space import builtin_names, load_space

SPACES = {name: load_space(name) for name in builtin_names()}


@pytest.mark.parametrize("name", sorted(SPACES))
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**63))
def test_sampled_archs_round_trip(name: str, seed: int) -> None:
    arch = SPACES[name].sample(seed)
    text = str(arch)
    assert Arch.parse(text) == arch
    assert str(Arch.parse(text)) == text
    assert "\n" not in text


@st.composite
def blocks(draw: st.DrawFn) -> Block:
    kind = draw(st.sampled_from(["ir", "ds"]))
    kernels = tuple(draw(st.lists(st.sampled_from([1, 3, 5, 7, 9, 11]), min_size=1, max_size=5)))
    stride = draw(st.sampled_from([1, 2, 3]))
    return Block(
        kind=kind,
        kernels=kernels,
        out_channels=draw(st.integers(1, 512)),
        expansion=draw(st.sampled_from([1, 2, 3, 4, 6, 0.5, 2.5])) if kind == "ir" else 1.0,
        stride=stride,
        dilation=draw(st.integers(1, 4)),
        pw_groups=(1 if kind == "ds" else draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        se=draw(st.sampled_from([0.0, 0.125, 0.25, 0.5, 1.0])),
        partition=draw(st.sampled_from(PARTITIONS)),
        padding=draw(st.sampled_from(PADDINGS)),
        downsample=draw(st.sampled_from(DOWNSAMPLES)) if stride > 1 else "conv",
        act=draw(st.sampled_from(ACTIVATIONS)),
    )


@settings(max_examples=300, deadline=None)
@given(block=blocks())
def test_block_words_round_trip(block: Block) -> None:
    # a block on its own: wide enough input so that every partition leaves each group a channel
    arch = Arch(stem=Stem(channels=512), stages=((block,),), head=Head(0))
    assert Arch.parse(str(arch)) == arch
    if len(block.kernels) == 1:
        assert block.partition == "equal"


@settings(max_examples=100, deadline=None)
@given(
    stage=st.lists(blocks(), min_size=1, max_size=6),
    stem_c=st.integers(64, 256),
    stem_s=st.integers(1, 3),
    act=st.sampled_from(ACTIVATIONS),
    head_c=st.integers(0, 2048),
)
def test_stage_with_repeats_round_trips(stage: list[Block], stem_c: int, stem_s: int, act: str, head_c: int) -> None:
    # repeats (r<N>) appear when a block is followed by copies of itself
    blocks_ = [b for b in stage for _ in range(1 + (b.out_channels % 3))]
    try:
        arch = Arch(stem=Stem(stem_c, stem_s, act), stages=(tuple(blocks_),), head=Head(head_c, act))
    except GenotypeError:
        return  # a narrow block followed by a many-group mixed conv: rejected, as it should be
    text = str(arch)
    assert Arch.parse(text) == arch and str(Arch.parse(text)) == text


BAD = [
    ("stem c16 | ir k3 c16 q7 | head c0", "'q7'"),
    ("stem c16 | ir k4 c16 | head c0", "4"),
    ("stem c16 | xx k3 c16 | head c0", "'xx'"),
    ("stem c16 | ir k3 c16 pad=mirror | head c0", "mirror"),
    ("stem c16 | ir k3 c16 act=gelu | head c0", "gelu"),
    ("stem c16 | ir k3 c16 split=log k3.5 | head c0", "log"),
    ("stem c16 | ir k3 c16 c24 | head c0", "'c24'"),
    ("stem c16 | ir k3 c16 down=max | head c0", "down=max"),
    ("stem c16 | ds k3 e6 c16 | head c0", "e6"),
    ("stem c16 | ir k3 | head c0", "'c'"),
    ("stem c16 | ir c16 | head c0", "'k'"),
    ("stem c16 | | head c0", "empty"),
    ("stem c16 | ir k3 c16", "head"),
    ("sten c16 | ir k3 c16 | head c0", "'sten'"),
    ("stem c16 | ir k3 c16 | head c0 x", "'x'"),
    ("stem c2 | ds k3.5.7 c16 | head c0", "no channel"),
    ("", "empty"),
]


@pytest.mark.parametrize("text,token", BAD)
def test_parse_errors_name_the_token(text: str, token: str) -> None:
    with pytest.raises(GenotypeError) as info:
        Arch.parse(text)
    assert token in str(info.value)
