"""The web server as bin/demo runs it (config/serve.sh, embedded mode): slow senders cannot starve it,
chunked bodies are stored. A real server on a loopback port, real sockets."""

from __future__ import annotations

import http.client
import socket
import time

import pytest
from live_portal import LivePortal
from otlp import S, request


@pytest.fixture(scope="module")
def portal():
    live = LivePortal().prepare().start()
    yield live
    live.stop()


def _stalled(portal: LivePortal, path: str) -> socket.socket:
    """A connection that declares a 1000-byte body and sends 10 bytes of it, then nothing."""
    sock = socket.create_connection(("127.0.0.1", portal.port), timeout=5)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
        f"Authorization: Bearer {portal.ingest_key}\r\nContent-Length: 1000\r\n\r\n"
    )
    sock.sendall(head.encode() + b"0123456789")
    return sock


def test_nine_stalled_bodies_do_not_starve_other_requests(portal):
    stalled = [_stalled(portal, path) for path in ["/v1/traces"] * 5 + ["/accounts/login/"] * 4]
    try:
        time.sleep(0.5)  # let the server take them all
        timings = []
        for i in range(12):
            started = time.monotonic()
            if i % 2:
                status = portal.request("GET", "/accounts/login/", timeout=5)[0]
            else:
                status = portal.post_spans(request(S(f"during-{i}")).SerializeToString(), timeout=5)[0]
            timings.append(time.monotonic() - started)
            assert status == 200
        assert max(timings) < 5.0, timings
    finally:
        for sock in stalled:
            sock.close()


def test_a_chunked_body_is_stored_not_answered_200_and_dropped(portal):
    body = request(*[S(f"chunk-{i}") for i in range(100)]).SerializeToString()
    conn = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=10)
    conn.putrequest("POST", "/v1/traces")
    conn.putheader("Content-Type", "application/x-protobuf")
    conn.putheader("Authorization", f"Bearer {portal.ingest_key}")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for i in range(0, len(body), 700):
        chunk = body[i : i + 700]
        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    assert response.status == 200, response.read()
    conn.close()
    portal.stop()
    try:
        assert portal.count("chunk-") == 100
    finally:
        portal.start()


def test_the_queue_serves_ingest_first_and_caps_dashboard_work():
    import threading
    from types import SimpleNamespace

    from monitoring.serving import IngestFirstDispatcher

    done, gate, lock = [], threading.Event(), threading.Lock()
    running_heavy, peak_heavy = [0], [0]

    def task(path):
        def service():
            heavy = path.startswith("/admin/monitoring")
            with lock:
                running_heavy[0] += heavy
                peak_heavy[0] = max(peak_heavy[0], running_heavy[0])
            if heavy:  # dashboard work blocks until the gate opens; an export is quick
                gate.wait(5)
            with lock:
                running_heavy[0] -= heavy
                done.append(path)

        return SimpleNamespace(request=SimpleNamespace(path=path), service=service)

    dispatcher = IngestFirstDispatcher(heavy_limit=2)
    dispatcher.set_thread_count(4)
    for i in range(6):
        dispatcher.add_task(task(f"/admin/monitoring/p/overview/{i}"))
    dispatcher.add_task(task("/v1/traces"))
    time.sleep(0.3)  # 2 dashboard tasks run; the ingest task took a free thread at once
    with lock:
        assert running_heavy[0] == 2
        assert done == ["/v1/traces"]  # not behind the six dashboard requests
    gate.set()
    deadline = time.monotonic() + 5
    while len(done) < 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    dispatcher.shutdown()
    assert len(done) == 7 and peak_heavy[0] == 2
