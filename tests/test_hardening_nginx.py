"""Compose's front (config/nginx.conf) in front of gunicorn: stalled uploads wait in nginx, not in
gunicorn's threads. Runs Debian's nginx when installed (`apt-get install nginx-light`), else skips."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from live_portal import LivePortal, free_port
from otlp import S, request

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
# Under CI (.ci/run installs nginx-light) a missing nginx fails instead of skipping.
pytestmark = pytest.mark.skipif(
    NGINX is None and not os.environ.get("CI"), reason="nginx is not installed (apt-get install nginx-light)"
)
CONF = Path(__file__).resolve().parents[1] / "config" / "nginx.conf"


@pytest.fixture
def front(tmp_path):
    """gunicorn (gthread: a stalled body would hold a thread) behind the compose nginx config."""
    portal = LivePortal(str(tmp_path / "portal"), PORTAL_SERVER="gunicorn", GUNICORN_THREADS="4").prepare().start()
    port = free_port()
    text = CONF.read_text()
    for old, new in [
        ("server backend:8000;", f"server 127.0.0.1:{portal.port};"),
        ("pid /var/run/nginx.pid;", f"pid {tmp_path}/nginx.pid;\nuser root;"),
        ("listen 3009;", f"listen 127.0.0.1:{port};"),
        ("error_log /dev/stderr warn;", f"error_log {tmp_path}/error.log warn;"),
        ("access_log /dev/stdout;", "access_log off;"),
        ("http {", f"http {{\n    client_body_temp_path {tmp_path}/body;\n    proxy_temp_path {tmp_path}/proxy;"),
    ]:
        assert old in text, old
        text = text.replace(old, new, 1)
    (tmp_path / "nginx.conf").write_text(text)
    nginx = subprocess.Popen([NGINX, "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    portal.front_port = port
    yield portal
    nginx.send_signal(signal.SIGQUIT)
    try:
        nginx.wait(10)
    except subprocess.TimeoutExpired:
        nginx.kill()
    portal.stop()


def _stalled(port: int, key: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        f"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: 1000\r\n\r\n0123456789".encode()
    )
    return sock


def test_stalled_uploads_through_nginx_do_not_starve_gunicorn(front):
    import http.client

    stalled = [_stalled(front.front_port, front.ingest_key) for _ in range(9)]
    try:
        time.sleep(0.5)
        body = request(S("through-nginx")).SerializeToString()
        for i in range(8):
            conn = http.client.HTTPConnection("127.0.0.1", front.front_port, timeout=5)
            started = time.monotonic()
            if i % 2:
                conn.request("GET", "/accounts/login/", headers={"Host": "localhost"})
            else:
                conn.request(
                    "POST",
                    "/v1/traces",
                    body=body,
                    headers={
                        "Host": "localhost",
                        "Content-Type": "application/x-protobuf",
                        "Authorization": f"Bearer {front.ingest_key}",
                    },
                )
            status = conn.getresponse().status
            conn.close()
            assert status == 200 and time.monotonic() - started < 5
    finally:
        for sock in stalled:
            sock.close()


def test_nginx_hides_metrics(front):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", front.front_port, timeout=5)
    conn.request("GET", "/metrics", headers={"Host": "localhost"})
    assert conn.getresponse().status == 404
    # while the backend itself answers its loopback scraper
    assert front.request("GET", "/metrics", headers={"Host": "localhost"})[0] == 200
