"""The monitors' only questions to ClickHouse: a metric's value and sample size in a window.

Interface (what the evaluation needs, and all the query layer must answer):
    Question(flt: SpanFilter, group_by: "" | "user" | "model" | "service")
    measure(question) -> {group: Values}            ('' is the group of an ungrouped question)
    measure_many(questions) -> {question: {group: Values} | ClickHouseError}

One question is one SQL statement (UNION ALL of an LLM-call part and an agent-run part), whatever
number of monitors and metrics share it: monitors with the same (project, window, filter, group-by)
are answered together. Counting rules are the dashboard's (monitoring/queries.py docstring):
- LLM calls, errors, tokens, cost and latency read `otel_llm_calls` under `queries.CALL_ROW` (one
  row per model invocation, the proxied caller's span not counted), priced like the Overview: the
  reported cost, else the tokens at the project's or the public price, per model.
- Agent runs are traces with an agent step under the filter (`queries.agent_where`); a run failed
  when one of its agent steps did. Per group, a run belongs to every group that one of its spans in
  the window names (its end user, the model of one of its calls, its services).
- Fail rate is (failed LLM calls + failed runs) / (LLM calls + runs), as a percentage here (0..100).
- Latency quantiles are ClickHouse's `quantiles(0.5, 0.95, 0.99)` of LLM-call durations, in ms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitoring import clickhouse, pricing, queries, schema
from monitoring.forms import SpanFilter

# Group-by identifiers come from this whitelist only: (column on otel_llm_calls and otel_traces).
GROUP_COLUMNS = {"": "''", "user": "EndUser", "model": "Model", "service": "ServiceName"}

# Per (group, model) first, so tokens are priced per model; quantile states merge per group.
CALLS_SQL = f"""
SELECT 'calls' AS part, grp,
       sum(calls) AS calls, sum(errors) AS errors, sum(reported) AS reported, sum(tokens) AS tokens,
       groupArray(model) AS models, groupArray(unpriced_input) AS unpriced_input,
       groupArray(unpriced_output) AS unpriced_output,
       quantilesMerge(0.5, 0.95, 0.99)(duration_q) AS q,
       toUInt64(0) AS runs, toUInt64(0) AS failed_runs
FROM (
    SELECT $group AS grp, Model AS model, count() AS calls, countIf(IsError) AS errors,
           sum(ReportedCost) AS reported, sum(InputTokens) + sum(OutputTokens) AS tokens,
           sumIf(InputTokens, ReportedCost = 0) AS unpriced_input,
           sumIf(OutputTokens, ReportedCost = 0) AS unpriced_output,
           quantilesState(0.5, 0.95, 0.99)(Duration) AS duration_q
    FROM $calls
    WHERE $where AND {queries.CALL_ROW}
    GROUP BY grp, model
)
GROUP BY grp
"""

_AGENT_PART_COLUMNS = (
    "toUInt64(0) AS calls, toUInt64(0) AS errors, toFloat64(0) AS reported, toUInt64(0) AS tokens,"
    " CAST([], 'Array(String)') AS models, CAST([], 'Array(UInt64)') AS unpriced_input,"
    " CAST([], 'Array(UInt64)') AS unpriced_output, CAST([], 'Array(Float64)') AS q"
)

RUNS_SQL = f"""
SELECT 'runs' AS part, '' AS grp, {_AGENT_PART_COLUMNS},
       uniqExact(TraceId) AS runs, uniqExactIf(TraceId, IsError) AS failed_runs
FROM $table
WHERE $agents
"""

# A run belongs to each group one of its spans in the window names (any span: the end user is
# often on the agent's root span, the model only on its calls).
GROUPED_RUNS_SQL = f"""
SELECT 'runs' AS part, named.grp AS grp, {_AGENT_PART_COLUMNS},
       count() AS runs, countIf(run.failed) AS failed_runs
