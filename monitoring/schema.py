"""DDL: the OTel Collector's own `otel_traces` table, its TraceId lookup, and our derived columns.

`otel_traces` is created exactly as the collector's ClickHouse exporter creates it, so a stock
collector and our receiver write the same rows into it. On top we add MATERIALIZED columns for what
the dashboard reads all the time: they are computed at insert, are never in an exporter's INSERT
list, and so are safe on a table a collector already made. Nothing here drops data.
"""

from __future__ import annotations

import hashlib

from django.conf import settings

from monitoring import clickhouse, semconv

TRACES = "otel_traces"
LOOKUP = "otel_traces_trace_id_ts"
LOOKUP_MV = "otel_traces_trace_id_ts_mv"

# The exporter's INSERT list (OTEL.md §1), in order.
TRACE_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
    "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration",
    "StatusCode", "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes",
)  # fmt: skip
NANOS_COLUMNS = ("Timestamp", "Events.Timestamp")


def table(name: str = TRACES) -> str:
    """A fully qualified name for one of our tables (the database name is validated at start-up)."""
    return f"`{clickhouse.database()}`.`{name}`"


def _ttl(column: str, days: int) -> str:
    return f"TTL toDateTime({column}) + toIntervalDay({int(days)})" if days > 0 else ""


def _traces_ddl(ttl_days: int) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table()} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
{_ttl("Timestamp", ttl_days)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""


def _lookup_ddl(ttl_days: int) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table(LOOKUP)} (
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(Delta, ZSTD(1)),
    End DateTime CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Start)
ORDER BY (TraceId, Start)
{_ttl("Start", ttl_days)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""


def _lookup_mv_ddl() -> str:
    return f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {table(LOOKUP_MV)} TO {table(LOOKUP)}
AS SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End
FROM {table()}
WHERE TraceId != ''
GROUP BY TraceId
"""


# --- derived columns --------------------------------------------------------------------------


def _quoted(values) -> str:
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)


def _attr(key: str) -> str:
    return f"SpanAttributes[{_quoted([key])}]"


def _first(keys) -> str:
    """The first non-empty attribute among `keys`, else ''."""
    return "coalesce(" + ", ".join(f"nullIf({_attr(k)}, '')" for k in keys) + ", '')"


def _any_key(keys) -> str:
    return " OR ".join(f"mapContains(SpanAttributes, {_quoted([k])})" for k in keys)


def _llm_call_expr() -> str:
    s = semconv
    litellm = f"ScopeName = {_quoted([s.LITELLM_SCOPE])}"
    litellm_call = f"{litellm} AND ({_any_key(s.LITELLM_CALL_MARKER_KEYS)})"
    other_dialects = (
        f"{_attr('gen_ai.operation.name')} IN ({_quoted(s.GENAI_LLM_OPERATIONS)})"
        f" OR {_attr('llm.request.type')} IN ({_quoted(s.OPENLLMETRY_LLM_REQUEST_TYPES)})"
        f" OR {_attr('openinference.span.kind')} IN ({_quoted(s.OPENINFERENCE_LLM_KINDS)})"
    )
    return f"toUInt8(({litellm_call}) OR (NOT ({litellm}) AND ({other_dialects})))"


def _agent_step_expr() -> str:
    s = semconv
    return (
        "toUInt8("
        f"{_attr('gen_ai.operation.name')} IN ({_quoted(s.GENAI_AGENT_OPERATIONS)})"
        f" OR {_attr('traceloop.span.kind')} IN ({_quoted(s.TRACELOOP_AGENT_KINDS)})"
        f" OR {_attr('openinference.span.kind')} IN ({_quoted(s.OPENINFERENCE_AGENT_KINDS)})"
        f" OR (startsWith(ServiceName, {_quoted([s.AGENT_SERVICE_PREFIX])}) AND ParentSpanId = '')"
        ")"
    )


def derived_columns() -> list[tuple[str, str, str]]:
    """(name, type, MATERIALIZED expression) for every column we add to otel_traces."""
    s = semconv
    return [
        ("ProjectId", "LowCardinality(String)", "ResourceAttributes['project_id']"),
        ("Model", "LowCardinality(String)", _first(s.MODEL_KEYS)),
        ("InputTokens", "UInt64", f"toUInt64OrZero({_first(s.INPUT_TOKEN_KEYS)})"),
        ("OutputTokens", "UInt64", f"toUInt64OrZero({_first(s.OUTPUT_TOKEN_KEYS)})"),
        ("ReportedCost", "Float64", f"toFloat64OrZero({_first(s.COST_KEYS)})"),
        ("IsLLMCall", "UInt8", _llm_call_expr()),
        ("IsAgentStep", "UInt8", _agent_step_expr()),
        ("IsError", "UInt8", f"toUInt8(StatusCode IN ({_quoted(s.ERROR_STATUS)}))"),
        ("EndUser", "String", _first(s.USER_KEYS)),
    ]


def _derived_columns_ddl(comments: dict[str, str]) -> list[str]:
    """ADD what is missing; MODIFY a column whose definition changed since it was added.

    The definition's hash rides in the column comment, so a new release's better attribute rules
    reach new rows without a heavy mutation (old parts keep the values they were written with).
    """
    statements = []
    for name, type_, expr in derived_columns():
        stamp = "apm:" + hashlib.sha256(f"{type_} {expr}".encode()).hexdigest()[:16]
        definition = f"{name} {type_} MATERIALIZED {expr} COMMENT '{stamp}'"
        if name not in comments:
            statements.append(f"ALTER TABLE {table()} ADD COLUMN IF NOT EXISTS {definition}")
        elif comments[name] != stamp:
            statements.append(f"ALTER TABLE {table()} MODIFY COLUMN {definition}")
    return statements


def _project_index_ddl() -> str:
    # Data is ordered by service and name, not project: a set index lets a project skip granules.
    return f"ALTER TABLE {table()} ADD INDEX IF NOT EXISTS idx_project ProjectId TYPE set(100) GRANULARITY 4"


def ensure_schema(ttl_days: int | None = None) -> list[str]:
    """Create or complete the schema; idempotent. Returns the statements it ran."""
    days = settings.CLICKHOUSE["TTL_DAYS"] if ttl_days is None else ttl_days
    statements = [
        f"CREATE DATABASE IF NOT EXISTS `{clickhouse.database()}`",
        _traces_ddl(days),
        _lookup_ddl(days),
        _lookup_mv_ddl(),
    ]
    for sql in statements:
        clickhouse.command(sql, tag="schema.ensure")
    comments = {name: column["comment"] for name, column in existing_columns().items()}
    later = [*_derived_columns_ddl(comments), _project_index_ddl()]
    for sql in later:
        clickhouse.command(sql, tag="schema.ensure")
    return statements + later


def existing_columns(name: str = TRACES) -> dict[str, dict[str, str]]:
    """name -> {type, default_kind, comment} of a table's columns, empty if it does not exist."""
    rows = clickhouse.query(
        "SELECT name, type, default_kind, comment FROM system.columns"
        " WHERE database = {db:String} AND table = {t:String}",
        {"db": clickhouse.database(), "t": name},
        tag="schema.columns",
    )
    return {row["name"]: row for row in rows}
