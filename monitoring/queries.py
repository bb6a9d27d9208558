"""One function per dashboard question, its SQL beside it. Every query is scoped by project and
binds every value; identifiers come from the schema module only.

SQL templates use tokens filled by `sql()`: `$table` (otel_traces), `$calls` (otel_llm_calls),
`$where` (the filter bar: project, window, services, models, status), `$scope` (project and window
only) and `$agents` (agent steps under the filter bar). Values are always `{name:Type}`
placeholders bound from `SpanFilter.params()`.

Counting rules (the Overview's five numbers):
- LLM calls: spans with IsLLMCall, one per model invocation in any dialect (schema.py); an agent's
  LLM span that went through the LiteLLM proxy is the same invocation as the proxy's and not counted.
- Agent calls: agent runs, i.e. traces that contain an agent step (a dialect's agent marker, a root
  span of an `agent-*` service, or a span named like the project's agent steps); with a service or
  model filter, the runs that have a matching span.
- Cost: each LLM call's reported cost, else its tokens priced by the project's or the public table.
- Avg latency: mean duration of LLM calls, in ms (and p50/p95/p99).
- Fail rate: failed LLM calls plus failed agent runs, over LLM calls plus agent runs (0..1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

from monitoring import clickhouse, pricing, schema
from monitoring.forms import SpanFilter

_SCOPE = (
    "ProjectId = {project:String}"
    " AND Timestamp >= fromUnixTimestamp64Nano({start:Int64})"
    " AND Timestamp < fromUnixTimestamp64Nano({end:Int64})"
)
AGENT = "(IsAgentStep OR SpanName IN {agent_names:Array(String)})"

# An agent's own LLM span that called through the LiteLLM proxy wraps the proxy's call span in the
# same trace: one model invocation, two LLM spans. The gateway's span is kept (it has the cost and
# the alias users know); the caller's span, whose time range holds a gateway call, is not counted.
# Both sides come from the narrow `otel_llm_calls` table (schema.py), ordered by project and time,
# and both are under the filter bar: when a filter keeps only the caller (its service, its model),
# the caller is the call that is counted.
# The keys are 64-bit hashes of (trace) and (trace, span), materialized in that table.
PROXIED_CALLERS = """(
    SELECT caller.CallKey
    FROM (SELECT TraceKey, CallKey, Timestamp AS s, Timestamp + toIntervalNanosecond(Duration) AS e
          FROM $calls WHERE $where AND NOT Gateway) AS caller
    INNER JOIN (SELECT TraceKey, Timestamp AS ts FROM $calls WHERE $where AND Gateway) AS gateway
    ON caller.TraceKey = gateway.TraceKey
    WHERE gateway.ts >= caller.s AND gateway.ts <= caller.e
)"""
# Over otel_traces: a span that is one model invocation.
CALL = f"(IsLLMCall AND cityHash64(TraceId, SpanId) NOT IN {PROXIED_CALLERS})"
# Over otel_llm_calls (`FROM $calls WHERE $where AND ...`): the same, cheaper.
CALL_ROW = f"CallKey NOT IN {PROXIED_CALLERS}"


def agent_where(flt: SpanFilter) -> str:
    """Agent steps under the filter bar. A service or model filter picks whole runs, those with a
    matching span: agent spans carry no model, and a run's calls may be another service's."""
    if not (flt.services or flt.models):
        return f"{flt.sql()} AND {AGENT}"
    runs = dataclasses.replace(flt, status="").sql()
    steps = dataclasses.replace(flt, services=(), models=()).sql()
    return f"{steps} AND {AGENT} AND TraceId IN (SELECT TraceId FROM $table WHERE {runs})"


def sql(template: str, flt: SpanFilter) -> str:
    """Fill the tokens. (`str.format` would trip over the `{name:Type}` placeholders.)"""
    return (
        template.replace("$agents", agent_where(flt))
        .replace("$where", flt.sql())
        .replace("$scope", _SCOPE)
        .replace("$table", schema.table())
        .replace("$calls", schema.table(schema.LLM_CALLS))
    )


def params(flt: SpanFilter, **extra) -> dict:
    return {**flt.params(), **extra}


def run(template: str, flt: SpanFilter, *, tag: str, **extra) -> list[dict]:
    return clickhouse.query(sql(template, flt), params(flt, **extra), tag=tag)


@dataclass
class Leader:
    name: str
    calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Overview:
    total_cost_usd: float
    llm_calls: int
    agent_calls: int
    avg_latency_ms: float
    fail_rate: float
    llm_errors: int
    agent_errors: int
    reported_cost_usd: float
    priced_cost_usd: float
    p50_latency_ms: float = 0.0
    p95_latency_ms: float = 0.0
    p99_latency_ms: float = 0.0
    models: list[Leader] = field(default_factory=list)  # per model, by cost

    def as_dict(self) -> dict:
        data = asdict(self)
        data["models"] = [asdict(m) for m in self.models]
        return data


# LLM calls per model plus a total row (GROUPING SETS), in one pass over otel_llm_calls.
OVERVIEW_CALLS_SQL = f"""
SELECT Model AS model, GROUPING(Model) AS is_total, count() AS calls, countIf(IsError) AS errors,
       sum(ReportedCost) AS reported, sumIf(InputTokens, ReportedCost = 0) AS input_tokens,
       sumIf(OutputTokens, ReportedCost = 0) AS output_tokens, avg(Duration) AS avg_ns,
       quantiles(0.5, 0.95, 0.99)(Duration) AS quantiles
