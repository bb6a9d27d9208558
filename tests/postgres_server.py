"""A real PostgreSQL for the tests, as production runs Django on (docker-compose.yml), started by the
tests themselves: Debian's `postgresql` package (.ci/run installs it), `initdb` into a temporary
folder and `postgres` listening on 127.0.0.1 only, as a child process of pytest.

PostgreSQL refuses to run as root, and CI runs as root: then both run as the unprivileged `nobody`
(through util-linux's `setpriv`), in a folder `nobody` owns. `setpriv --pdeathsig` makes the server
stop when the pytest process dies, so a crashed run leaves no server behind. Settings for a test
server's speed only (fsync off, no synchronous commit): a crash of the machine loses its data.

Usage: `server = start_postgres()`, `server.new_database()` (a URL for DATABASE_URL, a copy of a
template database, so each test starts from one migrated state), `stop_postgres(server)`.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

USER = "apm"  # the server's superuser, trusted on loopback (a test server only)
UNPRIVILEGED = "nobody"  # who runs it when we are root


def binaries() -> str | None:
    """The folder of `initdb` and `postgres` (the newest Debian version), or None when absent."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version)
    if found:
        return os.path.dirname(found[-1])
    on_path = shutil.which("postgres")
    return os.path.dirname(os.path.realpath(on_path)) if on_path and shutil.which("initdb") else None


def _version(path: str) -> tuple[int, ...]:
    name = path.split("/")[4]
    return tuple(int(p) for p in name.split(".") if p.isdigit())


@dataclass
class Postgres:
    process: subprocess.Popen
    port: int
    folder: str
    log_path: str
    databases: list[str] = field(default_factory=list)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://{USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def new_database(self, template: str = "template1") -> str:
        """A new database copied from `template` (a migrated one copies in ~0.1 s); its URL."""
        from psycopg import sql

        name = f"t{len(self.databases)}_{os.getpid()}"
        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
            )
        self.databases.append(name)
        return self.url(name)

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_unprivileged(command: list[str]) -> list[str]:
    """`command` run as `nobody` when we are root (PostgreSQL refuses root), else as ourselves;
    either way stopped with SIGINT (a fast shutdown) when this process dies."""
    drop = ["--reuid", UNPRIVILEGED, "--regid", "nogroup", "--clear-groups"] if os.geteuid() == 0 else []
    return ["setpriv", *drop, "--pdeathsig", "INT", *command]


def start_postgres(timeout: float = 30) -> Postgres:
    """initdb into a new temporary folder and serve it on a free loopback port; returns once it
    answers. Raises RuntimeError with the server's log when it does not start within `timeout`."""
    bindir = binaries()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    folder = tempfile.mkdtemp(prefix="apm-postgres-")
    if os.geteuid() == 0:
        shutil.chown(folder, UNPRIVILEGED, "nogroup")
    data, log_path = os.path.join(folder, "data"), os.path.join(folder, "server.log")
    init = subprocess.run(
        _as_unprivileged(
            [f"{bindir}/initdb", "-D", data, "-U", USER, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "-N"]
        ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if init.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
    port = _free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": folder,
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "40",
        "shared_buffers": "16MB",
    }
    args = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            _as_unprivileged([f"{bindir}/postgres", "-D", data, *args]),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Postgres(process, port, folder, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            server.connect().close()
            return server
        except Exception:  # not accepting connections yet
            time.sleep(0.1)
    stop_postgres(server)
    raise RuntimeError(f"PostgreSQL did not start within {timeout:.0f} s:\n{server.log()}")


def stop_postgres(server: Postgres, timeout: float = 10) -> None:
    """Fast shutdown (SIGINT: sessions are ended), then the folder goes. Idempotent."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout)
    shutil.rmtree(server.folder, ignore_errors=True)
