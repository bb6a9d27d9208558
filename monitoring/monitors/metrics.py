"""The monitors' only questions to ClickHouse: a metric's value and sample size in a window.

Interface (what the evaluation needs):
    Question(flt: SpanFilter, group_by: "" | "user" | "model" | "service")
    measure(question) -> {group: Values}            ('' is the group of an ungrouped question)
    measure_many(questions) -> {question: {group: Values} | ClickHouseError}

The numbers are the dashboard's, from the same sources (monitoring/queries/sources.py: settled
rollups and rows, plus the live part while the settler is behind) and the same counting rules
(monitoring/semantics/facts.py): one model invocation once, priced once; a run is a trace with an
agent step and failed when one of its agent steps did. Per group, a call belongs to its end user,
model and service; a run to its end user, to every model its calls used and every service its spans
name. Fail rate is (failed calls + failed runs) / (calls + runs), a percentage here (0..100);
latency percentiles are the dashboard's (monitoring/queries/latency.py).

Each distinct window is read once for every question about it, whatever its filter and group-by:
three statements (calls, latency, runs) summed by the dimensions the questions need, reading rollup
slices for long windows; the questions' numbers are added up from those rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from monitoring.queries import latency, sources
from monitoring.queries import quality as quality_q
from monitoring.queries.filter import SpanFilter
from monitoring.store import clickhouse
from monitoring.store.sql import Sql, run

# Group-bys: none, or the end user, model or service; scores also by agent (the run's name).
GROUP_BYS = ("", "user", "model", "service")
SCORE_GROUP_BYS = (*GROUP_BYS, "agent")
_MEASURES = ("Calls", "Cost", "InputTokens", "OutputTokens")


@dataclass(frozen=True)
class Question:
    """What one query answers: a filter (project, window, services, models, status) and a group-by."""

    flt: SpanFilter
    group_by: str = ""
    latency: bool = True  # False: the latency percentiles are not needed (left at 0)
    # Score questions (SCORE_METRICS): the score read ('' = every evaluation) and the pass marks of
    # the project's configs; a score question asks about scores only (its other numbers stay 0).
    scores: bool = False
    score_name: str = ""
    marks: tuple[quality_q.PassMark, ...] = ()

    def __post_init__(self):
        if self.group_by not in (SCORE_GROUP_BYS if self.scores else GROUP_BYS):
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
    score_mean: float = 0.0  # the mean of the score's values
    score_values: int = 0  # scores with a value (the mean's sample)
    score_evaluations: int = 0  # evaluations (monitoring/queries/quality.py: a machine's scores)
    score_failing: int = 0  # of them, those failing

    @property
    def score_fail_share(self) -> float:
        """Failing evaluations in % (0..100) of the evaluations."""
        return round(100.0 * self.score_failing / self.score_evaluations, 6) if self.score_evaluations else 0.0

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
    "score_mean": lambda v: v.score_values,
    "score_fail_share": lambda v: v.score_evaluations,
}
METRIC_NAMES = tuple(_SAMPLE_OF)


# --- one read per window -------------------------------------------------------------------------
# Monitors evaluated in one pass share `now`, so every monitor of one window length asks about the
# same window. Each distinct window is read once, summed by the dimensions the questions filter and
# group by (service, model, status, end user; a run's services and models); each question's numbers
# are then added up from those few rows here. Reading a 30-day window costs the same for one
# question or forty.


@dataclass(frozen=True)
class _Read:
    """What one window's read must carry: end users, runs' service/model lists, latency buckets."""

    users: bool
    run_lists: bool
    latency: bool
    latency_users: bool  # end users in the latency rows (read raw: the latency rollup has none)


def _call_rows(flt: SpanFilter, read: _Read) -> list[dict]:
    dims = "ServiceName, Model, IsError" + (", EndUser" if read.users else "")
    return run(
        Sql(
            f"SELECT {dims}, sum(Calls) AS calls, sum(Cost) AS cost, sum(InputTokens) + sum(OutputTokens) AS tokens",
            " FROM (",
            sources.calls(flt, _MEASURES, by_user=read.users),
            f") GROUP BY {dims} HAVING calls != 0",
        ),
        tag="monitors.calls",
    )


def _latency_rows(flt: SpanFilter, read: _Read) -> list[dict]:
    dims = "ServiceName, Model, IsError" + (", EndUser" if read.latency_users else "")
    return run(
        Sql(
            f"SELECT {dims}, Bucket, sum(Calls) AS calls, sum(DurationSum) AS sums FROM (",
            sources.latency(flt, extra_dims=("EndUser",) if read.latency_users else ()),
            f") GROUP BY {dims}, Bucket HAVING calls != 0",
        ),
        tag="monitors.latency",
    )


def _run_rows(flt: SpanFilter, read: _Read) -> list[dict]:
    extra = (("EndUser",) if read.users else ()) + (("Services", "Models") if read.run_lists else ())
    dims = ", ".join(("ServiceName", "IsError", *extra))
    return run(
        Sql(
            f"SELECT {dims}, sum(Runs) AS runs, sum(Failed) AS failed FROM (",
            sources.runs(flt, ("Runs", "Failed"), extra_dims=extra),
            f") GROUP BY {dims} HAVING runs != 0",
        ),
        tag="monitors.runs",
    )


def _status_ok(row: dict, status: str) -> bool:
    return not status or int(row["IsError"]) == (status == "error")


def _call_groups(row: dict, group_by: str) -> tuple[str, ...]:
    return ({"": "", "user": row.get("EndUser", ""), "model": row["Model"], "service": row["ServiceName"]}[group_by],)


def _run_groups(row: dict, group_by: str) -> tuple[str, ...]:
    """A run belongs to its end user, and to every model and service it used ('' when none)."""
    if group_by == "model":
        return tuple(row["Models"]) or ("",)
    if group_by == "service":
        return tuple(row["Services"]) or ("",)
    return (row.get("EndUser", "") if group_by == "user" else "",)


def _answer(question: Question, calls: list[dict], latencies: list[dict], runs: list[dict]) -> dict[str, Values]:
    flt, group_by = question.flt, question.group_by
    services, models = set(flt.services), set(flt.models)
    found: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for row in calls:
        if (services and row["ServiceName"] not in services) or (models and row["Model"] not in models):
            continue
        if not _status_ok(row, flt.status):
            continue
        for group in _call_groups(row, group_by):
            numbers = found[group]
            numbers["llm_calls"] += int(row["calls"])
            numbers["llm_errors"] += int(row["calls"]) if int(row["IsError"]) else 0
            numbers["cost_usd"] += float(row["cost"])
            numbers["tokens"] += int(row["tokens"])
    if question.latency:
        counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        durations: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for row in latencies:
            if (services and row["ServiceName"] not in services) or (models and row["Model"] not in models):
                continue
            if not _status_ok(row, flt.status):
                continue
            for group in _call_groups(row, group_by):
                counts[group][int(row["Bucket"])] += int(row["calls"])
                durations[group][int(row["Bucket"])] += int(row["sums"])
        for group, hist in counts.items():
            if group in found:
                p50, p95, p99 = latency.percentiles(hist, durations[group])
                found[group] |= {"latency_p50_ms": p50, "latency_p95_ms": p95, "latency_p99_ms": p99}
    for row in runs:
        # "runs holding a matching span": their services and models (as the dashboard's bar)
        if services and not services & set(row["Services"]):
            continue
        if models and not models & set(row["Models"]):
            continue
        if not _status_ok(row, flt.status):
            continue
        for group in _run_groups(row, group_by):
            found[group]["agent_runs"] += int(row["runs"])
            found[group]["agent_errors"] += int(row["failed"])
    values = {}
    for group, numbers in found.items():
        if not numbers.get("llm_calls") and not numbers.get("agent_runs"):
            continue
        numbers["cost_usd"] = round(numbers.get("cost_usd", 0.0), 10)
        values[group] = Values(**{k: (v if k.endswith(("_usd", "_ms")) else int(v)) for k, v in numbers.items()})
    if not group_by:
        return {"": values.get("", Values())}
    return {group: v for group, v in values.items() if group}


def _answers(questions: list[Question]) -> list[dict[str, Values]]:
    """measure() of each question; all of them about one window of one project (three statements)."""
    read = _Read(
        users=any(q.group_by == "user" for q in questions),
        run_lists=any(q.group_by in ("model", "service") or q.flt.services or q.flt.models for q in questions),
        latency=any(q.latency for q in questions),
        latency_users=any(q.latency and q.group_by == "user" for q in questions),
    )
    base = questions[0].flt.unfiltered()
    calls = _call_rows(base, read)
    latencies = _latency_rows(base, read) if read.latency else []
    runs = _run_rows(base, read)
    return [_answer(q, calls, latencies, runs) for q in questions]


# --- scores --------------------------------------------------------------------------------------
_SCORE_GROUPS = {
    "": "''",
    "user": "EndUser",
    "model": "arrayJoin(if(empty(Models), [''], Models))",
    "service": "Service",
    "agent": "Agent",
}


def _score_answer(question: Question) -> dict[str, Values]:
    """One score question: the window's scores (of its name, or every evaluation) per group, by the
    rules of monitoring/queries/quality.py (one statement)."""
    rows = run(
        Sql(
            f"SELECT {_SCORE_GROUPS[question.group_by]} AS g, countIf(Value IS NOT NULL) AS valued,",
            " avgOrNull(Value) AS mean, sum(IsEvaluation) AS evaluations, sum(Fails) AS failing FROM (",
            quality_q.scored(question.flt, name=question.score_name, marks=question.marks),
            ") GROUP BY g",
        ),
        tag="monitors.scores",
    )
    values = {
        r["g"]: Values(
            score_mean=round(float(r["mean"]), 6) if r["mean"] is not None else 0.0,
            score_values=int(r["valued"]),
            score_evaluations=int(r["evaluations"]),
            score_failing=int(r["failing"]),
        )
        for r in rows
    }
    if not question.group_by:
        return {"": values.get("", Values())}
    return {group: v for group, v in values.items() if group}


def measure(question: Question) -> dict[str, Values]:
    """{'': Values} for an ungrouped question (zeros when empty), else one entry per group with
    calls or runs (calls and runs that name no group are in none). Raises ClickHouseError."""
    return _score_answer(question) if question.scores else _answers([question])[0]


def measure_many(questions: Iterable[Question]) -> dict[Question, dict[str, Values] | clickhouse.ClickHouseError]:
    """{question: measure(question)}, each distinct window read once for all the questions about it
    (three statements). A window whose read fails maps its questions to the ClickHouseError, so one
    project's trouble does not silence the other monitors."""
    by_window: dict[tuple, list[Question]] = defaultdict(list)
    answers: dict[Question, dict[str, Values] | clickhouse.ClickHouseError] = {}
    for question in dict.fromkeys(questions):
        if question.scores:  # one statement each: a score's rows are few beside the spans'
            try:
                answers[question] = _score_answer(question)
            except clickhouse.ClickHouseError as exc:
                answers[question] = exc
            continue
        flt = question.flt
        key = (flt.project_id, flt.window.start, flt.window.end, flt.include_replays, flt.agent_names, flt.tz)
        by_window[key].append(question)
    for batch in by_window.values():
        try:
            answers.update(zip(batch, _answers(batch), strict=True))
        except clickhouse.ClickHouseError as exc:
            answers.update(dict.fromkeys(batch, exc))
    return answers
