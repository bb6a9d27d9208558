"""The settler: applies the counting rules (monitoring/semantics/facts.py) once to the traces that
received spans, and stores the answer, so that pages read sums instead of re-deciding every span.

A pass takes the spans inserted since the last pass (`otel_spans.InsertedAt`), widens them to
whole traces and to the traces a cross-trace match ties them to, recomputes their invocations,
runs and flow edges, and writes only what changed: a cancel row (Sign = -1) for a stale fact and
the new fact (Sign = +1) into the VersionedCollapsingMergeTree tables, whose materialized views
keep the rollups in step. A pass is idempotent: running it twice over the same spans writes
nothing the second time.

`Through` (table otel_settle_state) is the insert time up to which every span has been settled.
In server mode each pass re-reads the last `scoping.OVERLAP_NS` before it, so a block stamped just before a pass but
committed just after it is picked up by the next one; in embedded mode a pass stops short of the
writes under way instead (`_span_of_pass`). While the settler keeps up (its last pass is less than
SETTLE_FRESH_SECONDS old, a setting) pages read settled facts only, seconds behind the newest span; when it is
behind or not running they add the unsettled traces computed live (monitoring/queries/live.py),
so numbers are exact either way.

Run it with `python manage.py settle` (once, or `--loop`); the embedded server runs the loop in a
background thread. One settler at a time per database: in server mode the process holding the lease
`LEASE` in Django's database (monitoring/background.py, models.Lease), any others standing by to take
over; in embedded mode the one process that may open the data folder.

Scaling out (server mode, settings.SETTLE_PARTITIONS = N > 1): the projects are split into N
partitions (`scoping.Partition`: cityHash64(ProjectId) % N); each is settled by the holder of its own
lease (`settle/1of2` ...) and keeps its own `Through` (row `facts/1of2` ...), and the running
settlers share the leases out (background.claim). A cross-trace match never leaves its project, so
the facts are those one settler writes. After each pass a partition also records the lowest
`Through` of all N as the row `facts`, the one readers use (pages, Health, `--healthcheck`), so they
need not know N; a partition starts from its own row or that mark, the later (a partition with no
row yet, after N changed, starts where all the settlers before it had got to).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from monitoring.models import DEFAULT_AGENT_SPAN_NAMES, Project, project_pk
from monitoring.semantics import facts, scoping
from monitoring.store import clickhouse, schema, versions
from monitoring.store.sql import Sql, execute, from_nanos, run

log = logging.getLogger(__name__)

JOB_NAME, EVERY_SECONDS = "settle", 1
LEASE = "settle"  # held by the one process that settles (and re-settles) a database's spans (or partition's)
STATE_EVERY_SECONDS = 5  # an idle pass records itself this often
# When this process last recorded a pass, per state table and row (a process may serve more than one
# database, and settle more than one partition).
_state_written: dict[tuple[str, str], float] = {}


def lease(partition: scoping.Partition) -> str:
    """The lease whose holder settles the partition: `settle` for ALL, `settle/1of2` ..."""
    return LEASE if partition.count == 1 else f"{LEASE}/{partition.label}"


def job_name(job: str, partition: scoping.Partition) -> str:
    """The background job of `job` ("settle", "resettle") for the partition: `settle/1of2` ..."""
    return job if partition.count == 1 else f"{job}/{partition.label}"


CHUNK_TRACES = 20_000  # traces settled per statement group (a backfill goes in chunks)
# Called with each pass's Report once it is recorded (the app sets it: the portal's own metrics), so
# this layer imports no metrics library.
on_pass: Callable[[Report], None] | None = None


@dataclass
class Report:
    """What one pass did: traces looked at, rows written per fact table (cancels and new rows,
    with the rollup rows they fed; 0 when nothing changed), seconds."""

    traces: int = 0
    spans: int = 0  # inserted in the pass's span of insert time (a re-read span again)
    calls_written: int = 0
    runs_written: int = 0
    edges_written: int = 0
    seconds: float = 0.0
    through_ns: int = 0  # the partition's (ALL: every span's) insert time settled up to
    settled_ns: int = 0  # every span's, whichever partition, as far as this pass knows (0: not read)
    partition: scoping.Partition = scoping.ALL
    projects: set[str] = field(default_factory=set)  # whose facts the pass wrote


def _inserted(table: str, p: str = "", project: str = "ProjectId != ''") -> str:
    return (
        f"SELECT ProjectId, TraceId FROM {schema.table(table)} WHERE InsertedAt > fromUnixTimestamp64Nano({{{p}after:Int64}})"
        f" AND InsertedAt <= fromUnixTimestamp64Nano({{{p}until:Int64}}) AND {project} AND TraceId != ''"
    )


def _touched(after_ns: int, until_ns: int, partition: scoping.Partition = scoping.ALL) -> list[dict]:
    """(project, traces, spans) touched by spans, or by scores (their runs carry them), inserted in
    (after, until], a row per project of the partition."""
    return run(
        Sql(
            "SELECT ProjectId AS project, uniqExact(TraceId) AS traces, countIf(span) AS spans FROM (",
            f"SELECT ProjectId, TraceId, 1 AS span FROM ({_inserted(schema.SPANS)})",
            f" UNION ALL SELECT ProjectId, TraceId, 0 AS span FROM ({_inserted(schema.SCORES)}))",
            " WHERE 1",
            partition.where(),
            " GROUP BY ProjectId ORDER BY ProjectId",
            after=after_ns // 1_000_000 * 1_000_000,
            until=until_ns,
        ),
        tag="settle.touched",
    )


def _touched_traces(project: str, after_ns: int, until_ns: int, chunks: int, chunk: int) -> Sql:
    return Sql(
        "SELECT DISTINCT TraceId FROM (",
        _inserted(schema.SPANS, "t_", "ProjectId = {project:String}"),
        " UNION ALL ",
        _inserted(schema.SCORES, "t_", "ProjectId = {project:String}"),
        ") WHERE cityHash64(TraceId) % {t_chunks:UInt64} = {t_chunk:UInt64}",
        project=project,
        t_after=after_ns // 1_000_000 * 1_000_000,
        t_until=until_ns,
        t_chunks=chunks,
        t_chunk=chunk,
    )


# --- writing what changed ------------------------------------------------------------------------


def _hash(columns: tuple[str, ...]) -> str:
    return f"cityHash64({', '.join(columns)})"


def _write_changes(name: str, key: tuple[str, ...], new_table: str, scope: facts.Scope, version: int) -> int:
    """Cancel the stale settled rows of the scope in `name` and add the new ones; rows written,
    with the rollup rows they fed (0 when nothing changed)."""
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
    # The engine's own count of the rows written: counting the table before and after cost two
    # statements a table (13% of a pass).
    return execute(statement, tag=f"settle.write.{name}")


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
    pk = project_pk(project_id)
    project = Project.objects.filter(pk=pk).first() if pk else None
    return project.agent_names if project else DEFAULT_AGENT_SPAN_NAMES


# A pass costs about as much CPU for a few spans as for thousands (some 20 statements: 560 us a span
# at 1,000 spans a pass, 158 at 5,000; bench/ingest_profile.py). So while spans pour in, the job
# lets them gather: after a pass that settled BUSY_SPANS or more, the next waits BUSY_SECONDS. Light
# traffic is still settled every EVERY_SECONDS, so a span is on the pages within about 2 s of its
# 200 (pages read settled facts while the settler keeps up: monitoring/queries/live.py).
BUSY_SPANS = 2_000
BUSY_SECONDS = 3.0
# (state table, state row) -> (monotonic s at its end, spans settled)
_last_pass: dict[tuple[str, str], tuple[float, int]] = {}


def settle_when_due(partition: scoping.Partition = scoping.ALL) -> Report | None:
    """The settler's background job, run every EVERY_SECONDS: a pass (settle_once) over the
    partition, unless the last one in this process settled BUSY_SPANS or more and ended less than
    BUSY_SECONDS ago (None: skipped)."""
    key = (schema.table(schema.SETTLE_STATE), partition.state_name)
    ended, spans = _last_pass.get(key, (-math.inf, 0))
    if spans >= BUSY_SPANS and time.monotonic() - ended < BUSY_SECONDS:
        return None
    report = settle_once(partition=partition)
    _last_pass[key] = (time.monotonic(), report.spans)
    return report


def _span_of_pass(through: int, until: int) -> tuple[int, int]:
    """(after, until] in ns of insert time: the spans this pass reads.

    Server mode: any process (a collector) may be writing, and a block stamped before `until` may
    be committed after this pass reads, so the pass re-reads `scoping.OVERLAP_NS` before `through`.
    Embedded mode: this process is the data folder's only writer and knows its writes under way, so
    the pass stops short of the oldest of them and of the current millisecond (`InsertedAt` has
    milliseconds: a block stamped in this one may not be committed yet) and re-reads nothing: every
    span is settled once instead of by every pass of the overlap (three at one pass a second)."""
    if not clickhouse.is_embedded():
        return scoping.unsettled_after_ns(through), until
    oldest = clickhouse.oldest_write_in_flight_ns()  # read after `until` (the engine's now): see above
    if oldest is not None:
        until = min(until, oldest)
    until = until // _MS * _MS - _MS
    return through, max(until, through)


_MS = 1_000_000


def _record(partition: scoping.Partition, until: int) -> int:
    """Write the partition's `Through`, then, with partitions, the low-water mark readers use when it
    moved; returns the low-water mark (ns). Settlers writing it at once may write it out of order:
    readers take the highest row, and every one written was a low-water mark when it was read, so
    it is one still."""
    rows = [{"Name": partition.state_name, "Through": from_nanos(until)}]
    clickhouse.insert(schema.table(schema.SETTLE_STATE), ("Name", "Through"), rows, tag="settle.state")
    if partition.count > 1:
        lowest, recorded = scoping.low_water(partition.count)
        if lowest > recorded:
            rows = [{"Name": scoping.STATE_NAME, "Through": from_nanos(lowest)}]
            clickhouse.insert(schema.table(schema.SETTLE_STATE), ("Name", "Through"), rows, tag="settle.state")
        return max(lowest, recorded)
    return until


def settle_once(now_ns: int | None = None, partition: scoping.Partition = scoping.ALL) -> Report:
    """One pass over everything inserted since the last one (of the partition's projects: the
    caller holds its lease). Returns what it did."""
    started = time.perf_counter()
    report = Report()
    through, server_now = scoping.partition_state(partition)
    after, until = _span_of_pass(through, now_ns or server_now)
    for row in _touched(after, until, partition):
        project = row["project"]
        chunks = max(1, math.ceil(int(row["traces"]) / CHUNK_TRACES))
        names = _agent_names(project)
        for chunk in range(chunks):
            scope = scoping.build_scope(project, _touched_traces(project, after, until, chunks, chunk), names)
            if scope is None:
                continue
            calls, runs_, edges = settle_scope(scope, version=until)
            report.calls_written += calls
            report.runs_written += runs_
            report.edges_written += edges
            report.projects.add(project)
        report.traces += int(row["traces"])
        report.spans += int(row["spans"])
    # An idle pass moves `Through` too (pages read it to know the settler keeps up), every few seconds.
    key = (schema.table(schema.SETTLE_STATE), partition.state_name)
    if report.traces or time.monotonic() - _state_written.get(key, -1e9) >= STATE_EVERY_SECONDS:
        report.settled_ns = _record(partition, until)
        _state_written[key] = time.monotonic()
        scoping.forget_state()
    report.seconds = time.perf_counter() - started
    report.through_ns = until
    report.partition = partition
    if partition.count == 1:
        report.settled_ns = until
    versions.bump(report.projects)  # after the state: a page asking now sees the new facts
    if on_pass is not None:
        on_pass(report)
    if report.traces:
        log.info(
            "settled %d traces of %d projects%s: %d call, %d run, %d edge rows written in %.2f s",
            report.traces,
            len(report.projects),
            f" (partition {partition.label})" if partition.count > 1 else "",
            report.calls_written,
            report.runs_written,
            report.edges_written,
            report.seconds,
        )
    return report
