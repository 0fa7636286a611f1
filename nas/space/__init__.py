"""Search spaces: the TOML DSL (:mod:`nas.space.dsl`) and the :class:`Space` built from it."""

from __future__ import annotations

from nas.space.dsl import SpaceSpec, parse_space
from nas.space.space import Space, builtin_names, format_size, load_space

__all__ = ["Space", "SpaceSpec", "builtin_names", "format_size", "load_space", "parse_space"]
