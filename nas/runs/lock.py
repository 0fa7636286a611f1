"""The run folder's lock: one search at a time on a run folder.

``<run>/.lock`` is an exclusive ``fcntl.flock`` held for the whole search by the process
that runs it (released by the kernel if that process dies, so a killed search never
leaves a stale lock). A second ``nas search`` on the same folder - new or ``--resume`` -
fails at once, naming the folder and the holder's pid.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Any

from nas.errors import NasInputError
from nas.runs.folder import LOCK_FILE


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``<run>/.lock``; use as a context manager."""

    def __init__(self, run_path: Path) -> None:
        self.path = Path(run_path) / LOCK_FILE
        self._fh: IO[str] | None = None

    def _held_by_another(self, fh: IO[str]) -> NasInputError:
        holder = fh.read().strip() or "unknown"
        return NasInputError(
            f"{self.path.parent}: another search is running on this run folder "
            f"(lock {self.path} held by pid {holder}); wait for it or stop it first"
        )

    def acquire(self) -> "RunLock":
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            error = self._held_by_another(fh)
            fh.close()
            raise error from None
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
                raise self._held_by_another(fh) from None
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


__all__ = ["RunLock"]
