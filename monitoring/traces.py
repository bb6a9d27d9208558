"""The Traces tab's questions: the span list (Agent / LLM Call / All), one trace, one span.

Same rules as queries.py: SQL beside the function that runs it, every value bound, every query
scoped by project. The list adds one token, `$extra`, filled from fixed fragments only.

Paging is keyset, never OFFSET: rows are ordered by (Timestamp, SpanId) descending and a page
continues strictly below the last row it showed. The cursor also pins the first page's window
start, so a sliding "last 24 h" window does not drop rows between pages, and spans arriving
meanwhile (newer than the cursor) cannot shift what later pages hold.

A trace is found through the exporter's `otel_traces_trace_id_ts` lookup table first: its
Start/End narrow the scan of otel_traces to the trace's partitions and granules.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from monitoring import clickhouse, pricing, queries, schema, semconv
from monitoring.forms import SpanFilter, Window

KINDS = {"agent": "Agent", "llm": "LLM Call", "all": "All"}
DEFAULT_KIND = "agent"
PAGE_SIZE = 50
MAX_LIMIT = 500
EXPORT_CHUNK = 1000
EXPORT_MAX_ROWS = 100_000
MAX_TRACE_SPANS = 50_000  # a trace page or API answer stops here (and says so)

TRACE_ID = re.compile(r"[0-9a-f]{32}")
SPAN_ID = re.compile(r"[0-9a-f]{16}")


class BadQuery(ValueError):
    """A list parameter the caller can fix (shown as a 400)."""


def _ns_to_datetime(ns: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)


def status_name(code: str) -> str:
    """The exporter's status spelling, old or new, as one word."""
    return {"STATUS_CODE_ERROR": "Error", "STATUS_CODE_OK": "Ok", "STATUS_CODE_UNSET": "Unset"}.get(
        code, code or "Unset"
    )


