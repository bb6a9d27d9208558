"""No accepted span lost, no storable span refused: the reproductions of issue 9 ("spans lost or blocked").

Through the Django test client against the real embedded engine; the spool tests point the server
mode at a closed port (a real connection refusal) and back.
"""

from __future__ import annotations

import gzip
import json
import time

import pytest
from django.test import override_settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from otlp import S, post, request

from monitoring.ingest import batcher, otlp
from monitoring.ingest.spool import Spool
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

NS = 1_000_000_000


def rows(project_id) -> list[dict]:
    return clickhouse.query(
        f"SELECT SpanName, toUnixTimestamp64Nano(Timestamp) AS ts, Duration,"
        f" arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS event_times"
        f" FROM {schema.table()} WHERE ProjectId = {{p:String}} ORDER BY SpanName",
        {"p": str(project_id)},
        tag="test.rows",
    )


def count(project_id) -> int:
    return len(rows(project_id))


def response(r) -> ExportTraceServiceResponse:
    return ExportTraceServiceResponse.FromString(r.content)


def thousand_and_one(poison) -> object:
    req = request(*[S(f"good-{i:04d}") for i in range(1000)], S("poison"))
    span = next(s for s in req.resource_spans[0].scope_spans[0].spans if s.name == "poison")
    poison(span)
    return req


def _start_zero(span):
    span.start_time_unix_nano = 0


def _event_zero(span):
    span.events.add(time_unix_nano=0, name="at-zero")


@pytest.mark.parametrize("poison", [_start_zero, _event_zero], ids=["start-time-0", "event-time-0"])
def test_a_time_of_zero_never_sinks_the_batch(client, project, ingest_key, poison):
    r = post(client, ingest_key, thousand_and_one(poison))

    assert r.status_code == 200, r.content
    assert response(r).partial_success.rejected_spans == 0
    stored = rows(project.id)
    assert len(stored) == 1001
    [zero] = [row for row in stored if row["SpanName"] == "poison"]
    assert 0 in (zero["ts"], *zero["event_times"])  # 1970-01-01 00:00:00, as the collector writes it


def test_a_span_after_2106_is_rejected_in_partial_success_and_the_rest_stored(client, project, ingest_key):
    def after_2106(span):
        span.start_time_unix_nano = (2**32) * NS  # 2106-02-07 06:28:16, one second past DateTime
        span.end_time_unix_nano = span.start_time_unix_nano + 5

    r = post(client, ingest_key, thousand_and_one(after_2106))

    assert r.status_code == 200
    assert response(r).partial_success.rejected_spans == 1
    assert "2106" in response(r).partial_success.error_message
    assert count(project.id) == 1000


def test_the_last_second_of_2106_is_stored(client, project, ingest_key):
    req = request(S("edge"))
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.start_time_unix_nano = (2**32 - 1) * NS
    span.end_time_unix_nano = span.start_time_unix_nano + 1

    r = post(client, ingest_key, req)

    assert r.status_code == 200 and response(r).partial_success.rejected_spans == 0
    assert rows(project.id)[0]["ts"] == (2**32 - 1) * NS


def test_a_span_without_an_end_time_is_stored_with_the_exporters_wrapped_duration(client, project, ingest_key):
    req = request(S("running"), S("ended"))
    running = req.resource_spans[0].scope_spans[0].spans[0]
    start = running.start_time_unix_nano
    running.end_time_unix_nano = 0

    assert post(client, ingest_key, req).status_code == 200

    by_name = {row["SpanName"]: row for row in rows(project.id)}
    # Go: uint64(time.Unix(0,0).Sub(time.Unix(0,start))) == 2**64 - start; readers see >= 2**63 as "no end".
    assert by_name["running"]["Duration"] == 2**64 - start
    assert by_name["running"]["Duration"] >= 2**63
    assert by_name["ended"]["Duration"] == 100_000_000


@pytest.mark.parametrize(
    ("start", "end", "duration"),
    [
        (10, 25, 15),
        (25, 10, 2**64 - 15),
        (0, 2**64 - 1, 2**64 - 1),  # end wraps to int64 -1 in Go: -1 - 0 = -1 -> 2**64 - 1
        # int64 max -> int64 min: time.Time.Sub saturates at minDuration (-2**63), which wraps to 2**63
        (2**63 - 1, 2**63, 2**63),
    ],
)
def test_duration_is_the_exporters_go_arithmetic(start, end, duration):
    assert otlp.exporter_duration(start, end) == duration


