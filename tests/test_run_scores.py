"""A run carries its scores (issue 20: the runs list's score column, filter and sort at 10M spans):
settled with the run, re-settled when a score is written, replaced or deleted, live while the
settler is behind, and given to the runs settled before an upgrade — against the real engine."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from otlp import S, send

from monitoring.quality import scores as writes
from monitoring.queries import live
from monitoring.queries import runs as runs_q
from monitoring.queries import scores as scores_q
from monitoring.queries.filter import SpanFilter, Window
from monitoring.semantics import scoping, settle
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
AGENT = {"openinference.span.kind": "AGENT"}


def agent_run(at: dt.datetime) -> tuple[S, S]:
    root = S("support_agent", service="agent-support", at=at, ms=500, attributes=AGENT)
    call = root.child(
        "chat gpt-4o",
        at=at + dt.timedelta(milliseconds=10),
        ms=50,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
    )
    return root, call


def hour(project) -> SpanFilter:
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    return SpanFilter(str(project.id), Window(end - dt.timedelta(hours=1), end, "1h"))


def listed(project, **query) -> list[runs_q.RunRow]:
    rq = runs_q.RunQuery.from_query(query)
    return runs_q.list_runs(hour(project), rq).items


def score(project, run: S, name: str, *, span: S | None = None, value=None, label="", score_id="") -> writes.Score:
    target = writes.Target(trace_id=run.trace.hex(), span_id=span.span_id.hex() if span else "")
    return writes.record(project, target, name, value=value, label=label, source="api", author="t", score_id=score_id)


@pytest.fixture
def own_database(settings):
    """A database of this test's own, for a test that changes the schema (the engine is shared)."""
    name = f"otel_run_scores_{uuid.uuid4().hex[:12]}"
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "DATABASE": name}
    schema.ensure_schema(ttl_days=0)
    scoping.forget_state()
    yield name
    clickhouse.command(f"DROP DATABASE IF EXISTS {name} SYNC", tag="test.drop")
    scoping.forget_state()


@pytest.fixture
def runs(client, project, ingest_key, settings):
    """Three settled runs a (newest), b, c; pages read settled facts only."""
    made = {k: agent_run(NOW - dt.timedelta(minutes=m)) for k, m in (("a", 5), ("b", 10), ("c", 15))}
    for root, call in made.values():
        send(client, ingest_key, root, call)
    settle.settle_once()
    settings.SETTLE_FRESH_SECONDS = 1e12  # settled facts only: what the settler stored
    scoping.forget_state()
    return made


def ids(found: list[runs_q.RunRow], made: dict) -> list[str]:
    names = {root.trace.hex(): key for key, (root, _) in made.items()}
    return [names[r.trace_id] for r in found]


