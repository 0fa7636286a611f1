"""Storage URLs: what may be shown or recorded of them, and the driver a bare ``postgresql://`` uses.

A password in a ``--storage`` URL (``postgresql://user:secret@host/db``) is never printed and
never written to a run folder: messages show it as ``***`` (:func:`mask_url`, :func:`mask_text`,
:func:`mask_command`), and ``config.json`` records the URL without it (:func:`public_url`). A
resumed run, ``nas pareto`` and ``nas.load_run`` then connect with the recorded URL, and the
database driver finds the password where libpq looks for one (``PGPASSWORD``, ``~/.pgpass``);
``nas search --resume RUN --storage URL`` gives it again instead (:func:`same_storage`).
"""

from __future__ import annotations

import importlib.util
import re
from typing import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
# scheme://user:password@ - the password ends at the first "@", as SQLAlchemy's URL parser reads it
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*:)(?P<password>[^@\s]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<password>[^&\s]*)", re.IGNORECASE)
# a bare postgresql:// means psycopg (3) to SQLAlchemy >= 2.1 and psycopg2 before it: use the one installed
_POSTGRES_DRIVERS = (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2"))


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def _parsed(url: str):
    from sqlalchemy.engine import make_url

    try:
        return make_url(url)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: the text-level masking still applies
        return None


def mask_url(url: str) -> str:
    """``url`` as it may be shown: its password (in the authority or a ``password=`` query) as ``***``."""
    return _QUERY_PASSWORD.sub(rf"\g<head>{MASK}", _CREDENTIALS.sub(rf"\g<head>{MASK}@", url))


def public_url(url: str) -> str:
    """``url`` as a run folder records it: the same storage, without any password."""
    parsed = _parsed(url)
    if parsed is None or (parsed.password is None and "password" not in parsed.query):
        return url
    # URL.set() takes None as "unchanged": replace the field itself
    return parsed._replace(password=None).difference_update_query(["password"]).render_as_string(hide_password=False)


def same_storage(a: str, b: str) -> bool:
    """Whether two URLs name the same storage (passwords aside)."""
    return public_url(a) == public_url(b)


def mask_text(text: str, url: str | None) -> str:
    """``text`` (an error message, say) with the password of ``url`` - as given, decoded or
    URL-encoded - and any other URL credentials shown as ``***``."""
    text = mask_url(text)
    parsed = _parsed(url) if url else None
    secrets = set()
    if parsed is not None:
        for value in (parsed.password, parsed.query.get("password")):
            if isinstance(value, str) and value:
                secrets.update({value, quote(value, safe=""), quote_plus(value)})
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def mask_command(argv: Iterable[str]) -> list[str]:
    """A command line as it may be recorded: credentials in any URL argument shown as ``***``."""
    return [mask_url(arg) for arg in argv]


def connect_url(url: str) -> str:
    """The URL to open: a bare ``postgresql://`` names the PostgreSQL driver that is installed
    (psycopg, else psycopg2); anything else as given."""
    if not url.startswith(("postgresql://", "postgres://")):
        return url
    rest = url.split("://", 1)[1]
    for module, scheme in _POSTGRES_DRIVERS:
        if importlib.util.find_spec(module) is not None:
            return f"{scheme}://{rest}"
    raise ModuleNotFoundError(
        "no PostgreSQL driver is installed for --storage postgresql://...: pip install 'nas[postgres]'",
        name="psycopg",
    )


__all__ = ["MASK", "connect_url", "is_sqlite", "mask_command", "mask_text", "mask_url", "public_url", "same_storage"]
