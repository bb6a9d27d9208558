"""One function per dashboard question, its SQL beside it. Every query is scoped by project and
binds every value; identifiers come from the schema module only.

Counting rules (the Overview's five numbers):
- LLM calls: spans with IsLLMCall, one per model invocation in any dialect (schema.py); an agent's
  LLM span that went through the LiteLLM proxy is the same invocation as the proxy's and not counted.
- Agent calls: agent runs, i.e. traces that contain an agent step (a dialect's agent marker, a root
  span of an `agent-*` service, or a span named like the project's agent steps).
- Cost: each LLM call's reported cost, else its tokens priced by the project's or the public table.
- Avg latency: mean duration of LLM calls, in ms.
- Fail rate: failed LLM calls plus failed agent runs, over LLM calls plus agent runs (0..1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from monitoring import clickhouse, pricing, schema, semconv
from monitoring.forms import Window

# The WHERE every span query starts from: one project, one window (partition-pruned by day).
_SCOPE = (
    "ProjectId = {project:String}"
    " AND Timestamp >= fromUnixTimestamp64Nano({start:Int64})"
    " AND Timestamp < fromUnixTimestamp64Nano({end:Int64})"
)
_AGENT = "(IsAgentStep OR SpanName IN {agent_names:Array(String)})"

# An agent's own LLM span that called through the LiteLLM proxy wraps the proxy's call span in the
# same trace: one model invocation, two LLM spans. The gateway's span is kept (it has the cost and
# the alias users know); the caller's span, whose time range holds a gateway call, is not counted.
_PROXIED_CALLERS = f"""(
    SELECT caller.TraceId, caller.SpanId
    FROM (SELECT TraceId, SpanId, Timestamp AS s, Timestamp + toIntervalNanosecond(Duration) AS e
          FROM {{table}} WHERE {_SCOPE} AND IsLLMCall AND ScopeName != '{semconv.LITELLM_SCOPE}') AS caller
    INNER JOIN (SELECT TraceId, Timestamp AS ts
                FROM {{table}} WHERE {_SCOPE} AND IsLLMCall AND ScopeName = '{semconv.LITELLM_SCOPE}') AS gateway
    ON caller.TraceId = gateway.TraceId
    WHERE gateway.ts >= caller.s AND gateway.ts <= caller.e
)"""
# One row per model invocation.
_CALL = f"(IsLLMCall AND (TraceId, SpanId) NOT IN {_PROXIED_CALLERS})"


def _sql(template: str) -> str:
    """Put the table in; `str.format` would trip over the `{name:Type}` placeholders."""
    return template.replace("{table}", schema.table())


def _params(project_id, window: Window, **extra) -> dict:
    return {"project": str(project_id), **window.nanos(), "agent_names": list(semconv.DEFAULT_AGENT_SPAN_NAMES), **extra}


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

    def as_dict(self) -> dict:
        return asdict(self)


OVERVIEW_TOTALS_SQL = f"""
SELECT
    countIf({_CALL}) AS llm_calls,
    countIf({_CALL} AND IsError) AS llm_errors,
    sumIf(ReportedCost, {_CALL}) AS reported_cost,
    ifNotFinite(avgIf(Duration, {_CALL}) / 1e6, 0) AS avg_latency_ms,
    uniqExactIf(TraceId, {_AGENT}) AS agent_calls,
    uniqExactIf(TraceId, {_AGENT} AND IsError) AS agent_errors
FROM {{table}}
WHERE {_SCOPE}
"""

# Tokens of LLM calls that reported no cost, per model, to be priced in Python.
UNPRICED_TOKENS_SQL = f"""
SELECT Model AS model, sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens
FROM {{table}}
WHERE {_SCOPE} AND {_CALL} AND ReportedCost = 0 AND (InputTokens > 0 OR OutputTokens > 0)
GROUP BY Model
"""


def overview(project_id, window: Window) -> Overview:
    params = _params(project_id, window)
    totals = clickhouse.query_one(_sql(OVERVIEW_TOTALS_SQL), params, tag="overview.totals")
    unpriced = clickhouse.query(_sql(UNPRICED_TOKENS_SQL), params, tag="overview.unpriced")
    priced = pricing.cost_of_tokens(unpriced, pricing.project_prices(project_id))
    llm_calls = int(totals.get("llm_calls") or 0)
    agent_calls = int(totals.get("agent_calls") or 0)
    llm_errors = int(totals.get("llm_errors") or 0)
    agent_errors = int(totals.get("agent_errors") or 0)
    attempts = llm_calls + agent_calls
    reported = float(totals.get("reported_cost") or 0.0)
    return Overview(
        total_cost_usd=round(reported + priced, 10),
        llm_calls=llm_calls,
        agent_calls=agent_calls,
        avg_latency_ms=round(float(totals.get("avg_latency_ms") or 0.0), 3),
        fail_rate=round((llm_errors + agent_errors) / attempts, 6) if attempts else 0.0,
        llm_errors=llm_errors,
        agent_errors=agent_errors,
        reported_cost_usd=round(reported, 10),
        priced_cost_usd=round(priced, 10),
    )


def change(current: float, previous: float) -> float | None:
    """Relative change against the previous window, None when there is nothing to compare with."""
    if not previous:
        return None
    return (current - previous) / previous