def test_the_runs_list_filters_and_sorts_on_the_scores_settled_with_each_run(project, runs):
    a, b = runs["a"], runs["b"]
    score(project, a[0], "relevance", value=0.9)
    on_call = score(project, a[0], "relevance", span=a[1], value=0.3)
    score(project, b[0], "relevance", value=0.2)
    score(project, b[0], "verdict", label="fail")
    score(project, a[0], "verdict", label="pass")
    # The scores wait for the settler's next pass (a second at most), as a span does.
    assert all(not r.scores for r in listed(project))
    report = settle.settle_once()
    assert report.traces == 2 and report.runs_written > 0
    scoping.forget_state()
    by_id = dict(zip(ids(listed(project), runs), listed(project), strict=True))
    assert by_id["a"].scores == {
        "relevance": {"value": 0.6, "label": "", "count": 2},
        "verdict": {"value": None, "label": "pass", "count": 1},
    }
    assert by_id["b"].scores["relevance"] == {"value": 0.2, "label": "", "count": 1}
    assert by_id["c"].scores == {}
    assert ids(listed(project, score="relevance:lt:0.5"), runs) == ["b"]
    assert ids(listed(project, score="relevance:gt:0.5"), runs) == ["a"]
    assert ids(listed(project, score="relevance:missing"), runs) == ["c"]
    assert ids(listed(project, score="relevance:exists"), runs) == ["a", "b"]
    assert ids(listed(project, score="relevance:eq:0.6"), runs) == ["a"]
    assert ids(listed(project, score="verdict:eq:fail"), runs) == ["b"]
    assert ids(listed(project, score="verdict:ne:fail"), runs) == ["a", "c"]
    assert ids(listed(project, sort="score:relevance"), runs) == ["a", "b", "c"]
    # A page of one continues below its cursor, the run without the score last.
    first = runs_q.list_runs(hour(project), runs_q.RunQuery(sort="score:relevance", limit=1))
    rest = runs_q.list_runs(
        hour(project),
        runs_q.RunQuery(sort="score:relevance", limit=5, cursor=runs_q.RunCursor.decode(first.next_cursor)),
    )
    assert ids(first.items + rest.items, runs) == ["a", "b", "c"]
    # A deleted score leaves its run at the next pass; a pass with nothing new writes nothing.
    writes.delete(str(project.id), scores_q.get(str(project.id), on_call.score_id))
    settle.settle_once()
    scoping.forget_state()
    assert listed(project, score="relevance:gt:0.5")[0].scores["relevance"] == {"value": 0.9, "label": "", "count": 1}
    assert settle.settle_once().runs_written == 0
    # A score written again as it was (a retry with its id) re-settles its run, which does not change.
    score(project, b[0], "verdict", label="fail", score_id="v-b")
    settle.settle_once()
    score(project, b[0], "verdict", label="fail", score_id="v-b")
    report = settle.settle_once()
    assert report.traces == 1 and report.runs_written == 0


def test_a_score_after_the_settlers_last_pass_is_counted_live_while_it_is_behind(project, runs, settings):
    time.sleep(scoping.OVERLAP_NS / 1e9 + 0.1)  # the runs' spans now lie before what a page re-reads
    score(project, runs["a"][0], "other", value=1.0)
    assert settle.settle_once().traces == 1
    settings.SETTLE_FRESH_SECONDS = 0  # behind: pages add what the settler has not seen yet
    scoping.forget_state()
    score(project, runs["c"][0], "relevance", value=0.25)
    found = listed(project, score="relevance:lt:0.5")
    assert ids(found, runs) == ["c"] and found[0].scores["relevance"]["value"] == 0.25
    unsettled = live.scope(hour(project))
    assert unsettled is not None
    traces = clickhouse.query(unsettled.traces.text, unsettled.traces.params, tag="test.live")
    # c, and a, whose score is inside the 2 s a page re-reads before the settler's mark; b is not live.
    assert sorted(t["TraceId"] for t in traces) == sorted(runs[k][0].trace.hex() for k in ("a", "c"))


