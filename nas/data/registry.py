"""``load_dataset(name)``: the one entry point from a data set name to tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from nas.data.base import Dataset
from nas.errors import NasInputError

DEFAULT_DATASET = "fashion-mnist"
DATASET_NAMES = ("fashion-mnist", "mnist", "digits", "cifar10", "imagefolder")


def load_dataset(
    name: str = DEFAULT_DATASET,
    data_dir: str | Path | None = None,
    download: bool = False,
    *,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
    image_size: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a data set (train + official test split) into memory.

    - ``fashion-mnist`` / ``mnist``: IDX files (gz or not) from ``data_dir``, else the
      Debian folder /usr/share/datasets/<name>, else ~/.cache/nas/datasets/<name>;
      downloaded from ``base_url`` (checksummed) only if ``download`` is true.
      ``checksums`` overrides the published ones (file stem -> MD5 or SHA256),
      for a mirror that re-compressed the files.
    - ``digits``: scikit-learn's bundled digits; test split made by us (``seed``).
    - ``cifar10``: the python-batch folder in ``data_dir``.
    - ``imagefolder``: ``data_dir`` with train/ + test/ or class folders; ``image_size``.
    """
    key = name.strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "image-folder": "imagefolder"}.get(key, key)
    loaders: dict[str, Callable[[], Dataset]] = {
        "fashion-mnist": lambda: _idx("FASHION_MNIST", data_dir, download, base_url, checksums),
        "mnist": lambda: _idx("MNIST", data_dir, download, base_url, checksums),
        "digits": lambda: _digits(seed),
        "cifar10": lambda: _cifar(data_dir),
        "imagefolder": lambda: _imagefolder(data_dir, image_size, seed),
    }
    if key not in loaders:
        raise NasInputError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")
    return loaders[key]()


def _idx(spec_name, data_dir, download, base_url, checksums) -> Dataset:
    from nas.data import idx

    return idx.load_idx_dataset(getattr(idx, spec_name), data_dir, download, base_url, checksums)


def _digits(seed: int) -> Dataset:
    from nas.data.digits import load_digits_dataset

    return load_digits_dataset(seed)


def _cifar(data_dir) -> Dataset:
    from nas.data.cifar import load_cifar10

    return load_cifar10(data_dir)


def _imagefolder(data_dir, image_size, seed) -> Dataset:
    from nas.data.imagefolder import load_imagefolder

    return load_imagefolder(data_dir, image_size=image_size, seed=seed)
