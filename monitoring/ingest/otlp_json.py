"""OTLP/JSON bodies straight to rows, without the detour through protobuf messages.

protobuf's ``json_format.ParseDict`` is pure Python and cost ~0.5 ms a span, 20x the protobuf
decode: OTLP/JSON senders (LiteLLM with ``http/json``, browsers) were 4-5x slower to ingest. This
module walks the parsed JSON of a *canonical* request — the shapes OTel SDKs write (OTLP spec,
"JSON Protobuf Encoding": lowerCamelCase keys, hex ids, integer enums, 64-bit integers as strings
or numbers) — and builds the rows ``monitoring.ingest.otlp.rows_from_request`` would build from the same
request decoded as protobuf. Anything else (proto field names, enum names, unknown fields, bytes
values, NaN as a string, odd types, ...) raises :class:`NotCanonical`, and the caller takes the
exact but slow path (``otlp.decode_request`` + ``rows_from_request``), so the answer for such a
body is exactly what protobuf's JSON parser decides. tests/test_ingest_json.py holds the two paths
to the same rows.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from monitoring.ingest import otlp

_UINT64_MAX = 2**64 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_DIGITS = re.compile(r"-?[0-9]{1,20}")

_REQUEST_KEYS = frozenset({"resourceSpans"})
_RESOURCE_SPANS_KEYS = frozenset({"resource", "scopeSpans", "schemaUrl"})
_RESOURCE_KEYS = frozenset({"attributes", "droppedAttributesCount"})
_SCOPE_SPANS_KEYS = frozenset({"scope", "spans", "schemaUrl"})
_SCOPE_KEYS = frozenset({"name", "version", "attributes", "droppedAttributesCount"})
_SPAN_KEYS = frozenset(
    {
        "traceId",
        "spanId",
        "parentSpanId",
        "traceState",
        "flags",
        "name",
        "kind",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "attributes",
        "droppedAttributesCount",
        "events",
        "droppedEventsCount",
        "links",
        "droppedLinksCount",
        "status",
    }
)
_EVENT_KEYS = frozenset({"timeUnixNano", "name", "attributes", "droppedAttributesCount"})
_LINK_KEYS = frozenset({"traceId", "spanId", "traceState", "attributes", "droppedAttributesCount", "flags"})
_STATUS_KEYS = frozenset({"message", "code"})
_KV_KEYS = frozenset({"key", "value"})
_SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
_STATUS_CODES = ("Unset", "Ok", "Error")


class NotCanonical(Exception):
    """Not a shape this fast path knows: use the exact path."""


def _dict(value: Any, keys: frozenset) -> dict:
    if not isinstance(value, dict) or not keys.issuperset(value):
        raise NotCanonical
    return value


def _list(value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise NotCanonical
    return value


def _str(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise NotCanonical
    return value


def _int(value: Any, low: int, high: int) -> int:
    if value is None:
        return 0
    if type(value) is int:
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        raise NotCanonical
    if not low <= number <= high:
        raise NotCanonical
    return number


def _uint64(value: Any) -> int:
    return _int(value, 0, _UINT64_MAX)


def _enum(value: Any, names: dict[str, int]) -> int:
    """An enum as OTLP/JSON writes it (an integer) or by its proto name, as protobuf accepts it."""
    if value is None:
        return 0
    if isinstance(value, str):
        number = names.get(value)
        if number is None:
            raise NotCanonical  # "2", unknown names: protobuf's rules decide
        return number
    if type(value) is not int or not 0 <= value < 2**31:
        raise NotCanonical
    return value


_SPAN_KIND_NAMES = {
    name: number
    for number, name in enumerate(
        (
            "SPAN_KIND_UNSPECIFIED",
            "SPAN_KIND_INTERNAL",
            "SPAN_KIND_SERVER",
            "SPAN_KIND_CLIENT",
            "SPAN_KIND_PRODUCER",
            "SPAN_KIND_CONSUMER",
        )
    )
}
_STATUS_CODE_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _counts(obj: dict, *keys: str) -> None:
    for key in keys:
        if key in obj:
            _int(obj[key], 0, 2**32 - 1)


def _hex_id(value: Any, size: int, name: str, required: bool) -> str:
    text = _str(value)
    if not otlp.HEX_ID.fullmatch(text):
        raise NotCanonical  # the exact path answers 400 with its message
    if not text:
        if required:
            raise otlp._RejectedSpan(f"missing or all-zero {name}")
        return ""
    if len(text) != 2 * size:
        raise otlp._RejectedSpan(f"invalid {name} length")
    if text.strip("0") == "":
        if required:
            raise otlp._RejectedSpan(f"missing or all-zero {name}")
        return ""
    return text.lower()


# --- attribute values (pdata Value.AsString, as monitoring.ingest.otlp.value_to_string) -------------


def _kind_of(value: Any) -> tuple[str | None, Any]:
    """The AnyValue's one set field as (name, JSON value); (None, None) for an empty value."""
    value = _dict(value, _VALUE_KEYS)
    if not value:
        return None, None
    if len(value) != 1:
        raise NotCanonical
    [(kind, inner)] = value.items()
    if inner is None:
        raise NotCanonical
    return kind, inner


