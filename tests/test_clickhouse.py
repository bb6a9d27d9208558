"""The one way into ClickHouse, on both backends: embedded chdb, and clickhouse-driver over the
native protocol to the same engine served on a loopback port (tests/native_server.py)."""

import pytest
from django.test import override_settings
from native_server import start_native_server, stop_native_server

from monitoring.store import clickhouse, schema

TRICKY = ["plain", "it's", 'say "hi"', "back\\slash", "new\nline", "tab\there", "ünïcødé", "'; DROP TABLE x; --"]


@pytest.fixture(scope="module")
def native_port(tmp_path_factory):
    try:
        proc, port = start_native_server(str(tmp_path_factory.mktemp("native-engine")))
    except RuntimeError as exc:
        pytest.skip(f"cannot serve the engine over the native protocol here: {exc}")
    yield port
    stop_native_server(proc)


@pytest.fixture(params=["embedded", "server"])
def backend(request, settings):
    if request.param == "server":
        port = request.getfixturevalue("native_port")
        settings.CLICKHOUSE = {**settings.CLICKHOUSE, "HOST": "127.0.0.1", "PORT": port, "DATABASE": "otel_native"}
    else:
        settings.CLICKHOUSE = {**settings.CLICKHOUSE, "DATABASE": "otel_embedded_test"}
    schema.ensure_schema(ttl_days=0)
    return request.param


def test_it_binds_every_parameter_exactly(backend):
    for text in TRICKY:
        row = clickhouse.query_one(
            "SELECT {s:String} AS s, {n:Int64} AS n, {f:Float64} AS f",
            {"s": text, "n": -(2**62), "f": 0.25},
            tag="test.params",
        )
        assert row == {"s": text, "n": -(2**62), "f": 0.25}
    row = clickhouse.query_one("SELECT {a:Array(String)} AS a", {"a": TRICKY}, tag="test.params")
    assert row["a"] == TRICKY


def test_it_inserts_rows_with_nanoseconds_maps_and_nested_columns(backend):
    ts = 1_764_000_000_123_456_789
    row = dict.fromkeys(schema.TRACE_COLUMNS, "") | {
        "Timestamp": ts,
        "TraceId": "t" * 32,
        "SpanId": "s" * 16,
        "SpanName": "n",
        "ServiceName": "svc",
        "ResourceAttributes": {"project_id": "p-" + backend, "it's": "x\ny"},
        "SpanAttributes": {"gen_ai.usage.input_tokens": "7", "llm.model_name": "m"},
        "Duration": 5,
        "Events.Timestamp": [ts + 1],
        "Events.Name": ["exception"],
        "Events.Attributes": [{"exception.type": "E"}],
        "Links.TraceId": [],
        "Links.SpanId": [],
        "Links.TraceState": [],
        "Links.Attributes": [],
    }
    clickhouse.insert(
        schema.table(), schema.TRACE_COLUMNS, [row], tag="test.insert", nanos_columns=schema.NANOS_COLUMNS
    )
    got = clickhouse.query_one(
        f"SELECT toUnixTimestamp64Nano(Timestamp) AS ts, arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS ev,"
        f" ResourceAttributes AS ra, Model, InputTokens, IsLLMCall FROM {schema.table()} WHERE ProjectId = {{p:String}}",
        {"p": "p-" + backend},
        tag="test.read",
    )
    assert got == {
        "ts": ts,
        "ev": [ts + 1],
        "ra": {"project_id": "p-" + backend, "it's": "x\ny"},
        "Model": "m",
        "InputTokens": 7,
        "IsLLMCall": 0,
    }


def test_it_classifies_a_bad_query(backend):
    with pytest.raises(clickhouse.ClickHouseError) as exc:
        clickhouse.query("SELEC 1", tag="test.bad")
    assert exc.value.kind == clickhouse.QUERY and exc.value.code == 62 and exc.value.tag == "test.bad"


def test_it_classifies_a_timeout(backend, settings):
    with pytest.raises(clickhouse.ClickHouseError) as exc:
        clickhouse.query("SELECT sleep(2) SETTINGS max_execution_time = 1", tag="test.slow")
    assert exc.value.kind == clickhouse.TIMEOUT


def test_schema_setup_is_idempotent(backend):
    first = schema.existing_columns()
    again = schema.ensure_schema(ttl_days=0)
    assert schema.existing_columns() == first
    assert not any("MODIFY COLUMN" in sql or "ADD COLUMN" in sql for sql in again)  # nothing left to do
    # The by-trace-id projection is added and materialized once, not rewritten at every start.
    assert schema.has_trace_projection() and not any("PROJECTION" in sql for sql in again)


def test_it_reports_an_unreachable_server():
    with override_settings(
        CLICKHOUSE={**clickhouse.settings.CLICKHOUSE, "HOST": "127.0.0.1", "PORT": 1, "CONNECT_TIMEOUT": 2.0}
    ):
        with pytest.raises(clickhouse.ClickHouseError) as exc:
            clickhouse.query("SELECT 1", tag="test.down")
    assert exc.value.kind == clickhouse.UNAVAILABLE and exc.value.retryable


