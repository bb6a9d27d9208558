"""Agent runs, one row per run (trace): Traces > Agent, Replay's run picker, a session's runs.

A run is a trace with an agent step (monitoring/queries/facts.py); its numbers are its own
invocations plus the gateway calls of another trace matched to its client spans. Rows come from
the settled `otel_runs` (collapsed with FINAL: a run re-settled has one live row) and, while the
settler is behind, from the runs computed now for traces not settled yet.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass

from monitoring import schema
from monitoring.queries import live, sources
from monitoring.queries.filter import SpanFilter, from_nanos, iso, to_nanos
from monitoring.queries.spans import TRACE_ID, BadQuery
from monitoring.queries.sql import Sql, run

SORTS = {"time": "start_ns", "duration": "DurationNs", "cost": "Cost"}
# The keyset's bound per sort: exact integers for ns (a Float64 compared with the DateTime64 Start was
# read as seconds, so paging by time returned the first page again and again).
_BOUND = {"time": "{r_ns:Int64}", "duration": "{r_ns:Int64}", "cost": "{r_value:Float64}"}
PAGE_SIZE = 50
PREVIEW_CHARS = 160


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
    a session or end user to narrow to, and the page."""

    sort: str = "time"
    session: str = ""
    user: str = ""
    cursor: RunCursor | None = None
    limit: int = PAGE_SIZE

    @classmethod
    def from_query(cls, query, max_limit: int = 500) -> RunQuery:
        sort = query.get("sort") or "time"
        if sort not in SORTS:
            raise BadQuery(f"'sort' must be one of {', '.join(SORTS)}")
        session, user = (query.get("session") or "").strip(), (query.get("user") or "").strip()
        if len(session) > 500 or len(user) > 500:
            raise BadQuery("'session' and 'user' may be at most 500 characters")
        raw_limit = query.get("limit") or str(PAGE_SIZE)
        if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= max_limit:
            raise BadQuery(f"'limit' must be a whole number between 1 and {max_limit}")
        cursor = RunCursor.decode(query["cursor"]) if query.get("cursor") else None
        return cls(sort, session, user, cursor, int(raw_limit))


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
    " Unpriced, Spans, FirstCall, LastCall, Services, Models, IsReplay, Start"
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
    )


