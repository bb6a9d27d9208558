"""POST /v1/traces and /v1/logs: the OTLP/HTTP receivers (OpenTelemetry OTLP/HTTP spec; our rules: docs/otlp.md).
A project ingest key decides the project.

Answers (OTLP/HTTP spec, "Failures"): 200 once every span is stored or durably spooled (with
``partialSuccess`` for spans that cannot be stored); 400 for a body that can never be stored (the
sender must not retry); 503 + Retry-After only for what a retry can cure (ClickHouse unreachable
and the spool full or disabled, the writer overloaded).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from monitoring import prometheus
from monitoring.access import guarded_by
from monitoring.ingest import batcher, decode, logs, otlp
from monitoring.models import IngestKey
from monitoring.store import schema

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
_READ_CHUNK = 1024 * 1024


def _presented_key(request) -> str:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        return secret.strip()
    return request.headers.get("X-Api-Key", "").strip()


def _status(content_type: str, code: int, message: str, **headers) -> HttpResponse:
    prometheus.INGEST_REQUESTS.labels(status=str(code)).inc()
    body, body_type = otlp.status_body(content_type, code, message)
    response = HttpResponse(body, status=code, content_type=body_type)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class _TooLarge(Exception):
    pass


def _read_body(request) -> bytes:
    """The whole request body, at most MAX_BODY_BYTES (else _TooLarge).

    With ``Transfer-Encoding: chunked`` there is no Content-Length, and Django reads such a body as
    empty (WSGIRequest limits its stream to CONTENT_LENGTH, 0 when absent). The WSGI server has
    de-chunked ``wsgi.input`` and ends it at the last chunk (gunicorn sets ``wsgi.input_terminated``,
    waitress sets CONTENT_LENGTH itself), so it is read to its end here, in bounded steps.
    """
    limit = otlp.MAX_BODY_BYTES
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if request.META.get("CONTENT_LENGTH") or not chunked:
        body = request.read(limit + 1)
    else:
        stream = request.environ["wsgi.input"]
        parts, size = [], 0
        while size <= limit:
            part = stream.read(min(_READ_CHUNK, limit + 1 - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
        body = b"".join(parts)
    if len(body) > limit:
        raise _TooLarge
    return body


def _start_window() -> otlp.StartWindow:
    """The start times a span may have to be stored and found now, under the tables' retention.

    A span the TTL would drop at once (older than the retention, or so late that its expiry wraps
    past 2106) is rejected in partialSuccess with the reason, never answered 200 and lost unseen.
    While the writer spools (ClickHouse down), the retention last read is used as it is."""
    retentions = schema.span_retentions(refresh=not batcher.writer().spooling)
    return otlp.StartWindow.for_retentions(retentions, time.time_ns())


@guarded_by("ingest_key")
@csrf_exempt
@require_POST
def otlp_traces(request):
    """POST /v1/traces: an ExportTraceServiceRequest, answered with an ExportTraceServiceResponse."""

    def rows_from_body(body, content_type, content_encoding, project_id):
        # Asked once the key and the body's size are checked: the retention may take a read of the tables.
        rules = otlp.Rules(_start_window(), settings.INGEST["MAX_SPAN_ENTRIES"])
        return decode.rows_from_body(body, content_type, content_encoding, project_id, rules)

    return _receive(request, batcher.SPANS, rows_from_body, otlp.encode_response, "spans")


@guarded_by("ingest_key")
@csrf_exempt
@require_POST
def otlp_logs(request):
    """POST /v1/logs: an ExportLogsServiceRequest (GenAI events as log records), answered with an
    ExportLogsServiceResponse; the same keys, limits, spool and partialSuccess rules as spans."""
    return _receive(request, batcher.LOGS, logs.rows_from_body, logs.encode_response, "log records")


def _receive(request, kind: str, rows_from_body, encode_response, noun: str) -> HttpResponse:
    content_type = request.content_type or ""
    key = IngestKey.find(_presented_key(request))
    if key is None:
        return _status(content_type, 401, "missing or invalid ingest key", WWW_Authenticate='Bearer realm="otlp"')
    too_large = f"body larger than {otlp.MAX_BODY_BYTES} bytes"
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > otlp.MAX_BODY_BYTES:
        return _status(content_type, 413, too_large)
    try:
        body = _read_body(request)
    except _TooLarge:
        return _status(content_type, 413, too_large)
    try:
        result = rows_from_body(body, content_type, request.headers.get("Content-Encoding"), str(key.project_id))
    except otlp.IngestError as exc:
        prometheus.SPANS_REJECTED.labels(reason="request").inc()
        return _status(content_type, exc.status, exc.message)
    counted = kind == batcher.SPANS  # the span counters count spans only
    if result.rejected and counted:
        prometheus.SPANS_REJECTED.labels(reason="span").inc(result.rejected)
    if result.limited:
        log.warning("OTLP: %s", result.error_message)

    outcome = batcher.submit(result.rows, kind)
    if outcome.status in (batcher.UNAVAILABLE, batcher.BUSY):
        # 503 + Retry-After makes exporters and collectors keep the batch and try again.
        log.error("OTLP batch of %d %s refused (%s): %s", len(result.rows), noun, outcome.status, outcome.error_message)
        if counted:
            reason = "spool_full" if outcome.status == batcher.UNAVAILABLE else "busy"
            prometheus.SPANS_REJECTED.labels(reason=reason).inc(len(result.rows))
        return _status(
            content_type, 503, f"{noun} storage unavailable, retry later", Retry_After=str(RETRY_AFTER_SECONDS)
        )
    if counted:
        if outcome.stored:
            prometheus.SPANS_ACCEPTED.labels(outcome="stored").inc(outcome.stored)
        if outcome.spooled:
            prometheus.SPANS_ACCEPTED.labels(outcome="spooled").inc(outcome.spooled)
        if outcome.queued:
            prometheus.SPANS_ACCEPTED.labels(outcome="queued").inc(outcome.queued)
        if outcome.rejected:
            prometheus.SPANS_REJECTED.labels(reason="unstorable").inc(outcome.rejected)
    key.touch()
    rejected = result.rejected + outcome.rejected
    message = "; ".join(m for m in (result.error_message, outcome.error_message) if m)
    prometheus.INGEST_REQUESTS.labels(status="200").inc()
    return HttpResponse(
        encode_response(content_type, rejected, message),
        content_type=otlp.response_content_type(content_type),
    )
