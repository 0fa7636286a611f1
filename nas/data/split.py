"""Fixed, seeded, stratified splits of in-memory data.

The search only ever sees the *train* split: :func:`split_train_val` carves a
validation part out of it, and :func:`stratified_subset` takes a smaller, still
class-balanced, sample (the proxy trains on one). The official test split is left
for the final retrain.

:func:`split_judge` sets aside the *judge's* part of the TRAIN split: the images the
project's benchmarks measure a search's picks on (``benchmarks/ground_truth.py``). No
search, proxy or supernet reads them (:func:`search_split`), so a search cannot select on
the images it is judged by.
"""

from __future__ import annotations

import torch

from nas.data.base import Dataset, TensorSplit
from nas.errors import NasInputError


def stratified_indices(labels: torch.Tensor, size: int, seed: int, num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``size`` indices with class proportions as in ``labels``; return (picked, rest).

    Each class gets ``size * n_c / N`` rounded by the largest-remainder rule, so the
    total is exactly ``size``. Within a class the choice is a seeded permutation,
    so the same (labels, size, seed) always gives the same indices (on any device).
    Both outputs are sorted.
    """
    labels = labels.cpu()
    n = int(labels.shape[0])
    if not 0 <= size <= n:
        raise NasInputError(f"cannot take {size} samples from a split of {n}")
    num_classes = int(num_classes if num_classes is not None else (int(labels.max()) + 1 if n else 0))
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float64)
    exact = counts * size / max(n, 1)
    quota = exact.floor().to(torch.int64)
    short = size - int(quota.sum())
    if short > 0:
        # largest remainders first; ties broken by class index (stable sort)
        order = torch.argsort(exact - quota.to(torch.float64), descending=True, stable=True)
        quota[order[:short]] += 1
    gen = torch.Generator().manual_seed(int(seed))
    picked, rest = [], []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c, as_tuple=False).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        k = int(quota[c])
        picked.append(idx[:k])
        rest.append(idx[k:])
    empty = torch.empty(0, dtype=torch.int64)
    picked_t = torch.sort(torch.cat(picked) if picked else empty).values
    rest_t = torch.sort(torch.cat(rest) if rest else empty).values
    return picked_t, rest_t


def _resolve_size(n: int, fraction: float | None, size: int | None, what: str) -> int:
    if (fraction is None) == (size is None):
        raise NasInputError(f"give exactly one of {what}_fraction and {what}_size")
    if fraction is not None:
        if not 0.0 < fraction < 1.0:
            raise NasInputError(f"{what}_fraction must be in (0, 1), got {fraction}")
        return max(1, int(round(n * fraction)))
    assert size is not None
    if not 0 < size < n:
        raise NasInputError(f"{what}_size must be in 1..{n - 1} for a split of {n}, got {size}")
    return int(size)


#: The judge's part of a TRAIN split: 10,000 images (Fashion-MNIST: of 60,000), at most a
#: sixth of a smaller split; stratified, always carved with JUDGE_SEED.
JUDGE_SIZE = 10_000
JUDGE_SEED = 0


def judge_size(n: int) -> int:
    """How many of a TRAIN split's ``n`` images are the judge's."""
    return min(JUDGE_SIZE, n // 6)


def split_judge(data: Dataset | TensorSplit) -> tuple[TensorSplit, TensorSplit]:
    """(rest, judge): the TRAIN split without and with the judge's images (see JUDGE_SIZE).

    The same images whatever the caller: the ground truth validates on ``judge``, a search
    only ever reads ``rest`` (:func:`search_split`)."""
    split = data.train if isinstance(data, Dataset) else data
    return split_train_val(split, val_size=judge_size(len(split)), seed=JUDGE_SEED)


def search_split(data: Dataset | TensorSplit, val_size: int, seed: int = 0) -> tuple[TensorSplit, TensorSplit]:
    """(train, val) for a search: ``val_size`` held-out images and the rest, both carved from
    the TRAIN split *without* the judge's images, so the two never overlap."""
    rest, _judge = split_judge(data)
    if not 0 < val_size < len(rest):
        raise NasInputError(
            f"val_size {val_size} must be in 1..{len(rest) - 1}: the TRAIN split has {len(rest)} images "
            f"once the judge's {len(_judge)} are set aside")
    return split_train_val(rest, val_size=val_size, seed=seed)


def split_train_val(
    data: Dataset | TensorSplit,
    val_fraction: float | None = None,
    val_size: int | None = None,
    seed: int = 0,
) -> tuple[TensorSplit, TensorSplit]:
    """Split the TRAIN split (of a Dataset, or a given TensorSplit) into (train, val).

    Fixed by ``seed``, stratified by class. Give ``val_fraction`` or ``val_size``.
    The test split of a Dataset is never touched.
    """
    split = data.train if isinstance(data, Dataset) else data
    k = _resolve_size(len(split), val_fraction, val_size, "val")
    val_idx, train_idx = stratified_indices(split.labels, k, seed, split.num_classes)
    return split.subset(train_idx), split.subset(val_idx)


def stratified_subset(split: TensorSplit, size: int, seed: int = 0) -> TensorSplit:
    """A class-balanced sample of ``size`` items (the whole split if ``size >= len``)."""
    if size >= len(split):
        return split
    if size < 1:
        raise NasInputError(f"subset size must be positive, got {size}")
    picked, _ = stratified_indices(split.labels, size, seed, split.num_classes)
    return split.subset(picked)
