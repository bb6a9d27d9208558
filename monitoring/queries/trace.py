"""One trace: where it is, its spans as a tree and a waterfall, its summary, whole spans.

A trace is found through the exporter's `otel_traces_trace_id_ts` lookup table (its Start/End
narrow the scan to the trace's partitions) and then in `otel_spans` under the caller's project, so
another project's trace is simply not found. Each span is read once however often it was
delivered. Which spans are model invocations, and what they cost, follows the counting rules
(monitoring/semantics/facts.py): settled facts for a settled trace, computed now for a fresh one, so
the trace page, Replay, the lists and the Overview agree on every call.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections import defaultdict
from collections.abc import Sized
from dataclasses import dataclass, field

from monitoring.models import DEFAULT_AGENT_SPAN_NAMES
from monitoring.queries import logs as logs_q
from monitoring.queries import parallel
from monitoring.queries.filter import BadQuery, iso
from monitoring.queries.spans import NAME_CHARS, SPAN_ID, TRACE_ID, status_name
from monitoring.semantics import facts, scoping, semconv
from monitoring.store import clickhouse, schema
from monitoring.store.sql import Sql, from_nanos, run

MAX_TRACE_SPANS = 50_000  # a trace page or API answer stops here (and says so)
TRACE_PREFIX = "apm_trace_"  # temporary tables of one trace's facts
__all__ = ["SPAN_ID", "TRACE_ID", "BadQuery"]


# --- where the trace is ---------------------------------------------------------------------------

_TRACE_SCOPE = (
    "ProjectId = {project:String} AND TraceId = {trace:String}"
    " AND Timestamp >= fromUnixTimestamp64Nano({t_start:Int64})"
    " AND Timestamp < fromUnixTimestamp64Nano({t_end:Int64})"
)
# The same trace's spans in otel_spans / otel_traces, each span once.
_ONCE = " LIMIT 1 BY SpanId"

TRACE_BOUNDS_SQL = """
SELECT count() AS n, toUnixTimestamp(min(Start)) AS start, toUnixTimestamp(max(End)) AS end
FROM $lookup
WHERE TraceId = {trace:String}
"""


@dataclass(frozen=True)
class TraceRef:
    """A trace of a project, and the time range its spans start in (from the lookup table)."""

    project_id: str
    trace_id: str
    start_ns: int
    end_ns: int

    def params(self, **extra) -> dict:
        return {
            "project": self.project_id,
            "trace": self.trace_id,
            "t_start": self.start_ns,
            "t_end": self.end_ns,
            **extra,
        }


def _trace_sql(template: str) -> str:
    return (
        template.replace("$trace", _TRACE_SCOPE)
        .replace("$lookup", schema.table(schema.LOOKUP))
        .replace("$narrow", schema.table(schema.SPANS))
        .replace("$table", schema.table())
    )


def _run_trace(template: str, ref: TraceRef, *, tag: str, **extra) -> list[dict]:
    return clickhouse.query(_trace_sql(template), ref.params(**extra), tag=tag)


PROJECT_BOUNDS_SQL = """
SELECT count() AS n, toUnixTimestamp64Nano(min(Timestamp)) AS start, toUnixTimestamp64Nano(max(Timestamp)) AS end
FROM $narrow
WHERE $trace
"""


_LOOKUP_SPAN_NS = 24 * 3600 * 10**9  # a wider lookup range is narrowed by the project's own spans


def locate(project_id: str, trace_id: str) -> TraceRef:
    """The trace and the nanoseconds its spans start in, from the lookup table: one small read.

    The lookup has no project column, so the range may hold no span of this project: every
    question asked with the TraceRef names the project (another project's trace has no spans, no
    invocations, no span panel). Only when the lookup does not know the trace is otel_spans asked
    for it, and then a TraceRef with an empty range (start > end) means no such trace here."""
    row = clickhouse.query_one(_trace_sql(TRACE_BOUNDS_SQL), {"trace": trace_id}, tag="traces.locate")
    if int(row.get("n") or 0):
        # Start/End are whole seconds (DateTime): the last span may start up to a second after End.
        ref = TraceRef(str(project_id), trace_id, int(row["start"]) * 10**9, (int(row["end"]) + 1) * 10**9)
        if ref.end_ns - ref.start_ns <= _LOOKUP_SPAN_NS:
            return ref
        # Any sender picks its trace ids: one span of another project (or a clock years off) under
        # this id would make every read of the trace scan that whole range. Narrow it here.
    else:
        ref = TraceRef(str(project_id), trace_id, 0, 2**63 - 1)
    found = clickhouse.query_one(_trace_sql(PROJECT_BOUNDS_SQL), ref.params(), tag="traces.locate_project")
    if not int(found.get("n") or 0):
        return TraceRef(str(project_id), trace_id, 1, 0)
    return TraceRef(str(project_id), trace_id, int(found["start"]), int(found["end"]) + 1)


def traces_starting(project_id: str, prefix: str, limit: int = 5) -> list[str]:
    """The project's trace ids that start with `prefix` (lowercase hex: the short ids the tables show),
    sorted, at most `limit`: the lookup table is ordered by trace id, so its candidates are a small
    read; the project's own spans (their trace-id bloom filter) keep the project's."""
    rows = clickhouse.query(
        _trace_sql(
            "SELECT DISTINCT TraceId AS trace FROM $narrow WHERE ProjectId = {project:String}"
            " AND TraceId IN (SELECT DISTINCT TraceId FROM $lookup WHERE startsWith(TraceId, {prefix:String}) LIMIT 10000)"
            " ORDER BY trace LIMIT {limit:UInt32}"
        ),
        {"project": str(project_id), "prefix": prefix, "limit": limit},
        tag="traces.by_prefix",
    )
    return [r["trace"] for r in rows]


@dataclass
class TreeSpan:
    """A span as the tree and waterfall draw it."""

    ts: int
    span_id: str
    parent_span_id: str
    name: str
    service: str
    span_kind: str
    scope: str
    duration_ns: int
    status: str
    is_llm_call: bool
    is_agent_step: bool
    model: str
    input_tokens: int
    output_tokens: int
    reported_cost: float
    child_count: int = 0
    has_end: bool = True  # False: exported before it ended (duration unknown)
    invocation: bool = False  # one model invocation as counted everywhere
    cost_usd: float = 0.0  # the invocation's cost (reported, else priced)
    cost_source: str = ""  # "reported", "priced", "unpriced" or "" (not an invocation)

    @property
    def end(self) -> int:
        return self.ts + self.duration_ns

    @property
    def duration_ms(self) -> float | None:
        return round(self.duration_ns / 1e6, 3) if self.has_end else None

    @property
    def is_error(self) -> bool:
        return semconv.is_error(self.status)


# Of a span delivered twice (exported unfinished, then finished), the finished copy is shown.
_FINISHED_FIRST = f"{facts.HAS_END} DESC"

# A tree line shows NAME_CHARS of a name (a client may send 100,000); the span panel shows it whole.
_TREE_COLUMNS = f"""
    toUnixTimestamp64Nano(Timestamp) AS ts, SpanId AS span_id, ParentSpanId AS parent_span_id,
    substringUTF8(SpanName, 1, {NAME_CHARS}) AS name,
    ServiceName AS service, SpanKind AS span_kind, ScopeName AS scope, {facts.HAS_END} AS has_end,
    {facts.DURATION} AS duration_ns, IsError AS is_error,
    IsLLMCall AS is_llm_call, (IsAgentStep = 1 OR SpanName IN {{agent_names:Array(String)}}) AS is_agent_step,
    Model AS model, InputTokens AS input_tokens, OutputTokens AS output_tokens, ReportedCost AS reported_cost