def list_runs(flt: SpanFilter, rq: RunQuery = RunQuery()) -> RunPage:
    """A page of runs starting in the window, sorted by `rq.sort` (descending), and the next cursor."""
    order = SORTS[rq.sort]
    want = rq.limit + 1
    where = _conditions(flt, rq)
    keyset = ""
    if rq.cursor:
        keyset = f"({order}, TraceId) < ({_BOUND[rq.sort]}, {{r_trace:String}})"
    params = {
        "project": flt.project_id,
        "r_start": to_nanos(flt.window.start),
        "r_end": to_nanos(flt.window.end),
        "r_session": rq.session,
        "r_user": rq.user,
        "r_value": float(rq.cursor.value) if rq.cursor else 0.0,
        "r_ns": int(rq.cursor.value) if rq.cursor and rq.sort != "cost" else 0,
        "r_trace": rq.cursor.trace_id if rq.cursor else "",
        "limit": want,
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
    statement = Sql(
        "SELECT * FROM (",
        Sql.join(" UNION ALL ", parts),
        ") WHERE ",
        Sql.all([*where, keyset]),
        f" ORDER BY {order} DESC, TraceId DESC LIMIT {{limit:UInt32}}",
        **params,
    )
    found = run(statement, tag=f"runs.list.{rq.sort}")
    items = [_row(r) for r in found[: rq.limit]]
    next_cursor = None
    if len(found) > rq.limit:
        # The last row's exact sort value: a rounded one (ms, 1e-10 USD) skipped or repeated rows at the edge.
        last = found[rq.limit - 1]
        value = {"time": int(last["start_ns"]), "duration": int(last["DurationNs"]), "cost": float(last["Cost"])}
        next_cursor = RunCursor(value[rq.sort], last["TraceId"]).encode()
    return RunPage(items, next_cursor)


def add_previews(project_id: str, runs: list[RunRow]) -> list[RunRow]:
    """Fill `first_input` (the first call's last user message) and `last_output` (the last call's
    answer), PREVIEW_CHARS at most, from the spans' own attributes and events."""
    from monitoring import messages

    keys = {k for r in runs for k in (r.first_call, r.last_call) if k}
    if not keys:
        return runs
    pairs = [k.split("/", 1) for k in keys]
    rows = run(
        Sql(
            "SELECT TraceId AS trace, SpanId AS span, SpanAttributes AS attrs, Events.Name AS names,",
            " Events.Attributes AS event_attrs",
            f" FROM {schema.table()} WHERE ProjectId = {{project:String}}",
            " AND TraceId IN {traces:Array(String)} AND (TraceId, SpanId) IN {keys:Array(Tuple(String, String))}",
            " AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp <= fromUnixTimestamp64Nano({hi:Int64})",
            " LIMIT 1 BY TraceId, SpanId",
            project=project_id,
            traces=sorted({t for t, _ in pairs}),
            keys=[tuple(p) for p in pairs],
            lo=min(r.start_ns for r in runs) - 3600 * 10**9,
            hi=max(r.start_ns for r in runs) + 24 * 3600 * 10**9,
        ),
        tag="runs.previews",
    )
    found = {f"{r['trace']}/{r['span']}": r for r in rows}

    def clip(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"

    for r in runs:
        first, last = found.get(r.first_call), found.get(r.last_call)
        if first:
            events = list(zip(first["names"], first["event_attrs"], strict=False))
            asked = [m for m in messages.request_messages(first["attrs"], events) if m.role == "user" and m.content]
            r.first_input = clip(asked[-1].content) if asked else ""
        if last:
            events = list(zip(last["names"], last["event_attrs"], strict=False))
            said = [m for m in messages.response_messages(last["attrs"], events) if m.content]
            r.last_output = clip(said[-1].content) if said else ""
    return runs


def recent_traces(flt: SpanFilter, limit: int = 20) -> list[dict]:
    """The newest traces of the window with an LLM call or an agent step: trace_id, start, root,
    service, spans, errors, llm_calls (invocations, once), agent_steps, cost_usd."""
    rows = run(
        Sql(
            "SELECT TraceId AS trace_id, toUnixTimestamp64Nano(min(Timestamp)) AS start_ns,",
            # the root span's (a child may start at the same instant), else the earliest span's
            " if(countIf(ParentSpanId = '') > 0, argMinIf(SpanName, Timestamp, ParentSpanId = ''),",
            " argMin(SpanName, Timestamp)) AS root,",
            " if(countIf(ParentSpanId = '') > 0, argMinIf(ServiceName, Timestamp, ParentSpanId = ''),",
            " argMin(ServiceName, Timestamp)) AS service,",
            " uniqExact(SpanId) AS spans, uniqExactIf(SpanId, IsError = 1) AS errors,",
            " uniqExactIf(SpanId, IsAgentStep = 1 OR SpanName IN {agent_names:Array(String)}) AS agent_steps",
            f" FROM {schema.table(schema.SPANS)} WHERE ProjectId = {{project:String}} AND ",
            "Timestamp >= fromUnixTimestamp64Nano({r_start:Int64}) AND Timestamp < fromUnixTimestamp64Nano({r_end:Int64})",
            # GLOBAL: the newest traces of all shards (on a cluster a plain IN picked each shard's own newest).
            f" AND TraceId GLOBAL IN (SELECT TraceId FROM {schema.table(schema.SPANS)} WHERE ProjectId = {{project:String}}",
            " AND Timestamp >= fromUnixTimestamp64Nano({r_start:Int64}) AND Timestamp < fromUnixTimestamp64Nano({r_end:Int64})",
            " AND (IsLLMCall = 1 OR IsAgentStep = 1 OR SpanName IN {agent_names:Array(String)})",
            " GROUP BY TraceId ORDER BY max(Timestamp) DESC LIMIT {limit:UInt32})",
            " GROUP BY TraceId ORDER BY start_ns DESC LIMIT {limit:UInt32}",
            project=flt.project_id,
            agent_names=list(flt.agent_names),
            r_start=to_nanos(flt.window.start),
            r_end=to_nanos(flt.window.end),
            limit=limit,
        ),
        tag="replay.recent",
    )
    counts = calls_per_run(flt, [r["trace_id"] for r in rows])
    for row in rows:
        row["start"] = from_nanos(int(row["start_ns"]))
        row["llm_calls"], row["cost_usd"] = counts.get(row["trace_id"], (0, 0.0))
        row["llm_spans"] = row["llm_calls"]  # the name the picker's template reads
    return rows


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