FROM (SELECT TraceId, max(IsError) AS failed FROM $table WHERE $agents GROUP BY TraceId) AS run
INNER JOIN (
    SELECT DISTINCT TraceId, $group AS grp FROM $table WHERE $scope AND $group != ''
) AS named ON run.TraceId = named.TraceId
GROUP BY grp
"""


@dataclass(frozen=True)
class Question:
    """What one query answers: a filter (project, window, services, models, status) and a group-by."""

    flt: SpanFilter
    group_by: str = ""

    def __post_init__(self):
        if self.group_by not in GROUP_COLUMNS:
            raise ValueError(f"unknown group-by {self.group_by!r}")


@dataclass(frozen=True)
class Values:
    """One group's numbers in the window. Durations in ms, cost in USD, fail rate in % (0..100)."""

    llm_calls: int = 0
    llm_errors: int = 0
    agent_runs: int = 0
    agent_errors: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    latency_p99_ms: float = 0.0

    @property
    def fail_rate(self) -> float:
        attempts = self.llm_calls + self.agent_runs
        return round(100.0 * (self.llm_errors + self.agent_errors) / attempts, 6) if attempts else 0.0

    def value(self, metric: str) -> float:
        """The metric named as in models.METRICS. Raises KeyError for another name."""
        if metric not in _SAMPLE_OF:
            raise KeyError(metric)
        return float(getattr(self, metric))

    def sample(self, metric: str) -> int:
        """How many things the value is made of: LLM calls (cost, tokens, latency), runs, or both."""
        return _SAMPLE_OF[metric](self)


_SAMPLE_OF = {
    "cost_usd": lambda v: v.llm_calls,
    "llm_calls": lambda v: v.llm_calls,
    "tokens": lambda v: v.llm_calls,
    "latency_p50_ms": lambda v: v.llm_calls,
    "latency_p95_ms": lambda v: v.llm_calls,
    "latency_p99_ms": lambda v: v.llm_calls,
    "agent_runs": lambda v: v.agent_runs,
    "fail_rate": lambda v: v.llm_calls + v.agent_runs,
}
METRIC_NAMES = tuple(_SAMPLE_OF)


def sql(question: Question) -> str:
    """The statement for a question: fixed text; the group column from the whitelist; values bound."""
    column = GROUP_COLUMNS[question.group_by]
    runs = GROUPED_RUNS_SQL if question.group_by else RUNS_SQL
    template = f"{CALLS_SQL}\nUNION ALL\n{runs}"
    return queries.sql(template.replace("$group", column), question.flt).replace("$table", schema.table())


def _ms(ns) -> float:
    value = float(ns)
    return round(value / 1e6, 3) if value == value else 0.0  # NaN for an empty group


def measure(question: Question) -> dict[str, Values]:
    """{group: Values} for the question: {'': Values} for an ungrouped one (zeros when empty); per
    group otherwise, without calls that name no group (a call with no end user is no user's).
    Raises clickhouse.ClickHouseError."""
    rows = clickhouse.query(
        sql(question), queries.params(question.flt), tag=f"monitors.measure.{question.group_by or 'all'}"
    )
    overrides = pricing.project_prices(question.flt.project_id)
    found: dict[str, dict] = {}
    for row in rows:
        group = found.setdefault(row["grp"], {})
        if row["part"] == "calls":
            priced = [
                {"model": m, "input_tokens": int(i), "output_tokens": int(o)}
                for m, i, o in zip(row["models"], row["unpriced_input"], row["unpriced_output"], strict=True)
            ]
            quantiles = [_ms(q) for q in row["q"]] + [0.0, 0.0, 0.0]
            group |= {
                "llm_calls": int(row["calls"]),
                "llm_errors": int(row["errors"]),
                "cost_usd": round(float(row["reported"]) + pricing.cost_of_tokens(priced, overrides), 10),
                "tokens": int(row["tokens"]),
                "latency_p50_ms": quantiles[0] if int(row["calls"]) else 0.0,
                "latency_p95_ms": quantiles[1] if int(row["calls"]) else 0.0,
                "latency_p99_ms": quantiles[2] if int(row["calls"]) else 0.0,
            }
        else:
            group |= {"agent_runs": int(row["runs"]), "agent_errors": int(row["failed_runs"])}
    result = {name: Values(**numbers) for name, numbers in found.items() if numbers}
    if not question.group_by:
        result.setdefault("", Values())
    else:
        # Calls that name no user (model, service) belong to no group.
        result = {g: v for g, v in result.items() if g and (v.llm_calls or v.agent_runs)}
    return result


def measure_many(questions: Iterable[Question]) -> dict[Question, dict[str, Values] | clickhouse.ClickHouseError]:
    """Each distinct question asked once. A failed question maps to its ClickHouseError (the
    others still answer), so one bad window does not silence every monitor."""
    answers: dict[Question, dict[str, Values] | clickhouse.ClickHouseError] = {}
    for question in dict.fromkeys(questions):
        try:
            answers[question] = measure(question)
        except clickhouse.ClickHouseError as exc:
            answers[question] = exc
    return answers
