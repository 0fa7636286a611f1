"""What the search trains: a thin adapter from the run's fidelity spec to :mod:`evaluators.proxy`.

The proxy trains on a fixed stratified subset of the dataset's TRAIN split and scores
on a held-out part of that same split (the test split is never seen by the search).
"""

from __future__ import annotations

from typing import Any, Iterator


def proxy_config(spec: dict[str, Any]):
    from evaluators.proxy import ProxyConfig

    return ProxyConfig(
        dataset=spec["dataset"],
        data_dir=spec.get("data_dir"),
        train_size=int(spec["train_size"]),
        val_size=int(spec["val_size"]),
        epochs=int(spec["epochs"]),
        batch_size=int(spec["batch_size"]),
        lr=float(spec["lr"]),
        split_seed=int(spec["data_seed"]),
        eval_epochs=tuple(spec["eval_epochs"]) if spec.get("eval_epochs") else None,
        # runs made before --proxy-resolution have no key: the proxy's default
        **({"resolution": spec["resolution"] or None} if "resolution" in spec else {}),
    )


def proxy_data(spec: dict[str, Any]):
    """The proxy's (train, val) data; cached per process by evaluators.proxy (reused actors load once)."""
    from evaluators.proxy import prepare_proxy_data

    return prepare_proxy_data(proxy_config(spec))


def proxy_epochs(arch: str, spec: dict[str, Any], threads: int | None = None) -> Iterator[Any]:
    """Yield one ``EpochResult`` (``.epoch``, ``.val_accuracy``, ...) per epoch of proxy training."""
    from evaluators.proxy import proxy_train

    return proxy_train(arch, proxy_data(spec), proxy_config(spec), device="auto", seed=int(spec["seed"]), threads=threads)


__all__ = ["proxy_config", "proxy_data", "proxy_epochs"]
