"""Download a file with checksum verification and an atomic write.

The file is streamed to a temporary file in the destination folder
(:func:`nas.atomic.atomic_target`) while its hash is computed; only if the hash
matches is it renamed into place, so an interrupted or corrupted download never
leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from nas.atomic import atomic_target
from nas.errors import NasInputError


def _hash_name(digest: str) -> str:
    digest = digest.lower()
    if len(digest) == 32:
        return "md5"
    if len(digest) == 64:
        return "sha256"
    raise NasInputError(f"checksum {digest!r} is neither an MD5 (32 hex digits) nor a SHA256 (64)")


def download_file(url: str, dest: Path | str, checksum: str | None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest``; verify ``checksum`` (MD5 or SHA256 hex, by length).

    Raises :class:`NasInputError` naming the URL on a network error or a checksum
    mismatch (the partial file is removed).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.new(_hash_name(checksum)) if checksum else None
    with atomic_target(dest) as tmp:
        _stream_to(url, tmp, hasher, timeout)
        if hasher is not None and checksum is not None:
            got = hasher.hexdigest()
            if got != checksum.lower():
                raise NasInputError(
                    f"checksum mismatch for {url}: expected {hasher.name} {checksum.lower()}, got {got}; "
                    f"the file was not saved"
                )
    return dest


def _stream_to(url: str, path: Path, hasher, timeout: float) -> None:
    """Copy the body of ``url`` to ``path`` in 1 MiB chunks, feeding ``hasher`` (if any)."""
    with open(path, "wb") as out:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                while True:
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise NasInputError(f"download of {url} failed: {exc}") from exc
