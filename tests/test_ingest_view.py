"""POST /v1/traces end to end: HTTP codes, nothing half-written, rows as the exporter writes them."""

import gzip
import json

import pytest
from django.test import override_settings
from fixtures.otlp_samples import SAMPLE_JSON_PATH, sample_request
from otlp import S, post, request

from monitoring.ingest import otlp
from monitoring.models import IngestKey
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

_ROW_SQL = """
SELECT toUnixTimestamp64Nano(Timestamp) AS Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName,
       SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration,
       StatusCode, StatusMessage, arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS EventTimes,
       Events.Name AS EventNames, Events.Attributes AS EventAttributes, Links.TraceId AS LinkTraceIds,
       Links.SpanId AS LinkSpanIds, Links.TraceState AS LinkStates, Links.Attributes AS LinkAttributes
FROM {table} WHERE ProjectId = {{project:String}} ORDER BY TraceId, SpanId
"""


def stored(project_id) -> list[dict]:
    return clickhouse.query(_ROW_SQL.format(table=schema.table()), {"project": str(project_id)}, tag="test.rows")


def count(project_id) -> int:
    return len(stored(project_id))


def test_it_stores_protobuf_and_json_as_identical_rows(client, project, other_project):
    pb_key = IngestKey.issue(project)[1]
    json_key = IngestKey.issue(other_project)[1]
    r1 = client.post(
        "/v1/traces",
        data=sample_request().SerializeToString(),
        content_type="application/x-protobuf",
        headers={"Authorization": f"Bearer {pb_key}"},
    )
    r2 = client.post(
        "/v1/traces",
        data=SAMPLE_JSON_PATH.read_bytes(),
        content_type="application/json",
        headers={"Authorization": f"Bearer {json_key}"},
    )
    assert r1.status_code == 200, r1.content
    assert r2.status_code == 200, r2.content
    assert r1["Content-Type"] == "application/x-protobuf"
    assert r2["Content-Type"] == "application/json"
    pb_rows, json_rows = stored(project.id), stored(other_project.id)
    assert len(pb_rows) >= 3
    for row in pb_rows:
        assert row["ResourceAttributes"].pop("project_id") == str(project.id)
    for row in json_rows:
        assert row["ResourceAttributes"].pop("project_id") == str(other_project.id)
    assert pb_rows == json_rows
    kinds = {row["SpanKind"] for row in pb_rows}
    statuses = {row["StatusCode"] for row in pb_rows}
    assert {"Internal", "Server", "Client"} <= kinds  # the fixture also has an unknown kind number, written ''
    assert kinds <= {"", "Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"}
    assert {"Unset", "Ok", "Error"} <= statuses <= {"", "Unset", "Ok", "Error"}
    for row in pb_rows:
        assert len(row["TraceId"]) == 32 and row["TraceId"] == row["TraceId"].lower()
        assert len(row["SpanId"]) == 16


def test_it_keeps_every_attribute_type_as_the_exporter_writes_it(client, project, ingest_key):
    req = request(S("typed", attributes={"i": 42, "f": 0.5, "tiny": 1e-07, "big": 1e21, "b": True, "s": "x"}))
    assert post(client, ingest_key, req).status_code == 200
    [row] = stored(project.id)
    attrs = row["SpanAttributes"]
    assert (attrs["i"], attrs["f"], attrs["tiny"], attrs["big"], attrs["b"], attrs["s"]) == (
        "42",
        "0.5",
        "1e-7",
        "1e+21",
        "true",
        "x",  # pdata strips the exponent's leading zero
    )
    assert row["Duration"] == 100_000_000


def test_it_writes_the_keys_project_whatever_the_sender_says(client, project, other_project, ingest_key):
    req = request(S("spoof"), resource={"project_id": str(other_project.id)})
    assert post(client, ingest_key, req).status_code == 200
    assert count(project.id) == 1
    assert count(other_project.id) == 0


def test_it_accepts_the_key_as_x_api_key(client, project, ingest_key):
    r = client.post(
        "/v1/traces",
        data=request(S("a")).SerializeToString(),
        content_type="application/x-protobuf",
        headers={"X-Api-Key": ingest_key},
    )
    assert r.status_code == 200
    assert count(project.id) == 1


