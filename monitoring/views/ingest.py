"""POST /v1/traces: the OTLP/HTTP receiver (OTEL.md §3). A project ingest key decides the project."""

from __future__ import annotations

import logging

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from monitoring import clickhouse, ingest, schema
from monitoring.access import guarded_by
from monitoring.models import IngestKey

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


def _presented_key(request) -> str:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        return secret.strip()
    return request.headers.get("X-Api-Key", "").strip()


def _status(content_type: str, code: int, message: str, **headers) -> HttpResponse:
    body, body_type = ingest.status_body(content_type, code, message)
    response = HttpResponse(body, status=code, content_type=body_type)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


@guarded_by("ingest_key")
@csrf_exempt
@require_POST
def otlp_traces(request):
    content_type = request.content_type or ""
    key = IngestKey.find(_presented_key(request))
    if key is None:
        return _status(content_type, 401, "missing or invalid ingest key", WWW_Authenticate='Bearer realm="otlp"')
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > ingest.MAX_BODY_BYTES:
        return _status(content_type, 413, f"body larger than {ingest.MAX_BODY_BYTES} bytes")
    body = request.read(ingest.MAX_BODY_BYTES + 1)
    if len(body) > ingest.MAX_BODY_BYTES:
        return _status(content_type, 413, f"body larger than {ingest.MAX_BODY_BYTES} bytes")
    try:
        export = ingest.decode_request(body, content_type, request.headers.get("Content-Encoding"))
        result = ingest.rows_from_request(export, str(key.project_id))
    except ingest.IngestError as exc:
        return _status(content_type, exc.status, exc.message)
    try:
        clickhouse.insert(
            schema.table(), schema.TRACE_COLUMNS, result.rows, tag="ingest.spans", nanos_columns=schema.NANOS_COLUMNS
        )
    except clickhouse.ClickHouseError as exc:
        # 503 + Retry-After makes exporters and collectors keep the batch and try again.
        log.error("OTLP batch of %d spans not stored (%s): %s", len(result.rows), exc.kind, exc)
        return _status(content_type, 503, "span storage unavailable, retry later", Retry_After=str(RETRY_AFTER_SECONDS))
    key.touch()
    out_type = ingest.JSON_CONTENT_TYPE if "json" in content_type else ingest.PROTOBUF_CONTENT_TYPE
    return HttpResponse(
        ingest.encode_response(content_type, result.rejected, result.error_message), content_type=out_type
    )
