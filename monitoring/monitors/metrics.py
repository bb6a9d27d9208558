"""The monitors' only questions to ClickHouse: a metric's value and sample size in a window.

Interface (what the evaluation needs, and all the query layer must answer):
    Question(flt: SpanFilter, group_by: "" | "user" | "model" | "service")
    measure(question) -> {group: Values}            ('' is the group of an ungrouped question)
    measure_many(questions) -> {question: {group: Values} | ClickHouseError}

All questions of one project are one SQL statement (an LLM-call part UNION ALL an agent-run part),
whatever their number, windows, filters and group-bys: every distinct (window, filter) is a slot
of the statement, every group-by is computed at once. measure_many asks one statement per project;
a port onto rollup tables keeps this interface (Question in, {group: Values} out).
Counting rules are the dashboard's (monitoring/queries.py docstring):
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
from monitoring.forms import SpanFilter, Window

# Group-bys: none, the EndUser, Model or ServiceName column (on otel_llm_calls and otel_traces alike).
GROUP_BYS = ("", "user", "model", "service")

# One statement answers every question of a project. Its distinct filters (services, models,
# status) are numbered f = 1..m and its distinct (window, filter) pairs are the slots i = 1..n, all
# given as bound arrays:
#   {fsvcs,fmdls:Array(Array(String))} ([] = any), {fstats:Array(String)} ('', 'ok', 'error'),
#   {starts,ends:Array(Int64)} (ns), {sfilter:Array(UInt32)} (slot i's filter f).
# A row is tested once per filter, then once per slot (two comparisons), counted in every slot it
# falls in (`ARRAY JOIN arrayFilter(...)`), and grouped per slot by all three dimensions at once.
_FILTERS = "range(1, length({fstats:Array(String)}) + 1)"
_SLOTS = "range(1, length({starts:Array(Int64)}) + 1)"
_FILTER_OF = "{sfilter:Array(UInt32)}[i]"


def _in_window(column: str) -> str:
    return f"({column} >= {{starts:Array(Int64)}}[i] AND {column} < {{ends:Array(Int64)}}[i])"


def _services_ok(column: str) -> str:
    return f"(empty({{fsvcs:Array(Array(String))}}[f]) OR has({{fsvcs:Array(Array(String))}}[f], {column}))"


def _models_ok(column: str) -> str:
    return f"(empty({{fmdls:Array(Array(String))}}[f]) OR has({{fmdls:Array(Array(String))}}[f], {column}))"


def _status_ok(column: str) -> str:
    return f"multiIf({{fstats:Array(String)}}[f] = 'error', {column} = 1, {{fstats:Array(String)}}[f] = 'ok', {column} = 0, 1)"


def _per_filter(condition: str) -> str:
    """[condition under filter 1, ..., filter m] for the current row."""
    return f"arrayMap(f -> toUInt8({condition}), {_FILTERS})"


_SCOPE = (
    "ProjectId = {project:String}"
    " AND Timestamp >= fromUnixTimestamp64Nano({start:Int64}) AND Timestamp < fromUnixTimestamp64Nano({end:Int64})"
)

# LLM calls. The dashboard does not count an agent's own LLM span whose time range holds the LiteLLM
# proxy's span of the same call (queries.PROXIED_CALLERS) when that gateway span is under the same
# filter: each caller carries its gateway's columns (one join for all slots), and a slot drops the
# caller when the gateway is in that slot too.
CALLS_SQL = f"""
SELECT 'calls' AS part, slot, pair.1 AS dim, pair.2 AS grp,
       sum(calls) AS calls, sum(errors) AS errors, sum(reported) AS reported, sum(tokens) AS tokens,
       groupArray(model) AS models, groupArray(unpriced_input) AS unpriced_input,
       groupArray(unpriced_output) AS unpriced_output,
       quantilesMerge(0.5, 0.95, 0.99)(duration_q) AS q,
       toUInt64(0) AS runs, toUInt64(0) AS failed_runs
