"""Call: one constructor call, decided once, that the engine runs and the exporter writes out.

The builder turns a genotype into a tree of :class:`Call` s (which conv class, which
channels, which kernel list). ``Call.build()`` makes the modules of ``nas.build``;
:mod:`nas.export.codegen` writes the same tree as literal Python in ``model.py``. So every
decision the genotype implies is made in one place, and the exported network cannot drift
from the engine's.

Stdlib only: nothing here knows about torch or the genotype.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Code:
    """A Python expression written as is in generated code (``in_chans``, ``num_classes``)."""

    text: str


@dataclass(frozen=True)
class Call:
    """``fn(*args, **kwargs)``; arguments may themselves be Calls (built first, in order).

    ``comment`` is documentation for generated code (e.g. the block's genotype text).
    """

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    comment: str = ""

    def build(self) -> Any:
        """Run the call tree: arguments first (left to right), then ``fn``."""
        return self.fn(*(_build(a) for a in self.args), **{k: _build(v) for k, v in self.kwargs.items()})


def _build(value: Any) -> Any:
    if isinstance(value, Call):
        return value.build()
    if isinstance(value, Code):
        raise TypeError(f"Code({value.text!r}) only has a meaning in generated source")
    return value


__all__ = ["Call", "Code"]
