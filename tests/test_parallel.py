"""Independent questions of a page asked at once (monitoring/queries/parallel.py): the same answers
as one after the other, the first error raised, and never two live computations."""

import datetime as dt
import threading

import pytest
from otlp import S, post, request

from monitoring.queries import breakdowns, parallel, timeseries
from monitoring.queries import overview as overview_q
from monitoring.queries.filter import SpanFilter, Window
from monitoring.semantics import settle
from monitoring.store import clickhouse

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def settled(client, project, ingest_key, settings):
    at = NOW - dt.timedelta(minutes=30)
    spans = []
    for i, model in enumerate(("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet")):
        root = S(
            "invoke_agent planner",
            service=f"agent-{i}",
            at=at,
            ms=2000,
            attributes={"gen_ai.operation.name": "invoke_agent", "user.id": f"u{i}"},
        )
        spans += [
            root,
            root.child(
                f"chat {model}",
                at=at,
                ms=800,
                error=i == 2,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": model,
                    "gen_ai.usage.input_tokens": 100 * (i + 1),
                    "gen_ai.usage.output_tokens": 10,
                },
            ),
        ]
    assert post(client, ingest_key, request(*spans)).status_code == 200
    settle.settle_once()
    settings.SETTLE_FRESH_SECONDS = 1e12  # the settler keeps up: pages may ask at once
    return SpanFilter(str(project.id), Window(NOW - dt.timedelta(hours=2), NOW))


def answers(flt):
    now, before, _ = overview_q.overview_page(flt, flt.window.previous())
    series = timeseries.timeseries(flt)
    return now, before, (series.values, series.runs, series.failed_runs), breakdowns.breakdowns(flt)


def test_at_once_and_one_by_one_answer_the_same(settled, settings, client, alice, project):
    settings.QUERY_THREADS = 1
    alone = answers(settled)
    settings.QUERY_THREADS = 2
    threads = set()
    original = clickhouse.query

    def spy(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return original(*args, **kwargs)

    clickhouse.query = spy
    try:
        together = answers(settled)
        client.force_login(alice)
        page = client.get(f"/admin/monitoring/{project.id}/overview/", {"range": "1h"})
    finally:
        clickhouse.query = original
    assert together == alone
    assert alone[0].llm_calls == 3 and alone[0].agent_calls == 3
    # The Overview tab asks its numbers and trend lines in one go: the same answers.
    now, before, series = overview_q.overview_page(settled, settled.window.previous())
    apart = timeseries.timeseries(settled)
    assert (now, before, (series.values, series.runs, series.failed_runs)) == alone[:3]
    assert (series.times, series.models, series.extra) == (apart.times, apart.models, apart.extra)
    assert sum(series.runs) == 3 and sum(series.total("errors")) == 1
    assert any(name.startswith("apm-query") for name in threads)  # some questions ran in a worker
    assert page.status_code == 200 and b"data-kpi" in page.content


def test_the_first_error_is_raised_and_nothing_is_left_running(settled, settings):
    settings.QUERY_THREADS = 2
    started, finished = [], []

    def slow():
        started.append("slow")
        threading.Event().wait(0.2)
        finished.append("slow")
        return 1

    def broken():
        raise clickhouse.ClickHouseError("boom", kind=clickhouse.QUERY)

    with pytest.raises(clickhouse.ClickHouseError):
        parallel.gather(settled, broken, slow)
    assert started == finished  # cancelled before it began, or waited for: never left running
    assert parallel.gather(settled, lambda: 1, lambda: 2, lambda: 3) == [1, 2, 3]


def test_while_the_settler_is_behind_questions_run_one_by_one(settled, settings, client, ingest_key):
    settings.QUERY_THREADS = 2
    settings.SETTLE_FRESH_SECONDS = 0  # behind: each question has a live part in its own session
    assert post(client, ingest_key, request(S("late", at=NOW - dt.timedelta(minutes=5)))).status_code == 200
    names = parallel.gather(settled, lambda: threading.current_thread().name, lambda: threading.current_thread().name)
    assert not any(name.startswith("apm-query") for name in names)


def test_a_page_keeps_its_decision_when_the_settler_falls_behind_midway(settled, settings, monkeypatch):
    """A page that found the settler keeping up asks at once, and its questions read settled facts
    only even if the settler falls behind meanwhile: no worker asks for the unsettled traces (that
    reads the project's rules and prices through the ORM, which pool threads must not use)."""
    from monitoring.queries import live

    settings.QUERY_THREADS = 2
    asked_in = []
    real = live.scope

    def scope(flt):
        asked_in.append(threading.current_thread().name)
        if len(asked_in) > 1:  # behind from the second look on
            settings.SETTLE_FRESH_SECONDS = 0
        return real(flt)

    monkeypatch.setattr(live, "scope", scope)
    alone = overview_q.overview(settled)
    assert asked_in == [threading.current_thread().name]  # decided once, in this thread
    assert alone.llm_calls == 3 and alone.agent_calls == 3
    assert breakdowns.breakdowns(settled)["model"]  # the next page looks again: behind, one by one
    assert len(asked_in) > 1 and not any(name.startswith("apm-query") for name in asked_in)


def test_the_filter_bars_choices_are_asked_beside_the_tab(settled, settings, client, alice, project):
    settings.QUERY_THREADS = 2
    threads = {}
    original = clickhouse.query

    def spy(sql, params=None, *, tag):
        threads.setdefault(tag, threading.current_thread().name)
        return original(sql, params, tag=tag)

    clickhouse.query = spy
    try:
        client.force_login(alice)
        page = client.get(f"/admin/monitoring/{project.id}/traces/", {"kind": "llm", "range": "24h"})
    finally:
        clickhouse.query = original
    html = page.content.decode()
    assert page.status_code == 200 and threads["filters.facets"].startswith("apm-query")
    for service in ("agent-0", "agent-1", "agent-2"):
        assert f'<option value="{service}"' in html
    assert '<option value="gpt-4o"' in html and html.count('class="span-item') == 3
