"""OTLP/HTTP log ingest: an ExportLogsServiceRequest -> rows identical to the collector's ClickHouse
exporter (collector-contrib ``exporter/clickhouseexporter``, ``exporter_logs.go`` and its logs table),
keyed by ``monitoring.store.schema.LOG_COLUMNS``.

GenAI instrumentations send their events here since OpenTelemetry deprecated the Span Events API
(2026): ``gen_ai.client.inference.operation.details`` (the chat), the per-message events, and
``gen_ai.evaluation.result`` (scores), correlated to their span by the record's trace and span id.

The exporter's rules, as ``pushLogsData`` writes a record:
- ``Timestamp`` = the record's time, else its observed time (``Timestamp == 0``);
- ids as lowercase hex, '' when absent or all-zero; ``TraceFlags`` = the record's flags (low byte);
- ``ServiceName`` = the resource's ``service.name``; ``Body`` = pdata ``Value.AsString`` of the body
  (a map or array as compact JSON, as attribute values are: monitoring/ingest/otlp.py);
- resource and scope schema URLs, scope name, version and attributes as they came;
- ``EventName`` = ``LogRecord.event_name`` (the newer exporters' optional column).
Deliberate differences, as for spans: ``ResourceAttributes['project_id']`` is forced to the ingest
key's project, and a record that cannot be stored (an id of the wrong length, a time past
2106-02-07, the table's 32-bit ``TimestampTime``) is rejected alone and reported in
``partialSuccess.rejectedLogRecords`` instead of failing the whole request.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from monitoring.ingest import otlp

_SEVERITY_MAX = 255  # SeverityNumber UInt8; the spec's numbers are 0-24


def decode_request(body: bytes, content_type: str, content_encoding: str | None) -> ExportLogsServiceRequest:
    """Parse an OTLP/HTTP logs export body (protobuf or JSON, optionally gzipped).

    Text that is not UTF-8 is stored with U+FFFD in its place, as in spans (``otlp.parse_protobuf``,
    ``otlp._load_json``). Raises otlp.IngestError (400 undecodable, 413 too large, 415 unsupported
    type or encoding)."""
    media_type, body = otlp._checked_body(body, content_type, content_encoding)
    if media_type == otlp.JSON_CONTENT_TYPE:
        doc = otlp._load_json(body)
        _hex_ids_to_base64(doc)
        try:
            return json_format.ParseDict(doc, ExportLogsServiceRequest(), ignore_unknown_fields=True)
        except Exception as exc:  # ParseError, OverflowError, TypeError...: all the body's fault
            raise otlp.IngestError(400, f"invalid OTLP JSON: {exc}") from None
    return otlp.parse_protobuf(body, ExportLogsServiceRequest)  # text that is not UTF-8: U+FFFD, as for spans


def _hex_ids_to_base64(doc: dict[str, Any]) -> None:
    """OTLP JSON writes a record's traceId/spanId as hex; protobuf's JSON mapping wants base64."""
    for resource_logs in otlp._dicts(doc, "resourceLogs", "resource_logs"):
        for scope_logs in otlp._dicts(resource_logs, "scopeLogs", "scope_logs"):
            for record in otlp._dicts(scope_logs, "logRecords", "log_records"):
                otlp._convert_ids(record, "traceId", "trace_id", "spanId", "span_id")


def rows_from_body(body: bytes, content_type: str, content_encoding: str | None, project_id: str) -> otlp.SpanRows:
    """The receiver's whole job before storage: body -> rows (otlp.IngestError for a bad body).
    ``SpanRows.rejected`` counts log records here."""
    return rows_from_request(decode_request(body, content_type, content_encoding), project_id)


def rows_from_request(req: ExportLogsServiceRequest, project_id: str) -> otlp.SpanRows:
    """One row per storable log record, keyed by ``schema.LOG_COLUMNS``; the others are counted."""
    rows: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    for resource_logs in req.resource_logs:
        resource_attrs = otlp.attributes_to_map(resource_logs.resource.attributes)
        service_name = resource_attrs.get("service.name", "")
        resource_attrs["project_id"] = project_id
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            shared = {
                "ServiceName": service_name,
                "ResourceSchemaUrl": resource_logs.schema_url,
                "ResourceAttributes": resource_attrs,
                "ScopeSchemaUrl": scope_logs.schema_url,
                "ScopeName": scope.name,
                "ScopeVersion": scope.version,
                "ScopeAttributes": otlp.attributes_to_map(scope.attributes),
            }
            for record in scope_logs.log_records:
                try:
                    rows.append(_log_row(record, shared))
                except otlp._RejectedSpan as exc:
                    reasons[exc.reason] += 1
    rejected = sum(reasons.values())
    message = ""
    if rejected:
        details = ", ".join(f"{count} with {reason}" for reason, count in sorted(reasons.items()))
        message = f"{rejected} log record(s) rejected: {details}"
    return otlp.SpanRows(rows, rejected, message, dict(reasons))


def _log_row(record: LogRecord, shared: dict[str, Any]) -> dict[str, Any]:
    timestamp = record.time_unix_nano or record.observed_time_unix_nano
    if timestamp > otlp.DATETIME32_MAX_NANOS:
        raise otlp._RejectedSpan("time after 2106-02-07 06:28:15 UTC")
    return {
        "Timestamp": timestamp,
        "TraceId": otlp._optional_id(record.trace_id, otlp._TRACE_ID_BYTES, "trace id"),
        "SpanId": otlp._optional_id(record.span_id, otlp._SPAN_ID_BYTES, "span id"),
        "TraceFlags": record.flags & 0xFF,
        "SeverityText": record.severity_text,
        "SeverityNumber": min(max(record.severity_number, 0), _SEVERITY_MAX),
        "ServiceName": shared["ServiceName"],
        "Body": otlp.value_to_string(record.body),
        "ResourceSchemaUrl": shared["ResourceSchemaUrl"],
        "ResourceAttributes": dict(shared["ResourceAttributes"]),
        "ScopeSchemaUrl": shared["ScopeSchemaUrl"],
        "ScopeName": shared["ScopeName"],
        "ScopeVersion": shared["ScopeVersion"],
        "ScopeAttributes": dict(shared["ScopeAttributes"]),
        "LogAttributes": otlp.attributes_to_map(record.attributes),
        "EventName": record.event_name,
    }


def encode_response(content_type: str, rejected: int = 0, error_message: str = "") -> bytes:
    """ExportLogsServiceResponse in the request's encoding; partialSuccess only when needed."""
    response = ExportLogsServiceResponse()
    if rejected > 0 or error_message:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = otlp._wire_text(error_message)
    return otlp._serialize(response, otlp._is_json(content_type))
