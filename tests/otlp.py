"""Build OTLP requests for tests: spans with exactly the attributes a test needs."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from monitoring.ingest.otlp import key_values as attrs


def nanos(t: dt.datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


@dataclass
class S:
    """One span: `at` is its start, `ms` its duration."""

    name: str
    service: str = "svc"
    attributes: dict = field(default_factory=dict)
    at: dt.datetime | None = None
    ms: float = 100.0
    error: bool = False
    trace: bytes = field(default_factory=lambda: os.urandom(16))
    parent: bytes = b""
    span_id: bytes = field(default_factory=lambda: os.urandom(8))

    def child(self, name: str, **kw) -> S:
        kw.setdefault("service", self.service)
        kw.setdefault("at", self.at)
        return S(name, trace=self.trace, parent=self.span_id, **kw)


def request(*spans: S, resource: dict | None = None) -> ExportTraceServiceRequest:
    """Spans grouped by service into one request."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    by_service: dict[str, list[Span]] = {}
    for s in spans:
        start = nanos(s.at or now)
        by_service.setdefault(s.service, []).append(
            Span(
                trace_id=s.trace,
                span_id=s.span_id,
                parent_span_id=s.parent,
                name=s.name,
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=start,
                end_time_unix_nano=start + int(s.ms * 1_000_000),
                attributes=attrs(s.attributes),
                status=Status(code=Status.STATUS_CODE_ERROR if s.error else Status.STATUS_CODE_OK),
            )
        )
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource={"attributes": attrs({"service.name": service, **(resource or {})})},
                scope_spans=[ScopeSpans(scope={"name": "tests"}, spans=group)],
            )
            for service, group in by_service.items()
        ]
    )


def post(client, key: str, req: ExportTraceServiceRequest, **headers):
    return client.post(
        "/v1/traces",
        data=req.SerializeToString(),
        content_type="application/x-protobuf",
        headers={"Authorization": f"Bearer {key}", **headers},
    )


FIXTURES = Path(__file__).parent / "fixtures"


def recorded(name: str, newest_end: dt.datetime | None = None) -> dict:
    """An OTLP/JSON request body from tests/fixtures (`cases/…` or `sdk/…`), every time shifted by one
    delta so that its newest span ends at `newest_end` (default: five minutes ago). An end time of
    "0" (a span exported before it ended) stays 0."""
    doc = json.loads((FIXTURES / f"{name}.json").read_text())
    spans = [s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    newest = max(int(s["endTimeUnixNano"]) or int(s["startTimeUnixNano"]) for s in spans)
    target = newest_end or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    delta = nanos(target) - newest
    for s in spans:
        s["startTimeUnixNano"] = str(int(s["startTimeUnixNano"]) + delta)
        if int(s["endTimeUnixNano"]):
            s["endTimeUnixNano"] = str(int(s["endTimeUnixNano"]) + delta)
        for e in s.get("events", []):
            e["timeUnixNano"] = str(int(e["timeUnixNano"]) + delta)
    return doc


def _bytes_request_class():
    """ExportTraceServiceRequest with its `string` fields typed `bytes` (a private pool): reads any text."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    pool = descriptor_pool.DescriptorPool()
    trace = trace_service_pb2.DESCRIPTOR.dependencies[0]
    for file in (*trace.dependencies, trace, trace_service_pb2.DESCRIPTOR):  # common, resource, trace, service
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        messages = list(proto.message_type)
        while messages:
            message = messages.pop()
            messages.extend(message.nested_type)
            for fd in message.field:
                if fd.type == fd.TYPE_STRING:
                    fd.type = fd.TYPE_BYTES
        pool.Add(proto)
    name = "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def recorded_protobuf(name: str, newest_end: dt.datetime | None = None) -> bytes:
    """An OTLP/protobuf request body from tests/fixtures (`cases/….pb`), shifted as `recorded` shifts
    JSON. Its text is carried as bytes, whatever they hold: the body may not be UTF-8 (case-09)."""
    req = _bytes_request_class().FromString((FIXTURES / f"{name}.pb").read_bytes())
    spans = [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
    newest = max(s.end_time_unix_nano or s.start_time_unix_nano for s in spans)
    delta = nanos(newest_end or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)) - newest
    for s in spans:
        s.start_time_unix_nano += delta
        if s.end_time_unix_nano:
            s.end_time_unix_nano += delta
        for e in s.events:
            e.time_unix_nano += delta
    return req.SerializeToString()


def as_protobuf(doc: dict) -> bytes:
    """The same request in protobuf (OTLP/JSON ids are hex; protobuf's JSON mapping wants base64)."""
    from google.protobuf import json_format

    copy = json.loads(json.dumps(doc))
    for rs in copy["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if s.get(key):
                        s[key] = base64.b64encode(bytes.fromhex(s[key])).decode()
                for link in s.get("links", []):
                    for key in ("traceId", "spanId"):
                        link[key] = base64.b64encode(bytes.fromhex(link[key])).decode()
    return json_format.ParseDict(copy, ExportTraceServiceRequest(), ignore_unknown_fields=True).SerializeToString()


def post_recorded(client, key: str, doc: dict, wire: str = "json"):
    """POST a recorded request as OTLP/JSON or protobuf; the answer."""
    if wire == "json":
        body, content_type = json.dumps(doc), "application/json"
    else:
        body, content_type = as_protobuf(doc), "application/x-protobuf"
    return client.post("/v1/traces", data=body, content_type=content_type, headers={"Authorization": f"Bearer {key}"})


def send(client, key: str, *spans: S | Iterable[S], scope: str = "tests") -> None:
    """Post spans (each argument an S or a list of them) as one request under the instrumentation
    scope `scope`; the receiver must answer 200."""
    flat = [s for item in spans for s in ([item] if isinstance(item, S) else item)]
    req = request(*flat)
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            ss.scope.name = scope
    response = post(client, key, req)
    assert response.status_code == 200, response.content
