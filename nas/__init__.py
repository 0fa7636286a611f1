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
    from nas.builder import build
    from nas.runs import Run
    from nas.space import Space

__version__ = "0.1.0"


def load_space(name_or_path: str) -> "Space":
    """Load a built-in space by name (``mdconv``) or any ``.toml`` space file by path."""
    from nas.space import load_space as _load_space

    return _load_space(name_or_path)


def load_run(path: str) -> "Run":
    """Open a run folder; ``run.trials`` and ``run.pareto`` are pandas DataFrames."""
    from nas.runs import load_run as _load_run

    return _load_run(path)


def __getattr__(name: str) -> Any:
    """``nas.build`` is :func:`nas.builder.build` itself (one signature, one set of defaults),
    imported on first use so that ``import nas`` does not import torch."""
    if name == "build":
        from nas.builder import build

        return build
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


__all__ = ["Arch", "GenotypeError", "NasInputError", "build", "load_run", "load_space", "__version__"]