_VALUE_KEYS = frozenset({"stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue"})


def _double(inner: Any) -> float:
    if type(inner) is float or type(inner) is int:
        try:
            number = float(inner)
        except OverflowError:  # an integer beyond any double
            raise NotCanonical from None
        if math.isfinite(number):
            return number
    raise NotCanonical


def _as_string(value: Any) -> str:
    kind, inner = _kind_of(value)
    if kind is None:
        return ""
    if kind == "stringValue":
        return _str(inner)
    if kind == "boolValue":
        if type(inner) is not bool:
            raise NotCanonical
        return "true" if inner else "false"
    if kind == "intValue":
        return str(_int(inner, _INT64_MIN, _INT64_MAX))
    if kind == "doubleValue":
        return otlp.format_double(_double(inner))
    return _go_json(kind, inner)


def _go_json_value(value: Any) -> str:
    kind, inner = _kind_of(value)
    if kind is None:
        return "null"
    if kind == "stringValue":
        return otlp._go_json_string(_str(inner))
    if kind in ("boolValue", "intValue", "doubleValue"):
        return _as_string(value)
    return _go_json(kind, inner)


def _go_json(kind: str, inner: Any) -> str:
    """Go ``json.Marshal`` of an array or kvlist value, as monitoring.ingest.otlp._go_json."""
    container = _dict(inner, frozenset({"values"}))
    items = _list(container.get("values"))
    if kind == "arrayValue":
        return "[" + ",".join(_go_json_value(item) for item in items) + "]"
    entries = {}
    for kv in items:
        kv = _dict(kv, _KV_KEYS)
        entries[_str(kv.get("key"))] = kv.get("value", {})  # Map.AsRaw: the last key wins
    return (
        "{"
        + ",".join(f"{otlp._go_json_string(key)}:{_go_json_value(entries[key] or {})}" for key in sorted(entries))
        + "}"
    )


def _attributes(items: Any) -> dict[str, str]:
    result: dict[str, str] = {}
    for kv in _list(items):
        kv = _dict(kv, _KV_KEYS)
        key = _str(kv.get("key"))
        value = kv.get("value")
        value = {} if value is None else value
        text = _as_string(value)  # validated even when a duplicate key is dropped
        if key not in result:
            result[key] = text
    return result


# --- rows ------------------------------------------------------------------------------------


