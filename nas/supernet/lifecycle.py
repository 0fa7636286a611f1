"""Making a supernet folder: train it (or finish training it) in this process or data-parallel over
Ray Train workers, and record it complete; a complete folder is loaded as it is.

The folder's format is :mod:`nas.supernet.folder`'s; the Ray Train path :mod:`nas.supernet.ray_train`'s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from evaluators.proxy import ProxyData
from nas.errors import NasInputError
from nas.supernet.folder import (
    CONFIG_FILE,
    OneShotConfig,
    load_data,
    load_supernet,
    read_config,
    train_in_process,
    write_config,
)
from nas.supernet.ray_train import train_data_parallel
from nas.supernet.supernet import Supernet
from nas.supernet.training import print_progress


def train_supernet(config: OneShotConfig, folder: str | Path, device: str = "auto", threads: int | None = None,
                   progress: Callable | None = print_progress, data: ProxyData | None = None,
                   workers: int = 1, address: str | None = None) -> Supernet:
    """Train (or finish training) the supernet of ``folder``; a complete folder is loaded as it is.

    ``workers`` > 1: data-parallel over that many Ray Train workers (``TorchTrainer``; CPU
    processes, or one GPU each where the cluster has them), on a local Ray or the cluster at
    ``address``; the folder must be on storage every worker sees. A folder holding another
    configuration is refused: the checkpoint would not fit it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / CONFIG_FILE).exists():
        old, extra = read_config(folder)
        if old != config:
            raise NasInputError(f"{folder}: holds a supernet trained with other settings; use another folder")
        if extra.get("complete"):
            return load_supernet(folder, device)[0]
    write_config(folder, config, complete=False)
    started = time.perf_counter()
    if workers > 1:
        train_data_parallel(config, folder, workers, address, threads or 1)
        data = data or load_data(config)
    else:
        data = data or load_data(config)
        train_in_process(config, folder, data, device, threads, progress)
    write_config(folder, config, complete=True, extra={"seconds": round(time.perf_counter() - started, 1),
                                                          "train_images": len(data.train),
                                                          "num_classes": data.num_classes, "in_chans": data.in_chans})
    return load_supernet(folder, device)[0]


__all__ = ["train_supernet"]
