"""Lists sorted by time look for a page in the newest hour first, then in wider stretches below it
(monitoring/queries/spans.py, runs.py): whatever stretch a row falls in, pages hold the newest rows
in order, and following the cursor visits every row once."""

import datetime as dt

import pytest
from otlp import S, post, request

from monitoring.queries import runs
from monitoring.queries.filter import SpanFilter, Window
from monitoring.queries.spans import Cursor, ListQuery, list_spans
from monitoring.semantics import settle

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC)
# One run in each stretch a page is looked for in: the newest hour, 8 h, 64 h, the rest.
AGES = (
    dt.timedelta(minutes=10),
    dt.timedelta(minutes=50),
    dt.timedelta(hours=3),
    dt.timedelta(hours=20),
    dt.timedelta(days=2),
    dt.timedelta(days=5),
    dt.timedelta(days=25),
)


@pytest.fixture
def spread(client, project, ingest_key):
    """A run (agent step + LLM call) at each age; returns the traces, newest first."""
    spans = []
    for age in AGES:
        root = S(
            "invoke_agent planner",
            service="agent-planner",
            at=NOW - age,
            ms=800,
            attributes={"gen_ai.operation.name": "invoke_agent"},
        )
        call = root.child(
            "chat gpt-4o-mini",
            at=NOW - age + dt.timedelta(milliseconds=100),
            ms=500,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 5,
            },
        )
        spans += [root, call]
    assert post(client, ingest_key, request(*spans)).status_code == 200
    return [s.trace.hex() for s in spans[::2]]


def window(project) -> SpanFilter:
    return SpanFilter(str(project.id), Window(NOW - dt.timedelta(days=30), NOW + dt.timedelta(minutes=1)))


def walk_spans(flt: SpanFilter, kind: str, limit: int) -> list[str]:
    seen, cursor = [], None
    for _ in range(50):
        page = list_spans(flt, ListQuery(kind=kind, cursor=cursor, limit=limit))
        seen += [row.trace_id for row in page.items]
        if page.next_cursor is None:
            return seen
        cursor = Cursor.decode(page.next_cursor)
    raise AssertionError("paging did not end")


def walk_runs(flt: SpanFilter, limit: int) -> list[str]:
    seen, cursor = [], None
    for _ in range(50):
        page = runs.list_runs(flt, runs.RunQuery(cursor=cursor, limit=limit))
        seen += [row.trace_id for row in page.items]
        if page.next_cursor is None:
            return seen
        cursor = runs.RunCursor.decode(page.next_cursor)
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("settled", [False, True], ids=["live", "settled"])
def test_pages_across_stretches_hold_every_row_newest_first(spread, project, settled):
    if settled:
        settle.settle_once()
    flt = window(project)
    for limit in (1, 2, 3, 50):
        for kind in ("agent", "llm"):
            assert walk_spans(flt, kind, limit) == spread, (kind, limit)
        assert walk_runs(flt, limit) == spread, limit
    # "All" lists both spans of each run, still newest first.
    assert walk_spans(flt, "all", 3) == [t for t in spread for _ in range(2)]


def test_a_cursor_from_far_back_continues_below_it(spread, project):
    flt = window(project)
    first = runs.list_runs(flt, runs.RunQuery(limit=5))
    assert [r.trace_id for r in first.items] == spread[:5]
    rest = runs.list_runs(flt, runs.RunQuery(cursor=runs.RunCursor.decode(first.next_cursor), limit=5))
    assert [r.trace_id for r in rest.items] == spread[5:] and rest.next_cursor is None
    # Hostile cursor values are pages with nothing below them, never an engine error.
    for value in (-1e300, 1e300, 0):
        page = runs.list_runs(flt, runs.RunQuery(sort="duration", cursor=runs.RunCursor(value, "0" * 32)))
        assert page.items == [] or value == 1e300
