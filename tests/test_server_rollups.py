"""Server mode keeps the same settled facts and rollups as the embedded engine: the schema made on
a server reached over the native protocol (tests/native_server.py) holds every derived table, the
settler fills them, and every question gets the same answer from both, over a short window (raw
settled rows) and a long one (rollup slices)."""

import datetime as dt

import pytest
from native_server import start_native_server, stop_native_server

from demo import traffic
from monitoring.ingest import otlp
from monitoring.queries import breakdowns, flow, latency, runs, timeseries
from monitoring.queries import overview as overview_q
from monitoring.queries.filter import SpanFilter, Window
from monitoring.queries.spans import ListQuery, list_spans
from monitoring.semantics import scoping, settle
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def native_port(tmp_path_factory):
    try:
        proc, port = start_native_server(str(tmp_path_factory.mktemp("native-rollups")))
    except RuntimeError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"cannot serve the engine over the native protocol here: {exc}")
    yield port
    stop_native_server(proc)


def answers(project_id: str) -> dict:
    found = {}
    for hours in (1, 48):
        flt = SpanFilter(project_id, Window(NOW - dt.timedelta(hours=hours), NOW))
        found[f"overview {hours}"] = overview_q.overview(flt).as_dict()
        series = timeseries.timeseries(flt)
        found[f"series {hours}"] = (series.values, series.runs, series.failed_runs)
        found[f"breakdowns {hours}"] = {k: [vars(s) for s in v] for k, v in breakdowns.breakdowns(flt).items()}
        found[f"latency {hours}"] = latency.latency(flt)
        graph = flow.agent_flow(flt)
        found[f"flow {hours}"] = (graph.runs, [vars(n) for n in graph.nodes], graph.edges)
        found[f"runs {hours}"] = [vars(r) for r in runs.list_runs(flt, runs.RunQuery(limit=500)).items]
        found[f"llm {hours}"] = [r.as_dict() for r in list_spans(flt, ListQuery(kind="llm", limit=500)).items]
    return found


def settled_answers(settings, project_id: str, requests) -> tuple[dict, set[str]]:
    schema.ensure_schema(ttl_days=0)
    for req in requests:
        rows, _ = otlp.rows_from_request(req, project_id)
        clickhouse.insert(
            schema.table(), schema.TRACE_COLUMNS, rows, tag="test.load", nanos_columns=schema.NANOS_COLUMNS
        )
    scoping.forget_state()
    settle.settle_once()
    tables = {
        r["name"]
        for r in clickhouse.query(
            "SELECT name FROM system.tables WHERE database = {db:String}", {"db": clickhouse.database()}, tag="test"
        )
    }
    return answers(project_id), tables


def test_the_server_holds_the_same_facts_and_rollups_as_the_embedded_engine(settings, project, native_port):
    settings.SETTLE_FRESH_SECONDS = 1e12  # settled facts and rollups only: what the settler stored
    requests = [req for req, _ in traffic.generate_requests(days=2, runs_per_day=15, seed=5, now=NOW)]
    project_id = str(project.id)
    base = settings.CLICKHOUSE
    settings.CLICKHOUSE = {**base, "DATABASE": "otel_rollups_embedded"}
    embedded, embedded_tables = settled_answers(settings, project_id, requests)
    settings.CLICKHOUSE = {**base, "HOST": "127.0.0.1", "PORT": native_port, "DATABASE": "otel_rollups_server"}
    try:
        served, served_tables = settled_answers(settings, project_id, requests)
    finally:
        settings.CLICKHOUSE = base
        scoping.forget_state()
    derived = {*schema.SETTLED, *schema.ROLLUPS, schema.SPANS, schema.SETTLE_STATE}
    assert derived <= served_tables and derived <= embedded_tables
    assert embedded["overview 48"]["llm_calls"] > 50 and embedded["flow 48"][0] > 10
    for key in embedded:
        assert served[key] == embedded[key], key
