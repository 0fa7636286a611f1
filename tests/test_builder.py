"""nas.blocks and nas.builder: every option builds, runs forward and backward, shapes and residual rules."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn

import nas
from nas.blocks import DepthwiseSeparable, InvertedResidual
from nas.builder import NasNet, build, create_block
from nas.errors import GenotypeError, NasInputError
from nas.genotype import Arch, Block
from nas.layers import MixConv2d, PartialConv2d

torch.set_num_threads(1)

TINY = "stem c8 | ds k3 c8, ir k3.5 e3 c16 s2 | ir k3.5.7 e4 c24 s2 se0.25 act=swish | head c32"


def _train_step(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.train()
    out = model(x)
    out.square().mean().backward()
    return out


def test_build_from_string_and_arch():
    m = build(TINY, num_classes=10, in_chans=1)
    assert isinstance(m, NasNet)
    assert m.arch == Arch.parse(TINY)
    m2 = nas.build(Arch.parse(TINY), num_classes=10, in_chans=1)
    assert m2.arch == m.arch
    assert [len(stage) for stage in m.blocks] == [2, 1]
    assert isinstance(m.blocks[0][0], DepthwiseSeparable) and isinstance(m.blocks[1][0], InvertedResidual)
    out = _train_step(m, torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10)
    assert m.forward_features(torch.randn(2, 1, 28, 28)).shape == (2, 32, 4, 4)  # 28 -> 14 -> 7 -> 4
    assert all(p.grad is not None for p in m.parameters())


def test_layout_names_are_stable():
    m = build(TINY, num_classes=10, in_chans=3)
    keys = list(m.state_dict())
    assert keys[0] == "conv_stem.weight"
    assert "blocks.0.1.conv_dw.convs.1.weight" in keys
    assert "blocks.1.0.se.conv_reduce.weight" in keys
    assert "conv_head.weight" in keys and keys[-2:] == ["classifier.weight", "classifier.bias"]


@pytest.mark.parametrize(
    "pad,dilation,down,kind",
    list(itertools.product(("zeros", "reflect", "replicate", "circular", "partial"), (1, 2), ("conv", "max", "avg"), ("ir", "ds"))),
)
def test_every_option_builds_and_backpropagates(pad, dilation, down, kind):
    e = " e3" if kind == "ir" else ""
    arch = (
        f"stem c8 s1 | {kind} k3.5{e} c16 s2 d{dilation} pad={pad} down={down} act=swish"
        f", {kind} k3.5.7{e} c16 d{dilation} split=exp pad={pad} se0.5 | head c0"
    )
    m = build(arch, num_classes=5, in_chans=2)
    x = torch.randn(2, 2, 13, 13)
    out = _train_step(m, x)
    assert out.shape == (2, 5)
    assert m.forward_features(x).shape == (2, 16, 7, 7)
    first = m.blocks[0][0]
    assert (first.pool is not None) == (down != "conv")
    assert not first.has_residual and m.blocks[0][1].has_residual
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


@pytest.mark.parametrize("partition,sizes", [("equal", [8, 8, 8, 8]), ("exp", [16, 8, 4, 4])])
def test_partition_sizes(partition, sizes):
    m = build(f"stem c32 | ds k3.5.7.9 c32 split={partition} | head c0", num_classes=3, in_chans=3)
    conv = m.blocks[0][0].conv_dw
    assert isinstance(conv, MixConv2d)
    assert [c.in_channels for c in conv.convs] == sizes
    assert [c.kernel_size[0] for c in conv.convs] == [3, 5, 7, 9]


def test_residual_rules():
    def block(text: str, cin: int) -> nn.Module:
        return create_block(Arch.parse(f"stem c{cin} | {text} | head c0").stages[0][0], cin)

    assert block("ir k3 e6 c16", 16).has_residual
    assert not block("ir k3 e6 c24", 16).has_residual  # width changes
    assert not block("ir k3 e6 c16 s2", 16).has_residual  # strided
    assert not block("ir k3 e6 c16 s2 down=max", 16).has_residual  # pooled
    assert block("ds k3 c16", 16).has_residual
    assert not block("ds k3 c24", 16).has_residual
    # The residual really is added: zero the last BN and the block is the identity.
    b = block("ir k3.5 e2 c8 se0.25", 8).eval()
    nn.init.zeros_(b.bn3.weight)
    x = torch.randn(1, 8, 6, 6)
    assert torch.equal(b(x), x)


def test_block_internals():
    blk = Block(kind="ir", kernels=(3, 5), out_channels=24, expansion=6, pw_groups=(2, 2), se=0.5, act="swish")
    m = create_block(blk, 40)
    assert isinstance(m, InvertedResidual)
    assert m.mid_chs == blk.mid_channels(40) == 240
    assert m.conv_pw.groups == 2 and m.conv_pwl.groups == 2
    assert m.se.conv_reduce.out_channels == 20  # se relative to the block input (40 * 0.5)
    assert isinstance(m.act1, nn.SiLU) and isinstance(m.se.act, nn.SiLU)
    ds = create_block(Block(kind="ds", kernels=(3,), out_channels=16, pw_groups=(1, 2), se=0.25), 16)
    assert isinstance(ds, DepthwiseSeparable)
    assert type(ds.conv_dw) is nn.Conv2d and ds.conv_dw.groups == 16 and ds.conv_pw.groups == 2
    assert ds.se.conv_reduce.out_channels == 4


@pytest.mark.parametrize("size", [7, 8, 13, 28])
@pytest.mark.parametrize("down", ["conv", "max", "avg"])
def test_pooled_downsampling_matches_strided_conv_sizes(size, down):
    m = build(f"stem c8 s1 | ir k3 e2 c8 s2 down={down} | head c0", num_classes=2, in_chans=1)
    assert m.forward_features(torch.randn(1, 1, size, size)).shape[-1] == (size - 1) // 2 + 1


def test_head_and_dropout():
    m = build("stem c8 | ds k3 c8 | head c0", num_classes=4, in_chans=3, drop_rate=0.3)
    assert isinstance(m.conv_head, nn.Identity) and m.num_features == 8 and m.classifier.in_features == 8
    assert m.dropout.p == 0.3
    m = build("stem c8 | ds k3 c8 | head c20 act=swish", num_classes=4, in_chans=3)
    assert m.num_features == 20 and isinstance(m.act2, nn.SiLU)


def test_channels_last_and_impls_agree():
    torch.manual_seed(0)
    arch = "stem c16 | ir k3.5.7 e3 c16 pad=partial se0.25, ir k3.5.7.9 e3 c24 s2 pad=reflect act=swish | head c32"
    a = build(arch, num_classes=3, in_chans=3, impl="split").eval()
    b = build(arch, num_classes=3, in_chans=3, impl="padded").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 24, 24)
    ref = a(x)
    assert torch.allclose(ref, b(x), atol=1e-4)
    a_cl = a.to(memory_format=torch.channels_last)
    assert torch.allclose(ref, a_cl(x.contiguous(memory_format=torch.channels_last)), atol=1e-4)


def test_partial_ratios_not_in_state_dict():
    m = build("stem c8 | ds k3 c8 pad=partial, ir k3.5 e2 c8 pad=partial | head c0", num_classes=2, in_chans=1)
    m(torch.randn(1, 1, 16, 16))
    assert all("ratio" not in k for k in m.state_dict())
    assert any(isinstance(mod, PartialConv2d) for mod in m.modules())
    fresh = build("stem c8 | ds k3 c8 pad=partial, ir k3.5 e2 c8 pad=partial | head c0", num_classes=2, in_chans=1)
    fresh.load_state_dict(m.state_dict())


def test_bad_reflect_padding_is_a_clear_error():
    m = build("stem c8 | ir k3.5.7 e2 c16 s2 pad=reflect, ir k3.5.7.9 e2 c16 d2 pad=reflect | head c0", num_classes=2, in_chans=1)
    m(torch.randn(1, 1, 64, 64))  # 64 -> 32 -> 16: pad 8 < 16
    with pytest.raises(NasInputError, match=r"blocks\.0\.1\.conv_dw \(kernels 3\.5\.7\.9, dilation 2\).*reflect padding of 8.*2x2"):
        m(torch.randn(1, 1, 8, 8))


def test_weight_init_is_timm_style():
    torch.manual_seed(0)
    m = build("stem c64 | ir k3 e6 c64 | head c1024", num_classes=1000, in_chans=3)
    w = m.blocks[0][0].conv_pw.weight  # 1x1, 384 outputs: std sqrt(2/384)
    assert abs(w.std().item() - (2 / 384) ** 0.5) < 0.1 * (2 / 384) ** 0.5
    assert m.classifier.weight.abs().max() <= 1 / 1000**0.5
    assert torch.all(m.bn1.weight == 1) and torch.all(m.classifier.bias == 0)


def test_bad_build_arguments():
    with pytest.raises(GenotypeError, match="'k3x'"):
        build("stem c8 | ds k3x c8 | head c0", num_classes=2, in_chans=1)
    with pytest.raises(NasInputError, match="num_classes"):
        build(TINY, num_classes=0, in_chans=1)
    with pytest.raises(NasInputError, match="in_chans"):
        build(TINY, num_classes=2, in_chans="3")
    with pytest.raises(NasInputError, match="impl"):
        build(TINY, num_classes=2, in_chans=1, impl="fast")


def test_deepcopy_save_load_and_double():
    import copy
    import io

    arch = "stem c8 | ir k3.5 e2 c8 pad=partial se0.25, ds k3.5.7 c16 s2 pad=reflect | head c16"
    m = build(arch, num_classes=3, in_chans=1).eval()
    x = torch.randn(2, 1, 12, 12)
    ref = m(x)  # fills the ratio caches
    clone = copy.deepcopy(m)
    assert torch.allclose(clone(x), ref)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    fresh = build(arch, num_classes=3, in_chans=1).eval()
    fresh.load_state_dict(torch.load(buf))
    assert torch.allclose(fresh(x), ref)
    assert torch.allclose(m.double()(x.double()), ref.double(), atol=1e-5)
