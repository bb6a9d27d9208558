"""The counting rules, written once in SQL: which spans are one model invocation, what an agent run
is, and the Agent Flow Graph's edges.

The settler (monitoring/semantics/settle.py) runs these over the traces that received spans since its last
pass and stores the answer (otel_calls, otel_runs, otel_run_edges, and rollups fed from them); a
page adds the same answer, computed live, for the traces that arrived after that pass. Either way,
each number comes from the rules below.

One invocation, one count:
- A span is (TraceId, SpanId): a re-delivered span is read once (`LIMIT 1 BY`).
- An LLM span is a model call in any dialect (the `IsLLMCall` column, monitoring/semantics/semconv.py).
- An LLM span with another LLM span below it (a framework's span around the SDK's span, an agent's
  span around the gateway's `litellm_request`, Google ADK 1.x's `call_llm`) wraps the same
  invocation: the innermost one counts. "Below" follows ParentSpanId up to 16 levels; an agent's
  span that holds a gateway call of its trace in its time range also wraps it (the HTTP spans in
  between may not be exported).
- Two LLM spans of a trace that are not parent and child but report the same input and output
  tokens, one inside the other's time range, are one invocation recorded twice (OpenInference's
  LangChain/LlamaIndex span and its OpenAI SDK span, which the framework does not parent): the
  outer one (the framework's, under the agent) counts.
- An agent's LLM span in one trace and the gateway's call span in another (the agent SDK did not
  propagate `traceparent`) are the same invocation when both record the same response id, else
  when the gateway call ran inside the client span for the same model alias, one to one
  (`Matches`). The gateway's span counts (it knows the cost and the alias); its run is the agent's.
- An invocation belongs to the service that made it: the outermost LLM span around it (an agent's
  span around the gateway's), or the matched client span of another trace; else its own span's.
- Cost: the span's reported cost when > 0, else its tokens priced per kind (monitoring/semantics/pricing.py);
  calls with tokens and no price are "unpriced".
- A span exported before it ended (no end time) counts as a call but not in latency statistics.

Agent runs: traces with an agent step (a dialect's marker, a root span of an `agent-*` service, or
a span named like one of the project's agent steps), placed at the trace's first span. A run failed
when one of its agent steps failed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib.metadata import version

from monitoring.models import DEFAULT_AGENT_SPAN_NAMES
from monitoring.semantics import pricing, semconv
from monitoring.semantics.pricing import KINDS, PriceBook
from monitoring.store import schema
from monitoring.store.sql import Sql

# Bumped whenever the rules below decide some fact differently (every project is re-settled):
# 2 = a call without its own end user or session takes its run's.
# 3: an end a little before the start is timed, 0 ms (clock skew)
RULES_VERSION = 4  # 4: a run's first and last calls are chat calls; a call's second client span is matched too


@functools.cache
def _genai_prices_release() -> str:
    return version("genai-prices")


def rules_version() -> str:
    """What settled facts depend on besides a project's own settings: the installed genai-prices
    release (its price table) and the versions of our pricing and counting rules
    (pricing.RULES_VERSION, RULES_VERSION here), e.g. "0.2.3/p2/f2". Any change re-settles every
    project (monitoring/semantics/resettle.py)."""
    return f"{_genai_prices_release()}/p{pricing.RULES_VERSION}/f{RULES_VERSION}"


ANCESTORS = 16  # ParentSpanId levels climbed to find what wraps a call and a step's nearest step
# Timed: the span ended (semconv.has_end: a real duration, or an end a little before the start);
# DURATION is what latency counts (0 for clock skew and without an end).
HAS_END = f"(Duration < {semconv.NO_END_DURATION_NS} OR Duration >= {semconv.SKEWED_DURATION_MIN})"
DURATION = f"if(Duration < {semconv.NO_END_DURATION_NS}, Duration, 0)"
# Allowance for clocks of the agent's host and the gateway's host disagreeing (cross-trace match).
CLOCK_SKEW_NS = 1_000_000_000
MATCH_BUCKET_NS = 10_000_000_000  # the time buckets of the cross-trace candidate join
MATCH_HORIZON_NS = 3_600 * 1_000_000_000  # a client span is looked for up to an hour around


def key(trace_id: str, span_id: str) -> str:
    return f"{trace_id}/{span_id}"


@dataclass(frozen=True)
class Matches:
    """Cross-trace pairs (one to one): agents' client spans and the gateway call spans they made.

    `clients`: keys ("trace/span") of client spans that are not counted (their gateway span is);
    `gateways` -> `runs`, `services`: the gateway span's key, the trace of the agent run it belongs
    to and the service of its client span.
    """

    clients: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    services: tuple[str, ...] = ()  # the client span's service, which made the call

    def params(self) -> dict:
        return {
            "m_clients": list(self.clients),
            "m_gateways": list(self.gateways),
            "m_runs": list(self.runs),
            "m_services": list(self.services),
        }


@dataclass(frozen=True)
class Scope:
    """The traces whose facts are computed, and what the rules need to know about their project.

    `traces`: a subquery with one column of trace ids; `lo_ns`/`hi_ns`: every span of those traces
    starts inside [lo, hi] (partition pruning); `prices`: rates for every (model, provider) present.
    """

    project_id: str
    traces: Sql
    lo_ns: int
    hi_ns: int
    agent_names: tuple[str, ...] = DEFAULT_AGENT_SPAN_NAMES
    prices: PriceBook = field(default_factory=PriceBook)
    matches: Matches = field(default_factory=Matches)

    def params(self) -> dict:
        return {
            "project": self.project_id,
            "lo": self.lo_ns,
            "hi": self.hi_ns,
            "agent_names": list(self.agent_names),
            **self.prices.params(),
            **self.matches.params(),
        }


# --- the spans of a scope ------------------------------------------------------------------------

_SPAN_FIELDS = ", ".join(schema.SPAN_COLUMNS)


def spans(scope: Scope) -> Sql:
    """Each span of the scope's traces once, with `HasEnd`, `Dur` (0 without an end) and `IsStep`."""
    return Sql(
        f"SELECT {_SPAN_FIELDS}, {HAS_END} AS HasEnd, {DURATION} AS Dur,",
        " toUInt8(IsAgentStep OR SpanName IN {agent_names:Array(String)}) AS IsStep",
        f" FROM {schema.table(schema.SPANS)}",
        " WHERE ProjectId = {project:String}",
        " AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp <= fromUnixTimestamp64Nano({hi:Int64})",
        " AND TraceId IN (",
        scope.traces,
        ")",
        " LIMIT 1 BY TraceId, SpanId",
        **scope.params(),
    )


