"""Maintenance while the portal runs in embedded mode.

The embedded engine's data folder opens in one OS process only (ClickHouse locks `<folder>/status`
with flock): while the portal serves, `manage.py` commands in another process cannot open it. So a
command first asks whether a running portal holds the folder (`holder()`), and if so it goes
through that portal instead of opening the folder:

- spans (demo_traces) go to the portal's own OTLP receiver, `POST /v1/traces`, with a temporary
  ingest key (the same path a real exporter takes);
- schema, retention and the partition listing (clickhouse_init, clickhouse_retention,
  clickhouse_status) go to `POST /admin/monitoring/maintenance`, which accepts only the local
  maintenance key: a secret in `<PORTAL_VAR_DIR>/maintenance.key` (0600), readable by whoever may
  read the data folder itself, so it grants nothing new.

The portal's address: PORTAL_URL, else the one bin/demo recorded in `<PORTAL_VAR_DIR>/portal_url`
(demo_setup writes it from BIND just before the server starts), else BIND, else 127.0.0.1:3009.
"""

from __future__ import annotations

import fcntl
import hmac
import json
import os
import secrets
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from monitoring.store import clickhouse

if TYPE_CHECKING:
    from monitoring.models import IngestKey

KEY_FILE = "maintenance.key"
URL_FILE = "portal_url"
DEFAULT_BIND = "127.0.0.1:3009"
TIMEOUT_SECONDS = 120.0


class PortalUnreachable(Exception):
    """The folder is held, but the portal holding it did not answer at the expected address."""


@dataclass(frozen=True)
class Holder:
    pid: int  # the process that holds the folder (0 when its status file does not say)
    folder: str


