"""OTLP/HTTP trace ingest: request bytes -> rows identical to the collector's ClickHouse exporter.

Pure module: no Django, no database. The HTTP view does the I/O and calls, in order:

    req = decode_request(body, content_type, content_encoding)   # IngestError on bad input
    result = rows_from_request(req, project_id)                   # SpanRows; or: rows, rejected = ...
    ... insert result.rows ...
    body = encode_response(content_type, result.rejected, result.error_message)

and on IngestError(e): ``status_body(content_type, e.status, e.message)`` as the body of e.status.

Rows are those of the OTel Collector's ClickHouse exporter (collector-contrib ``exporter/clickhouseexporter``,
its traces table), keyed by ``monitoring.store.schema.TRACE_COLUMNS`` (the INSERT order), with the
exporter's own formatting (pdata ``Value.AsString``); docs/otlp.md has the wire rules. Deliberate differences from the stock exporter:
- ``ResourceAttributes['project_id']`` is forced to the ingest key's project.
- A span is *rejected* (not stored, counted in ``SpanRows.rejected``, reported back as OTLP
  ``partialSuccess``) when its trace id or span id is missing/all-zero/not 16 resp. 8 bytes, when
  a parent or link id has a wrong length, when its start time is outside the ``StartWindow`` the
  caller gives (by default up to 2106-02-07 06:28:15 UTC: the table's TTL and the TraceId lookup
  use 32-bit ``DateTime``, ClickHouse would wrap the value and drop the row unseen; the receiver's
  also keeps out what the retention would drop at once), or when an event time is past 2262
  (int64 ns overflow, out of DateTime64(9) range). The collector would fail the whole request instead.
- A span holding more than ``Rules.span_entries`` attribute entries, events and links is stored
  with the first ones as sent (its resource's attributes cut alike) and counted in
  ``SpanRows.limited`` (a partialSuccess warning); the collector stores them all.
- Times of 0 (a span or event without a time) are stored as they are: 1970-01-01 00:00:00 (unless
  a retention rejects such a start).
- Text that is not Unicode (a protobuf `string` that is not UTF-8, a JSON string's lone UTF-16
  surrogate or bytes that are not UTF-8) is stored with U+FFFD in its place (``parse_protobuf``,
  ``_load_json``); the collector passes such bytes on as they are, where proto3 would refuse the
  whole body.
- ``Duration`` is exactly what the stock exporter writes (``exporter_traces.go``:
  ``r.EndTimestamp().AsTime().Sub(r.StartTimestamp().AsTime()).Nanoseconds()`` into a ``UInt64``
  column through clickhouse-go, whose ``UInt64.AppendRow`` converts the int64 with Go's
  wrap-around conversion): end - start, saturated to the int64 range by ``time.Time.Sub``, then
  taken modulo 2**64. So a span exported while still running (end time 0) or with end < start has
  a Duration of 2**64 - (start - end) — a value >= 2**63 — which readers treat as "no end time".
- Duplicate attribute keys: the first one wins at the top level (what pdata ``Map.Get`` and a
  ClickHouse map lookup see); inside kvlist values the last one wins (pdata ``Map.AsRaw``).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span

MAX_BODY_BYTES = 20 * 1024 * 1024  # the collector's default max_request_body_size

JSON_CONTENT_TYPE = "application/json"
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"

Row = dict[str, Any]
_Request = TypeVar("_Request", bound=Message)

# pdata's SpanKind.String() / StatusCode.String(); unknown enum values become "".
_SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
_STATUS_CODES = ("Unset", "Ok", "Error")

_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)
_UINT64 = 2**64
# The last second a 32-bit ClickHouse DateTime holds (2106-02-07 06:28:15 UTC), in ns; the table's
# TTL `toDateTime(Timestamp) + ...` and the TraceId lookup's `Start DateTime` need the start time in it.
DATETIME32_MAX_NANOS = (2**32 - 1) * 1_000_000_000 + 999_999_999


_DAY_S = 86_400
# A span must have this long left before its retention ends when received: batching, a retry of
# the insert or the spool may store it a little later, and ClickHouse drops an expired row at insert.
RETENTION_MARGIN_S = 60


def _utc(seconds: int) -> str:
    return f"{dt.datetime.fromtimestamp(seconds, dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def _duration(seconds: int) -> str:
    for unit, size in (("day", _DAY_S), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


@dataclass(frozen=True)
class StartWindow:
    """The start times (ns since the epoch) a span may have to be stored and found: others are
    rejected with ``reason_before`` / ``reason_after`` (partialSuccess), never accepted unseen.

    The default is what the tables hold without a retention: up to 2106-02-07 06:28:15 UTC, the
    last second of the 32-bit DateTime of the TraceId lookup and of a TTL's `toDateTime(...)`.
    """

    earliest_ns: int = 0
    latest_ns: int = DATETIME32_MAX_NANOS
    reason_before: str = "start time before 1970"
    reason_after: str = "start time after 2106-02-07 06:28:15 UTC"

    @classmethod
    def for_retentions(cls, retentions: Iterable[int], now_ns: int) -> StartWindow:
        """The window under the tables' retentions (seconds; ``store.schema.span_retentions``) at
        `now_ns`. ClickHouse drops a row once ``toDateTime(start) + retention <= now()`` (TTL), so a
        span must start after ``now - retention`` with RETENTION_MARGIN_S to spare; and that 32-bit
        sum wraps to 1970 past 2106-02-07 06:28:15, which drops the row at once, so a span must
        start ``retention`` before that second. The shortest and the longest retention decide."""
        kept = [r for r in retentions if r > 0]
        if not kept:
            return cls()
        shortest, longest = min(kept), max(kept)
        earliest_s = now_ns // 1_000_000_000 - shortest + 1 + RETENTION_MARGIN_S
        latest_s = 2**32 - 1 - longest
        return cls(
            earliest_ns=earliest_s * 1_000_000_000,
            latest_ns=latest_s * 1_000_000_000 + 999_999_999,
            reason_before=f"start time older than the retention of {_duration(shortest)}",
            reason_after=f"start time after {_utc(latest_s)} (a retention of {_duration(longest)} "
            "would end after 2106-02-07 06:28:15 UTC)",
        )

    def check(self, start: int) -> None:
        """Raise _RejectedSpan unless a span starting at `start` (ns) is stored and found."""
        if start > self.latest_ns:
            raise _RejectedSpan(self.reason_after)
        if start < self.earliest_ns:
            raise _RejectedSpan(self.reason_before)


ANY_TIME = StartWindow()


@dataclass(frozen=True)
class Rules:
    """What a span must be to be stored as it came (the receiver's: ``receiver._rules``).

    `starts`: the start times kept (others rejected, ``StartWindow``). `span_entries`: the most
    entries one span's row keeps (0: all): its attributes, then its events (each 1 plus its
    attributes), then its links (likewise), each list cut where the count is reached (a map keeps
    its first items as sent); its resource's attributes are cut at the same number. A span holding
    more is stored so cut and counted in ``SpanRows.limited`` (reported in partialSuccess).
    """

    starts: StartWindow = ANY_TIME
    span_entries: int = 0


AS_SENT = Rules()


def span_plan(limit: int, attributes: int, items: list[int]) -> tuple[int, list[int]] | None:
    """Where a span of `attributes` attributes and events/links holding `items` attributes each
    (events first) is cut to keep at most `limit` entries (``Rules.span_entries``): None when it
    fits, else (attributes kept, attributes kept of each event/link kept, in order)."""
    if not limit or attributes + len(items) + sum(items) <= limit:
        return None
    budget = limit - min(attributes, limit)
    kept: list[int] = []
    for count in items:
        if budget <= 0:
            break
        take = min(count, budget - 1)
        kept.append(take)
        budget -= 1 + take
    return min(attributes, limit), kept


class IngestError(Exception):
    """A request we refuse as a whole; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- decoding --------------------------------------------------------------------------------


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _checked_body(body: bytes, content_type: str, content_encoding: str | None) -> tuple[str, bytes]:
    """(media type, uncompressed body) after the content type, encoding and size checks."""
    media_type = _media_type(content_type)
    if media_type not in (PROTOBUF_CONTENT_TYPE, JSON_CONTENT_TYPE):
        raise IngestError(
            415, f"unsupported content type {content_type!r}: use {PROTOBUF_CONTENT_TYPE} or {JSON_CONTENT_TYPE}"
        )
    encoding = (content_encoding or "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise IngestError(415, f"unsupported content encoding {content_encoding!r}: use gzip or none")
    if len(body) > MAX_BODY_BYTES:
        raise IngestError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    if encoding in ("gzip", "x-gzip"):
        body = _gunzip(body)
    return media_type, body


def decode_request(body: bytes, content_type: str, content_encoding: str | None) -> ExportTraceServiceRequest:
    """Parse an OTLP/HTTP trace export body (protobuf or JSON, optionally gzipped)."""
    media_type, body = _checked_body(body, content_type, content_encoding)
    if media_type == JSON_CONTENT_TYPE:
        return _request_from_json(_load_json(body))
    return parse_protobuf(body, ExportTraceServiceRequest)


def parse_protobuf(body: bytes, request_type: type[_Request]) -> _Request:
    """An uncompressed OTLP/protobuf body as a `request_type` (an ExportTraceServiceRequest, or an
    ExportLogsServiceRequest for /v1/logs); IngestError 400 if it is not one.

    A `string` field that is not UTF-8 (an SDK cutting text by bytes, mid-character) does not sink
    the export: the Collector takes such data (opentelemetry-specification#3421), while protobuf's
    proto3 parser refuses the whole body for it. So a body refused only for that is read again with
    the same messages' `string` fields as `bytes`, every invalid sequence becomes U+FFFD (Python's
    "replace": one per maximal invalid subpart, the Unicode Standard's practice), and the repaired
    body is parsed as usual. Valid bodies take the usual parse alone.
    """
    name = request_type.DESCRIPTOR.name
    try:
        return request_type.FromString(body)
    except RecursionError as exc:
        raise IngestError(400, f"invalid protobuf {name}: {exc}") from None
    except DecodeError as exc:
        refused = exc
    lenient_type, text_fields = lenient_class(request_type.DESCRIPTOR.full_name)
    try:
        lenient = lenient_type.FromString(body)
        _replace_invalid_utf8(lenient, text_fields)
        return request_type.FromString(lenient.SerializeToString())
    except (DecodeError, RecursionError):  # not (only) text: the first parser's reason is the answer
        raise IngestError(400, f"invalid protobuf {name}: {refused}") from None


@functools.cache
def lenient_class(full_name: str) -> tuple[type[Message], frozenset[Any]]:
    """The request message `full_name` (of the default pool) rebuilt in a private pool with every
    `string` field typed `bytes` (same numbers, same wire format: it parses any text), and those
    fields' descriptors. Built once per request type (traces, logs)."""
    root = descriptor_pool.Default().FindMessageTypeByName(full_name)
    files: list[Any] = []

    def add(file: Any) -> None:  # dependencies first, each file once
        for dependency in file.dependencies:
            add(dependency)
        if file not in files:
            files.append(file)

    add(root.file)
    pool = descriptor_pool.DescriptorPool()
    text_fields: set[tuple[str, str]] = set()
    for file in files:
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        stack = [(f"{proto.package}.{m.name}", m) for m in proto.message_type]
        while stack:
            name, message = stack.pop()
            stack.extend((f"{name}.{m.name}", m) for m in message.nested_type)
            for fd in message.field:
                if fd.type == fd.TYPE_STRING:
                    fd.type = fd.TYPE_BYTES
                    text_fields.add((name, fd.name))
        pool.Add(proto)
    request = pool.FindMessageTypeByName(full_name)
    fields = frozenset(
        fd
        for message in _message_types(request)
        for fd in message.fields
        if (message.full_name, fd.name) in text_fields
    )
    return message_factory.GetMessageClass(request), fields


def _message_types(root: Any) -> list[Any]:
    """Every message type reachable from `root`'s fields, `root` first."""
    found, stack = [root], [root]
    while stack:
        for fd in stack.pop().fields:
            if fd.message_type is not None and fd.message_type not in found:
                found.append(fd.message_type)
                stack.append(fd.message_type)
    return found


def _valid_utf8(data: bytes) -> bytes:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").encode("utf-8")
    return data


def _replace_invalid_utf8(message: Message, text_fields: frozenset[Any]) -> None:
    """Make every text field (`text_fields`) of a lenient request (its `string` fields read as
    bytes) valid UTF-8, in place. An item of a list (a span, an attribute...) that the strict parser takes as it is
    is skipped whole, so only the bad spans' fields are visited in Python (an explicit stack:
    AnyValues nest as deep as protobuf's parser allows)."""
    stack = [message]
    while stack:
        item = stack.pop()
        for fd, value in item.ListFields():
            if fd.message_type is not None:
                if not fd.is_repeated:
                    stack.append(value)
                    continue
                strict = _strict_class(fd.message_type.full_name)
                for element in value:
                    try:
                        strict.FromString(element.SerializeToString())
                    except DecodeError:
                        stack.append(element)
            elif fd in text_fields:
                if fd.is_repeated:
                    value[:] = [_valid_utf8(v) for v in value]
                elif not value.isascii():
                    setattr(item, fd.name, _valid_utf8(value))


@functools.cache
def _strict_class(full_name: str) -> type[Message]:
    """The generated (strict) message class of a lenient message type."""
    return message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(full_name))


