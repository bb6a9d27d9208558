"""Agent runs, one row per run (trace): Traces > Agent, Replay's run picker, a session's runs.

A run is a trace with an agent step (monitoring/semantics/facts.py); its numbers are its own
invocations plus the gateway calls of another trace matched to its client spans. Rows come from
the settled `otel_runs` (collapsed with FINAL: a run re-settled has one live row) and, while the
settler is behind, from the runs computed now for traces not settled yet. Sorted by time, a page is
looked for in the newest hour of the window first, then in stretches 8x and 64x as long, then in
the rest (as the span lists do): FINAL over an hour instead of over every day's parts.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

from monitoring.queries import attributes, live, ranges, sources
from monitoring.queries import logs as logs_q
from monitoring.queries import scores as scores_q
from monitoring.queries.filter import BadQuery, SpanFilter, iso
from monitoring.queries.spans import TRACE_ID, TRACE_PREFIX
from monitoring.semantics import messages, scoping
from monitoring.store import schema
from monitoring.store.sql import Sql, from_nanos, run, to_nanos

# sort -> (column of the row, its cursor parameter's type)
# (cost sorts by the value shown, USD to 10 decimals, so a cursor made from a row is exact.)
SORTS = {"time": ("start_ns", "Int64"), "duration": ("DurationNs", "Int64"), "cost": ("round(Cost, 10)", "Float64")}
FIRST_STEP_NS = 3600 * 10**9
PAGE_SIZE = 50
PREVIEW_CHARS = 160
STEPS_READ = 200  # spans a run's preview reads at most: its first and last chat calls, its agent steps


@dataclass(frozen=True)
class RunCursor:
    """Where a page continues: below (sort value, trace id)."""

    value: float
    trace_id: str

    def encode(self) -> str:
        raw = json.dumps([self.value, self.trace_id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> RunCursor:
        try:
            value, trace_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError, TypeError, RecursionError):
            raise BadQuery("'cursor' is not a cursor this server gave out") from None
        if type(value) not in (int, float) or not isinstance(trace_id, str) or not TRACE_ID.fullmatch(trace_id):
            raise BadQuery("'cursor' is not a cursor this server gave out")
        if not -1e300 < float(value) < 1e300:
            raise BadQuery("'cursor' is not a cursor this server gave out")
        return cls(value, trace_id)


@dataclass(frozen=True)
class RunQuery:
    """The runs list's own parameters: sort (time, duration, cost; newest/longest/dearest first),
    a session or end user to narrow to, score conditions (`score=`, monitoring/queries/scores.py)
    and the page."""

    sort: str = "time"
    session: str = ""
    user: str = ""
    cursor: RunCursor | None = None
    limit: int = PAGE_SIZE
    scores: tuple[scores_q.ScoreCondition, ...] = ()

    @classmethod
    def from_query(cls, query, max_limit: int = 500) -> RunQuery:
        sort = query.get("sort") or "time"
        if sort not in SORTS and not _score_sort(sort):
            raise BadQuery(f"'sort' must be one of {', '.join(SORTS)} or score:<name>")
        session, user = (query.get("session") or "").strip(), (query.get("user") or "").strip()
        if len(session) > 500 or len(user) > 500:
            raise BadQuery("'session' and 'user' may be at most 500 characters")
        raw_limit = query.get("limit") or str(PAGE_SIZE)
        if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= max_limit:
            raise BadQuery(f"'limit' must be a whole number between 1 and {max_limit}")
        cursor = RunCursor.decode(query["cursor"]) if query.get("cursor") else None
        found = scores_q.from_query(query)
        return cls(sort, session, user, cursor, int(raw_limit), found)


SCORE_SORT_MISSING = -1e299  # a run without the score sorts after every run with it (a cursor holds it)


def _score_sort(sort: str) -> str:
    """The score name of a `sort=score:<name>` (highest mean first), '' for any other sort."""
    name = sort[6:] if sort.startswith("score:") else ""
    return name if 0 < len(name) <= scores_q.NAME_CHARS else ""


@dataclass
class RunRow:
    trace_id: str
    start_ns: int
    duration_ms: float | None  # None while a span of the run has no end time
    failed: bool
    name: str
    service: str
    end_user: str
    session: str
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced_calls: int
    spans: int
    first_call: str  # "trace/span" of its first invocation ('' when none)
    last_call: str
    first_input: str = ""  # previews, filled by `add_previews`
    last_output: str = ""
    duration_ns: int = 0  # exact, for the duration sort's cursor
    sort_score: float = SCORE_SORT_MISSING  # the mean of the sorted-by score (sort=score:<name>)
    scores: dict = field(default_factory=dict)  # {name: {value, label, count}}: scores.from_columns

    @property
    def start(self):
        return from_nanos(self.start_ns)

    @property
    def status(self) -> str:
        return "Error" if self.failed else "OK"

    def as_dict(self) -> dict:
        data = asdict(self)
        data["start"] = iso(self.start)
        return data


@dataclass
class RunPage:
    items: list[RunRow]
    next_cursor: str | None


_COLUMNS = (
    "TraceId, toUnixTimestamp64Nano(Start) AS start_ns, toInt64(toUnixTimestamp64Nano(End) - toUnixTimestamp64Nano(Start))"
    " AS DurationNs, HasEnd, IsError, Name, ServiceName, EndUser, SessionId, LLMCalls, InputTokens, OutputTokens, Cost,"
    " Unpriced, Spans, FirstCall, LastCall, Services, Models, IsReplay, Start, ScoreNames, ScoreValues, ScoreLabels,"
    " ScoreCounts"
)


def _conditions(flt: SpanFilter, rq: RunQuery) -> list[str]:
    found = sources.run_conditions(flt, raw=True)
    if rq.session:
        found.append("SessionId = {r_session:String}")
    if rq.user:
        found.append("EndUser = {r_user:String}")
    return found


def _row(r: dict) -> RunRow:
    return RunRow(
        trace_id=r["TraceId"],
        start_ns=int(r["start_ns"]),
        duration_ms=round(int(r["DurationNs"]) / 1e6, 3) if int(r["HasEnd"]) else None,
        failed=bool(int(r["IsError"])),
        name=r["Name"],
        service=r["ServiceName"],
        end_user=r["EndUser"],
        session=r["SessionId"],
        llm_calls=int(r["LLMCalls"]),
        input_tokens=int(r["InputTokens"]),
        output_tokens=int(r["OutputTokens"]),
        cost_usd=round(float(r["Cost"]), 10),
        unpriced_calls=int(r["Unpriced"]),
        spans=int(r["Spans"]),
        first_call=r["FirstCall"],
        last_call=r["LastCall"],
        duration_ns=int(r["DurationNs"]),
        scores=scores_q.from_columns(r["ScoreNames"], r["ScoreValues"], r["ScoreLabels"], r["ScoreCounts"]),
    )


def list_runs(flt: SpanFilter, rq: RunQuery = RunQuery()) -> RunPage:
    """A page of runs starting in the window, sorted by `rq.sort` (descending), and the next cursor."""
    want = rq.limit + 1
    start, end = to_nanos(flt.window.start), to_nanos(flt.window.end)
    if rq.sort != "time":
        rows = _select(flt, rq, want, start, end)
    else:
        rows = []
        seen: set = set()
        hi = min(end, int(rq.cursor.value) + 1) if rq.cursor else end
        width = FIRST_STEP_NS
        while hi > start and len(rows) < want:
            lo = max(start, hi - width) if width else start
            found = [r for r in _select(flt, rq, want - len(rows), lo, hi) if r.trace_id not in seen]
            seen.update(r.trace_id for r in found)
            rows += found
            hi = lo
            width = width * 8 if width and width < 64 * FIRST_STEP_NS else 0  # 0: the rest at once
    items = rows[: rq.limit]
    next_cursor = None
    if len(rows) > rq.limit:
        last = items[-1]
        values = {"time": last.start_ns, "duration": last.duration_ns, "cost": last.cost_usd}
        value = values[rq.sort] if rq.sort in values else last.sort_score
        next_cursor = RunCursor(value, last.trace_id).encode()
    return RunPage(items, next_cursor)


def _select(flt: SpanFilter, rq: RunQuery, limit: int, start: int, end: int) -> list[RunRow]:
    """Up to `limit` runs starting in [start, end) ns, in the page's order, below its cursor."""
    score_name = _score_sort(rq.sort)
    order, value_type = SORTS.get(rq.sort) or ("SortScore", "Float64")
    where = _conditions(flt, rq)
    keyset = ""
    if rq.cursor:
        keyset = f"({order}, TraceId) < ({{r_value:{value_type}}}, {{r_trace:String}})"
    value = rq.cursor.value if rq.cursor else 0
    score_where, score_params = scores_q.conditions(rq.scores, "run")
    attr_where, attr_params = attributes.for_filter(flt, "run", "r_", start, end)
    range_where, range_params = ranges.conditions(flt, "run_list", "r_")
    where += score_where + attr_where + range_where
    params = {
        **score_params,
        **attr_params,
        **range_params,
        "project": flt.project_id,
        "r_start": start,
        "r_end": end,
        "r_session": rq.session,
        "r_user": rq.user,
        "r_value": float(value) if value_type == "Float64" else min(max(int(value), -(2**63)), 2**63 - 1),
        "r_trace": rq.cursor.trace_id if rq.cursor else "",
        "limit": limit,
        "services": list(flt.services),
        "models": list(flt.models),
    }
    window = "Start >= fromUnixTimestamp64Nano({r_start:Int64}) AND Start < fromUnixTimestamp64Nano({r_end:Int64})"
    now = live.facts_for(flt)
    parts = [
        Sql(
            f"SELECT {_COLUMNS} FROM {schema.table(schema.RUNS)} FINAL WHERE ProjectId = {{project:String}} AND Sign = 1",
            " AND ",
            window,
        )
    ]
    if now is not None:
        parts[0] = Sql(parts[0], " AND TraceId NOT IN (", now.scope.traces, ")")
        parts.append(Sql(f"SELECT {_COLUMNS} FROM {now.tables.runs} WHERE ", window))
    runs = Sql("SELECT * FROM (", Sql.join(" UNION ALL ", parts), ")")
    if score_name:  # each run's mean of that score (its own and its spans'), settled with the run
        runs = Sql(
            "SELECT *, if((indexOf(ScoreNames, {r_score:String}) AS at) = 0 OR isNaN(ScoreValues[at]),",
            " {r_missing:Float64}, ScoreValues[at]) AS SortScore FROM (",
            runs,
            ")",
            r_score=score_name,
            r_missing=SCORE_SORT_MISSING,
        )
    statement = Sql(
        "SELECT * FROM (",
        runs,
        ") WHERE ",
        Sql.all([*where, keyset]),
        f" ORDER BY {order} DESC, TraceId DESC LIMIT {{limit:UInt32}}",
        **params,
    )
    rows = run(statement, tag="runs.list.score" if score_name else f"runs.list.{rq.sort}")
    found = [_row(r) for r in rows]
    if score_name:
        for item, r in zip(found, rows, strict=True):
            item.sort_score = float(r["SortScore"])
    return found


