"""Any folder of images: ``train/<class>/*`` + ``test/<class>/*``, or ``<class>/*`` split by us.

Images are decoded once with Pillow, converted to grey ("L") or RGB, resized to a
fixed square size and held as uint8 tensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nas.data.base import Dataset, make_dataset
from nas.data.split import stratified_indices
from nas.errors import NasInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _scan(folder: Path) -> dict[str, list[Path]]:
    classes = _class_dirs(folder)
    if not classes:
        raise NasInputError(f"image folder {folder} has no class sub-folders")
    found = {c.name: _images_in(c) for c in classes}
    empty = [name for name, files in found.items() if not files]
    if empty:
        raise NasInputError(
            f"image folder {folder}: class folder(s) {', '.join(empty)} hold no images ({'/'.join(IMAGE_SUFFIXES)})"
        )
    return found


def _load(files: list[Path], mode: str, size: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(files), size, size, 3 if mode == "RGB" else 1), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as img:
                img = img.convert(mode)
                if img.size != (size, size):
                    img = img.resize((size, size), Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise NasInputError(f"cannot read image {path}: {exc}") from exc
        out[i] = arr.reshape(size, size, -1)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _detect_mode(files: list[Path]) -> str:
    from PIL import Image

    for path in files[:16]:
        try:
            with Image.open(path) as img:
                if img.mode not in ("L", "1", "I", "I;16", "F", "LA"):
                    return "RGB"
        except OSError:
            continue  # reported properly when the image is loaded
    return "L"


def load_imagefolder(
    data_dir: str | Path | None,
    image_size: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    channels: int | None = None,
) -> Dataset:
    """Load ``data_dir``: with ``train/`` and ``test/`` sub-folders, or class folders
    directly (then a fixed, seeded, stratified ``test_fraction`` split is made).

    ``image_size`` (default 32): every image is resized to that square size.
    ``channels`` 1 or 3 (default: 1 if the first images are greyscale, else 3).
    """
    if data_dir is None:
        raise NasInputError("imagefolder needs a data folder; none given")
    root = Path(data_dir)
    if not root.is_dir():
        raise NasInputError(f"data folder {root} {'is not a folder' if root.exists() else 'does not exist'}")
    size = int(image_size or 32)
    if size < 4:
        raise NasInputError(f"image size must be at least 4, got {size}")
    if (root / "train").is_dir() and (root / "test").is_dir():
        train_found, test_found = _scan(root / "train"), _scan(root / "test")
        extra = sorted(set(test_found) - set(train_found))
        if extra:
            raise NasInputError(f"image folder {root / 'test'} has classes not in train/: {', '.join(extra)}")
        classes = tuple(sorted(train_found))
        note = ""
    else:
        train_found, test_found = _scan(root), None
        classes = tuple(sorted(train_found))
        note = f"no test/ folder: fixed stratified {1 - test_fraction:.0%}/{test_fraction:.0%} split with seed {seed}"

    def flatten(found: dict[str, list[Path]]) -> tuple[list[Path], torch.Tensor]:
        files, labels = [], []
        for label, name in enumerate(classes):
            files += found.get(name, [])
            labels += [label] * len(found.get(name, []))
        return files, torch.tensor(labels, dtype=torch.int64)

    train_files, train_y = flatten(train_found)
    if channels is None:
        mode = _detect_mode(train_files)
    elif channels in (1, 3):
        mode = "L" if channels == 1 else "RGB"
    else:
        raise NasInputError(f"channels must be 1 or 3, got {channels}")
    train_x = _load(train_files, mode, size)
    if test_found is not None:
        test_files, test_y = flatten(test_found)
        test_x = _load(test_files, mode, size)
    else:
        n_test = max(1, int(round(len(train_y) * test_fraction)))
        if n_test >= len(train_y):
            raise NasInputError(f"image folder {root} has too few images ({len(train_y)}) to split off a test set")
        test_idx, train_idx = stratified_indices(train_y, n_test, seed, len(classes))
        test_x, test_y = train_x[test_idx], train_y[test_idx]
        train_x, train_y = train_x[train_idx], train_y[train_idx]
    return make_dataset("imagefolder", train_x, train_y, test_x, test_y, classes, note=note, source=str(root))