"""

TRACE_TREE_SQL = f"""
SELECT {_TREE_COLUMNS}
FROM $narrow
WHERE $trace
ORDER BY Timestamp, SpanId, {_FINISHED_FIRST}
LIMIT 1 BY SpanId
LIMIT {{limit:UInt32}}
"""


def _tree_span(row: dict) -> TreeSpan:
    return TreeSpan(
        ts=int(row["ts"]),
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"],
        name=row["name"],
        service=row["service"],
        span_kind=row["span_kind"],
        scope=row["scope"],
        duration_ns=int(row["duration_ns"]),
        has_end=bool(int(row["has_end"])),
        status=status_name("", bool(int(row["is_error"]))),
        is_llm_call=bool(row["is_llm_call"]),
        is_agent_step=bool(row["is_agent_step"]),
        model=row["model"],
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        reported_cost=float(row["reported_cost"] or 0),
    )


EMBEDDING_SPANS_SQL = """
SELECT DISTINCT SpanId AS span_id
FROM $narrow
WHERE $trace AND IsEmbedding = 1
LIMIT {limit:UInt32}
"""


def embedding_span_ids(ref: TraceRef) -> set[str]:
    """The span ids of the trace's embedding calls (IsEmbedding), from the narrow table: the
    by-trace projection that whole spans are read through does not hold that column."""
    rows = _run_trace(EMBEDDING_SPANS_SQL, ref, tag="trace.embeddings", limit=MAX_TRACE_SPANS)
    return {r["span_id"] for r in rows}


def tree_spans(
    ref: TraceRef,
    limit: int = MAX_TRACE_SPANS,
    agent_names: tuple[str, ...] = DEFAULT_AGENT_SPAN_NAMES,
    found: list[Invocation] | None = None,
) -> list[TreeSpan]:
    """Every span of the trace (light columns, no attribute maps), oldest first, each marked with
    whether it is a counted invocation and its cost (`found`: the run's invocations if already
    read); [] for another project's trace."""
    spans = _tree(ref, limit, agent_names)
    mark_invocations(ref, spans, agent_names, found)
    return spans


def _tree(ref: TraceRef, limit: int, agent_names: tuple[str, ...]) -> list[TreeSpan]:
    rows = _run_trace(TRACE_TREE_SQL, ref, tag="traces.tree", limit=limit, agent_names=list(agent_names))
    return _counted_children([_tree_span(r) for r in rows])


def _counted_children(spans: list[TreeSpan]) -> list[TreeSpan]:
    counts: dict[str, int] = defaultdict(int)
    for s in spans:
        counts[s.parent_span_id] += 1
    for s in spans:
        s.child_count = counts.get(s.span_id, 0)
    return spans


