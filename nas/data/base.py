"""In-memory datasets: uint8 image tensors (N, C, H, W) and int64 labels.

Everything a loader returns is held in memory as tensors so the training loop can
move a whole split to the device once and do batching, augmentation and
normalisation there, as tensor ops (no per-sample Python work, no DataLoader).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nas.errors import NasInputError


@dataclass(frozen=True, eq=False)
class TensorSplit:
    """One split: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,).

    ``mean``/``std`` (per channel, on the 0..1 scale) travel with the split so the
    training loop can normalise on the device without knowing where the data came from.
    """

    images: torch.Tensor
    labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise NasInputError(
                f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} of shape {tuple(images.shape)}"
            )
        if labels.dtype != torch.int64 or labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise NasInputError(
                f"labels must be an int64 tensor (N,) matching {images.shape[0]} images, "
                f"got {labels.dtype} of shape {tuple(labels.shape)}"
            )
        if len(self.mean) != images.shape[1] or len(self.std) != images.shape[1]:
            raise NasInputError(f"mean/std need one value per channel ({images.shape[1]})")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise NasInputError(
                f"labels must lie in 0..{self.num_classes - 1}, got {int(labels.min())}..{int(labels.max())}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def in_chans(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[2])

    def subset(self, indices: torch.Tensor) -> "TensorSplit":
        """The samples at ``indices`` (a copy; same mean/std/classes)."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        return TensorSplit(self.images[indices], self.labels[indices], self.mean, self.std, self.num_classes)

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=self.num_classes)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A named data set with its official train and test splits.

    ``mean``/``std`` are per channel on the 0..1 scale, computed from the train split.
    ``note`` says anything the user should know (e.g. a test split made by us).
    """

    name: str
    train: TensorSplit
    test: TensorSplit
    classes: tuple[str, ...]
    note: str = ""
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_chans(self) -> int:
        return self.train.in_chans

    @property
    def image_size(self) -> int:
        """Height (= width: all our data sets are square)."""
        return self.train.image_size

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    @property
    def mean(self) -> tuple[float, ...]:
        return self.train.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.train.std

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.train)}, test={len(self.test)}, "
            f"shape={self.input_shape}, classes={self.num_classes})"
        )


def channel_stats(images: torch.Tensor, chunk: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images on the 0..1 scale (chunked, float64)."""
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        block = images[start : start + chunk].to(torch.float64).div_(255.0)
        total += block.sum(dim=(0, 2, 3))
        total_sq += block.pow_(2).sum(dim=(0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / max(n, 1)
    var = (total_sq / max(n, 1) - mean**2).clamp_min(1e-12)
    return tuple(float(m) for m in mean), tuple(float(s) for s in var.sqrt())


def make_dataset(
    name: str,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    classes: tuple[str, ...],
    note: str = "",
    source: str = "",
) -> Dataset:
    """Assemble a :class:`Dataset`, computing mean/std from the train split."""
    mean, std = channel_stats(train_images)
    n = len(classes)
    return Dataset(
        name=name,
        train=TensorSplit(train_images.contiguous(), train_labels, mean, std, n),
        test=TensorSplit(test_images.contiguous(), test_labels, mean, std, n),
        classes=tuple(classes),
        note=note,
        source=source,
    )