def test_it_accepts_gzip(client, project, ingest_key):
    body = gzip.compress(request(S("zipped")).SerializeToString())
    r = client.post(
        "/v1/traces",
        data=body,
        content_type="application/x-protobuf",
        headers={"Authorization": f"Bearer {ingest_key}", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200
    assert count(project.id) == 1


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer apm_ingest_wrong"}, {"Authorization": "Basic xyz"}])
def test_it_rejects_a_missing_or_wrong_key_with_401(client, project, headers):
    r = client.post(
        "/v1/traces", data=request(S("a")).SerializeToString(), content_type="application/x-protobuf", headers=headers
    )
    assert r.status_code == 401
    assert count(project.id) == 0


def test_it_rejects_a_revoked_key(client, project):
    key, secret = IngestKey.issue(project)
    key.revoke()
    assert post(client, secret, request(S("a"))).status_code == 401
    assert count(project.id) == 0


def test_it_rejects_undecodable_protobuf_with_400_and_a_status_body(client, project, ingest_key):
    r = client.post(
        "/v1/traces",
        data=b"\xff\xff\xff garbage",
        content_type="application/x-protobuf",
        headers={"Authorization": f"Bearer {ingest_key}"},
    )
    assert r.status_code == 400
    status = otlp.Status.FromString(r.content)
    assert status.code == 3 and status.message  # INVALID_ARGUMENT
    assert count(project.id) == 0


def test_it_rejects_bad_json_with_400(client, project, ingest_key):
    r = client.post(
        "/v1/traces",
        data=b'{"resourceSpans": [',
        content_type="application/json",
        headers={"Authorization": f"Bearer {ingest_key}"},
    )
    assert r.status_code == 400
    assert "message" in json.loads(r.content)
    assert count(project.id) == 0


def test_it_rejects_a_wrong_content_type_with_415(client, project, ingest_key):
    r = client.post(
        "/v1/traces", data=b"hello", content_type="text/plain", headers={"Authorization": f"Bearer {ingest_key}"}
    )
    assert r.status_code == 415
    assert count(project.id) == 0


def test_it_rejects_a_body_over_20_mib_with_413(client, project, ingest_key):
    big = b"\x00" * (20 * 1024 * 1024 + 1)
    r = client.post(
        "/v1/traces", data=big, content_type="application/x-protobuf", headers={"Authorization": f"Bearer {ingest_key}"}
    )
    assert r.status_code == 413
    assert count(project.id) == 0


def test_it_rejects_a_gzip_bomb_with_413(client, project, ingest_key):
    bomb = gzip.compress(b"\x00" * (21 * 1024 * 1024))
    r = client.post(
        "/v1/traces",
        data=bomb,
        content_type="application/x-protobuf",
        headers={"Authorization": f"Bearer {ingest_key}", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 413
    assert count(project.id) == 0


def test_it_answers_503_with_retry_after_when_clickhouse_is_down_and_the_spool_is_off(
    client, project, ingest_key, settings
):
    settings.INGEST = {**settings.INGEST, "SPOOL_MAX_BYTES": 0}
    down = {**clickhouse.settings.CLICKHOUSE, "HOST": "127.0.0.1", "PORT": 1, "CONNECT_TIMEOUT": 2.0}
    with override_settings(CLICKHOUSE=down):
        r = post(client, ingest_key, request(S("lost?")))
    assert r.status_code == 503
    assert int(r["Retry-After"]) > 0
    assert count(project.id) == 0  # and the exporter keeps the batch to send again


def test_it_reports_rejected_spans_as_partial_success(client, project, ingest_key):
    req = request(S("good"), S("bad"))
    req.resource_spans[0].scope_spans[0].spans[1].span_id = b""
    r = post(client, ingest_key, req)
    assert r.status_code == 200
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    response = ExportTraceServiceResponse.FromString(r.content)
    assert response.partial_success.rejected_spans == 1
    assert count(project.id) == 1


def test_it_only_takes_post(client, ingest_key):
    assert client.get("/v1/traces", headers={"Authorization": f"Bearer {ingest_key}"}).status_code == 405
