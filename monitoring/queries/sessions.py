"""Sessions and end users: who and which conversation the calls and runs belong to.

A session is `session.id`, `gen_ai.conversation.id` or an SDK's own spelling (monitoring/semantics/semconv.py
SESSION); an end user is `user.id`, `enduser.id`, LiteLLM's end user and the like (END_USER). Both
lists count each invocation once and price it like the Overview; a session's page shows its runs in
order and its conversation as one chat.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitoring.queries import runs as runs_q
from monitoring.queries import sources
from monitoring.queries import timeseries as timeseries_q
from monitoring.queries.filter import SpanFilter
from monitoring.store.sql import Sql, from_nanos, run

MAX_ROWS = 500


@dataclass
class Group:
    """One session or end user over the window (USD, tokens; first/last seen as ns)."""

    key: str
    calls: int
    errors: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    runs: int
    failed_runs: int
    first_ns: int
    last_ns: int
    unpriced: int = 0

    @property
    def first_seen(self):
        return from_nanos(self.first_ns)

    @property
    def last_seen(self):
        return from_nanos(self.last_ns)


def _groups(flt: SpanFilter, column: str, tag: str, limit: int, key: str | None = None) -> list[Group]:
    """Sessions or end users (`column`) with calls or runs in the window; only `key` when given."""
    measures = ("Calls", "Cost", "InputTokens", "OutputTokens", "Unpriced")
    calls = sources.calls(flt, measures, extra_dims=(column,))
    runs = sources.runs(flt, ("Runs", "Failed"), extra_dims=(column,))
    rows = run(
        Sql(
            "SELECT k, sum(calls) AS calls, sum(errors) AS errors, sum(cost) AS cost, sum(input) AS input,",
            " sum(output) AS output, sum(unpriced) AS unpriced, sum(runs) AS runs, sum(failed) AS failed,",
            " toInt64(min(t)) AS first, toInt64(max(t)) AS last FROM (",
            f"SELECT {column} AS k, Calls AS calls, Calls * IsError AS errors, Cost AS cost, InputTokens AS input,",
            " OutputTokens AS output, Unpriced AS unpriced, 0 AS runs, 0 AS failed,",
            " if(Calls > 0, toUnixTimestamp64Nano(toDateTime64(Time, 9)), NULL) AS t FROM (",
            calls,
            f") UNION ALL SELECT {column} AS k, 0, 0, 0., 0, 0, 0, Runs, Failed,",
            " if(Runs > 0, toUnixTimestamp64Nano(toDateTime64(Time, 9)), NULL) FROM (",
            runs,
            ")) WHERE ",
            Sql("k = {key:String}", key=key) if key is not None else "k != ''",
            " GROUP BY k HAVING calls != 0 OR runs != 0 ORDER BY last DESC, k LIMIT {limit:UInt32}",
            limit=limit,
        ),
        tag=tag,
    )
    return [
        Group(
            r["k"],
            int(r["calls"]),
            int(r["errors"]),
            round(float(r["cost"]), 10),
            int(r["input"]),
            int(r["output"]),
            int(r["runs"]),
            int(r["failed"]),
            int(r["first"] or 0),
            int(r["last"] or 0),
            int(r["unpriced"]),
        )
        for r in rows
    ]


def sessions(flt: SpanFilter, limit: int = MAX_ROWS) -> list[Group]:
    """Sessions with calls or runs in the window, most recently active first."""
    return _groups(flt, "SessionId", "sessions.list", limit)


def users(flt: SpanFilter, limit: int = MAX_ROWS) -> list[Group]:
    """End users with calls or runs in the window, most recently active first."""
    return _groups(flt, "EndUser", "users.list", limit)


def session(flt: SpanFilter, key: str) -> Group | None:
    """One session's numbers over the window (also when it is not among the newest MAX_ROWS)."""
    return next(iter(_groups(flt, "SessionId", "sessions.one", 1, key=key)), None)


def user(flt: SpanFilter, key: str) -> Group | None:
    """One end user's numbers over the window (also when they are not among the newest MAX_ROWS)."""
    return next(iter(_groups(flt, "EndUser", "users.one", 1, key=key)), None)


def user_cost(flt: SpanFilter, key: str) -> tuple[str, list[float], list[int]]:
    """One end user's cost per bucket of the window: (bucket as timeseries.bucket_for says, USD per
    bucket, unpriced calls per bucket), every bucket of timeseries.bucket_starts present. The same
    calls, prices and window as user(), so the buckets add up to its cost: one number per page.
    Raises ClickHouseError."""
    bucket = timeseries_q.bucket_for(flt)
    starts = timeseries_q.bucket_starts(flt, bucket)
    rows = run(
        Sql(
            f"SELECT {timeseries_q.bucket_sql(bucket)} AS t, sum(Cost) AS cost, sum(Unpriced) AS unpriced FROM (",
            sources.calls(flt, ("Calls", "Cost", "Unpriced"), extra_dims=("EndUser",)),
            ") WHERE EndUser = {key:String} GROUP BY t",
            key=key,
            tz=flt.tz,
        ),
        tag="users.cost",
    )
    index = {int(t.timestamp()): i for i, t in enumerate(starts)}
    costs, unpriced = [0.0] * len(starts), [0] * len(starts)
    for r in rows:
        i = index.get(int(r["t"]))
        if i is not None:
            costs[i] += float(r["cost"])
            unpriced[i] += int(r["unpriced"])
    return bucket, [round(c, 10) for c in costs], unpriced


def session_runs(flt: SpanFilter, session: str, limit: int = 200) -> list[runs_q.RunRow]:
    """The session's runs in the window, oldest first, with previews (its conversation in order)."""
    page = runs_q.list_runs(flt, runs_q.RunQuery(session=session, limit=limit))
    return runs_q.add_previews(flt.project_id, sorted(page.items, key=lambda r: (r.start_ns, r.trace_id)))
