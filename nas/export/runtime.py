"""The loading side of an exported ``model.py``: ``preprocess``, ``read_weights``, ``load_model``.

:mod:`nas.export.codegen` writes this module's code into every ``model.py`` verbatim, after
the network. There, the names declared below are defined by the generated header and the
generated ``Net`` class. It imports only torch and the stdlib (``safetensors`` lazily).
"""

from __future__ import annotations

import hashlib
import os

import torch

# Defined in model.py by the generated header and Net class (declared here for readers and linters).
GENOTYPE: str
IN_CHANS: int
INPUT_SIZE: int
MEAN: tuple[float, ...]
STD: tuple[float, ...]
WEIGHTS_FILE: str
WEIGHTS_SHA256: str | None
Net: type[torch.nn.Module]


class WeightsError(RuntimeError):
    """The weights file is missing, truncated, modified, or does not fit the network."""


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> normalised float32, exactly as in training:
    (x / 255 - MEAN) / STD, computed as x * (1 / (255 * STD)) - MEAN / STD."""
    mean = torch.tensor(MEAN, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return images.float().mul_(1.0 / (255.0 * std)).sub_(mean / std)


def read_weights(path: str, sha256: str | None = None) -> dict:
    """The state dict in ``path`` (safetensors, or a torch state dict read with
    ``weights_only=True``), after checking the file's SHA-256 (``sha256=None``: no check)."""
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: weights file not found")
    if sha256:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise WeightsError(
                f"{path}: SHA-256 mismatch - the weights file is truncated or was modified "
                f"(expected {sha256[:12]}..., got {digest.hexdigest()[:12]}...); pass sha256=None "
                f"to load weights you changed on purpose"
            )
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path, device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise WeightsError(f"{path}: reading .safetensors needs the safetensors package") from None
    except Exception as exc:
        raise WeightsError(f"{path}: unreadable weights file ({type(exc).__name__}: {exc})") from None


def load_model(path: str | None = None, sha256: str | None = "auto",
               device: str | torch.device = "cpu") -> "Net":
    """``Net()`` with trained weights loaded (strict) and put in eval mode.

    ``path``: default the exported weights next to this file. ``sha256``: ``"auto"``
    checks the exported file against WEIGHTS_SHA256 (other files are not checked);
    a hex digest checks any file; ``None`` turns the check off.
    """
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), WEIGHTS_FILE)
    path = default if path is None else str(path)
    if sha256 == "auto":
        same = os.path.exists(path) and os.path.exists(default) and os.path.samefile(path, default)
        sha256 = WEIGHTS_SHA256 if same or path == default else None
    state = read_weights(path, sha256)
    model = Net()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit this network: {exc}") from None
    return model.to(device).eval()


if __name__ == "__main__":
    try:
        net = load_model()
    except WeightsError as exc:
        raise SystemExit(f"error: {exc}")
    x = torch.zeros(1, IN_CHANS, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8)
    with torch.no_grad():
        print(GENOTYPE)
        print("logits", tuple(net(preprocess(x)).shape), "params", sum(p.numel() for p in net.parameters()))
