"""The traces a page computes live, when the settler is behind: those with spans (or scores, which
their runs carry) inserted after its last pass.

Their facts are the counting rules applied now (monitoring/semantics/facts.py) in place of what is
stored for them; see `sources`. While the settler keeps up (a pass less than SETTLE_FRESH_SECONDS ago) pages
read settled facts only: they lag the newest span by a pass (about a second), which costs less
than planning the rules on every question. When the settler has never run, every trace of the
project is live (exact, only slower), which the Health page reports.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from django.conf import settings

from monitoring.models import Project
from monitoring.queries.filter import SpanFilter
from monitoring.semantics import facts, scoping
from monitoring.store import clickhouse, schema
from monitoring.store.sql import Sql, run_one

# One page asks several questions; they share the scope while no new span arrives.
_cache: dict[tuple, facts.Scope | None] = {}
_lock = threading.Lock()
STATE_MAX_AGE_S = 0.5  # the settler's progress, read once per page rather than per question
# Set while questions a page decided to ask at once run (monitoring/queries/parallel.py).
_settled_only = threading.local()


def settled_only(call):
    """`call`, made to read settled facts only (no live part, whatever the settler does
    meanwhile): a page that found the settler keeping up asks its questions at once, and a question
    must not decide otherwise halfway through the page, in a pool thread (a scope reads the
    project's rules and prices through the ORM, which pool threads must not use)."""

    def run():
        before = getattr(_settled_only, "on", False)
        _settled_only.on = True
        try:
            return call()
        finally:
            _settled_only.on = before

    return run


def keeps_up(flt: SpanFilter) -> bool:
    """Whether the filter's questions read settled facts only: decided for this thread
    (settled_only), or no trace of the project waits for the settler. Reads the ORM when it asks."""
    return getattr(_settled_only, "on", False) or scope(flt) is None


def settler_keeps_up() -> bool:
    """Whether the settler's last pass is less than SETTLE_FRESH_SECONDS old, so pages read settled
    facts only (and an answer holds until a pass changes the project's data version)."""
    through, now = scoping.state(max_age_s=STATE_MAX_AGE_S)
    return bool(through) and now - through < settings.SETTLE_FRESH_SECONDS * 1e9


def _inserted(table: str, column: str = "TraceId") -> str:
    return (
        f"SELECT {column} FROM {schema.table(table)} WHERE ProjectId = {{project:String}}"
        " AND InsertedAt > fromUnixTimestamp64Nano({live_after:Int64})"
    )


def _touched(project_id: str, after_ns: int) -> Sql:
    """The traces with spans, or scores (their runs carry them), inserted after `after_ns`."""
    return Sql(
        f"SELECT DISTINCT TraceId FROM ({_inserted(schema.SPANS)} UNION ALL {_inserted(schema.SCORES)})",
        " WHERE TraceId != ''",
        project=project_id,
        live_after=after_ns,
    )


def scope(flt: SpanFilter) -> facts.Scope | None:
    """The unsettled traces of the filter's project (with their matches and prices), or None when
    there are none or the settler is keeping up."""
    through, now = scoping.state(max_age_s=STATE_MAX_AGE_S)
    if through and now - through < settings.SETTLE_FRESH_SECONDS * 1e9:
        return None
    after = scoping.unsettled_after_ns(through)
    at = "toUnixTimestamp64Milli(InsertedAt) AS at"
    mark = run_one(
        Sql(
            f"SELECT count() AS n, max(at) AS newest FROM ({_inserted(schema.SPANS, at)}",
            f" UNION ALL {_inserted(schema.SCORES, at)})",
            project=flt.project_id,
            live_after=after,
        ),
        tag="live.touched",
    )
    if not int(mark.get("n") or 0):
        return None
    # A scope holds the project's prices: a price or rules change must not reuse it.
    rules = (
        Project.objects.filter(pk=flt.project_id).values_list("facts_version", flat=True).first(),
        facts.rules_version(),
    )
    cache_key = (flt.project_id, after, flt.agent_names, rules, int(mark["n"]), int(mark["newest"]))
    with _lock:
        if cache_key in _cache:
            return _cache[cache_key]
    found = scoping.build_scope(flt.project_id, _touched(flt.project_id, after), flt.agent_names)
    with _lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache.setdefault(cache_key, found)
        return _cache[cache_key]


@dataclass(frozen=True)
class Live:
    """The unsettled traces (`scope.traces`, a subquery) and their facts, computed now into this
    thread's temporary tables (`tables.calls`, `.runs`, `.edges`)."""

    scope: facts.Scope
    tables: facts.Tables


_materialized = threading.local()
PREFIX = "apm_live_"


def facts_for(flt: SpanFilter) -> Live | None:
    """The live part of a question (None when the settler keeps up or nothing is unsettled). The
    counting rules run once per thread while the unsettled spans stay the same."""
    if getattr(_settled_only, "on", False):
        return None
    found = scope(flt)
    if found is None:
        return None
    # Temporary tables live in this thread's session: a new connection (after an outage, a new
    # backend) starts without them. The scope and session are held, not their id()s: a freed
    # scope's id is reused by the next one, which then read the freed one's tables (a flaky undercount).
    key = (found, clickhouse.session())
    held = getattr(_materialized, "key", None)
    if held is None or held[0] is not key[0] or held[1] is not key[1]:
        _materialized.key = None
        facts.materialize(found, PREFIX)
        _materialized.key = key
    return Live(found, facts.Tables(PREFIX))


def forget() -> None:
    """Drop cached scopes (tests that write spans and ask again within a second)."""
    with _lock:
        _cache.clear()
    scoping.forget_state()