def tree_of(spans: list[FullSpan], agent_names: tuple[str, ...]) -> list[TreeSpan]:
    """The tree of whole spans already read and marked (oldest first), as tree_spans reads it
    from otel_spans: names cut to NAME_CHARS, agent steps by marker or by the project's names."""
    return _counted_children(
        [
            TreeSpan(
                ts=s.ts,
                span_id=s.span_id,
                parent_span_id=s.parent_span_id,
                name=s.name[:NAME_CHARS],
                service=s.service,
                span_kind=s.span_kind,
                scope=s.scope_name,
                duration_ns=s.duration_ns,
                has_end=s.has_end,
                status=s.status,
                is_llm_call=s.is_llm_call,
                is_agent_step=s.is_agent_step or s.name in agent_names,
                model=s.model,
                input_tokens=s.input_tokens,
                output_tokens=s.output_tokens,
                reported_cost=s.reported_cost,
                invocation=s.invocation,
                cost_usd=s.cost_usd,
                cost_source=s.cost_source,
            )
            for s in spans
        ]
    )


# A page reads a trace of at most this many spans whole in one statement (its tree and every span
# panel from it; 65 spans: 23 ms at 10M against 15 ms for the tree and 17 ms for one span). A
# bigger trace's tree is read without its maps, and a panel's span alone.
WHOLE_TRACE_SPANS = 200
# Stored rows read for it at most, unsorted (so the read stops there, however big the trace): a
# span is stored once per delivery, and one delivered unfinished then finished is stored twice.
_WHOLE_TRACE_ROWS = 2 * WHOLE_TRACE_SPANS + 1


def _first_copies(copies: list[FullSpan]) -> list[FullSpan]:
    """One span per span id, the copy FULL_SPANS_SQL's order keeps (earliest start, finished
    first), in its order (start, span id)."""
    kept: dict[str, FullSpan] = {}
    for s in copies:
        other = kept.get(s.span_id)
        if other is None or (s.ts, not s.has_end) < (other.ts, not other.has_end):
            kept[s.span_id] = s
    return sorted(kept.values(), key=lambda s: (s.ts, s.span_id))


def page_reads(
    ref: TraceRef, span_id: str = "", agent_names: tuple[str, ...] = DEFAULT_AGENT_SPAN_NAMES
) -> tuple[list[TreeSpan], list[Invocation], dict[str, FullSpan]]:
    """A trace page's reads, asked at once (monitoring/queries/parallel.py): the tree, the run's
    invocations, and whole spans by id: every span of a trace of at most WHOLE_TRACE_SPANS, else
    `span_id`'s if it is one of the trace's. Spans marked as tree_spans and full_span mark them."""
    if ref.start_ns > ref.end_ns:
        return [], [], {}
    # The invocations first: asked in this thread, as they may read the project's prices (the ORM).
    found, rows, logged = parallel.concurrently(
        lambda: invocations(ref, agent_names),
        lambda: _run_trace(WHOLE_COPIES_SQL, ref, tag="traces.whole", limit=_WHOLE_TRACE_ROWS, **_CAPS),
        lambda: logs_q.message_events(ref.project_id, [ref.trace_id], ref.start_ns, ref.end_ns),
    )
    whole = _first_copies([_full_span(r) for r in rows]) if len(rows) < _WHOLE_TRACE_ROWS else []
    if 0 < len(whole) <= WHOLE_TRACE_SPANS:
        _add_log_events(whole, logged)
        mark_invocations(ref, whole, agent_names, found)
        return tree_of(whole, agent_names), found, {s.span_id: s for s in whole}
    spans = tree_spans(ref, agent_names=agent_names, found=found)
    span = full_span(ref, span_id, agent_names, found) if span_id else None
    return spans, found, {span.span_id: span} if span else {}


# --- which of its spans are invocations ---------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """A counted model invocation: its span, the run it belongs to, and its cost in USD."""

    trace_id: str
    span_id: str
    run_trace_id: str
    cost_usd: float
    cost_source: str  # "reported", "priced", "unpriced"
    input_tokens: int
    output_tokens: int
    model: str


def _invocation(r: dict) -> Invocation:
    reported, cost = float(r["reported"]), float(r["cost"])
    source = "unpriced" if not int(r["priced"]) else ("reported" if reported > 0 else "priced")
    return Invocation(
        r["trace"], r["span"], r["run"], round(cost, 10), source, int(r["input"]), int(r["output"]), r["model"]
    )


_INVOCATION_COLUMNS = (
    "TraceId AS trace, SpanId AS span, RunTraceId AS run, ReportedCost AS reported, Cost AS cost,"
    " Priced AS priced, InputTokens AS input, OutputTokens AS output, Model AS model"
)


# One page asks for a trace's invocations several times (tree, summary, span panel): the answer of
# the last second is reused by the same thread while this process has written nothing since (spans
# arriving through another process wait at most that second).
_RECENT_SECONDS = 1.0
_recent = threading.local()


def invocations(ref: TraceRef, agent_names: tuple[str, ...] = DEFAULT_AGENT_SPAN_NAMES) -> list[Invocation]:
    """The invocations of the trace's run: its own spans that count, and gateway calls of another
    trace matched to its client spans (RunTraceId = this trace). Settled facts when the trace is
    settled, else the counting rules applied now."""
    if ref.start_ns > ref.end_ns:
        return []
    key = (ref, tuple(agent_names), clickhouse.writes())
    seen = getattr(_recent, "entry", None)
    if seen and seen[0] == key and time.monotonic() - seen[1] <= _RECENT_SECONDS:
        return list(seen[2])
    found = _invocations(ref, agent_names)
    _recent.entry = (key, time.monotonic(), tuple(found))
    return found


