"""IDX files (the MNIST / Fashion-MNIST format), gzipped or not, with validation.

Format: 2 zero bytes, a type byte (0x08 = uint8), the number of dimensions, then
one big-endian int32 per dimension, then the data. A file is rejected (with
:class:`NasInputError` naming it) if the magic number is wrong, the type is not
uint8, or the length does not match the dimensions (truncated or padded).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from nas.data.base import Dataset, make_dataset
from nas.data.download import download_file
from nas.errors import NasInputError

_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: Path | str) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a uint8 array of its dimensions."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise NasInputError(f"cannot read IDX file {path}: {exc.strerror or exc}") from exc
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise NasInputError(f"IDX file {path} is a corrupted or truncated gzip file: {exc}") from exc
    if len(raw) < 4:
        raise NasInputError(f"IDX file {path} is too short ({len(raw)} bytes) to hold a header")
    zero0, zero1, dtype_code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or ndim == 0:
        raise NasInputError(
            f"IDX file {path} has a bad magic number {raw[:4].hex()} (expected 0000 08 0N); not an IDX file"
        )
    if dtype_code != 0x08:
        raise NasInputError(f"IDX file {path} holds type 0x{dtype_code:02x}; only unsigned bytes (0x08) are supported")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise NasInputError(f"IDX file {path} is truncated inside its header ({len(raw)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its dimensions say"
        raise NasInputError(
            f"IDX file {path} is {what}: dimensions {tuple(dims)} need {expected} bytes, file has {len(raw)}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@dataclass(frozen=True)
class IdxSpec:
    """Where an IDX data set lives and how to check it."""

    name: str
    classes: tuple[str, ...]
    base_url: str
    # stem -> published checksum of the .gz file (MD5 as published, or SHA256)
    files: Mapping[str, str]
    system_dirs: tuple[str, ...] = ()


_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

FASHION_MNIST = IdxSpec(
    name="fashion-mnist",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    # MD5 of the .gz files as published in zalandoresearch/fashion-mnist README.md.
    # (The Debian package dataset-fashion-mnist re-compressed them, so its .gz files
    # hash differently; local files are validated structurally, not by checksum.)
    files={
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    system_dirs=("/usr/share/datasets/fashion-mnist",),
)

MNIST = IdxSpec(
    name="mnist",
    classes=tuple(str(d) for d in range(10)),
    base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    # MD5 of the .gz files as listed by torchvision for this mirror.
    files={
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    system_dirs=("/usr/share/datasets/mnist",),
)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _complete(folder: Path) -> dict[str, Path] | None:
    found = {stem: _find(folder, stem) for stem in _STEMS}
    if all(found.values()):
        return found  # type: ignore[return-value]
    return None


def default_cache_dir(name: str) -> Path:
    return Path.home() / ".cache" / "nas" / "datasets" / name


def load_idx_dataset(
    spec: IdxSpec,
    data_dir: str | Path | None = None,
    download: bool = False,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    """Load an IDX data set: from ``data_dir`` (or ``data_dir/<name>``), else the
    system folder, else the user cache; download (only if asked) when missing."""
    candidates, target = _candidate_folders(spec, data_dir, download)
    files = next((found for found in map(_complete, candidates) if found is not None), None)
    if files is None:
        if not download:
            where = ", ".join(str(c) for c in candidates)
            missing = [s for s in _STEMS if _find(candidates[0], s) is None]
            raise NasInputError(
                f"{spec.name}: IDX files not found in {where} (missing in {candidates[0]}: "
                f"{', '.join(missing)}[.gz]); pass a folder that holds them (--data-dir), or allow the download (--download)"
            )
        files = _download_missing(spec, target, base_url, checksums)
    arrays = {stem: read_idx(path) for stem, path in files.items()}
    for split in ("train", "t10k"):
        _check_split(spec, arrays, files, split)

    def images_t(stem: str) -> torch.Tensor:
        return torch.from_numpy(arrays[stem].copy()).unsqueeze(1)

    def labels_t(stem: str) -> torch.Tensor:
        return torch.from_numpy(arrays[stem].astype(np.int64))

    return make_dataset(
        spec.name,
        images_t("train-images-idx3-ubyte"),
        labels_t("train-labels-idx1-ubyte"),
        images_t("t10k-images-idx3-ubyte"),
        labels_t("t10k-labels-idx1-ubyte"),
        spec.classes,
        source=str(files["train-images-idx3-ubyte"].parent),
    )


def _candidate_folders(spec: IdxSpec, data_dir: str | Path | None, download: bool) -> tuple[list[Path], Path]:
    """The folders to look in, in order, and the one a download goes to."""
    if data_dir is None:
        return [Path(d) for d in spec.system_dirs] + [default_cache_dir(spec.name)], default_cache_dir(spec.name)
    root = Path(data_dir)
    if root.exists() and not root.is_dir():
        raise NasInputError(f"data folder {root} is not a folder")
    if not download and not root.is_dir():
        raise NasInputError(f"data folder {root} does not exist")
    return [root, root / spec.name], root


def _download_missing(
    spec: IdxSpec, target: Path, base_url: str | None, checksums: Mapping[str, str] | None
) -> dict[str, Path]:
    """Every IDX file in ``target``, downloading (checksum-verified) the ones not there yet."""
    url = (base_url or spec.base_url).rstrip("/") + "/"
    sums = dict(spec.files)
    if checksums:
        sums.update(checksums)
    files = {}
    for stem in _STEMS:
        existing = _find(target, stem)
        if existing is not None:
            files[stem] = existing
            continue
        files[stem] = download_file(url + f"{stem}.gz", target / f"{stem}.gz", sums.get(stem))
    return files


def _check_split(spec: IdxSpec, arrays: Mapping[str, np.ndarray], files: Mapping[str, Path], split: str) -> None:
    """The images and labels of ``split`` (train / t10k) fit together and the data set's classes."""
    images, labels = arrays[f"{split}-images-idx3-ubyte"], arrays[f"{split}-labels-idx1-ubyte"]
    img_path, lbl_path = files[f"{split}-images-idx3-ubyte"], files[f"{split}-labels-idx1-ubyte"]
    if images.ndim != 3:
        raise NasInputError(f"IDX file {img_path} should hold images (3 dims), has shape {images.shape}")
    if labels.ndim != 1:
        raise NasInputError(f"IDX file {lbl_path} should hold labels (1 dim), has shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise NasInputError(
            f"{img_path} holds {images.shape[0]} images but {lbl_path} holds {labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= len(spec.classes):
        raise NasInputError(f"IDX file {lbl_path} has label {int(labels.max())}; {spec.name} has {len(spec.classes)} classes")
