"""A real PostgreSQL server for tests: Debian's ``postgresql``, a throwaway cluster on loopback.

``make postgresql`` installs the package (``make test-client`` depends on it). A test that needs a
server and finds no ``initdb`` fails, naming that target: nothing is skipped.

PostgreSQL refuses to run as root. As root, ``initdb`` and ``pg_ctl`` run as the ``postgres``
user, on a fresh folder it owns in ``workdir`` (or under the system temp folder when that user
cannot reach ``workdir``, as with pytest's folders, private to root); otherwise they run as the
current user on a fresh folder in ``workdir``. Each
cluster listens on a free loopback port only, with its Unix socket in its own folder. Local
socket connections are trusted; TCP connections (the ones tests make) need the password of the
user ``app``, which is random. ``fsync`` is off: a stopped or killed server still keeps each
transaction whole (that is the write-ahead log's job); only an operating system crash could
lose data, and these clusters are thrown away. The server is stopped (``pg_ctl stop -m fast``,
then a kill of the postmaster by its pid) when the ``with`` block ends, even when the test
fails, and its folder is removed.

Import the fixture into a test module by name (``from postgres_server import postgres``), or use
:func:`postgres_server` (the server) or :func:`running_postgres` (its URL) directly.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from orthanc_server import free_port
from psycopg import sql

USERNAME = "app"
DATABASE = "audit"
START_TIMEOUT = 30
STOP_TIMEOUT = 10
_ATTEMPTS = 3  # a free port can be taken between choosing it and the server binding it


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server binaries; the test fails (never skips) without it."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail(
            "PostgreSQL is not installed: run `make postgresql` (apt-get install -y postgresql, "
            "as root)"
        )
    return Path(found[-1]).parent


def _owner() -> tuple[int, int] | None:
    """The ``postgres`` user's uid and gid when running as root (None: run as oneself)."""
    if os.geteuid() != 0:
        return None
    account = pwd.getpwnam("postgres")
    return account.pw_uid, account.pw_gid


def _run_as() -> dict[str, Any]:
    """``subprocess`` options that run a server binary as the ``postgres`` user when root."""
    owner = _owner()
    if owner is None:
        return {}
    account = pwd.getpwuid(owner[0])
    return {
        "user": owner[0],
        "group": owner[1],
        "extra_groups": [],
        "env": {"PATH": "/usr/bin:/bin", "HOME": account.pw_dir, "LC_ALL": "C.UTF-8"},
    }


@dataclass
class PostgresServer:
    """A running PostgreSQL cluster and what a test needs to use it."""

    folder: Path
    port: int
    password: str
    bin: Path
    username: str = USERNAME

    @property
    def data(self) -> Path:
        """The cluster's data folder (its socket and log are in ``folder``)."""
        return self.folder / "data"

    @property
    def log(self) -> Path:
        """The server's log file."""
        return self.folder / "postgres.log"

    def url(self, database: str = DATABASE, *, password: str | None = None) -> str:
        """A SQLAlchemy URL of ``database`` over TCP (with the real password unless given)."""
        secret = self.password if password is None else password
        return f"postgresql+psycopg://{self.username}:{secret}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """A psycopg connection (autocommit) to ``database``."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.username,
            password=self.password,
            dbname=database,
            autocommit=True,
            connect_timeout=5,
        )

    def create_database(self, name: str) -> str:
        """Create the empty database ``name``; return its SQLAlchemy URL."""
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def pg_ctl(
        self, *args: str, timeout: float = START_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run ``pg_ctl -D data ARGS`` as the server's user."""
        return _as_server_user(
            str(self.bin / "pg_ctl"), "-D", str(self.data), *args, timeout=timeout
        )

    def start(self) -> None:
        """Start the server (again) and wait until it answers over TCP.

        Raises:
            RuntimeError: If it does not answer within ``START_TIMEOUT`` seconds.
        """
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        started = self.pg_ctl(
            "-w", "-t", str(START_TIMEOUT), "-l", str(self.log), "-o", options, "start"
        )
        deadline = time.monotonic() + START_TIMEOUT
        while started.returncode == 0 and time.monotonic() < deadline:
            with suppress(psycopg.OperationalError), self.connect():
                return
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr.strip()}; see {self.log}")

    def is_running(self) -> bool:
        """Whether the server is up (``pg_ctl status``)."""
        return self.pg_ctl("status").returncode == 0

    def stop(self) -> None:
        """Stop the server now (fast: open transactions are rolled back), killing it if need be."""
        stopped = self.pg_ctl(
            "-w", "-t", str(STOP_TIMEOUT), "-m", "fast", "stop", timeout=STOP_TIMEOUT + 5
        )
        if stopped.returncode == 0:
            return
        pid_file = self.data / "postmaster.pid"
        with suppress(FileNotFoundError, ValueError, ProcessLookupError, IndexError):
            os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)


def _as_server_user(*command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as the user the server runs as; never raises on its exit status."""
    return subprocess.run(
        list(command), capture_output=True, text=True, timeout=timeout, check=False, **_run_as()
    )


def _folder(workdir: Path) -> Path:
    """A fresh folder for one cluster in ``workdir``, owned by the user the server runs as.

    As root, when the ``postgres`` user cannot reach into ``workdir`` (pytest's folders are
    private to root), the folder is made under the system temp folder instead.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="pg-", dir=workdir))
    owner = _owner()
    if owner is None:
        return folder
    os.chown(folder, *owner)
    if _as_server_user("test", "-w", str(folder)).returncode == 0:
        return folder
    folder.rmdir()
    folder = Path(tempfile.mkdtemp(prefix="imaging-consent-pg-"))
    os.chown(folder, *owner)
    return folder


def _init(server: PostgresServer) -> None:
    secret = server.folder / "password"
    secret.write_text(server.password)
    owner = _owner()
    if owner is not None:
        os.chown(secret, *owner)
    try:
        made = _as_server_user(
            str(server.bin / "initdb"),
            f"--pgdata={server.data}",
            f"--username={server.username}",
            f"--pwfile={secret}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
            timeout=120,
        )
    finally:
        secret.unlink()
    if made.returncode != 0:
        pytest.fail(f"initdb failed: {made.stderr.strip()[-2000:]}")


@contextmanager
def postgres_server(workdir: Path) -> Iterator[PostgresServer]:
    """Start a fresh PostgreSQL with an empty database ``audit``; yield it; always stop it."""
    binaries = postgres_bin()
    folder = _folder(workdir)
    server = PostgresServer(folder, 0, secrets.token_urlsafe(16), binaries)
    try:
        _init(server)
        for _attempt in range(_ATTEMPTS):
            server.port = free_port()
            try:
                server.start()
                break
            except RuntimeError:
                server.stop()
        else:
            log = server.log.read_text(errors="replace") if server.log.exists() else ""
            pytest.fail(f"PostgreSQL did not start in {_ATTEMPTS} attempts; log:\n{log[-2000:]}")
        server.create_database(DATABASE)
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def running_postgres(workdir: Path) -> Iterator[str]:
    """Start a fresh PostgreSQL (see :func:`postgres_server`); yield its database's URL.

    The URL is SQLAlchemy's, ``postgresql+psycopg://app:PASSWORD@127.0.0.1:PORT/audit``; the
    user may create databases.
    """
    with postgres_server(workdir) as server:
        yield server.url()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A running PostgreSQL for the module (an empty cluster of its own)."""
    with postgres_server(tmp_path_factory.mktemp("postgres")) as server:
        yield server


__all__ = ["PostgresServer", "postgres", "postgres_bin", "postgres_server", "running_postgres"]
