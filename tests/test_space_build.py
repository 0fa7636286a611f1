"""Every built-in space's architectures build and run (real torch, small inputs)."""

from __future__ import annotations

import pytest
import torch

from nas.space import builtin_names, load_space

builder = pytest.importorskip("nas.builder")
torch.set_num_threads(1)


@pytest.mark.parametrize("name", ["mdconv", "dilated", "mobilenetv2-3x3"])
def test_small_input_spaces_build_and_run_at_their_input(name: str) -> None:
    space = load_space(name)
    c, (h, w) = space.input_channels, space.input_size
    for seed in range(4):
        model = builder.build(space.sample(seed), num_classes=10, in_chans=c).eval()
        with torch.no_grad():
            assert model(torch.randn(2, c, h, w)).shape == (2, 10)


def test_dilated_reflect_padding_fits_every_stage() -> None:
    # the DSL check (pad < feature map) must agree with what torch accepts at the declared input
    space = load_space("dilated")
    reflect = [a for a in (space.sample(s) for s in range(200)) if any(b.padding == "reflect" and b.dilation == 4 for b in a.blocks())]
    assert reflect
    for arch in reflect[:3]:
        model = builder.build(arch, num_classes=10, in_chans=1).eval()
        with torch.no_grad():
            model(torch.randn(1, 1, 28, 28))


@pytest.mark.parametrize("name", ["mixnet-s", "mixnet-m", "mixnet-l"])
def test_mixnets_build_for_small_inputs(name: str) -> None:
    # the file's 224x224x3 input is a default, not a constraint of the built network
    model = builder.build(load_space(name).sample(0), num_classes=10, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 28, 28)).shape == (1, 10)


def test_every_builtin_is_covered() -> None:
    assert set(builtin_names()) >= {"mdconv", "dilated", "mobilenetv2-3x3", "mixnet-s", "mixnet-m", "mixnet-l"}