# --- the list's parameters ----------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where a page continues: below (ts, span_id), not before `since` (the first page's window start)."""

    ts: int
    span_id: str
    since: int

    def encode(self) -> str:
        raw = json.dumps([self.ts, self.span_id, self.since], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            ts, span_id, since = json.loads(raw)
        except (binascii.Error, ValueError, TypeError):
            raise BadQuery("'cursor' is not a cursor this server gave out") from None
        if not (
            isinstance(ts, int)
            and isinstance(since, int)
            and 0 <= since <= ts < 2**63
            and isinstance(span_id, str)
            and SPAN_ID.fullmatch(span_id)
        ):
            raise BadQuery("'cursor' is not a cursor this server gave out")
        return cls(ts, span_id, since)


@dataclass(frozen=True)
class ListQuery:
    """The Traces list beyond the filter bar: sub-tab, search, minimum duration, page."""

    kind: str = DEFAULT_KIND
    q: str = ""
    min_ms: float = 0.0
    cursor: Cursor | None = None
    limit: int = PAGE_SIZE

    @classmethod
    def from_query(cls, query, max_limit: int = PAGE_SIZE) -> ListQuery:
        """`kind`, `q`, `min_ms`, `cursor`, `limit` from a QueryDict; BadQuery when one is wrong."""
        kind = query.get("kind") or DEFAULT_KIND
        if kind not in KINDS:
            raise BadQuery(f"'kind' must be one of {', '.join(KINDS)}")
        q = (query.get("q") or "").strip()
        if len(q) > 500:
            raise BadQuery("'q' may be at most 500 characters")
        try:
            min_ms = float(query.get("min_ms") or 0)
        except ValueError:
            raise BadQuery("'min_ms' must be a number of milliseconds") from None
        if not 0 <= min_ms < 1e12:
            raise BadQuery("'min_ms' must be a number of milliseconds")
        try:
            limit = int(query.get("limit") or min(PAGE_SIZE, max_limit))
        except ValueError:
            raise BadQuery("'limit' must be a whole number") from None
        if not 1 <= limit <= max_limit:
            raise BadQuery(f"'limit' must be between 1 and {max_limit}")
        cursor = Cursor.decode(query["cursor"]) if query.get("cursor") else None
        return cls(kind, q, min_ms, cursor, limit)

    @property
    def trace_id(self) -> str:
        """The search term when it is a trace id (then only that trace is matched)."""
        q = self.q.lower()
        return q if TRACE_ID.fullmatch(q) else ""

    def query(self) -> dict[str, str]:
        """As URL parameters, without the cursor (for links that keep the search)."""
        q = {"kind": self.kind}
        if self.q:
            q["q"] = self.q
        if self.min_ms:
            q["min_ms"] = f"{self.min_ms:g}"
        return q


# --- the list -----------------------------------------------------------------------------------


@dataclass
class SpanRow:
    """One row of the list (and of the export)."""

    ts: int
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    span_kind: str
    service: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_source: str  # "reported", "priced" or "" (no cost known)
    duration_ms: float
    status: str
    status_message: str
    is_llm_call: bool

    @property
    def time(self) -> dt.datetime:
        return _ns_to_datetime(self.ts)

    @property
    def is_error(self) -> bool:
        return self.status == "Error"

    def as_dict(self) -> dict:
        data = asdict(self)
        data["time"] = self.time.isoformat().replace("+00:00", "Z")
        data["timestamp_ns"] = data.pop("ts")
        return data


@dataclass
class Page:
    items: list[SpanRow]
    next_cursor: str | None


_ROW = """
    toUnixTimestamp64Nano(Timestamp) AS ts, TraceId AS trace_id, SpanId AS span_id, ParentSpanId AS parent_span_id,
    SpanName AS name, SpanKind AS span_kind, ServiceName AS service, Model AS model,
    InputTokens AS input_tokens, OutputTokens AS output_tokens, ReportedCost AS reported_cost,
    Duration AS duration_ns, StatusCode AS status_code, StatusMessage AS status_message, IsLLMCall AS is_llm_call
"""

# `$extra` is built only from these fragments.
_KIND = {"agent": queries.AGENT, "llm": queries.CALL, "all": ""}
_BY_TRACE_ID = "TraceId = {trace_q:String}"
# Span names, then attribute values (messages live there). Only the Map's values subcolumn is read,
# and only for rows the cheap conditions kept. JSON-encoded attributes escape non-ASCII text
# (LiteLLM writes "\ud55c..."), so the escaped spelling of the term is looked for too.
_BY_TEXT = (
    "(positionCaseInsensitiveUTF8(SpanName, {q:String}) > 0"
    " OR arrayExists(v -> positionCaseInsensitiveUTF8(v, {q:String}) > 0, mapValues(SpanAttributes)))"
)
_BY_TEXT_OR_ESCAPED = (
    "(positionCaseInsensitiveUTF8(SpanName, {q:String}) > 0"
    " OR arrayExists(v -> positionCaseInsensitiveUTF8(v, {q:String}) > 0"
    " OR positionCaseInsensitiveUTF8(v, {q_json:String}) > 0, mapValues(SpanAttributes)))"
)
_MIN_DURATION = "Duration >= {min_ns:UInt64}"
# The first conjunct lets ClickHouse prune partitions; the tuple is the exact keyset condition.
_BELOW_CURSOR = (
    "Timestamp <= fromUnixTimestamp64Nano({cursor_ts:Int64})"
    " AND (Timestamp, SpanId) < (fromUnixTimestamp64Nano({cursor_ts:Int64}), {cursor_span:String})"
)

LIST_SQL = f"""
SELECT {_ROW}
FROM $table
WHERE $where $extra
ORDER BY Timestamp DESC, SpanId DESC
LIMIT {{limit:UInt32}}
"""


def _list_conditions(lq: ListQuery) -> tuple[str, dict]:
    parts, params = [], {}
    if _KIND[lq.kind]:
        parts.append(_KIND[lq.kind])
    if lq.trace_id:
        parts.append(_BY_TRACE_ID)
        params["trace_q"] = lq.trace_id
    elif lq.q:
        escaped = json.dumps(lq.q)[1:-1]
        parts.append(_BY_TEXT if escaped == lq.q else _BY_TEXT_OR_ESCAPED)
        params |= {"q": lq.q, "q_json": escaped}
    if lq.min_ms:
        parts.append(_MIN_DURATION)
        params["min_ns"] = int(lq.min_ms * 1_000_000)
    if lq.cursor:
        parts.append(_BELOW_CURSOR)
        params |= {"cursor_ts": lq.cursor.ts, "cursor_span": lq.cursor.span_id}
    return "".join(f" AND {p}" for p in parts), params


def _paged_filter(flt: SpanFilter, lq: ListQuery) -> SpanFilter:
    if lq.cursor is None:
        return flt
    # The cursor keeps the first page's window start (a sliding window moves on), but may not reach
    # further back than one more window length: it is not signed.
    earliest = flt.window.nanos()["start"] - (flt.window.nanos()["end"] - flt.window.nanos()["start"])
    since = max(lq.cursor.since, earliest)
    return flt.with_window(Window(_ns_to_datetime(since), flt.window.end, flt.window.range))


def cost_of(reported: float, model: str, input_tokens: int, output_tokens: int, overrides) -> tuple[float, str]:
    """(USD, source) of one span: its reported cost, else its tokens priced (like queries.overview)."""
    if reported > 0:
        return float(reported), "reported"
    if input_tokens or output_tokens:
        priced = pricing.cost_of_tokens(
            [{"model": model, "input_tokens": input_tokens, "output_tokens": output_tokens}], overrides
        )
        if priced > 0:
            return priced, "priced"
    return 0.0, ""


def _span_row(row: dict, overrides) -> SpanRow:
    cost, source = cost_of(
        float(row["reported_cost"] or 0), row["model"], int(row["input_tokens"]), int(row["output_tokens"]), overrides
    )
    return SpanRow(
        ts=int(row["ts"]),
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"],
        name=row["name"],
        span_kind=row["span_kind"],
        service=row["service"],
        model=row["model"],
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cost_usd=round(cost, 10),
        cost_source=source,
        duration_ms=round(int(row["duration_ns"]) / 1e6, 3),
        status=status_name(row["status_code"]),
        status_message=row["status_message"],
        is_llm_call=bool(row["is_llm_call"]),
    )


def list_spans(flt: SpanFilter, lq: ListQuery, overrides=None) -> Page:
    """One page of spans, newest first, and the cursor of the next page (None on the last)."""
    flt = _paged_filter(flt, lq)
    extra, params = _list_conditions(lq)
    # One row more than asked tells whether another page exists without a count().
    rows = queries.run(
        LIST_SQL.replace("$extra", extra), flt, tag=f"traces.list.{lq.kind}", limit=lq.limit + 1, **params
    )
    overrides = pricing.project_prices(flt.project_id) if overrides is None else overrides
    items = [_span_row(r, overrides) for r in rows[: lq.limit]]
    next_cursor = None
    if len(rows) > lq.limit:
        last = items[-1]
        since = lq.cursor.since if lq.cursor else flt.window.nanos()["start"]
        next_cursor = Cursor(last.ts, last.span_id, since).encode()
    return Page(items, next_cursor)


def iter_spans(flt: SpanFilter, lq: ListQuery, max_rows: int = EXPORT_MAX_ROWS) -> Iterator[SpanRow]:
    """Every matching span up to `max_rows`, fetched a chunk at a time (memory stays flat)."""
    overrides = pricing.project_prices(flt.project_id)
    sent = 0
    query = ListQuery(lq.kind, lq.q, lq.min_ms, lq.cursor, min(EXPORT_CHUNK, max_rows))
    while sent < max_rows:
        page = list_spans(flt, query, overrides)
        yield from page.items[: max_rows - sent]
        sent += len(page.items)
        if page.next_cursor is None:
            return
        query = ListQuery(lq.kind, lq.q, lq.min_ms, Cursor.decode(page.next_cursor), min(EXPORT_CHUNK, max_rows - sent))


# --- one trace ----------------------------------------------------------------------------------

_TRACE_SCOPE = (
    "ProjectId = {project:String} AND TraceId = {trace:String}"
    " AND Timestamp >= fromUnixTimestamp64Nano({t_start:Int64})"
    " AND Timestamp < fromUnixTimestamp64Nano({t_end:Int64})"
)

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
        .replace("$table", schema.table())
    )


