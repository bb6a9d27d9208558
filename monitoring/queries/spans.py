"""The Traces lists: LLM Call (one row per model invocation), Agent (agent steps) and All (every
span), with search, a minimum duration, keyset paging and streamed export.

Paging is keyset, never OFFSET: rows are ordered by (Timestamp, SpanId) descending and a page
continues strictly below the last row it showed. The cursor also pins the first page's window
start, so a sliding "last 24 h" window does not drop rows between pages, and spans arriving
meanwhile (newer than the cursor) cannot shift what later pages hold.

Lists read `otel_spans` (ordered by project and time) and the settled invocations `otel_calls`; a
re-delivered span shows once. A page is looked for in the newest hour of what is left of the window
first, then in spans 8x and 64x as long below it, then in the rest: a page of a busy project reads
a few granules of one partition instead of the head of every day's parts. Search reads the spans'
own attributes and events in `otel_traces`: the newest hour as above (a common word fills the page
there), then where the text indexes' candidates are, the newest first (_read_candidates), so a rare
word or phrase costs what its candidates cost, not a scan of the window.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

from monitoring.queries import attributes, live, ranges, search, sources
from monitoring.queries import logs as logs_q
from monitoring.queries import scores as scores_q
from monitoring.queries.filter import BadQuery, SpanFilter, Window, iso
from monitoring.semantics import messages, semconv
from monitoring.store import schema
from monitoring.store.sql import Sql, from_nanos, run, to_nanos

KINDS = {"agent": "Agent", "llm": "LLM Call", "all": "All"}
DEFAULT_KIND = "agent"
PAGE_SIZE = 50
MAX_LIMIT = 500
EXPORT_CHUNK = 1000
EXPORT_MAX_ROWS = 100_000
EXPORT_TEXT_CHARS = 10_000  # of a span's input and output text in an export (its panel has them whole)
NAME_CHARS = 300  # what a list cell shows of a name; the span panel has it whole
FIRST_STEP_NS = 3600 * 10**9  # the newest stretch a page is looked for in (then 8x wider each time)
# A search past the newest hour asks the text indexes for this stretch's candidates first, then the
# rest's: a common word's newest in the whole window took ~40 ms at 10M spans, in 64 hours ~12 ms.
CANDIDATES_FIRST_NS = 64 * FIRST_STEP_NS

TRACE_ID = re.compile(r"[0-9a-f]{32}")
SPAN_ID = re.compile(r"[0-9a-f]{16}")
TRACE_PREFIX = re.compile(r"[0-9a-f]{6,31}")  # the short ids the tables show


def status_name(code: str, is_error: bool | None = None) -> str:
    """ "Error" or "OK": OpenTelemetry's Unset means no error was recorded (both exporter spellings)."""
    if is_error is None:
        is_error = semconv.is_error(code)
    return "Error" if is_error else "OK"


# --- the list's parameters ----------------------------------------------------------------------


