"""CIFAR-10 in its python-batch folder format (data_batch_1..5, test_batch, batches.meta)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from nas.data.base import Dataset, make_dataset
from nas.errors import NasInputError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = "test_batch"


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # The batches are pickled dicts (the format CIFAR-10 is published in). Unpickling
    # can run code, so only point this at a folder you trust: the user names it
    # explicitly (--data-dir), we never fetch pickles from the network ourselves.
    try:
        with path.open("rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
    except OSError as exc:
        raise NasInputError(f"cannot read CIFAR-10 batch {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # truncated / not a pickle: many exception types
        raise NasInputError(f"CIFAR-10 batch {path} is corrupted or not a pickle: {exc}") from exc
    if not isinstance(batch, dict):
        raise NasInputError(f"CIFAR-10 batch {path} should hold a dict, holds {type(batch).__name__}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise NasInputError(f"CIFAR-10 batch {path} lacks the 'data' or 'labels' entry")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise NasInputError(f"CIFAR-10 batch {path}: data should be uint8 (N, 3072), is {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise NasInputError(f"CIFAR-10 batch {path}: {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise NasInputError(f"CIFAR-10 batch {path}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(data_dir: str | Path | None) -> Dataset:
    """Load from ``data_dir`` (or ``data_dir/cifar-10-batches-py``); no download."""
    if data_dir is None:
        raise NasInputError("cifar10 needs a data folder (the extracted cifar-10-batches-py); none given")
    root = Path(data_dir)
    if not root.is_dir():
        raise NasInputError(f"data folder {root} {'is not a folder' if root.exists() else 'does not exist'}")
    if not (root / _TEST).is_file() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    missing = [name for name in (*_TRAIN, _TEST) if not (root / name).is_file()]
    if missing:
        raise NasInputError(f"CIFAR-10 folder {root} is missing {', '.join(missing)}")
    train = [_read_batch(root / name) for name in _TRAIN]
    test_x, test_y = _read_batch(root / _TEST)
    return make_dataset(
        "cifar10",
        torch.from_numpy(np.concatenate([x for x, _ in train])),
        torch.from_numpy(np.concatenate([y for _, y in train])),
        torch.from_numpy(np.ascontiguousarray(test_x)),
        torch.from_numpy(test_y),
        CIFAR10_CLASSES,
        source=str(root),
    )