def _invocations(ref: TraceRef, agent_names: tuple[str, ...]) -> list[Invocation]:
    through, _now = scoping.state(max_age_s=0.5)
    fresh = run(
        Sql(
            f"SELECT count() AS n FROM {schema.table(schema.SPANS)} WHERE ",
            _TRACE_SCOPE,
            " AND InsertedAt > fromUnixTimestamp64Nano({through:Int64})",
            **ref.params(),
            through=scoping.unsettled_after_ns(through),
        ),
        tag="traces.fresh",
    )
    if through and not int(fresh[0]["n"]):
        rows = run(
            Sql(
                "SELECT TraceId AS trace, SpanId AS span, argMax(RunTraceId, Version) AS run,",
                " argMax(ReportedCost, Version) AS reported, argMax(Cost, Version) AS cost,",
                " argMax(Priced, Version) AS priced, argMax(InputTokens, Version) AS input,",
                " argMax(OutputTokens, Version) AS output, argMax(Model, Version) AS model",
                f" FROM {schema.table(schema.CALLS)} WHERE ProjectId = {{project:String}}",
                # A gateway call matched to this run ran inside one of its spans: within its hours.
                " AND Timestamp >= fromUnixTimestamp64Nano({t_lo:Int64}) AND Timestamp <= fromUnixTimestamp64Nano({t_hi:Int64})",
                " AND (TraceId = {trace:String} OR RunTraceId = {trace:String})",
                " GROUP BY TraceId, SpanId HAVING sum(Sign) > 0",
                project=ref.project_id,
                trace=ref.trace_id,
                t_lo=max(ref.start_ns - 3600 * 10**9, 0),
                t_hi=ref.end_ns + 3600 * 10**9,
            ),
            tag="traces.invocations",
        )
        return [_invocation(r) for r in rows]
    scope = scoping.build_scope(ref.project_id, Sql("SELECT {trace_q:String}", trace_q=ref.trace_id), agent_names)
    if scope is None:
        return []
    tables = facts.materialize(scope, TRACE_PREFIX)
    try:
        rows = run(
            Sql(
                f"SELECT {_INVOCATION_COLUMNS} FROM {tables.calls}",
                " WHERE TraceId = {trace_q:String} OR RunTraceId = {trace_q:String}",
                trace_q=ref.trace_id,
            ),
            tag="traces.invocations_live",
        )
    finally:
        facts.drop(tables)
    return [_invocation(r) for r in rows]


def mark_invocations(
    ref: TraceRef, spans: list, agent_names: tuple[str, ...], found: list[Invocation] | None = None
) -> list[Invocation]:
    """Set `invocation`, `cost_usd` and `cost_source` on the trace's spans; returns the run's
    invocations (including a gateway's calls recorded in another trace): `found`, or read now."""
    if found is None:
        found = invocations(ref, agent_names)
    mine = {i.span_id: i for i in found if i.trace_id == ref.trace_id}
    for s in spans:
        inv = mine.get(s.span_id)
        s.invocation = inv is not None
        s.cost_usd = inv.cost_usd if inv else 0.0
        s.cost_source = inv.cost_source if inv else ""
    return found


@dataclass
class TraceSummary:
    trace_id: str
    root_name: str
    root_span_id: str
    services: list[str]
    start_ns: int
    end_ns: int
    spans: int
    errors: int
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    truncated: bool = False
    unpriced_calls: int = 0

    @property
    def duration_ms(self) -> float:
        return round((self.end_ns - self.start_ns) / 1e6, 3)

    @property
    def start(self) -> dt.datetime:
        return from_nanos(self.start_ns)


def summarize(
    ref: TraceRef, spans: list[TreeSpan], calls: list[Invocation], limit: int = MAX_TRACE_SPANS
) -> TraceSummary:
    """The trace's header numbers; `calls` from `mark_invocations` (the run's invocations, once)."""
    trace_id = ref.trace_id
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_span_id not in ids]
    root = roots[0] if roots else spans[0]
    cost = sum(c.cost_usd for c in calls)
    return TraceSummary(
        trace_id=trace_id,
        root_name=root.name,
        root_span_id=root.span_id,
        services=list(dict.fromkeys(s.service for s in spans)),
        start_ns=min(s.ts for s in spans),
        end_ns=max(s.end for s in spans),
        spans=len(spans),
        errors=sum(s.is_error for s in spans),
        llm_calls=len(calls),
        input_tokens=sum(c.input_tokens for c in calls),
        output_tokens=sum(c.output_tokens for c in calls),
        cost_usd=round(cost, 10),
        truncated=len(spans) >= limit,
        unpriced_calls=sum(c.cost_source == "unpriced" for c in calls),
    )


# --- the visible part of a big tree --------------------------------------------------------------


@dataclass
class TreeRow:
    """A line of the tree: a span (open or collapsed), or "more children" of a parent after a span."""

    span: TreeSpan | None
    depth: int
    open: bool = False
    more_parent: str = ""  # set on a "more" line
    more_after: str = ""  # encoded (ts, span_id) of the last child shown
    more_count: int = 0


def after_token(span: TreeSpan) -> str:
    return f"{span.ts}:{span.span_id}"


