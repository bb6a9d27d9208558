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
LLM_CALLS = "otel_llm_calls"
LLM_CALLS_MV = "otel_llm_calls_mv"

# The exporter's INSERT list (OTEL.md §1), in order.
TRACE_COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)
NANOS_COLUMNS = ("Timestamp", "Events.Timestamp")


def table(name: str = TRACES) -> str:
    """A fully qualified name for one of our tables (the database name is validated at start-up)."""
    return f"`{clickhouse.database()}`.`{name}`"


def _ttl(column: str, days: int) -> str:
    return f"TTL toDateTime({column}) + toIntervalDay({int(days)})" if days > 0 else ""


def _traces_ddl(ttl_days: int, name: str = TRACES, engine: str = "MergeTree", on_cluster: str = "") -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table(name)}{on_cluster} (
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
) ENGINE = {engine}
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
{_ttl("Timestamp", ttl_days)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""


def _lookup_ddl(ttl_days: int, name: str = LOOKUP, engine: str = "MergeTree", on_cluster: str = "") -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table(name)}{on_cluster} (
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(Delta, ZSTD(1)),
    End DateTime CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = {engine}
PARTITION BY toDate(Start)
ORDER BY (TraceId, Start)
{_ttl("Start", ttl_days)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""


def _lookup_mv_ddl(source: str = TRACES, target: str = LOOKUP, on_cluster: str = "") -> str:
    return f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {table(LOOKUP_MV)}{on_cluster} TO {table(target)}
AS SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End
FROM {table(source)}
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


def _tool_step_expr() -> str:
    s = semconv
    return (
        "toUInt8("
        f"{_attr('gen_ai.operation.name')} IN ({_quoted(s.GENAI_TOOL_OPERATIONS)})"
        f" OR {_attr('traceloop.span.kind')} IN ({_quoted(s.TRACELOOP_TOOL_KINDS)})"
        f" OR {_attr('openinference.span.kind')} IN ({_quoted(s.OPENINFERENCE_TOOL_KINDS)})"
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
        ("IsToolStep", "UInt8", _tool_step_expr()),
        ("IsError", "UInt8", f"toUInt8(StatusCode IN ({_quoted(s.ERROR_STATUS)}))"),
        ("EndUser", "String", _first(s.USER_KEYS)),
    ]


def _derived_columns_ddl(comments: dict[str, str], name: str = TRACES, on_cluster: str = "") -> list[str]:
    """ADD what is missing; MODIFY a column whose definition changed since it was added.

    The definition's hash rides in the column comment, so a new release's better attribute rules
    reach new rows without a heavy mutation (old parts keep the values they were written with).
    """
    target = name
    statements = []
    for name, type_, expr in derived_columns():
        stamp = "apm:" + hashlib.sha256(f"{type_} {expr}".encode()).hexdigest()[:16]
        definition = f"{name} {type_} MATERIALIZED {expr} COMMENT '{stamp}'"
        if name not in comments:
            statements.append(f"ALTER TABLE {table(target)}{on_cluster} ADD COLUMN IF NOT EXISTS {definition}")
        elif comments[name] != stamp:
            statements.append(f"ALTER TABLE {table(target)}{on_cluster} MODIFY COLUMN {definition}")
    return statements


def _project_index_ddl(name: str = TRACES, on_cluster: str = "") -> str:
    # Data is ordered by service and name, not project: a set index lets a project skip granules.
    return f"ALTER TABLE {table(name)}{on_cluster} ADD INDEX IF NOT EXISTS idx_project ProjectId TYPE set(100) GRANULARITY 4"


# --- LLM calls, narrow and ordered by project and time -----------------------------------------
# One row per LLM-call span, filled by a materialized view on every insert (ours or a collector's).
# The main table is ordered by service and span name, so a project's window reads most of it; this
# table is ordered by (ProjectId, Timestamp) and holds ~1 span in 7, so the Overview's and
# Analytics' LLM questions (and the proxy de-duplication join) read a few granules instead.

LLM_CALL_COLUMNS = (
    "ProjectId",
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "SpanName",
    "ServiceName",
    "ScopeName",
    "Model",
    "InputTokens",
    "OutputTokens",
    "ReportedCost",
    "Duration",
    "IsError",
    "EndUser",
)


def _llm_calls_ddl(ttl_days: int, name: str = LLM_CALLS, engine: str = "MergeTree", on_cluster: str = "") -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table(name)}{on_cluster} (
    ProjectId LowCardinality(String),
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    SpanName LowCardinality(String),
    ServiceName LowCardinality(String),
    ScopeName LowCardinality(String),
    Gateway UInt8 MATERIALIZED ScopeName = '{semconv.LITELLM_SCOPE}',
    TraceKey UInt64 MATERIALIZED cityHash64(TraceId),  -- integer join keys: cheaper than the strings
    CallKey UInt64 MATERIALIZED cityHash64(TraceId, SpanId),
    Model LowCardinality(String),
    InputTokens UInt64,
    OutputTokens UInt64,
    ReportedCost Float64,
    Duration UInt64,
    IsError UInt8,
    EndUser String CODEC(ZSTD(1))
) ENGINE = {engine}
PARTITION BY toDate(Timestamp)
ORDER BY (ProjectId, Timestamp)
{_ttl("Timestamp", ttl_days)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""


def _llm_calls_select(source: str = TRACES) -> str:
    return f"SELECT {', '.join(LLM_CALL_COLUMNS)} FROM {table(source)} WHERE IsLLMCall"


def _llm_calls_mv_ddl(source: str = TRACES, target: str = LLM_CALLS, on_cluster: str = "") -> str:
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table(LLM_CALLS_MV)}{on_cluster} TO {table(target)} AS {_llm_calls_select(source)}"


def _exists(name: str) -> bool:
    return bool(existing_columns(name))


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
    if not _exists(LLM_CALLS):
        # The view first, then the spans already stored (a batch landing in between may be counted twice).
        later += [
            _llm_calls_ddl(days),
            _llm_calls_mv_ddl(),
            f"INSERT INTO {table(LLM_CALLS)} ({', '.join(LLM_CALL_COLUMNS)}) {_llm_calls_select()}",
        ]
    for sql in later:
        clickhouse.command(sql, tag="schema.ensure")
    return statements + later


# --- a ClickHouse cluster ---------------------------------------------------------------------
# Replicated `_local` tables on every node, and Distributed tables under the names the portal and
# the collector use, sharded by trace id (a trace stays on one shard, so trace queries stay local).

LOCAL_SUFFIX = "_local"


def _identifier(value: str) -> str:
    if not value or not value.replace("_", "a").replace("-", "a").isalnum() or not value.isascii():
        raise ValueError(f"not a plain cluster name: {value!r}")
    return value


def cluster_statements(cluster: str, ttl_days: int) -> list[str]:
    """The whole schema for a cluster, in order. Run once; every statement is IF NOT EXISTS."""
    on = f" ON CLUSTER `{_identifier(cluster)}`"
    db = clickhouse.database()
    traces_local, lookup_local = TRACES + LOCAL_SUFFIX, LOOKUP + LOCAL_SUFFIX

    def replicated(name: str) -> str:
        return f"ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{db}/{name}', '{{replica}}')"

    def distributed(name: str, local: str, key: str) -> str:
        return f"CREATE TABLE IF NOT EXISTS {table(name)}{on} AS {table(local)} ENGINE = Distributed(`{cluster}`, `{db}`, `{local}`, {key})"

    derived = _derived_columns_ddl({}, traces_local, on)
    # The Distributed table carries the same derived columns so reads through it can name them.
    derived += [sql.replace(table(traces_local), table(TRACES)) for sql in derived]
    return [
        f"CREATE DATABASE IF NOT EXISTS `{db}`{on}",
        _traces_ddl(ttl_days, traces_local, replicated(traces_local), on),
        _lookup_ddl(ttl_days, lookup_local, replicated(lookup_local), on),
        _lookup_mv_ddl(traces_local, lookup_local, on),
        _llm_calls_ddl(ttl_days, LLM_CALLS + LOCAL_SUFFIX, replicated(LLM_CALLS + LOCAL_SUFFIX), on),
        *derived[: len(derived) // 2],
        _project_index_ddl(traces_local, on),
        _llm_calls_mv_ddl(traces_local, LLM_CALLS + LOCAL_SUFFIX, on),
        distributed(TRACES, traces_local, "cityHash64(TraceId)"),
        distributed(LOOKUP, lookup_local, "cityHash64(TraceId)"),
        distributed(LLM_CALLS, LLM_CALLS + LOCAL_SUFFIX, "cityHash64(TraceId)"),
        *derived[len(derived) // 2 :],
    ]


def ensure_cluster_schema(cluster: str, ttl_days: int | None = None) -> list[str]:
    days = settings.CLICKHOUSE["TTL_DAYS"] if ttl_days is None else ttl_days
    statements = cluster_statements(cluster, days)
    for sql in statements:
        clickhouse.command(sql, tag="schema.cluster")
    return statements


# --- retention --------------------------------------------------------------------------------


def set_retention(days: int) -> list[str]:
    """Change the TTL of the traces, lookup and LLM-call tables. Cheap: with ttl_only_drop_parts whole daily
    parts are dropped as they expire; nothing is rewritten now (unlike the guide's DELETE mutation)."""
    statements = []
    for name, column in ((TRACES, "Timestamp"), (LOOKUP, "Start"), (LLM_CALLS, "Timestamp")):
        ttl = _ttl(column, days) if days > 0 else "REMOVE TTL"
        verb = "MODIFY " + ttl if days > 0 else ttl
        statements.append(f"ALTER TABLE {table(name)} {verb} SETTINGS materialize_ttl_after_modify = 0")
    for sql in statements:
        clickhouse.command(sql, tag="schema.retention")
    return statements


def current_ttl(name: str = TRACES) -> str:
    """The table's TTL clause as ClickHouse reports it, '' when none."""
    row = clickhouse.query_one(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": clickhouse.database(), "t": name},
        tag="schema.ttl",
    )
    engine = row.get("engine_full", "")
    if " TTL " not in engine:
        return ""
    return engine.split(" TTL ", 1)[1].split(" SETTINGS ", 1)[0].strip()


def partitions(name: str = TRACES) -> list[dict]:
    """Active partitions with their rows and bytes on disk, newest first."""
    return clickhouse.query(
        "SELECT partition, sum(rows) AS rows, sum(bytes_on_disk) AS bytes, count() AS parts,"
        " min(min_time) AS oldest, max(max_time) AS newest"
        " FROM system.parts WHERE database = {db:String} AND table = {t:String} AND active"
        " GROUP BY partition ORDER BY partition DESC",
        {"db": clickhouse.database(), "t": name},
        tag="schema.partitions",
    )


def existing_columns(name: str = TRACES) -> dict[str, dict[str, str]]:
    """name -> {type, default_kind, comment} of a table's columns, empty if it does not exist."""
    rows = clickhouse.query(
        "SELECT name, type, default_kind, comment FROM system.columns"
        " WHERE database = {db:String} AND table = {t:String}",
        {"db": clickhouse.database(), "t": name},
        tag="schema.columns",
    )
    return {row["name"]: row for row in rows}
