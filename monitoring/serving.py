"""The embedded-mode web server: waitress, one process, with a task queue that keeps ingest flowing.

    python -m monitoring.serving        (config/serve.sh runs it; settings from the environment)

Why waitress: the chdb data folder opens in ONE process, so embedded mode is one process with
threads. Waitress reads each request — body included — in its event loop, and only a complete
request is queued for a thread: a sender that declares a body and stalls holds a socket (closed
after PORTAL_CHANNEL_TIMEOUT s of silence), never a thread.

Why :class:`PortalServer` (issue 22): sockets are not free either. One address trickling a byte
every few seconds on 1,100 connections held waitress' whole PORTAL_CONNECTION_LIMIT, and nobody
else was answered. So
- one client address holds at most PORTAL_CONNECTIONS_PER_ADDRESS connections (an IPv6 client
  counts by its /64, the prefix one subscriber gets); more are answered 429 and closed at once;
- a request has a deadline, not only a silence timeout (Apache's mod_reqtimeout model): its request
  line and headers within PORTAL_HEADER_TIMEOUT s of its first byte (of the connection, for the
  first request), its body within PORTAL_BODY_TIMEOUT s of the headers plus one second per
  PORTAL_BODY_MIN_RATE bytes declared; past it, 408 and closed.
The defaults leave the benchmarks' 20 dashboard users and 4 exporters from one address (24
connections) untouched, and a 20 MiB export at 64 KiB/s still arrives.

Why a queue of our own (:class:`IngestFirstDispatcher`): waitress serves its queue first come,
first served. With 20 people loading dashboard tabs (each 0.2-3 s of ClickHouse work on 2 cores),
an OTLP export waited behind all of them and ingest fell to a few hundred spans/s. Here
- ``POST /v1/traces`` goes to the front of the queue (an export is short and its sender is a
  program with a timeout);
- dashboard pages and the read API ("heavy": they run ClickHouse queries that use every core) run
  at most PORTAL_DASHBOARD_CONCURRENCY at a time (default 3); the others wait in the queue without
  holding a thread, so a thread is always free for ingest, logins and static files.

Environment: BIND (host:port, default 0.0.0.0:$PORT), PORT (3009), PORTAL_THREADS (8),
PORTAL_CHANNEL_TIMEOUT (30 s), PORTAL_CONNECTION_LIMIT (1000), PORTAL_DASHBOARD_CONCURRENCY (3),
PORTAL_CONNECTIONS_PER_ADDRESS (100; 0: no limit), PORTAL_HEADER_TIMEOUT (20 s),
PORTAL_BODY_TIMEOUT (20 s), PORTAL_BODY_MIN_RATE (65536 bytes/s).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import os
import socket
import sys
import threading
import time
from collections import Counter

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

logger = logging.getLogger("waitress")

INGEST_PATH = "/v1/traces"
HEAVY_PREFIXES = ("/admin/monitoring", "/api/")
MAX_REQUEST_BODY_BYTES = 21 * 1024 * 1024  # the OTLP limit (20 MiB) and some headroom


def _path(task) -> str:
    request = getattr(task, "request", None)
    return getattr(request, "path", "") or ""


class IngestFirstDispatcher(ThreadedTaskDispatcher):
    """waitress' ThreadedTaskDispatcher with ingest first and a cap on concurrent dashboard work."""

    def __init__(self, heavy_limit: int):
        super().__init__()
        self.heavy_limit = max(1, heavy_limit)
        self.heavy_active = 0

    @staticmethod
    def is_heavy(task) -> bool:
        return _path(task).startswith(HEAVY_PREFIXES)

    def add_task(self, task):
        with self.lock:
            if _path(task) == INGEST_PATH:
                self.queue.appendleft(task)
            else:
                self.queue.append(task)
            self.queue_cv.notify()

    def _next_task(self):
        """The first task that may run now (lock held), or None."""
        for index, task in enumerate(self.queue):
            if not self.is_heavy(task) or self.heavy_active < self.heavy_limit:
                del self.queue[index]
                return task
        return None

    def handler_thread(self, thread_no):
        # waitress 3.0's loop, picking with _next_task instead of popleft.
        while True:
            with self.lock:
                task = self._next_task()
                while task is None and self.stop_count == 0:
                    self.active_count -= 1
                    self.queue_cv.wait()
                    self.active_count += 1
                    task = self._next_task()
                if self.stop_count > 0:
                    if task is not None:
                        self.queue.appendleft(task)
                    self.active_count -= 1
                    self.stop_count -= 1
                    self.threads.discard(thread_no)
                    self.thread_exit_cv.notify()
                    break
                heavy = self.is_heavy(task)
                if heavy:
                    self.heavy_active += 1
            try:
                task.service()
            except BaseException:
                self.logger.exception("Exception when servicing %r", task)
            finally:
                if heavy:
                    with self.lock:
                        self.heavy_active -= 1
                        self.queue_cv.notify_all()  # a waiting dashboard task may run now


