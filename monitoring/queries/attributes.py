"""Filters on any span or resource attribute (`attr=<key>:<op>[:<value>]`, issue 24) and the filter
bar's key picker, read from `otel_span_attrs` (one row per span and short attribute, ordered by
project, key and value) and `otel_attr_keys` (its keys per day with their commonest values); both
are fed at ingest (monitoring/store/schema.py).

How each operator matches a span (a list attribute such as tags: any of its elements):
`eq` the value is exactly it; `ne` the key is missing or no value equals it; `contains` a value
holds it, ignoring case; `exists` / `missing` the key is there or not; `gt` / `lt` a value read as
a number is above / below it (a value that is no number never matches). A key names its kin too
(semantics/semconv.py ATTRIBUTE_KIN: `user.id` finds `langfuse.user.id`, `tag.tags` finds
`langfuse.trace.tags`), and `metadata.<k>` is entry <k> of OpenInference's `metadata` JSON or of
Langfuse's `langfuse.trace.metadata.<k>` / `langfuse.observation.metadata.<k>`.

A call (a span) matches on its own span's and resource's attributes; a run when any of its spans
matches (`ne` and `missing`: when none of its spans holds that value or key). Attributes longer
than schema.ATTR_VALUE_CHARS are not kept for filtering: message text is full-text search's.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitoring.queries.filter import AttrCondition, SpanFilter
from monitoring.semantics import semconv
from monitoring.store import schema
from monitoring.store.sql import Sql, run, to_nanos

# A run's spans start at or after the run and end within a day of it for every SDK seen: a run
# starting in the window is matched on its spans up to a day past the window's end.
RUN_SPANS_AFTER_NS = 24 * 3600 * 10**9
PICKER_KEYS = 300


def kin(key: str) -> tuple[str, ...]:
    """The keys a filter on `key` reads: itself and its other SDKs' spellings (the module's note)."""
    for family in semconv.ATTRIBUTE_KIN:
        if key in family:
            return tuple(dict.fromkeys((key, *family)))
    for prefix in semconv.METADATA_PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            entry = key[len(prefix) :]
            return tuple(dict.fromkeys((key, *(p + entry for p in semconv.METADATA_PREFIXES))))
    return (key,)


def _value_test(condition: AttrCondition, q: str) -> str:
    if condition.op in ("eq", "ne"):
        return f" AND Value = {{{q}v:String}}"
    if condition.op == "contains":
        return f" AND positionCaseInsensitiveUTF8(Value, {{{q}v:String}}) > 0"
    if condition.op in ("gt", "lt"):
        return f" AND toFloat64OrNull(Value) {'>' if condition.op == 'gt' else '<'} {{{q}n:Float64}}"
    return ""  # exists, missing


def conditions(found: tuple[AttrCondition, ...], level: str, p: str = "", target: str = "") -> tuple[list[str], dict]:
    """SQL conditions (and their parameters, named with the prefix `p`) keeping the rows whose span
    (`level="span"`: rows with TraceId and SpanId) or run (`"run"`: by TraceId) satisfies every
    condition. The statement binds `{project:String}` itself and the time bounds of the attributes
    read, `{<p>at_lo:Int64}` / `{<p>at_hi:Int64}` (ns), with `bounds()`. `target`: the rows' own
    spelling of that key when it is not TraceId / (TraceId, SpanId)."""
    key = "TraceId" if level == "run" else "(TraceId, SpanId)"
    out: list[str] = []
    params: dict = {}
    for i, condition in enumerate(found):
        q = f"{p}at{i}_"
        matching = (
            f"SELECT {key} FROM {schema.table(schema.ATTRS)} WHERE ProjectId = {{project:String}}"
            f" AND Key IN {{{q}keys:Array(String)}}"
            f" AND Timestamp >= fromUnixTimestamp64Nano({{{p}at_lo:Int64}})"
            f" AND Timestamp < fromUnixTimestamp64Nano({{{p}at_hi:Int64}}){_value_test(condition, q)}"
        )
        negated = condition.op in ("ne", "missing")
        out.append(f"{target or key} {'NOT IN' if negated else 'IN'} ({matching})")
        params |= {f"{q}keys": list(kin(condition.key)), f"{q}v": condition.value, f"{q}n": condition.number}
    return out, params


def bounds(start_ns: int, end_ns: int, level: str, p: str = "") -> dict:
    """The time bounds of conditions(): spans of [start, end) ns, a run's up to a day later."""
    return {f"{p}at_lo": start_ns, f"{p}at_hi": end_ns + (RUN_SPANS_AFTER_NS if level == "run" else 0)}


def for_filter(
    flt: SpanFilter, level: str, p: str = "", start_ns: int = 0, end_ns: int = 0, target: str = ""
) -> tuple[list[str], dict]:
    """conditions() of the filter's `attrs` with their bounds: the filter's window unless
    [start_ns, end_ns) says otherwise (a list's stretch, several windows at once)."""
    if not flt.attrs:
        return [], {}
    found, params = conditions(flt.attrs, level, p, target)
    start = start_ns or to_nanos(flt.window.start)
    end = end_ns or to_nanos(flt.window.end)
    return found, params | bounds(start, end, level, p)


# --- the key picker --------------------------------------------------------------------------------


@dataclass
class AttributeKey:
    """A key seen on the project's spans in the window's days: `spans` rows holding it (an array's
    elements count each), `resource` when it is a resource attribute, its commonest `values`."""

    key: str
    spans: int
    resource: bool
    values: list[str]


def picker(flt: SpanFilter, limit: int = PICKER_KEYS) -> list[AttributeKey]:
    """The project's attribute keys over the window's days (UTC), commonest first, at most `limit`,
    each with up to schema.ATTR_TOP_VALUES common values (approximate: ClickHouse's topK)."""
    rows = run(
        Sql(
            "SELECT Key, max(Resource) AS resource, sum(Spans) AS spans,",
            f" topKMerge({schema.ATTR_TOP_VALUES})(TopValues) AS top_values",
            f" FROM {schema.table(schema.ATTR_KEYS)} WHERE ProjectId = {{project:String}}",
            " AND Day >= toDate(fromUnixTimestamp64Nano({lo:Int64})) AND Day <= toDate(fromUnixTimestamp64Nano({hi:Int64}))",
            " GROUP BY Key ORDER BY spans DESC, Key LIMIT {limit:UInt32}",
            project=flt.project_id,
            lo=to_nanos(flt.window.start),
            hi=to_nanos(flt.window.end),
            limit=limit,
        ),
        tag="attributes.picker",
    )
    return [
        AttributeKey(r["Key"], int(r["spans"]), bool(int(r["resource"])), [v for v in r["top_values"] if v != ""])
        for r in rows
    ]