def _run_trace(template: str, ref: TraceRef, *, tag: str, **extra) -> list[dict]:
    return clickhouse.query(_trace_sql(template), ref.params(**extra), tag=tag)


def locate(project_id: str, trace_id: str) -> TraceRef:
    """Narrow the trace to the seconds its spans start in. The lookup table has no project: the
    project is checked by the span queries themselves, which find nothing for another's trace."""
    row = clickhouse.query_one(_trace_sql(TRACE_BOUNDS_SQL), {"trace": trace_id}, tag="traces.locate")
    if int(row.get("n") or 0):
        # Start/End are whole seconds (DateTime): the last span may start up to a second after End.
        return TraceRef(str(project_id), trace_id, int(row["start"]) * 10**9, (int(row["end"]) + 1) * 10**9)
    # No lookup row (a table filled before its view existed): the TraceId bloom filter must do.
    return TraceRef(str(project_id), trace_id, 0, 2**63 - 1)


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

    @property
    def end(self) -> int:
        return self.ts + self.duration_ns

    @property
    def duration_ms(self) -> float:
        return round(self.duration_ns / 1e6, 3)

    @property
    def is_error(self) -> bool:
        return self.status == "Error"


_TREE_COLUMNS = """
    toUnixTimestamp64Nano(Timestamp) AS ts, SpanId AS span_id, ParentSpanId AS parent_span_id, SpanName AS name,
    ServiceName AS service, SpanKind AS span_kind, ScopeName AS scope, Duration AS duration_ns, StatusCode AS status_code,
    IsLLMCall AS is_llm_call, IsAgentStep AS is_agent_step, Model AS model, InputTokens AS input_tokens,
    OutputTokens AS output_tokens, ReportedCost AS reported_cost
"""