def test_a_chunked_body_is_not_read_as_empty_by_the_view(client, project, ingest_key):
    """The test client cannot send chunks: the view's reader is checked with a WSGI stream that has
    no CONTENT_LENGTH, as gunicorn hands a chunked body over. The live-server test sends real chunks."""
    import io

    from django.core.handlers.wsgi import WSGIRequest
    from django.test import RequestFactory

    from monitoring.ingest.receiver import otlp_traces

    body = request(*[S(f"c{i}") for i in range(100)]).SerializeToString()
    environ = RequestFactory()._base_environ(
        REQUEST_METHOD="POST",
        PATH_INFO="/v1/traces",
        CONTENT_TYPE="application/x-protobuf",
        HTTP_AUTHORIZATION=f"Bearer {ingest_key}",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.input_terminated"] = True
    req = WSGIRequest(environ)

    r = otlp_traces(req)

    assert r.status_code == 200
    assert count(project.id) == 100


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":1e400}]}]}]}',
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":1e400}]}]}]}',
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"\\ud800"}]}]}]}',
    ],
    ids=["1e400-enum", "1e400-int", "surrogate-id"],
)
def test_hostile_json_is_a_400_with_a_readable_status(client, project, ingest_key, body):
    for raw in (body, gzip.compress(body)):
        headers = {"Authorization": f"Bearer {ingest_key}"}
        if raw is not body:
            headers["Content-Encoding"] = "gzip"
        r = client.post("/v1/traces", data=raw, content_type="application/json", headers=headers)
        assert r.status_code == 400, r.content
        assert json.loads(r.content)["code"] == 3
    assert count(project.id) == 0


def test_json_with_lone_surrogates_is_stored_with_u_fffd(client, project, ingest_key):
    """Valid JSON whose strings hold a lone UTF-16 surrogate (a JavaScript string cut between a pair's
    halves): U+FFFD for it, the export stored; a surrogate in an id or enum is the bad value it was."""
    span = (
        f'{{"traceId":"{"ab" * 16}","spanId":"{"cd" * 8}","name":"cut \\ud83d","kind":"\\ud800",'
        '"attributes":[{"key":"\\udfffk","value":{"stringValue":"v\\ud800"}}]}'
    )
    body = ('{"resourceSpans":[{"\\udfff":1,"scopeSpans":[{"spans":[' + span + "]}]}]}").encode()

    r = client.post(
        "/v1/traces", data=body, content_type="application/json", headers={"Authorization": f"Bearer {ingest_key}"}
    )

    assert r.status_code == 200 and json.loads(r.content) == {}, r.content
    (row,) = clickhouse.query(
        f"SELECT SpanName, SpanKind, SpanAttributes FROM {schema.table()} WHERE ProjectId = {{p:String}}",
        {"p": str(project.id)},
        tag="test.rows",
    )
    assert (row["SpanName"], row["SpanKind"]) == ("cut \ufffd", "Unspecified")  # an unknown enum name, as "FOO"
    assert row["SpanAttributes"] == {"\ufffdk": "v\ufffd"}


def test_an_error_message_echoing_a_surrogate_is_encodable():
    body, content_type = otlp.status_body("application/x-protobuf", 400, "bad \ud800 key")
    assert otlp.Status.FromString(body).message == "bad \\ud800 key"
    assert otlp.encode_response("application/json", 1, "x \udfff")


# --- the spool -----------------------------------------------------------------------------


def _down():
    return {**clickhouse.settings.CLICKHOUSE, "HOST": "127.0.0.1", "PORT": 1, "CONNECT_TIMEOUT": 1.0}


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_an_outage_spools_batches_and_they_are_stored_when_clickhouse_is_back(client, project, ingest_key, settings):
    with override_settings(CLICKHOUSE=_down()):
        answers = [post(client, ingest_key, request(*[S(f"b{b}-{i}") for i in range(50)])) for b in range(4)]
        stats = batcher.spool_stats()
    assert [a.status_code for a in answers] == [200] * 4
    assert stats.batches >= 1 and stats.spans == 200  # all of them held in the spool, none stored
    # (Not asserted here that nothing is stored yet: a flusher from an earlier test may drain at once.)
    batcher.writer()  # back on the embedded engine: the flusher drains the spool
    assert _wait_for(lambda: count(project.id) == 200)
    assert _wait_for(lambda: batcher.spool_stats().empty)


def test_a_full_spool_answers_503_with_retry_after(client, project, ingest_key, settings):
    settings.INGEST = {**settings.INGEST, "SPOOL_MAX_BYTES": 2000}
    with override_settings(CLICKHOUSE=_down()):
        first = post(client, ingest_key, request(*[S(f"x{i}", attributes={"k": "v" * 50}) for i in range(10)]))
        second = post(client, ingest_key, request(*[S(f"y{i}", attributes={"k": "w" * 50}) for i in range(40)]))
    assert first.status_code == 200
    assert second.status_code == 503
    assert int(second["Retry-After"]) > 0
    batcher.writer()
    assert _wait_for(lambda: count(project.id) == 10)


