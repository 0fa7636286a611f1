"""Search spaces: the TOML DSL (:mod:`nas.space.dsl`) and the :class:`Space` built from it.

``dsl`` is the schema; it reads values with ``values``, locates and reports errors with
``source``, cross-checks blocks with ``checks`` and returns the dataclasses of ``spec``.
``decisions`` names what :meth:`Space.draw` asks, its kinds and the cost order of the options.
"""

from __future__ import annotations

from nas.space.decisions import COST_SETTING, WEIGHTLESS, Chooser, cost_key, decision_kind
from nas.space.dsl import parse_space
from nas.space.spec import SpaceSpec
from nas.space.space import Space, builtin_names, format_size, load_space

__all__ = [
    "COST_SETTING",
    "Chooser",
    "Space",
    "SpaceSpec",
    "WEIGHTLESS",
    "builtin_names",
    "cost_key",
    "decision_kind",
    "format_size",
    "load_space",
    "parse_space",
]
