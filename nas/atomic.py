"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

Every file the engine writes that someone else may read while it is written (run folder
files, pick metrics, checkpoints, weights, the exported bundle) goes through here:

    write_atomic(path, text_or_bytes)
    with atomic_target(path) as tmp:       # for writers that want a path (torch.save, savefig)
        torch.save(state, tmp)

The temporary file lives in the target's folder (``os.replace`` is atomic only within one
file system), is flushed to disk before the rename, and is removed if the writer fails.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes, encoding: str = "utf-8") -> None:
    """Write ``data`` (text or bytes) to ``path`` atomically."""
    payload = data.encode(encoding) if isinstance(data, str) else data
    with atomic_target(path) as tmp:
        tmp.write_bytes(payload)


__all__ = ["atomic_target", "write_atomic"]
