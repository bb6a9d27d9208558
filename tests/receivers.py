"""Real servers for the monitors' tests, on loopback: an HTTP receiver (Slack / webhook) and an
SMTP server (aiosmtpd). Each records what it received; both stop when the test ends."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes


@dataclass
class HttpReceiver:
    """Requests (any method) land in `received`; `status` is what it answers (set 500 to play a dead
    channel; a 3xx with `location` plays a redirect). `sni` holds the TLS server names asked for."""

    status: int = 200
    location: str = ""
    received: list[Received] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    scheme: str = "http"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"


@contextlib.contextmanager
def http_receiver(status: int = 200, location: str = "", tls: ssl.SSLContext | None = None):
    """A receiver on 127.0.0.1 (port chosen by the system); `tls`: a server context, then HTTPS."""
    state = HttpReceiver(status=status, location=location, scheme="https" if tls else "http")

    class Handler(BaseHTTPRequestHandler):
        def _record(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            state.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok" if state.status < 300 else b"no")

        do_POST = do_GET = do_PUT = do_HEAD = _record

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        tls.sni_callback = lambda sock, name, ctx: state.sni.append(name)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def smtp_server(delay: float = 0.0):
    """An aiosmtpd server; yields (port, messages) with messages as email.message.EmailMessage.
    `delay`: seconds it takes to accept each message (a slow server keeps a send in flight)."""
    import asyncio

    from aiosmtpd.controller import Controller

    messages = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            await asyncio.sleep(delay)
            msg = message_from_bytes(envelope.content, policy=policy.default)
            msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
            messages.append(msg)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, messages
    finally:
        controller.stop()


def dead_url() -> str:
    """An http URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/hook"