def _is_int(value) -> bool:
    return type(value) is int  # not bool, which is an int too


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
        """BadQuery for anything this server did not give out (never a ClickHouse error)."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            ts, span_id, since = json.loads(raw)
        except (binascii.Error, ValueError, TypeError, RecursionError):
            raise BadQuery("'cursor' is not a cursor this server gave out") from None
        if not (
            _is_int(ts)
            and _is_int(since)
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
    whole_names: bool = False  # exports carry names whole; pages show NAME_CHARS of them
    scores: tuple[scores_q.ScoreCondition, ...] = ()  # `score=` conditions on each span's own scores

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
        except (ValueError, OverflowError):
            raise BadQuery("'min_ms' must be a number of milliseconds") from None
        if not 0 <= min_ms < 1e12:
            raise BadQuery("'min_ms' must be a number of milliseconds")
        raw_limit = query.get("limit") or str(min(PAGE_SIZE, max_limit))
        if not re.fullmatch(r"[0-9]{1,6}", raw_limit):
            raise BadQuery(f"'limit' must be a whole number between 1 and {max_limit}")
        limit = int(raw_limit)
        if not 1 <= limit <= max_limit:
            raise BadQuery(f"'limit' must be between 1 and {max_limit}")
        cursor = Cursor.decode(query["cursor"]) if query.get("cursor") else None
        return cls(kind, q, min_ms, cursor, limit, scores=scores_q.from_query(query))

    @property
    def trace_id(self) -> str:
        """The search term when it is a whole trace id (then only that trace is matched)."""
        q = self.q.lower()
        return q if TRACE_ID.fullmatch(q) else ""

    @property
    def trace_prefix(self) -> str:
        """The search term when it is the start of a trace id (the short id a table shows)."""
        q = self.q.lower()
        return q if TRACE_PREFIX.fullmatch(q) else ""

    def query(self) -> dict[str, str]:
        """As URL parameters, without the cursor (for links that keep the search)."""
        q = {"kind": self.kind}
        if self.q:
            q["q"] = self.q
        if self.min_ms:
            q["min_ms"] = f"{self.min_ms:g}"
        return q  # `score=` is repeatable: the filter bar's keys carry it (views/dashboard.py)


# --- the rows ------------------------------------------------------------------------------------


@dataclass
class SpanRow:
    """One row of the list (and of the export). Cost is the invocation's (USD), 0 for other spans."""

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
    cost_source: str  # "reported", "priced", "unpriced", "wrapped" (counted in an inner span) or ""
    duration_ms: float | None  # None: the span was exported before it ended
    status: str  # "OK" or "Error"
    status_message: str
    is_llm_call: bool
    matched: str = ""  # why a search found it: "trace id", "name", "attribute <key>", "event <name>", "log record"
    snippet: str = ""  # the text around the match (search.SNIPPET_CHARS characters), "" for a name or trace id
    scores: dict = field(default_factory=dict)  # {name: {value, label, count}} of the span's own scores
    # Whose it is: the span's own attributes; an invocation's are its call's (a run's calls are the
    # run's end user's and session's, monitoring/semantics/facts.py).
    end_user: str = ""
    session: str = ""

    @property
    def time(self):
        return from_nanos(self.ts)

    @property
    def is_error(self) -> bool:
        return semconv.is_error(self.status)

    @property
    def in_progress(self) -> bool:
        return self.duration_ms is None

    def as_dict(self) -> dict:
        """The API's and the exports' row; an unpriced call's `cost_usd` is null (an empty CSV cell),
        never 0: it has no reported cost and no known price (README, "Cost")."""
        data = asdict(self)
        if self.cost_source == "unpriced":
            data["cost_usd"] = None
        data["time"] = iso(self.time)
        data["timestamp_ns"] = data.pop("ts")
        return data


@dataclass
class Page:
    items: list[SpanRow]
    next_cursor: str | None


_SPAN_COLUMNS = (
    "toUnixTimestamp64Nano(Timestamp) AS ts, TraceId AS trace_id, SpanId AS span_id, ParentSpanId AS parent_span_id,"
    " SpanName AS name, SpanKind AS span_kind, ServiceName AS service, Model AS model,"
    " InputTokens AS input_tokens, OutputTokens AS output_tokens, ReportedCost AS reported_cost, Duration AS duration,"
    " IsError AS is_error, substring(StatusMessage, 1, 300) AS status_message, IsLLMCall AS is_llm_call,"
    " EndUser AS end_user, SessionId AS session"
)


def _kind_condition(flt: SpanFilter, kind: str) -> str:
    if kind == "agent":
        return "(IsAgentStep = 1 OR SpanName IN {agent_names:Array(String)})"
    if kind == "llm":
        return "IsLLMCall = 1"
    return ""


def _bar(flt: SpanFilter) -> list[str]:
    return sources.call_conditions(flt)


def _paged_window(flt: SpanFilter, lq: ListQuery) -> tuple[int, int]:
    start, end = to_nanos(flt.window.start), to_nanos(flt.window.end)
    if lq.cursor is None:
        return start, end
    # The cursor keeps the first page's window start (a sliding window moves on), but may not reach
    # further back than one more window length: it is not signed.
    return max(lq.cursor.since, start - (end - start)), end


def _below_cursor(lq: ListQuery) -> tuple[str, dict]:
    if lq.cursor is None:
        return "", {}
    return (
        "Timestamp <= fromUnixTimestamp64Nano({cursor_ts:Int64})"
        " AND (Timestamp, SpanId) < (fromUnixTimestamp64Nano({cursor_ts:Int64}), {cursor_span:String})",
        {"cursor_ts": lq.cursor.ts, "cursor_span": lq.cursor.span_id},
    )


