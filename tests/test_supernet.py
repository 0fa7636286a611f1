"""nas.supernet: shared weights for every architecture of a space, on real torch and data."""

from __future__ import annotations

import random

import pytest
import torch

import nas
import nas.layers.mixconv
from nas.data import load_dataset, split_train_val
from nas.errors import NasInputError
from nas.space import builtin_names, load_space
from nas.supernet import Supernet
from nas.supernet.scoring import recalibrate, score
from nas.supernet.training import Sandwich, SupernetTrainer
from nas.training import TrainingDiverged, recipe_for

torch.set_num_threads(1)

TINY_SPACE = """
description = "a tiny space for 8x8 digits"
[input]
channels = 1
size = [8, 8]
[stem]
channels = [8, 16]
stride = 1
[defaults]
type = "ir"
kernels = [[3], [3, 5]]
partition = ["equal", "exp"]
expansion = [1, 3]
se = [0, 0.25]
act = ["relu", "swish"]
padding = ["zeros", "partial"]
[[stages]]
depth = [1, 2]
width = [8, 16]
stride = 1
defaults = { type = ["ds", "ir"] }
[[stages]]
depth = [1, 2]
width = [16, 24]
stride = 2
[head]
channels = [0, 32]
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "tiny.toml"
    path.write_text(TINY_SPACE)
    return load_space(str(path))


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    return split_train_val(ds, val_size=300, seed=0)


def _archs(supernet: Supernet, n: int = 4) -> list:
    rng = random.Random(0)
    return [supernet.largest(), supernet.smallest()] + [supernet.space.sample(rng) for _ in range(n)]


@pytest.mark.parametrize("name", builtin_names())
def test_subnet_is_the_scored_network_on_every_builtin_space(name):
    space = load_space(name)
    supernet = Supernet(space, num_classes=10, in_chans=1).eval()
    size = space.input_size if space.input_size[0] <= 64 else (32, 32)
    x = torch.randn(2, 1, *size)
    for arch in _archs(supernet):
        subnet = supernet.subnet(arch).eval()
        assert type(subnet) is type(nas.build(arch, num_classes=10, in_chans=1))
        with torch.no_grad():
            torch.testing.assert_close(supernet(x, arch), subnet(x), rtol=1e-5, atol=1e-5)


def test_one_point_space_supernet_equals_its_plain_network():
    space = load_space("mixnet-s")
    supernet = Supernet(space, num_classes=10, in_chans=1)
    arch = space.sample(0)
    assert supernet.largest() == supernet.smallest() == arch
    plain = nas.build(arch, num_classes=10, in_chans=1).eval()
    supernet.absorb(arch, plain)
    subnet = supernet.subnet(arch).eval()
    assert subnet.state_dict().keys() == plain.state_dict().keys()
    for key, value in plain.named_parameters():
        torch.testing.assert_close(dict(subnet.named_parameters())[key], value, rtol=0, atol=0)
    # beyond the plain network's weights it holds only the corners of the mixed kernels
    dw = [m for m in plain.modules() if isinstance(m, nas.layers.mixconv.MixConv2d) and m.depthwise]
    corners = sum(m.out_chs * m.max_kernel**2 - sum(c.weight.numel() for c in m.convs) for m in dw)
    assert sum(p.numel() for p in supernet.parameters()) == sum(p.numel() for p in plain.parameters()) + corners


def test_choices_share_leading_channels_and_centre_kernels(tiny):
    supernet = Supernet(tiny, num_classes=10)
    small, large = supernet.smallest(), supernet.largest()
    big = supernet.subnet(large).state_dict()
    little = supernet.subnet(small).state_dict()
    # the stem of the small subnet is the leading channels of the large one
    torch.testing.assert_close(little["conv_stem.weight"], big["conv_stem.weight"][: little["conv_stem.weight"].shape[0]])
    # a 3x3 depthwise group uses the centre of the position's 5x5 kernel
    shared = supernet.shared["s1__b0__ir__g1__1__conv_dw"]
    k3 = supernet.subnet(small).blocks[1][0].conv_dw.weight
    torch.testing.assert_close(k3, shared[: k3.shape[0], :, 1:4, 1:4])


def test_training_a_subnet_moves_only_its_shared_weights(tiny, digits):
    supernet = Supernet(tiny, num_classes=10)
    before = {k: v.detach().clone() for k, v in supernet.shared.items()}
    arch = supernet.smallest()
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.1)
    train, _ = digits
    x = train.images[:32].float() / 255
    loss = torch.nn.functional.cross_entropy(supernet(x, arch), train.labels[:32])
    loss.backward()
    optimizer.step()
    moved = {k for k, v in supernet.shared.items() if not torch.equal(v, before[k])}
    assert moved and "s0__b1__ds__g1__1__conv_dw" not in moved  # depth 1: the second block is not used
    assert "classifier__head__weight" not in moved and "classifier__nohead__weight" in moved  # smallest: head c0


def test_an_architecture_outside_the_space_is_refused(tiny):
    supernet = Supernet(tiny, num_classes=10)
    with pytest.raises(NasInputError, match="not in the space"):
        supernet.subnet("stem c8 s1 | ds k3.5.7 c8 | ir k3 e3 c16 s2 | head c0")


def _train(space, digits, steps, checkpoint=None, every=3):
    train, _ = digits
    recipe = recipe_for("digits", epochs=2, batch_size=64, lr=0.1, warmup_epochs=0.2)
    torch.manual_seed(0)
    supernet = Supernet(space, num_classes=10)
    trainer = SupernetTrainer(supernet, train.subset(torch.arange(256)), recipe, Sandwich(random_subnets=1),
                              device="cpu", seed=3, checkpoint=checkpoint, checkpoint_every=every)
    for progress in trainer.run(report_every=1):
        if progress.step >= steps:
            break
    return supernet, trainer


def test_a_stopped_training_resumes_to_the_same_weights(tiny, digits, tmp_path):
    whole, trainer = _train(tiny, digits, steps=10**9)
    assert trainer.step == trainer.setup.total_steps == 8
    ckpt = tmp_path / "supernet.pt"
    _train(tiny, digits, steps=3, checkpoint=ckpt)  # stopped after the step-3 checkpoint
    resumed, again = _train(tiny, digits, steps=10**9, checkpoint=ckpt)
    assert again.step == 8
    for key, value in whole.shared.items():
        torch.testing.assert_close(resumed.shared[key], value, rtol=0, atol=0)


def test_a_diverged_supernet_training_raises_the_training_error(tiny, digits):
    train, _ = digits
    recipe = recipe_for("digits", epochs=1, batch_size=64, lr=1e12, label_smoothing=0.0)
    torch.manual_seed(0)
    trainer = SupernetTrainer(Supernet(tiny, num_classes=10), train.subset(torch.arange(256)), recipe,
                              Sandwich(random_subnets=0), device="cpu", seed=0)
    with pytest.raises(TrainingDiverged, match="training diverged: loss .* at epoch 1, step"):
        list(trainer.run())


def test_recalibration_gives_exact_batch_statistics(tiny, digits):
    train, _ = digits
    supernet = Supernet(tiny, num_classes=10)
    model = supernet.subnet(supernet.largest())
    calib = train.subset(torch.arange(200))
    recalibrate(model, calib, "cpu", batch_size=50)
    x = (calib.images.float() / 255 - torch.tensor(calib.mean).view(1, -1, 1, 1)) / torch.tensor(calib.std).view(1, -1, 1, 1)
    with torch.no_grad():
        stem = model.conv_stem(x)
    torch.testing.assert_close(model.bn1.running_mean, stem.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert not model.training


def test_sandwich_training_teaches_every_subnet(tiny, digits):
    train, val = digits
    calib = train.subset(torch.arange(512))
    torch.manual_seed(0)
    supernet = Supernet(tiny, num_classes=10)
    archs = _archs(supernet, 2)
    before = [score(supernet, a, calib, val, "cpu").accuracy for a in archs]
    recipe = recipe_for("digits", epochs=12, batch_size=64, lr=0.2, warmup_epochs=0.2)
    trainer = SupernetTrainer(supernet, train, recipe, Sandwich(random_subnets=2), device="cpu", seed=0)
    for _ in trainer.run(report_every=50):
        pass
    after = [score(supernet, a, calib, val, "cpu").accuracy for a in archs]
    assert after[0] > 0.8, "the largest subnet (the teacher) learns"
    assert all(a > b + 0.2 for a, b in zip(after, before)), (before, after)


def test_channels_last_and_a_compiled_largest_subnet_compute_the_eager_result(tiny):
    torch.manual_seed(0)
    supernet = Supernet(tiny).train()
    twin = Supernet(tiny).train()
    twin.load_state_dict(supernet.state_dict())
    twin.channels_last = True
    largest = supernet.largest()
    twin.compile_subnet(largest)
    x = torch.randn(6, 1, 8, 8)
    for net in (supernet, twin):
        torch.nn.functional.cross_entropy(net(x, largest), torch.arange(6) % 10).backward()
    assert largest.__str__() in twin._compiled_ok  # it really ran compiled, not the eager fallback
    torch.testing.assert_close(twin(x, largest), supernet(x, largest), rtol=1e-4, atol=1e-5)
    for (name, a), (_, b) in zip(supernet.shared.items(), twin.shared.items()):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5, msg=name)


def test_kernel_transform_subnet_is_the_scored_network_and_its_transforms_learn(tiny, digits):
    torch.manual_seed(0)
    supernet = Supernet(tiny, kernel_transform=True)
    transforms = [k for k in supernet.shared if "__t" in k]
    assert transforms and all(torch.equal(supernet.shared[k], torch.eye(9)) for k in transforms)  # 3x3 of a 5x5
    rng = random.Random(1)
    arch = next(a for a in (supernet.space.sample(rng) for _ in range(50)) if any(len(b.kernels) > 1 for b in a.blocks()))
    x = torch.randn(5, 1, 8, 8)
    supernet.train()
    torch.nn.functional.cross_entropy(supernet(x, arch), torch.arange(5)).backward()
    assert any(supernet.shared[k].grad is not None and supernet.shared[k].grad.abs().sum() > 0 for k in transforms)
    with torch.no_grad():
        for k in transforms:
            supernet.shared[k].add_(0.05 * torch.randn(9, 9))
    supernet.eval()
    torch.testing.assert_close(supernet.subnet(arch).eval()(x), supernet(x, arch), rtol=1e-5, atol=1e-6)
    plain = Supernet(tiny)
    plain.load_state_dict({k: v for k, v in supernet.state_dict().items() if "__t" not in k})
    assert not torch.allclose(plain.eval()(x, arch), supernet(x, arch))  # the transform is used


def test_a_scoring_stage_is_a_fixed_balanced_part_and_scores_the_same_every_time(tiny, digits):
    from nas.supernet.scoring import ScoringStage

    train, val = digits
    supernet = Supernet(tiny, num_classes=10)
    arch = supernet.largest()
    stage = ScoringStage(calibration_images=100, held_out_images=120)
    calib, held = stage.take(train, val)
    assert (len(calib), len(held)) == (100, 120)
    assert torch.bincount(held.labels, minlength=10).max() - torch.bincount(held.labels, minlength=10).min() <= 1
    first = score(supernet, arch, train, val, "cpu", stage)
    again = score(supernet, arch, train, val, "cpu", stage)
    by_hand = score(supernet, arch, calib, held, "cpu")
    assert first == again == by_hand
    full = score(supernet, arch, train, val, "cpu")
    assert full != first  # other BN statistics and other images: the stage is not the full score
    with pytest.raises(ValueError):
        ScoringStage(0, 10)


def test_a_staged_one_shot_trial_screens_then_scores_fully_then_fine_tunes(tmp_path):
    """The trainable's steps with a screen: 1 the screen, 2 the full score, 3.. fine-tuning."""
    from evaluators.oneshot import inherited
    from evaluators.proxy import ProxyConfig, prepare_proxy_data
    from nas.search.trainable import TrialSpec, run_candidate
    from nas.supernet.folder import OneShotConfig
    from nas.supernet.lifecycle import train_supernet
    from nas.supernet.scoring import ScoringStage

    space_file = tmp_path / "tiny.toml"
    space_file.write_text(TINY_SPACE)
    folder = tmp_path / "net"
    config = OneShotConfig(space=str(space_file), dataset="digits", train_size=300, val_size=200, epochs=1,
                           batch_size=32, calibration_size=100)
    supernet = train_supernet(config, folder, device="cpu", threads=1)
    proxy = ProxyConfig(dataset="digits", train_size=400, val_size=200, epochs=3, resolution=None, batch_size=64)
    stage = ScoringStage(60, 50)
    arch = str(supernet.largest())
    reports: list[dict] = []
    run_candidate(TrialSpec(proxy=proxy, seed=0, supernet=str(folder), screen=stage), arch, reports.append)
    assert [r["epoch"] for r in reports] == [1, 2, 3] and not any(r["failed"] for r in reports), reports
    data = prepare_proxy_data(proxy)
    screened = inherited(folder, arch, data, stage)[1].val_accuracy
    full = inherited(folder, arch, data)[1].val_accuracy
    assert reports[0]["accuracy"] == pytest.approx(screened) and reports[1]["accuracy"] == pytest.approx(full)
    unstaged: list[dict] = []
    run_candidate(TrialSpec(proxy=proxy, seed=0, supernet=str(folder)), arch, unstaged.append)
    assert [r["epoch"] for r in unstaged] == [1, 2, 3] and unstaged[0]["accuracy"] == pytest.approx(full)


def test_a_staged_fidelity_screens_at_its_first_rung_and_round_trips_through_the_config():
    from nas.search.fidelity import Fidelity
    from nas.supernet.scoring import SCREEN_CALIBRATION_IMAGES

    staged = Fidelity.from_options(epochs=2, supernet="/some/supernet", screen_size=1000, final_epochs=0)
    assert staged.rungs() == [1] and staged.screen() is not None
    assert staged.screen().held_out_images == 1000 and staged.screen().calibration_images == SCREEN_CALIBRATION_IMAGES
    assert Fidelity.from_dict(staged.to_dict()) == staged
    older = {k: v for k, v in staged.to_dict().items() if k != "screen_size"}
    assert Fidelity.from_dict(older).screen() is None, "a one-shot run from before the screen scores once"
    assert Fidelity.from_options(supernet="/s", epochs=1).screen() is None, "no --screen-size: one score"
    assert Fidelity.from_options().screen() is None
    with pytest.raises(NasInputError, match="--screen-size needs --proxy supernet"):
        Fidelity.from_options(screen_size=500)
