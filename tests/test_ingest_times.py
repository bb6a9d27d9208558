"""Every span answered 200 can be found; one that cannot is reported in partialSuccess with the
reason (issue 22, "accepted but invisible"). Through the HTTP receiver, then the trace page, the
trace API and the list API, at both ends of what the tables hold: the 32-bit DateTime of the
TraceId lookup and TTL (2106-02-07 06:28:15 UTC), and a retention, whose TTL drops a span older
than it at insert and whose expiry wraps to 1970 for a span within it of 2106-02-07.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from otlp import S, request

from monitoring.ingest import otlp
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

NS = 1_000_000_000
LAST_SECOND = 2**32 - 1  # 2106-02-07 06:28:15 UTC
DAY = 86_400
RETENTION_DAYS = 30


@pytest.fixture
def retention():
    """The tables under a 30-day TTL, as `clickhouse_retention --days 30` sets it (tests run without)."""
    schema.set_retention(RETENTION_DAYS)
    try:
        yield RETENTION_DAYS * DAY
    finally:
        schema.set_retention(0)


def post_at(client, key: str, start_ns: int, wire: str = "protobuf") -> tuple[str, dict]:
    """One span starting at `start_ns` (100 ms long); (its trace id, the partialSuccess as a dict)."""
    span = S(f"at-{start_ns}")
    req = request(span)
    pb = req.resource_spans[0].scope_spans[0].spans[0]
    pb.start_time_unix_nano, pb.end_time_unix_nano = start_ns, start_ns + NS // 10
    if wire == "protobuf":
        r = client.post(
            "/v1/traces", data=req.SerializeToString(), content_type=otlp.PROTOBUF_CONTENT_TYPE,
            headers={"Authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert r.status_code == 200, r.content
        answer = ExportTraceServiceResponse.FromString(r.content)
        partial = {"rejected": answer.partial_success.rejected_spans, "message": answer.partial_success.error_message}
    else:
        from google.protobuf import json_format

        doc = json_format.MessageToDict(req, use_integers_for_enums=True)
        s = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        s["traceId"], s["spanId"] = span.trace.hex(), span.span_id.hex()
        r = client.post(
            "/v1/traces", data=json.dumps(doc), content_type=otlp.JSON_CONTENT_TYPE,
            headers={"Authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert r.status_code == 200, r.content
        answer = json.loads(r.content).get("partialSuccess", {})
        partial = {"rejected": int(answer.get("rejectedSpans", 0)), "message": answer.get("errorMessage", "")}
    return span.trace.hex(), partial


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def found(client, project, trace_id: str, start_ns: int) -> dict[str, bool]:
    """Where the span can be seen: its trace page, the trace API, the list API over its day."""
    page = client.get(f"/admin/monitoring/{project.id}/traces/{trace_id}/").status_code
    api = client.get(f"/api/v1/projects/{project.id}/traces/{trace_id}").status_code
    day = start_ns // NS // DAY * DAY
    listed = client.get(
        f"/api/v1/projects/{project.id}/traces",
        {"kind": "all", "q": trace_id, "from": _iso(day), "to": _iso(min(day + DAY, LAST_SECOND + 1))},
    )
    assert listed.status_code == 200, listed.content
    stored = clickhouse.query_one(
        f"SELECT count() AS n FROM {schema.table()} WHERE ProjectId = {{p:String}} AND TraceId = {{t:String}}",
        {"p": str(project.id), "t": trace_id},
        tag="test.stored",
    )
    return {
        "page": page == 200,
        "api": api == 200,
        "list": [i["trace_id"] for i in listed.json()["items"]] == [trace_id],
        "stored": int(stored["n"]) == 1,
    }


EVERYWHERE = {"page": True, "api": True, "list": True, "stored": True}
NOWHERE = {"page": False, "api": False, "list": False, "stored": False}


@pytest.mark.parametrize("wire", ["protobuf", "json"])
def test_without_retention_both_ends_of_the_datetime_are_found_and_past_them_rejected(
    client, alice, project, ingest_key, wire
):
    client.force_login(alice)
    for start in (0, LAST_SECOND * NS, LAST_SECOND * NS + NS - 1):  # 1970-01-01 00:00:00 to the last ns
        trace_id, partial = post_at(client, ingest_key, start, wire)
        assert partial == {"rejected": 0, "message": ""}, start
        assert found(client, project, trace_id, start) == EVERYWHERE, start
    trace_id, partial = post_at(client, ingest_key, (LAST_SECOND + 1) * NS, wire)
    assert partial == {"rejected": 1, "message": "1 span(s) rejected: 1 with start time after 2106-02-07 06:28:15 UTC"}
    assert not found(client, project, trace_id, LAST_SECOND * NS)["stored"]


@pytest.mark.parametrize("wire", ["protobuf", "json"])
def test_under_a_retention_a_span_is_found_or_rejected_with_the_reason_never_lost(
    client, alice, project, ingest_key, retention, wire
):
    client.force_login(alice)
    now = time.time_ns() // NS
    latest = LAST_SECOND - retention  # 2106-01-08 06:28:15: its expiry is the DateTime's last second
    too_old = "start time older than the retention of 30 days"
    too_late = (
        "start time after 2106-01-08 06:28:15 UTC (a retention of 30 days would end after 2106-02-07 06:28:15 UTC)"
    )
    cases = [
        (0, too_old),  # 1970: the TTL dropped it at insert, answered 200
        ((now - retention - 60) * NS, too_old),
        ((now - retention + 30) * NS, too_old),  # less than a minute left: it would be gone before anyone looks
        ((now - retention + 600) * NS, ""),
        ((now - 3600) * NS, ""),
        (latest * NS + NS - 1, ""),
        ((latest + 1) * NS, too_late),
        (int(dt.datetime(2106, 2, 7, tzinfo=dt.UTC).timestamp()) * NS, too_late),  # its TTL wrapped to 1970
        (LAST_SECOND * NS, too_late),
    ]
    for start, reason in cases:
        trace_id, partial = post_at(client, ingest_key, start, wire)
        where = found(client, project, trace_id, start)
        if reason:
            assert partial == {"rejected": 1, "message": f"1 span(s) rejected: 1 with {reason}"}, start
            assert where == NOWHERE, start
        else:
            assert partial == {"rejected": 0, "message": ""}, start
            assert where == EVERYWHERE, start


def test_a_mixed_export_keeps_the_spans_that_can_be_found(client, alice, project, ingest_key, retention):
    now = time.time_ns()
    spans = [
        S("old", at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)),
        S("fresh"),
        S("far", at=dt.datetime(2106, 2, 1, tzinfo=dt.UTC)),
    ]
    r = client.post(
        "/v1/traces", data=request(*spans).SerializeToString(), content_type=otlp.PROTOBUF_CONTENT_TYPE,
        headers={"Authorization": f"Bearer {ingest_key}"},
    )  # fmt: skip
    answer = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert r.status_code == 200 and answer.rejected_spans == 2
    assert (
        "older than the retention of 30 days" in answer.error_message
        and "start time after 2106-01-08" in answer.error_message
    )
    client.force_login(alice)
    assert found(client, project, spans[1].trace.hex(), now) == EVERYWHERE


def test_the_retention_is_read_from_the_tables_in_the_exporters_units():
    window = otlp.StartWindow.for_retentions((72 * 3600, 30 * DAY), 2_000_000_000 * NS)
    assert window.earliest_ns == (2_000_000_000 - 72 * 3600 + 1 + otlp.RETENTION_MARGIN_S) * NS  # the shortest
    assert window.latest_ns == (LAST_SECOND - 30 * DAY) * NS + NS - 1  # the longest wraps first
    assert window.reason_before == "start time older than the retention of 3 days"
    assert otlp.StartWindow.for_retentions((), 0) == otlp.StartWindow()
    assert otlp.StartWindow.for_retentions((90 * 60,), 0).reason_before.endswith("of 90 minutes")
    schema.set_retention(7)
    try:
        assert schema.span_retentions() == (7 * DAY,) * 3
        # A collector's exporter writes its `ttl: 72h` as hours.
        ttl = "toDateTime(Timestamp) + toIntervalHour(72)"
        clickhouse.command(
            f"ALTER TABLE {schema.table()} MODIFY TTL {ttl} SETTINGS materialize_ttl_after_modify = 0", tag="test"
        )
        schema._retentions.clear()
        assert schema.span_retentions() == (72 * 3600, 7 * DAY, 7 * DAY)
    finally:
        schema.set_retention(0)
    assert schema.span_retentions() == ()
