"""nas: multi-objective neural architecture search for MixConv-style networks.

The public surface is small on purpose:

- :func:`nas.load_space` parses and validates a search-space file (built-in name or path);
- :func:`nas.build` turns a genotype (:class:`nas.Arch` or its string) into an ``nn.Module``;
- :func:`nas.load_run` opens a run folder and gives its trials and Pareto front as DataFrames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nas.errors import GenotypeError, NasInputError
from nas.genotype import Arch

if TYPE_CHECKING:  # imported lazily so `import nas` stays light (no torch, no ray)
    import torch.nn as nn

    from nas.runs import Run
    from nas.space import Space

__version__ = "0.1.0"


def load_space(name_or_path: str) -> "Space":
    """Load a built-in space by name (``mdconv``) or any ``.toml`` space file by path."""
    from nas.space import load_space as _load_space

    return _load_space(name_or_path)


def build(arch: "Arch | str", num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> "nn.Module":
    """Build the ``nn.Module`` an architecture describes."""
    from nas.builder import build as _build

    return _build(arch, num_classes=num_classes, in_chans=in_chans, **kwargs)


def load_run(path: str) -> "Run":
    """Open a run folder; ``run.trials`` and ``run.pareto`` are pandas DataFrames."""
    from nas.runs import load_run as _load_run

    return _load_run(path)


__all__ = ["Arch", "GenotypeError", "NasInputError", "build", "load_run", "load_space", "__version__"]