def _select_spans(flt: SpanFilter, lq: ListQuery, table: str, extra: list[str], limit: int, params: dict) -> list[dict]:
    """Up to `limit` rows, newest first, read a stretch of the window at a time (the module's note)."""
    start, end = _paged_window(flt, lq)
    hi = min(end, lq.cursor.ts + 1) if lq.cursor else end
    rows: list[dict] = []
    seen: set[tuple[str, str]] = set()

    def read(lo: int, hi: int, indexed: bool) -> int:
        """Read [lo, hi) for the rows still wanted; how many new rows it found."""
        before = len(rows)
        for row in _select_stretch(flt, lq, table, extra, limit - len(rows), params, lo, hi, indexed, logs):
            k = (row["trace_id"], row["span_id"])
            if k not in seen:  # a re-delivered span: once
                seen.add(k)
                rows.append(row)
        return len(rows) - before

    width = FIRST_STEP_NS
    by_candidates = bool(lq.q) and not (lq.trace_id or lq.trace_prefix)  # what the text indexes can tell
    logs = bool(lq.q) and not lq.trace_id and search.has_log_records(flt.project_id, start, hi)
    while hi > start and len(rows) < limit:
        lo = max(start, hi - width) if width else start
        read(lo, hi, False)
        hi = lo
        width = width * 8 if width and width < 64 * FIRST_STEP_NS else 0  # 0: the rest at once
        if by_candidates and hi > start and len(rows) < limit:
            # A search the newest stretch did not fill: the rest is read where the text indexes'
            # candidates are (a word too short for them: a stretch at a time, as above).
            wanted = limit - len(rows)
            floor = max(start, hi - CANDIDATES_FIRST_NS)
            known = search.candidates(flt.project_id, lq.q, floor, hi, logs, _first_take(wanted))
            if known is not None:
                candidates = _Candidates(flt.project_id, lq.q, logs, known, floor)
                _read_candidates(candidates, start, hi, lambda lo, hi: read(lo, hi, True), wanted)
                break
            by_candidates = False
    return rows


def _first_take(wanted: int) -> int:
    """How many of the newest candidates a search's first read past the newest hour takes: 5/4 as
    many as the rows wanted (a term's trigrams let through little more than its matches)."""
    return wanted + wanted // 4 + 1


@dataclass
class _Candidates:
    """What a page knows of a search's candidates: `known` (search.Candidates) of [floor, the
    read's end), asked about the project's spans and (`logs`) log records."""

    project_id: str
    term: str
    logs: bool
    known: search.Candidates
    floor: int

    def ask(self, start: int, end: int) -> None:
        """Learn the newest search.FEW_CANDIDATES of [start, end)."""
        self.known = search.candidates(self.project_id, self.term, start, end, self.logs) or replace(
            self.known, times=[], complete=True
        )
        self.floor = start


