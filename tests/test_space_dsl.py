"""The space DSL: validation messages (file, line, key path), sizes, built-ins, `nas spaces`."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from nas.errors import NasInputError
from nas.borders import border_pad_fits
from nas.genotype import Arch, Block, Head, Stem, split_channels
from nas.space import Space, builtin_names, format_size, load_space, parse_space
from nas.space.dsl import key_lines

BASE = """\
description = "tiny"

[input]
channels = 1
size = [28, 28]

[stem]
channels = 8
stride = 1

[defaults]
kernels = [[3], [3, 5]]

[[stages]]
depth = [1, 2]
width = 8

[[stages]]
depth = 1
width = [16, 24]
stride = 2

[head]
channels = 0
"""


def _write(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _load_error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(NasInputError) as info:
        load_space(str(path))
    return str(info.value)


def _replace(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


STAGE1 = "[[stages]]\ndepth = 1\nwidth = [16, 24]\nstride = 2\n"

# (id, file text, substrings that must all be in the message, expected line number)
BAD_CASES = [
    ("unknown-top-key", BASE + "colour = 3\n", ["colour", "unknown key"], None),
    ("unknown-stage-key", _replace("depth = [1, 2]", "depth = [1, 2]\nwidht = 8"), ["stages[0].widht", "did you mean 'width'"], 16),
    ("unknown-block-key", _replace("kernels = [[3], [3, 5]]", "kernel = [3]"), ["defaults.kernel", "unknown key"], 12),
    ("unknown-stem-key", _replace("stride = 1\n", "stride = 1\nact2 = 'relu'\n"), ["stem.act2"], 10),
    ("wrong-type-depth", _replace("depth = [1, 2]", 'depth = "2"'), ["stages[0].depth", "integer"], 15),
    ("wrong-type-width-float", _replace("width = 8", "width = 8.5"), ["stages[0].width", "integer"], 16),
    ("bool-is-not-int", _replace("width = 8", "width = true"), ["stages[0].width", "boolean"], 16),
    ("empty-choices", _replace("depth = [1, 2]", "depth = []"), ["stages[0].depth", "empty choice list"], 15),
    ("empty-kernels", _replace("kernels = [[3], [3, 5]]", "kernels = []"), ["defaults.kernels", "empty"], 12),
    ("even-kernel", _replace("kernels = [[3], [3, 5]]", "kernels = [[3], [3, 4]]"), ["defaults.kernels", "kernel 4 is even"], 12),
    ("zero-kernel", _replace("kernels = [[3], [3, 5]]", "kernels = [0]"), ["defaults.kernels", "kernel 0"], 12),
    ("negative-kernel", _replace("kernels = [[3], [3, 5]]", "kernels = [-3]"), ["defaults.kernels", "kernel -3"], 12),
    ("mixed-kernel-list", _replace("kernels = [[3], [3, 5]]", "kernels = [3, [3, 5]]"), ["defaults.kernels", "mixes"], 12),
    ("zero-depth", _replace("depth = [1, 2]", "depth = [0, 1]"), ["stages[0].depth", "[1, 32]"], 15),
    ("negative-width", _replace("width = 8", "width = -8"), ["stages[0].width", "[1, 4096]"], 16),
    ("duplicate-choice", _replace("depth = [1, 2]", "depth = [1, 1]"), ["stages[0].depth", "duplicate"], 15),
    ("duplicate-float-int", _replace("kernels = [[3], [3, 5]]", "expansion = [6, 6.0]"), ["defaults.expansion", "duplicate"], 12),
    ("bad-padding", _replace("kernels = [[3], [3, 5]]", 'padding = ["zeros", "mirror"]'), ["defaults.padding", "'mirror'", "reflect"], 12),
    ("bad-partition", _replace("kernels = [[3], [3, 5]]", 'partition = "log"'), ["defaults.partition", "'log'"], 12),
    ("bad-activation", _replace("kernels = [[3], [3, 5]]", 'act = "gelu"'), ["defaults.act", "'gelu'", "swish"], 12),
    ("bad-block-type", _replace("kernels = [[3], [3, 5]]", 'type = "mb"'), ["defaults.type", "'mb'"], 12),
    ("bad-downsample", BASE.replace(STAGE1, STAGE1 + 'downsample = "stride"\n'), ["stages[1].downsample", "'stride'"], 22),
    ("pool-without-stride", _replace("width = 8\n", 'width = 8\ndownsample = "max"\n'), ["stages[0].downsample", "stride"], 17),
    ("stride-not-searched", BASE.replace("stride = 2", "stride = [1, 2]"), ["stages[1].stride", "not searched"], 21),
    ("se-out-of-range", _replace("kernels = [[3], [3, 5]]", "se = 1.5"), ["defaults.se", "[0, 1]"], 12),
    ("zero-expansion", _replace("kernels = [[3], [3, 5]]", "expansion = 0"), ["defaults.expansion", "(0, 16]"], 12),
    ("zero-dilation", _replace("kernels = [[3], [3, 5]]", "dilation = [0, 1]"), ["defaults.dilation", "[1, 16]"], 12),
    ("pw-groups-shape", _replace("kernels = [[3], [3, 5]]", "pw_groups = [1, 2, 3]"), ["defaults.pw_groups", "two integers"], 12),
    ("pw-groups-ds", _replace("kernels = [[3], [3, 5]]", 'type = "ds"\npw_groups = [2, 2]'), ["defaults.pw_groups", "'ds'"], 13),
    # 4 channels, ds (no expansion): 5 kernel groups > 4 channels
    (
        "more-groups-than-channels",
        _replace("kernels = [[3], [3, 5]]", 'type = "ds"\nkernels = [3, 5, 7, 9, 11]').replace("channels = 8", "channels = 4", 1)
        .replace("width = 8", "width = 4", 1),
        ["defaults.kernels", "5 kernel groups", "only 4 channels", "stages[0]"],
        13,
    ),
    # exp split of 8 channels (width 8 x expansion 1) into 5 groups: 4, 2, 1, 0, 1
    (
        "exp-partition-empty-group",
        _replace("kernels = [[3], [3, 5]]", 'kernels = [3, 5, 7, 9, 11]\npartition = "exp"'),
        ["defaults.partition", "no channel", "8 channels", "width 8 x expansion 1", "stages[0]"],
        13,
    ),
    # the same split is fine with expansion 2 (16 channels): the check uses the real counts
    # reflect at 28 -> 14: kernel 5 dilation 4 pads 8 < 14 fine; at the 7x7 stage not
    (
        "reflect-too-small",
        BASE.replace(STAGE1, STAGE1 + "[[stages]]\ndepth = 1\nwidth = 32\nstride = 2\n"
                     "defaults = { padding = 'reflect', dilation = 4, kernels = [3, 5] }\n"),
        ["stages[2].defaults.padding", "reflect", "7x7", "pads 8"],
        26,
    ),
    # circular at 3x3: kernel 5 dilation 2 pads 4 > 3 (pad == size is fine, see the boundary test)
    ("circular-too-small", _replace("size = [28, 28]", "size = [3, 3]").replace(
        "kernels = [[3], [3, 5]]", 'kernels = [[3], [3, 5]]\npadding = "circular"\ndilation = 2'),
     ["defaults.padding", "circular", "stages[0] is only 3x3", "pads 4", "needs pad <= feature-map size"], 13),
    ("missing-input", BASE.replace("[input]\nchannels = 1\nsize = [28, 28]\n", ""), ["input", "missing"], None),
    ("bad-input-size", _replace("size = [28, 28]", "size = [28]"), ["input.size"], 5),
    ("missing-width", _replace("width = 8\n", ""), ["stages[0].width", "missing"], 14),
    ("missing-stages", BASE.split("[[stages]]")[0] + "[head]\nchannels = 0\n", ["stages", "missing"], None),
    ("stages-not-array", "stages = 3\n" + BASE.split("[[stages]]")[0] + "[head]\nchannels = 0\n", ["stages", "array"], 1),
    ("head-negative", _replace("channels = 0", "channels = -1"), ["head.channels", "[0, 4096]"], 24),
    # absurd numbers: each refused where it is read, with its documented limit (nas/limits.py)
    ("expansion-overflows", _replace("kernels = [[3], [3, 5]]", "expansion = 1e300"), ["defaults.expansion", "(0, 16]", "1e+300"], 12),
    ("expansion-inf", _replace("kernels = [[3], [3, 5]]", "expansion = inf"), ["defaults.expansion", "number"], 12),
    ("width-thousands-of-digits", _replace("width = 8", "width = " + "9" * 4000),
     ["stages[0].width", "[1, 4096]", "about 4000 digits"], 16),
    ("width-beyond-memory", _replace("width = 8", "width = 100000000"), ["stages[0].width", "[1, 4096]", "100000000"], 16),
    ("depth-beyond-any-net", _replace("depth = [1, 2]", "depth = [1, 100000000]"), ["stages[0].depth", "[1, 32]"], 15),
    ("stem-channels-huge", _replace("[stem]\nchannels = 8", "[stem]\nchannels = 99999"), ["stem.channels", "[1, 4096]"], 8),
    ("kernel-huge", _replace("kernels = [[3], [3, 5]]", "kernels = [[3], [3, 10001]]"), ["defaults.kernels", "kernel 10001", "1 to 31"], 12),
    ("too-many-kernel-groups", _replace("kernels = [[3], [3, 5]]", "kernels = [1, 3, 5, 7, 9, 11, 13, 15, 17]"),
     ["defaults.kernels", "9 kernel groups", "at most 8"], 12),
    ("dilation-huge", _replace("kernels = [[3], [3, 5]]", "dilation = 1000"), ["defaults.dilation", "[1, 16]"], 12),
    ("stride-huge", BASE.replace("stride = 2", "stride = 64"), ["stages[1].stride", "up to 8"], 21),
    ("input-size-huge", _replace("size = [28, 28]", "size = [28, 1000000]"), ["input.size", "up to 4096"], 5),
    ("pw-groups-huge", _replace("kernels = [[3], [3, 5]]", "pw_groups = [1, 100000]"), ["defaults.pw_groups", "[1, 4096]"], 12),
    ("too-many-choices", _replace("width = 8", "width = [" + ", ".join(str(w) for w in range(1, 301)) + "]"),
     ["stages[0].width", "300 choices", "at most 256"], 16),
    ("too-many-stages", BASE.split("[[stages]]")[0] + "[[stages]]\ndepth = 1\nwidth = 8\n" * 17 + "[head]\nchannels = 0\n",
     ["stages", "17 stages", "at most 16"], None),
    ("first-override-checked", BASE.replace(STAGE1, STAGE1 + "first = { kernels = [2] }\n"),
     ["stages[1].first.kernels", "kernel 2 is even"], 22),
]


@pytest.mark.parametrize("case_id,text,needles,line", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_names_file_key_and_line(tmp_path: Path, case_id: str, text: str, needles: list[str], line: int | None) -> None:
    message = _load_error(tmp_path, text)
    assert str(tmp_path / "x.toml") in message
    for needle in needles:
        assert needle in message, (needle, message)
    if line is not None:
        assert f"x.toml:{line}:" in message, message
    assert "\n" not in message


def test_base_is_valid_and_partition_check_uses_real_channels(tmp_path: Path) -> None:
    base = load_space(str(_write(tmp_path, BASE))).spec
    assert [s.width for s in base.stages] == [(8,), (16, 24)]
    assert base.stages[0].rest.kernels == ((3,), (3, 5))
    ok = _replace("kernels = [[3], [3, 5]]", 'kernels = [3, 5, 7, 9, 11]\npartition = "exp"\nexpansion = 2')
    first = load_space(str(_write(tmp_path, ok, "ok.toml"))).spec.stages[0].first  # 16 channels: 8, 4, 2, 1, 1
    assert (first.kernels, first.partition, first.expansion) == (((3, 5, 7, 9, 11),), ("exp",), (2.0,))
    assert split_channels(8 * 2, 5, "exp") == [8, 4, 2, 1, 1]


def test_partition_check_uses_previous_stage_widths(tmp_path: Path) -> None:
    # the first block of stage 1 sees the stem's 4 channels; 5 groups cannot fit
    text = _replace("channels = 8\nstride = 1", "channels = 4\nstride = 1").replace(
        "kernels = [[3], [3, 5]]", 'type = "ds"\nkernels = [[3], [3, 5, 7, 9, 11]]'
    )
    message = _load_error(tmp_path, text)
    assert "only 4 channels" in message and "stages[0]" in message


@pytest.mark.parametrize(
    "text,line",
    [("[input\nchannels = 1\n", 1), ("[input]\nchannels = = 1\n", 2), ('description = "x\n', 1)],
)
def test_malformed_toml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    message = _load_error(tmp_path, text)
    assert f"x.toml:{line}:" in message and "invalid TOML" in message


@pytest.mark.parametrize(
    "text,line,key",
    [
        ("[input]\nchannels = 1\nchannels = 3\n", 3, "input.channels"),  # last line: tomllib gives no line
        ("[input]\nchannels = 1\nchannels = 3\n[stem]\nchannels = 8\n", 3, "input.channels"),
        ("[[stages]]\ndepth = 1\n[[stages]]\ndepth = 2\nwidth = 8\ndepth = 3\n", 6, "stages[1].depth"),
        ("[head]\nse.ratio = 1\nse.ratio = 2\n", 3, "head.se.ratio"),
    ],
)
def test_a_repeated_key_names_file_line_and_key(tmp_path: Path, text: str, line: int, key: str) -> None:
    message = _load_error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'x.toml'}:{line}: {key}: key given twice"), message


def test_a_folder_named_like_a_space_file_is_not_missing(tmp_path: Path) -> None:
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(NasInputError, match=r"folder\.toml: is a directory, not a space file"):
        load_space(str(tmp_path / "folder.toml"))


def test_unknown_builtin_lists_names() -> None:
    with pytest.raises(NasInputError) as info:
        load_space("no-such-space")
    for name in ("mdconv", "mixnet-s", "dilated"):
        assert name in str(info.value)


def test_missing_file() -> None:
    with pytest.raises(NasInputError, match="nope.toml"):
        load_space("nope.toml")


@pytest.mark.parametrize("mode", ["reflect", "circular"])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_border_pad_limit_is_torchs(mode: str, size: int) -> None:
    # the one statement of the limit (used by the DSL and the layers) says what F.pad accepts
    import torch
    import torch.nn.functional as F

    for pad in range(size + 3):
        try:
            F.pad(torch.zeros(1, 1, size, size + 1), (pad,) * 4, mode=mode)
            accepted = True
        except RuntimeError:
            accepted = False
        assert border_pad_fits(mode, pad, size, size + 1) == accepted, (mode, size, pad)


@pytest.mark.parametrize("mode,smallest", [("circular", 4), ("reflect", 5)])
def test_border_padding_at_the_boundary_dsl_and_model_agree(tmp_path: Path, mode: str, smallest: int) -> None:
    # kernel 5, dilation 2 pads 4: circular takes a 4x4 map (pad <= size), reflect needs 5x5 (pad < size)
    import torch

    import nas

    def text(size: int) -> str:
        return (f"[input]\nchannels = 1\nsize = {size}\n[stem]\nchannels = 4\nstride = 1\n"
                f"[defaults]\nkernels = [5]\ndilation = 2\npadding = '{mode}'\n[[stages]]\ndepth = 1\nwidth = 4\n"
                "[head]\nchannels = 0\n")

    arch = load_space(str(_write(tmp_path, text(smallest)))).sample(0)
    assert f"pad={mode}" in str(arch) and "d2" in str(arch)
    model = nas.build(arch, num_classes=2, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, smallest, smallest)).shape == (1, 2)
        with pytest.raises(NasInputError, match=f"{mode} padding of 4 pixels"):
            model(torch.randn(1, 1, smallest - 1, smallest - 1))
    message = _load_error(tmp_path, text(smallest - 1))
    too_small = smallest - 1
    assert f"pads 4 pixels, but the feature map of stages[0] is only {too_small}x{too_small}" in message, message


def test_key_lines_scan() -> None:
    lines = key_lines(BASE + "[[stages]]\ndepth = 1\nwidth = 4\n[stages.defaults]\nkernels = [3]\n")
    assert lines["stages[0].depth"] == 15
    assert lines["stages[1].stride"] == 21
    assert lines["stages[2].defaults.kernels"] == 29


# ---------------------------------------------------------------- sizes


def _brute_force_size(space: Space) -> int:
    """Distinct str(arch) over the unconditional product of every choice (no conditional logic)."""
    spec = space.spec

    def blocks_for(bc, width, stride, downsample):
        out = set()
        for kind, k, part, e, d, pad, se, act, g, down in itertools.product(
            bc.type, bc.kernels, bc.partition, bc.expansion, bc.dilation, bc.padding, bc.se, bc.act,
            bc.pw_groups, downsample,
        ):
            out.add(Block(kind=kind, kernels=k, out_channels=width, expansion=e if kind == "ir" else 1.0,
                          stride=stride, dilation=d, pw_groups=g, se=se, partition=part, padding=pad,
                          downsample=down if stride > 1 else "conv", act=act))
        return sorted(out, key=str)

    per_stage = []
    for st in spec.stages:
        options = []
        for width in st.width:
            first = blocks_for(st.first, width, st.stride, st.downsample)
            rest = blocks_for(st.rest, width, 1, ("conv",))
            for depth in st.depth:
                for combo in itertools.product(first, *([rest] * (depth - 1))):
                    options.append(tuple(combo))
        per_stage.append(options)
    archs = set()
    for sc, sa, hc, ha in itertools.product(spec.stem.channels, spec.stem.act, spec.head.channels, spec.head.act):
        for stages in itertools.product(*per_stage):
            archs.add(str(Arch(stem=Stem(sc, spec.stem.stride, sa), stages=stages, head=Head(hc, ha))))
    return len(archs)


TINY_SPACES = [
    BASE,
    # conditional keys: ds/ir mixed, single and multi kernel groups, pooling choice on a strided stage
    """