def parse_after(text: str) -> tuple[int, str]:
    """(ts, span id) of a "more" line's position; BadQuery for anything else (ASCII digits only)."""
    ts, _, span_id = text.partition(":")
    if not (re.fullmatch(r"[0-9]{1,19}", ts) and int(ts) < 2**63 and SPAN_ID.fullmatch(span_id)):
        raise BadQuery("'after' must be a position this server gave out")
    return int(ts), span_id


def visible_rows(spans: list[TreeSpan], open_depth: int = 2, budget: int = 300, per_parent: int = 100) -> list[TreeRow]:
    """Pre-order lines of the tree, within about `budget` lines so a 10,000-span trace renders a
    few hundred DOM rows. A trace that fits is shown whole. A bigger one opens spans breadth-first
    while their children fit in the budget, no deeper than `open_depth`; the rest are collapsed
    and fetched on demand, and a parent shows at most `per_parent` children, then a "more" line."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[TreeSpan]] = defaultdict(list)
    roots: list[TreeSpan] = []
    for s in spans:  # spans come oldest first, so children lists are in start order
        (children[s.parent_span_id] if s.parent_span_id in ids else roots).append(s)

    def shown(kids: list) -> int:
        return min(len(kids), per_parent) + (len(kids) > per_parent)

    max_depth = len(spans) if len(spans) <= budget else open_depth
    opened: set[str] = set()
    count = shown(roots)
    level = roots[:per_parent]
    for _depth in range(max_depth):
        next_level = []
        for span in level:
            kids = children.get(span.span_id, [])
            if kids and count + shown(kids) <= budget:
                opened.add(span.span_id)
                count += shown(kids)
                next_level += kids[:per_parent]
        level = next_level
        if not level:
            break

    out: list[TreeRow] = []
    # An explicit stack: a 10,000-deep chain must not hit Python's recursion limit.
    stack: list[tuple[str, list[TreeSpan], int, int]] = [("", roots, 0, 0)]  # (parent, siblings, next index, depth)
    while stack:
        parent, siblings, index, depth = stack.pop()
        if index >= len(siblings):
            continue
        if index >= per_parent:
            out.append(
                TreeRow(
                    None,
                    depth,
                    more_parent=parent,
                    more_after=after_token(siblings[index - 1]),
                    more_count=len(siblings) - index,
                )
            )
            continue
        span = siblings[index]
        stack.append((parent, siblings, index + 1, depth))
        is_open = span.span_id in opened
        out.append(TreeRow(span, depth, open=is_open))
        if is_open:
            stack.append((span.span_id, children[span.span_id], 0, depth + 1))
    return out


# A root is a span without a parent, or whose parent was never received.
_IS_CHILD = "ParentSpanId = {parent:String}"
_IS_ROOT = "(ParentSpanId = '' OR ParentSpanId NOT IN (SELECT SpanId FROM $narrow WHERE $trace))"

CHILDREN_SQL = f"""
SELECT {_TREE_COLUMNS}
FROM $narrow
WHERE $trace AND $parent
  AND (Timestamp, SpanId) > (fromUnixTimestamp64Nano({{after_ts:Int64}}), {{after_span:String}})
ORDER BY Timestamp, SpanId, {_FINISHED_FIRST}
LIMIT 1 BY SpanId
LIMIT {{limit:UInt32}}
"""

CHILD_COUNTS_SQL = """
SELECT ParentSpanId AS parent, uniqExact(SpanId) AS n
FROM $narrow
WHERE $trace AND ParentSpanId IN {parents:Array(String)}
GROUP BY ParentSpanId
"""

SPAN_EXISTS_SQL = """
SELECT count() AS n
FROM $narrow
WHERE $trace $span
"""


def children(
    ref: TraceRef,
    parent: str,
    after: tuple[int, str] = (0, ""),
    limit: int = 100,
    agent_names: tuple[str, ...] = DEFAULT_AGENT_SPAN_NAMES,
) -> tuple[list[TreeSpan], bool] | None:
    """A page of a span's children (oldest first; `parent` "" for the roots) with their own child
    counts, and whether more follow; None when the parent is not a span of this project's trace."""
    exists = clickhouse.query_one(
        _trace_sql(SPAN_EXISTS_SQL.replace("$span", "AND SpanId = {span:String}" if parent else "")),
        ref.params(span=parent),
        tag="traces.span_exists",
    )
    if not int(exists.get("n") or 0):
        return None
    sql = CHILDREN_SQL.replace("$parent", _IS_CHILD if parent else _IS_ROOT)
    rows = _run_trace(
        sql,
        ref,
        tag="traces.children",
        parent=parent,
        after_ts=after[0],
        after_span=after[1],
        limit=limit + 1,
        agent_names=list(agent_names),
    )
    kids = [_tree_span(r) for r in rows[:limit]]
    mark_invocations(ref, kids, agent_names)
    if kids:
        counts = _run_trace(CHILD_COUNTS_SQL, ref, tag="traces.child_counts", parents=[k.span_id for k in kids])
        by_parent = {r["parent"]: int(r["n"]) for r in counts}
        for k in kids:
            k.child_count = by_parent.get(k.span_id, 0)
    return kids, len(rows) > limit


