"""The search's fidelity: the proxy training of a candidate plus successive halving over its epochs.

One typed value flows from the CLI to the trainable: :class:`Fidelity` holds the
:class:`evaluators.proxy.ProxyConfig` a trial trains with (built once, from the flags or
from a run's ``config.json``) and the schedule (``min_epochs``, ``eta``, ``promotion``).
:meth:`Fidelity.to_dict` / :meth:`Fidelity.from_dict` are the one place that knows the
``fidelity`` section of ``config.json`` (older runs' sections are migrated on reading, in
:func:`nas.runs.folder.migrate_config`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Optional

from evaluators.proxy import ProxyConfig
from nas.errors import NasInputError
from nas.moo import rung_epochs

if TYPE_CHECKING:
    from nas.supernet.scoring import ScoringStage

PROMOTIONS = ("budgeted", "asha")
#: The finals' held-out images: at most this many, a fifth of a smaller search carve.
FINAL_VAL_SIZE = 10_000
#: The search's defaults, chosen end to end by ``benchmarks/bench_search_quality.py``: the proxy
#: screens for 3 epochs (it only has to find the finalists), then 15 finalists, 5 in each of 3
#: log-cost tiers, train 1 epoch for real (2 epochs measured better picks but took ~45 min of
#: the 2 cores at budget 200; the default has to fit in 30). ``--final-epochs 0`` turns the
#: finals off; the proxy then decides the front and trains its own default epochs
#: (``ProxyConfig``, docs/proxy.md).
SCREENING_EPOCHS = 3
DEFAULT_FINAL_EPOCHS = 1
DEFAULT_FINALISTS = 15
#: Log-cost tiers the finalists are spread over (the S/M/L of the picks).
FINAL_TIERS = 3
#: How the finalists are chosen within a tier (``--finalists-by``): "screening" - the best
#: residuals above the screening's own cost curve; "cost" - evenly spaced in log-cost among
#: every screened candidate, the screening's accuracy unused (``nas.search.finals``).
FINALIST_RULES = ("screening", "cost")


@dataclass(frozen=True)
class Fidelity:
    """Proxy-training fidelity: successive halving from ``min_epochs`` to ``proxy.epochs`` by ``eta``.

    The proxy (``evaluators.proxy``) trains on ``proxy.train_size`` images of the dataset's
    TRAIN split and validates on ``proxy.val_size`` others of it (the test split is never
    used); defaults are the proxy's (measured in docs/proxy.md), but for its epochs: 3 with
    finals (the default), the proxy's 9 without. ``eta`` 0 turns successive
    halving off (every trial trains ``proxy.epochs`` epochs). ``promotion``: "budgeted" - a
    rung lets at most 1/eta of its trials continue (its front always); "asha" - plain
    asynchronous promotion (see nas.moo.should_promote).
    """

    proxy: ProxyConfig = field(default_factory=lambda: ProxyConfig(epochs=SCREENING_EPOCHS))
    min_epochs: int = 1
    eta: float = 3.0
    promotion: str = "budgeted"
    #: A trained supernet folder (``nas supernet train``): epoch 1 of a trial is the candidate's
    #: score by inherited weights, later epochs fine-tune it from them. None: the scratch proxy.
    supernet: Optional[str] = None
    #: The finals (the last rung): once the screening has trained its budget, ``finalists``
    #: candidates chosen across log-cost tiers (:mod:`nas.search.finals`) train *for real*,
    #: ``final_epochs`` epochs from scratch on all the search's training images at the data's
    #: own size, scored on the search's own held-out images (never the judge's); that score is
    #: their full-fidelity accuracy, so the front is decided by real training. 0: no finals.
    final_epochs: int = DEFAULT_FINAL_EPOCHS
    finalists: int = DEFAULT_FINALISTS
    #: How each tier's finalists are chosen (:data:`nas.search.finals.FINALIST_RULES`).
    finalists_by: str = "screening"
    #: Held-out images of the finals (set by :meth:`bound` from the data's size).
    final_val_size: int = FINAL_VAL_SIZE
    #: Staged one-shot scoring: with a supernet, step 1 of a trial is its score on this many
    #: held-out images after a short BN recalibration (the screen,
    #: :data:`nas.supernet.scoring.SCREEN_CALIBRATION_IMAGES`), step 2 its score on all of them,
    #: and only the trials successive halving promotes at step 1 pay for step 2. 0: one score.
    screen_size: int = 0

    @classmethod
    def from_options(cls, epochs: Optional[int] = None, min_epochs: Optional[int] = None,
                     eta: Optional[float] = None, train_size: Optional[int] = None,
                     val_size: Optional[int] = None, batch_size: Optional[int] = None,
                     lr: Optional[float] = None, resolution: Optional[int] = None,
                     promotion: Optional[str] = None, supernet: Optional[str] = None,
                     final_epochs: Optional[int] = None, finalists: Optional[int] = None,
                     screen_size: Optional[int] = None, finalists_by: Optional[str] = None) -> "Fidelity":
        """Validated fidelity from the ``nas search`` options (None: not given, the default);
        bad values -> :class:`NasInputError` naming the flag. ``resolution`` 0: the data's own size."""
        base = cls()
        p = base.proxy
        fid = cls(
            proxy=p,
            min_epochs=int(min_epochs if min_epochs is not None else base.min_epochs),
            eta=float(eta if eta is not None else base.eta),
            promotion=promotion if promotion is not None else base.promotion,
            supernet=str(supernet) if supernet else None,
            final_epochs=int(final_epochs if final_epochs is not None else base.final_epochs),
            finalists=int(finalists if finalists is not None else base.finalists),
            finalists_by=finalists_by if finalists_by is not None else base.finalists_by,
            screen_size=int(screen_size or 0),
        )
        if fid.finalists_by not in FINALIST_RULES:
            raise NasInputError(f"--finalists-by {fid.finalists_by!r}: expected one of {', '.join(FINALIST_RULES)}")
        if fid.screen_size < 0:
            raise NasInputError(f"--screen-size must be >= 0 (0: no screen), got {fid.screen_size}")
        if fid.screen_size and not fid.supernet:
            raise NasInputError("--screen-size needs --proxy supernet (it stages the scores by inherited weights)")
        if fid.final_epochs < 0:
            raise NasInputError(f"--final-epochs must be >= 0 (0: no finals), got {fid.final_epochs}")
        if fid.finalists < 1:
            raise NasInputError(f"--finalists must be >= 1, got {fid.finalists}")
        epochs = int(epochs if epochs is not None else (p.epochs if fid.final_epochs else ProxyConfig().epochs))
        sizes = (int(train_size if train_size is not None else p.train_size),
                 int(val_size if val_size is not None else p.val_size))
        batch = int(batch_size if batch_size is not None else p.batch_size)
        lr = float(lr if lr is not None else p.lr)
        px = int(resolution if resolution is not None else (p.resolution or 0))
        _check_options(fid, epochs, sizes, batch, lr, px)
        proxy = replace(p, epochs=epochs, train_size=sizes[0], val_size=sizes[1], batch_size=batch, lr=lr,
                        resolution=px or None)
        return replace(fid, proxy=proxy)

    def to_dict(self) -> dict[str, Any]:
        """The ``fidelity`` section of ``config.json``."""
        p = self.proxy
        return {"epochs": p.epochs, "min_epochs": self.min_epochs, "eta": self.eta, "train_size": p.train_size,
                "val_size": p.val_size, "batch_size": p.batch_size, "lr": p.lr, "resolution": p.resolution or 0,
                "promotion": self.promotion, "rungs": self.rungs(),
                "proxy": "supernet" if self.supernet else "scratch", "supernet": self.supernet,
                "final_epochs": self.final_epochs, "finalists": self.finalists, "finalists_by": self.finalists_by,
                "full_fidelity": self.epochs,
                "screen_size": self.screen_size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Fidelity":
        """The fidelity a run's ``config.json`` section records (validated as the flags are)."""
        keys = ("epochs", "min_epochs", "eta", "train_size", "val_size", "batch_size", "lr", "resolution", "promotion")
        missing = [k for k in keys if k not in d]
        if missing:
            raise NasInputError(f"config.json: fidelity lacks {', '.join(map(repr, missing))}")
        # older runs: scratch, no finals
        return cls.from_options(**{k: d[k] for k in keys}, supernet=d.get("supernet"),
                                final_epochs=d.get("final_epochs", 0), finalists=d.get("finalists"),
                                finalists_by=d.get("finalists_by"),
                                screen_size=d.get("screen_size", 0))  # older one-shot runs: one score

    def bound(self, dataset: str, data_dir: Optional[str], seed: int, train_images: Optional[int] = None) -> "Fidelity":
        """This fidelity on a run's data: the dataset, its data subset seed, the epochs to validate
        after (the rungs and the last: ~10% of a trial's time goes to validation) and the last
        rung's held-out size for a TRAIN split of ``train_images``."""
        from nas.data.split import judge_size

        proxy = replace(self.proxy, dataset=dataset, data_dir=data_dir, split_seed=int(seed),
                        eval_epochs=tuple(r for r in (*self.rungs(), self.proxy.epochs) if r <= self.proxy.epochs))
        final_val = self.final_val_size
        if train_images:
            final_val = min(FINAL_VAL_SIZE, (train_images - judge_size(train_images)) // 5)
        return replace(self, proxy=proxy, final_val_size=max(1, final_val))

    @property
    def epochs(self) -> int:
        """Full fidelity: the steps of a fully trained candidate (the proxy's epochs, plus one for
        the finals' real training when there are finals)."""
        return self.proxy.epochs + (1 if self.final_epochs else 0)

    @property
    def screening_epochs(self) -> int:
        """The epochs a candidate of the screening trains at most (the proxy's)."""
        return self.proxy.epochs

    def final_proxy(self) -> Optional[ProxyConfig]:
        """The finals' training (None without finals): ``final_epochs`` epochs on every image
        of the search's carve but its held-out ones, at the data's own size, batch 128, a short
        warm-up (the whole schedule spans the rung's epochs)."""
        if not self.final_epochs:
            return None
        return replace(self.proxy, train_size=10**9, val_size=self.final_val_size, epochs=self.final_epochs,
                       resolution=None, batch_size=128, warmup_epochs=min(0.3, self.final_epochs / 3),
                       eval_epochs=(self.final_epochs,))

    def screen(self) -> Optional["ScoringStage"]:
        """The first scoring stage of a one-shot trial (None: a single score)."""
        if not (self.supernet and self.screen_size):
            return None
        from nas.supernet.scoring import SCREEN_CALIBRATION_IMAGES, ScoringStage

        return ScoringStage(SCREEN_CALIBRATION_IMAGES, self.screen_size, seed=self.proxy.split_seed)

    def train_size_px(self, image_size: int) -> int:
        """The square size a candidate trains at for data of ``image_size`` (never upsampled)."""
        res = self.proxy.resolution
        return min(int(image_size), res) if res else int(image_size)

    def rungs(self) -> list[int]:
        """The epochs at which successive halving decides (who trains for real is the finals'
        choice, made once the screening is done: :mod:`nas.search.finals`)."""
        return rung_epochs(self.min_epochs, self.proxy.epochs, self.eta) if self.eta > 1 else []


def _check_options(fid: Fidelity, epochs: int, sizes: tuple[int, int], batch: int, lr: float, px: int) -> None:
    if fid.promotion not in PROMOTIONS:
        raise NasInputError(f"--promotion {fid.promotion!r}: expected one of {', '.join(PROMOTIONS)}")
    if epochs < 1:
        raise NasInputError(f"--epochs must be >= 1, got {epochs}")
    if not 1 <= fid.min_epochs <= epochs:
        raise NasInputError(f"--min-epochs must be in 1..--epochs ({epochs}), got {fid.min_epochs}")
    if not (fid.eta > 1 or fid.eta == 0):
        raise NasInputError(f"--eta must be > 1 (or 0 to turn successive halving off), got {fid.eta:g}")
    if sizes[0] < 1 or sizes[1] < 1:
        raise NasInputError(f"--train-size and --val-size must be >= 1, got {sizes[0]}, {sizes[1]}")
    if batch < 1:
        raise NasInputError(f"--batch-size must be >= 1, got {batch}")
    if not (lr > 0 and math.isfinite(lr)):
        raise NasInputError(f"--lr must be a positive number, got {lr}")
    if px != 0 and px < 4:
        raise NasInputError(f"--proxy-resolution must be >= 4 (or 0: the data's own size), got {px}")


__all__ = ["DEFAULT_FINAL_EPOCHS", "DEFAULT_FINALISTS", "FINALIST_RULES", "FINAL_TIERS", "Fidelity", "PROMOTIONS", "SCREENING_EPOCHS"]
