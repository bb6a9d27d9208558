"""Maintenance while the portal runs in embedded mode: the commands go through the running portal
(its OTLP receiver, its local maintenance endpoint), or say exactly what to do.

A real portal (gunicorn, production settings) in a private var/ folder holds the embedded engine;
the commands run as separate processes, as an operator would type them in another shell.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from monitoring.store import maintenance

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(var: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE_", "PORTAL_", "BIND"))}
    return {**env, "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": str(var), **extra}


def manage(var: Path, *args, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=_env(var, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def ask(url: str, key: str, **body) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + "/admin/monitoring/maintenance",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def total_rows(answer: dict) -> int:
    return sum(p["rows"] for p in answer["partitions"])


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """A portal on a free port that has opened its embedded data folder (it holds the lock)."""
    var = tmp_path_factory.mktemp("portal-var")
    assert manage(var, "migrate", "--noinput").returncode == 0
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "portal.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "1", "--threads", "4", "--timeout", "120"],
        cwd=REPO,
        env=_env(var),
        stdout=subprocess.DEVNULL,
        stderr=(var / "server.log").open("wb"),  # shown when the portal fails to answer
        start_new_session=True,
    )
    try:
        key_file = var / maintenance.KEY_FILE
        key_file.write_text("test-maintenance-key")
        key_file.chmod(0o600)
        deadline = time.monotonic() + 60
        while True:  # the first maintenance answer also makes the portal open the engine
            try:
                status, answer = ask(url, "test-maintenance-key", operation="partitions")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
            except json.JSONDecodeError:
                pytest.fail("the portal did not answer JSON:\n" + (var / "server.log").read_text()[-4000:])
        assert status == 200, answer
        assert (var / "clickhouse" / "status").exists()
        yield {"var": var, "url": url, "key": "test-maintenance-key", "pid": server.pid}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_demo_traces_go_to_the_running_portal_over_otlp(portal):
    before = total_rows(ask(portal["url"], portal["key"], operation="partitions")[1])
    r = manage(
        portal["var"],
        "demo_traces",
        *("--days", "1", "--runs-per-day", "3", "--no-progress"),
        PORTAL_URL=portal["url"],
        PORTAL_DEMO="1",  # the demo app, as bin/demo enables it
    )
    assert r.returncode == 0, r.stderr
    sent = int(r.stdout.split("Sent ")[1].split(" ")[0].replace(",", ""))
    assert sent > 0
    after = total_rows(ask(portal["url"], portal["key"], operation="partitions")[1])
    assert after == before + sent
    # The temporary ingest key it used is revoked.
    check = manage(
        portal["var"],
        "shell",
        "-c",
        "from monitoring.models import IngestKey; print(IngestKey.objects.active().filter(name__startswith='maintenance').count())",
    )
    assert check.stdout.strip().splitlines()[-1] == "0", check.stderr


def test_clickhouse_init_and_retention_ask_the_running_portal(portal):
    r = manage(portal["var"], "clickhouse_init", BIND=portal["url"].removeprefix("http://"))
    assert r.returncode == 0, r.stderr
    assert "of the running portal" in r.stdout and "columns in otel_traces" in r.stdout
    r = manage(portal["var"], "clickhouse_retention", "--days", "45", PORTAL_URL=portal["url"])
    assert r.returncode == 0, r.stderr
    assert "toIntervalDay(45)" in r.stdout and "total" in r.stdout
    assert "45" in ask(portal["url"], portal["key"], operation="partitions")[1]["ttl"]


def test_a_wrong_address_says_exactly_what_to_do(portal):
    r = manage(portal["var"], "clickhouse_init", PORTAL_URL=f"http://127.0.0.1:{_free_port()}")
    assert r.returncode != 0
    message = " ".join(r.stderr.split())
    assert "is open in the running portal (pid " in message
    assert "Set PORTAL_URL" in message and "stop the portal" in message
    assert "Cannot open the embedded ClickHouse data folder" not in message


def test_the_maintenance_endpoint_wants_the_local_key(portal):
    assert ask(portal["url"], "not-the-key", operation="partitions")[0] == 403
    assert ask(portal["url"], portal["key"], operation="drop everything")[0] == 400
    assert ask(portal["url"], portal["key"], operation="retention", days=-1)[0] == 400


def test_bind_addresses_become_urls(monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "box")
    assert maintenance.urls_for_bind("127.0.0.1:3009") == ["http://127.0.0.1:3009"]
    assert maintenance.urls_for_bind("0.0.0.0:8080") == ["http://127.0.0.1:8080", "http://box:8080"]
    assert maintenance.urls_for_bind("[::]:3009") == ["http://[::1]:3009", "http://box:3009"]
    assert maintenance.urls_for_bind("[::1]:3009") == ["http://[::1]:3009"]
    assert maintenance.urls_for_bind("localhost") == ["http://localhost:8000"]
    assert maintenance.urls_for_bind("unix:/run/portal.sock") == []