# --- whole spans (attributes, events, links) ------------------------------------------------------
# What one span holds is read capped, in SQL: a sender may put 1,000,000 attributes (or events, or
# links) on a span, and the page, the API and Replay read at most these of each, in the order sent,
# with the totals; the rest is read a page at a time (span_part). A map's keys and values are read
# whole from storage (its 1,000,000 keys: ~120 ms), only what reaches Python is bounded; the
# totals come from the size subcolumns (`.size0`: length() reads the whole map).
SPAN_ATTRIBUTES_READ = 1_000  # a span's attributes, and its resource's
SPAN_EVENTS_READ = 1_000  # a span's events, and its links
ITEM_ATTRIBUTES_READ = 100  # each event's or link's attributes


def _first(map_sql: str, cap: str) -> str:
    """The first `cap` entries of a Map, in their stored order."""
    return f"mapFromArrays(arraySlice(mapKeys({map_sql}), 1, {cap}), arraySlice(mapValues({map_sql}), 1, {cap}))"


_ITEM = "(length(m), " + _first("m", "{item_attrs:UInt32}") + ")"  # an event's or link's (count, first entries)

_FULL_SPAN_ROWS = f"""
SELECT toUnixTimestamp64Nano(Timestamp) AS ts, TraceId AS trace_id, SpanId AS span_id, ParentSpanId AS parent_span_id,
    TraceState AS trace_state, SpanName AS name, SpanKind AS span_kind, ServiceName AS service,
    ResourceAttributes.size0 AS resource_count, {_first("ResourceAttributes", "{attrs:UInt32}")} AS resource,
    ScopeName AS scope_name, ScopeVersion AS scope_version,
    SpanAttributes.size0 AS attribute_count, {_first("SpanAttributes", "{attrs:UInt32}")} AS attributes,
    Duration AS duration_ns, StatusCode AS status_code, StatusMessage AS status_message,
    Events.Timestamp.size0 AS event_count,
    arrayMap(t -> toUnixTimestamp64Nano(t), arraySlice(Events.Timestamp, 1, {{events:UInt32}})) AS event_ts,
    arraySlice(Events.Name, 1, {{events:UInt32}}) AS event_names,
    arrayMap(m -> {_ITEM}, arraySlice(Events.Attributes, 1, {{events:UInt32}})) AS event_attributes,
    Links.TraceId.size0 AS link_count,
    arraySlice(Links.TraceId, 1, {{events:UInt32}}) AS link_trace_ids, arraySlice(Links.SpanId, 1, {{events:UInt32}}) AS link_span_ids,
    arraySlice(Links.TraceState, 1, {{events:UInt32}}) AS link_states,
    arrayMap(m -> {_ITEM}, arraySlice(Links.Attributes, 1, {{events:UInt32}})) AS link_attributes,
    Model AS model, InputTokens AS input_tokens, OutputTokens AS output_tokens, ReportedCost AS reported_cost,
    IsLLMCall AS is_llm_call, IsAgentStep AS is_agent_step, IsError AS is_error
FROM $table
WHERE $trace AND SpanId != '' $span
"""
_CAPS = {"attrs": SPAN_ATTRIBUTES_READ, "events": SPAN_EVENTS_READ, "item_attrs": ITEM_ATTRIBUTES_READ}
FULL_SPANS_SQL = f"""{_FULL_SPAN_ROWS}ORDER BY Timestamp, SpanId, {_FINISHED_FIRST}
LIMIT 1 BY SpanId
LIMIT {{limit:UInt32}}
"""
# A small trace's stored rows as they come (no sort: the read stops at the limit); _first_copies
# keeps what FULL_SPANS_SQL would.
WHOLE_COPIES_SQL = _FULL_SPAN_ROWS.replace("$span", "") + "LIMIT {limit:UInt32}"


@dataclass
class Event:
    ts: int
    name: str
    attributes: dict[str, str]  # the first ITEM_ATTRIBUTES_READ
    attribute_count: int = -1  # all it holds (-1: as many as read)

    @property
    def is_exception(self) -> bool:
        return self.name == "exception"

    def as_dict(self) -> dict:
        return {
            "time": iso(from_nanos(self.ts)),
            "timestamp_ns": self.ts,
            "name": self.name,
            "attributes": self.attributes,
            **_cut("attributes", "attribute_count", self.attributes, self.attribute_count),
        }


def _cut(part: str, count_name: str, read: Sized, total: int) -> dict:
    """The API's word on a capped part: `<part>_truncated` and, when it is, the total count."""
    cut = total > len(read)
    return {f"{part}_truncated": cut, **({count_name: total} if cut else {})}


def _link(trace_id: str, span_id: str, state: str, counted: list) -> dict:
    count, attributes = counted
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "trace_state": state,
        "attributes": dict(attributes or {}),
        **_cut("attributes", "attribute_count", attributes or {}, int(count)),
    }