def test_it_completes_a_table_a_stock_collector_made_without_losing_rows(settings, monkeypatch):
    monkeypatch.setattr(clickhouse, "on_embedded_open", None)  # start from the collector's table alone
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "DATABASE": "otel_stock"}
    clickhouse.command("CREATE DATABASE IF NOT EXISTS otel_stock", tag="test")
    # The exporter's own DDL, with nothing of ours.
    ddl = schema._traces_ddl(0)
    clickhouse.command(ddl, tag="test")
    clickhouse.command(
        "INSERT INTO otel_stock.otel_traces (Timestamp, TraceId, SpanId, SpanName, ServiceName, ResourceAttributes, SpanAttributes, Duration, StatusCode)"
        " VALUES (now64(9), 'a', 'b', 'litellm_request', 'litellm-proxy', {'project_id':'p1'},"
        " {'gen_ai.usage.input_tokens':'3','litellm.model_group':'gpt-4o'}, 10, 'Error')",
        tag="test",
    )
    assert "ProjectId" not in schema.existing_columns()
    schema.ensure_schema(ttl_days=0)
    columns = schema.existing_columns()
    assert {"ProjectId", "Model", "InputTokens", "IsLLMCall", "IsError"} <= set(columns)
    row = clickhouse.query_one(
        "SELECT count() AS n, any(ProjectId) AS p, any(Model) AS m, any(InputTokens) AS i, any(IsError) AS e"
        " FROM otel_stock.otel_traces",
        tag="test",
    )
    assert row == {"n": 1, "p": "p1", "m": "gpt-4o", "i": 3, "e": 1}
    assert schema.has_trace_projection()  # the collector's table gets it too (its rows by a mutation)
    names = {r["name"] for r in clickhouse.query("SHOW TABLES FROM otel_stock", tag="test")}
    assert {"otel_traces", "otel_traces_trace_id_ts", "otel_traces_trace_id_ts_mv"} <= names


def test_a_server_that_refuses_the_projection_still_gets_the_whole_schema(settings, monkeypatch, caplog):
    """The by-trace-id projection only speeds trace reads: refused (an older server, an exporter
    configured with another engine), it is logged with the statement to run, and the rest stands."""
    import logging

    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "DATABASE": "otel_no_projection"}
    monkeypatch.setattr(
        schema,
        "_trace_projection_ddl",
        lambda name, on_cluster="": f"ALTER TABLE {schema.table(name)} ADD PROJECTION p (SELECT Nope ORDER BY TraceId)",
    )
    with caplog.at_level(logging.WARNING, logger="monitoring.store.schema"):
        schema.ensure_schema(ttl_days=0)
    assert all(schema._exists(name) for name in (schema.SPANS, schema.CALLS, schema.SETTLE_STATE, *schema.ROLLUPS))
    assert not schema.has_trace_projection() and "ADD PROJECTION p" in caplog.text


def test_it_updates_a_derived_column_whose_definition_changed(settings, monkeypatch):
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "DATABASE": "otel_evolve"}
    schema.ensure_schema(ttl_days=0)
    from monitoring.semantics import semconv

    monkeypatch.setattr(semconv, "MODEL", (semconv.Key("my.model", "a test's SDK"), *semconv.MODEL))
    ran = schema.ensure_schema(ttl_days=0)
    assert [sql for sql in ran if "MODIFY COLUMN Model " in sql]
    assert not [sql for sql in ran if "MODIFY COLUMN IsError" in sql]  # rules that do not read the model stay


def test_the_search_indexes_are_set_up_and_searched_on_both_backends(backend):
    """The text indexes of the full-text search (schema.py) on a server too, and a search through it:
    Korean found as typed and as JSON escapes it, an absent word not at all."""
    import datetime as dt
    import json

    from monitoring.queries import spans as spans_q
    from monitoring.queries.filter import SpanFilter, Window

    indexes = (schema.SEARCH_INDEX, schema.SEARCH_LONG_INDEX)
    assert all(schema.has_search_index(t, i) for t in (schema.TRACES, schema.LOGS) for i in indexes)
    now = dt.datetime.now(dt.UTC)
    ts = int(now.timestamp()) * 10**9
    project = "search-" + backend
    rows = [
        dict.fromkeys(schema.TRACE_COLUMNS, "")
        | {
            "Timestamp": ts - i,
            "TraceId": f"{i:032x}",
            "SpanId": f"{i:016x}",
            "SpanName": "chat",
            "ServiceName": "svc",
            "ResourceAttributes": {"project_id": project},
            "SpanAttributes": {"gen_ai.input.messages": text},
            "Duration": 5,
            **{c: [] for c in schema.TRACE_COLUMNS if c.startswith(("Events.", "Links."))},
        }
        for i, text in enumerate([json.dumps("환불 부탁해요"), "환불 부탁해요", "nothing here"], start=1)
    ]
    clickhouse.insert(schema.table(), schema.TRACE_COLUMNS, rows, tag="test.insert", nanos_columns=schema.NANOS_COLUMNS)
    flt = SpanFilter(project, Window(now - dt.timedelta(days=30), now + dt.timedelta(minutes=1)))

    def found(q: str) -> list[str]:
        return [r.span_id for r in spans_q.list_spans(flt, spans_q.ListQuery(kind="all", q=q)).items]

    assert found("환불") == [f"{1:016x}", f"{2:016x}"]  # newest first
    assert found("불 부탁") == [f"{1:016x}", f"{2:016x}"]  # by the trigrams, as typed and as escaped
    assert found("no such word") == []