TRACE_TREE_SQL = f"""
SELECT {_TREE_COLUMNS}
FROM $table
WHERE $trace
ORDER BY Timestamp, SpanId
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
        status=status_name(row["status_code"]),
        is_llm_call=bool(row["is_llm_call"]),
        is_agent_step=bool(row["is_agent_step"]),
        model=row["model"],
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        reported_cost=float(row["reported_cost"] or 0),
    )


def tree_spans(ref: TraceRef, limit: int = MAX_TRACE_SPANS) -> list[TreeSpan]:
    """Every span of the trace (light columns, no attribute maps), oldest first; [] for another project's."""
    spans = [_tree_span(r) for r in _run_trace(TRACE_TREE_SQL, ref, tag="traces.tree", limit=limit)]
    counts: dict[str, int] = defaultdict(int)
    for s in spans:
        counts[s.parent_span_id] += 1
    for s in spans:
        s.child_count = counts.get(s.span_id, 0)
    return spans


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

    @property
    def duration_ms(self) -> float:
        return round((self.end_ns - self.start_ns) / 1e6, 3)

    @property
    def start(self) -> dt.datetime:
        return _ns_to_datetime(self.start_ns)


def model_calls(spans: list[TreeSpan]) -> list[TreeSpan]:
    """The trace's LLM calls counted once: an agent's LLM span whose time holds a LiteLLM gateway
    call is the same invocation as the gateway's (queries.CALL, done here in Python)."""
    gateway = sorted(s.ts for s in spans if s.is_llm_call and s.scope == semconv.LITELLM_SCOPE)

    def wraps_a_gateway_call(s: TreeSpan) -> bool:
        i = bisect.bisect_left(gateway, s.ts)  # the first gateway call starting at or after s
        return i < len(gateway) and gateway[i] <= s.end

    return [s for s in spans if s.is_llm_call and (s.scope == semconv.LITELLM_SCOPE or not wraps_a_gateway_call(s))]


def summarize(trace_id: str, spans: list[TreeSpan], overrides, limit: int = MAX_TRACE_SPANS) -> TraceSummary:
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_span_id not in ids]
    root = roots[0] if roots else spans[0]
    calls = model_calls(spans)
    cost = 0.0
    for s in calls:
        cost += cost_of(s.reported_cost, s.model, s.input_tokens, s.output_tokens, overrides)[0]
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
        input_tokens=sum(s.input_tokens for s in calls),
        output_tokens=sum(s.output_tokens for s in calls),
        cost_usd=round(cost, 10),
        truncated=len(spans) >= limit,
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
    ts, _, span_id = text.partition(":")
    if not (ts.isdigit() and SPAN_ID.fullmatch(span_id)):
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
_IS_ROOT = "(ParentSpanId = '' OR ParentSpanId NOT IN (SELECT SpanId FROM $table WHERE $trace))"

CHILDREN_SQL = f"""
SELECT {_TREE_COLUMNS}
FROM $table
WHERE $trace AND $parent
  AND (Timestamp, SpanId) > (fromUnixTimestamp64Nano({{after_ts:Int64}}), {{after_span:String}})
ORDER BY Timestamp, SpanId
LIMIT {{limit:UInt32}}
"""

CHILD_COUNTS_SQL = """
SELECT ParentSpanId AS parent, count() AS n
FROM $table
WHERE $trace AND ParentSpanId IN {parents:Array(String)}
GROUP BY ParentSpanId
"""