def _read_candidates(found_in: _Candidates, start: int, hi: int, read, wanted: int) -> None:
    """Read [start, hi) newest first where the search's candidates are (`found_in`, from the text
    indexes: those of the newest CANDIDATES_FIRST_NS first, then of the rest), `read(lo, hi)`
    (indexed; returns the rows it added) a few candidates at a time until `wanted` rows are found:
    the newest _first_take(wanted), then as many as the matches found so far per candidate read
    say are needed (at least twice the last), the last of a stretch's with the rest of it (a span
    found by its log records only). The text read is that of the page's candidates, a few
    granules, not the window's."""
    take, taken, found = _first_take(wanted), 0, 0
    while hi > start and found < wanted:
        known, floor = found_in.known, found_in.floor
        if hi <= floor:  # the newest stretch's candidates are read: the rest's
            found_in.ask(start, hi)
        elif not known.times and not known.complete:  # the newest asked for are read: the next
            found_in.ask(floor, hi)
        elif not known.times:
            if known.records:  # only log records are left to match in the stretch: read it once
                read(floor, hi)
            hi = floor
        else:
            lo = floor if len(known.times) <= take and known.complete else known.times[min(take, len(known.times)) - 1]
            found += read(lo, hi)
            taken += sum(1 for t in known.times if t >= lo)
            found_in.known = replace(known, times=[t for t in known.times if t < lo])
            hi = lo
            need = wanted - found
            take = max(2 * take, -(-3 * need * taken // (2 * found))) if found else 8 * take


def _select_stretch(
    flt: SpanFilter,
    lq: ListQuery,
    table: str,
    extra: list[str],
    limit: int,
    params: dict,
    start: int,
    end: int,
    indexed: bool = False,
    logs: bool = True,
) -> list[dict]:
    statement = _stretch_statement(flt, lq, table, extra, limit, params, start, end, indexed, logs)
    if not lq.q:
        return run(statement, tag=f"traces.list.{lq.kind}")
    rows = run(statement, tag=f"traces.list.{lq.kind}.search")
    in_logs = [(r["trace_id"], r["span_id"]) for r in rows if r["matched"] == "log record"]
    if in_logs:
        found = search.log_snippets(flt.project_id, lq.q, in_logs, start, end)
        for r in rows:
            r["snippet"] = found.get((r["trace_id"], r["span_id"]), r["snippet"])
    return rows


def search_statement(flt: SpanFilter, lq: ListQuery, table: str, limit: int, start: int, end: int) -> Sql:
    """The SELECT of up to `limit` rows of `table` matching the search `lq.q`, stamped in [start, end)
    ns, newest first, the text indexes tested first (what a page with few candidates reads; tests
    EXPLAIN it)."""
    return _stretch_statement(flt, lq, table, [], limit, {}, start, end, indexed=True)


def _stretch_statement(
    flt: SpanFilter,
    lq: ListQuery,
    table: str,
    extra: list[str],
    limit: int,
    params: dict,
    start: int,
    end: int,
    indexed: bool = False,
    logs: bool = True,
) -> Sql:
    cursor, cursor_params = _below_cursor(lq)
    scored, score_params = scores_q.conditions(lq.scores, "call")
    by_attrs, attr_params = attributes.for_filter(flt, "span", "l_", start, end)
    by_range, range_params = ranges.conditions(flt, "span", "l_")
    conditions = [
        "ProjectId = {project:String}",
        "Timestamp >= fromUnixTimestamp64Nano({l_start:Int64}) AND Timestamp < fromUnixTimestamp64Nano({l_end:Int64})",
        _kind_condition(flt, lq.kind),
        *_bar(flt),
        "Duration >= {min_ns:UInt64}" if lq.min_ms else "",
        cursor,
        *scored,
        *by_attrs,
        *by_range,
        *extra,
    ]
    columns = (
        _SPAN_COLUMNS
        if table == schema.SPANS
        else _SPAN_COLUMNS.replace(
            "IsError AS is_error",
            f"toUInt8(StatusCode IN ({', '.join(repr(s) for s in semconv.ERROR_STATUS)})) AS is_error",
        )
    )
    if not lq.whole_names:  # a client may send names of 100,000 characters: a list cell shows the start
        for name in ("SpanName AS name", "ServiceName AS service", "Model AS model"):
            column, alias = name.split(" AS ")
            columns = columns.replace(name, f"substringUTF8({column}, 1, {NAME_CHARS}) AS {alias}")
    bound = dict(
        project=flt.project_id,
        l_start=start,
        l_end=end,
        min_ns=int(lq.min_ms * 1_000_000),
        limit=limit,
        agent_names=list(flt.agent_names),
        services=list(flt.services),
        models=list(flt.models),
        **cursor_params,
        **score_params,
        **attr_params,
        **range_params,
        **params,
    )
    order = " ORDER BY Timestamp DESC, SpanId DESC LIMIT {limit:UInt32}"
    if not lq.q:
        return Sql(f"SELECT {columns} FROM {schema.table(table)} WHERE ", Sql.all(conditions), order, **bound)
    # A search: each way of matching is a SELECT of its own (monitoring/queries/search.py), a span
    # found by two of them (or stored twice) once, by the first way. Why it matched and its snippet
    # are worked out on the page's rows only, not on every row that matched.
    branches = search.branches(lq.q, lq.trace_id, lq.trace_prefix, indexed, logs)
    selects = [
        Sql(
            f"(SELECT {columns}, {b.rank} AS search_rank, {search.ROW_COLUMNS}",
            f" FROM {schema.table(table)} WHERE ",
            Sql.all([*conditions, b.condition]),
            " ORDER BY Timestamp DESC, SpanId DESC LIMIT 1 BY TraceId, SpanId LIMIT {limit:UInt32})",
            **b.params,
        )
        for b in branches
    ]
    aliases = ", ".join(re.findall(r" AS (\w+)", columns))
    return Sql(
        f"SELECT {aliases}, matched, {search.snippet(branches, 'search_value')} AS snippet FROM (",
        f"SELECT {aliases}, {search.matched(branches)} AS matched, {search.matched_value(branches)} AS search_value",
        " FROM (",
        Sql.join(" UNION ALL ", selects),
        ") ORDER BY ts DESC, span_id DESC, search_rank LIMIT 1 BY trace_id, span_id LIMIT {limit:UInt32}",
        ") ORDER BY ts DESC, span_id DESC",
        **bound,
    )


# --- which spans are invocations, and their cost ----------------------------------------------------


def invocation_costs(flt: SpanFilter, rows: list[dict]) -> dict[tuple[str, str], tuple[float, str, str, str]]:
    """{(trace, span): (USD, "reported" | "priced" | "unpriced", end user, session)} for the rows that
    are model invocations (settled, or computed now for traces not settled yet)."""
    keys = [(r["trace_id"], r["span_id"]) for r in rows if int(r["is_llm_call"])]
    if not keys:
        return {}
    lo = min(int(r["ts"]) for r in rows)
    hi = max(int(r["ts"]) for r in rows)
    bounds = {"k_lo": lo, "k_hi": hi, "k_keys": [tuple(k) for k in keys], "project": flt.project_id}
    cols = (
        "TraceId AS trace, SpanId AS span, ReportedCost AS reported, Cost AS cost, Priced AS priced,"
        " EndUser AS end_user, SessionId AS session"
    )
    settled = Sql(
        "SELECT TraceId AS trace, SpanId AS span, argMax(ReportedCost, Version) AS reported,",
        " argMax(Cost, Version) AS cost, argMax(Priced, Version) AS priced,",
        " argMax(EndUser, Version) AS end_user, argMax(SessionId, Version) AS session",
        f" FROM {schema.table(schema.CALLS)} WHERE ProjectId = {{project:String}}",
        " AND Timestamp >= fromUnixTimestamp64Nano({k_lo:Int64}) AND Timestamp <= fromUnixTimestamp64Nano({k_hi:Int64})",
        " AND (TraceId, SpanId) IN {k_keys:Array(Tuple(String, String))}",
        " GROUP BY TraceId, SpanId HAVING sum(Sign) > 0",
        **bounds,
    )
    now = live.facts_for(flt)
    if now is not None:
        settled = Sql(
            "SELECT * FROM (",
            settled,
            ") WHERE trace NOT IN (",
            now.scope.traces,
            f") UNION ALL SELECT {cols} FROM {now.tables.calls}",
            " WHERE (TraceId, SpanId) IN {k_keys:Array(Tuple(String, String))}",
        )
    found = {}
    for r in run(settled, tag="traces.list.costs"):
        reported, cost = float(r["reported"]), float(r["cost"])
        source = "reported" if reported > 0 else ("priced" if cost > 0 else "")
        if not int(r["priced"]):
            source = "unpriced"
        found[(r["trace"], r["span"])] = (round(cost, 10), source, r["end_user"], r["session"])
    return found


def _span_row(row: dict, costs: dict) -> SpanRow:
    k = (row["trace_id"], row["span_id"])
    cost, source, end_user, session = costs.get(k, (0.0, "", row["end_user"], row["session"]))
    if int(row["is_llm_call"]) and k not in costs:
        source = "wrapped"  # an LLM span around the invocation that counts (or a gateway's client)
    duration = int(row["duration"])
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
        cost_usd=cost,
        cost_source=source,
        duration_ms=round(semconv.duration_ns(duration) / 1e6, 3) if semconv.has_end(duration) else None,
        status=status_name("", bool(int(row["is_error"]))),
        status_message=row["status_message"],
        is_llm_call=bool(int(row["is_llm_call"])),
        matched=row.get("matched") or "",
        end_user=end_user,
        session=session,
        snippet=row.get("snippet") or "",
    )


# --- pages ---------------------------------------------------------------------------------------


def list_spans(flt: SpanFilter, lq: ListQuery) -> Page:
    """One page of rows, newest first, and the cursor of the next page (None on the last)."""
    want = lq.limit + 1  # one row more than asked tells whether another page exists without a count()
    table = schema.TRACES if lq.q else schema.SPANS
    if lq.kind != "llm":
        rows = _select_spans(flt, lq, table, [], want, {})
        costs = invocation_costs(flt, rows)
    else:
        rows, costs = _invocation_page(flt, lq, table, want)
    items = [_span_row(r, costs) for r in rows[: lq.limit]]
    next_cursor = None
    if len(rows) > lq.limit:
        last = items[-1]
        since = lq.cursor.since if lq.cursor else to_nanos(flt.window.start)
        next_cursor = Cursor(last.ts, last.span_id, since).encode()
    return Page(items, next_cursor)


def _invocation_page(flt: SpanFilter, lq: ListQuery, table: str, want: int) -> tuple[list[dict], dict]:
    """LLM spans that are invocations: read LLM spans a batch at a time, keep the invocations."""
    found: list[dict] = []
    costs: dict = {}
    query = lq
    batch = max(want * 2, 20)
    for _ in range(50):  # bounded: at most 50 batches per page
        rows = _select_spans(flt, query, table, [], batch, {})
        batch_costs = invocation_costs(flt, rows)
        costs |= batch_costs
        found += [r for r in rows if (r["trace_id"], r["span_id"]) in batch_costs]
        if len(found) >= want or len(rows) < batch:
            break
        last = rows[-1]
        since = lq.cursor.since if lq.cursor else to_nanos(flt.window.start)
        query = replace(lq, cursor=Cursor(int(last["ts"]), last["span_id"], since))
        batch = min(batch * 2, 5000)
    return found[:want], costs


def iter_spans(
    flt: SpanFilter, lq: ListQuery, max_rows: int = EXPORT_MAX_ROWS
) -> Iterator[tuple[SpanRow, tuple[str, str]]]:
    """Every matching row up to `max_rows` with its (input, output) text (`texts`), fetched a chunk
    at a time (memory stays flat), each with its span's own scores (add_scores): two more reads per
    chunk. What the exports stream."""
    sent = 0
    query = replace(lq, limit=min(EXPORT_CHUNK, max_rows), whole_names=True)
    while sent < max_rows:
        page = list_spans(flt, query)
        rows = add_scores(flt.project_id, page.items[: max_rows - sent])
        found = texts(flt.project_id, rows)
        yield from ((r, found.get((r.trace_id, r.span_id), ("", ""))) for r in rows)
        sent += len(page.items)
        if page.next_cursor is None:
            return
        query = replace(query, cursor=Cursor.decode(page.next_cursor), limit=min(EXPORT_CHUNK, max_rows - sent))


def texts(
    project_id: str, rows: list[SpanRow], chars: int = EXPORT_TEXT_CHARS
) -> dict[tuple[str, str], tuple[str, str]]:
    """{(trace, span): (input, output)} of the rows: the last user message of the span's request
    and its answer, as the runs list's previews read them (every dialect, and the GenAI events sent
    as log records), each at most `chars` characters; one read for the rows."""
    if not rows:
        return {}
    keys = sorted({(r.trace_id, r.span_id) for r in rows})
    traces = sorted({t for t, _ in keys})
    lo, hi = min(r.ts for r in rows), max(r.ts for r in rows)
    found = run(
        Sql(
            "SELECT TraceId AS trace, SpanId AS span, SpanAttributes AS attrs, Events.Name AS names,",
            " Events.Attributes AS event_attrs",
            f" FROM {schema.table()} WHERE ProjectId = {{project:String}}",
            " AND TraceId IN {traces:Array(String)} AND (TraceId, SpanId) IN {keys:Array(Tuple(String, String))}",
            " AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp <= fromUnixTimestamp64Nano({hi:Int64})",
            " LIMIT 1 BY TraceId, SpanId",
            project=project_id,
            traces=traces,
            keys=[tuple(k) for k in keys],
            lo=lo,
            hi=hi,
        ),
        tag="traces.export.texts",
    )
    logged = logs_q.message_events(project_id, traces, lo, hi, keys)

    def cut(text: str) -> str:
        return text if len(text) <= chars else text[: chars - 1] + "…"

    out = {}
    for r in found:
        k = (r["trace"], r["span"])
        events = list(zip(r["names"], r["event_attrs"], strict=False)) + [(n, a) for _, n, a in logged.get(k, [])]
        asked = [m for m in messages.request_messages(r["attrs"], events) if m.role == "user" and m.content]
        said = [m for m in messages.response_messages(r["attrs"], events) if m.content]
        out[k] = (cut(asked[-1].content) if asked else "", cut(said[-1].content) if said else "")
    return out


def add_scores(project_id: str, rows: list[SpanRow]) -> list[SpanRow]:
    """Fill each row's `scores` with its span's own ({name: {value, label, count}})."""
    found = scores_q.per_call(scores_q.for_traces(project_id, [r.trace_id for r in rows]))
    for r in rows:
        r.scores = found.get((r.trace_id, r.span_id), {})
    return rows


def paged_filter(flt: SpanFilter, lq: ListQuery) -> SpanFilter:
    """The filter with the window a cursor pins (for views that show it)."""
    start, end = _paged_window(flt, lq)
    return flt.with_window(Window(from_nanos(start), from_nanos(end), flt.window.range))