FROM (
    SELECT slot, grouping(EndUser, ServiceName) AS level, EndUser, ServiceName, Model AS model,
           count() AS calls, countIf(IsError) AS errors, sum(ReportedCost) AS reported,
           sum(InputTokens) + sum(OutputTokens) AS tokens,
           sumIf(InputTokens, ReportedCost = 0) AS unpriced_input,
           sumIf(OutputTokens, ReportedCost = 0) AS unpriced_output,
           quantilesState(0.5, 0.95, 0.99)(Duration) AS duration_q
    FROM (
        SELECT *,
               {_per_filter(f"{_services_ok('ServiceName')} AND {_models_ok('Model')} AND {_status_ok('IsError')}")} AS row_ok,
               {_per_filter(f"has_gw = 1 AND NOT Gateway AND {_services_ok('g_service')} AND {_models_ok('g_model')} AND {_status_ok('g_error')}")} AS proxied
        FROM (
            SELECT c.*, g.has_gw, g.g_tns, g.g_service, g.g_model, g.g_error
            FROM (SELECT CallKey, Gateway, toUnixTimestamp64Nano(Timestamp) AS tns, ServiceName, Model, EndUser,
                         IsError, ReportedCost, InputTokens, OutputTokens, Duration
                  FROM $calls WHERE {_SCOPE}) AS c
            LEFT JOIN (
                SELECT caller.CallKey AS CallKey, 1 AS has_gw, any(gateway.tns) AS g_tns,
                       any(gateway.ServiceName) AS g_service, any(gateway.Model) AS g_model,
                       any(gateway.IsError) AS g_error
                FROM (SELECT TraceKey, CallKey, Timestamp AS s, Timestamp + toIntervalNanosecond(Duration) AS e
                      FROM $calls WHERE {_SCOPE} AND NOT Gateway) AS caller
                INNER JOIN (SELECT TraceKey, Timestamp AS ts, toUnixTimestamp64Nano(Timestamp) AS tns,
                                   ServiceName, Model, IsError
                            FROM $calls WHERE {_SCOPE} AND Gateway) AS gateway
                ON caller.TraceKey = gateway.TraceKey
                WHERE gateway.ts >= caller.s AND gateway.ts <= caller.e
                GROUP BY caller.CallKey
            ) AS g ON c.CallKey = g.CallKey
        )
    )
    ARRAY JOIN arrayFilter(
        i -> {_in_window("tns")} AND row_ok[{_FILTER_OF}] = 1
             AND NOT (proxied[{_FILTER_OF}] = 1 AND {_in_window("g_tns")}),
        {_SLOTS}) AS slot
    GROUP BY GROUPING SETS ((slot, Model), (slot, EndUser, Model), (slot, ServiceName, Model))
)
-- level 3: per model (also the whole project); 1: per end user; 2: per service
ARRAY JOIN multiIf(level = 3, [('', ''), ('model', model)], level = 1, [('user', EndUser)], [('service', ServiceName)]) AS pair
GROUP BY slot, dim, grp
"""

_NO_CALLS = (
    "toUInt64(0) AS calls, toUInt64(0) AS errors, toFloat64(0) AS reported, toUInt64(0) AS tokens,"
    " CAST([], 'Array(String)') AS models, CAST([], 'Array(UInt64)') AS unpriced_input,"
    " CAST([], 'Array(UInt64)') AS unpriced_output, CAST([], 'Array(Float64)') AS q"
)

# Agent runs: traces with an agent step (queries.AGENT) under slot i's window and status; with a
# service or model filter, the trace must also have a span of those services/models in the window
# (queries.agent_where). A run failed when one of those agent steps did. A run belongs to every end
# user, model and service its spans name.
# Spans are first folded per (trace, service, model), traces keyed by a 64-bit hash of TraceId. Per
# trace and filter, the agent steps (all, failed) and the spans that pass the filter are reduced to
# (count, first, last); a slot counts the run when both meet its window. Runs are counted per group
# as vectors over the slots (sumForEach), not as one row per (trace, slot, group).
# Read over all the slots' windows together, this may differ from one window asked alone at a
# window's edges: a trace whose steps (or filtered spans) surround a window without one inside it
# counts in it, and a run straddling a window's edge may name a group from just outside it.


def _meets(name: str) -> str:
    """The trace's `name` times under slot i's filter (count, first, last) meet slot i's window."""
    f = _FILTER_OF
    return (
        f"({name}_n[{f}] > 0 AND {name}_lo[{f}] < {{ends:Array(Int64)}}[i]"
        f" AND {name}_hi[{f}] >= {{starts:Array(Int64)}}[i])"
    )


