"""The portal served for real (config/serve.sh, as bin/demo and the image run it) on a loopback port.

For tests and bench scripts that need a live HTTP server: slow clients, chunked bodies, fuzzing,
outages, SIGKILL. Each portal gets its own var/ folder (SQLite, engine data, spool). Embedded mode by
default; pass ``clickhouse_port`` for server mode (gunicorn workers over the native protocol).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LivePortal:
    """``start()`` serves; ``stop()`` ends it (SIGTERM, or SIGKILL with ``kill=True``); restartable."""

    def __init__(self, var_dir: str | None = None, *, clickhouse_port: int | None = None, **env: str):
        self.var_dir = Path(var_dir or tempfile.mkdtemp(prefix="apm-live-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")},
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "PORTAL_VAR_DIR": str(self.var_dir),
            "CLICKHOUSE_TTL_DAYS": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "BIND": f"127.0.0.1:{self.port}",
            "PORTAL_PYTHON": PYTHON,
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING",
            "GUNICORN_LOG_LEVEL": "warning",
        }
        if clickhouse_port is not None:
            self.env |= {"CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_PORT": str(clickhouse_port)}
        self.env |= env
        self.proc: subprocess.Popen | None = None
        self.log_path = self.var_dir / "server.log"
        self.project_id = ""
        self.ingest_key = ""

    def manage(self, *args: str, timeout: float = 180) -> str:
        run = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if run.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}")
        return run.stdout

    def prepare(self, owner: str = "owner") -> LivePortal:
        """Django's tables, the ClickHouse schema, a user and a project with an ingest key."""
        self.manage("migrate", "--noinput")
        self.manage("clickhouse_init")
        self.manage(
            "shell",
            "-c",
            f"from django.contrib.auth.models import User; User.objects.create_user({owner!r}, password='pw-{owner}-123')",
        )
        made = json.loads(self.manage("createproject", "live", "--owner", owner).strip().splitlines()[-1])
        self.project_id, self.ingest_key = made["project_id"], made["ingest_key"]
        return self

    def start(self, timeout: float = 60) -> LivePortal:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["sh", str(ROOT / "config" / "serve.sh")],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends gunicorn's workers too
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"portal exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.request("GET", "/accounts/login/", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop(kill=True)
        raise RuntimeError(f"portal did not answer within {timeout} s:\n{self.log()}")

    def stop(self, *, kill: bool = False, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        sig = signal.SIGKILL if kill else signal.SIGTERM
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def request(self, method: str, path: str, body: bytes | None = None, headers=None, timeout: float = 10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def post_spans(self, body: bytes, content_type: str = "application/x-protobuf", timeout: float = 30, **headers):
        return self.request(
            "POST",
            "/v1/traces",
            body,
            {"Content-Type": content_type, "Authorization": f"Bearer {self.ingest_key}", **headers},
            timeout=timeout,
        )

    def count(self, name_prefix: str = "", timeout: float = 60) -> int:
        """Spans stored for the project, whose name starts with ``name_prefix`` (asked through
        manage.py shell: in embedded mode the engine belongs to the server, so stop it first)."""
        code = (
            "from monitoring.store import clickhouse, schema;"
            "print(clickhouse.query_one('SELECT count() AS n FROM ' + schema.table() +"
            " ' WHERE ProjectId = {p:String} AND startsWith(SpanName, {prefix:String})',"
            f" {{'p': {self.project_id!r}, 'prefix': {name_prefix!r}}}, tag='test.count')['n'])"
        )
        return int(self.manage("shell", "-c", code, timeout=timeout).strip().splitlines()[-1])

    def pids(self) -> list[int]:
        """The server's processes (gunicorn master and workers, or the one waitress process)."""
        if self.proc is None:
            return []
        out = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def rss_mib(self) -> float:
        """Largest resident set of the server's processes, MiB."""
        return rss_mib(self.pids())


def rss_mib(pids: list[int]) -> float:
    """Largest resident set of the processes, MiB (0 for those gone)."""
    best = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    best = max(best, int(line.split()[1]))
        except OSError:
            continue
    return best / 1024
