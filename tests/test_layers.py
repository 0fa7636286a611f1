"""nas.layers: padding modes, partial padding, MixConv2d implementations, factory, act, SE."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.errors import NasInputError
from nas.genotype import split_channels
from nas.layers import (
    MixConv2d,
    PaddedConv2d,
    PartialConv2d,
    SqueezeExcite,
    create_act,
    create_conv2d,
    get_act_layer,
    partial_ratio,
    se_channels,
)
from nas.layers.mixconv import resolve_impl

torch.set_num_threads(1)
PADS = ("zeros", "reflect", "replicate", "circular", "partial")


def mixconv(channels: int, kernels, partition: str = "equal", **kwargs) -> MixConv2d:
    """A depthwise MixConv2d on ``channels`` split by ``partition``, as the builder makes it."""
    splits = split_channels(channels, len(kernels), partition)
    return MixConv2d(splits, splits, kernels, **kwargs)


def _ones_conv(padding_mode: str, k: int = 3, size: int = 6, stride: int = 1, dilation: int = 1) -> torch.Tensor:
    conv = create_conv2d(1, 1, k, stride=stride, dilation=dilation, padding_mode=padding_mode)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        return conv(torch.ones(1, 1, size, size))[0, 0]


def test_partial_all_ones_is_flat_and_zeros_is_not():
    y = _ones_conv("partial")
    assert torch.allclose(y, torch.full_like(y, 9.0))
    assert y[0, 0] == y[0, 3] == y[3, 3] == 9.0  # corner, edge, centre
    z = _ones_conv("zeros")
    assert (z[0, 0], z[0, 3], z[3, 3]) == (4.0, 6.0, 9.0)


@pytest.mark.parametrize("k,stride,dilation,size", [(3, 1, 1, 7), (5, 2, 1, 9), (3, 2, 2, 10), (7, 1, 3, 8), (5, 3, 2, 11)])
def test_partial_ratio_matches_mask_convolution(k, stride, dilation, size):
    pad = dilation * (k - 1) // 2
    ones = torch.ones(1, 1, size, size + 1, dtype=torch.float64)
    window = torch.ones(1, 1, k, k, dtype=torch.float64)
    valid = F.conv2d(ones, window, stride=stride, padding=pad, dilation=dilation)[0, 0]
    expected = k * k / valid
    got = partial_ratio(size, size + 1, k, stride, dilation)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected)
    y = _ones_conv("partial", k, size, stride, dilation)
    assert torch.allclose(y, torch.full_like(y, float(k * k)))


def test_partial_ratio_cached_per_shape_not_in_state_dict():
    conv = create_conv2d(4, 4, 3, depthwise=True, padding_mode="partial")
    assert isinstance(conv, PartialConv2d)
    assert set(conv.state_dict()) == {"weight"}
    conv(torch.randn(2, 4, 8, 8))
    conv(torch.randn(3, 4, 8, 8))
    assert len(conv._ratios) == 1
    conv(torch.randn(1, 4, 6, 6))
    assert len(conv._ratios) == 2
    conv.double()(torch.randn(1, 4, 6, 6, dtype=torch.float64))  # another dtype: another entry
    assert len(conv._ratios) == 3
    assert set(conv.state_dict()) == {"weight"}


def test_partial_first_forward_in_inference_mode_then_training():
    conv = create_conv2d(3, 3, [3, 5], depthwise=True, padding_mode="partial", impl="padded")
    single = create_conv2d(3, 3, 3, depthwise=True, padding_mode="partial")
    x = torch.randn(2, 3, 7, 7)
    with torch.inference_mode():
        conv(x)
        single(x)
    (conv(x).sum() + single(x).sum()).backward()  # ratios made in inference mode would fail here
    assert conv.convs[0].weight.grad is not None and single.weight.grad is not None


def test_partial_inplace_multiply_gradient_is_right():
    conv = create_conv2d(2, 2, 3, stride=2, depthwise=True, padding_mode="partial").double()
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: conv(t), (x,))


@pytest.mark.parametrize(
    "pad,partition,dilation,stride,kernels",
    [
        (p, part, d, s, ks)
        for p, part, d, s, ks in itertools.product(PADS, ("equal", "exp"), (1, 2), (1, 2), ((3, 5, 7), (3, 5, 7, 9)))
    ],
)
def test_mixconv_split_and_padded_agree(pad, partition, dilation, stride, kernels):
    torch.manual_seed(0)
    m = mixconv(32, kernels, stride=stride, dilation=dilation, padding_mode=pad, partition=partition, impl="split")
    x = torch.randn(2, 32, 19, 20, requires_grad=True)
    y_split = m.forward_split(x)
    y_pad = m.forward_padded(x)
    assert y_split.shape == y_pad.shape == (2, 32, (19 - 1) // stride + 1, (20 - 1) // stride + 1)
    assert torch.allclose(y_split, y_pad, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(y_split)
    gx_split, *gw_split = torch.autograd.grad(y_split, [x, *m.parameters()], g)
    gx_pad, *gw_pad = torch.autograd.grad(y_pad, [x, *m.parameters()], g)
    assert torch.allclose(gx_split, gx_pad, atol=1e-4, rtol=1e-4)
    for a, b in zip(gw_split, gw_pad):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("impl", ["split", "padded"])
def test_mixconv_channels_last_matches(impl):
    torch.manual_seed(0)
    m = mixconv(24, (3, 5, 7), padding_mode="partial", impl=impl)
    x = torch.randn(2, 24, 10, 10)
    y = m(x)
    y_cl = m(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(y, y_cl, atol=1e-5)


def test_mixconv_same_state_dict_for_both_impls():
    a = mixconv(32, (3, 5, 7, 9), impl="split")
    b = mixconv(32, (3, 5, 7, 9), impl="padded")
    assert list(a.state_dict()) == list(b.state_dict())
    assert [t.shape for t in a.state_dict().values()] == [t.shape for t in b.state_dict().values()]
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 32, 9, 9)
    assert torch.allclose(a(x), b(x), atol=1e-5)


def test_mixconv_partitions():
    eq = mixconv(32, (3, 5, 7, 9), partition="equal")
    ex = mixconv(32, (3, 5, 7, 9), partition="exp")
    assert [c.in_channels for c in eq.convs] == [8, 8, 8, 8]
    assert [c.in_channels for c in ex.convs] == [16, 8, 4, 4]
    assert [c.kernel_size[0] for c in ex.convs] == [3, 5, 7, 9]
    assert all(c.groups == c.in_channels for c in ex.convs)
    assert [c.in_channels for c in mixconv(30, (3, 5, 7, 9)).convs] == [9, 7, 7, 7]


def test_mixconv_groups_use_their_own_kernel():
    # Each group of an impulse input must be spread exactly by its own kernel size.
    m = mixconv(4, (1, 3, 5, 7), impl="split")
    with torch.no_grad():
        for c in m.convs:
            c.weight.fill_(1.0)
    x = torch.zeros(1, 4, 9, 9)
    x[:, :, 4, 4] = 1.0
    for impl in ("split", "padded"):
        y = m.forward_split(x) if impl == "split" else m.forward_padded(x)
        assert [int((y[0, i] != 0).sum()) for i in range(4)] == [1, 9, 25, 49]


def test_resolve_impl_by_device_type():
    assert resolve_impl("split", "cuda") == "split"
    assert resolve_impl("padded", "cpu") == "padded"
    assert resolve_impl("auto", "cpu") in ("split", "padded")
    assert resolve_impl("auto", "cuda") in ("split", "padded")


def test_factory_picks_the_class():
    assert type(create_conv2d(8, 16, 3)) is nn.Conv2d
    assert type(create_conv2d(8, 8, 3, depthwise=True, padding_mode="replicate")) is nn.Conv2d
    assert create_conv2d(8, 8, 3, depthwise=True, padding_mode="replicate").padding_mode == "replicate"
    assert type(create_conv2d(8, 8, 3, depthwise=True, padding_mode="reflect")) is PaddedConv2d
    assert type(create_conv2d(8, 8, 3, depthwise=True, padding_mode="circular")) is PaddedConv2d
    assert type(create_conv2d(8, 8, 3, depthwise=True, padding_mode="partial")) is PartialConv2d
    assert type(create_conv2d(8, 8, [3], depthwise=True)) is nn.Conv2d
    assert type(create_conv2d(8, 8, [3, 5], depthwise=True)) is MixConv2d
    assert type(create_conv2d(8, 16, 1, padding_mode="reflect")) is nn.Conv2d  # 1x1: nothing to pad
    g = create_conv2d(8, 16, 1, groups=2)
    assert type(g) is nn.Conv2d and g.groups == 2
    uneven = create_conv2d(9, 15, 1, groups=2)  # uneven split, like timm's a1.1/p1.1 on odd widths
    assert type(uneven) is MixConv2d and uneven.in_splits == [5, 4] and uneven.out_splits == [8, 7]
    assert uneven(torch.randn(1, 9, 4, 4)).shape == (1, 15, 4, 4)
    for conv in (create_conv2d(8, 8, [3, 5], depthwise=True), create_conv2d(8, 16, 3), uneven):
        assert not any(name.endswith("bias") for name, _ in conv.named_parameters())
    with pytest.raises(NasInputError, match="padding mode"):
        create_conv2d(8, 8, 3, padding_mode="mirror")


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_border_padding_too_large_is_a_clear_error(mode):
    conv = create_conv2d(4, 4, [3, 9], depthwise=True, padding_mode=mode)
    conv.layer_name = "blocks.2.0.conv_dw"
    conv(torch.randn(1, 4, 5, 5))  # pad 4 on a 5x5 input: fine
    with pytest.raises(NasInputError, match=r"blocks\.2\.0\.conv_dw.*kernels 3\.9.*3x3"):
        conv(torch.randn(1, 4, 3, 3))
    single = create_conv2d(4, 4, 7, depthwise=True, dilation=2, padding_mode=mode)
    single.layer_name = "blocks.0.0.conv_dw"
    with pytest.raises(NasInputError, match=r"blocks\.0\.0\.conv_dw.*kernel 7, dilation 2.*4x4"):
        single(torch.randn(1, 4, 4, 4))


def test_activation_lookup():
    assert get_act_layer("relu") is nn.ReLU
    assert get_act_layer("swish") is nn.SiLU
    assert isinstance(create_act("swish"), nn.SiLU)
    with pytest.raises(NasInputError, match="'gelu'"):
        get_act_layer("gelu")


def test_squeeze_excite():
    assert se_channels(40, 0.25) == 10
    assert se_channels(13, 0.3) == 3
    assert se_channels(3, 0.1) == 1
    se = SqueezeExcite(240, se_channels(40, 0.5), "swish")
    assert se.conv_reduce.out_channels == 20 and se.conv_expand.out_channels == 240
    assert isinstance(se.act, nn.SiLU)
    x = torch.randn(2, 240, 5, 5)
    y = se(x)
    assert y.shape == x.shape
    gate = y / x
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-5)  # one gate per channel
    assert ((gate > 0) & (gate < 1)).all()


@settings(max_examples=30, deadline=None)
@given(
    kernels=st.lists(st.sampled_from([1, 3, 5, 7, 9]), min_size=1, max_size=4),
    partition=st.sampled_from(["equal", "exp"]),
    pad=st.sampled_from(PADS),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 3),
    size=st.integers(1, 14),
    extra=st.integers(0, 9),
)
def test_mixconv_impls_agree_property(kernels, partition, pad, stride, dilation, size, extra):
    channels = 2 ** len(kernels) + extra  # enough for an exp split
    max_pad = dilation * (max(kernels) - 1) // 2
    if pad == "reflect" and max_pad >= size or pad == "circular" and max_pad > size:
        return  # covered by the clear-error tests
    torch.manual_seed(0)
    m = mixconv(channels, kernels, stride=stride, dilation=dilation, padding_mode=pad, partition=partition)
    x = torch.randn(1, channels, size, size + 1)
    a, b = m.forward_split(x), m.forward_padded(x)
    assert a.shape == (1, channels, (size - 1) // stride + 1, size // stride + 1)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    if pad == "partial":
        with torch.no_grad():
            for c in m.convs:
                c.weight.fill_(1.0)
        y = m.forward_split(torch.ones_like(x))
        full = torch.tensor([float(k * k) for k, n in zip(kernels, m.out_splits) for _ in range(n)])
        assert torch.allclose(y, full[None, :, None, None].expand_as(y))
