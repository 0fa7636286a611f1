"""nas.training (the one training loop) and evaluators.proxy, on tiny real data."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from evaluators.proxy import ProxyConfig, prepare_proxy_data, proxy_data_from, proxy_train
from nas.data import load_dataset, split_train_val
from nas.training import (
    EpochResult,
    Recipe,
    Trainer,
    TrainingDiverged,
    augment_batch,
    evaluate,
    recipe_for,
    train_epochs,
)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    train, val = split_train_val(ds, val_size=300, seed=0)
    return train, val


def tiny_net(width: int = 16, dropout: float = 0.0) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(width, 10),
    )


def fit(model, train, val, recipe, device, seed, on_epoch=None, checkpoint=None, memory_format="auto"):
    """Train to the end; every epoch's result (restored ones included). ``on_epoch`` sees each new one."""
    trainer = Trainer(model, train, val, recipe, device, seed, checkpoint=checkpoint, memory_format=memory_format)
    for result in trainer.epochs():
        if on_epoch is not None:
            on_epoch(result)
    return list(trainer.history)


FAST = recipe_for("digits", epochs=3, batch_size=32, optimizer="adamw", lr=0.2, weight_decay=0.01, warmup_epochs=0.2)


def test_tiny_net_learns_digits(digits):
    train, val = digits
    torch.manual_seed(0)
    model = tiny_net()
    seen: list[EpochResult] = []
    history = fit(model, train, val, FAST, "cpu", seed=0, on_epoch=seen.append)
    assert [r.epoch for r in history] == [1, 2, 3] and seen == history
    last = history[-1]
    assert last.val_accuracy > 0.5, history  # chance is 0.1
    assert last.train_loss < history[0].train_loss
    assert last.images_per_s > 0 and last.seconds > 0 and last.train_images == (len(train) // 32) * 32
    acc, loss = evaluate(model, val, "cpu")
    assert acc == pytest.approx(last.val_accuracy) and loss == pytest.approx(last.val_loss)


def test_divergence_raises_with_epoch_and_step(digits):
    train, val = digits

    class Nan(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = tiny_net()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            out = self.net(x)
            return out * float("nan") if self.calls >= 3 else out

    with pytest.raises(TrainingDiverged) as info:
        fit(Nan(), train, val, FAST, "cpu", seed=0)
    assert info.value.epoch == 1 and info.value.step == 3 and math.isnan(info.value.loss)
    with pytest.raises(TrainingDiverged, match="training diverged"):
        fit(tiny_net(), train, val, FAST.with_(optimizer="sgd-nesterov", lr=1e10, label_smoothing=0.0), "cpu", seed=0)


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_same_seed_same_weights(digits):
    train, val = digits
    recipe = FAST.with_(epochs=2)
    runs = []
    for seed in (5, 5, 6):
        torch.manual_seed(123)
        model = tiny_net(dropout=0.2)  # dropout draws from the global RNG, seeded by fit
        fit(model, train, val, recipe, "cpu", seed=seed)
        runs.append(_weights(model))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


@pytest.mark.parametrize("ema", [None, 0.9])
def test_checkpoint_resume_matches_uninterrupted(digits, tmp_path, ema):
    train, val = digits
    recipe = FAST.with_(epochs=3, ema_decay=ema)

    torch.manual_seed(0)
    straight = tiny_net(dropout=0.1)
    full = fit(straight, train, val, recipe, "cpu", seed=1)

    ckpt = tmp_path / "run" / "ckpt.pt"
    torch.manual_seed(0)
    first = tiny_net(dropout=0.1)
    for result in train_epochs(first, train, val, recipe, "cpu", seed=1, checkpoint=ckpt):
        if result.epoch == 2:
            break  # "interrupted" after epoch 2 (its checkpoint is written)
    assert ckpt.exists()
    torch.manual_seed(99)  # a fresh process would build a differently initialised model
    resumed = tiny_net(dropout=0.1)
    rest = list(train_epochs(resumed, train, val, recipe, "cpu", seed=1, checkpoint=ckpt))
    assert [r.epoch for r in rest] == [3]
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert rest[0].val_accuracy == full[-1].val_accuracy and rest[0].train_loss == full[-1].train_loss
    # a finished checkpoint: nothing left to train, fit still returns the whole history
    again = tiny_net(dropout=0.1)
    history = fit(again, train, val, recipe, "cpu", seed=1, checkpoint=ckpt)
    assert [r.epoch for r in history] == [1, 2, 3]
    assert all(torch.equal(a[k], _weights(again)[k]) for k in a)


def test_checkpoint_with_other_recipe_is_refused(digits, tmp_path):
    from nas.errors import NasInputError

    train, val = digits
    ckpt = tmp_path / "ckpt.pt"
    fit(tiny_net(), train, val, FAST.with_(epochs=1), "cpu", seed=0, checkpoint=ckpt)
    with pytest.raises(NasInputError, match="different recipe or seed"):
        fit(tiny_net(), train, val, FAST.with_(epochs=2), "cpu", seed=0, checkpoint=ckpt)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(NasInputError, match="cannot be read"):
        fit(tiny_net(), train, val, FAST.with_(epochs=1), "cpu", seed=0, checkpoint=ckpt)


def test_memory_formats_agree(digits):
    train, val = digits
    results = {}
    for fmt in ("contiguous", "channels_last"):
        torch.manual_seed(0)
        model = tiny_net()
        results[fmt] = fit(model, train, val, FAST.with_(epochs=1), "cpu", seed=0, memory_format=fmt)[-1]
    assert results["contiguous"].val_loss == pytest.approx(results["channels_last"].val_loss, rel=1e-3, abs=1e-3)


def test_augment_batch_crops_and_flips_whole_batches():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    same = augment_batch(x, 0, False, g)
    assert torch.equal(same, x)
    out = augment_batch(x.repeat(64, 1, 1, 1), 1, True, g)
    assert out.shape == (128, 1, 4, 4) and out.dtype == torch.uint8
    flipped = x[0].flip(2)
    assert any(torch.equal(o, flipped) for o in out[0::2])  # some flipped, uncropped copies
    assert any((o == 0).any() for o in out)  # some crops brought in zero padding


def test_recipe_validation():
    from nas.errors import NasInputError

    assert Recipe(batch_size=512, lr=0.1).scaled_lr == pytest.approx(0.2)
    assert recipe_for("digits").hflip is False and recipe_for("fashion-mnist").hflip is True
    with pytest.raises(NasInputError, match="unknown optimizer 'adam'"):
        Recipe(optimizer="adam")
    with pytest.raises(NasInputError, match="unknown field"):
        Recipe().with_(epoch=3)


def test_proxy_yields_one_result_per_epoch():
    config = ProxyConfig(dataset="digits", train_size=256, val_size=200, epochs=3, batch_size=32, lr=0.4)
    data = prepare_proxy_data(config)
    assert prepare_proxy_data(config) is data  # cached per process, on the data settings only
    assert prepare_proxy_data(ProxyConfig(**{**config.as_dict(), "lr": 0.1, "recipe_overrides": ()})) is data
    assert len(data.train) == 256 and len(data.val) == 200 and data.image_size == 8
    # stratified by the class shares of what is left once the judge's sixth is set aside
    counts = data.val.class_counts()
    assert int(counts.sum()) == 200 and int(counts.min()) >= 19 and int(counts.max()) <= 21
    results = []
    torch.manual_seed(0)  # a built module's initialisation is the caller's (the seed fixes the batches)
    for r in proxy_train(tiny_net(), data, config, device="cpu", seed=0, threads=1):
        results.append(r)
    assert [r.epoch for r in results] == [1, 2, 3] and all(r.epochs == 3 for r in results)
    assert all(0.0 <= r.val_accuracy <= 1.0 for r in results)
    # the scheduler may stop a trial after any epoch: consuming one result trains one epoch
    torch.manual_seed(0)
    gen = proxy_train(tiny_net(), data, config, device="cpu", seed=0)
    first = next(gen)
    gen.close()
    assert first.epoch == 1 and first.val_accuracy == results[0].val_accuracy


def test_proxy_validates_only_at_its_eval_epochs_with_the_same_training():
    config = ProxyConfig(dataset="digits", train_size=256, val_size=200, epochs=3, batch_size=32, lr=0.4)
    data = prepare_proxy_data(config)
    torch.manual_seed(0)
    every = list(proxy_train(tiny_net(), data, config, device="cpu", seed=0, threads=1))
    torch.manual_seed(0)
    sparse = list(proxy_train(tiny_net(), data, ProxyConfig(**{**config.as_dict(), "eval_epochs": [1]}),
                              device="cpu", seed=0, threads=1))
    assert [r.epoch for r in sparse] == [1, 2, 3]
    assert math.isnan(sparse[1].val_accuracy) and math.isnan(sparse[1].val_loss)
    # epoch 1 asked for, the last always; skipping a validation changes nothing else
    for i in (0, 2):
        assert sparse[i].val_accuracy == every[i].val_accuracy
    assert [r.train_loss for r in sparse] == [r.train_loss for r in every]


def test_proxy_builds_from_a_genotype_and_resizes():
    pytest.importorskip("nas.builder")
    ds = load_dataset("digits")
    assert proxy_data_from(ds, ProxyConfig(dataset="digits", train_size=64, val_size=50, resolution=12)).image_size == 8
    config = ProxyConfig(dataset="digits", train_size=128, val_size=100, epochs=1, batch_size=32, resolution=6)
    data = proxy_data_from(ds, config)
    assert data.train.images.shape[1:] == (1, 6, 6) and data.train.images.dtype == torch.uint8
    genotype = "stem c8 | ir k3.5 e3 c16 s2 | head c0"
    (result,) = list(proxy_train(genotype, data, config, device="cpu", seed=0))
    assert result.epoch == 1 and not math.isnan(result.val_loss)
