"""Padding modes of a convolution, and partial-convolution-based padding.

Five modes: ``zeros``, ``reflect``, ``replicate``, ``circular`` (PyTorch's own, via
``nn.Conv2d(padding_mode=...)``) and ``partial``: partial-convolution-based padding
(Liu et al., arXiv 1811.11718). ``partial`` zero-pads, convolves, then multiplies each
output by ``window size / number of valid (non-padded) inputs in the window``, so a border
output is re-weighted as if the padded taps had not been there. A bias, if any, is added
after the ratio (not re-weighted), as in NVIDIA's reference ``PartialConv2d``; the networks
built here have none (a batch norm follows every conv) until :mod:`nas.layers.fold` folds
that batch norm in for inference.

The ratio depends only on the input height and width and the conv's geometry (kernel,
stride, dilation, padding), never on the data, so it is computed once per
(shape, device, dtype) and cached on the module. The cache is a plain attribute, not a
buffer: it never enters the state dict.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nas.errors import NasInputError
from nas.borders import border_pad_fits

PADDING_MODES = ("zeros", "reflect", "replicate", "circular", "partial")

# How many distinct input sizes one layer keeps ratios for (multi-scale inputs stay bounded).
_CACHE_SIZE = 8


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Symmetric, PyTorch-style padding that keeps the size at stride 1: ``dilation*(k-1)//2``."""
    return dilation * (kernel_size - 1) // 2


def check_padding_mode(padding_mode: str) -> str:
    if padding_mode not in PADDING_MODES:
        raise NasInputError(f"unknown padding mode {padding_mode!r}; expected one of {', '.join(PADDING_MODES)}")
    return padding_mode


def check_border_padding(padding_mode: str, pad: int, height: int, width: int, where: str) -> None:
    """Reflect needs ``pad < size`` and circular ``pad <= size`` on both axes
    (:func:`nas.borders.border_pad_fits`, the limit the DSL checks too): say so clearly."""
    if border_pad_fits(padding_mode, pad, height, width):
        return
    need = f"more than {pad}" if padding_mode == "reflect" else f"at least {pad}"
    raise NasInputError(
        f"{where}: {padding_mode} padding of {pad} pixels needs an input of {need} pixels per side, "
        f"got {height}x{width}; use a smaller kernel or dilation, pad=zeros/replicate/partial, "
        f"or a larger input"
    )


def name_layers(model: nn.Module) -> None:
    """Give every layer with a ``layer_name`` its path in ``model``, so padding errors name it."""
    for name, module in model.named_modules():
        if hasattr(type(module), "layer_name"):
            module.layer_name = name


def _axis_ratio(size: int, kernel: int, stride: int, dilation: int, pad: int) -> torch.Tensor:
    """kernel / valid taps for every output position along one axis (float64, CPU)."""
    out = (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    start = torch.arange(out, dtype=torch.int64) * stride - pad  # first tap of each window
    taps = start[:, None] + torch.arange(kernel, dtype=torch.int64)[None, :] * dilation
    valid = ((taps >= 0) & (taps < size)).sum(dim=1).to(torch.float64)
    return kernel / valid  # never divides by 0: the centre tap of a 'same' window is inside


def partial_ratio(
    height: int, width: int, kernel: int, stride: int = 1, dilation: int = 1, pad: int | None = None
) -> torch.Tensor:
    """The (Ho, Wo) float64 CPU map ``window size / valid inputs`` of partial padding."""
    if pad is None:
        pad = same_padding(kernel, dilation)
    rh = _axis_ratio(height, kernel, stride, dilation, pad)
    rw = _axis_ratio(width, kernel, stride, dilation, pad)
    return rh[:, None] * rw[None, :]


class RatioCache:
    """Partial-padding ratios keyed by (H, W, device, dtype), built by ``make(H, W)`` once each.

    Tensors are created outside inference mode so that a first forward under
    ``torch.inference_mode()`` (a FLOP count, an evaluation) does not poison training.
    """

    def __init__(self) -> None:
        self._store: dict[tuple, torch.Tensor] = {}

    def get(self, height: int, width: int, like: torch.Tensor, make) -> torch.Tensor:
        key = (height, width, like.device, like.dtype)
        ratio = self._store.get(key)
        if ratio is None:
            with torch.inference_mode(False), torch.no_grad():
                ratio = make(height, width).to(device=like.device, dtype=like.dtype)
            if len(self._store) >= _CACHE_SIZE:
                self._store.pop(next(iter(self._store)))
            self._store[key] = ratio
        return ratio

    def clear(self) -> None:
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)


class PaddedConv2d(nn.Conv2d):
    """``nn.Conv2d`` with reflect or circular padding that checks the input is large enough.

    PyTorch's own error for a too-small input is cryptic; this one names the layer
    (``layer_name``, set by the builder), the kernel, the padding and the input size.
    """

    layer_name: str = "conv"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.padding[0]
        check_border_padding(
            self.padding_mode, pad, x.shape[-2], x.shape[-1],
            f"{self.layer_name} (kernel {self.kernel_size[0]}, dilation {self.dilation[0]})",
        )
        return super().forward(x)


class PartialConv2d(nn.Conv2d):
    """A zero-padded ``nn.Conv2d`` whose output is re-weighted by the partial ratio; its bias
    (if any) is added after the ratio.

    Same parameters and state dict as the ``nn.Conv2d`` it extends.
    """

    layer_name: str = "conv"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise NasInputError("PartialConv2d zero-pads; it takes no other padding_mode")
        if self.kernel_size[0] != self.kernel_size[1]:
            raise NasInputError("PartialConv2d expects a square kernel")
        self._ratios = RatioCache()

    def _make_ratio(self, height: int, width: int) -> torch.Tensor:
        ratio = partial_ratio(height, width, self.kernel_size[0], self.stride[0], self.dilation[0], self.padding[0])
        return ratio[None, None]  # (1, 1, Ho, Wo), broadcast over batch and channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._conv_forward(x, self.weight, None)
        if self.padding[0] == 0:
            return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
        ratio = self._ratios.get(x.shape[-2], x.shape[-1], y, self._make_ratio)
        if self.bias is None:
            return y.mul_(ratio)  # in place: conv backward needs its input, not its output
        return torch.addcmul(self.bias.view(1, -1, 1, 1), y, ratio)  # one pass: ratio, then bias


__all__ = [
    "PADDING_MODES",
    "PaddedConv2d",
    "PartialConv2d",
    "RatioCache",
    "check_border_padding",
    "check_padding_mode",
    "name_layers",
    "partial_ratio",
    "same_padding",
]
