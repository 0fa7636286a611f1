"""Space.suggest through a real in-memory Optuna study; Space.sample determinism."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nas.genotype import Arch
from nas.space import load_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

DEPTHS = """
[input]
channels = 1
size = 28
[stem]
channels = 8
stride = 1
[defaults]
type = ["ir", "ds"]
kernels = [[3], [3, 5]]
partition = ["equal", "exp"]
expansion = [3, 6]
[[stages]]
depth = [1, 3]
width = [8, 16]
[[stages]]
depth = 1
width = 24
stride = 2
downsample = ["conv", "max"]
[head]
channels = [0, 32]
"""


def _space(tmp_path: Path, text: str = DEPTHS):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return load_space(str(path))


@pytest.mark.parametrize("name", ["mdconv", "dilated"])
def test_suggest_gives_valid_archs_in_a_real_study(name: str) -> None:
    space = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    seen = []

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        assert Arch.parse(str(arch)) == arch
        seen.append(arch)
        return float(sum(b.out_channels for b in arch.blocks()))

    study.optimize(objective, n_trials=12)
    assert len(seen) == 12 and len({str(a) for a in seen}) > 1
    for trial in study.trials:
        assert "s0.depth" in trial.params
        # kernels are suggested as dotted strings
        assert all(isinstance(v, str) for k, v in trial.params.items() if k.endswith(".kernels"))


def test_conditional_params_only_where_they_matter(tmp_path: Path) -> None:
    space = _space(tmp_path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    archs = {}
    study.optimize(lambda t: archs.setdefault(t.number, space.suggest(t)) and 0.0, n_trials=60)
    depth_one = 0
    for trial in study.trials:
        arch, params = archs[trial.number], trial.params
        stage0 = arch.stages[0]
        assert params["s0.depth"] == len(stage0)
        if len(stage0) == 1:
            depth_one += 1
            assert not any(k.startswith(("s0.b1.", "s0.b2.")) for k in params)
        for j, block in enumerate(stage0):
            p = f"s0.b{j}."
            assert params[p + "type"] == block.kind
            assert params[p + "kernels"] == ".".join(map(str, block.kernels))
            assert (p + "expansion" in params) == (block.kind == "ir")
            assert (p + "partition" in params) == (len(block.kernels) > 1)
        # single-option decisions are not parameters; stride-1 stage has no downsample
        assert "stem.channels" not in params and "s1.width" not in params and "s0.downsample" not in params
        assert params["s1.downsample"] == arch.stages[1][0].downsample
        assert "s1.b0.expansion" in params or arch.stages[1][0].kind == "ds"
    assert 0 < depth_one < 60


def test_suggest_replays_fixed_params(tmp_path: Path) -> None:
    """The params of a trial determine its arch: a FixedTrial with them gives the same Arch."""
    space = _space(tmp_path)
    recorded: dict = {}

    def last(name, options):
        recorded[name] = options[-1]
        return options[-1]

    arch = space.draw(last)
    fixed = {k: ".".join(map(str, v)) if isinstance(v, tuple) else v for k, v in recorded.items()}
    assert space.suggest(optuna.trial.FixedTrial(fixed)) == arch
    assert len(arch.stages[0]) == 3 and arch.stages[1][0].downsample == "max"


def test_one_point_spaces_suggest_nothing() -> None:
    for name in ("mixnet-s", "mobilenetv2-3x3"):
        space = load_space(name)
        study = optuna.create_study()
        out = []
        study.optimize(lambda t: out.append(space.suggest(t)) or 0.0, n_trials=2)
        assert study.trials[0].params == {}
        assert out[0] == out[1] == space.sample(0) == space.sample(123)


def test_sample_is_deterministic_per_seed() -> None:
    space = load_space("mdconv")
    assert [str(space.sample(s)) for s in range(5)] == [str(space.sample(s)) for s in range(5)]
    assert len({str(space.sample(s)) for s in range(20)}) == 20


def test_same_seed_same_study_samples() -> None:
    space = load_space("mdconv")

    def run() -> list[str]:
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=3))
        out: list[str] = []
        study.optimize(lambda t: out.append(str(space.suggest(t))) or float(len(out) % 3), n_trials=6)
        return out

    assert run() == run()
