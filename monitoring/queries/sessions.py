"""Sessions and end users: who and which conversation the calls and runs belong to.

A session is `session.id`, `gen_ai.conversation.id` or an SDK's own spelling (monitoring/semantics/semconv.py
SESSION); an end user is `user.id`, `enduser.id`, LiteLLM's end user and the like (END_USER). Both
lists count each invocation once and price it like the Overview; a session's page shows its runs in
order and its conversation as one chat.

The lists page by keyset, never OFFSET (as the runs list does): a page is the groups after the last
row shown in the page's order (its sort value, then the key), so a cursor survives new traffic.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass

from monitoring.queries import runs as runs_q
from monitoring.queries import sources
from monitoring.queries import timeseries as timeseries_q
from monitoring.queries.filter import BadQuery, SpanFilter, iso
from monitoring.store.sql import Sql, from_nanos, run

MAX_ROWS = 500  # the most a page (the API's `limit`) may hold
PAGE_SIZE = 50
KEY_CHARS = 500  # a session id or end user searched for, or opened, is at most this long
# sort -> (the row's value, its cursor's type, direction): numbers and times largest first, the key A-Z.
# (Cost sorts by the value shown, USD to 10 decimals, so a cursor made from a row is exact.)
SORTS = {
    "last": ("last", "Int64", "DESC"),
    "first": ("first", "Int64", "DESC"),
    "key": ("k", "String", "ASC"),
    "runs": ("toInt64(runs)", "Int64", "DESC"),
    "calls": ("toInt64(calls)", "Int64", "DESC"),
    "errors": ("toInt64(errors + failed)", "Int64", "DESC"),
    "tokens": ("toInt64(input + output)", "Int64", "DESC"),
    "cost": ("round(cost, 10)", "Float64", "DESC"),
}
DEFAULT_SORT = "last"


@dataclass(frozen=True)
class GroupCursor:
    """Where a page continues: after (sort value, key) in the order of `sort`."""

    sort: str
    value: int | float | str
    key: str

    def encode(self) -> str:
        raw = json.dumps([self.sort, self.value, self.key], separators=(",", ":"), ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, sort: str) -> GroupCursor:
        """BadQuery for anything this server did not give out for this sort (never a ClickHouse error)."""
        bad = BadQuery("'cursor' is not a cursor this server gave out for this sort")
        try:
            got, value, key = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError, TypeError, RecursionError):
            raise bad from None
        kind = SORTS[sort][1]
        ok_value = (
            isinstance(value, str)
            if kind == "String"
            else type(value) is int and -(2**63) <= value < 2**63
            if kind == "Int64"
            else type(value) in (int, float) and -1e300 < value < 1e300
        )
        if got != sort or not ok_value or not isinstance(key, str) or len(key) > 10_000:
            raise bad
        return cls(sort, value, key)


@dataclass(frozen=True)
class GroupQuery:
    """A Sessions or Users list page: `sort` (SORTS), `q` (a part of the id, any case), `cursor`, `limit`."""

    sort: str = DEFAULT_SORT
    q: str = ""
    cursor: GroupCursor | None = None
    limit: int = PAGE_SIZE

    @classmethod
    def from_query(cls, query, max_limit: int = MAX_ROWS) -> GroupQuery:
        """From a QueryDict; BadQuery (a 400) when a parameter is wrong."""
        sort = query.get("sort") or DEFAULT_SORT
        if sort not in SORTS:
            raise BadQuery(f"'sort' must be one of {', '.join(SORTS)}")
        q = (query.get("q") or "").strip()
        if len(q) > KEY_CHARS:
            raise BadQuery(f"'q' may be at most {KEY_CHARS} characters")
        raw_limit = query.get("limit") or str(min(PAGE_SIZE, max_limit))
        if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= max_limit:
            raise BadQuery(f"'limit' must be a whole number between 1 and {max_limit}")
        cursor = GroupCursor.decode(query["cursor"], sort) if query.get("cursor") else None
        return cls(sort, q, cursor, int(raw_limit))


@dataclass
class GroupPage:
    items: list[Group]
    next_cursor: str | None


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

    def sort_value(self, sort: str) -> int | float | str:
        """The row's value in the order of `sort` (what a cursor made from it holds)."""
        values: dict[str, int | float | str] = {
            "last": self.last_ns,
            "first": self.first_ns,
            "key": self.key,
            "runs": self.runs,
            "calls": self.calls,
            "errors": self.errors + self.failed_runs,
            "tokens": self.input_tokens + self.output_tokens,
            "cost": self.cost_usd,
        }
        return values[sort]

    def as_dict(self, zone: str = "UTC") -> dict:
        """The read API's item: the numbers, and first/last seen as ISO 8601 in `zone`."""
        data = asdict(self)
        del data["first_ns"], data["last_ns"]
        data["first_seen"], data["last_seen"] = iso(self.first_seen, zone), iso(self.last_seen, zone)
        return data