# --- the pipeline: small statements over temporary tables ------------------------------------------
# The settler and a page's live part both call `materialize`: the scope's spans go into a temporary
# table, their tree is walked in Python (`tree_flags`: linear in the spans; ClickHouse's lambdas
# copy a captured array per element, which made a 10,000-span trace cost 10,000^2), the flags go
# back into a temporary table, and the invocations, runs and edges are joins over those. The tables
# live in the caller's ClickHouse session (one per thread) until `drop`.


@dataclass(frozen=True)
class Tables:
    """Names of the temporary tables `materialize` made (a prefix per user: settle, live, trace)."""

    prefix: str

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return f"{self.prefix}{name}"

    def all(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}{n}" for n in _STAGES)


_STAGES = ("spans", "flags", "calls", "runs", "edges")
_TREE_FIELDS = (
    "TraceId, SpanId, ParentSpanId, IsLLMCall, IsGateway, IsEmbedding, IsStep, IsToolStep, SpanName, Model,"
    " ScopeName, ServiceName, InputTokens, OutputTokens, IsReplay, toUnixTimestamp64Nano(Timestamp) AS st,"
    " st + toInt64(Dur) AS en"
)
FLAG_TYPES = {
    "TraceId": "String",
    "SpanId": "String",
    "Wrapper": "UInt8",
    "OwnerService": "String",
    "Node": "String",
    "ParentNode": "String",
    "TraceReplay": "UInt8",
}


def tree_flags(rows: list[dict]) -> list[dict]:
    """The per-span decisions that need a trace's tree, for rows of one or more traces (keys as in
    `_TREE_FIELDS`). Returns {TraceId, SpanId, Wrapper, OwnerService, Node, ParentNode} per span.

    Wrapper: an LLM span that is not the invocation: an LLM span sits below it (ANCESTORS levels of
    ParentSpanId); or it is an agent's span holding a gateway call of its trace in its time range;
    or it is the inner copy of a call another instrumentation recorded around it (same tokens,
    inside its time, not its parent or child). OwnerService: the outermost LLM span above an
    invocation (or the agent span holding a gateway call), whose service made the call. Node and
    ParentNode: the Agent Flow Graph's labels ("agent:", "tool:", "llm:", "embed:") and the nearest
    node above (other spans are climbed over). TraceReplay: the trace is a Replay re-run (the
    gateway's own span of a re-run is an experiment too).
    """
    by_trace: dict[str, list[dict]] = {}
    for r in rows:
        by_trace.setdefault(r["TraceId"], []).append(r)
    out: list[dict] = []
    for trace, spans in by_trace.items():
        out += _trace_flags(trace, spans)
    return out