def holder() -> Holder | None:
    """The other process that has the embedded data folder open, or None (server mode, a free
    folder, or this very process holding it)."""
    if not clickhouse.is_embedded():
        return None
    folder = settings.CLICKHOUSE["DATA_DIR"]
    status = Path(folder) / "status"
    if not status.exists():
        return None
    fd = os.open(status, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _pid_in(status)
            return None if pid == os.getpid() else Holder(pid, folder)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _pid_in(status: Path) -> int:
    """ClickHouse writes `PID: <n>` as the status file's first line."""
    try:
        for line in status.read_text(errors="replace").splitlines():
            if line.startswith("PID:"):
                return int(line.split(":", 1)[1].strip())
    except (OSError, ValueError):
        pass
    return 0


# --- where the portal listens ---------------------------------------------------------------------


def urls_for_bind(bind: str) -> list[str]:
    """The addresses a browser can use for a gunicorn `--bind` value, the first one the best.

    "127.0.0.1:3009" -> ["http://127.0.0.1:3009"]; "0.0.0.0:3009" (every interface) -> this machine's
    loopback and its host name; "[::]:3009" -> "http://[::1]:3009"; "unix:/run/p.sock" -> []."""
    bind = (bind or DEFAULT_BIND).strip()
    if bind.startswith(("unix:", "fd://")):
        return []
    if bind.startswith("["):  # IPv6: [host]:port
        host, _sep, port = bind[1:].partition("]")
        port = port.lstrip(":") or "8000"
        if host in ("::", ""):
            return [f"http://[::1]:{port}", f"http://{socket.gethostname()}:{port}"]
        return [f"http://[{host}]:{port}"]
    host, _sep, port = bind.rpartition(":") if ":" in bind else (bind, "", "8000")
    port = port or "8000"
    if host in ("0.0.0.0", ""):
        return [f"http://127.0.0.1:{port}", f"http://{socket.gethostname()}:{port}"]
    return [f"http://{host}:{port}"]


def portal_url() -> str:
    """Where the running portal answers: PORTAL_URL, else what bin/demo recorded, else BIND's first address."""
    explicit = os.environ.get("PORTAL_URL", "").strip()
    if explicit:
        return explicit.rstrip("/")
    if "BIND" not in os.environ:
        try:
            recorded = (Path(settings.VAR_DIR) / URL_FILE).read_text().strip()
        except OSError:
            recorded = ""
        if recorded:
            return recorded.rstrip("/")
    urls = urls_for_bind(os.environ.get("BIND", DEFAULT_BIND))
    return urls[0] if urls else "http://127.0.0.1:3009"


def record_url(bind: str) -> None:
    """Note where the portal is about to listen (bin/demo), for commands run from another shell."""
    urls = urls_for_bind(bind)
    path = Path(settings.VAR_DIR) / URL_FILE
    if urls:
        path.write_text(urls[0] + "\n")
    else:
        path.unlink(missing_ok=True)


# --- the local maintenance key ---------------------------------------------------------------------


def _key_path() -> Path:
    return Path(settings.VAR_DIR) / KEY_FILE


def local_key() -> str:
    """The local maintenance secret, made on first use (private from its first byte, like SECRET_KEY)."""
    path = _key_path()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def key_matches(header: str) -> bool:
    """Whether `Authorization: Bearer <key>` carries the local maintenance key (which must exist)."""
    scheme, _sep, presented = (header or "").partition(" ")
    path = _key_path()
    if scheme.lower() != "bearer" or not presented.strip() or not path.exists():
        return False
    return hmac.compare_digest(presented.strip().encode(), path.read_text().strip().encode())


# --- asking the portal -------------------------------------------------------------------------------


def _post(url: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise PortalUnreachable(f"{url}: {getattr(exc, 'reason', exc)}") from exc


def ask_portal(operation: str, **arguments) -> dict:
    """Run a maintenance operation ("schema", "partitions", "retention") in the running portal."""
    url = portal_url() + "/admin/monitoring/maintenance"
    status, body = _post(
        url,
        json.dumps({"operation": operation, **arguments}).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {local_key()}"},
    )
    try:
        answer = json.loads(body)
    except ValueError:
        raise PortalUnreachable(f"{url} answered {status} and no maintenance answer: is it this portal?") from None
    if status != 200:
        raise clickhouse.ClickHouseError(
            answer.get("error", f"HTTP {status}"), kind=answer.get("kind", clickhouse.QUERY), tag="maintenance"
        )
    return answer


def post_spans(body: bytes, ingest_key: str) -> int:
    """Send one OTLP/HTTP protobuf request to the portal's receiver; the HTTP status."""
    status, _body = _post(
        portal_url() + "/v1/traces",
        body,
        {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {ingest_key}"},
    )
    return status


def held_message(held: Holder, problem: str = "") -> str:
    """What to do when the folder is held and the portal could not be asked."""
    return (
        f"The embedded ClickHouse data folder {held.folder} is open in the running portal"
        f"{f' (pid {held.pid})' if held.pid else ''}, and only one process can open it. "
        f"This command asks that portal instead, at {portal_url()}"
        f"{f', but: {problem}' if problem else ''}. "
        "Set PORTAL_URL (or BIND, as bin/demo got it) to the portal's address, or stop the portal "
        "(Ctrl-C where bin/demo runs), run the command, and start it again."
    )


class SpansToPortal:
    """Send OTLP requests to the running portal's receiver under a temporary ingest key of the
    project (revoked when done), as a real exporter would; `send` returns the spans sent."""

    def __init__(self, project_id: str):
        self.project_id = project_id
        self.key: IngestKey | None = None

    def __enter__(self) -> SpansToPortal:
        from monitoring.models import IngestKey, Project

        self.key, self.secret = IngestKey.issue(
            Project.objects.get(id=self.project_id), name="maintenance: demo_traces"
        )
        return self

    def __exit__(self, *exc) -> None:
        if self.key is not None:
            self.key.revoke()

    def send(self, body: bytes, held: Holder) -> int:
        from django.core.management.base import CommandError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        try:
            status = post_spans(body, self.secret)
        except PortalUnreachable as exc:
            raise CommandError(held_message(held, str(exc))) from exc
        if status != 200:
            raise CommandError(f"The running portal at {portal_url()} answered {status} to POST /v1/traces.")
        request = ExportTraceServiceRequest.FromString(body)
        return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
