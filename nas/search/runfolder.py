"""The run folder: name, writability check, lock, ``config.json`` and the copied space.

``config.json`` (format 1) holds everything needed to resume or reproduce a run::

    format, name, created, command          what made it
    study_name, storage                     the Optuna study (storage null: ./study.db)
    space      {name, source, sha256}       the space; its exact text is ./space.toml
    dataset    {name, data_dir, num_classes, in_chans, image_size}
    objectives ["accuracy", "mflops" | "params" | "latency_ms"]
    constraints {max_mflops, max_params}    null when not set
    sampler, seed, budget
    fidelity   {epochs, min_epochs, eta, rungs, train_size, val_size, batch_size, lr, ...}
    resources  {cpus_per_trial, gpus_per_trial, address}
    versions   {nas, python, torch, optuna, ray, platform}
    resumes    [{at, counted_trials, budget}]  one entry per --resume

The lock: ``<run>/.lock``, an exclusive ``fcntl.flock`` held for the whole search by
the process that runs it (released by the kernel if that process dies, so a killed
search never leaves a stale lock). A second ``nas search`` on the same folder - new
or ``--resume`` - fails at once, naming the folder and the holder's pid.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from nas.errors import NasInputError
from nas.results import CONFIG_FILE, SPACE_FILE

LOCK_FILE = ".lock"
CONFIG_FORMAT = 1


def check_writable_dir(path: Path, what: str) -> None:
    """Create ``path`` (and parents) if needed and prove we can write a file there."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasInputError(f"{what} {path}: cannot create folder: {exc.strerror or exc}") from None
    if not path.is_dir():
        raise NasInputError(f"{what} {path}: not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".nas-write-test-"):
            pass
    except OSError as exc:
        raise NasInputError(f"{what} {path}: not writable: {exc.strerror or exc}") from None


def default_run_name(space_name: str, dataset: str) -> str:
    return f"{space_name}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_run_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise NasInputError(f"--name {name!r}: a run name must be a plain folder name (no '/', not hidden)")
    return name


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``<run>/.lock``; use as a context manager."""

    def __init__(self, run_path: Path) -> None:
        self.path = Path(run_path) / LOCK_FILE
        self._fh: IO[str] | None = None

    def acquire(self) -> "RunLock":
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise NasInputError(
                f"{self.path.parent}: another search is running on this run folder "
                f"(lock {self.path} held by pid {holder}); wait for it or stop it first"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return self

    def check_free(self) -> None:
        """Raise the "another search is running" error if a live process holds the lock (takes nothing)."""
        try:
            fh = open(self.path, encoding="utf-8")
        except OSError:
            return  # no lock file: nobody searches here
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = fh.read().strip() or "unknown"
                raise NasInputError(
                    f"{self.path.parent}: another search is running on this run folder "
                    f"(lock {self.path} held by pid {holder}); wait for it or stop it first"
                ) from None
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def release(self) -> None:
        if self._fh is not None:
            try:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            finally:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def versions() -> dict[str, str]:
    import nas

    out = {"nas": nas.__version__, "python": platform.python_version(), "platform": platform.platform()}
    for mod in ("torch", "optuna", "ray"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a version we cannot read is just not recorded
            out[mod] = "unknown"
    return out


def space_record(space: Any, text: str) -> dict[str, Any]:
    return {
        "name": space.name,
        "source": str(space.path),
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }


def read_space_text(space: Any) -> str:
    """The exact text of the space file a Space was parsed from (built-in or user file)."""
    path = str(space.path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        from importlib import resources

        return (resources.files("search_spaces") / f"{space.name}.toml").read_text(encoding="utf-8")


def load_run_space(run_path: Path, config: dict[str, Any]):
    """The run's Space, parsed from ``<run>/space.toml`` (checked against the recorded hash)."""
    from nas.space import Space, parse_space

    file = Path(run_path) / SPACE_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise NasInputError(f"{file}: cannot read the run's space file: {exc.strerror or exc}") from None
    rec = config.get("space", {})
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if rec.get("sha256") and rec["sha256"] != digest:
        raise NasInputError(f"{file}: the space file was changed since the run started (sha256 differs from config.json)")
    return Space(parse_space(text, str(file), name=rec.get("name") or file.stem))


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_config(run_path: Path, config: dict[str, Any]) -> None:
    write_json_atomic(Path(run_path) / CONFIG_FILE, config)


def command_line() -> list[str]:
    return [Path(sys.argv[0]).name, *sys.argv[1:]]


__all__ = [
    "CONFIG_FORMAT",
    "LOCK_FILE",
    "RunLock",
    "check_run_name",
    "check_writable_dir",
    "command_line",
    "default_run_name",
    "load_run_space",
    "read_space_text",
    "space_record",
    "versions",
    "write_config",
]