FROM $calls
WHERE $where AND {CALL_ROW}
GROUP BY GROUPING SETS ((Model), ())
"""

OVERVIEW_AGENTS_SQL = """
SELECT uniqExact(TraceId) AS agent_calls, uniqExactIf(TraceId, IsError) AS agent_errors
FROM $table
WHERE $agents
"""


def _ms(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return round(number / 1e6, 3) if number == number else 0.0  # NaN when there is no call


def overview(flt: SpanFilter) -> Overview:
    rows = run(OVERVIEW_CALLS_SQL, flt, tag="overview.calls")
    agents = clickhouse.query_one(sql(OVERVIEW_AGENTS_SQL, flt), params(flt), tag="overview.agents")
    total = next((r for r in rows if r["is_total"]), {})
    overrides = pricing.project_prices(flt.project_id)
    models = []
    for row in rows:
        if row["is_total"] or not row["model"]:
            continue
        cost = float(row["reported"]) + pricing.cost_of_tokens([row], overrides)
        models.append(Leader(row["model"], int(row["calls"]), int(row["errors"]), round(cost, 10)))
    models.sort(key=lambda m: (-m.cost_usd, -m.calls, m.name))
    reported = float(total.get("reported") or 0.0)
    cost_from_tokens = pricing.cost_of_tokens([r for r in rows if not r["is_total"]], overrides)
    llm_calls = int(total.get("calls") or 0)
    llm_errors = int(total.get("errors") or 0)
    agent_calls = int(agents.get("agent_calls") or 0)
    agent_errors = int(agents.get("agent_errors") or 0)
    attempts = llm_calls + agent_calls
    quantiles = list(total.get("quantiles") or []) + [0, 0, 0]
    return Overview(
        total_cost_usd=round(reported + cost_from_tokens, 10),
        llm_calls=llm_calls,
        agent_calls=agent_calls,
        avg_latency_ms=_ms(total.get("avg_ns")) if llm_calls else 0.0,
        fail_rate=round((llm_errors + agent_errors) / attempts, 6) if attempts else 0.0,
        llm_errors=llm_errors,
        agent_errors=agent_errors,
        reported_cost_usd=round(reported, 10),
        priced_cost_usd=round(cost_from_tokens, 10),
        p50_latency_ms=_ms(quantiles[0]) if llm_calls else 0.0,
        p95_latency_ms=_ms(quantiles[1]) if llm_calls else 0.0,
        p99_latency_ms=_ms(quantiles[2]) if llm_calls else 0.0,
        models=models,
    )


def change(current: float, previous: float) -> float | None:
    """Relative change against the previous window, None when there is nothing to compare with."""
    if not previous:
        return None
    return (current - previous) / previous


# --- Overview's leader boards -------------------------------------------------------------------

SERVICE_ERRORS_SQL = """
SELECT ServiceName AS service, count() AS spans, countIf(IsError) AS errors
FROM $table
WHERE $where
GROUP BY ServiceName
HAVING errors > 0
ORDER BY errors DESC, service
LIMIT {limit:UInt32}
"""


def top_services_by_errors(flt: SpanFilter, limit: int = 5) -> list[Leader]:
    rows = run(SERVICE_ERRORS_SQL, flt, tag="overview.top_services", limit=limit)
    return [Leader(r["service"] or "(no service)", int(r["spans"]), int(r["errors"])) for r in rows]


# --- the filter bar's choices -------------------------------------------------------------------

FACETS_SQL = """
SELECT groupUniqArray(200)(ServiceName) AS services, groupUniqArrayIf(200)(Model, Model != '') AS models
FROM $table
WHERE $scope
"""


def facets(flt: SpanFilter) -> dict[str, list[str]]:
    """Services and models seen in the window (not narrowed by the other filters, so they can be widened)."""
    row = clickhouse.query_one(sql(FACETS_SQL, flt), params(flt), tag="filters.facets")
    return {"services": sorted(row.get("services") or []), "models": sorted(row.get("models") or [])}
