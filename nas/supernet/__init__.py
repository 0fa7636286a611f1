"""One-shot search: a weight-sharing supernet for any DSL space (see supernet.py)."""

from nas.supernet.supernet import Supernet

__all__ = ["Supernet"]