def _trace_flags(trace: str, spans: list[dict]) -> list[dict]:
    by_id = {s["SpanId"]: s for s in spans}
    llm = [s for s in spans if int(s["IsLLMCall"])]

    def ancestors(s: dict) -> list[dict]:
        found: list[dict] = []
        seen, parent = {s["SpanId"]}, by_id.get(s["ParentSpanId"])
        while parent is not None and len(found) < ANCESTORS and parent["SpanId"] not in seen:
            found.append(parent)
            seen.add(parent["SpanId"])
            parent = by_id.get(parent["ParentSpanId"])
        return found

    chains = {s["SpanId"]: ancestors(s) for s in spans}
    llm_above = {s["SpanId"]: [a for a in chains[s["SpanId"]] if int(a["IsLLMCall"])] for s in llm}
    wrappers = {a["SpanId"] for above in llm_above.values() for a in above}
    owners: dict[str, str] = {sid: above[-1]["ServiceName"] for sid, above in llm_above.items() if above}
    # An agent's LLM span holding a gateway call of its trace (the HTTP spans between may be missing).
    agents_llm = sorted((s for s in llm if not int(s["IsGateway"])), key=lambda s: int(s["st"]))
    for g in (s for s in llm if int(s["IsGateway"])):
        holders = [x for x in agents_llm if int(x["st"]) <= int(g["st"]) <= int(x["en"])]
        wrappers.update(x["SpanId"] for x in holders)
        if holders and g["SpanId"] not in owners:
            owners[g["SpanId"]] = holders[0]["ServiceName"]
    # The same call recorded by two instrumentations that are not parent and child.
    groups: dict[tuple[int, int], list[dict]] = {}
    for s in llm:
        if int(s["InputTokens"]) + int(s["OutputTokens"]) > 0:
            groups.setdefault((int(s["InputTokens"]), int(s["OutputTokens"])), []).append(s)
    for group in groups.values():
        if len({s["ScopeName"] for s in group}) < 2:
            continue
        for i in group:
            related = {a["SpanId"] for a in chains[i["SpanId"]]}
            for j in group:
                outer = int(j["st"]) < int(i["st"]) or (int(j["st"]) == int(i["st"]) and j["SpanId"] < i["SpanId"])
                if (
                    j is not i
                    and j["ScopeName"] != i["ScopeName"]
                    and outer
                    and int(i["en"]) <= int(j["en"])
                    and j["SpanId"] not in related
                    and i["SpanId"] not in {a["SpanId"] for a in chains[j["SpanId"]]}
                ):
                    wrappers.add(i["SpanId"])
    nodes = {}
    for s in spans:
        if int(s["IsLLMCall"]) and s["SpanId"] not in wrappers:
            nodes[s["SpanId"]] = ("embed:" if int(s["IsEmbedding"]) else "llm:") + (s["Model"] or s["SpanName"])
        elif int(s["IsStep"]):
            nodes[s["SpanId"]] = ("tool:" if int(s["IsToolStep"]) else "agent:") + s["SpanName"]
    replay = int(any(int(s["IsReplay"]) for s in spans))
    out = []
    for s in spans:
        sid = s["SpanId"]
        parent_node = next((nodes[a["SpanId"]] for a in chains[sid] if a["SpanId"] in nodes), "")
        out.append(
            {
                "TraceId": trace,
                "SpanId": sid,
                "Wrapper": int(sid in wrappers),
                "OwnerService": owners.get(sid, s["ServiceName"]),
                "Node": nodes.get(sid, ""),
                "ParentNode": parent_node,
                "TraceReplay": replay,
            }
        )
    return out