def add_previews(project_id: str, runs: list[RunRow], agent_names: tuple[str, ...] = ()) -> list[RunRow]:
    """Fill `first_input` and `last_output` (`texts`), PREVIEW_CHARS at most, on one line."""

    def clip(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"

    found = texts(project_id, [(r.trace_id, r.start_ns, r.first_call, r.last_call) for r in runs], agent_names)
    for r in runs:
        question, answer = found.get(r.trace_id, ("", ""))
        r.first_input, r.last_output = clip(question), clip(answer)
    return runs


EXPORT_CHUNK = 500


def iter_runs(flt: SpanFilter, rq: RunQuery, max_rows: int) -> Iterator[RunRow]:
    """Every run of the list as `rq` sorts and narrows it (from its first page), up to `max_rows`,
    a page of EXPORT_CHUNK at a time, each with the list's previews and its scores: what the
    runs export streams."""
    sent = 0
    query = replace(rq, cursor=None, limit=min(EXPORT_CHUNK, max_rows))
    while sent < max_rows:
        page = list_runs(flt, query)
        rows = page.items[: max_rows - sent]
        yield from add_previews(flt.project_id, rows)
        sent += len(rows)
        if page.next_cursor is None:
            return
        query = replace(query, cursor=RunCursor.decode(page.next_cursor), limit=min(EXPORT_CHUNK, max_rows - sent))


def texts(
    project_id: str, runs: list[tuple[str, int, str, str]], agent_names: tuple[str, ...] = ()
) -> dict[str, tuple[str, str]]:
    """{trace: (input, output)} of runs given as (trace, start ns, first call, last call), the calls
    "trace/span" or '' (the settled FirstCall/LastCall: a run's first and last chat calls).

    The one rule every place that shows a run's input and output uses: its input is the last user
    message of its first chat call (messages.question), its output the answer of its last chat call
    (messages.answer); a run without one (no chat call, or none recorded its text) shows its agent
    steps' own: the first step's question, the last step's answer (the root span counts as a step).
    Read from the spans' attributes and events, and GenAI events sent as log records."""
    if not runs:
        return {}
    keys = sorted({k for _, _, first, last in runs for k in (first, last) if k})
    lo, hi = min(r[1] for r in runs), max(r[1] for r in runs)
    # First the chat calls alone: their spans sit together in the exporter's table (ordered by
    # service and span name), so a page of runs decompresses the attributes of a few granules. The
    # agent steps, spread over every step name's granules, are read only for runs whose calls say
    # nothing (none, or no text recorded).
    calls = (
        _spans_read(
            project_id,
            Sql(
                " AND (TraceId, SpanId) IN {keys:Array(Tuple(String, String))}",
                keys=[tuple(k.split("/", 1)) for k in keys],
            ),
            sorted({k.split("/", 1)[0] for k in keys}),
            lo,
            hi,
            "runs.previews",
        )
        if keys
        else {}
    )
    out: dict[str, tuple[str, str]] = {}
    for trace, _, first, last in runs:
        call_in, call_out = calls.get(first), calls.get(last)
        out[trace] = (messages.question(*call_in) if call_in else "", messages.answer(*call_out) if call_out else "")
    quiet = sorted(trace for trace, (question, answer) in out.items() if not question or not answer)
    found = _spans_read(
        project_id,
        Sql(
            " AND (IsAgentStep = 1 OR ParentSpanId = '' OR SpanName IN {r_agents:Array(String)})",
            r_agents=list(agent_names),
        ),
        quiet,
        lo,
        hi,
        "runs.previews.steps",
    )
    steps: dict[str, list[tuple[dict, list]]] = {}
    for key, span in found.items():  # oldest first
        steps.setdefault(key.split("/", 1)[0], []).append(span)
    for trace in quiet:
        question, answer = out[trace]
        own = steps.get(trace, [])
        question = question or next((q for q in (messages.question(*s) for s in own) if q), "")
        answer = answer or next((a for a in (messages.answer(*s) for s in reversed(own)) if a), "")
        out[trace] = (question, answer)
    return out


def _spans_read(
    project_id: str, which: Sql, traces: list[str], lo: int, hi: int, tag: str
) -> dict[str, tuple[dict, list]]:
    """{"trace/span": (attributes, [(event name, attributes)…])} of the spans of `traces` that `which`
    picks, oldest first, with the GenAI events sent for them as log records; stamped from an hour
    before `lo` to a day after `hi` (a run's spans start near it)."""
    if not traces:
        return {}
    rows = run(
        Sql(
            "SELECT * FROM (SELECT TraceId AS trace, SpanId AS span, toUnixTimestamp64Nano(Timestamp) AS ts,",
            " SpanAttributes AS attrs,",
            " Events.Name AS names, Events.Attributes AS event_attrs",
            f" FROM {schema.table()} WHERE ProjectId = {{project:String}} AND TraceId IN {{traces:Array(String)}}",
            which,
            " AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp <= fromUnixTimestamp64Nano({hi:Int64})",
            # No ORDER BY: sorting rows that carry attribute maps costs more than sorting them here.
            # At most STEPS_READ spans a trace: a trace of countless root spans does not crowd out the others.
            " LIMIT 1 BY TraceId, SpanId) LIMIT {r_most:UInt32} BY trace",
            project=project_id,
            traces=traces,
            lo=lo - 3600 * 10**9,
            hi=hi + 24 * 3600 * 10**9,
            r_most=STEPS_READ,
        ),
        tag=tag,
    )
    logged = logs_q.message_events(project_id, traces, lo, hi, [(r["trace"], r["span"]) for r in rows])
    found: dict[str, tuple[dict, list]] = {}
    for r in sorted(rows, key=lambda r: (int(r["ts"]), r["span"])):
        events = list(zip(r["names"], r["event_attrs"], strict=False))
        events += [(n, a) for _, n, a in logged.get((r["trace"], r["span"]), [])]
        found[f"{r['trace']}/{r['span']}"] = (r["attrs"], events)
    return found


@dataclass
class TracePage:
    items: list[dict]
    next_cursor: str | None


def trace_search(q: str) -> tuple[str, dict]:
    """Replay's search over a trace's LLM and agent spans: the start of a trace id (6+ hex digits, the
    short ids the tables show), else a part of a span's name, service, session or end user."""
    q = q.strip()
    if TRACE_PREFIX.fullmatch(q.lower()):
        return "startsWith(TraceId, {t_prefix:String})", {"t_prefix": q.lower()}
    hit = " OR ".join(
        f"positionCaseInsensitiveUTF8({c}, {{t_q:String}}) > 0"
        for c in ("SpanName", "ServiceName", "SessionId", "EndUser")
    )
    return f"({hit})", {"t_q": q}


def recent_traces(flt: SpanFilter, limit: int = 20, *, q: str = "", cursor: RunCursor | None = None) -> TracePage:
    """Replay's run list: the traces of the window with an LLM call or an agent step, newest first by
    the start of those spans, a page of `limit` below `cursor`, and the next page's cursor. Each
    item: trace_id, start, root, service, spans, errors, llm_calls (invocations, once), agent_steps,
    cost_usd. The filter bar holds on those spans (service, model, replays; status: one of them
    failed or none did); `q` is `trace_search`.

    Looked for in the newest hour of the window first, then in stretches 8x and 64x as long, then in
    the rest (as the runs list is): grouping 30 days of spans by trace took 1.1 s at 10M spans. A
    stretch's traces are read whole (back to their start, from the TraceId look-up table), and only
    those whose first such span lies in the stretch count: any other trace starts before them all."""
    start_ns, end_ns = to_nanos(flt.window.start), to_nanos(flt.window.end)
    width = FIRST_STEP_NS
    while True:
        lo = max(start_ns, end_ns - width) if width else start_ns
        rows = _recent_in(flt, limit, q, cursor, lo)
        if len(rows) > limit or lo <= start_ns:
            break
        width = width * 8 if width < 64 * FIRST_STEP_NS else 0  # 0: the rest at once
    rows, more = rows[:limit], len(rows) > limit
    # Over the whole window: a gateway call matched by response id may be stamped before its run.
    counts = calls_per_run(flt, [r["trace_id"] for r in rows])
    for row in rows:
        row["start"] = from_nanos(int(row["start_ns"]))
        row["llm_calls"], row["cost_usd"] = counts.get(row["trace_id"], (0, 0.0))
        row["llm_spans"] = row["llm_calls"]  # the name the picker's template reads
    next_cursor = RunCursor(int(rows[-1]["first_ns"]), rows[-1]["trace_id"]).encode() if more else None
    return TracePage(rows, next_cursor)


def _recent_in(flt: SpanFilter, limit: int, q: str, cursor: RunCursor | None, lo_ns: int) -> list[dict]:
    """recent_traces' rows (up to limit + 1) among the traces with a matching span at or after
    `lo_ns` whose first matching span in the window is there too."""
    bar = [c for c in sources.call_conditions(flt) if not c.startswith("IsError")]
    outcome = {"error": " HAVING max(IsError) = 1", "ok": " HAVING max(IsError) = 0"}.get(flt.status, "")
    search, search_params = trace_search(q) if q else ("", {})
    matching = [
        "ProjectId = {project:String}",
        "(IsLLMCall = 1 OR IsAgentStep = 1 OR SpanName IN {agent_names:Array(String)})",
        *bar,
        search,
    ]
    before_end = "Timestamp < fromUnixTimestamp64Nano({r_end:Int64})"
    window = f"Timestamp >= fromUnixTimestamp64Nano({{r_start:Int64}}) AND {before_end}"
    stretch = f"Timestamp >= fromUnixTimestamp64Nano({{r_lo:Int64}}) AND {before_end}"
    candidates = Sql(f"SELECT DISTINCT TraceId FROM {schema.table(schema.SPANS)} WHERE ", Sql.all([*matching, stretch]))
    params = {
        "project": flt.project_id,
        "agent_names": list(flt.agent_names),
        "services": list(flt.services),
        "models": list(flt.models),
        "r_lo": lo_ns,
        "r_end": to_nanos(flt.window.end),
        **search_params,
    }
    known = scoping.bounds(Sql(candidates, **params))
    if known is None:
        return []
    # Every span of the candidates lies after the earliest of their starts (whole seconds).
    params["r_start"] = max(to_nanos(flt.window.start), min(known[0], lo_ns))
    below = "(first_ns, TraceId) < ({t_value:Int64}, {t_trace:String})" if cursor else ""
    first = "first_ns >= {r_lo:Int64}" if lo_ns > to_nanos(flt.window.start) else ""
    picked = Sql(
        f"SELECT TraceId, toUnixTimestamp64Nano(min(Timestamp)) AS first_ns FROM {schema.table(schema.SPANS)}",
        " WHERE ",
        Sql.all([*matching, window]),
        " AND TraceId IN (",
        candidates,
        ") GROUP BY TraceId",
        outcome,
    )
    # GLOBAL: the newest traces of all shards (on a cluster a plain IN picked each shard's own newest).
    return run(
        Sql(
            "SELECT TraceId AS trace_id, any(p.first_ns) AS first_ns, toUnixTimestamp64Nano(min(Timestamp)) AS start_ns,",
            # the root span's (a child may start at the same instant), else the earliest span's
            " if(countIf(ParentSpanId = '') > 0, argMinIf(SpanName, Timestamp, ParentSpanId = ''),",
            " argMin(SpanName, Timestamp)) AS root,",
            " if(countIf(ParentSpanId = '') > 0, argMinIf(ServiceName, Timestamp, ParentSpanId = ''),",
            " argMin(ServiceName, Timestamp)) AS service,",
            " uniqExact(SpanId) AS spans, uniqExactIf(SpanId, IsError = 1) AS errors,",
            " uniqExactIf(SpanId, IsAgentStep = 1 OR SpanName IN {agent_names:Array(String)}) AS agent_steps",
            f" FROM {schema.table(schema.SPANS)} AS s GLOBAL INNER JOIN (SELECT * FROM (",
            picked,
            ") WHERE ",
            Sql.all([below, first]),
            " ORDER BY first_ns DESC, TraceId DESC LIMIT {limit:UInt32}) AS p USING TraceId",
            " WHERE ProjectId = {project:String} AND ",
            window,
            " GROUP BY TraceId ORDER BY first_ns DESC, TraceId DESC",
            **params,
            t_value=min(max(int(cursor.value), -(2**63)), 2**63 - 1) if cursor else 0,
            t_trace=cursor.trace_id if cursor else "",
            limit=limit + 1,
        ),
        tag="replay.recent",
    )


def calls_per_run(flt: SpanFilter, trace_ids: list[str]) -> dict[str, tuple[int, float]]:
    """{trace: (invocations, USD)} of the runs within the filter's window (a run's calls include
    the gateway calls matched to its client spans)."""
    if not trace_ids:
        return {}
    source = sources.calls(flt, ("Calls", "Cost"), extra_dims=("RunTraceId",))
    rows = run(
        Sql(
            "SELECT RunTraceId AS run, sum(Calls) AS calls, sum(Cost) AS cost FROM (",
            source,
            ") WHERE RunTraceId IN {runs:Array(String)} GROUP BY RunTraceId",
            runs=list(trace_ids),
        ),
        tag="runs.calls",
    )
    return {r["run"]: (int(r["calls"]), round(float(r["cost"]), 10)) for r in rows}
