"""What LLM judges read (monitoring/quality/judges.py): the settled runs or LLM calls an evaluator
has not judged yet, their input, output and metadata, and the judges' own calls (spans of service
semconv.JUDGE_SERVICE: how many, how many failed, what they cost).

A target is a settled agent run (`otel_runs`, its trace) or a settled LLM call (`otel_calls`, its
span), never a Replay re-run or a judge's own call (IsReplay = 0). Which targets an evaluator takes:
- its filters (services, models, agents, span names; an empty list means any);
- its sampling rate, decided per target by a hash of the evaluator id and the target's ids
  (`cityHash64`), so the same targets are in the sample on every pass and after a version bump;
- not judged yet at its version: the judge's score id (`judge_score_id`, also computed in SQL) is
  not in `otel_scores`, and the target is not waiting for a retry (`pending`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from monitoring.queries import runs as runs_q
from monitoring.queries import trace as trace_q
from monitoring.semantics import messages, semconv
from monitoring.store import schema
from monitoring.store.sql import Sql, run

SAMPLE_SCALE = 1_000_000  # sampling rates are compared in parts per million
JUDGE_KEYS = {
    "evaluator": "apm.judge.evaluator_id",
    "version": "apm.judge.version",
    "cost": "apm.judge.cost_usd",  # what the call cost: the gateway's figure, else priced by the settler's rates
}
TEXT_CHARS = 20_000  # the input and output a prompt gets, each


def judge_score_id(project_id: str, evaluator_id: int, version: int, trace_id: str, span_id: str) -> str:
    """The id of an evaluator version's score on one target: 32 hex digits of SHA-256 (one score per
    target per evaluator version; `_SCORE_ID_SQL` computes the same in ClickHouse)."""
    text = "\x1f".join(["judge", project_id, str(evaluator_id), str(version), trace_id, span_id])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _score_id_sql(span: str) -> str:
    return f"substring(lower(hex(SHA256(concat({{j_prefix:String}}, TraceId, '\\x1f', {span})))), 1, 32)"


@dataclass
class Target:
    """A run (`span_id` '') or an LLM call, with what the filters and the prompt's metadata name.
    Times in ns, durations in ms, cost in USD (the settled fact's)."""

    kind: str  # "run" | "call"
    trace_id: str
    span_id: str
    start_ns: int
    name: str  # the run's name (its agent), or the call's span name
    service: str
    models: list[str]
    agent: str
    duration_ms: float
    cost_usd: float
    input_tokens: int
    output_tokens: int
    failed: bool
    end_user: str = ""
    session_id: str = ""
    first_call: str = ""  # a run's first and last calls, "trace/span"
    last_call: str = ""
    extra: dict = field(default_factory=dict)

    def metadata(self) -> dict:
        """What a prompt may name besides the input and the output."""
        return {
            "kind": self.kind,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "name": self.name,
            "span_name": self.name,
            "service": self.service,
            "model": ", ".join(self.models),
            "agent": self.agent,
            "duration_ms": self.duration_ms,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "status": "error" if self.failed else "ok",
            "end_user": self.end_user,
            "session_id": self.session_id,
        }


_RUN_SELECT = (
    "SELECT 'run' AS kind, TraceId, '' AS SpanId, toUnixTimestamp64Nano(Start) AS start_ns, Name, ServiceName,"
    " Models, Name AS agent, if(HasEnd, (toUnixTimestamp64Nano(End) - toUnixTimestamp64Nano(Start)) / 1e6, 0) AS ms,"
    " Cost, InputTokens, OutputTokens, IsError, EndUser, SessionId, FirstCall, LastCall"
    " FROM {runs} FINAL WHERE ProjectId = {{project:String}} AND Sign = 1 AND IsReplay = 0"
)
_CALL_SELECT = (
    "SELECT 'call' AS kind, TraceId, SpanId, toUnixTimestamp64Nano(Timestamp) AS start_ns, SpanName AS Name,"
    " ServiceName, [Model] AS Models, '' AS agent, if(HasEnd, Duration / 1e6, 0) AS ms, Cost, InputTokens,"
    " OutputTokens, IsError, EndUser, SessionId, '' AS FirstCall, '' AS LastCall, RunTraceId"
    " FROM {calls} FINAL WHERE ProjectId = {{project:String}} AND Sign = 1 AND IsReplay = 0 AND IsEmbedding = 0"
)


def _filters(kind: str, filters: dict[str, list[str]]) -> list[str]:
    found = []
    if kind == "run":
        if filters.get("services"):
            found.append("hasAny(Services, {j_services:Array(String)})")
        if filters.get("models"):
            found.append("hasAny(Models, {j_models:Array(String)})")
        if filters.get("agents"):
            found.append("Name IN {j_agents:Array(String)}")
        if filters.get("span_names"):
            found.append("Name IN {j_span_names:Array(String)}")
        return found
    if filters.get("services"):
        found.append("ServiceName IN {j_services:Array(String)}")
    if filters.get("models"):
        found.append("Model IN {j_models:Array(String)}")
    if filters.get("span_names"):
        found.append("SpanName IN {j_span_names:Array(String)}")
    if filters.get("agents"):
        found.append(
            f"RunTraceId IN (SELECT TraceId FROM {schema.table(schema.RUNS)} FINAL WHERE ProjectId = {{project:String}}"
            " AND Sign = 1 AND Name IN {j_agents:Array(String)})"
        )
    return found


def _targets(
    project_id: str,
    evaluator_id: int,
    version: int,
    kind: str,
    filters: dict[str, list[str]],
    sampling_rate: float,
    where: list[str],
    pending: list[tuple[str, str]],
    limit: int,
    tag: str,
    **params,
) -> list[Target]:
    if sampling_rate <= 0 or limit <= 0:
        return []
    span = "''" if kind == "run" else "SpanId"
    select = (_RUN_SELECT if kind == "run" else _CALL_SELECT).format(
        runs=schema.table(schema.RUNS), calls=schema.table(schema.CALLS)
    )
    conditions = [
        *where,
        *_filters(kind, filters),
        f"cityHash64(concat({{j_sample_key:String}}, TraceId, '\\x1f', {span})) % {SAMPLE_SCALE} < {{j_rate:UInt64}}",
        f"{_score_id_sql(span)} NOT IN (SELECT ScoreId FROM {schema.table(schema.SCORES)}"
        " WHERE ProjectId = {project:String} AND Source = 'judge' AND Author = {j_author:String})",
    ]
    if pending:
        conditions.append(f"(TraceId, {span}) NOT IN {{j_pending:Array(Tuple(String, String))}}")
    rows = run(
        Sql(
            select,
            " AND ",
            Sql.all(conditions),
            f" ORDER BY start_ns, TraceId{', SpanId' if kind == 'call' else ''} LIMIT {{j_limit:UInt32}}",
            project=project_id,
            j_services=filters.get("services") or [],
            j_models=filters.get("models") or [],
            j_agents=filters.get("agents") or [],
            j_span_names=filters.get("span_names") or [],
            j_sample_key=f"{evaluator_id}\x1f",
            j_rate=round(min(1.0, sampling_rate) * SAMPLE_SCALE),
            j_prefix="\x1f".join(["judge", project_id, str(evaluator_id), str(version), ""]),
            j_author=f"judge:{evaluator_id}",
            j_pending=pending,
            j_limit=limit,
            **params,
        ),
        tag=tag,
    )
    return [_target(r) for r in rows]


def new_targets(
    project_id: str,
    evaluator_id: int,
    version: int,
    kind: str,
    filters: dict[str, list[str]],
    sampling_rate: float,
    *,
    after_ns: int,
    until_ns: int,
    pending: list[tuple[str, str]] = (),  # type: ignore[assignment]
    limit: int = 50,
) -> list[Target]:
    """Up to `limit` settled targets (oldest first) of traces that received spans inserted in
    (after_ns, until_ns] (`otel_spans.InsertedAt`, the settler's clock), not judged yet (module note)."""
    touched = (
        f"TraceId IN (SELECT DISTINCT TraceId FROM {schema.table(schema.SPANS)} WHERE ProjectId = {{project:String}}"
        " AND InsertedAt > fromUnixTimestamp64Nano({j_after:Int64}) AND InsertedAt <= fromUnixTimestamp64Nano({j_until:Int64}))"
    )
    return _targets(
        project_id,
        evaluator_id,
        version,
        kind,
        filters,
        sampling_rate,
        [touched],
        list(pending),
        limit,
        "judging.new",
        j_after=max(0, after_ns) // 1_000_000 * 1_000_000,
        j_until=until_ns,
    )


def window_targets(
    project_id: str,
    evaluator_id: int,
    version: int,
    kind: str,
    filters: dict[str, list[str]],
    sampling_rate: float,
    *,
    start_ns: int,
    end_ns: int,
    pending: list[tuple[str, str]] = (),  # type: ignore[assignment]
    limit: int = 50,
) -> list[Target]:
    """Up to `limit` settled targets starting in [start_ns, end_ns), oldest first, not judged yet (a backfill)."""
    time = "Start" if kind == "run" else "Timestamp"
    window = f"{time} >= fromUnixTimestamp64Nano({{j_lo:Int64}}) AND {time} < fromUnixTimestamp64Nano({{j_hi:Int64}})"
    return _targets(
        project_id,
        evaluator_id,
        version,
        kind,
        filters,
        sampling_rate,
        [window],
        list(pending),
        limit,
        "judging.window",
        j_lo=start_ns,
        j_hi=end_ns,
    )


def targets_by_id(project_id: str, kind: str, keys: list[tuple[str, str]]) -> list[Target]:
    """The settled targets of these (trace id, span id) pairs (span id '' for a run): a retry's."""
    if not keys:
        return []
    span = "''" if kind == "run" else "SpanId"
    select = (_RUN_SELECT if kind == "run" else _CALL_SELECT).format(
        runs=schema.table(schema.RUNS), calls=schema.table(schema.CALLS)
    )
    rows = run(
        Sql(
            select,
            f" AND TraceId IN {{traces:Array(String)}} AND (TraceId, {span}) IN {{keys:Array(Tuple(String, String))}}",
            " ORDER BY start_ns",
            project=project_id,
            traces=sorted({t for t, _ in keys}),
            keys=list(keys),
        ),
        tag="judging.by_id",
    )
    return [_target(r) for r in rows]


def _chat(message_list: list[messages.Message]) -> str:
    """Messages as plain text, one "role: content" block each."""
    return "\n\n".join(f"{m.role}: {m.content}" for m in message_list if m.content)


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def content(project_id: str, target: Target) -> tuple[str, str]:
    """(input, output) of a target as text: a call's request messages and its answer; a run's first
    input and output by the runs list's one rule (monitoring.queries.runs.texts), unclipped up to
    TEXT_CHARS). Read from the spans' attributes and their GenAI events (span events or log records)."""

    def span_of(key: str):
        trace_id, _, span_id = key.partition("/")
        if not span_id:
            return None
        return trace_q.full_span(trace_q.locate(project_id, trace_id), span_id)

    if target.kind == "call":
        span = span_of(f"{target.trace_id}/{target.span_id}")
        if span is None:
            return "", ""
        events = [(e.name, e.attributes) for e in span.events]
        asked = messages.request_messages(span.attributes, events)
        said = messages.response_messages(span.attributes, events)
        return _clip(_chat(asked)), _clip(_chat([m for m in said if m.role == "assistant"] or said))
    run_texts = runs_q.texts(project_id, [(target.trace_id, target.start_ns, target.first_call, target.last_call)])
    question, answer = run_texts.get(target.trace_id, ("", ""))
    return _clip(question), _clip(answer)


@dataclass
class JudgeStats:
    """An evaluator's judge calls since a time: calls, failed ones, their cost (USD)."""

    calls: int = 0
    failed: int = 0
    cost_usd: float = 0.0


def judge_stats(project_id: str, since_ns: int) -> dict[str, JudgeStats]:
    """{evaluator id (str): its calls since `since_ns`}, from the judge spans of the project."""
    rows = run(
        Sql(
            "SELECT SpanAttributes[{k_ev:String}] AS ev, count() AS calls, countIf(IsError = 1) AS failed,",
            " sum(toFloat64OrZero(SpanAttributes[{k_cost:String}])) AS cost",
            f" FROM {schema.table()} WHERE ServiceName = {{service:String}} AND ProjectId = {{project:String}}",
            " AND Timestamp >= fromUnixTimestamp64Nano({since:Int64}) GROUP BY ev",
            k_ev=JUDGE_KEYS["evaluator"],
            k_cost=JUDGE_KEYS["cost"],
            service=semconv.JUDGE_SERVICE,
            project=project_id,
            since=since_ns,
        ),
        tag="judging.stats",
    )
    return {
        r["ev"]: JudgeStats(int(r["calls"]), int(r["failed"]), round(float(r["cost"]), 10)) for r in rows if r["ev"]
    }


def judge_cost(project_id: str, since_ns: int) -> float:
    """What the project's judge calls since `since_ns` cost, USD (the daily cap's measure)."""
    return round(sum(s.cost_usd for s in judge_stats(project_id, since_ns).values()), 10)


def scores_written(project_id: str, evaluator_ids: list[int]) -> dict[str, int]:
    """{evaluator id (str): scores it has written (every version), current rows only}."""
    if not evaluator_ids:
        return {}
    rows = run(
        Sql(
            f"SELECT Author, count() AS n FROM {schema.table(schema.SCORES)} FINAL WHERE ProjectId = {{project:String}}",
            " AND Source = 'judge' AND Author IN {authors:Array(String)} AND IsDeleted = 0 GROUP BY Author",
            project=project_id,
            authors=[f"judge:{i}" for i in evaluator_ids],
        ),
        tag="judging.scores",
    )
    return {r["Author"].split(":", 1)[1]: int(r["n"]) for r in rows}


def _target(r: dict) -> Target:
    """A target read by either statement above (the same columns)."""
    return Target(
        kind=r["kind"],
        trace_id=r["TraceId"],
        span_id=r["SpanId"],
        start_ns=int(r["start_ns"]),
        name=r["Name"],
        service=r["ServiceName"],
        models=[m for m in r["Models"] if m],
        agent=r["agent"],
        duration_ms=round(float(r["ms"]), 3),
        cost_usd=round(float(r["Cost"]), 10),
        input_tokens=int(r["InputTokens"]),
        output_tokens=int(r["OutputTokens"]),
        failed=bool(int(r["IsError"])),
        end_user=r["EndUser"],
        session_id=r["SessionId"],
        first_call=r["FirstCall"],
        last_call=r["LastCall"],
    )