RUNS_SQL = f"""
SELECT 'runs' AS part, slot, dim, grp, {_NO_CALLS}, runs, failed_runs
FROM (
    SELECT pair.1 AS dim, pair.2 AS grp, sumForEach(counted) AS runs_by_slot, sumForEach(failed) AS failed_by_slot
    FROM (
        SELECT users, models, services,
               arrayMap(i -> toUInt8({_meets("step")} AND {_meets("match")}), {_SLOTS}) AS counted,
               arrayMap(i -> toUInt8(counted[i] = 1 AND {_meets("fail")}), {_SLOTS}) AS failed
        FROM (
            SELECT users, models, services,
                   arrayMap(f -> arrayMap(s -> s.1, arrayFilter(s -> {_status_ok("s.2")}, steps)), {_FILTERS}) AS step_t,
                   arrayMap(f -> arrayMap(s -> s.1, arrayFilter(s -> s.2 = 1 AND {_status_ok("s.2")}, steps)), {_FILTERS}) AS fail_t,
                   arrayMap(f -> arrayFilter(k -> {_services_ok("k.1")} AND {_models_ok("k.2")}, keys), {_FILTERS}) AS match_k,
                   arrayMap(a -> length(a), step_t) AS step_n,
                   arrayMap(a -> arrayMin(a), step_t) AS step_lo,
                   arrayMap(a -> arrayMax(a), step_t) AS step_hi,
                   arrayMap(a -> length(a), fail_t) AS fail_n,
                   arrayMap(a -> arrayMin(a), fail_t) AS fail_lo,
                   arrayMap(a -> arrayMax(a), fail_t) AS fail_hi,
                   arrayMap(a -> length(a), match_k) AS match_n,
                   arrayMap(a -> arrayMin(arrayMap(k -> k.3, a)), match_k) AS match_lo,
                   arrayMap(a -> arrayMax(arrayMap(k -> k.4, a)), match_k) AS match_hi
            FROM (
                SELECT trace,
                       arrayFlatten(groupArray(key_steps)) AS steps,
                       groupArray((ServiceName, Model, lo, hi)) AS keys,
                       arrayDistinct(arrayFlatten(groupArray(key_users))) AS users,
                       groupUniqArrayIf(Model, Model != '') AS models,
                       groupUniqArray(ServiceName) AS services
                FROM (
                    SELECT cityHash64(TraceId) AS trace, ServiceName, Model,
                           min(toUnixTimestamp64Nano(Timestamp)) AS lo, max(toUnixTimestamp64Nano(Timestamp)) AS hi,
                           groupArrayIf((toUnixTimestamp64Nano(Timestamp), IsError), {queries.AGENT}) AS key_steps,
                           groupUniqArrayIf(EndUser, EndUser != '') AS key_users
                    FROM $table
                    WHERE {_SCOPE} AND TraceId != ''
                      AND cityHash64(TraceId) IN (SELECT cityHash64(TraceId) FROM $table WHERE {_SCOPE} AND {queries.AGENT})
                    GROUP BY trace, ServiceName, Model
                )
                GROUP BY trace
                HAVING notEmpty(steps)
            )
        )
    )
    ARRAY JOIN arrayConcat([('', '')], arrayMap(u -> ('user', u), users), arrayMap(m -> ('model', m), models),
                           arrayMap(s -> ('service', s), services)) AS pair
    GROUP BY dim, grp
)
ARRAY JOIN arrayEnumerate(runs_by_slot) AS slot, runs_by_slot AS runs, failed_by_slot AS failed_runs
WHERE runs > 0
"""

STATEMENT = f"{CALLS_SQL}\nUNION ALL\n{RUNS_SQL}"


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


@dataclass(frozen=True)
class Batch:
    """The questions of one project, answered by one statement: their distinct filters, and their
    distinct (window, filter) slots (1-based in SQL)."""

    project_id: str
    agent_names: tuple[str, ...]
    filters: tuple[tuple, ...]  # (services, models, status)
    slots: tuple[tuple, ...]  # (window, filter index 1..m)

    @classmethod
    def of(cls, questions: list[Question]) -> Batch:
        first = questions[0].flt
        filters = tuple(dict.fromkeys(_filter(q.flt) for q in questions))
        slots = tuple(dict.fromkeys((q.flt.window, filters.index(_filter(q.flt)) + 1) for q in questions))
        return cls(first.project_id, first.agent_names, filters, slots)

    def slot_of(self, flt: SpanFilter) -> int:
        return self.slots.index((flt.window, self.filters.index(_filter(flt)) + 1)) + 1

    def params(self) -> dict:
        windows = [window for window, _ in self.slots]
        return {
            "project": str(self.project_id),
            "start": _nanos(min(w.start for w in windows)),
            "end": _nanos(max(w.end for w in windows)),
            "agent_names": list(self.agent_names),
            "fsvcs": [list(services) for services, _, _ in self.filters],
            "fmdls": [list(models) for _, models, _ in self.filters],
            "fstats": [status for _, _, status in self.filters],
            "starts": [_nanos(w.start) for w in windows],
            "ends": [_nanos(w.end) for w in windows],
            "sfilter": [f for _, f in self.slots],
        }


