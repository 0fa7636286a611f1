"""The Ray Tune trainable: proxy-train one candidate, report validation accuracy per epoch.

Runs in a Ray worker process. Actors are reused between trials
(``reuse_actors=True``), so the proxy data are loaded once per worker
(``evaluators.proxy.prepare_proxy_data`` caches them per process).

Each epoch reports ``{"epoch", "accuracy", "mflops", "params", "duration_s", ...}``;
the multi-objective scheduler may stop the trial at a rung. A candidate that
raises (build error, out of memory, ...) or diverges (NaN loss ->
``TrainingDiverged``) does not crash the worker: it reports ``failed=True`` with
``fail_reason`` and returns, so the actor is reused and the searcher records the
reason in the study. A worker that dies outright is seen by Ray as a trial error
and recorded by the searcher as failed too.
"""

from __future__ import annotations

import functools
import math
import os
import time
import traceback
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from evaluators.proxy import ProxyConfig
    from nas.supernet.scoring import ScoringStage


@dataclass(frozen=True)
class TrialSpec:
    """What every trial's worker needs besides its arch: the proxy it trains with (the run's
    ``Fidelity.proxy``, bound to its data) and how the worker runs it."""

    proxy: "ProxyConfig"
    seed: int  # initialisation and batch order of every candidate
    threads: int = 1  # torch threads (the trial's CPUs)
    latency: bool = False  # measure latency (the run's cost objective is latency_ms)
    cpu_limit_s: Optional[float] = None  # --trial-cpu-limit
    supernet: Optional[str] = None  # a trained supernet folder: score by inherited weights, then fine-tune
    #: With a supernet: the screen scored before the full score (Fidelity.screen); None: one score.
    screen: Optional["ScoringStage"] = None
    #: A finals' trial (nas.search.finals): this real training (Fidelity.final_proxy) instead of the
    #: proxy, reported as one step after the proxy's epochs. None: a screening trial.
    final: Optional["ProxyConfig"] = None


def failure_reason(exc: BaseException) -> str:
    """One line naming what went wrong, e.g. ``diverged: training diverged: loss nan at epoch 1, step 3``."""
    from nas.training import TrainingDiverged

    if isinstance(exc, TrainingDiverged):
        return f"diverged: {exc}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500]


def run_candidate(spec: TrialSpec, arch: str, report, mflops: Any = math.nan, params: Any = math.nan) -> None:
    """Proxy-train ``arch`` and call ``report(metrics)`` after every epoch (and once on failure).

    Shared by the Ray trainable and the in-process loop of the overhead benchmark,
    so both do exactly the same work. ``mflops``/``params`` (measured by the searcher) are
    passed through in every report.
    """
    t0 = time.perf_counter()
    # which worker, and what the trials before on it left behind (a reused worker should stay flat)
    base = {"mflops": mflops, "params": params, "worker": os.getpid(), "worker_rss_mb": resident_mb()}
    epoch = 0
    restore_cpu_limit = _limit_cpu(spec.cpu_limit_s)
    try:
        import torch

        from evaluators.proxy import prepare_proxy_data, proxy_train

        threads = max(1, int(spec.threads))
        torch.set_num_threads(threads)
        data = prepare_proxy_data(spec.final or spec.proxy)  # cached per process: a reused actor loads once
        if spec.latency:
            base["latency_ms"] = _latency_ms(arch, data, threads)
        for result in _epochs(spec, arch, data, threads):
            epoch = int(result.epoch)
            report(
                {
                    **base,
                    "epoch": epoch,
                    "accuracy": float(result.val_accuracy),
                    "val_loss": float(result.val_loss),
                    "train_loss": float(result.train_loss),
                    "epoch_s": float(result.seconds),
                    "duration_s": time.perf_counter() - t0,
                    "failed": False,
                }
            )
    except Exception as exc:  # noqa: BLE001 - every candidate failure is recorded, the search goes on
        report(
            {
                **base,
                "epoch": epoch,
                "accuracy": math.nan,
                "duration_s": time.perf_counter() - t0,
                "failed": True,
                "fail_reason": failure_reason(exc),
                "traceback": traceback.format_exc(limit=6)[-2000:],
            }
        )
    finally:
        restore_cpu_limit()
        release_memory()