def materialize(scope: Scope, prefix: str) -> Tables:
    """Compute the scope's facts into temporary tables `<prefix>calls`, `runs`, `edges` (and the
    stages before them) in this thread's ClickHouse session. Replaces earlier tables of the prefix."""
    from monitoring.store import clickhouse  # the one way in; facts stays free of it otherwise

    t = Tables(prefix)
    drop(t)

    def create(name: str, statement: Sql) -> None:
        clickhouse.command(
            f"CREATE TEMPORARY TABLE {name} ENGINE = Memory AS {statement.text}", statement.params, tag=f"facts.{name}"
        )

    create(t.spans, spans(scope))
    tree = clickhouse.query(f"SELECT {_TREE_FIELDS} FROM {t.spans}", tag="facts.tree")
    columns = ", ".join(f"{k} {v}" for k, v in FLAG_TYPES.items())
    clickhouse.command(f"CREATE TEMPORARY TABLE {t.flags} ({columns}) ENGINE = Memory", tag="facts.flags")
    clickhouse.insert(t.flags, tuple(FLAG_TYPES), tree_flags(tree), tag="facts.flags")
    create(t.calls, Sql(invocations(t.spans, t.flags), **scope.params()))
    create(t.runs, Sql(runs(t.spans, t.calls), **scope.params()))
    create(t.edges, edges(t.spans, t.flags, t.runs))
    return t


def drop(t: Tables) -> None:
    from monitoring.store import clickhouse

    for name in t.all():
        clickhouse.command(f"DROP TEMPORARY TABLE IF EXISTS {name}", tag="facts.drop")


# --- model invocations ---------------------------------------------------------------------------


def _rate(kind: str) -> str:
    """The call's USD per token of `kind`: its (model, provider) entry, at the tier its input picks."""
    return f"if(p_i = 0, 0., {{p_{kind}:Array(Array(Float64))}}[p_i][arrayCount(t -> InputTokens > t, {{p_starts:Array(Array(UInt64))}}[p_i]) + 1])"


# USD of one call from its tokens: input includes cache reads/writes (priced at their own rates),
# output includes reasoning; audio tokens at audio rates.
CALL_COST = (
    f"greatest(toInt64(InputTokens) - CacheReadTokens - CacheWriteTokens - InputAudioTokens, 0) * {_rate('input')}"
    f" + CacheReadTokens * {_rate('cache_read')} + CacheWriteTokens * {_rate('cache_write')}"
    f" + InputAudioTokens * {_rate('input_audio')}"
    f" + greatest(toInt64(OutputTokens) - OutputAudioTokens, 0) * {_rate('output')}"
    f" + OutputAudioTokens * {_rate('output_audio')}"
)
CACHE_SAVINGS = f"CacheReadTokens * ({_rate('input')} - {_rate('cache_read')}) - CacheWriteTokens * ({_rate('cache_write')} - {_rate('input')})"
assert set(KINDS) == {"input", "cache_read", "cache_write", "input_audio", "output", "output_audio"}


def invocations(spans_source: str | Sql, flags_source: str | Sql) -> Sql:
    """One row per model invocation of the scope, with `schema.CALL_COLUMNS` (Cost and Priced filled).

    Reads the `spans` and `flags` stages; the scope's prices and matches are bound by the caller
    (`materialize`). A call whose own span names no end user or session takes its run's (SDKs such
    as Langfuse's and LiteLLM's metadata put them on the trace's root span only), so per-user and
    per-session numbers hold every call of their runs.
    """
    spans_src = Sql("(", spans_source, ")") if isinstance(spans_source, Sql) else spans_source
    flags_src = Sql("(", flags_source, ")") if isinstance(flags_source, Sql) else flags_source
    own = [f"c.{name}" for name in schema.CALL_COLUMNS if name not in ("EndUser", "SessionId")]
    return Sql(
        f"SELECT {', '.join(own)}, if(c.EndUser != '', c.EndUser, r.user) AS EndUser,",
        " if(c.SessionId != '', c.SessionId, r.session) AS SessionId FROM (",
        _own_invocations(spans_src, flags_src),
        ") AS c LEFT JOIN (SELECT TraceId AS trace, anyIf(EndUser, EndUser != '') AS user,",
        " anyIf(SessionId, SessionId != '') AS session FROM ",
        spans_src,
        " GROUP BY TraceId) AS r ON r.trace = c.RunTraceId",
    )


