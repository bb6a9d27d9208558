"""The settler: applies the counting rules (monitoring/queries/facts.py) once to the traces that
received spans, and stores the answer, so that pages read sums instead of re-deciding every span.

A pass takes the spans inserted since the last pass (`otel_spans.InsertedAt`), widens them to
whole traces and to the traces a cross-trace match ties them to, recomputes their invocations,
runs and flow edges, and writes only what changed: a cancel row (Sign = -1) for a stale fact and
the new fact (Sign = +1) into the VersionedCollapsingMergeTree tables, whose materialized views
keep the rollups in step. A pass is idempotent: running it twice over the same spans writes
nothing the second time.

`Through` (table otel_settle_state) is the insert time up to which every span has been settled.
Each pass re-reads the last OVERLAP before it, so a block stamped just before a pass but committed
just after it is picked up by the next one. While the settler keeps up (its last pass is less than
SETTLE_FRESH_SECONDS old, a setting) pages read settled facts only, seconds behind the newest span; when it is
behind or not running they add the unsettled traces computed live (monitoring/queries/live.py),
so numbers are exact either way.

Run it with `python manage.py settle` (once, or `--loop`); the embedded server runs the loop in a
background thread. One settler at a time per database (a lease in Django's database).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from monitoring import clickhouse, schema
from monitoring.pricing import PriceBook
from monitoring.queries import facts
from monitoring.queries.filter import from_nanos
from monitoring.queries.sql import Sql, execute, run, run_one

log = logging.getLogger(__name__)

STATE_NAME = "facts"
JOB_NAME, EVERY_SECONDS = "settle", 1
STATE_EVERY_SECONDS = 5  # an idle pass records itself this often
STALE_AFTER_SECONDS = 60  # no pass recorded for this long: the settler is not running (Health, --healthcheck)
# When this process last recorded a pass, per state table (a process may serve more than one database).
_state_written: dict[str, float] = {}
OVERLAP_NS = 2_000_000_000
CHUNK_TRACES = 20_000  # traces settled per statement group (a backfill goes in chunks)


@dataclass
class Report:
    """What one pass did: traces looked at, fact rows written (cancels and new rows), seconds."""

    traces: int = 0
    calls_written: int = 0
    runs_written: int = 0
    edges_written: int = 0
    seconds: float = 0.0
    through_ns: int = 0


# The last state read per state table: (monotonic s, through, server now); one page's questions share it.
_state_seen: dict[str, tuple[float, int, int]] = {}


def state(max_age_s: float = 0.0) -> tuple[int, int]:
    """(through, now) in ns on the server's clock: every span inserted up to `through` is settled
    (0 before the first pass). With `max_age_s`, a state read at most that long ago in this process
    is reused (`now` moved on by the time since)."""
    state_table = schema.table(schema.SETTLE_STATE)
    seen = _state_seen.get(state_table)
    if max_age_s and seen and (age := time.monotonic() - seen[0]) <= max_age_s:
        return seen[1], seen[2] + int(age * 1e9)
    row = run_one(
        Sql(
            "SELECT toUnixTimestamp64Nano(max(Through)) AS t, toUnixTimestamp64Nano(now64(3)) AS now",
            f" FROM {schema.table(schema.SETTLE_STATE)} WHERE Name = {{name:String}}",
            name=STATE_NAME,
        ),
        tag="settle.state",
    )
    through, now = int(row.get("t") or 0), int(row.get("now") or 0)
    _state_seen[state_table] = (time.monotonic(), through, now)
    return through, now


def waiting_spans(through: int, project_ids: list[str] | None = None) -> int:
    """Spans inserted after `through` (ns): what the next pass has to settle; of `project_ids`
    only when given (a member sees how much of their own traffic waits, not other projects')."""
    where = Sql(" WHERE InsertedAt > fromUnixTimestamp64Nano({after:Int64})", after=through)
    if project_ids is not None:
        where = where + Sql(" AND ProjectId IN {projects:Array(String)}", projects=list(project_ids))
    row = run_one(Sql(f"SELECT count() AS n FROM {schema.table(schema.SPANS)}") + where, tag="settle.waiting")
    return int(row.get("n") or 0)


def forget_state() -> None:
    """Read the state afresh next time (after a pass in this process, or in tests)."""
    _state_seen.clear()


def unsettled_after_ns(through: int) -> int:
    """Spans inserted after this instant (ns) may not be settled yet."""
    return max(through - OVERLAP_NS, 0) if through else 0


def _touched(after_ns: int, until_ns: int) -> list[dict]:
    """(project, traces) touched by spans inserted in (after, until], a row per project and hash bucket."""
    return run(
        Sql(
            "SELECT ProjectId AS project, uniqExact(TraceId) AS traces",
            f" FROM {schema.table(schema.SPANS)}",
            " WHERE InsertedAt > fromUnixTimestamp64Nano({after:Int64})",
            " AND InsertedAt <= fromUnixTimestamp64Nano({until:Int64}) AND ProjectId != ''",
            " GROUP BY ProjectId ORDER BY ProjectId",
            after=after_ns // 1_000_000 * 1_000_000,
            until=until_ns,
        ),
        tag="settle.touched",
    )


def _touched_traces(project: str, after_ns: int, until_ns: int, chunks: int, chunk: int) -> Sql:
    return Sql(
        f"SELECT DISTINCT TraceId FROM {schema.table(schema.SPANS)}",
        " WHERE ProjectId = {project:String}",
        " AND InsertedAt > fromUnixTimestamp64Nano({t_after:Int64})",
        " AND InsertedAt <= fromUnixTimestamp64Nano({t_until:Int64})",
        " AND cityHash64(TraceId) % {t_chunks:UInt64} = {t_chunk:UInt64}",
        project=project,
        t_after=after_ns // 1_000_000 * 1_000_000,
        t_until=until_ns,
        t_chunks=chunks,
        t_chunk=chunk,
    )


def bounds(traces: Sql) -> tuple[int, int] | None:
    """[lo, hi] (ns) holding every span start of the traces, from the exporter's TraceId lookup
    table (whole seconds), or None when it knows none of them."""
    row = run_one(
        Sql(
            "SELECT count() AS n, toUnixTimestamp(min(Start)) AS lo, toUnixTimestamp(max(End)) AS hi",
            f" FROM {schema.table(schema.LOOKUP)} WHERE TraceId IN (",
            traces,
            ")",
        ),
        tag="settle.bounds",
    )
    if not int(row.get("n") or 0):
        return None
    return int(row["lo"]) * 10**9, (int(row["hi"]) + 1) * 10**9


def build_scope(project_id: str, traces: Sql, agent_names: tuple[str, ...]) -> facts.Scope | None:
    """The scope of `traces`, widened by the traces their cross-trace matches touch, with matches and
    prices resolved (the same for a settle pass and for a page's live part)."""
    span = bounds(traces)
    if span is None:
        return None
    lo, hi = span
    pairs = run(facts.match_candidates(project_id, lo, hi), tag="facts.match_candidates")
    matches = facts.assign(pairs)
    extra = sorted({p["ct"] for p in pairs} | {p["gt"] for p in pairs})
    if extra:
        traces = Sql(traces, " UNION DISTINCT SELECT arrayJoin({scope_extra:Array(String)})", scope_extra=extra)
        lo, hi = bounds(traces) or (lo, hi)
    models = run(
        Sql(
            f"SELECT DISTINCT Model AS model, Provider AS provider FROM {schema.table(schema.SPANS)}",
            " WHERE ProjectId = {project:String} AND IsLLMCall = 1",
            " AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp <= fromUnixTimestamp64Nano({hi:Int64})",
            " AND TraceId IN (",
            traces,
            ")",
            project=project_id,
            lo=lo,
            hi=hi,
        ),
        tag="facts.models",
    )
    prices = PriceBook.for_pairs(project_id, [(m["model"], m["provider"]) for m in models])
    return facts.Scope(project_id, traces, lo, hi, agent_names, prices, matches)


# --- writing what changed ------------------------------------------------------------------------


def _hash(columns: tuple[str, ...]) -> str:
    return f"cityHash64({', '.join(columns)})"


def _write_changes(name: str, key: tuple[str, ...], new_table: str, scope: facts.Scope, version: int) -> int:
    """Cancel the stale settled rows of the scope in `name` and add the new ones; rows written."""
    columns = {schema.CALLS: schema.CALL_COLUMNS, schema.RUNS: schema.RUN_COLUMNS, schema.EDGES: schema.EDGE_COLUMNS}[
        name
    ]
    time_column = schema.SETTLED[name][2]
    cols = ", ".join(columns)
    using = ", ".join((*key, "h"))
    old = Sql(
        f"SELECT {cols}, Version, {_hash(columns)} AS h FROM {schema.table(name)} FINAL",
        " WHERE ProjectId = {project:String} AND Sign = 1",
        f" AND {time_column} >= fromUnixTimestamp64Nano({{lo:Int64}}) AND {time_column} <= fromUnixTimestamp64Nano({{hi:Int64}})",
        " AND TraceId IN (",
        scope.traces,
        ")",
    )
    new = f"SELECT {cols}, {_hash(columns)} AS h FROM {new_table}"
    statement = Sql(
        f"INSERT INTO {schema.table(name)} ({cols}, Sign, Version)",
        f" SELECT {cols}, toInt8(-1), Version FROM (",
        old,
        f") AS o LEFT ANTI JOIN ({new}) AS n USING ({using})",
        f" UNION ALL SELECT {cols}, toInt8(1), {{version:UInt64}} FROM ({new}) AS n LEFT ANTI JOIN (",
        old,
        f") AS o USING ({using})",
        **scope.params(),
        version=version,
    )
    before = _count(name, scope)
    execute(statement, tag=f"settle.write.{name}")
    return abs(_count(name, scope) - before)


def _count(name: str, scope: facts.Scope) -> int:
    time_column = schema.SETTLED[name][2]
    return int(
        run_one(
            Sql(
                f"SELECT count() AS n FROM {schema.table(name)} WHERE ProjectId = {{project:String}}",
                f" AND {time_column} >= fromUnixTimestamp64Nano({{lo:Int64}}) AND {time_column} <= fromUnixTimestamp64Nano({{hi:Int64}})",
                " AND TraceId IN (",
                scope.traces,
                ")",
                **scope.params(),
            ),
            tag=f"settle.count.{name}",
        ).get("n")
        or 0
    )


PREFIX = "apm_settle_"


def settle_scope(scope: facts.Scope, version: int) -> tuple[int, int, int]:
    """Recompute and store the facts of one scope; (calls, runs, edges) rows written."""
    tables = facts.materialize(scope, PREFIX)
    try:
        return (
            _write_changes(schema.CALLS, ("TraceId", "SpanId"), tables.calls, scope, version),
            _write_changes(schema.RUNS, ("TraceId",), tables.runs, scope, version),
            _write_changes(schema.EDGES, ("TraceId", "Parent", "Child"), tables.edges, scope, version),
        )
    finally:
        facts.drop(tables)


def _agent_names(project_id: str) -> tuple[str, ...]:
    """The project's agent step names; the defaults for a ProjectId that names no project. Any
    sender to a collector can write any `project_id` (a name, a typo): it must not stop the pass
    that settles every project (Django raised ValidationError on a ProjectId that is not a UUID)."""
    from monitoring.models import Project, project_pk

    pk = project_pk(project_id)
    project = Project.objects.filter(pk=pk).first() if pk else None
    return project.agent_names if project else facts.semconv.DEFAULT_AGENT_SPAN_NAMES


def settle_once(now_ns: int | None = None) -> Report:
    """One pass over everything inserted since the last one. Returns what it did."""
    started = time.perf_counter()
    report = Report()
    through, server_now = state()
    after = unsettled_after_ns(through)
    until = now_ns or server_now
    for row in _touched(after, until):
        project = row["project"]
        chunks = max(1, math.ceil(int(row["traces"]) / CHUNK_TRACES))
        names = _agent_names(project)
        for chunk in range(chunks):
            scope = build_scope(project, _touched_traces(project, after, until, chunks, chunk), names)
            if scope is None:
                continue
            calls, runs_, edges = settle_scope(scope, version=until)
            report.calls_written += calls
            report.runs_written += runs_
            report.edges_written += edges
        report.traces += int(row["traces"])
    # An idle pass moves `Through` too (pages read it to know the settler keeps up), every few seconds.
    state_table = schema.table(schema.SETTLE_STATE)
    if report.traces or time.monotonic() - _state_written.get(state_table, -1e9) >= STATE_EVERY_SECONDS:
        clickhouse.insert(
            state_table,
            ("Name", "Through"),
            [{"Name": STATE_NAME, "Through": from_nanos(until)}],
            tag="settle.state",
        )
        _state_written[state_table] = time.monotonic()
        forget_state()
    report.seconds = time.perf_counter() - started
    report.through_ns = until
    if report.traces:
        log.info(
            "settled %d traces: %d call, %d run, %d edge rows written in %.2f s",
            report.traces,
            report.calls_written,
            report.runs_written,
            report.edges_written,
            report.seconds,
        )
    return report