def resident_mb() -> float | None:
    """This process's resident memory in MB (Linux ``/proc/self/statm``; None elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def release_memory() -> None:
    """Give a finished trial's freed memory back to the system. A reused Ray worker runs
    trial after trial with tensors of ever different sizes, and glibc keeps the freed
    blocks: measured on mdconv one-shot trials, a worker's resident memory after each trial
    went 488 -> 709 MB over 12 trials without this and 267 -> 329 MB with it
    (BENCHMARKS.md, "Worker memory")."""
    import gc

    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, looked up once per process; None elsewhere (macOS, musl)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def _epochs(spec: TrialSpec, arch: str, data: Any, threads: int):
    """The candidate's steps: its proxy epochs (:func:`_proxy_epochs`); for a finals' trial, its
    real training's result as the one step after them."""
    if spec.final is None:
        yield from _proxy_epochs(spec, arch, data, threads)
        return
    from evaluators.proxy import proxy_train

    last = None
    for last in proxy_train(arch, data, spec.final, device="auto", seed=spec.seed, threads=threads):
        pass
    steps = spec.proxy.epochs + 1
    yield replace(last, epoch=steps, epochs=steps)


def _proxy_epochs(spec: TrialSpec, arch: str, data: Any, threads: int):
    """The proxy's epoch results: the scratch proxy's, or with a supernet, its scores by
    inherited weights (the screen as step 1 when staged, then the full score) and then
    fine-tuning from those weights (the steps after)."""
    from evaluators.proxy import proxy_train

    if spec.supernet is None:
        yield from proxy_train(arch, data, spec.proxy, device="auto", seed=spec.seed, threads=threads)
        return
    from evaluators.oneshot import fine_tune_config, inherited

    steps = spec.proxy.epochs
    scored = 1
    if spec.screen is not None:
        _, screened = inherited(spec.supernet, arch, data, spec.screen)
        yield replace(screened, epoch=1, epochs=steps)
        if steps == 1:
            return
        scored = 2
    model, full = inherited(spec.supernet, arch, data)
    yield replace(full, epoch=scored, epochs=steps)
    if steps > scored:
        for result in proxy_train(model, data, fine_tune_config(spec.proxy, scored), device="auto", seed=spec.seed,
                                  threads=threads):
            yield replace(result, epoch=result.epoch + scored, epochs=steps)


def _latency_ms(arch: str, data: Any, threads: int) -> float:
    """The candidate's measured latency at the proxy's input size (the latency objective)."""
    import torch

    from evaluators.latency import measure_latency
    from nas.builder import build

    model = build(arch, num_classes=data.num_classes, in_chans=data.in_chans)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = (data.in_chans, data.image_size, data.image_size)
    return float(measure_latency(model.eval(), shape, device=device, threads=threads))


def _limit_cpu(seconds: float | None):
    """``--trial-cpu-limit``: let this process use at most ``seconds`` more CPU time.

    RLIMIT_CPU counts the whole process's CPU time (a reused actor's earlier trials
    included), so the soft limit is set to what is used so far plus ``seconds``; past it
    the kernel sends SIGXCPU, which ends the worker (no core file: RLIMIT_CORE 0). The
    trial is then recorded as failed ("worker died") and Ray starts a fresh worker.
    Returns a function that lifts the limit again (a trial that ends in time).
    """
    if not seconds:
        return lambda: None
    import resource

    used = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    old = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(math.ceil(used + float(seconds)))
    if old[1] != resource.RLIM_INFINITY:
        soft = min(soft, old[1])
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        resource.setrlimit(resource.RLIMIT_CPU, (soft, old[1]))
    except (ValueError, OSError):
        return lambda: None

    def restore() -> None:
        try:
            resource.setrlimit(resource.RLIMIT_CPU, old)
        except (ValueError, OSError):
            pass

    return restore


def train_candidate(config: dict[str, Any], spec: TrialSpec) -> None:
    """Ray Tune function trainable (``spec`` bound with ``tune.with_parameters``)."""
    import socket

    import ray
    from ray import tune

    # Which cluster node trained the trial (several nodes may share one host).
    node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"

    def report(metrics: dict[str, Any]) -> None:
        tune.report({**metrics, "node": node})

    run_candidate(spec, config["arch"], report, mflops=config.get("mflops"), params=config.get("params"))


__all__ = ["TrialSpec", "failure_reason", "run_candidate", "train_candidate"]