def _own_invocations(spans_src: str | Sql, flags_src: str | Sql) -> Sql:
    return Sql(
        "SELECT ProjectId, Timestamp, TraceId, SpanId,",
        " if(g_i = 0, TraceId, {m_runs:Array(String)}[g_i]) AS RunTraceId,",
        " SpanName, if(g_i = 0, OwnerService, {m_services:Array(String)}[g_i]) AS ServiceName, Model, Provider,",
        " IsError, IsEmbedding, IsGateway, greatest(IsReplay, TraceReplay) AS IsReplay, HasEnd, Dur AS Duration,",
        " InputTokens, OutputTokens, CacheReadTokens, CacheWriteTokens, ReasoningTokens, InputAudioTokens,",
        " OutputAudioTokens, ReportedCost,",
        f" if(ReportedCost > 0, ReportedCost, {CALL_COST}) AS Cost,",
        " toUInt8(ReportedCost > 0 OR p_i > 0 OR InputTokens + OutputTokens = 0) AS Priced,",
        f" if(p_i = 0, 0., {CACHE_SAVINGS}) AS CacheSavings,",
        " EndUser, SessionId",
        " FROM (SELECT s.*, f.OwnerService AS OwnerService, f.TraceReplay AS TraceReplay,",
        " concat(s.TraceId, '/', s.SpanId) AS k,",
        " indexOf({p_keys:Array(String)}, concat(s.Model, '\\t', s.Provider)) AS p_i,",
        " indexOf({m_gateways:Array(String)}, k) AS g_i",
        " FROM ",
        spans_src,
        " AS s INNER JOIN ",
        flags_src,
        " AS f ON s.TraceId = f.TraceId AND s.SpanId = f.SpanId",
        " WHERE s.IsLLMCall = 1 AND f.Wrapper = 0 AND NOT has({m_clients:Array(String)}, k))",
    )


# --- agent runs ----------------------------------------------------------------------------------


def runs(spans_source: str | Sql, calls_source: str | Sql) -> Sql:
    """One row per agent run of the scope, with `schema.RUN_COLUMNS` (its scores: the
    schema.RUN_SCORE_COLUMNS rule). The statement binds `{project:String}`.

    `calls_source`: the scope's invocations (a run's calls are those whose RunTraceId is its trace,
    which includes gateway calls of another trace matched to its client spans).
    """
    spans_src = Sql("(", spans_source, ")") if isinstance(spans_source, Sql) else spans_source
    calls_src = Sql("(", calls_source, ")") if isinstance(calls_source, Sql) else calls_source
    return Sql(
        "SELECT t.project AS ProjectId, t.start AS Start, t.trace AS TraceId, t.end AS End, t.has_end AS HasEnd,",
        " t.name AS Name, t.service AS ServiceName, t.services AS Services, t.models AS Models,",
        " t.failed AS IsError, t.replay AS IsReplay, t.spans AS Spans, t.error_spans AS ErrorSpans,",
        " t.steps AS AgentSteps, toUInt32(c.n) AS LLMCalls, toUInt64(c.input) AS InputTokens,",
        " toUInt64(c.output) AS OutputTokens, c.cost AS Cost, toUInt32(c.unpriced) AS Unpriced,",
        " if(t.user != '', t.user, c.user) AS EndUser, if(t.session != '', t.session, c.session) AS SessionId,",
        " c.first AS FirstCall, c.last AS LastCall, sc.names AS ScoreNames, sc.values AS ScoreValues,",
        " sc.labels AS ScoreLabels, sc.counts AS ScoreCounts",
        " FROM (SELECT any(ProjectId) AS project, TraceId AS trace, min(Timestamp) AS start,",
        " max(Timestamp + toIntervalNanosecond(Dur)) AS end, toUInt8(min(HasEnd)) AS has_end,",
        # The run's name and service: its root span's (no parent), else its first agent step's.
        " coalesce(nullIf(argMinIf(SpanName, Timestamp, ParentSpanId = ''), ''), argMinIf(SpanName, Timestamp, IsStep = 1)) AS name,",
        " coalesce(nullIf(argMinIf(ServiceName, Timestamp, ParentSpanId = ''), ''),",
        " argMinIf(ServiceName, Timestamp, IsStep = 1)) AS service,",
        " arraySort(groupUniqArray(ServiceName)) AS services, arraySort(groupUniqArrayIf(Model, Model != '')) AS models,",
        " toUInt8(countIf(IsStep = 1 AND IsError = 1) > 0) AS failed, toUInt8(max(IsReplay)) AS replay,",
        " toUInt32(count()) AS spans, toUInt32(countIf(IsError = 1)) AS error_spans, toUInt32(countIf(IsStep = 1)) AS steps,",
        " anyIf(EndUser, EndUser != '') AS user, anyIf(SessionId, SessionId != '') AS session",
        " FROM ",
        spans_src,
        " GROUP BY TraceId HAVING steps > 0) AS t",
        " LEFT JOIN (SELECT RunTraceId AS run, count() AS n, sum(InputTokens) AS input, sum(OutputTokens) AS output,",
        " sum(Cost) AS cost, countIf(Priced = 0) AS unpriced, anyIf(EndUser, EndUser != '') AS user,",
        " anyIf(SessionId, SessionId != '') AS session,",
        # The run's first and last *chat* calls (an embedding's request is no one's question).
        " argMinIf(concat(TraceId, '/', SpanId), Timestamp, IsEmbedding = 0) AS first,",
        " argMaxIf(concat(TraceId, '/', SpanId), Timestamp, IsEmbedding = 0) AS last",
        " FROM ",
        calls_src,
        " GROUP BY RunTraceId) AS c ON c.run = t.trace",
        # GLOBAL: on a cluster the scores are sharded by ScoreId and the scope's spans are in this session.
        " LEFT JOIN (",
        schema.run_scores_select(
            "ProjectId = {project:String} AND TraceId GLOBAL IN (SELECT TraceId FROM ", spans_src, ")"
        ),
        ") AS sc ON sc.trace = t.trace",
    )