SPAN_EXISTS_SQL = """
SELECT count() AS n
FROM $table
WHERE $trace $span
"""


def children(
    ref: TraceRef, parent: str, after: tuple[int, str] = (0, ""), limit: int = 100
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
        sql, ref, tag="traces.children", parent=parent, after_ts=after[0], after_span=after[1], limit=limit + 1
    )
    kids = [_tree_span(r) for r in rows[:limit]]
    if kids:
        counts = _run_trace(CHILD_COUNTS_SQL, ref, tag="traces.child_counts", parents=[k.span_id for k in kids])
        by_parent = {r["parent"]: int(r["n"]) for r in counts}
        for k in kids:
            k.child_count = by_parent.get(k.span_id, 0)
    return kids, len(rows) > limit


# --- whole spans (attributes, events, links) ------------------------------------------------------

FULL_SPANS_SQL = """
SELECT toUnixTimestamp64Nano(Timestamp) AS ts, TraceId AS trace_id, SpanId AS span_id, ParentSpanId AS parent_span_id,
    TraceState AS trace_state, SpanName AS name, SpanKind AS span_kind, ServiceName AS service,
    ResourceAttributes AS resource, ScopeName AS scope_name, ScopeVersion AS scope_version, SpanAttributes AS attributes,
    Duration AS duration_ns, StatusCode AS status_code, StatusMessage AS status_message,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS event_ts, Events.Name AS event_names,
    Events.Attributes AS event_attributes, Links.TraceId AS link_trace_ids, Links.SpanId AS link_span_ids,
    Links.TraceState AS link_states, Links.Attributes AS link_attributes,
    Model AS model, InputTokens AS input_tokens, OutputTokens AS output_tokens, ReportedCost AS reported_cost,
    IsLLMCall AS is_llm_call, IsAgentStep AS is_agent_step
FROM $table
WHERE $trace $span
ORDER BY Timestamp, SpanId
LIMIT {limit:UInt32}
"""


@dataclass
class Event:
    ts: int
    name: str
    attributes: dict[str, str]

    @property
    def is_exception(self) -> bool:
        return self.name == "exception"

    def as_dict(self) -> dict:
        return {
            "time": _ns_to_datetime(self.ts).isoformat().replace("+00:00", "Z"),
            "timestamp_ns": self.ts,
            "name": self.name,
            "attributes": self.attributes,
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

    @property
    def duration_ms(self) -> float:
        return round(self.duration_ns / 1e6, 3)

    @property
    def is_error(self) -> bool:
        return self.status == "Error"

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
            "start": _ns_to_datetime(self.ts).isoformat().replace("+00:00", "Z"),
            "start_ns": self.ts,
            "end_ns": self.ts + self.duration_ns,
            "duration_ms": self.duration_ms,
            "status": {"code": self.status, "message": self.status_message},
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "reported_cost_usd": self.reported_cost,
            "is_llm_call": self.is_llm_call,
            "is_agent_step": self.is_agent_step,
            "resource": self.resource,
            "attributes": self.attributes,
            "events": [e.as_dict() for e in self.events],
            "links": self.links,
        }


def _full_span(row: dict) -> FullSpan:
    events = [
        Event(int(t), n, dict(a or {}))
        for t, n, a in zip(row["event_ts"], row["event_names"], row["event_attributes"], strict=False)
    ]
    links = [
        {"trace_id": t, "span_id": s, "trace_state": st, "attributes": dict(a or {})}
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
        duration_ns=int(row["duration_ns"]),
        status=status_name(row["status_code"]),
        status_message=row["status_message"],
        events=events,
        links=links,
        model=row["model"],
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        reported_cost=float(row["reported_cost"] or 0),
        is_llm_call=bool(row["is_llm_call"]),
        is_agent_step=bool(row["is_agent_step"]),
    )


def full_spans(ref: TraceRef, limit: int = MAX_TRACE_SPANS) -> list[FullSpan]:
    """Every span of the trace with its maps, events and links; [] for another project's trace."""
    rows = _run_trace(FULL_SPANS_SQL.replace("$span", ""), ref, tag="traces.full", limit=limit)
    return [_full_span(r) for r in rows]


def full_span(ref: TraceRef, span_id: str) -> FullSpan | None:
    sql = FULL_SPANS_SQL.replace("$span", "AND SpanId = {span:String}")
    rows = _run_trace(sql, ref, tag="traces.span", span=span_id, limit=1)
    return _full_span(rows[0]) if rows else None
