"""Training: the one recipe, batch pipeline and optimiser setup behind every training in the engine.

- :mod:`nas.training.recipe`: :class:`Recipe` (how one training runs) and :func:`recipe_for`;
- :mod:`nas.training.batches`: device, memory format, mixed precision, augmentation,
  normalisation and :func:`evaluate`;
- :mod:`nas.training.optim`: optimiser, warm-up + cosine schedule, :class:`TrainingSetup`
  (shared by the model trainer and the supernet's) and :class:`TrainingDiverged`;
- :mod:`nas.training.trainer`: :class:`Trainer` / :func:`train_epochs` (proxy training in the
  search and the final retrain), EMA and checkpoints.

The names below are the documented ones (``from nas.training import Recipe, train_epochs``).
"""

from nas.training.batches import EvalResult, augment_batch, evaluate, resolve_device, use_channels_last
from nas.training.optim import TrainingDiverged, TrainingSetup
from nas.training.recipe import Recipe, recipe_for
from nas.training.trainer import EpochResult, ModelEma, Trainer, train_epochs

__all__ = [
    "EpochResult",
    "EvalResult",
    "ModelEma",
    "Recipe",
    "Trainer",
    "TrainingDiverged",
    "TrainingSetup",
    "augment_batch",
    "evaluate",
    "recipe_for",
    "resolve_device",
    "train_epochs",
    "use_channels_last",
]
