"""Activations by name: the one lookup every layer uses (unknown names are rejected)."""

from __future__ import annotations

import torch.nn as nn

from nas.errors import NasInputError

# swish is x * sigmoid(x), PyTorch's SiLU.
ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "swish": nn.SiLU}


def get_act_layer(name: str) -> type[nn.Module]:
    """The activation class for a genotype name (``relu``, ``swish``)."""
    try:
        return ACTIVATION_LAYERS[name]
    except (KeyError, TypeError):
        raise NasInputError(
            f"unknown activation {name!r}; expected one of {', '.join(ACTIVATION_LAYERS)}"
        ) from None


def create_act(name: str, inplace: bool = True) -> nn.Module:
    """A new activation module for a genotype name."""
    return get_act_layer(name)(inplace=inplace)


__all__ = ["ACTIVATION_LAYERS", "create_act", "get_act_layer"]
