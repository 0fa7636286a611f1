"""Data sets held in memory as tensors, and fixed stratified splits of them.

    ds = load_dataset("fashion-mnist")           # Dataset: .train/.test TensorSplit
    train, val = split_train_val(ds, val_size=5000, seed=0)   # from the TRAIN split only
    small = stratified_subset(train, 8000, seed=0)
"""

from __future__ import annotations

from nas.data.base import Dataset, TensorSplit, channel_stats
from nas.data.registry import DATASET_NAMES, DEFAULT_DATASET, load_dataset
from nas.data.split import search_split, split_judge, split_train_val, stratified_indices, stratified_subset

__all__ = [
    "DATASET_NAMES",
    "DEFAULT_DATASET",
    "Dataset",
    "TensorSplit",
    "channel_stats",
    "load_dataset",
    "search_split",
    "split_judge",
    "split_train_val",
    "stratified_indices",
    "stratified_subset",
]
