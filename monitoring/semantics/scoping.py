"""What the settler and the read side share about the traces a question covers: the settler's
progress (`Through` in otel_settle_state, read by pages to know whether it keeps up), the time
bounds of a set of traces, and their scope with cross-trace matches and prices resolved.

The settler (monitoring/semantics/settle.py) writes facts for a scope; a page's live part
(monitoring/queries/live.py) computes the facts of the unsettled traces' scope the same way. Both
import this module; neither imports the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from monitoring.semantics import facts
from monitoring.semantics.pricing import PriceBook
from monitoring.store import schema
from monitoring.store.sql import Sql, run, run_one

STATE_NAME = "facts"  # the low-water mark: every span inserted up to it is settled, whichever partition
STALE_AFTER_SECONDS = 60  # no pass recorded for this long: the settler is not running (Health, --healthcheck)
OVERLAP_NS = 2_000_000_000  # each pass re-reads this much before `Through` (settle.py says why)

# The last state read per state table: (monotonic s, through, server now); one page's questions share it.
_state_seen: dict[str, tuple[float, int, int]] = {}


def state(max_age_s: float = 0.0) -> tuple[int, int]:
    """(through, now) in ns on the server's clock: every span inserted up to `through` is settled
    (0 before the first pass). With `max_age_s`, a state read at most that long ago in this process
    is reused (`now` moved on by the time since)."""
    state_table = schema.table(schema.SETTLE_STATE)
    seen = _state_seen.get(state_table)
    if max_age_s and seen and (age := time.monotonic() - seen[0]) <= max_age_s:
        return seen[1], seen[2] + int(age * 1e9)
    row = run_one(
        Sql(
            "SELECT toUnixTimestamp64Nano(max(Through)) AS t, toUnixTimestamp64Nano(now64(3)) AS now",
            f" FROM {schema.table(schema.SETTLE_STATE)} WHERE Name = {{name:String}}",
            name=STATE_NAME,
        ),
        tag="settle.state",
    )
    through, now = int(row.get("t") or 0), int(row.get("now") or 0)
    _state_seen[state_table] = (time.monotonic(), through, now)
    return through, now


def waiting_spans(through: int, project_ids: list[str] | None = None) -> int:
    """Spans inserted after `through` (ns): what the next pass has to settle; of `project_ids`
    only when given (a member sees how much of their own traffic waits, not other projects').
    With SETTLE_PARTITIONS > 1 a span waits when it is newer than its own partition's `Through`
    (or `through` when that is later: a partition without a row yet), not the lowest of them."""
    where = Sql(" WHERE InsertedAt > fromUnixTimestamp64Nano({after:Int64})", after=through)
    count = len(partitions())
    if count > 1:
        throughs = partition_throughs(count)
        where = Sql(
            " WHERE InsertedAt > fromUnixTimestamp64Nano(",
            "arrayElement({throughs:Array(Int64)}, toUInt32(cityHash64(ProjectId) % {p_count:UInt64}) + 1))",
            throughs=[max(t, through) for t in throughs],
            p_count=count,
        )
    if project_ids is not None:
        where = where + Sql(" AND ProjectId IN {projects:Array(String)}", projects=list(project_ids))
    row = run_one(Sql(f"SELECT count() AS n FROM {schema.table(schema.SPANS)}") + where, tag="settle.waiting")
    return int(row.get("n") or 0)


# --- partitions: several settlers, each settling the projects of its own -----------------------------


@dataclass(frozen=True)
class Partition:
    """The projects with `cityHash64(ProjectId) % count = index` (index from 0): one settler's share.
    Cross-trace matches never leave a project (`facts.match_candidates` takes one), so settling
    partitions apart applies the counting rules exactly as one settler does. `ALL` (1 of 1) is every
    project under today's names: the lease `settle` and the state row `facts`."""

    index: int = 0
    count: int = 1

    @property
    def label(self) -> str:
        return f"{self.index + 1}of{self.count}"

    @property
    def state_name(self) -> str:
        """Its row in otel_settle_state: "facts" for ALL, "facts/1of2" ..."""
        return STATE_NAME if self.count == 1 else f"{STATE_NAME}/{self.label}"

    def where(self) -> Sql:
        """` AND` the project is in this partition (nothing for ALL)."""
        if self.count == 1:
            return Sql("")
        return Sql(
            " AND cityHash64(ProjectId) % {p_count:UInt64} = {p_index:UInt64}", p_count=self.count, p_index=self.index
        )


ALL = Partition()


def partitions() -> list[Partition]:
    """The settlers' partitions by settings.SETTLE_PARTITIONS; [ALL] in embedded mode, where one
    process settles whatever the setting says (it alone may open the data folder)."""
    count = settings.SETTLE_PARTITIONS if settings.CLICKHOUSE["HOST"] else 1
    return [Partition(i, count) for i in range(count)] if count > 1 else [ALL]


def _throughs(names: list[str]) -> tuple[dict[str, int], int]:
    rows = run(
        Sql(
            "SELECT Name AS name, toUnixTimestamp64Nano(max(Through)) AS t,",
            " any(toUnixTimestamp64Nano(now64(3))) AS now",
            f" FROM {schema.table(schema.SETTLE_STATE)} WHERE Name IN {{names:Array(String)}} GROUP BY Name",
            names=names,
        ),
        tag="settle.state",
    )
    now = max((int(r["now"]) for r in rows), default=0)
    if not now:
        now = int(run_one(Sql("SELECT toUnixTimestamp64Nano(now64(3)) AS now"), tag="settle.now")["now"])
    return {r["name"]: int(r["t"] or 0) for r in rows}, now


def partition_state(partition: Partition) -> tuple[int, int]:
    """(through, now) in ns for one partition's settler: its own `Through` or the low-water mark
    (`STATE_NAME`: where every settler had got to, however many there were), the later, so a
    partition's first pass, or its first after N changed back, re-reads nothing settled. ALL:
    `state()`."""
    if partition.count == 1:
        return state()
    found, now = _throughs([partition.state_name, STATE_NAME])
    return max(found.get(partition.state_name, 0), found.get(STATE_NAME, 0)), now


def partition_throughs(count: int) -> list[int]:
    """Each partition's `Through` (ns; 0 where it has none), by index."""
    names = [Partition(i, count).state_name for i in range(count)]
    found, _now = _throughs(names)
    return [found.get(name, 0) for name in names]


def low_water(count: int) -> tuple[int, int]:
    """(lowest partition `Through`, the recorded low-water mark) in ns, with `count` partitions; a
    partition's `Through` is read as in `partition_state` (at least the recorded mark)."""
    names = [Partition(i, count).state_name for i in range(count)]
    found, _now = _throughs([*names, STATE_NAME])
    recorded = found.get(STATE_NAME, 0)
    return min(max(found.get(name, 0), recorded) for name in names), recorded


def forget_state() -> None:
    """Read the state afresh next time (after a pass in this process, or in tests)."""
    _state_seen.clear()


def unsettled_after_ns(through: int) -> int:
    """Spans inserted after this instant (ns) may not be settled yet."""
    return max(through - OVERLAP_NS, 0) if through else 0


def bounds(traces: Sql) -> tuple[int, int] | None:
    """[lo, hi] (ns) holding every span start of the traces, from the exporter's TraceId lookup
    table (whole seconds), or None when it knows none of them."""
    row = run_one(
        Sql(
            "SELECT count() AS n, toUnixTimestamp(min(Start)) AS lo, toUnixTimestamp(max(End)) AS hi",
            f" FROM {schema.table(schema.LOOKUP)} WHERE TraceId IN (",
            traces,
            ")",
        ),
        tag="settle.bounds",
    )
    if not int(row.get("n") or 0):
        return None
    return int(row["lo"]) * 10**9, (int(row["hi"]) + 1) * 10**9


def build_scope(project_id: str, traces: Sql, agent_names: tuple[str, ...]) -> facts.Scope | None:
    """The scope of `traces`, widened by the traces their cross-trace matches touch, with matches and
    prices resolved (the same for a settle pass and for a page's live part)."""
    span = bounds(traces)
    if span is None:
        return None
    lo, hi = span
    pairs = run(facts.match_candidates(project_id, lo, hi), tag="facts.match_candidates")
    matches = facts.assign(pairs)
    extra = sorted({p["ct"] for p in pairs} | {p["gt"] for p in pairs})
    if extra:
        traces = Sql(traces, " UNION DISTINCT SELECT arrayJoin({scope_extra:Array(String)})", scope_extra=extra)
        lo, hi = bounds(traces) or (lo, hi)
    models = run(
        Sql(
            f"SELECT DISTINCT Model AS model, Provider AS provider FROM {schema.table(schema.SPANS)}",
            " WHERE ProjectId = {project:String} AND IsLLMCall = 1",
            " AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp <= fromUnixTimestamp64Nano({hi:Int64})",
            " AND TraceId IN (",
            traces,
            ")",
            project=project_id,
            lo=lo,
            hi=hi,
        ),
        tag="facts.models",
    )
    prices = PriceBook.for_pairs(project_id, [(m["model"], m["provider"]) for m in models])
    return facts.Scope(project_id, traces, lo, hi, agent_names, prices, matches)