[input]
channels = 3
size = 16
[stem]
channels = [8, 16]
act = "swish"
[defaults]
type = ["ir", "ds"]
kernels = [[3], [3, 5]]
partition = ["equal", "exp"]
expansion = [2, 4]
[[stages]]
depth = [1, 2]
width = 8
stride = 2
downsample = ["conv", "max", "avg"]
first = { kernels = [[3], [5], [3, 5, 7]], se = 0.5 }
[[stages]]
depth = [1, 2]
width = 16
defaults = { type = "ds", padding = ["zeros", "partial"], kernels = [3] }
[head]
channels = 32
act = ["relu", "swish"]
""",
    # a one-point space
    "[input]\nchannels = 1\nsize = 8\n[stem]\nchannels = 4\n[[stages]]\ndepth = 2\nwidth = 4\n[head]\nchannels = 0\n",
]


@pytest.mark.parametrize("text", TINY_SPACES, ids=["base", "conditional", "one-point"])
def test_size_matches_brute_force_and_enumeration(tmp_path: Path, text: str) -> None:
    space = load_space(str(_write(tmp_path, text)))
    n = space.size()
    assert n == _brute_force_size(space)
    enumerated = [str(a) for a in space.iter_archs()]
    assert len(enumerated) == n  # one branch per architecture ...
    assert len(set(enumerated)) == n  # ... and no two branches give the same one


def test_builtin_sizes() -> None:
    names = builtin_names()
    assert {"mdconv", "dilated", "mixnet-s", "mixnet-m", "mixnet-l", "mobilenetv2-3x3"} <= set(names)
    for name in ("mixnet-s", "mixnet-m", "mixnet-l", "mobilenetv2-3x3"):
        assert load_space(name).size() == 1
    assert load_space("mdconv").size() > 10**15
    assert load_space("dilated").size() > 10**12
    assert Space.builtin_names() == names


def test_format_size() -> None:
    assert format_size(1) == "1"
    assert format_size(999_999) == "999999"
    assert format_size(3_240_000_000_000_00) == "~3.2e+14"
    assert format_size(10**400) == "~1.0e+400"
    assert format_size(9_960_000) == "~1.0e+07"


def test_space_attributes_and_text() -> None:
    space = load_space("mdconv")
    assert space.name == "mdconv" and space.input_channels == 1 and space.input_size == (28, 28)
    assert space.path.endswith("mdconv.toml") and space.description
    assert "mdconv" in repr(space) and "s3:" in space.describe()
    mixnet = load_space("mixnet-s")
    assert mixnet.input_size == (224, 224) and mixnet.input_channels == 3


def test_parse_space_text_directly() -> None:
    spec = parse_space(BASE, "inline.toml")
    assert spec.name == "inline" and len(spec.stages) == 2
    assert spec.stages[1].resolution == (14, 14)


# ---------------------------------------------------------------- mixnet references


def _references() -> dict[str, str]:
    try:
        sys.path.insert(0, str(Path(__file__).parent))
        import mixnet_reference as ref  # written by the layers engineer

        return {"mixnet-s": ref.MIXNET_S, "mixnet-m": ref.MIXNET_M, "mixnet-l": ref.MIXNET_L}
    except (ImportError, AttributeError):
        pass
    finally:
        sys.path.pop(0)
    s = (
        "stem c16 | ds k3 c16 | ir k3 e6 c24 s2 g2.2, ir k3 e3 c24 g2.2 | ir k3.5.7 e6 c40 s2 se0.5 act=swish, "
        "ir k3.5 e6 c40 g2.2 se0.5 act=swish r3 | ir k3.5.7 e6 c80 s2 g1.2 se0.25 act=swish, ir k3.5 e6 c80 g1.2 "
        "se0.25 act=swish r2 | ir k3.5.7 e6 c120 g2.2 se0.5 act=swish, ir k3.5.7.9 e3 c120 g2.2 se0.5 act=swish r2 "
        "| ir k3.5.7.9.11 e6 c200 s2 se0.5 act=swish, ir k3.5.7.9 e6 c200 g1.2 se0.5 act=swish r2 | head c1536"
    )
    m = (
        "stem c24 | ds k3 c24 | ir k3.5.7 e6 c32 s2 g2.2, ir k3 e3 c32 g2.2 | ir k3.5.7.9 e6 c40 s2 se0.5 "
        "act=swish, ir k3.5 e6 c40 g2.2 se0.5 act=swish r3 | ir k3.5.7 e6 c80 s2 se0.25 act=swish, ir k3.5.7.9 e6 "
        "c80 g2.2 se0.25 act=swish r3 | ir k3 e6 c120 se0.5 act=swish, ir k3.5.7.9 e3 c120 g2.2 se0.5 act=swish r3 "
        "| ir k3.5.7.9 e6 c200 s2 se0.5 act=swish, ir k3.5.7.9 e6 c200 g1.2 se0.5 act=swish r3 | head c1536"
    )
    l = m
    for a, b in [("c200", "c264"), ("c120", "c160"), ("c80 ", "c104 "), ("c40 ", "c56 "), ("c32 ", "c40 "), ("c24 ", "c32 ")]:
        l = l.replace(a, b)
    return {"mixnet-s": s, "mixnet-m": m, "mixnet-l": l}


@pytest.mark.parametrize("name", ["mixnet-s", "mixnet-m", "mixnet-l"])
def test_mixnet_spaces_reproduce_reference(name: str) -> None:
    space = load_space(name)
    assert space.size() == 1
    expected = Arch.parse(_references()[name])
    for seed in (0, 1, 7):
        assert space.sample(seed) == expected
    assert list(space.iter_archs()) == [expected]


# ---------------------------------------------------------------- CLI


def _nas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, timeout=120)


def test_cli_spaces_lists_builtins() -> None:
    proc = _nas("spaces")
    assert proc.returncode == 0, proc.stderr
    for name in builtin_names():
        assert name in proc.stdout
    assert "1x28x28" in proc.stdout and "~" in proc.stdout


def test_cli_check_good_and_bad(tmp_path: Path) -> None:
    good = _write(tmp_path, BASE, "good.toml")
    proc = _nas("spaces", "--check", str(good), "--sample", "2")
    assert proc.returncode == 0, proc.stderr
    assert "sample 1: stem c8 s1" in proc.stdout and f"size: {load_space(str(good)).size()}" in proc.stdout
    bad = _write(tmp_path, _replace("kernels = [[3], [3, 5]]", "kernels = [4]"), "bad.toml")
    proc = _nas("spaces", "--check", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert str(bad) in proc.stderr and "defaults.kernels" in proc.stderr and "kernel 4 is even" in proc.stderr
