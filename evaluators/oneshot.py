"""One-shot scoring: score any candidate by the inherited weights of a trained supernet.

    supernet = train_supernet(OneShotConfig(space="mdconv"), "results/supernet-mdconv")  # nas.supernet.lifecycle
    scorer = OneShotScorer.from_folder("results/supernet-mdconv")
    scorer.score("stem c16 s1 | ds k3 c8 | ...")                     # validation accuracy

The supernet folder (its config, training and loading) is :mod:`nas.supernet.folder`'s; here
are the scorer, a search trial's inherited first epoch and fine-tuning, and the fidelity
benchmark's predictor.
"""

from __future__ import annotations

import functools
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch

from evaluators.proxy import ProxyConfig, ProxyData
from nas.errors import NasInputError
from nas.supernet import Supernet
from nas.supernet.folder import OneShotConfig, load_data, load_supernet
from nas.supernet.lifecycle import train_supernet
from nas.supernet.scoring import ScoringStage, score


class OneShotScorer:
    """Scores candidates by inherited weights: subnet, BN recalibrated, validation accuracy."""

    def __init__(self, supernet: Supernet, config: OneShotConfig, data: ProxyData | None = None, device: str = "auto") -> None:
        from nas.data import stratified_subset

        self.supernet, self.config, self.device = supernet, config, device
        self.data = data or load_data(config)
        self.calibration = stratified_subset(self.data.train, config.calibration_size, seed=config.split_seed)

    @classmethod
    def from_folder(cls, folder: str | Path, device: str = "auto") -> "OneShotScorer":
        supernet, config = load_supernet(folder, device)
        return cls(supernet, config, device=device)

    def score(self, arch, stage: ScoringStage | None = None) -> float:
        """``arch``'s accuracy by inherited weights, on ``stage``'s part of the data (None: all)."""
        return float(score(self.supernet, arch, self.calibration, self.data.val, self.device, stage).accuracy)

    def score_all(self, archs: Sequence, outside: float = float("nan"), stage: ScoringStage | None = None) -> list[float]:
        """Scores of ``archs``; ``outside`` for one the supernet's space does not hold (a baseline
        from another space, say) instead of an error."""
        scores = []
        for arch in archs:
            try:
                scores.append(self.score(arch, stage))
            except NasInputError as exc:
                if "is not in the space" not in str(exc):
                    raise
                scores.append(outside)
        return scores


@functools.lru_cache(maxsize=1)
def _cached_supernet(folder: str) -> Supernet:
    return load_supernet(folder, "auto")[0]  # once per worker process: a reused actor loads it once


def inherited(folder: str | Path, arch, data: ProxyData, stage: ScoringStage | None = None):
    """A search trial's score by inherited weights: (the subnet, BN recalibrated on the trial's
    training images, ready to fine-tune; its :class:`nas.training.EpochResult` on the trial's
    validation images), on ``stage``'s part of those images (None: all of them)."""
    from nas.supernet.scoring import evaluate_folded, recalibrate
    from nas.training import EpochResult

    started = time.perf_counter()
    supernet = _cached_supernet(str(folder))
    calibration, val = stage.take(data.train, data.val) if stage else (data.train, data.val)
    model = recalibrate(supernet.subnet(arch), calibration)
    result = evaluate_folded(model, val)  # on a copy: the model may be fine-tuned next
    seconds = time.perf_counter() - started
    return model, EpochResult(epoch=1, epochs=1, train_loss=float("nan"), val_loss=result.loss,
                              val_accuracy=result.accuracy, images_per_s=float("nan"), seconds=seconds,
                              lr=0.0, train_images=0)


#: Fine-tuning from inherited weights: a quarter of the proxy's learning rate, no warm-up
#: (the weights are trained already; the full proxy lr would undo them).
FINE_TUNE_LR_FACTOR = 0.25


def fine_tune_config(proxy: ProxyConfig, scored_steps: int = 1) -> ProxyConfig:
    """The proxy training of steps ``scored_steps + 1``..E of a one-shot trial (the steps before
    were its scores by inherited weights: the screen and the full score, or the full score alone)."""
    evals = None if proxy.eval_epochs is None else tuple(e - scored_steps for e in proxy.eval_epochs if e > scored_steps)
    return replace(proxy, epochs=proxy.epochs - scored_steps, lr=proxy.lr * FINE_TUNE_LR_FACTOR, warmup_epochs=0.0,
                   eval_epochs=evals)


def fidelity_scores(genotypes: Sequence[str], folder: str | Path | None = None, stage: ScoringStage | None = None,
                    **settings: Any) -> list[float]:
    """``benchmarks/bench_fidelity.py --predictor supernet=evaluators.oneshot:fidelity_scores``:
    trains (once; resumable) a supernet of ``mdconv`` in ``folder`` and scores ``genotypes``
    (on ``stage``'s part of the data; None: all of it)."""
    torch.set_num_threads(1)
    config = replace(OneShotConfig(), **settings)
    folder = Path(folder or Path(__file__).resolve().parents[1] / "benchmarks" / "ground_truth" / ".work" / "supernet")
    supernet = train_supernet(config, folder, device="cpu", threads=1)
    return OneShotScorer(supernet, config, device="cpu").score_all(genotypes, stage=stage)


__all__ = ["OneShotScorer", "fidelity_scores", "fine_tune_config", "inherited"]