def client_key(host: str) -> str:
    """What PORTAL_CONNECTIONS_PER_ADDRESS counts a connection against: the IPv4 address, or the
    IPv6 /64 (one subscriber's usual allocation, RFC 6177), so that rotating through the addresses of
    one's own prefix does not buy more connections. IPv4-mapped IPv6 counts as the IPv4 address."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _plain_response(status: str, text: str, *extra_headers: str) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, written by the event loop itself."""
    body = (text + "\n").encode("utf-8")
    head = [
        f"HTTP/1.1 {status}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *extra_headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


@dataclasses.dataclass
class ServingLimits:
    """What one client may hold (see the module's docstring). Times in seconds, rates in bytes/s;
    a connections limit of 0 means none. The answers are whole HTTP responses, in the portal's
    LANGUAGE_CODE (no request has been read when they are sent)."""

    connections_per_address: int = 100
    header_timeout: float = 20.0
    body_timeout: float = 20.0
    body_min_rate: float = 65536.0
    too_many_connections: bytes = _plain_response("429 Too Many Requests", "Too many connections", "Retry-After: 5")
    request_timeout: bytes = _plain_response("408 Request Timeout", "Request timeout")


class ClientConnections:
    """Open connections per client key, shared by every listening socket of the server."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open: Counter[str] = Counter()
        self.full: set[str] = set()  # clients at the limit, each logged once until it drops below
        self.lock = threading.Lock()  # a connection may be closed from a task's thread

    def take(self, key: str) -> bool:
        with self.lock:
            if self.limit and self.open[key] >= self.limit:
                if key not in self.full:
                    self.full.add(key)
                    logger.warning("%s holds %d connections, the limit: more are answered 429", key, self.limit)
                return False
            self.open[key] += 1
            return True

    def give_back(self, key: str) -> None:
        with self.lock:
            self.open[key] -= 1
            if self.open[key] < self.limit:
                self.full.discard(key)
            if self.open[key] <= 0:
                del self.open[key]


class PortalChannel(HTTPChannel):
    """waitress' channel that knows when the request it is receiving started, for its deadline."""

    server: PortalServer

    def __init__(self, server, sock, addr, adj, map=None):
        self.client = client_key(addr[0])
        self.counted = True  # the server took this connection from the client's budget
        # A connection is open for a request: its first one's clock starts now, not at its first byte.
        self.request_started: float | None = time.monotonic()
        self.headers_received: float | None = None
        self.request_bytes = 0
        super().__init__(server, sock, addr, adj, map)

    def received(self, data):
        now = time.monotonic()
        if self.request_started is None:
            self.request_started, self.request_bytes = now, 0
        self.request_bytes += len(data)
        result = super().received(data)
        if self.request is None:  # the request is whole (or it was the end of one): no clock
            self.request_started = self.headers_received = None
        elif self.request.headers_finished and self.headers_received is None:
            self.headers_received = now
        return result

    def deadline(self) -> float | None:
        """When the request being received must be whole (time.monotonic()), or None."""
        if self.request_started is None or self.requests:  # idle, or answering: other timeouts apply
            return None
        limits = self.server.limits
        request = self.request
        if request is None or not request.headers_finished or self.headers_received is None:
            return self.request_started + limits.header_timeout
        # The declared length; a chunked body (no length) earns its time as it arrives.
        size = max(request.content_length, self.request_bytes)
        return self.headers_received + limits.body_timeout + size / limits.body_min_rate

    def del_channel(self, map=None):
        super().del_channel(map)
        if self.counted:
            self.counted = False
            self.server.connections.give_back(self.client)


class PortalServer(TcpWSGIServer):
    """waitress' TCP server with a budget of connections per client address and request deadlines."""

    channel_class = PortalChannel
    accepts_per_turn = 64  # a burst of connections is taken (or turned away) in one turn of the loop

    def __init__(self, application, map, *, limits: ServingLimits, connections: ClientConnections, **kwargs):
        self.limits = limits
        self.connections = connections
        super().__init__(application, map, **kwargs)

    def handle_accept(self):
        for _ in range(self.accepts_per_turn):
            try:
                pair = self.accept()
                if pair is None:
                    return
                conn, addr = pair
                self.set_socket_options(conn)
            except OSError:
                if self.adj.log_socket_errors:
                    self.logger.warning("server accept() threw an exception", exc_info=True)
                return
            addr = self.fix_addr(addr)
            if self.connections.take(client_key(addr[0])):
                self.channel_class(self, conn, addr, self.adj, map=self._map)
            else:
                self._turn_away(conn)

    def _turn_away(self, conn: socket.socket) -> None:
        """429 and close, before reading anything: it costs the server one write."""
        try:
            conn.setblocking(False)
            conn.send(self.limits.too_many_connections)
        except OSError:
            pass
        finally:
            conn.close()

    def maintenance(self, now):
        super().maintenance(now)
        monotonic = time.monotonic()
        late = [
            channel
            for channel in list(self.active_channels.values())
            if isinstance(channel, PortalChannel) and (due := channel.deadline()) is not None and due < monotonic
        ]
        for channel in late:
            if channel.request is not None and channel.socket is not None:  # a request began: say why it ends
                try:
                    channel.socket.send(self.limits.request_timeout)
                except OSError:
                    pass
            channel.handle_close()


def build_server(application, dispatcher, limits: ServingLimits, **adjustments) -> PortalServer | MultiSocketServer:
    """waitress.create_server for TCP listeners, with :class:`PortalServer` on each: one budget of
    connections per client address across all of them. Deadlines are checked every second."""
    adj = Adjustments(cleanup_interval=1, **adjustments)
    socket_map: dict = {}
    connections = ClientConnections(limits.connections_per_address)
    servers = [
        PortalServer(
            application,
            socket_map,
            limits=limits,
            connections=connections,
            dispatcher=dispatcher,
            adj=adj,
            sockinfo=sockinfo,
        )
        for sockinfo in adj.listen
    ]
    if len(servers) == 1:
        return servers[0]
    listening = [(server.effective_host, server.effective_port) for server in servers]
    return MultiSocketServer(socket_map, adj, listening, dispatcher, servers[0].log_info)


def _env_number(name: str, default: float, *, minimum: float = 0) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        sys.exit(f"monitoring.serving: {name} must be a number, not {raw!r}")
    if math.isnan(value) or value < minimum:
        sys.exit(f"monitoring.serving: {name} must be at least {minimum}, not {raw!r}")
    return value


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        sys.exit(f"monitoring.serving: {name} must be an integer, not {raw!r}")
    if value < minimum:
        sys.exit(f"monitoring.serving: {name} must be at least {minimum}, not {raw!r}")
    return value


def limits_from_environment() -> ServingLimits:
    """ServingLimits from PORTAL_CONNECTIONS_PER_ADDRESS, PORTAL_HEADER_TIMEOUT, PORTAL_BODY_TIMEOUT
    and PORTAL_BODY_MIN_RATE, its answers in settings.LANGUAGE_CODE (Django set up)."""
    from django.conf import settings
    from django.utils import translation
    from django.utils.translation import gettext as _

    with translation.override(settings.LANGUAGE_CODE):
        too_many = _("Too many connections from your address at once: close some, then try again.")
        too_slow = _("The request did not arrive in time: send it again.")
    return ServingLimits(
        connections_per_address=_env_int("PORTAL_CONNECTIONS_PER_ADDRESS", 100),
        header_timeout=_env_number("PORTAL_HEADER_TIMEOUT", 20, minimum=1),
        body_timeout=_env_number("PORTAL_BODY_TIMEOUT", 20, minimum=1),
        body_min_rate=_env_number("PORTAL_BODY_MIN_RATE", 65536, minimum=1),
        too_many_connections=_plain_response("429 Too Many Requests", too_many, "Retry-After: 5"),
        request_timeout=_plain_response("408 Request Timeout", too_slow),
    )


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from portal.wsgi import application

    threads = _env_int("PORTAL_THREADS", 8, minimum=1)
    dispatcher = IngestFirstDispatcher(_env_int("PORTAL_DASHBOARD_CONCURRENCY", 3, minimum=1))
    dispatcher.set_thread_count(threads)  # waitress does this only for a dispatcher of its own
    limits = limits_from_environment()
    server = build_server(
        application,
        dispatcher,
        limits,
        listen=os.environ.get("BIND") or f"0.0.0.0:{_env_int('PORT', 3009)}",
        threads=threads,
        channel_timeout=_env_int("PORTAL_CHANNEL_TIMEOUT", 30, minimum=1),
        connection_limit=_env_int("PORTAL_CONNECTION_LIMIT", 1000, minimum=1),
        max_request_body_size=MAX_REQUEST_BODY_BYTES,
        asyncore_use_poll=True,
        ident="portal",
    )
    server.print_listen("portal: embedded mode (chdb, one process), waitress on http://{}:{}")
    per_address = limits.connections_per_address or "unlimited"
    print(
        f"portal: {threads} threads, ingest first; {per_address} connections per client address,"
        f" request deadlines {limits.header_timeout:g} s (headers) / {limits.body_timeout:g} s"
        f" + 1 s per {limits.body_min_rate:g} bytes (body)",
        flush=True,
    )
    server.run()


if __name__ == "__main__":
    main()
