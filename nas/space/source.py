"""Where a key of a space file is, and the error that names it.

Every DSL error reads ``<file>:<line>: <key path>: <what is wrong>``. TOML parsers do
not keep line numbers for values, so :func:`key_lines` finds them with a simple scan of
the text (good enough: it points at the key, or at the table that holds it).
"""

from __future__ import annotations

import re
from typing import Any, Iterator

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from nas.errors import NasInputError


def _dotted(name: str) -> str:
    return re.sub(r"\s*\.\s*", ".", name)


def key_lines(text: str) -> dict[str, int]:
    """Map key paths (``stages[2].defaults.kernels``) to the 1-based line that declares them."""
    lines: dict[str, int] = {}
    for key_path, number in _declarations(text):
        lines.setdefault(key_path, number)
    return lines


def _declarations(text: str) -> Iterator[tuple[str, int]]:
    """Every table and key declaration of ``text`` in order: (key path, 1-based line)."""
    prefix = ""
    array_counts: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^\[\[\s*([^\]]+?)\s*\]\]", line)
        if m:
            name = _dotted(m.group(1))
            index = array_counts.get(name, 0)
            array_counts[name] = index + 1
            prefix = f"{name}[{index}]"
            yield prefix, number
            continue
        m = re.match(r"^\[\s*([^\]]+?)\s*\]", line)
        if m:
            name = _dotted(m.group(1))
            head, _, tail = name.partition(".")
            if head in array_counts and tail:
                name = f"{head}[{array_counts[head] - 1}].{tail}"
            prefix = name
            yield prefix, number
            continue
        m = re.match(r'^([A-Za-z0-9_\-."\' ]+?)\s*=', line)
        if m:
            key = _dotted(m.group(1)).replace('"', "").replace("'", "")
            yield (f"{prefix}.{key}" if prefix else key), number


def _repeated_key(text: str) -> tuple[str, int] | None:
    """The first key path declared twice, with the line of its second declaration."""
    seen: set[str] = set()
    for key_path, number in _declarations(text):
        if key_path in seen:
            return key_path, number
        seen.add(key_path)
    return None


class Reporter:
    """Builds the NasInputError for a key path of one file."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self._lines = key_lines(text)

    def line_of(self, key_path: str) -> int | None:
        """The line of ``key_path``, else of the nearest table that holds it."""
        probe = key_path
        while probe:
            if probe in self._lines:
                return self._lines[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return None

    def error(self, key_path: str, message: str) -> NasInputError:
        line = self.line_of(key_path)
        where = f"{self.path}:{line}" if line is not None else self.path
        return NasInputError(f"{where}: {key_path}: {message}")


def load_toml(text: str, path: str) -> dict[str, Any]:
    """Parse TOML text; a syntax error becomes ``<file>:<line>: invalid TOML: ...``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        # tomllib names neither the key nor, at the end of the file, the line of a repeated key
        repeated = _repeated_key(text) if msg.startswith("Cannot overwrite a value") else None
        if repeated:
            key_path, line = repeated
            raise NasInputError(f"{path}:{line}: {key_path}: key given twice (invalid TOML)") from None
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        line = getattr(exc, "lineno", None) or (int(m.group(1)) if m else None)
        where = f"{path}:{line}" if line else path
        raise NasInputError(f"{where}: invalid TOML: {msg}") from None


__all__ = ["Reporter", "key_lines", "load_toml"]