@dataclass
class FullSpan:
    ts: int
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    name: str
    span_kind: str
    service: str
    resource: dict[str, str]
    scope_name: str
    scope_version: str
    attributes: dict[str, str]
    duration_ns: int
    status: str
    status_message: str
    events: list[Event] = field(default_factory=list)
    links: list[dict] = field(default_factory=list)
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    reported_cost: float = 0.0
    is_llm_call: bool = False
    is_agent_step: bool = False
    is_embedding: bool = False  # an embedding call (texts in, a vector out): set by `embedding_span_ids`' readers
    has_end: bool = True
    clock_skew_ns: int = 0  # its end lies this far before its start (semconv.clock_skew_ns)
    invocation: bool = False  # set by mark_invocations
    cost_usd: float = 0.0
    cost_source: str = ""
    # What the span holds in all (attributes, resource, events, links are read capped); -1: as read.
    attribute_count: int = -1
    resource_count: int = -1
    event_count: int = -1
    link_count: int = -1

    def __post_init__(self) -> None:
        for part, count in (("attributes", "attribute_count"), ("resource", "resource_count")):
            if getattr(self, count) < 0:
                setattr(self, count, len(getattr(self, part)))
        for part, count in (("events", "event_count"), ("links", "link_count")):
            if getattr(self, count) < 0:
                setattr(self, count, len(getattr(self, part)))

    @property
    def attributes_truncated(self) -> bool:
        return self.attribute_count > len(self.attributes)

    @property
    def resource_truncated(self) -> bool:
        return self.resource_count > len(self.resource)

    @property
    def events_truncated(self) -> bool:
        return self.event_count > len(self.events)

    @property
    def links_truncated(self) -> bool:
        return self.link_count > len(self.links)

    @property
    def duration_ms(self) -> float | None:
        return round(self.duration_ns / 1e6, 3) if self.has_end else None

    @property
    def clock_skew_ms(self) -> float:
        return round(self.clock_skew_ns / 1e6, 3)

    @property
    def is_error(self) -> bool:
        return semconv.is_error(self.status)

    @property
    def exceptions(self) -> list[Event]:
        return [e for e in self.events if e.is_exception]

    def as_dict(self) -> dict:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "trace_state": self.trace_state,
            "name": self.name,
            "kind": self.span_kind,
            "service": self.service,
            "scope": {"name": self.scope_name, "version": self.scope_version},
            "start": iso(from_nanos(self.ts)),
            "start_ns": self.ts,
            "end_ns": self.ts + self.duration_ns if self.has_end else None,
            "duration_ms": self.duration_ms,
            "in_progress": not self.has_end,
            "clock_skew_ms": round(self.clock_skew_ns / 1e6, 3) if self.clock_skew_ns else None,
            "is_invocation": self.invocation,
            "cost_usd": self.cost_usd,
            "cost_source": self.cost_source,
            "status": {"code": self.status, "message": self.status_message},
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "reported_cost_usd": self.reported_cost,
            "is_llm_call": self.is_llm_call,
            "is_agent_step": self.is_agent_step,
            "resource": self.resource,
            **_cut("resource", "resource_count", self.resource, self.resource_count),
            "attributes": self.attributes,
            **_cut("attributes", "attribute_count", self.attributes, self.attribute_count),
            "events": [e.as_dict() for e in self.events],
            **_cut("events", "event_count", self.events, self.event_count),
            "links": self.links,
            **_cut("links", "link_count", self.links, self.link_count),
        }


def _full_span(row: dict) -> FullSpan:
    events = [
        Event(int(t), n, dict(a[1] or {}), int(a[0]))
        for t, n, a in zip(row["event_ts"], row["event_names"], row["event_attributes"], strict=False)
    ]
    links = [
        _link(t, s, st, a)
        for t, s, st, a in zip(
            row["link_trace_ids"], row["link_span_ids"], row["link_states"], row["link_attributes"], strict=False
        )
    ]
    return FullSpan(
        ts=int(row["ts"]),
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"],
        trace_state=row["trace_state"],
        name=row["name"],
        span_kind=row["span_kind"],
        service=row["service"],
        resource=dict(row["resource"] or {}),
        scope_name=row["scope_name"],
        scope_version=row["scope_version"],
        attributes=dict(row["attributes"] or {}),
        duration_ns=semconv.duration_ns(int(row["duration_ns"])),
        has_end=semconv.has_end(int(row["duration_ns"])),
        clock_skew_ns=semconv.clock_skew_ns(int(row["duration_ns"])),
        status=status_name("", bool(int(row["is_error"]))),
        status_message=row["status_message"],
        events=events,
        links=links,
        model=row["model"],
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        reported_cost=float(row["reported_cost"] or 0),
        is_llm_call=bool(row["is_llm_call"]),
        is_agent_step=bool(row["is_agent_step"]),
        attribute_count=int(row["attribute_count"]),
        resource_count=int(row["resource_count"]),
        event_count=int(row["event_count"]),
        link_count=int(row["link_count"]),
    )


def full_spans(
    ref: TraceRef,
    limit: int = MAX_TRACE_SPANS,
    agent_names: tuple[str, ...] = DEFAULT_AGENT_SPAN_NAMES,
    found: list[Invocation] | None = None,
) -> list[FullSpan]:
    """Every span of the trace with its maps, events and links, invocations marked (`found`: the
    run's invocations if already read); [] for another project's trace."""
    if ref.start_ns > ref.end_ns:
        return []
    rows = _run_trace(FULL_SPANS_SQL.replace("$span", ""), ref, tag="traces.full", limit=limit, **_CAPS)
    spans = [_full_span(r) for r in rows]
    _add_log_events(spans, logs_q.message_events(ref.project_id, [ref.trace_id], ref.start_ns, ref.end_ns))
    mark_invocations(ref, spans, agent_names, found)
    return spans


