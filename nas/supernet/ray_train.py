"""Data-parallel supernet training with Ray Train: ``TorchTrainer`` over N workers.

Each worker runs the same loop as a single process (:func:`nas.supernet.folder.train_in_process`);
Ray Train sets up the torch process group (gloo on CPUs, NCCL on GPUs), and the trainer
averages the shared weights' gradients across ranks after every step, so all ranks hold the
same weights and rank 0 writes the checkpoint. A killed training resumes from it like a
single-process one.
"""

from __future__ import annotations

from pathlib import Path

from nas.errors import NasInputError
from nas.supernet.folder import OneShotConfig, load_data, train_in_process
from nas.supernet.training import print_progress


def _worker_loop(loop_config: dict) -> None:
    import torch
    import ray.train

    torch.set_num_threads(int(loop_config["threads"]))
    config = OneShotConfig.from_dict(loop_config["config"])
    device = "auto"
    if torch.cuda.is_available():
        local = ray.train.get_context().get_local_rank()
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    train_in_process(config, Path(loop_config["folder"]), load_data(config), device, None, print_progress)


def train_data_parallel(config: OneShotConfig, folder: Path, workers: int, address: str | None, threads: int) -> None:
    """Train ``config``'s supernet into ``folder`` on ``workers`` Ray Train workers."""
    import ray
    import torch
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=True,
                 **({} if address else {"num_cpus": max(workers * threads, 1)}))
    try:
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"config": config.to_dict(), "folder": str(Path(folder).resolve()), "threads": threads},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=torch.cuda.is_available(),
                                         resources_per_worker={"CPU": threads}),
            run_config=RunConfig(name="supernet", storage_path=str(Path(folder).resolve() / "ray")),
        )
        result = trainer.fit()
        if getattr(result, "error", None):
            raise NasInputError(f"supernet training failed on a Ray Train worker: {result.error}")
    finally:
        if started_here:
            ray.shutdown()


__all__ = ["train_data_parallel"]