def test_an_upgrade_gives_the_runs_settled_before_it_their_scores(own_database, client, project, runs, ingest_key):
    from test_quality import evaluation, logs_request, post_logs

    a, b = runs["a"], runs["b"]
    score(project, a[0], "relevance", value=0.75)
    score(project, b[0], "verdict", label="fail")
    gone = score(project, b[0], "relevance", value=0.1)
    writes.delete(str(project.id), gone)
    settle.settle_once()
    schema.set_retention(7)  # set by an operator since: kept by the upgrade
    # The tables as the last release made them: runs without score columns; scores ordered by
    # ScoreId alone, without InsertedAt; no mark of the runs' scores.
    runs_table, scores, old = schema.table(schema.RUNS), schema.table(schema.SCORES), schema.table("scores_old")
    columns = ", ".join(schema.SCORE_COLUMNS)
    for sql in (
        *(f"ALTER TABLE {runs_table} DROP COLUMN {c}" for c in schema.RUN_SCORE_COLUMNS),
        f"CREATE TABLE {old} AS {scores} ENGINE = ReplacingMergeTree(Version, IsDeleted) ORDER BY (ProjectId, ScoreId)"
        " TTL toDateTime(Timestamp) + toIntervalDay(7)",
        f"ALTER TABLE {old} DROP INDEX idx_inserted",
        f"ALTER TABLE {old} DROP COLUMN InsertedAt",
        f"INSERT INTO {old} ({columns}) SELECT {columns} FROM {scores}",
        f"EXCHANGE TABLES {scores} AND {old}",
        f"DROP TABLE {old}",
        f"ALTER TABLE {schema.table(schema.SETTLE_STATE)} DELETE WHERE Name = 'run-scores' SETTINGS mutations_sync = 2",
    ):
        clickhouse.command(sql, tag="test.old")
    schema.ensure_schema(ttl_days=0)
    scoping.forget_state()
    found = {k: r.scores for k, r in zip(ids(listed(project), runs), listed(project), strict=True)}
    assert found == {
        "a": {"relevance": {"value": 0.75, "label": "", "count": 1}},
        "b": {"verdict": {"value": None, "label": "fail", "count": 1}},  # the deleted score stays deleted
        "c": {},
    }
    key = clickhouse.query_one(
        "SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": clickhouse.database(), "t": schema.SCORES},
        tag="test.key",
    )["sorting_key"]
    assert key == schema.SCORES_ORDER_BY and "toIntervalDay(7)" in schema.current_ttl(schema.SCORES)
    # Run again, even with its mark gone (a crash before it was written): nothing more is written.
    rows = clickhouse.query_one(f"SELECT count() AS n FROM {runs_table}", tag="test.rows")["n"]
    clickhouse.command(
        f"ALTER TABLE {schema.table(schema.SETTLE_STATE)} DELETE WHERE Name = 'run-scores' SETTINGS mutations_sync = 2",
        tag="test.old",
    )
    schema.ensure_schema(ttl_days=0)
    assert clickhouse.query_one(f"SELECT count() AS n FROM {runs_table}", tag="test.rows")["n"] == rows
    # The old scores count as settled (time 0); the settler's next pass has nothing to do.
    assert settle.settle_once().traces == 0
    assert ids(listed(project, score="verdict:eq:fail"), runs) == ["b"]
    # The evaluation views write into the moved table.
    assert post_logs(client, ingest_key, logs_request(evaluation(a[1], "faith", value=1.0))).status_code == 200
    assert {s.name for s in scores_q.for_traces(str(project.id), [a[0].trace.hex()])} == {"relevance", "faith"}
    settle.settle_once()
    scoping.forget_state()
    assert set(ids(listed(project, score="faith:exists"), runs)) == {"a"}


def test_an_api_score_given_again_with_its_id_on_another_run_moves_there(project, runs):
    a, b = runs["a"], runs["b"]
    score(project, a[0], "relevance", value=0.2, score_id="same")
    moved = score(project, b[0], "relevance", value=0.8, score_id="same")
    assert scores_q.for_traces(str(project.id), [a[0].trace.hex()]) == []
    assert scores_q.get(str(project.id), "same") == moved
    settle.settle_once()
    scoping.forget_state()
    assert ids(listed(project, score="relevance:exists"), runs) == ["b"]


def test_a_score_named_by_response_id_moves_onto_its_call_once(client, project, ingest_key):
    from test_quality import evaluation, logs_request, post_logs

    root, call = agent_run(NOW - dt.timedelta(minutes=3))
    call.attributes["gen_ai.response.id"] = "resp-1"
    send(client, ingest_key, root, call)
    assert (
        post_logs(
            client, ingest_key, logs_request(evaluation(None, "relevance", value=0.4, response_id="resp-1"))
        ).status_code
        == 200
    )
    assert writes.place_loose() == 1
    assert writes.place_loose() == 0
    rows = clickhouse.query(
        f"SELECT TraceId, SpanId, Value FROM {schema.table(schema.SCORES)} FINAL WHERE ProjectId = {{p:String}}",
        {"p": str(project.id)},
        tag="test.placed",
    )
    assert rows == [{"TraceId": root.trace.hex(), "SpanId": call.span_id.hex(), "Value": 0.4}]
    settle.settle_once()
    scoping.forget_state()
    assert listed(project)[0].scores == {"relevance": {"value": 0.4, "label": "", "count": 1}}
