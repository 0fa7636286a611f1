"""Typed readers of DSL values: one value or a list of choices, checked and named.

Each reader takes the :class:`~nas.space.source.Reporter` of the file and the key path,
so that a wrong value raises an error naming the file, line and key. A searchable value
is either one value or a non-empty list of distinct choices (``expansion = 6`` or
``expansion = [3, 6]``); for values that are lists themselves (``kernels``,
``pw_groups``) a flat list is one value and a list of lists holds the choices.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Callable, Mapping

from nas.limits import MAX_CHOICES
from nas.space.source import Reporter

#: Reads and converts one choice: ``one(key_path, raw) -> value`` (raises via the Reporter).
OneValue = Callable[[str, Any], Any]


def is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: object) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def type_name(v: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}.get(
        type(v), type(v).__name__
    )


def _distinct(rep: Reporter, key: str, items: list, one: OneValue) -> tuple[Any, ...]:
    out: list[Any] = []
    for item in items:
        value = one(key, item)
        if value in out:
            raise rep.error(key, f"duplicate choice {item!r}")
        out.append(value)
    return tuple(out)


def choices(rep: Reporter, key: str, raw: object, one: OneValue, what: str) -> tuple[Any, ...]:
    """A scalar value or a non-empty list of them -> a tuple of distinct converted choices."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise rep.error(key, f"empty choice list; give at least one {what}")
    _check_count(rep, key, items)
    return _distinct(rep, key, items, one)


def nested_choices(rep: Reporter, key: str, raw: object, one: OneValue, what: str) -> tuple[Any, ...]:
    """``kernels``/``pw_groups``: a flat list is one value, a list of lists the choices."""
    if is_int(raw):
        raw = [raw]
    if not isinstance(raw, list):
        raise rep.error(key, f"expected {what} (a list of integers) or a list of them, got {type_name(raw)}")
    if not raw:
        raise rep.error(key, "empty choice list")
    if all(isinstance(item, list) for item in raw):
        items = raw
    elif any(isinstance(item, list) for item in raw):
        raise rep.error(key, f"mixes lists and scalars; write one {what} as [3, 5] or choices as [[3], [3, 5]]")
    else:
        items = [raw]
    _check_count(rep, key, items)
    return _distinct(rep, key, items, one)


def _check_count(rep: Reporter, key: str, items: list) -> None:
    if len(items) > MAX_CHOICES:
        raise rep.error(key, f"{len(items)} choices; a key holds at most {MAX_CHOICES}")


def int_reader(rep: Reporter, minimum: int, what: str, maximum: int) -> OneValue:
    """One integer in [``minimum``, ``maximum``] (a boolean is not an integer)."""

    def one(key: str, v: object) -> int:
        if not is_int(v):
            raise rep.error(key, f"expected an integer or a list of integers, got {type_name(v)} {v!r}")
        if not minimum <= v <= maximum:
            raise rep.error(key, f"{what} must be in [{minimum}, {maximum}], got {shown(v)}")
        return int(v)

    return one


def str_reader(rep: Reporter, allowed: tuple[str, ...], what: str) -> OneValue:
    """One string out of ``allowed``."""

    def one(key: str, v: object) -> str:
        if not isinstance(v, str):
            raise rep.error(key, f"expected a string or a list of strings, got {type_name(v)} {v!r}")
        if v not in allowed:
            raise rep.error(key, f"unknown {what} {v!r}; expected one of {', '.join(allowed)}")
        return v

    return one


def check_keys(rep: Reporter, path: str, table: Mapping[str, object], allowed: tuple[str, ...]) -> None:
    """Every key of ``table`` is in ``allowed``; an unknown one is named with a "did you mean"."""
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            full = f"{path}.{key}" if path else key
            raise rep.error(full, f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}")


def table(rep: Reporter, path: str, raw: object) -> Mapping[str, object]:
    """``raw`` if it is a TOML table."""
    if not isinstance(raw, dict):
        raise rep.error(path, f"expected a table, got {type_name(raw)}")
    return raw


def one_positive_int(rep: Reporter, key: str, raw: object, message: str, maximum: int) -> int:
    """One integer in [1, ``maximum``] (not a choice list), else ``message`` with the value appended."""
    if not is_int(raw) or not 1 <= raw <= maximum:
        raise rep.error(key, f"{message} up to {maximum}, got {shown(raw)}")
    return int(raw)


def shown(v: object) -> str:
    """A value for a message; an integer of absurd length by its digit count (TOML integers
    are unbounded in Python, and printing one of 5000 digits would itself fail)."""
    if is_int(v) and v.bit_length() > 64:
        return f"an integer of about {int(v.bit_length() * 0.30103)} digits"
    return repr(v)


__all__ = [
    "OneValue",
    "check_keys",
    "choices",
    "int_reader",
    "is_int",
    "is_num",
    "nested_choices",
    "one_positive_int",
    "shown",
    "str_reader",
    "table",
    "type_name",
]
