"""Search spaces: the TOML DSL (:mod:`nas.space.dsl`) and the :class:`Space` built from it.

``dsl`` is the schema; it reads values with ``values``, locates and reports errors with
``source``, cross-checks blocks with ``checks`` and returns the dataclasses of ``spec``.
"""

from __future__ import annotations

from nas.space.dsl import parse_space
from nas.space.spec import SpaceSpec
from nas.space.space import Space, builtin_names, format_size, load_space

__all__ = ["Space", "SpaceSpec", "builtin_names", "format_size", "load_space", "parse_space"]
