"""Weights files: safetensors (``weights.safetensors``) or, without safetensors, a plain
state dict (``weights.pt``, loadable with ``torch.load(..., weights_only=True)``).

Every weights file we write has its SHA-256 recorded next to it (``metrics.json`` key
``weights_sha256``, and a literal in an exported ``model.py``); reading checks it, so a
truncated or tampered file is rejected with a message, never half-loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from nas.atomic import atomic_target, write_atomic
from nas.errors import NasInputError


def have_safetensors() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def weights_filename(prefer_safetensors: bool = True) -> str:
    return "weights.safetensors" if prefer_safetensors and have_safetensors() else "weights.pt"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_shareable(path: str | Path) -> None:
    """Give ``path`` the permissions a plain ``open()`` would (``0666 & ~umask``).

    Temporary files (``mkstemp``, safetensors) are created 0600; exported files are not secret.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def save_weights(state_dict: dict, path: str | Path, metadata: dict[str, str] | None = None) -> str:
    """Write a state dict (CPU, contiguous copies) atomically; returns the file's SHA-256.

    The bytes depend only on the tensors and the metadata (keys sorted), never on the
    process: the same weights always give the same file and the same digest.
    """
    path = Path(path)
    tensors = {k: state_dict[k].detach().to("cpu").contiguous().clone() for k in sorted(state_dict)}
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        data = save(tensors, metadata={k: str(v) for k, v in sorted((metadata or {}).items())})
        write_atomic(path, canonical_safetensors(data))
    else:
        with atomic_target(path) as tmp:
            torch.save(tensors, tmp)
    return file_sha256(path)


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its JSON header written with sorted keys.

    safetensors serialises the metadata map in a per-process random (Rust hash) order, so
    identical tensors would give different bytes in different processes. Tensor data
    offsets are relative to the data section, so only the header is rewritten.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data section must stay 8-byte aligned
    return len(text).to_bytes(8, "little") + text + data[8 + size:]


def load_weights(path: str | Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a weights file, checking its SHA-256 first when given.

    Raises :class:`NasInputError` naming the file for a missing, truncated, tampered or
    unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise NasInputError(f"{path}: weights file is missing")
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256:
            raise NasInputError(
                f"{path}: weights file does not match its recorded SHA-256 (truncated or modified); "
                f"expected {sha256[:12]}..., got {actual[:12]}...; retrain or re-export it"
            )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors / pickle errors have many types
        raise NasInputError(f"{path}: unreadable weights file ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NasInputError(f"{path}: not a state dict of tensors")
    return state


def load_state_strict(model: torch.nn.Module, state: dict, where: str) -> None:
    """``model.load_state_dict(state, strict=True)`` with a one-line error naming ``where``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with another shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise NasInputError(f"{where}: weights do not fit the architecture: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


__all__ = [
    "canonical_safetensors", "file_sha256", "have_safetensors", "load_state_strict", "load_weights", "make_shareable",
    "save_weights", "weights_filename",
]
