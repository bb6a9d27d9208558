"""The runs list pages by keyset on every sort: each run once, in order, and the last page ends."""

import datetime as dt

import pytest
from otlp import S, post, request

from monitoring.queries import runs
from monitoring.queries.filter import SpanFilter, Window
from monitoring.semantics import settle

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC)


@pytest.mark.parametrize("mode", ["live", "settled"])
def test_every_sort_pages_through_each_run_once(client, project, ingest_key, mode):
    spans = []
    for i in range(5):
        # Durations and costs that milliseconds and 1e-10 USD would round alike.
        agent = S(
            "invoke_agent",
            service="agent-x",
            at=NOW - dt.timedelta(minutes=10 + i),
            ms=1000 + i * 0.0004,
            attributes={"gen_ai.operation.name": "invoke_agent"},
        )
        call = agent.child(
            "chat",
            ms=500,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "m",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.cost.total_cost": 0.001 + i * 1e-12,
            },
        )
        spans += [agent, call]
    assert post(client, ingest_key, request(*spans)).status_code == 200
    if mode == "settled":
        settle.settle_once()
    flt = SpanFilter(str(project.id), Window(NOW - dt.timedelta(hours=1), NOW))
    for sort in runs.SORTS:
        seen, cursor = [], None
        for _ in range(10):
            page = runs.list_runs(flt, runs.RunQuery(sort=sort, limit=2, cursor=cursor))
            seen += [r.trace_id for r in page.items]
            if page.next_cursor is None:
                break
            cursor = runs.RunCursor.decode(page.next_cursor)
        assert len(seen) == len(set(seen)) == 5, sort
        whole = [r.trace_id for r in runs.list_runs(flt, runs.RunQuery(sort=sort, limit=50)).items]
        assert seen == whole, sort