def _span_row(
    span: Any, service_name: str, resource_attrs: dict, scope_name: str, scope_version: str, rules: otlp.Rules
) -> dict:
    span = _dict(span, _SPAN_KEYS)
    # Everything is validated before a reject, as protobuf parses the whole body before any row.
    trace_id = span.get("traceId")
    span_id = span.get("spanId")
    parent_id = span.get("parentSpanId")
    start = _uint64(span.get("startTimeUnixNano"))
    end = _uint64(span.get("endTimeUnixNano"))
    kind = _enum(span.get("kind"), _SPAN_KIND_NAMES)
    status = _dict(span.get("status") or {}, _STATUS_KEYS)
    code = _enum(status.get("code"), _STATUS_CODE_NAMES)
    _counts(span, "flags", "droppedAttributesCount", "droppedEventsCount", "droppedLinksCount")
    events = []
    event_items = []  # each event's attributes as sent, for a span cut to Rules.span_entries
    for event in _list(span.get("events")):
        event = _dict(event, _EVENT_KEYS)
        _counts(event, "droppedAttributesCount")
        items = _list(event.get("attributes"))
        events.append((_uint64(event.get("timeUnixNano")), _str(event.get("name")), _attributes(items)))
        event_items.append(items)
    links = []
    link_items = []
    for link in _list(span.get("links")):
        link = _dict(link, _LINK_KEYS)
        _counts(link, "droppedAttributesCount", "flags")
        items = _list(link.get("attributes"))
        links.append((link.get("traceId"), link.get("spanId"), _str(link.get("traceState")), _attributes(items)))
        link_items.append(items)
    attribute_items = _list(span.get("attributes"))
    attributes = _attributes(attribute_items)
    name, trace_state, message = _str(span.get("name")), _str(span.get("traceState")), _str(status.get("message"))
    for raw in (trace_id, span_id, parent_id):
        if raw is not None and not (isinstance(raw, str) and otlp.HEX_ID.fullmatch(raw)):
            raise NotCanonical
    link_ids = [(lt, ls) for lt, ls, _, _ in links]
    for lt, ls in link_ids:
        for raw in (lt, ls):
            if raw is not None and not (isinstance(raw, str) and otlp.HEX_ID.fullmatch(raw)):
                raise NotCanonical

    # The same checks, in the same order, as monitoring.ingest.otlp._span_row.
    starts = rules.starts
    if not starts.earliest_ns <= start <= starts.latest_ns:
        starts.check(start)
    row = {
        "Timestamp": start,
        "TraceId": _hex_id(trace_id, 16, "trace id", True),
        "SpanId": _hex_id(span_id, 8, "span id", True),
        "ParentSpanId": _hex_id(parent_id, 8, "parent span id", False),
        "TraceState": trace_state,
        "SpanName": name,
        "SpanKind": _SPAN_KINDS[kind] if kind < 6 else "",
        "ServiceName": service_name,
        "ResourceAttributes": resource_attrs,
        "ScopeName": scope_name,
        "ScopeVersion": scope_version,
        "SpanAttributes": attributes,
        "Duration": otlp.exporter_duration(start, end),
        "StatusCode": _STATUS_CODES[code] if code < 3 else "",
        "StatusMessage": message,
    }
    if any(t > otlp._INT64_MAX for t, _, _ in events):
        raise otlp._RejectedSpan("event time out of range")
    link_trace_ids = [_hex_id(lt, 16, "link trace id", False) for lt, _ in link_ids]
    link_span_ids = [_hex_id(ls, 8, "link span id", False) for _, ls in link_ids]
    plan = otlp.span_plan(
        rules.span_entries, len(attribute_items), [len(items) for items in (*event_items, *link_items)]
    )
    if plan is not None:  # checked whole above, stored cut as monitoring.ingest.otlp._span_row cuts it
        kept_attributes, kept = plan
        row["SpanAttributes"] = _attributes(attribute_items[:kept_attributes])
        cut_events = min(len(kept), len(events))
        events = [
            (t, n, _attributes(items[:k]))
            for (t, n, _), items, k in zip(events, event_items, kept[:cut_events], strict=False)
        ]
        links = [
            (lt, ls, state, _attributes(items[:k]))
            for (lt, ls, state, _), items, k in zip(links, link_items, kept[cut_events:], strict=False)
        ]
        link_trace_ids, link_span_ids = link_trace_ids[: len(links)], link_span_ids[: len(links)]
        row[otlp._LIMITED] = 1
    row["Events.Timestamp"] = [t for t, _, _ in events]
    row["Events.Name"] = [n for _, n, _ in events]
    row["Events.Attributes"] = [a for _, _, a in events]
    row["Links.TraceId"] = link_trace_ids
    row["Links.SpanId"] = link_span_ids
    row["Links.TraceState"] = [state for _, _, state, _ in links]
    row["Links.Attributes"] = [attrs for _, _, _, attrs in links]
    return row


def rows_from_json(doc: Any, project_id: str, rules: otlp.Rules = otlp.AS_SENT) -> otlp.SpanRows:
    """Rows of a canonical OTLP/JSON request (the parsed body); NotCanonical for anything else.

    Same rows, rejects and messages as ``otlp.rows_from_request`` on the protobuf decoding.
    A span that is rejected still has all its fields checked first: if a later field is malformed,
    protobuf would refuse the whole body, so this raises NotCanonical and the exact path answers.
    """
    doc = _dict(doc, _REQUEST_KEYS)
    rows: list[dict] = []
    reasons: Counter[str] = Counter()
    limited = 0
    limit = rules.span_entries
    for resource_spans in _list(doc.get("resourceSpans")):
        resource_spans = _dict(resource_spans, _RESOURCE_SPANS_KEYS)
        _str(resource_spans.get("schemaUrl"))
        resource = _dict(resource_spans.get("resource") or {}, _RESOURCE_KEYS)
        _counts(resource, "droppedAttributesCount")
        items = _list(resource.get("attributes"))
        resource_attrs = _attributes(items)
        if limit and len(items) > limit:
            resource_attrs, limited = _attributes(items[:limit]), limited + 1
        service_name = resource_attrs.get("service.name", "")
        resource_attrs["project_id"] = project_id
        for scope_spans in _list(resource_spans.get("scopeSpans")):
            scope_spans = _dict(scope_spans, _SCOPE_SPANS_KEYS)
            _str(scope_spans.get("schemaUrl"))
            scope = _dict(scope_spans.get("scope") or {}, _SCOPE_KEYS)
            _attributes(scope.get("attributes"))
            _counts(scope, "droppedAttributesCount")
            scope_name, scope_version = _str(scope.get("name")), _str(scope.get("version"))
            for span in _list(scope_spans.get("spans")):
                try:
                    row = _span_row(span, service_name, resource_attrs, scope_name, scope_version, rules)
                except otlp._RejectedSpan as exc:
                    reasons[exc.reason] += 1
                else:
                    rows.append(row)
                    limited += row.pop(otlp._LIMITED, 0)
    return otlp.spans_result(rows, reasons, limited, limit)