def _filter(flt: SpanFilter) -> tuple:
    return (tuple(flt.services), tuple(flt.models), flt.status)


def _nanos(value) -> int:
    return Window(value, value).nanos()["start"]


def sql() -> str:
    """The one statement (fixed text; tables from the schema module; every value bound)."""
    return STATEMENT.replace("$table", schema.table()).replace("$calls", schema.table(schema.LLM_CALLS))


def _ms(ns) -> float:
    value = float(ns)
    return round(value / 1e6, 3) if value == value else 0.0  # NaN for an empty group


def _answer(batch: Batch) -> dict[tuple[int, str, str], dict]:
    """{(slot, dim, group): numbers} for a batch. Raises clickhouse.ClickHouseError."""
    rows = clickhouse.query(sql(), batch.params(), tag="monitors.measure")
    overrides = pricing.project_prices(batch.project_id)
    found: dict[tuple[int, str, str], dict] = {}
    for row in rows:
        numbers = found.setdefault((int(row["slot"]), row["dim"], row["grp"]), {})
        if row["part"] == "calls":
            priced = [
                {"model": m, "input_tokens": int(i), "output_tokens": int(o)}
                for m, i, o in zip(row["models"], row["unpriced_input"], row["unpriced_output"], strict=True)
            ]
            calls = int(row["calls"])
            quantiles = [_ms(q) for q in row["q"]] + [0.0, 0.0, 0.0]
            numbers |= {
                "llm_calls": calls,
                "llm_errors": int(row["errors"]),
                "cost_usd": round(float(row["reported"]) + pricing.cost_of_tokens(priced, overrides), 10),
                "tokens": int(row["tokens"]),
                "latency_p50_ms": quantiles[0] if calls else 0.0,
                "latency_p95_ms": quantiles[1] if calls else 0.0,
                "latency_p99_ms": quantiles[2] if calls else 0.0,
            }
        else:
            numbers |= {"agent_runs": int(row["runs"]), "agent_errors": int(row["failed_runs"])}
    return found


def _values_of(question: Question, batch: Batch, found: dict) -> dict[str, Values]:
    slot = batch.slot_of(question.flt)
    if not question.group_by:
        return {"": Values(**found.get((slot, "", ""), {}))}
    # Calls that name no user (model, service) belong to no group.
    return {
        group: Values(**numbers)
        for (s, dim, group), numbers in found.items()
        if s == slot and dim == question.group_by and group
    }


def measure_many(questions: Iterable[Question]) -> dict[Question, dict[str, Values] | clickhouse.ClickHouseError]:
    """{question: {group: Values}}: {'': Values} for an ungrouped question (zeros when empty), else
    one entry per group with calls or runs (calls that name no group are in none). One statement per
    project, whatever the number of questions. A project whose statement fails maps its questions to
    the ClickHouseError, so one project's trouble does not silence the others' monitors."""
    by_project: dict[tuple, list[Question]] = {}
    for question in dict.fromkeys(questions):
        by_project.setdefault((question.flt.project_id, question.flt.agent_names), []).append(question)
    answers: dict[Question, dict[str, Values] | clickhouse.ClickHouseError] = {}
    for group in by_project.values():
        batch = Batch.of(group)
        try:
            found = _answer(batch)
        except clickhouse.ClickHouseError as exc:
            answers |= dict.fromkeys(group, exc)
            continue
        for question in group:
            answers[question] = _values_of(question, batch, found)
    return answers


def measure(question: Question) -> dict[str, Values]:
    """The answer to one question (see measure_many). Raises clickhouse.ClickHouseError."""
    answer = measure_many([question])[question]
    if isinstance(answer, clickhouse.ClickHouseError):
        raise answer
    return answer
