"""One client cannot hold the embedded server (issue 22, item 3): a live portal (config/serve.sh,
embedded mode) on a loopback port, real sockets, this process raising its own RLIMIT_NOFILE.

The attacker is 127.0.0.1; the person is 127.0.0.2 (all of 127/8 is loopback on Linux), so the two
are different client addresses without leaving the machine. Bounded: 2,000 attacker sockets, each
test well under a minute.
"""

from __future__ import annotations

import http.client
import re
import resource
import select
import socket
import statistics
import threading
import time
import urllib.parse

import pytest
from conftest import require
from live_portal import LivePortal
from otlp import S, request

ATTACKER, PERSON = "127.0.0.1", "127.0.0.2"
SOCKETS = 2_000
HEADER_TIMEOUT = 3  # the portal's PORTAL_HEADER_TIMEOUT / PORTAL_BODY_TIMEOUT here: short, to see them act


@pytest.fixture(scope="module")
def portal():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = SOCKETS + 1_000  # the attacker's sockets, the person's, and the portal's own (it inherits it)
    require(hard == resource.RLIM_INFINITY or hard >= wanted, f"RLIMIT_NOFILE's hard limit {hard} < {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    live = LivePortal(PORTAL_HEADER_TIMEOUT=str(HEADER_TIMEOUT), PORTAL_BODY_TIMEOUT=str(HEADER_TIMEOUT))
    try:
        yield live.prepare().start()
    finally:
        live.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Trickler(threading.Thread):
    """``count`` connections from ATTACKER, each sending the next byte of a request whose header never
    ends every ``every`` s (well under the 30 s silence timeout). A connection the server closes is
    opened again at the next round, as an attacker keeps up the pressure; the status lines the server
    answered are kept."""

    HEAD = b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "

    def __init__(self, port: int, count: int, every: float):
        super().__init__(daemon=True)
        self.port, self.count, self.every = port, count, every
        self.stop, self.opened, self.answers = threading.Event(), 0, []

    def _open(self) -> socket.socket:
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", self.port))  # EINPROGRESS: never waits on a full accept queue
        self.opened += 1
        return sock

    def _still_open(self, sock: socket.socket) -> bool:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return True  # nothing from the server: the connection is held
        except OSError:
            return False
        if data:
            self.answers.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
        return False

    def run(self) -> None:
        socks = [self._open() for _ in range(self.count)]
        sent = [0] * self.count
        while not self.stop.wait(self.every):
            for i, sock in enumerate(socks):
                if self._still_open(sock):
                    byte = self.HEAD[sent[i] : sent[i] + 1] or b"a"
                    try:
                        sent[i] += sock.send(byte)
                        continue
                    except BlockingIOError:
                        continue  # still connecting
                    except OSError:
                        pass
                sock.close()
                socks[i], sent[i] = self._open(), 0
        for sock in socks:
            sock.close()


def _trickle_until_answered(sock: socket.socket, data: bytes, seconds: float) -> bytes:
    """Sends ``data`` a byte every 0.5 s until the server answers (or ``seconds`` pass); the answer.
    Reads before each byte, so a server's answer is seen before a write to a closed socket resets it;
    and stops sending shortly before the server's deadline (still well inside any silence timeout):
    a byte that reaches a socket the server has just closed draws a reset, and a reset makes the
    kernel drop the 408 the client has not read yet."""
    started = time.monotonic()
    deadline = started + seconds
    quiet_from = started + HEADER_TIMEOUT - 0.7
    for byte in data:
        if time.monotonic() > quiet_from:
            break
        if select.select([sock], [], [], 0.5)[0]:
            return sock.recv(4096)
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
    left = max(0.0, deadline - time.monotonic())
    return sock.recv(4096) if select.select([sock], [], [], left)[0] else b""


def _timed(conn: http.client.HTTPConnection, method: str, path: str, **kwargs):
    started = time.monotonic()
    conn.request(method, path, **kwargs)
    response = conn.getresponse()
    body = response.read()
    return time.monotonic() - started, response, body


def person_visits(portal: LivePortal) -> list[tuple[str, int, float]]:
    """From PERSON on a fresh connection: the login page, a login, two dashboard pages.
    Each step as (what, status, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=30, source_address=(PERSON, 0))
    steps = []
    try:
        started = time.monotonic()
        conn.connect()
        elapsed, response, body = _timed(conn, "GET", "/accounts/login/")
        steps.append(("login page", response.status, time.monotonic() - started))
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
        cookie = re.search(r"csrftoken=([^;]+)", response.getheader("Set-Cookie", "")).group(1)
        form = urllib.parse.urlencode({"username": "owner", "password": "pw-owner-123", "csrfmiddlewaretoken": token})
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={cookie}"}
        elapsed, response, _ = _timed(conn, "POST", "/accounts/login/", body=form, headers=headers)
        steps.append(("log in", response.status, elapsed))
        session = re.search(r"sessionid=([^;]+)", response.getheader("Set-Cookie", "")).group(1)
        cookies = {"Cookie": f"csrftoken={cookie}; sessionid={session}"}
        for tab in ("overview", "traces"):
            elapsed, response, _ = _timed(conn, "GET", f"/admin/monitoring/{portal.project_id}/{tab}/", headers=cookies)
            steps.append((tab, response.status, elapsed))
    finally:
        conn.close()
    return steps


def test_it_serves_a_person_within_a_second_while_one_address_trickles_on_2000_connections(portal):
    """A visit from another address during the attack: connecting and the login page within a second,
    and no step a second slower than with no attack (medians of several visits: this machine is
    shared, and the login's password hash alone, ~0.4 s of CPU on an idle core, takes 0.5-1.5 s
    here when other work runs). Every step of every visit answered within 5 s. Before the per-address
    limit no visit was answered at all (30 s)."""
    person_visits(portal)  # warm: the first page of a process loads code and opens the engine
    calm = [person_visits(portal) for _ in range(3)]
    attacker = Trickler(portal.port, SOCKETS, every=2.0)
    attacker.start()
    try:
        time.sleep(2 * HEADER_TIMEOUT)  # connections held, trickling, cut at their deadline and opened again
        visits = [person_visits(portal) for _ in range(5)]
        exporter = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=5, source_address=(PERSON, 0))
        headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {portal.ingest_key}"}
        body = request(S("during-attack")).SerializeToString()
        export = _timed(exporter, "POST", "/v1/traces", body=body, headers=headers)
        exporter.close()
    finally:
        attacker.stop.set()
        attacker.join(30)
    assert export[1].status == 200 and export[0] < 1.0, export
    for steps in visits:
        assert [status for _, status, _ in steps] == [200, 302, 200, 200], steps
        assert max(seconds for _, _, seconds in steps) < 5.0, steps

    def medians(runs):
        return [statistics.median(run[i][2] for run in runs) for i in range(len(runs[0]))]

    attacked, unattacked = medians(visits), medians(calm)
    assert attacked[0] < 1.0, visits  # connected and answered the login page
    assert all(a < u + 1.0 for a, u in zip(attacked, unattacked, strict=True)), (visits, calm)
    # the server turned the attacker's surplus away at once and cut the held ones at their deadline
    assert any(" 429 " in line for line in attacker.answers), attacker.answers[:5]
    assert any(" 408 " in line for line in attacker.answers), attacker.answers[:5]


def test_a_request_must_arrive_by_its_deadline_however_it_trickles(portal):
    with socket.create_connection(("127.0.0.1", portal.port), timeout=5) as sock:
        started = time.monotonic()
        answer = _trickle_until_answered(sock, Trickler.HEAD + b"a" * 100, HEADER_TIMEOUT + 5)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer  # never silent, yet cut at the header deadline
    assert HEADER_TIMEOUT - 0.5 < elapsed < HEADER_TIMEOUT + 2.5, elapsed


def test_a_body_must_arrive_by_its_deadline(portal):
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
        f"Authorization: Bearer {portal.ingest_key}\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", portal.port), timeout=5) as sock:
        sock.sendall(head.encode())
        started = time.monotonic()
        answer = _trickle_until_answered(sock, b"x" * 1000, HEADER_TIMEOUT + 5)  # 2 bytes/s of 1000
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert HEADER_TIMEOUT - 0.5 < elapsed < HEADER_TIMEOUT + 2.5, elapsed


def test_the_benchmarks_24_connections_from_one_address_are_all_served(portal):
    """bench/ingest.py: 20 dashboard users and 4 exporters at once, all from 127.0.0.1, kept alive."""
    conns = [http.client.HTTPConnection("127.0.0.1", portal.port, timeout=30) for _ in range(24)]
    body = request(S("bench")).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {portal.ingest_key}"}
    try:
        for _ in range(2):  # every connection used twice
            for i, conn in enumerate(conns):  # all 24 requests sent before any answer is read
                if i < 4:
                    conn.request("POST", "/v1/traces", body=body, headers=headers)
                else:
                    conn.request("GET", "/accounts/login/")
            statuses = []
            for conn in conns:
                response = conn.getresponse()
                response.read()
                statuses.append(response.status)
            assert statuses == [200] * 24
    finally:
        for conn in conns:
            conn.close()


def test_an_ipv6_client_counts_by_its_64_prefix():
    from monitoring.serving import client_key

    # one subscriber gets a /64 (RFC 6177): rotating addresses inside it buys no more connections
    assert client_key("2001:db8:1:2::5") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::5") != client_key("2001:db8:1:2::5")
    assert client_key("::ffff:192.0.2.7") == client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("192.0.2.7") != client_key("192.0.2.8")