def _groups(flt: SpanFilter, column: str, tag: str, gq: GroupQuery, key: str | None = None) -> list[Group]:
    """Sessions or end users (`column`) with calls or runs in the window, in the order of `gq.sort`,
    after its cursor, up to `gq.limit`; only `key` when given."""
    measures = ("Calls", "Cost", "InputTokens", "OutputTokens", "Unpriced")
    calls = sources.calls(flt, measures, extra_dims=(column,))
    runs = sources.runs(flt, ("Runs", "Failed"), extra_dims=(column,))
    order, value_type, direction = SORTS[gq.sort]
    if key is not None:
        which = Sql("k = {key:String}", key=key)
    elif gq.q:
        which = Sql("k != '' AND positionCaseInsensitiveUTF8(k, {q:String}) > 0", q=gq.q)
    else:
        which = Sql("k != ''")
    after: str | Sql = ""
    if gq.cursor:
        op = "<" if direction == "DESC" else ">"
        after = Sql(
            f" AND ({order}, k) {op} ({{g_value:{value_type}}}, {{g_key:String}})",
            g_value=gq.cursor.value,
            g_key=gq.cursor.key,
        )
    rows = run(
        Sql(
            "SELECT * FROM (SELECT k, sum(calls) AS calls, sum(errors) AS errors, sum(cost) AS cost,",
            " sum(input) AS input, sum(output) AS output, sum(unpriced) AS unpriced, sum(runs) AS runs,",
            " sum(failed) AS failed, toInt64(min(t)) AS first, toInt64(max(t)) AS last FROM (",
            f"SELECT {column} AS k, Calls AS calls, Calls * IsError AS errors, Cost AS cost, InputTokens AS input,",
            " OutputTokens AS output, Unpriced AS unpriced, 0 AS runs, 0 AS failed,",
            " if(Calls > 0, toUnixTimestamp64Nano(toDateTime64(Time, 9)), NULL) AS t FROM (",
            calls,
            f") UNION ALL SELECT {column} AS k, 0, 0, 0., 0, 0, 0, Runs, Failed,",
            " if(Runs > 0, toUnixTimestamp64Nano(toDateTime64(Time, 9)), NULL) FROM (",
            runs,
            ")) WHERE ",
            which,
            " GROUP BY k HAVING calls != 0 OR runs != 0) WHERE 1",
            after,
            f" ORDER BY {order} {direction}, k {direction} LIMIT {{limit:UInt32}}",
            limit=gq.limit,
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


def _page(flt: SpanFilter, column: str, tag: str, gq: GroupQuery) -> GroupPage:
    rows = _groups(flt, column, tag, GroupQuery(gq.sort, gq.q, gq.cursor, gq.limit + 1))
    items = rows[: gq.limit]
    more = len(rows) > gq.limit
    cursor = GroupCursor(gq.sort, items[-1].sort_value(gq.sort), items[-1].key).encode() if more else None
    return GroupPage(items, cursor)


def sessions(flt: SpanFilter, gq: GroupQuery = GroupQuery()) -> GroupPage:
    """A page of the sessions with calls or runs in the window (most recently active first unless
    `gq.sort` says otherwise) and the next page's cursor (None on the last page)."""
    return _page(flt, "SessionId", "sessions.list", gq)


def users(flt: SpanFilter, gq: GroupQuery = GroupQuery()) -> GroupPage:
    """A page of the end users with calls or runs in the window, as `sessions` is."""
    return _page(flt, "EndUser", "users.list", gq)


def session(flt: SpanFilter, key: str) -> Group | None:
    """One session's numbers over the window (whichever page of the list it is on)."""
    return next(iter(_groups(flt, "SessionId", "sessions.one", GroupQuery(limit=1), key=key)), None)


def user(flt: SpanFilter, key: str) -> Group | None:
    """One end user's numbers over the window (whichever page of the list it is on)."""
    return next(iter(_groups(flt, "EndUser", "users.one", GroupQuery(limit=1), key=key)), None)


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
    return runs_q.add_previews(
        flt.project_id, sorted(page.items, key=lambda r: (r.start_ns, r.trace_id)), flt.agent_names
    )
