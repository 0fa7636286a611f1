"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

Every file the engine writes that someone else may read while it is written (run folder
files, pick metrics, checkpoints, weights, the exported bundle) goes through here:

    write_atomic(path, text_or_bytes)
    with atomic_target(path) as tmp:       # for writers that want a path (torch.save, savefig)
        torch.save(state, tmp)

The temporary file lives in the target's folder (``os.replace`` is atomic only within one
file system), is flushed to disk before the rename, and is removed if the writer fails.

A set of files that belong together (an export bundle) is built in a staging folder:

    with staged_folder(out, owned=("model.py", "weights.pt", ...)) as stage:
        ...write and check every file in stage...

and only moved into ``out`` when the block finished without an error.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator


@contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``; on normal exit it replaces ``path`` atomically.

    The suffix of ``path`` is kept (``curve.png`` -> ``.curve.XXXX.png``) so that writers
    choosing a format by extension (matplotlib) choose the right one.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the usual mode
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def staged_folder(path: str | Path, owned: Iterable[str] = ()) -> Iterator[Path]:
    """A new, empty folder beside ``path`` to build its files in; moved into place on normal exit.

    A new ``path`` is the staging folder renamed (one atomic step). An existing ``path`` gets
    each staged file by an atomic rename, only after all of them were written; its other files
    are kept, except those named in ``owned`` that this build did not stage (an earlier build's,
    now stale). If the block raises, the staging folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".staging", dir=path.parent))
    try:
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; the folder gets the usual mode
        yield stage
        if not path.exists():
            os.rename(stage, path)
            return
        staged = sorted(stage.iterdir())
        for file in staged:
            os.replace(file, path / file.name)
        for name in set(owned) - {file.name for file in staged}:
            if not (path / name).is_dir():
                (path / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes, encoding: str = "utf-8") -> None:
    """Write ``data`` (text or bytes) to ``path`` atomically."""
    payload = data.encode(encoding) if isinstance(data, str) else data
    with atomic_target(path) as tmp:
        tmp.write_bytes(payload)


__all__ = ["atomic_target", "staged_folder", "write_atomic"]
