"""Shared fixtures. ``postgres``: one real PostgreSQL server for the whole session (tests/postgres_server.py)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def postgres():
    """A running PostgreSQL server (stopped and removed at the end of the session).

    Skips when no PostgreSQL binaries are installed (``apt-get install postgresql``), except in
    CI (``CI`` set), where .ci/run installs them and their absence is a failure.
    """
    from postgres_server import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        reason = ("no PostgreSQL server binaries (initdb, pg_ctl, postgres) under /usr/lib/postgresql/*/bin "
                  "or on PATH; install them with `apt-get install postgresql` to run the PostgreSQL storage tests")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = PostgresServer(bindir)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()
