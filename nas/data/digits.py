"""scikit-learn's bundled 8x8 digits (1797 images, 16 grey levels, no download)."""

from __future__ import annotations

import numpy as np
import torch

from nas.data.base import Dataset, make_dataset
from nas.data.split import stratified_indices

DIGITS_TEST_FRACTION = 0.2


def load_digits_dataset(seed: int = 0) -> Dataset:
    """Digits as uint8 (N, 1, 8, 8), grey levels 0..16 scaled to 0..255.

    There is no official test split: we make a fixed, seeded (``seed``), stratified
    80/20 one; :attr:`Dataset.note` says so.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    n_test = int(round(len(y) * DIGITS_TEST_FRACTION))
    test_idx, train_idx = stratified_indices(y, n_test, seed, 10)
    return make_dataset(
        "digits",
        x[train_idx],
        y[train_idx],
        x[test_idx],
        y[test_idx],
        tuple(str(d) for d in range(10)),
        note=f"no official test split: fixed stratified 80/20 split with seed {seed}",
        source="sklearn.datasets.load_digits",
    )
