"""The Overview's numbers: Total Cost, LLM Calls, Agent Calls, Avg Latency, Fail Rate, the token
breakdown, latency percentiles, and the leaders (models by cost, services by failures).

Counting rules are those of monitoring/queries/facts.py: one model invocation counts once, a run is
a trace with an agent step, a failed run is one whose agent step failed. Fail Rate = (failed calls
+ failed runs) / (calls + runs). Latency statistics cover calls with an end time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from monitoring.queries import latency as latency_q
from monitoring.queries import sources
from monitoring.queries.filter import SpanFilter
from monitoring.queries.sql import Sql, run

# Changes against the previous window are shown only when it had at least this many calls+runs.
MIN_PREVIOUS_SAMPLE = 20


@dataclass
class Leader:
    """One row of a leader board: `calls` counts LLM calls and agent runs, `errors` the failed ones."""

    name: str
    calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Overview:
    """The five numbers and what they are made of. Money in USD, durations in ms, rates 0..1."""

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
    input_tokens: int = 0  # including cache reads and writes
    output_tokens: int = 0  # including reasoning
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_savings_usd: float = 0.0  # what cache reads saved against the full input price
    unpriced_calls: int = 0  # calls with tokens but no reported cost and no known price
    unpriced_models: list[str] = field(default_factory=list)
    calls_without_end: int = 0  # exported before they ended: counted, not in latency

    @property
    def sample(self) -> int:
        return self.llm_calls + self.agent_calls

    def as_dict(self) -> dict:
        data = asdict(self)
        data["models"] = [asdict(m) for m in self.models]
        return data


_CALL_TOTALS = (
    "Calls",
    "Timed",
    "DurationSum",
    "InputTokens",
    "OutputTokens",
    "CacheReadTokens",
    "CacheWriteTokens",
    "ReasoningTokens",
    "ReportedCost",
    "Cost",
    "Unpriced",
    "CacheSavings",
    "LatencyHist",
    "LatencySums",
)


def _calls_by_model(flt: SpanFilter) -> list[dict]:
    source = sources.calls(flt, _CALL_TOTALS)
    rows = run(
        Sql(
            "SELECT Model AS model, GROUPING(Model) AS is_total, sumIf(Calls, IsError = 1) AS t_Errors,",
            f" {sources.totals(_CALL_TOTALS)}",
            " FROM (",
            source,
            ") GROUP BY GROUPING SETS ((Model), ()) SETTINGS group_by_use_nulls = 0",
        ),
        tag="overview.calls",
    )
    return [
        {"model": r["model"], "is_total": r["is_total"]} | {k[2:]: v for k, v in r.items() if k.startswith("t_")}
        for r in rows
    ]


def _runs(flt: SpanFilter) -> dict:
    rows = run(
        Sql("SELECT sum(Runs) AS runs, sum(Failed) AS failed FROM (", sources.runs(flt, ("Runs", "Failed")), ")"),
        tag="overview.runs",
    )
    return rows[0] if rows else {}


def _round(value, digits: int = 10) -> float:
    return round(float(value or 0), digits)


def overview(flt: SpanFilter) -> Overview:
    rows = _calls_by_model(flt)
    runs = _runs(flt)
    total = next((r for r in rows if int(r["is_total"])), {})
    models, unpriced = [], []
    for row in rows:
        if int(row["is_total"]) or not int(row["Calls"]):
            continue
        if row["model"]:
            models.append(Leader(row["model"], int(row["Calls"]), int(row["Errors"]), _round(row["Cost"])))
        if int(row["Unpriced"]):
            unpriced.append(row["model"] or "(no model)")
    models.sort(key=lambda m: (-m.cost_usd, -m.calls, m.name))
    calls = int(total.get("Calls") or 0)
    errors = int(total.get("Errors") or 0)
    agent_calls = int(runs.get("runs") or 0)
    agent_errors = int(runs.get("failed") or 0)
    timed = int(total.get("Timed") or 0)
    p50, p95, p99 = latency_q.percentiles(total.get("LatencyHist"), total.get("LatencySums"), (0.5, 0.95, 0.99))
    attempts = calls + agent_calls
    cost = _round(total.get("Cost"))
    reported = _round(total.get("ReportedCost"))
    return Overview(
        total_cost_usd=cost,
        llm_calls=calls,
        agent_calls=agent_calls,
        avg_latency_ms=round(int(total.get("DurationSum") or 0) / timed / 1e6, 3) if timed else 0.0,
        fail_rate=round((errors + agent_errors) / attempts, 6) if attempts else 0.0,
        llm_errors=errors,
        agent_errors=agent_errors,
        reported_cost_usd=reported,
        priced_cost_usd=_round(cost - reported),
        p50_latency_ms=p50,
        p95_latency_ms=p95,
        p99_latency_ms=p99,
        models=models,
        input_tokens=int(total.get("InputTokens") or 0),
        output_tokens=int(total.get("OutputTokens") or 0),
        cache_read_tokens=int(total.get("CacheReadTokens") or 0),
        cache_write_tokens=int(total.get("CacheWriteTokens") or 0),
        reasoning_tokens=int(total.get("ReasoningTokens") or 0),
        cache_savings_usd=_round(total.get("CacheSavings")),
        unpriced_calls=int(total.get("Unpriced") or 0),
        unpriced_models=sorted(unpriced),
        calls_without_end=calls - timed,
    )


def change(current: float, previous: float, previous_sample: int | None = None) -> float | None:
    """Relative change against the previous window; None when there is nothing to compare with
    (no value before, or fewer than MIN_PREVIOUS_SAMPLE calls and runs when `previous_sample` is given)."""
    if not previous:
        return None
    if previous_sample is not None and previous_sample < MIN_PREVIOUS_SAMPLE:
        return None
    return (current - previous) / previous


# --- leader boards --------------------------------------------------------------------------------


def top_services_by_errors(flt: SpanFilter, limit: int = 5) -> list[Leader]:
    """Services by failed LLM calls plus failed agent runs (a run belongs to its root's service)."""
    calls = sources.calls(flt, ("Calls",))
    runs = sources.runs(flt, ("Runs", "Failed"))
    rows = run(
        Sql(
            "SELECT service, sum(n) AS attempts, sum(failed) AS errors FROM (",
            "SELECT ServiceName AS service, Calls AS n, Calls * IsError AS failed FROM (",
            calls,
            ") UNION ALL SELECT ServiceName AS service, Runs AS n, Failed AS failed FROM (",
            runs,
            ")) GROUP BY service HAVING errors > 0 ORDER BY errors DESC, service LIMIT {limit:UInt32}",
            limit=limit,
        ),
        tag="overview.top_services",
    )
    return [Leader(r["service"] or "(no service)", int(r["attempts"]), int(r["errors"])) for r in rows]