# --- the Agent Flow Graph's edges ------------------------------------------------------------------


def edges(spans_source: str | Sql, flags_source: str | Sql, runs_source: str | Sql) -> Sql:
    """Per run: how often a node led directly to another (`schema.EDGE_COLUMNS`).

    Nodes are agent steps, tools and non-wrapping LLM spans; a node's parent is the nearest node
    above it (HTTP and proxy spans in between are climbed over); '' for a run's entry nodes.
    """
    spans_src = Sql("(", spans_source, ")") if isinstance(spans_source, Sql) else spans_source
    flags_src = Sql("(", flags_source, ")") if isinstance(flags_source, Sql) else flags_source
    runs_src = Sql("(", runs_source, ")") if isinstance(runs_source, Sql) else runs_source
    return Sql(
        "SELECT r.ProjectId AS ProjectId, r.Start AS Start, r.TraceId AS TraceId, f.ParentNode AS Parent, f.Node AS Child,",
        " toUInt32(count()) AS Calls, toUInt32(sum(s.IsError)) AS Errors, toUInt64(sum(s.Dur)) AS Duration,",
        " any(r.IsError) AS RunFailed, any(r.IsReplay) AS IsReplay, any(r.Services) AS Services, any(r.Models) AS Models",
        " FROM ",
        flags_src,
        " AS f INNER JOIN ",
        spans_src,
        " AS s ON s.TraceId = f.TraceId AND s.SpanId = f.SpanId",
        " INNER JOIN ",
        runs_src,
        " AS r ON r.TraceId = f.TraceId",
        " WHERE f.Node != ''",
        " GROUP BY r.ProjectId, r.Start, r.TraceId, f.ParentNode, f.Node",
    )


# --- cross-trace matches ---------------------------------------------------------------------------