def _gunzip(data: bytes) -> bytes:
    """Inflate a (possibly multi-member) gzip body, never producing more than MAX_BODY_BYTES.

    Output is requested in bounded steps, so a gzip bomb costs at most MAX_BODY_BYTES of memory.
    """
    out = bytearray()
    pending = data
    try:
        while pending:  # one gzip member per turn; Go's gzip.Reader also reads concatenated members
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk_input = pending
            while not inflater.eof:
                chunk = inflater.decompress(chunk_input, MAX_BODY_BYTES + 1 - len(out))
                out += chunk
                if len(out) > MAX_BODY_BYTES:
                    raise IngestError(413, f"decompressed request body larger than {MAX_BODY_BYTES} bytes")
                chunk_input = inflater.unconsumed_tail
                if not chunk and not chunk_input:
                    raise IngestError(400, "invalid gzip body: truncated stream")
            pending = inflater.unused_data
    except zlib.error as exc:
        raise IngestError(400, f"invalid gzip body: {exc}") from None
    return bytes(out)


# A lone UTF-16 surrogate can only enter through a \uD800-\uDFFF escape: UTF-8 text cannot carry one.
_SURROGATE_ESCAPE_RE = re.compile(r"\\[uU][dD][89a-fA-F]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _load_json(body: bytes) -> dict[str, Any]:
    """The parsed JSON object of a body (IngestError 400 for anything else).

    Text that is not Unicode does not sink an export whose JSON is otherwise valid, as with
    protobuf (``parse_protobuf``): bytes that are not UTF-8 and lone UTF-16 surrogates escaped as
    ``\\uD800``-``\\uDFFF`` (RFC 8259 §8.2, a JavaScript string cut between a pair's halves) become
    U+FFFD, as Go's encoding/json reads such strings; keys included.
    """
    encoding = json.detect_encoding(body)  # what json.loads(bytes) would pick (RFC 8259 §8.1: UTF-8)
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError:
        text = body.decode(encoding, "replace")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise IngestError(400, f"invalid JSON body: {exc}") from None
    if not isinstance(doc, dict):
        raise IngestError(400, "invalid OTLP JSON: the body must be a JSON object")
    if _SURROGATE_ESCAPE_RE.search(text):
        doc = _without_lone_surrogates(doc)
    return doc


def _without_lone_surrogates(doc: dict[str, Any]) -> dict[str, Any]:
    """The parsed document with U+FFFD for each lone surrogate in its keys and strings (json.loads
    joins a valid pair into one character, so any surrogate left is alone)."""

    def fixed(text: str) -> str:
        return _SURROGATE_RE.sub("\ufffd", text)

    def rebuilt(item: dict) -> dict:
        return {fixed(key) if isinstance(key, str) else key: value for key, value in item.items()}

    root = rebuilt(doc)
    stack: list[Any] = [root]
    while stack:  # an explicit stack: the document may nest as deep as json.loads allows
        item = stack.pop()
        entries = item.items() if isinstance(item, dict) else enumerate(item)
        for key, value in list(entries):
            if isinstance(value, str):
                item[key] = fixed(value)
            elif isinstance(value, dict):
                item[key] = rebuilt(value)
                stack.append(item[key])
            elif isinstance(value, list):
                stack.append(value)
    return root


def _request_from_json(doc: dict[str, Any]) -> ExportTraceServiceRequest:
    """protobuf's own JSON mapping (exact, slow); ``doc`` is changed in place (ids to base64)."""
    _hex_ids_to_base64(doc)
    try:
        return json_format.ParseDict(doc, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except Exception as exc:  # ParseError, OverflowError (1e400 as an int), TypeError...: all the body's
        raise IngestError(400, f"invalid OTLP JSON: {exc}") from None


# An id on the OTLP/JSON wire: hex digits of either case, whole bytes (its length is checked apart).
HEX_ID = re.compile(r"(?:[0-9a-fA-F]{2})*")


def _hex_ids_to_base64(doc: dict[str, Any]) -> None:
    """OTLP JSON writes ids as hex, protobuf's JSON mapping expects base64: convert in place.

    Both lowerCamelCase and proto field names are accepted, as protobuf's JSON parser does.
    Anything that is not shaped like a request is left alone for ParseDict to report.
    """
    for resource_spans in _dicts(doc, "resourceSpans", "resource_spans"):
        for scope_spans in _dicts(resource_spans, "scopeSpans", "scope_spans"):
            for span in _dicts(scope_spans, "spans"):
                _convert_ids(span, "traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
                for link in _dicts(span, "links"):
                    _convert_ids(link, "traceId", "trace_id", "spanId", "span_id")


def _dicts(obj: dict[str, Any], *keys: str) -> Iterator[dict[str, Any]]:
    for key in keys:
        items = obj.get(key)
        if isinstance(items, list):
            yield from (item for item in items if isinstance(item, dict))


def _convert_ids(obj: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not HEX_ID.fullmatch(value):
            raise IngestError(400, f"invalid OTLP JSON: {key} must be a hex string, got {json.dumps(value)[:80]}")
        obj[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpanRows:
    """Rows to insert plus what was dropped; unpacks as ``rows, rejected = ...``."""

    rows: list[Row]
    rejected: int = 0
    error_message: str = ""  # for OTLP partialSuccess.errorMessage; "" when nothing was rejected or cut
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    limited: int = 0  # spans (and resources) stored cut to Rules.span_entries

    def __iter__(self) -> Iterator[Any]:
        return iter((self.rows, self.rejected))


class _RejectedSpan(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def rows_from_request(req: ExportTraceServiceRequest, project_id: str, rules: Rules = AS_SENT) -> SpanRows:
    """One row per valid span, keyed by ``schema.TRACE_COLUMNS``; invalid spans, and spans starting
    outside `rules.starts`, are counted, not raised; spans over `rules.span_entries` are cut."""
    rows: list[Row] = []
    reasons: Counter[str] = Counter()
    limited = 0
    limit = rules.span_entries
    for resource_spans in req.resource_spans:
        attributes: Sequence[KeyValue] = resource_spans.resource.attributes
        if limit and len(attributes) > limit:
            attributes, limited = attributes[:limit], limited + 1
        # One dict for all the resource's rows (they are never changed): its spans share it.
        resource_attrs = attributes_to_map(attributes)
        service_name = resource_attrs.get("service.name", "")
        resource_attrs["project_id"] = project_id
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_name, scope_version = scope.name, scope.version
            for span in scope_spans.spans:
                try:
                    row = _span_row(span, service_name, resource_attrs, scope_name, scope_version, rules)
                except _RejectedSpan as exc:
                    reasons[exc.reason] += 1
                else:
                    rows.append(row)
                    limited += row.pop(_LIMITED, 0)
    return spans_result(rows, reasons, limited, limit)


_LIMITED = "limited"  # set on a row cut to Rules.span_entries (taken off before it is stored)


def spans_result(rows: list[Row], reasons: Counter[str], limited: int, limit: int) -> SpanRows:
    """SpanRows with the partialSuccess message for what was rejected and what was cut."""
    rejected = sum(reasons.values())
    parts = []
    if rejected:
        details = ", ".join(f"{count} with {reason}" for reason, count in sorted(reasons.items()))
        parts.append(f"{rejected} span(s) rejected: {details}")
    if limited:
        parts.append(
            f"{limited} span(s) or resource(s) with more than {limit} attributes, events and links"
            f" stored with the first {limit}"
        )
    return SpanRows(rows, rejected, "; ".join(parts), dict(reasons), limited)


def _span_row(
    span: Span, service_name: str, resource_attrs: dict, scope_name: str, scope_version: str, rules: Rules
) -> Row:
    """One row, its keys in ``schema.TRACE_COLUMNS`` order (the hot path of ingest: ~10 attributes a span)."""
    start = span.start_time_unix_nano
    starts = rules.starts
    if not starts.earliest_ns <= start <= starts.latest_ns:
        starts.check(start)
    trace_id = _required_id(span.trace_id, _TRACE_ID_BYTES, "trace id")
    span_id = _required_id(span.span_id, _SPAN_ID_BYTES, "span id")
    parent_id = _optional_id(span.parent_span_id, _SPAN_ID_BYTES, "parent span id")
    status = span.status
    kind = span.kind
    row = {
        "Timestamp": start,
        "TraceId": trace_id,
        "SpanId": span_id,
        "ParentSpanId": parent_id,
        "TraceState": span.trace_state,
        "SpanName": span.name,
        "SpanKind": _SPAN_KINDS[kind] if 0 <= kind < 6 else "",
        "ServiceName": service_name,
        "ResourceAttributes": resource_attrs,
        "ScopeName": scope_name,
        "ScopeVersion": scope_version,
        "SpanAttributes": None,
        "Duration": exporter_duration(start, span.end_time_unix_nano),
        "StatusCode": _enum_name(_STATUS_CODES, status.code),
        "StatusMessage": status.message,
    }
    attributes: Sequence[KeyValue] = span.attributes
    events: Sequence[Span.Event] = span.events
    links: Sequence[Span.Link] = span.links
    limit = rules.span_entries
    if not events and not links:  # most spans: span_plan's answer without building its counts
        if limit and len(attributes) > limit:
            attributes, row[_LIMITED] = attributes[:limit], 1
        row["SpanAttributes"] = attributes_to_map(attributes)
        row["Events.Timestamp"], row["Events.Name"], row["Events.Attributes"] = [], [], []
        row["Links.TraceId"], row["Links.SpanId"], row["Links.TraceState"], row["Links.Attributes"] = [], [], [], []
        return row
    if any(event.time_unix_nano > _INT64_MAX for event in events):
        raise _RejectedSpan("event time out of range")
    link_ids = [
        (
            _optional_id(link.trace_id, _TRACE_ID_BYTES, "link trace id"),
            _optional_id(link.span_id, _SPAN_ID_BYTES, "link span id"),
        )
        for link in links
    ]
    plan = None
    if limit:
        counts = [len(event.attributes) for event in events] + [len(link.attributes) for link in links]
        plan = span_plan(limit, len(attributes), counts)
    if plan is None:
        row["SpanAttributes"] = attributes_to_map(attributes)
        event_maps = [attributes_to_map(event.attributes) for event in events]
        link_maps = [attributes_to_map(link.attributes) for link in links]
    else:  # checked whole above, stored cut
        kept_attributes, kept = plan
        row["SpanAttributes"] = attributes_to_map(attributes[:kept_attributes])
        events, links = events[: len(kept)], links[: max(0, len(kept) - len(events))]
        event_maps = [attributes_to_map(e.attributes[:n]) for e, n in zip(events, kept, strict=False)]
        link_maps = [attributes_to_map(i.attributes[:n]) for i, n in zip(links, kept[len(events) :], strict=True)]
        link_ids = link_ids[: len(links)]
        row[_LIMITED] = 1
    row["Events.Timestamp"] = [event.time_unix_nano for event in events]
    row["Events.Name"] = [event.name for event in events]
    row["Events.Attributes"] = event_maps
    row["Links.TraceId"] = [trace for trace, _ in link_ids]
    row["Links.SpanId"] = [span_id for _, span_id in link_ids]
    row["Links.TraceState"] = [link.trace_state for link in links]
    row["Links.Attributes"] = link_maps
    return row


def exporter_duration(start: int, end: int) -> int:
    """The stock exporter's Duration (ns, UInt64) for OTLP start/end times (uint64 ns).

    Go: ``pcommon.Timestamp.AsTime`` is ``time.Unix(0, int64(ts))``; ``time.Time.Sub`` saturates at
    the int64 range; clickhouse-go converts the int64 to UInt64 by wrapping. So end < start (end 0
    for a span still running) gives 2**64 - (start - end), a value >= 2**63.
    """
    if start <= end <= _INT64_MAX:  # the usual case: no wrap-around, no saturation
        return end - start
    as_int64 = [t - _UINT64 if t > _INT64_MAX else t for t in (start, end)]
    difference = min(max(as_int64[1] - as_int64[0], _INT64_MIN), _INT64_MAX)
    return difference % _UINT64


def _required_id(raw: bytes, size: int, name: str) -> str:
    hex_id = _optional_id(raw, size, name)
    if not hex_id:
        raise _RejectedSpan(f"missing or all-zero {name}")
    return hex_id


def _optional_id(raw: bytes, size: int, name: str) -> str:
    """Lowercase hex, '' for absent or all-zero ids (the exporter's TraceIDToHexOrEmptyString)."""
    if not raw:
        return ""
    if len(raw) != size:
        raise _RejectedSpan(f"invalid {name} length")
    return raw.hex() if any(raw) else ""


def _enum_name(names: tuple[str, ...], value: int) -> str:
    return names[value] if 0 <= value < len(names) else ""


# --- attribute values (pdata Value.AsString) ----------------------------------------------


def attributes_to_map(attributes: Iterable[KeyValue]) -> dict[str, str]:
    """Attribute list -> {key: AsString(value)}; the first of duplicate keys wins."""
    result: dict[str, str] = {}
    for kv in attributes:
        key = kv.key
        if key in result:
            continue
        value = kv.value
        if value.WhichOneof("value") == "string_value":  # most attributes: no detour
            result[key] = value.string_value
        else:
            result[key] = value_to_string(value)
    return result


def value_to_string(value: AnyValue) -> str:
    """pdata ``Value.AsString``: scalars as text, arrays/kvlists as Go ``json.Marshal`` output."""
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return format_double(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    try:
        return _go_json(value)
    except _UnsupportedJSONValue:
        return ""  # json.Marshal fails on NaN/Inf and AsString ignores the error: empty string


def format_double(f: float) -> str:
    """Go's pdata float64AsString: ES6 number formatting, shortest round-trip digits.

    Plain decimal for 1e-6 <= |f| < 1e21 (and 0), otherwise exponent form with the exponent
    unpadded ("1e-7", "1e+21"); NaN/Inf become the error text Go writes instead of a number.
    """
    if math.isnan(f) or math.isinf(f):
        go_name = "NaN" if math.isnan(f) else ("+Inf" if f > 0 else "-Inf")
        return f"json: unsupported value: {go_name}"
    digits = Decimal(repr(f))  # repr is the shortest round-trip form, as strconv's -1 precision
    magnitude = abs(f)
    if magnitude == 0 or 1e-6 <= magnitude < 1e21:
        text = format(digits, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    sign, mantissa_digits, exponent = digits.normalize().as_tuple()
    assert isinstance(exponent, int)  # a finite number: NaN and Inf were answered above
    mantissa = "".join(map(str, mantissa_digits))
    exponent += len(mantissa) - 1  # scientific exponent for d.ddd form
    text = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{'-' if sign else ''}{text}e{'-' if exponent < 0 else '+'}{abs(exponent)}"


class _UnsupportedJSONValue(Exception):
    pass


def _go_json(value: AnyValue) -> str:
    """Go ``json.Marshal(value.AsRaw())`` for one AnyValue, compact, map keys sorted."""
    kind = value.WhichOneof("value")
    if kind is None:
        return "null"
    if kind == "string_value":
        return _go_json_string(value.string_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        if not math.isfinite(value.double_value):
            raise _UnsupportedJSONValue
        return format_double(value.double_value)  # encoding/json uses the same ES6 formatting
    if kind == "bytes_value":
        # ByteSlice.AsRaw copies into a nil slice, so empty bytes marshal as null, not "".
        raw = value.bytes_value
        return f'"{base64.b64encode(raw).decode("ascii")}"' if raw else "null"
    if kind == "array_value":
        return "[" + ",".join(_go_json(item) for item in value.array_value.values) + "]"
    entries = {kv.key: kv.value for kv in value.kvlist_value.values}  # Map.AsRaw: last key wins
    return "{" + ",".join(f"{_go_json_string(key)}:{_go_json(entries[key])}" for key in sorted(entries)) + "}"


# encoding/json escapes HTML-sensitive characters and the JS line separators; Python does not.
_GO_EXTRA_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _go_json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).translate(_GO_EXTRA_ESCAPES)


# --- responses -------------------------------------------------------------------------------


def _is_json(content_type: str | None) -> bool:
    return _media_type(content_type) == JSON_CONTENT_TYPE


def response_content_type(request_content_type: str | None) -> str:
    """Answer in the request's encoding (OTLP/HTTP: JSON for JSON, else protobuf)."""
    return JSON_CONTENT_TYPE if _is_json(request_content_type) else PROTOBUF_CONTENT_TYPE


def _serialize(message: Message, as_json: bool) -> bytes:
    if as_json:
        return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()
    return message.SerializeToString()


def any_value(v: Any) -> AnyValue:
    """A Python value as an OTLP AnyValue (for spans we make ourselves: demo traffic, Replay's re-runs)."""
    if isinstance(v, bool):  # before int: bool is an int subclass
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(x) for x in v]))
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(v)))
    return AnyValue(string_value=str(v))


def key_values(d: dict[str, Any]) -> list[KeyValue]:
    """Attributes as OTLP KeyValues; None values are left out."""
    return [KeyValue(key=k, value=any_value(v)) for k, v in d.items() if v is not None]


def _wire_text(message: str) -> str:
    """Text a protobuf string field can hold: an error may quote the input, lone surrogates included."""
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def encode_response(content_type: str, rejected_spans: int = 0, error_message: str = "") -> bytes:
    """ExportTraceServiceResponse in the request's encoding; partialSuccess only when needed."""
    response = ExportTraceServiceResponse()
    if rejected_spans > 0 or error_message:
        response.partial_success.rejected_spans = rejected_spans
        response.partial_success.error_message = _wire_text(error_message)
    return _serialize(response, _is_json(content_type))


def _build_status_class() -> type[Message]:
    """google.rpc.Status, defined here in a private pool: googleapis-common-protos is not a
    dependency and this one 3-field message is all we need of it (same wire format and JSON)."""
    pool = descriptor_pool.DescriptorPool()
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    pool.Add(any_file)
    status_file = descriptor_pb2.FileDescriptorProto(
        name="google/rpc/status.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=["google/protobuf/any.proto"],
    )
    message = status_file.message_type.add(name="Status")
    fd = descriptor_pb2.FieldDescriptorProto
    message.field.add(name="code", json_name="code", number=1, type=fd.TYPE_INT32, label=fd.LABEL_OPTIONAL)
    message.field.add(name="message", json_name="message", number=2, type=fd.TYPE_STRING, label=fd.LABEL_OPTIONAL)
    message.field.add(
        name="details",
        json_name="details",
        number=3,
        type=fd.TYPE_MESSAGE,
        type_name=".google.protobuf.Any",
        label=fd.LABEL_REPEATED,
    )
    pool.Add(status_file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


Status = _build_status_class()

# HTTP status -> gRPC code, as the collector's NewStatusFromMsgAndHTTPCode maps it.
_GRPC_CODE_FOR_HTTP = {400: 3, 401: 16, 403: 7, 404: 12, 429: 8, 502: 14, 503: 14, 504: 14}
_GRPC_UNKNOWN = 2


def status_body(content_type: str, code: int, message: str) -> tuple[bytes, str]:
    """A google.rpc.Status error body and its content type (JSON iff the request was JSON).

    ``code`` is the HTTP status being answered (mapped to the gRPC code the collector would
    put in the Status); a value below 100 is taken as a gRPC code already.
    """
    grpc_code = code if code < 100 else _GRPC_CODE_FOR_HTTP.get(code, _GRPC_UNKNOWN)
    as_json = _is_json(content_type)
    body = _serialize(Status(code=grpc_code, message=_wire_text(message)), as_json)
    return body, JSON_CONTENT_TYPE if as_json else PROTOBUF_CONTENT_TYPE