def full_span(
    ref: TraceRef,
    span_id: str,
    agent_names: tuple[str, ...] = DEFAULT_AGENT_SPAN_NAMES,
    found: list[Invocation] | None = None,
) -> FullSpan | None:
    """One whole span of the trace, marked (`found`: the run's invocations if already read); None
    if it is not a span of this project's trace."""
    if ref.start_ns > ref.end_ns:
        return None
    sql = FULL_SPANS_SQL.replace("$span", "AND SpanId = {span:String}")
    rows = _run_trace(sql, ref, tag="traces.span", span=span_id, limit=1, **_CAPS)
    if not rows:
        return None
    span = _full_span(rows[0])
    pair = [(ref.trace_id, span.span_id)]
    _add_log_events([span], logs_q.message_events(ref.project_id, [ref.trace_id], ref.start_ns, ref.end_ns, pair))
    mark_invocations(ref, [span], agent_names, found)
    return span


def _add_log_events(spans: list[FullSpan], logged: dict) -> None:
    """The GenAI events a span's instrumentation sent as log records, among its events by time
    (monitoring/queries/logs.py): the chat reads both alike."""
    for s in spans:
        extra = logged.get((s.trace_id, s.span_id))
        if extra:
            s.events = sorted([*s.events, *(Event(ts, name, attrs) for ts, name, attrs in extra)], key=lambda e: e.ts)


# --- all of a span's attributes, resource, events or links, a page at a time ------------------------

PART_PAGE = 1_000  # entries of a span part asked at once (the page's "show all", the API)


def _entries(map_sql: str) -> str:
    return (
        f"{map_sql}.size0 AS total, arraySlice(mapKeys({map_sql}), {{first:UInt32}}, {{n:UInt32}}) AS keys,"
        f" arraySlice(mapValues({map_sql}), {{first:UInt32}}, {{n:UInt32}}) AS values"
    )


_PART_COLUMNS = {
    "attributes": _entries("SpanAttributes"),
    "resource": _entries("ResourceAttributes"),
    "events": (
        "Events.Timestamp.size0 AS total,"
        " arrayMap(t -> toUnixTimestamp64Nano(t), arraySlice(Events.Timestamp, {first:UInt32}, {n:UInt32})) AS ts,"
        " arraySlice(Events.Name, {first:UInt32}, {n:UInt32}) AS names,"
        f" arrayMap(m -> {_ITEM}, arraySlice(Events.Attributes, {{first:UInt32}}, {{n:UInt32}})) AS attributes"
    ),
    "links": (
        "Links.TraceId.size0 AS total, arraySlice(Links.TraceId, {first:UInt32}, {n:UInt32}) AS trace_ids,"
        " arraySlice(Links.SpanId, {first:UInt32}, {n:UInt32}) AS span_ids,"
        " arraySlice(Links.TraceState, {first:UInt32}, {n:UInt32}) AS states,"
        f" arrayMap(m -> {_ITEM}, arraySlice(Links.Attributes, {{first:UInt32}}, {{n:UInt32}})) AS attributes"
    ),
}
SPAN_PARTS = tuple(_PART_COLUMNS)

# The copy FULL_SPANS_SQL shows: the earliest start, a finished copy first.
SPAN_PART_SQL = f"""
SELECT toUnixTimestamp64Nano(Timestamp) AS span_ts, $columns
FROM $table
WHERE $trace AND SpanId = {{span:String}}
ORDER BY Timestamp, SpanId, {_FINISHED_FIRST}
LIMIT 1
"""


@dataclass(frozen=True)
class SpanPart:
    """A page of one part of a span: `items` are (key, value) pairs for "attributes" and
    "resource", Events for "events", link dicts (FullSpan.links' shape) for "links"; `offset` is
    the first item's index (0-based) among the `total` the span holds, in their stored order."""

    part: str
    total: int
    offset: int
    items: list
    span_ts: int = 0  # the span's start (ns): where its events' offsets count from

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.items)
        return end if end < self.total else None


def span_part(ref: TraceRef, span_id: str, part: str, offset: int = 0, limit: int = PART_PAGE) -> SpanPart | None:
    """`limit` items (at most PART_PAGE) of a span's `part` (one of SPAN_PARTS) from `offset`, with
    the total; None if it is not a span of this project's trace. Each event's or link's own
    attributes are capped at ITEM_ATTRIBUTES_READ (with their count), as in a whole span."""
    if part not in _PART_COLUMNS:
        raise BadQuery(f"a span part is one of {', '.join(SPAN_PARTS)}")
    if ref.start_ns > ref.end_ns:
        return None
    rows = _run_trace(
        SPAN_PART_SQL.replace("$columns", _PART_COLUMNS[part]),
        ref,
        tag=f"traces.span_{part}",
        span=span_id,
        first=offset + 1,
        n=max(0, min(limit, PART_PAGE)),
        item_attrs=ITEM_ATTRIBUTES_READ,
    )
    if not rows:
        return None
    row = rows[0]
    items: list
    if part in ("attributes", "resource"):
        items = list(zip(row["keys"], row["values"], strict=True))
    elif part == "events":
        items = [
            Event(int(t), n, dict(a[1] or {}), int(a[0]))
            for t, n, a in zip(row["ts"], row["names"], row["attributes"], strict=True)
        ]
    else:
        items = [
            _link(t, s, st, a)
            for t, s, st, a in zip(row["trace_ids"], row["span_ids"], row["states"], row["attributes"], strict=True)
        ]
    return SpanPart(part, int(row["total"]), offset, items, int(row["span_ts"]))
