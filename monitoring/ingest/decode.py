"""An OTLP/HTTP trace export body to rows: the protobuf path (monitoring/ingest/otlp.py) or, for
OTLP/JSON in the shapes SDKs write, the fast JSON path (monitoring/ingest/otlp_json.py), which
falls back to protobuf's JSON parser for anything else. It sits above both, so neither imports
the other's caller."""

from __future__ import annotations

from monitoring.ingest import otlp, otlp_json


def rows_from_body(
    body: bytes,
    content_type: str,
    content_encoding: str | None,
    project_id: str,
    rules: otlp.Rules = otlp.AS_SENT,
) -> otlp.SpanRows:
    """The receiver's whole job before storage: request body -> rows (otlp.IngestError for a bad body).

    `rules` are the receiver's (otlp.Rules: the start times the tables keep, what one span may
    hold). Same result as ``otlp.rows_from_request(otlp.decode_request(...), project_id, rules)``;
    OTLP/JSON in the shapes SDKs write skips protobuf's slow JSON parser
    (monitoring.ingest.otlp_json), anything else takes it.
    """
    media_type, body = otlp._checked_body(body, content_type, content_encoding)
    if media_type == otlp.PROTOBUF_CONTENT_TYPE:
        return otlp.rows_from_request(otlp.parse_protobuf(body, otlp.ExportTraceServiceRequest), project_id, rules)
    doc = otlp._load_json(body)
    try:
        return otlp_json.rows_from_json(doc, project_id, rules)
    except otlp_json.NotCanonical:
        return otlp.rows_from_request(otlp._request_from_json(doc), project_id, rules)
    except RecursionError:  # a deeply nested attribute value
        return otlp.rows_from_request(otlp._request_from_json(doc), project_id, rules)
