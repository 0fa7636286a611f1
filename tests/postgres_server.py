"""A real, throw-away PostgreSQL server for the tests: initdb + pg_ctl on a temporary folder.

The server listens on 127.0.0.1 only, on a free port, with password (scram-sha-256)
authentication for its one superuser, so the tests see a storage URL that carries a
password. PostgreSQL refuses to run as root: as root, every server command runs as the
unprivileged user ``nobody`` (subprocess ``user=``/``group=``, no sudo or PAM needed), and
the temporary folder is handed to that user. The binaries are found under Debian's
/usr/lib/postgresql/<version>/bin (the newest), else on PATH; :func:`find_bindir` returns
None when there are none, and the tests skip saying so (except in CI, where .ci/run
installs them and a missing server is a failure).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

USER = "nas"


def find_bindir() -> Optional[Path]:
    """The folder holding initdb, pg_ctl and postgres, or None when PostgreSQL is not installed."""
    def version(path: str) -> tuple:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.parent.name)) or (0,)

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(on_path)
    for initdb in candidates:
        bindir = Path(initdb).parent
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One server: :meth:`start`, :meth:`create_database` (-> a storage URL), :meth:`stop`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.password = "pw-" + secrets.token_hex(8)  # distinctive: the tests look for it in every output
        root_user = os.geteuid() == 0
        # as root, a folder "nobody" can reach: a TMPDIR private to root would not be
        self.root = Path(tempfile.mkdtemp(prefix="nas-pg-", dir="/tmp" if root_user and os.path.isdir("/tmp") else None))
        self.data = self.root / "data"
        self.port = 0
        self._as = {}
        if root_user:  # postgres will not run as root
            nobody = pwd.getpwnam("nobody")
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
        self._env = {**os.environ, "HOME": str(self.root), "LC_ALL": "C", "LANG": "C"}
        self._env.pop("PGPASSWORD", None)

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.bindir / args[0]), *args[1:]], cwd=self.root, env=self._env,
                              capture_output=True, text=True, timeout=timeout, **self._as)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr[-2000:]}"
                               f"{self.log_tail()}")
        return proc

    def log_tail(self) -> str:
        log = self.root / "server.log"
        return f"\nserver log: {log.read_text()[-2000:]}" if log.exists() else ""

    def start(self) -> "PostgresServer":
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as:
            os.chown(pwfile, self._as["user"], self._as["group"])
        self._run("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        for attempt in range(5):  # the free port may be taken between the probe and the bind
            self.port = _free_port()
            opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                    f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", opts,
                          "-w", "-t", "60", "start")
                return self
            except RuntimeError:
                if attempt == 4:
                    raise
                time.sleep(0.5)
        return self

    def url(self, database: str, password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database on the server; returns its storage URL (with the password)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=self.password,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