def match_candidates(project_id: str, lo_ns: int, hi_ns: int) -> Sql:
    """Possible (client span, gateway call span) pairs in different traces, with a distance.

    Clients: LLM spans of traces without a gateway call; gateways: gateway call spans of traces
    without a client's LLM span. Distance 0 for the same response id, else |start difference| when
    the gateway call ran inside the client span (give or take the clock skew) for the same alias and,
    when both sides report tokens, with the same tokens (a direct call to the provider that merely
    overlaps a gateway call of the same model is not taken for it).
    """
    window = (
        f" FROM {schema.table(schema.SPANS)} WHERE ProjectId = {{project:String}} AND IsLLMCall = 1"
        " AND Timestamp >= fromUnixTimestamp64Nano({mlo:Int64}) AND Timestamp <= fromUnixTimestamp64Nano({mhi:Int64})"
    )
    return Sql(
        "WITH cand AS (SELECT TraceId, SpanId, IsGateway, RequestModel, ResponseId, ServiceName, InputTokens, OutputTokens,",
        " toUnixTimestamp64Nano(Timestamp) AS st,",
        f" st + toInt64({DURATION}) AS en",
        window,
        " LIMIT 1 BY TraceId, SpanId),",
        " mixed AS (SELECT TraceId FROM cand GROUP BY TraceId HAVING max(IsGateway) = 1 AND min(IsGateway) = 0),",
        " clients AS (SELECT * FROM cand WHERE IsGateway = 0 AND TraceId NOT IN mixed),",
        " gateways AS (SELECT * FROM cand WHERE IsGateway = 1 AND TraceId NOT IN mixed)",
        " SELECT c.TraceId AS ct, c.SpanId AS cs, g.TraceId AS gt, g.SpanId AS gs, toInt64(0) AS d, c.ServiceName AS svc,",
        " c.st AS cst, c.en AS cen",
        " FROM clients AS c INNER JOIN gateways AS g ON c.ResponseId = g.ResponseId",
        " WHERE c.ResponseId != '' AND c.TraceId != g.TraceId",
        " UNION ALL",
        # abs() of an Int64 is a UInt64: the union with toInt64(0) above would be Variant(Int64, UInt64),
        # which clickhouse-driver cannot read (server mode failed every pass; tests/test_cluster.py).
        " SELECT c.TraceId AS ct, c.SpanId AS cs, g.TraceId AS gt, g.SpanId AS gs, toInt64(abs(g.st - c.st) + 1) AS d,",
        " c.ServiceName AS svc, c.st AS cst, c.en AS cen",
        " FROM (SELECT *, arrayJoin(range(intDiv(st - {skew:Int64}, {bucket:Int64}),",
        " intDiv(en + {skew:Int64}, {bucket:Int64}) + 1)) AS b FROM clients WHERE RequestModel != '') AS c",
        " INNER JOIN (SELECT *, intDiv(st, {bucket:Int64}) AS b FROM gateways) AS g",
        " ON c.RequestModel = g.RequestModel AND c.b = g.b",
        " WHERE c.TraceId != g.TraceId AND g.st >= c.st - {skew:Int64} AND g.en <= c.en + {skew:Int64}",
        " AND (c.ResponseId = '' OR g.ResponseId = '' OR c.ResponseId = g.ResponseId)",
        # Both sides saw the same answer: when both report usage it is the same usage.
        " AND (c.InputTokens + c.OutputTokens = 0 OR g.InputTokens + g.OutputTokens = 0",
        " OR (c.InputTokens = g.InputTokens AND c.OutputTokens = g.OutputTokens))",
        project=project_id,
        mlo=max(lo_ns - MATCH_HORIZON_NS, 0),
        mhi=hi_ns + MATCH_HORIZON_NS,
        skew=CLOCK_SKEW_NS,
        bucket=MATCH_BUCKET_NS,
    )


def assign(pairs: list[dict]) -> Matches:
    """One to one, closest first: a response-id match before any time match, then the nearest
    start. `pairs`: rows of `match_candidates`.

    One call may have two client spans (LangChain's and the OpenAI SDK's instrumentations record it
    twice, not as parent and child; `tree_flags` counts the outer one): a client span left without a
    gateway span, whose candidate went to a span of its own trace that nests with it (one's time
    inside the other's), is that same call, so it is not counted either. Otherwise the gateway could
    take the uncounted copy and the call would count twice (its gateway span and the outer copy)."""
    used_clients: set[str] = set()
    used_gateways: dict[str, dict] = {}
    clients, gateways, runs_, services = [], [], [], []
    ordered = sorted(pairs, key=lambda p: (int(p["d"]), p["ct"], p["cs"], p["gt"], p["gs"]))
    for p in ordered:
        c, g = key(p["ct"], p["cs"]), key(p["gt"], p["gs"])
        if c in used_clients or g in used_gateways:
            continue
        used_clients.add(c)
        used_gateways[g] = p
        clients.append(c)
        gateways.append(g)
        runs_.append(p["ct"])
        services.append(p["svc"])

    def nested(a: dict, b: dict) -> bool:
        inside = int(a["cst"]) >= int(b["cst"]) and int(a["cen"]) <= int(b["cen"])
        return inside or (int(b["cst"]) >= int(a["cst"]) and int(b["cen"]) <= int(a["cen"]))

    copies = []
    for p in ordered:
        c, taken = key(p["ct"], p["cs"]), used_gateways.get(key(p["gt"], p["gs"]))
        if c not in used_clients and taken is not None and taken["ct"] == p["ct"] and nested(p, taken):
            used_clients.add(c)
            copies.append(c)
    return Matches(tuple(clients + copies), tuple(gateways), tuple(runs_), tuple(services))
