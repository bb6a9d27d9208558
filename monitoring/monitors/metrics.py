"""The monitors' only questions to ClickHouse: a metric's value and sample size in a window.

Interface (what the evaluation needs):
    Question(flt: SpanFilter, group_by: "" | "user" | "model" | "service")
    measure(question) -> {group: Values}            ('' is the group of an ungrouped question)
    measure_many(questions) -> {question: {group: Values} | ClickHouseError}

The numbers are the dashboard's, from the same sources (monitoring/queries/sources.py: settled
rollups and rows, plus the live part while the settler is behind) and the same counting rules
(monitoring/queries/facts.py): one model invocation once, priced once; a run is a trace with an
agent step and failed when one of its agent steps did. Per group, a call belongs to its end user,
model and service; a run to its end user, to every model its calls used and every service its spans
name. Fail rate is (failed calls + failed runs) / (calls + runs), a percentage here (0..100);
latency percentiles are the dashboard's (monitoring/queries/latency.py).

Each distinct (window, filter, group-by) is asked once, however many monitors share it: two
statements (calls, runs) that read rollup slices for long windows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitoring import clickhouse
from monitoring.queries import latency, sources
from monitoring.queries.filter import SpanFilter
from monitoring.queries.sql import Sql, run

# Group-bys: none, or the end user, model or service.
GROUP_BYS = ("", "user", "model", "service")
_CALL_GROUP = {"": "''", "user": "EndUser", "model": "Model", "service": "ServiceName"}
# A run names one end user, and every model and service it used.
_RUN_GROUP = {"": "''", "user": "EndUser", "model": "arrayJoin(if(empty(Models), [''], Models))",
              "service": "arrayJoin(if(empty(Services), [''], Services))"}  # fmt: skip
_RUN_DIMS = {"": (), "user": ("EndUser",), "model": ("Models",), "service": ("Services",)}
_MEASURES = ("Calls", "Cost", "InputTokens", "OutputTokens", "LatencyHist", "LatencySums")


@dataclass(frozen=True)
class Question:
    """What one query answers: a filter (project, window, services, models, status) and a group-by."""

    flt: SpanFilter
    group_by: str = ""

    def __post_init__(self):
        if self.group_by not in GROUP_BYS:
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


def _calls(question: Question) -> dict[str, dict]:
    flt, group_by = question.flt, question.group_by
    # Per end user, the latency histograms are in the raw rows only (the users' rollup has none).
    source = sources.calls(flt, _MEASURES, extra_dims=("EndUser",) if group_by == "user" else ())
    rows = run(
        Sql(
            f"SELECT {_CALL_GROUP[group_by]} AS grp, sumIf(Calls, IsError = 1) AS t_Errors,",
            f" {sources.totals(_MEASURES)} FROM (",
            source,
            ") GROUP BY grp HAVING t_Calls != 0",
        ),
        tag=f"monitors.calls.{group_by or 'all'}",
    )
    found = {}
    for r in rows:
        p50, p95, p99 = latency.percentiles(r["t_LatencyHist"], r["t_LatencySums"], (0.5, 0.95, 0.99))
        found[r["grp"]] = {
            "llm_calls": int(r["t_Calls"]),
            "llm_errors": int(r["t_Errors"]),
            "cost_usd": round(float(r["t_Cost"]), 10),
            "tokens": int(r["t_InputTokens"]) + int(r["t_OutputTokens"]),
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
            "latency_p99_ms": p99,
        }
    return found


def _runs(question: Question) -> dict[str, dict]:
    group_by = question.group_by
    rows = run(
        Sql(
            f"SELECT {_RUN_GROUP[group_by]} AS grp, sum(Runs) AS runs, sum(Failed) AS failed FROM (",
            sources.runs(question.flt, ("Runs", "Failed"), extra_dims=_RUN_DIMS[group_by]),
            ") GROUP BY grp HAVING runs != 0",
        ),
        tag=f"monitors.runs.{group_by or 'all'}",
    )
    return {r["grp"]: {"agent_runs": int(r["runs"]), "agent_errors": int(r["failed"])} for r in rows}


def measure(question: Question) -> dict[str, Values]:
    """{'': Values} for an ungrouped question (zeros when empty), else one entry per group with
    calls or runs (calls and runs that name no group are in none). Raises ClickHouseError."""
    found: dict[str, dict] = {}
    for group, numbers in _calls(question).items():
        found.setdefault(group, {}).update(numbers)
    for group, numbers in _runs(question).items():
        found.setdefault(group, {}).update(numbers)
    if not question.group_by:
        return {"": Values(**found.get("", {}))}
    return {group: Values(**numbers) for group, numbers in found.items() if group}


def measure_many(questions: Iterable[Question]) -> dict[Question, dict[str, Values] | clickhouse.ClickHouseError]:
    """{question: measure(question)}, each distinct question asked once. A question that fails maps
    to its ClickHouseError, so one project's trouble does not silence the other monitors."""
    answers: dict[Question, dict[str, Values] | clickhouse.ClickHouseError] = {}
    for question in dict.fromkeys(questions):
        try:
            answers[question] = measure(question)
        except clickhouse.ClickHouseError as exc:
            answers[question] = exc
    return answers