def test_spool_files_are_complete_and_drained_oldest_first(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**7)
    spool.append([{"n": 1}])
    spool.append([{"n": 2}, {"n": 3}])
    assert (spool.stats().batches, spool.stats().spans) == (2, 3)
    assert not list(tmp_path.glob(".*.tmp"))

    seen = []
    assert spool.drain(lambda rows: seen.extend(r["n"] for r in rows)) == 3
    assert seen == [1, 2, 3]
    assert spool.stats().empty


def test_a_failed_drain_keeps_the_batch(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**7)
    spool.append([{"n": 1}])

    def fail(rows):
        raise clickhouse.ClickHouseError("down", kind=clickhouse.UNAVAILABLE)

    with pytest.raises(clickhouse.ClickHouseError):
        spool.drain(fail)
    assert spool.stats().spans == 1


def _writer_config(tmp_path, **overrides) -> dict:
    """A SpanWriter's settings for these tests: short batches, a spool in tmp_path."""
    return {
        "BATCH_SECONDS": 0.01,
        "BATCH_MAX_SPANS": 1000,
        "MAX_QUEUED_SPANS": 10000,
        "ACK_TIMEOUT": 30,
        "SPOOL_DIR": str(tmp_path),
        "SPOOL_MAX_BYTES": 10**7,
        **overrides,
    }


def test_rows_clickhouse_refuses_are_found_and_only_they_rejected(tmp_path, project):
    """A value our row builder let through but the engine refuses: bisection stores the others."""

    def store(batch):
        # The real insert; a row whose SpanAttributes is not a map makes the real engine refuse the insert.
        clickhouse.insert(schema.table(), schema.TRACE_COLUMNS, batch, tag="test", nanos_columns=schema.NANOS_COLUMNS)

    result = otlp.rows_from_request(request(*[S(f"r{i:02d}") for i in range(20)]), str(project.id))
    result.rows[7]["SpanAttributes"] = "not a map"
    config = _writer_config(tmp_path)
    writer = batcher.SpanWriter(config, store=store)
    try:
        outcome = writer.submit(result.rows)
    finally:
        writer.stop()

    assert (outcome.status, outcome.stored, outcome.rejected) == (batcher.STORED, 19, 1)
    assert "not storable" in outcome.error_message
    assert count(project.id) == 19


@pytest.mark.parametrize(
    ("code", "retryable"), [(252, True), (202, True), (210, True), (241, True), (41, False), (62, False)]
)
def test_only_failures_a_retry_can_cure_are_retryable(code, retryable):
    kind = clickhouse._kind_of_code(code)
    assert clickhouse.ClickHouseError("x", kind=kind).retryable is retryable


def test_a_full_queue_answers_busy_instead_of_growing_without_bound(tmp_path):
    import threading

    release = threading.Event()

    def slow_store(batch):
        release.wait(10)

    config = _writer_config(tmp_path, BATCH_MAX_SPANS=10, MAX_QUEUED_SPANS=10, WRITERS=1)
    writer = batcher.SpanWriter(config, store=slow_store)
    results = []
    try:
        first = threading.Thread(target=lambda: results.append(writer.submit([{"n": i} for i in range(10)])))
        first.start()
        time.sleep(0.3)  # the writer holds the first batch in its (slow) insert
        second = threading.Thread(target=lambda: results.append(writer.submit([{"n": i} for i in range(10)])))
        second.start()
        time.sleep(0.3)  # queued: 10 spans, the limit
        assert writer.submit([{"n": 0}]).status == batcher.BUSY
        release.set()
        first.join(10)
        second.join(10)
    finally:
        release.set()
        writer.stop()
    assert sorted(r.status for r in results) == [batcher.STORED] * 2


def test_a_spooled_file_is_kept_when_its_refused_rows_bisection_meets_an_outage_and_a_full_spool(tmp_path, project):
    """Draining a file whose insert the engine refuses bisects it; if ClickHouse then goes away and
    the rest cannot be spooled again (spool full), the drain must fail (the file stays for the next
    one) instead of returning as if the file were stored: its rows were acknowledged."""
    calls = []

    def store(batch):
        calls.append(len(batch))
        if len(calls) <= 2:  # the drain's insert, then bisection's first try of the whole
            raise clickhouse.ClickHouseError("Cannot parse input", kind=clickhouse.QUERY)
        if len(calls) == 3:
            return  # the first half is stored
        raise clickhouse.ClickHouseError("Connection refused", kind=clickhouse.UNAVAILABLE)

    rows = otlp.rows_from_request(request(*[S(f"r{i:02d}") for i in range(8)]), str(project.id)).rows
    config = _writer_config(tmp_path, SPOOL_MAX_BYTES=1)  # full: nothing can be spooled again
    writer = batcher.SpanWriter(config, store=store)
    try:
        with pytest.raises(clickhouse.ClickHouseError) as raised:
            writer._drain_store(rows)
    finally:
        writer.stop()
    assert raised.value.retryable and calls == [8, 8, 4, 4]
