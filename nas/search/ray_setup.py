"""Ray for one search: start a private local Ray or join a cluster, keep Ray, Tune and
Optuna quiet unless ``--verbose``, and read a Ray trial's error into one line.

Nothing here changes the caller's process for good: the environment variables Ray and
Tune read are set for the search only (:func:`ray_environment`, restored afterwards; the
workers of a cluster get theirs through ``runtime_env``), and the warnings silenced are
silenced inside a ``warnings.catch_warnings`` block around the search.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import warnings
from typing import Any, Iterator

from nas.errors import NasInputError
from nas.search.settings import SearchSettings

# Read by the workers: the trainable stays in the driver's working directory; and a worker is
# reused once the previous (pruned) trial's training thread reaches its next report, which can
# be a whole screening epoch away: Ray's 2 s wait ran out under load in the shipped default's
# reference run (a trial lost and an actor restarted), so it waits up to 60 s before that.
WORKER_ENV = {"RAY_CHDIR_TO_TRIAL_DIR": "0", "TUNE_FUNCTION_THREAD_TIMEOUT_S": "60"}


def _driver_env(verbose: bool) -> tuple[dict[str, str], dict[str, str]]:
    """(defaults: set unless the user set them, forced: always set) for the search's process."""
    defaults = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no per-trial CSV/JSON/TBX files
                "RAY_DEDUP_LOGS": "1", **WORKER_ENV}
    if not verbose:
        defaults.update({"RAY_AIR_NEW_OUTPUT": "0", "TUNE_WARN_INSUFFICENT_RESOURCE_THRESHOLD_S": "600",
                         "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"})
    forced = {"TUNE_DISABLE_SIGINT_HANDLER": "1"}  # our own Ctrl-C handling (nas.search.interrupt)
    return defaults, forced


@contextlib.contextmanager
def ray_environment(verbose: bool) -> Iterator[None]:
    """The environment Ray and Tune read in this process while the search runs, and the
    warnings they (and Optuna) print silenced unless ``verbose``; both restored on exit."""
    defaults, forced = _driver_env(verbose)
    saved = {key: os.environ.get(key) for key in (*defaults, *forced)}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ.update(forced)
    try:
        with warnings.catch_warnings():
            if not verbose:
                _silence_warnings()
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _silence_warnings() -> None:
    import optuna

    warnings.filterwarnings("ignore", module="ray")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def quiet_loggers(verbose: bool) -> None:
    """Optuna's and Ray's loggers at INFO with ``verbose``, else errors only."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.ERROR)
    # Ray Tune logs every failed trial at ERROR with a traceback; the search records the
    # reason in the study (fail_reason) and the status line counts it, so keep it quiet.
    logging.getLogger("ray").setLevel(logging.INFO if verbose else logging.ERROR)
    for name in ("ray.tune", "ray.train", "ray.air", "ray.data"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast on a wrong ``--address``: ``ray.init`` retries an unreachable GCS for minutes."""
    host_port = address.split("://", 1)[-1].rstrip("/")
    if host_port == "auto" or ":" not in host_port:
        return
    host, _, port = host_port.rpartition(":")
    if not port.isdigit():
        raise NasInputError(f"--address {address}: expected HOST:PORT (e.g. 10.0.0.5:6379), got port {port!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise NasInputError(f"cannot reach the Ray cluster at --address {address}: "
                            f"{exc.strerror or exc} (is `ray start --head` running there?)") from None


def start_ray(s: SearchSettings) -> bool:
    """Start (or connect to) Ray; returns whether we started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.INFO if s.verbose else logging.ERROR,
        "log_to_driver": bool(s.verbose),
        "configure_logging": True,
    }
    if s.address:
        check_reachable(s.address)
        kwargs["address"] = s.address
        kwargs["runtime_env"] = {"env_vars": dict(WORKER_ENV)}
    else:
        # "local": a private Ray instance even when RAY_ADDRESS is set or a `ray start`
        # cluster runs on this machine (joining one is what --address is for). Its workers
        # inherit this process's environment (ray_environment).
        kwargs["address"] = "local"
        kwargs["num_cpus"] = s.num_cpus or os.cpu_count() or 1
        kwargs["num_gpus"] = None
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"Ray cluster at --address {s.address}" if s.address else "local Ray"
        hint = (" (is the cluster up? with token authentication, set RAY_AUTH_MODE=token and the token "
                "as for the `ray` command itself)") if s.address else ""
        raise NasInputError(f"cannot start/connect {where}: {str(exc).splitlines()[0] if str(exc) else exc}{hint}") from None
    return True


def stop_ray() -> None:
    import ray

    with contextlib.suppress(Exception):
        ray.shutdown()


@contextlib.contextmanager
def silenced(active: bool) -> Iterator[None]:
    """Keep Ray Tune's own prints (its end-of-run table, hints) off stdout unless --verbose."""
    if not active:
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


def describe_trial_error(trial: Any) -> str:
    """One line from a Ray trial's error (worker died, task error), for ``fail_reason``."""
    text = ""
    try:
        path = trial.error_file
        if path:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
    except (OSError, AttributeError):
        text = ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Failure #")]
    if any("reset_config()" in ln for ln in lines):  # Ray's text for a worker it could not reuse
        return "worker not reused: the previous trial's training thread was still running"
    died = any("ActorDiedError" in ln or "died unexpectedly" in ln or "WorkerCrashedError" in ln for ln in lines)
    # the exception line ("ray.exceptions.ActorDiedError: The actor died ..."), else the last line
    exc_lines = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b:?", ln)]
    summary = (exc_lines[-1] if exc_lines else (lines[-1] if lines else "")).split(": ", 1)
    summary_text = ": ".join([summary[0].rsplit(".", 1)[-1], *summary[1:]])
    exit_type = next((m.group(1) for ln in lines for m in [re.search(r"Worker exit type: (\w+)", ln)] if m), None)
    prefix = "worker died" if died else "worker error"
    if died:
        if not exc_lines:  # Ray's own long explanation: keep one short line
            summary_text = "the worker process ended unexpectedly"
        summary_text += f" (worker exit type {exit_type or 'unknown'}: killed, crashed or out of memory)"
    return f"{prefix}: {summary_text}"[:500] if summary_text else prefix


__all__ = ["WORKER_ENV", "check_reachable", "describe_trial_error", "quiet_loggers", "ray_environment", "silenced",
           "start_ray", "stop_ray"]
