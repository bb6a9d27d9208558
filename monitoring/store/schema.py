"""DDL: the OTel Collector's own `otel_traces` table and its TraceId lookup, and what we derive.

`otel_traces` is created exactly as the collector's ClickHouse exporter creates it, so a stock
collector and our receiver write the same rows into it. On top, all safe for a collector that
inserts only the exporter's columns:
- MATERIALIZED columns for what each span means (monitoring/semantics/semconv.py), computed at insert;
- `otel_spans`, every span narrow and ordered by (project, time), filled by a materialized view;
- the settled facts `otel_calls`, `otel_runs`, `otel_run_edges` (written by monitoring/semantics/settle.py
  with the counting rules applied once) and their rollups per 15-minute slice.
Nothing here drops span data.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time

from django.conf import settings

from monitoring.semantics import semconv
from monitoring.store import clickhouse
from monitoring.store.sql import Sql

log = logging.getLogger(__name__)

TRACES = "otel_traces"
LOOKUP = "otel_traces_trace_id_ts"
LOOKUP_MV = "otel_traces_trace_id_ts_mv"
SPANS = "otel_spans"
SPANS_MV = "otel_spans_mv"
CALLS = "otel_calls"  # settled model invocations
RUNS = "otel_runs"  # settled agent runs
EDGES = "otel_run_edges"  # settled Agent Flow Graph edges
CALLS_15M = "otel_calls_15m"
USERS_1H = "otel_calls_users_1h"
RUNS_15M = "otel_runs_15m"
EDGES_15M = "otel_run_edges_15m"
FACETS_1H = "otel_facets_1h"
LATENCY_1H = "otel_calls_latency_1h"
SETTLE_STATE = "otel_settle_state"
LOGS = "otel_logs"  # the collector exporter's log table: GenAI events as OTel log records
SCORES = "otel_scores"  # scores of spans, runs and sessions, from every source
SCORES_FROM_LOGS_MV = "otel_scores_logs_mv"
SCORES_FROM_EVENTS_MV = "otel_scores_events_mv"

# The exporter's INSERT list (exporter/clickhouseexporter's traces table), in order.
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

# The exporter's INSERT list for logs (exporter/clickhouseexporter's logs table), in order; EventName
# is the newer exporters' optional column (LogRecord.event_name), written when the table has it.
LOG_COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "TraceFlags",
    "SeverityText",
    "SeverityNumber",
    "ServiceName",
    "Body",
    "ResourceSchemaUrl",
    "ResourceAttributes",
    "ScopeSchemaUrl",
    "ScopeName",
    "ScopeVersion",
    "ScopeAttributes",
    "LogAttributes",
    "EventName",
)
LOG_NANOS_COLUMNS = ("Timestamp",)


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


# --- derived columns of otel_traces -------------------------------------------------------------
# MATERIALIZED: computed at insert (ours or a collector's), never in an exporter's INSERT list.


def _quoted(values) -> str:
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)


def _attr(key: str) -> str:
    return f"SpanAttributes[{_quoted([key])}]"


def _first(keys) -> str:
    """The first non-empty attribute among `keys`, else ''."""
    return "coalesce(" + ", ".join(f"nullIf({_attr(k)}, '')" for k in keys) + ", '')"


def _count(keys) -> str:
    return f"toUInt64OrZero({_first(semconv.names(keys))})"


def _json_counts(paths) -> list[str]:
    return [f"JSONExtractUInt({_attr(key)}, {_quoted(path)})" for key, path in paths]


def _repr_count(field: str) -> str:
    """A count inside LiteLLM's `metadata.usage_object` (a Python repr: `'field': 12` or `field=12`)."""
    pattern = f"[^a-z_]{field}['\"]?\\s*[:=]\\s*([0-9]+)"
    return f"toUInt64OrZero(extract({_attr(semconv.LITELLM_USAGE_OBJECT)}, {_quoted([pattern])}))"


def _cache_read_expr() -> str:
    s = semconv
    parts = [_count(s.CACHE_READ_TOKENS), *_json_counts(s.CACHE_READ_IN_JSON), _repr_count("cache_read_input_tokens")]
    return f"greatest({', '.join(parts)})"


def _cache_write_expr() -> str:
    s = semconv
    parts = [
        _count(s.CACHE_WRITE_TOKENS),
        *_json_counts(s.CACHE_WRITE_IN_JSON),
        _repr_count("cache_creation_input_tokens"),
    ]
    return f"greatest({', '.join(parts)})"


def _reasoning_expr() -> str:
    return f"greatest({_count(semconv.REASONING_TOKENS)}, {_repr_count('reasoning_tokens')})"


def _exclusive_input_expr() -> str:
    """Whether the span's input-token count leaves its cache reads and writes out (see semconv)."""
    s = semconv
    model = _first(s.names(s.MODEL))
    vercel = (
        f"(ScopeName = {_quoted([s.VERCEL_SCOPE])} AND startsWith(lower({_attr('ai.model.provider')}), 'anthropic')"
        f" AND NOT mapContains(SpanAttributes, {_quoted([s.VERCEL_V6_MARKER])}))"
    )
    strands = f"(ScopeName = {_quoted([s.STRANDS_SCOPE])} AND match({model}, {_quoted([s.EXCLUSIVE_MODEL_PATTERN])}))"
    inconsistent = f"({_cache_read_expr()} + {_cache_write_expr()} > {_count(s.INPUT_TOKENS)})"
    return f"({vercel} OR {strands} OR {inconsistent})"


def _input_tokens_expr() -> str:
    cache = f"({_cache_read_expr()} + {_cache_write_expr()})"
    return f"{_count(semconv.INPUT_TOKENS)} + if({_exclusive_input_expr()}, {cache}, 0)"


def _output_tokens_expr() -> str:
    s = semconv
    adk_thoughts = f"if(ScopeName = {_quoted([s.ADK_SCOPE])}, toUInt64OrZero({_attr(s.ADK_EXCLUSIVE_REASONING)}), 0)"
    return f"{_count(s.OUTPUT_TOKENS)} + {adk_thoughts}"


def _any_key(keys) -> str:
    return " OR ".join(f"mapContains(SpanAttributes, {_quoted([k])})" for k in keys)


def _in(key: str, values) -> str:
    return f"{_attr(key)} IN ({_quoted(values)})"


def _named(pairs) -> str:
    """Spans recognised by (instrumentation scope, span name prefix)."""
    return " OR ".join(
        f"(ScopeName = {_quoted([scope])} AND startsWith(SpanName, {_quoted([name])}))" for scope, name in pairs
    )


def _is_litellm() -> str:
    return f"ScopeName = {_quoted([semconv.LITELLM_SCOPE])}"


def _llm_call_expr() -> str:
    s = semconv
    litellm_call = f"{_is_litellm()} AND ({_any_key(s.LITELLM_CALL_MARKER_KEYS)})"
    other_dialects = " OR ".join(
        [
            _in(s.OPERATION_NAME, s.GENAI_LLM_OPERATIONS),
            _in("llm.request.type", s.OPENLLMETRY_LLM_REQUEST_TYPES),
            _in("openinference.span.kind", s.OPENINFERENCE_LLM_KINDS),
            _in(s.VERCEL_OPERATION_ID, s.VERCEL_LLM_OPERATIONS),
            _named(s.NAMED_LLM_SPANS),
        ]
    )
    # Google ADK 1.23-1.39: generate_content under call_llm repeats the call (2.x sets gen_ai.provider.name).
    adk_repeat = (
        f"(ScopeName = {_quoted([s.ADK_SCOPE])} AND {_attr(s.OPERATION_NAME)} = {_quoted([s.ADK_1X_GENERATE_CONTENT])}"
        " AND NOT mapContains(SpanAttributes, 'gen_ai.provider.name'))"
    )
    return f"toUInt8(({litellm_call}) OR (NOT ({_is_litellm()}) AND ({other_dialects}) AND NOT {adk_repeat}))"


def _embedding_expr() -> str:
    s = semconv
    return (
        "toUInt8("
        f"{_in(s.OPERATION_NAME, s.GENAI_EMBEDDING_OPERATIONS)}"
        f" OR {_in('llm.request.type', ('embedding',))}"
        f" OR {_in('openinference.span.kind', s.OPENINFERENCE_EMBEDDING_KINDS)}"
        f" OR {_in(s.VERCEL_OPERATION_ID, s.VERCEL_EMBEDDING_OPERATIONS)}"
        f" OR ({_is_litellm()} AND {_in('llm.request.type', ('embedding', 'aembedding'))})"
        ")"
    )


def _tool_step_expr() -> str:
    s = semconv
    return (
        "toUInt8("
        f"{_in(s.OPERATION_NAME, s.GENAI_TOOL_OPERATIONS)}"
        f" OR {_in('traceloop.span.kind', s.TRACELOOP_TOOL_KINDS)}"
        f" OR {_in('openinference.span.kind', s.OPENINFERENCE_TOOL_KINDS)}"
        f" OR {_in(s.VERCEL_OPERATION_ID, s.VERCEL_TOOL_OPERATIONS)}"
        f" OR {_named(s.NAMED_TOOL_SPANS)}"
        ")"
    )


def _agent_step_expr() -> str:
    s = semconv
    return (
        "toUInt8("
        f"{_in(s.OPERATION_NAME, s.GENAI_AGENT_OPERATIONS)}"
        f" OR {_in('traceloop.span.kind', s.TRACELOOP_AGENT_KINDS)}"
        f" OR {_in('openinference.span.kind', s.OPENINFERENCE_AGENT_KINDS)}"
        f" OR {_in(s.VERCEL_OPERATION_ID, s.VERCEL_TOOL_OPERATIONS)}"
        f" OR {_named(s.NAMED_AGENT_SPANS + s.NAMED_TOOL_SPANS)}"
        f" OR (startsWith(ServiceName, {_quoted([s.AGENT_SERVICE_PREFIX])}) AND ParentSpanId = '')"
        ")"
    )


def _request_model_expr() -> str:
    s = semconv
    invocation = [
        f"nullIf(JSONExtractString({_attr(key)}, 'model'), '')"
        for key in (s.OPENINFERENCE_INVOCATION_PARAMETERS, s.OPENINFERENCE_EMBEDDING_PARAMETERS)
    ]
    named, answered = _first(s.names(s.REQUEST_MODEL)), _first(s.names(s.REQUEST_MODEL_ANSWERED))
    return f"coalesce(nullIf({named}, ''), {', '.join(invocation)}, {answered})"


def _response_id_expr() -> str:
    s = semconv
    output = _attr(s.OPENINFERENCE_OUTPUT_VALUE)
    from_output = f"if(startsWith({output}, '{{'), JSONExtractString({output}, 'id'), '')"
    return f"coalesce(nullIf({_first(semconv.names(s.RESPONSE_ID))}, ''), {from_output})"


def _provider_expr() -> str:
    # The first key naming a provider (Strands and ADK 1.x name themselves); Vercel's
    # 'openai.responses' / 'anthropic.messages' name the API flavour after the provider.
    s = semconv
    named = (
        "coalesce("
        + ", ".join(
            f"if({_attr(k)} IN ({_quoted(s.NOT_PROVIDERS)}), NULL, nullIf({_attr(k)}, ''))" for k in s.names(s.PROVIDER)
        )
        + ", '')"
    )
    return f"lower(splitByChar('.', {named})[1])"


def derived_columns() -> list[tuple[str, str, str]]:
    """(name, type, MATERIALIZED expression) for every column we add to otel_traces."""
    s = semconv
    return [
        ("ProjectId", "LowCardinality(String)", "ResourceAttributes['project_id']"),
        ("Model", "LowCardinality(String)", _first(s.names(s.MODEL))),
        ("RequestModel", "LowCardinality(String)", _request_model_expr()),
        ("Provider", "LowCardinality(String)", _provider_expr()),
        ("InputTokens", "UInt64", _input_tokens_expr()),
        ("OutputTokens", "UInt64", _output_tokens_expr()),
        ("CacheReadTokens", "UInt64", _cache_read_expr()),
        ("CacheWriteTokens", "UInt64", _cache_write_expr()),
        ("ReasoningTokens", "UInt64", _reasoning_expr()),
        ("InputAudioTokens", "UInt64", _count(s.INPUT_AUDIO_TOKENS)),
        ("OutputAudioTokens", "UInt64", _count(s.OUTPUT_AUDIO_TOKENS)),
        ("ReportedCost", "Float64", f"toFloat64OrZero({_first(s.names(s.REPORTED_COST))})"),
        ("IsLLMCall", "UInt8", _llm_call_expr()),
        ("IsGateway", "UInt8", f"toUInt8({_is_litellm()} AND ({_any_key(s.LITELLM_CALL_MARKER_KEYS)}))"),
        ("IsEmbedding", "UInt8", _embedding_expr()),
        ("IsAgentStep", "UInt8", _agent_step_expr()),
        ("IsToolStep", "UInt8", _tool_step_expr()),
        ("IsError", "UInt8", f"toUInt8(StatusCode IN ({_quoted(s.ERROR_STATUS)}))"),
        ("IsReplay", "UInt8", f"toUInt8(ServiceName IN ({_quoted(s.EXPERIMENT_SERVICES)}))"),
        ("EndUser", "String", _first(s.names(s.END_USER))),
        ("SessionId", "String", _first(s.names(s.SESSION))),
        ("ResponseId", "String", _response_id_expr()),
    ]


def _stamp(type_: str, expr: str) -> str:
    return "apm:" + hashlib.sha256(f"{type_} {expr}".encode()).hexdigest()[:16]


def _derived_columns_ddl(comments: dict[str, str], name: str = TRACES, on_cluster: str = "") -> list[str]:
    """ADD what is missing; MODIFY a column whose definition changed since it was added.

    The definition's hash rides in the column comment, so a new release's better attribute rules
    reach new rows without a heavy mutation. Old parts keep the values they were written with (and
    otel_spans its copies); `ALTER TABLE otel_traces MATERIALIZE COLUMN <name>` would rewrite them,
    a mutation over every part that the portal never starts by itself.
    """
    statements = []
    for column, type_, expr in derived_columns():
        stamp = _stamp(type_, expr)
        definition = f"{column} {type_} MATERIALIZED {expr} COMMENT '{stamp}'"
        if column not in comments:
            statements.append(f"ALTER TABLE {table(name)}{on_cluster} ADD COLUMN IF NOT EXISTS {definition}")
        elif comments[column] != stamp:
            statements.append(f"ALTER TABLE {table(name)}{on_cluster} MODIFY COLUMN {definition}")
    return statements


def _project_index_ddl(name: str = TRACES, on_cluster: str = "") -> str:
    # Data is ordered by service and name, not project: a set index lets a project skip granules.
    return f"ALTER TABLE {table(name)}{on_cluster} ADD INDEX IF NOT EXISTS idx_project ProjectId TYPE set(100) GRANULARITY 4"


# --- full-text search: n-gram text indexes over every message ------------------------------------
# A message lives in a span's attributes (every SDK's keys), its events' attributes, or a GenAI
# event sent as a log record (body and attributes). A text index (ClickHouse "Full-text search using
# text indexes", GA since 26.2) maps each 2-character n-gram of the lower-cased text to the rows
# holding it, so a search reads only the granules holding every n-gram of the term: the cost grows
# with the matches, not the spans stored. Bigrams, not words: CJK text has no word boundaries and
# its words are often two characters (환불), and a term matches inside words as the search always
# did (a substring). The index only prunes: the search keeps its exact, case-insensitive test
# (monitoring/queries/search.py). Added by ALTER (the exporter's DDL stays as the collector makes
# it) and materialized for the parts stored before it by a background mutation; a part without it
# is read as before (hasAllTokens with the tokenizer named evaluates row by row, same answer).
SEARCH_TOKENIZER = "ngrams(2)"
SEARCH_INDEX = "idx_search_text"
# Beside it, trigrams: a term of three characters or more is looked up by those. Bigrams are few
# (a phrase of common characters, "drop on 2025-03-17", has all of its 17 in 23x as many spans as
# hold the phrase at 10M spans); trigrams are many, so a span holding every trigram of a term
# nearly always holds the term (there: as many as hold it). The index is about twice the bigrams'
# size. ClickHouse allows one text index per expression: this one's text ends in one more '\n'.
SEARCH_LONG_TOKENIZER = "ngrams(3)"
SEARCH_LONG_INDEX = "idx_search_text3"
SEARCH_LONG_CHARS = 3  # a term this long or longer is looked up by its trigrams


def _joined(values: str) -> str:
    return f"arrayStringConcat({values}, '\\n')"


def _long(text: str, long: bool) -> str:
    return f"concat({text}, '\\n')" if long else text


def span_search_text(long: bool = False) -> str:
    """SQL over an otel_traces row: its name, attribute values and event attribute values, lower-cased
    (the text index's expression; a query names it exactly so that the index is used). `long`: the
    trigram index's (SEARCH_LONG_INDEX)."""
    events = _joined("arrayMap(m -> " + _joined("mapValues(m)") + ", `Events.Attributes`)")
    return _long(f"lowerUTF8(concat(SpanName, '\\n', {_joined('mapValues(SpanAttributes)')}, '\\n', {events}))", long)


def log_search_text(long: bool = False) -> str:
    """SQL over an otel_logs row: its body and attribute values, lower-cased (the index's expression;
    `long`: the trigram index's)."""
    return _long(f"lowerUTF8(concat(Body, '\\n', {_joined('mapValues(LogAttributes)')}))", long)


def _search_index_ddl(name: str, index: str, expression: str, tokenizer: str, on_cluster: str = "") -> str:
    return (
        f"ALTER TABLE {table(name)}{on_cluster} ADD INDEX IF NOT EXISTS {index} {expression}"
        f" TYPE text(tokenizer = {tokenizer})"
    )


def _search_indexes(local: dict[str, str] | None = None) -> list[tuple[str, str, str, str]]:
    """(table, index, expression, tokenizer) of each text index (the local tables' names on a cluster)."""
    names = local or {}
    return [
        (names.get(source, source), index, text(long), tokenizer)
        for source, text in ((TRACES, span_search_text), (LOGS, log_search_text))
        for index, tokenizer, long in (
            (SEARCH_INDEX, SEARCH_TOKENIZER, False),
            (SEARCH_LONG_INDEX, SEARCH_LONG_TOKENIZER, True),
        )
    ]


def has_search_index(name: str, index: str = SEARCH_INDEX) -> bool:
    """Whether the table has the search text index `index`."""
    row = clickhouse.query_one(
        "SELECT count() AS n FROM system.data_skipping_indices"
        " WHERE database = {db:String} AND table = {t:String} AND name = {i:String}",
        {"db": clickhouse.database(), "t": name, "i": index},
        tag="schema.search_index",
    )
    return bool(int(row.get("n") or 0))


def _ensure_search_indexes() -> list[str]:
    """Add each text index once and start materializing it for the parts already stored (a
    background mutation; searches stay right meanwhile, only slower). Never fatal: a server that
    refuses it (older than 26.2 without its settings) keeps the rest of the schema and searches by
    scanning, as before. Returns the statements run."""
    ran: list[str] = []
    for name, index, expression, tokenizer in _search_indexes():
        if has_search_index(name, index):
            continue
        statements = [
            _search_index_ddl(name, index, expression, tokenizer),
            f"ALTER TABLE {table(name)} MATERIALIZE INDEX {index} SETTINGS mutations_sync = 0",
        ]
        for sql in statements:
            try:
                clickhouse.command(sql, tag="schema.ensure")
            except clickhouse.ClickHouseError as exc:
                log.warning("the search index %s of %s was not set up (%s); run: %s", index, name, exc, sql)
                break
            ran.append(sql)
    return ran


# --- otel_traces by trace id ----------------------------------------------------------------------
# The exporter orders spans by (service, span name, time), so a trace's spans lie in as many
# granules as it has kinds of span (17 granules of 8,192 rows for a 65-span agent run at 10M spans),
# each a block of attribute maps to decompress. A projection keeps a second copy of what the trace
# page, its API and the runs' previews read, ordered by TraceId: a whole trace or one span is one
# granule per part of its day. ClickHouse chooses it when it reads fewer marks (ClickHouse docs,
# "Projections"); a part written before it existed is read as before until the MATERIALIZE
# PROJECTION mutation, started once when the projection is added, has rewritten it. The cost is
# disk (otel_traces 84 -> 218 bytes/span on the demo traffic) and merge work (bench/shard.py,
# docs/cluster.md); bulk insert time is unchanged. A derived column named here can
# be MODIFYed as any other (old parts keep their values) but not dropped before the projection.
TRACE_PROJECTION = "by_trace_id"
# Rows per granule: one span's panel decompresses a granule of attribute maps (8,192 rows, about
# 7 MB at 10M demo spans, took 20 ms; 1,024 rows hold a trace of a few hundred spans too).
TRACE_PROJECTION_GRANULE = 1024
TRACE_PROJECTION_COLUMNS = (
    *TRACE_COLUMNS, "ProjectId", "Model", "InputTokens", "OutputTokens", "ReportedCost", "IsLLMCall", "IsAgentStep",
    "IsError",
)  # fmt: skip


def _trace_projection_ddl(name: str = TRACES, on_cluster: str = "") -> str:
    return (
        f"ALTER TABLE {table(name)}{on_cluster} ADD PROJECTION IF NOT EXISTS {TRACE_PROJECTION}"
        f" (SELECT {', '.join(TRACE_PROJECTION_COLUMNS)} ORDER BY TraceId)"
        f" WITH SETTINGS (index_granularity = {TRACE_PROJECTION_GRANULE})"
    )


def _materialize_projection_ddl(name: str = TRACES, on_cluster: str = "") -> str:
    # A background mutation (mutations_sync = 0; chdb defaults to waiting for it).
    return (
        f"ALTER TABLE {table(name)}{on_cluster} MATERIALIZE PROJECTION {TRACE_PROJECTION} SETTINGS mutations_sync = 0"
    )


def has_trace_projection(name: str = TRACES) -> bool:
    """Whether the table has the by-trace-id projection (its DDL names it)."""
    row = clickhouse.query_one(
        "SELECT countIf(position(create_table_query, {p:String}) > 0) AS n FROM system.tables"
        " WHERE database = {db:String} AND name = {t:String}",
        {"db": clickhouse.database(), "t": name, "p": f"PROJECTION {TRACE_PROJECTION} "},
        tag="schema.projection",
    )
    return bool(int(row.get("n") or 0))


# --- otel_spans: every span, narrow, ordered by project and time -------------------------------
# Filled by a materialized view on every insert into otel_traces (ours or a collector's). The
# exporter's table is ordered by (service, span name, time), so neither a project's window nor
# time order can be found there; this one finds a page of 50 rows, or a trace's spans, in a few
# granules. A re-delivered span arrives twice: reads take one row per (TraceId, SpanId), and
# ReplacingMergeTree folds the copies when parts merge. `InsertedAt` tells the settler what is new.

SPAN_COLUMNS = (
    "ProjectId", "Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName", "SpanKind", "ServiceName",
    "ScopeName", "Duration", "StatusCode", "StatusMessage", "IsLLMCall", "IsGateway", "IsEmbedding",
    "IsAgentStep", "IsToolStep", "IsError", "IsReplay", "Model", "RequestModel", "Provider", "InputTokens",
    "OutputTokens", "CacheReadTokens", "CacheWriteTokens", "ReasoningTokens", "InputAudioTokens",
    "OutputAudioTokens", "ReportedCost", "EndUser", "SessionId", "ResponseId",
)  # fmt: skip
_LC = "LowCardinality(String)"
_SPAN_TYPES = {
    "ProjectId": _LC, "Timestamp": "DateTime64(9) CODEC(Delta, ZSTD(1))", "TraceId": "String CODEC(ZSTD(1))",
    "SpanId": "String CODEC(ZSTD(1))", "ParentSpanId": "String CODEC(ZSTD(1))", "SpanName": _LC, "SpanKind": _LC,
    "ServiceName": _LC, "ScopeName": _LC, "Duration": "UInt64", "StatusCode": _LC,
    "StatusMessage": "String CODEC(ZSTD(1))", "IsLLMCall": "UInt8", "IsGateway": "UInt8", "IsEmbedding": "UInt8",
    "IsAgentStep": "UInt8", "IsToolStep": "UInt8", "IsError": "UInt8", "IsReplay": "UInt8", "Model": _LC,
    "RequestModel": _LC, "Provider": _LC, "InputTokens": "UInt64", "OutputTokens": "UInt64",
    "CacheReadTokens": "UInt64", "CacheWriteTokens": "UInt64", "ReasoningTokens": "UInt64",
    "InputAudioTokens": "UInt64", "OutputAudioTokens": "UInt64", "ReportedCost": "Float64",
    "EndUser": "String CODEC(ZSTD(1))", "SessionId": "String CODEC(ZSTD(1))", "ResponseId": "String CODEC(ZSTD(1))",
}  # fmt: skip
STATUS_MESSAGE_CHARS = 1000  # lists show a line of it; the whole message stays in otel_traces


def _columns(types: dict[str, str]) -> str:
    return ",\n    ".join(f"{name} {type_}" for name, type_ in types.items())


def _spans_ddl(ttl_days: int, name: str = SPANS, engine: str = "ReplacingMergeTree", on_cluster: str = "") -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table(name)}{on_cluster} (
    {_columns(_SPAN_TYPES)},
    InsertedAt DateTime64(3) DEFAULT now64(3),
    INDEX idx_inserted InsertedAt TYPE minmax GRANULARITY 1,
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_session SessionId TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_user EndUser TYPE bloom_filter(0.01) GRANULARITY 4
) ENGINE = {engine}
PARTITION BY toDate(Timestamp)
ORDER BY (ProjectId, Timestamp, TraceId, SpanId)
{_ttl("Timestamp", ttl_days)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""


def _spans_select(source: str = TRACES) -> str:
    columns = [c if c != "StatusMessage" else f"substring(StatusMessage, 1, {STATUS_MESSAGE_CHARS}) AS StatusMessage"
               for c in SPAN_COLUMNS]  # fmt: skip
    return f"SELECT {', '.join(columns)} FROM {table(source)} WHERE TraceId != '' AND SpanId != ''"


def _spans_mv_ddl(source: str = TRACES, target: str = SPANS, on_cluster: str = "") -> str:
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table(SPANS_MV)}{on_cluster} TO {table(target)} AS {_spans_select(source)}"


# --- otel_span_attrs: every short attribute of every span, ordered by key and value ---------------
# What `attr=<key>:<op>[:<value>]` filters read (monitoring/queries/attributes.py): one row per span
# and attribute (span and resource alike), filled by a materialized view on every insert into
# otel_traces, ordered by (project, key, value, time) so `eq` and `exists` are a range of the
# primary key whatever the window, and `contains`/`gt`/`lt` read one key's rows of the window's
# days. Values longer than ATTR_VALUE_CHARS (messages, payloads: full-text search's domain) are
# left out, which keeps the table at a few times the narrow span table; so are a span's attributes past
# its first ATTR_ENTRIES_PER_SPAN. A JSON array (tags) is a
# row per element; a JSON object under a key ending in "metadata" (OpenInference `metadata`) is a
# row per top-level entry, `<key>.<entry>`, beside the whole. `otel_attr_keys` sums the rows per
# day and key with their commonest values: the filter bar's key picker reads a month of it.
# Weekly partitions: a filter reads a range per key of its family in every part of the window, and
# 30 daily parts cost 4x the CPU of 5 weekly ones at 1M spans (bench/dashboard.py); a week's part is
# dropped once all of it is past the retention (ttl_only_drop_parts), up to a week late.

ATTRS = "otel_span_attrs"
ATTRS_MV = "otel_span_attrs_mv"
ATTR_KEYS = "otel_attr_keys"
ATTR_KEYS_MV = "otel_attr_keys_mv"
ATTR_VALUE_CHARS = 256
# A span's first this many attributes (and its resource's) are filterable, as the pages read the
# first 1,000 of each (monitoring/queries/trace.py): one span of a million attributes must not
# write a million rows here (issue 22, item 2; tests/test_big_spans.py).
ATTR_ENTRIES_PER_SPAN = 1000
ATTR_TOP_VALUES = 10
ATTR_COLUMNS = ("ProjectId", "Key", "Value", "Timestamp", "TraceId", "SpanId", "Resource")


def _attrs_ddl(ttl_days: int, name: str = ATTRS, engine: str = "MergeTree", on_cluster: str = "") -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table(name)}{on_cluster} (
    ProjectId LowCardinality(String),
    Key LowCardinality(String),
    Value String CODEC(ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    Resource UInt8
) ENGINE = {engine}
PARTITION BY toMonday(Timestamp)
ORDER BY (ProjectId, Key, Value, Timestamp)
{_ttl("Timestamp", ttl_days)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""


def _json_scalar(raw: str) -> str:
    return f"if(JSONType({raw}) = 'String', JSONExtractString({raw}), {raw})"


def _attr_entries(keys: str, values: str) -> str:
    """SQL: Array((key, value)) of one attribute map, arrays and metadata objects spread out."""
    spread = (
        "(k, v) -> multiIf("
        "startsWith(v, '[') AND isValidJSON(v) AND JSONType(v) = 'Array',"
        f" arrayMap(x -> (k, {_json_scalar('x')}), JSONExtractArrayRaw(v)),"
        "endsWith(k, 'metadata') AND startsWith(v, '{') AND isValidJSON(v) AND JSONType(v) = 'Object',"
        f" arrayPushFront(arrayMap(e -> (concat(k, '.', e.1), {_json_scalar('e.2')}), JSONExtractKeysAndValuesRaw(v)), (k, v)),"
        " [(k, v)])"
    )
    return f"arrayFlatten(arrayMap({spread}, {keys}, {values}))"


def _first_entries(column: str) -> tuple[str, str]:
    """SQL of a map's first ATTR_ENTRIES_PER_SPAN keys and values (a span may carry a million)."""
    return (
        f"arraySlice(mapKeys({column}), 1, {ATTR_ENTRIES_PER_SPAN})",
        f"arraySlice(mapValues({column}), 1, {ATTR_ENTRIES_PER_SPAN})",
    )


def _attrs_select(source: str = TRACES) -> str:
    entries = (
        f"arrayConcat(arrayMap(e -> (e.1, e.2, toUInt8(0)), {_attr_entries(*_first_entries('SpanAttributes'))}),"
        f" arrayMap(e -> (e.1, e.2, toUInt8(1)), {_attr_entries(*_first_entries('ResourceAttributes'))}))"
    )
    return (
        "SELECT ProjectId, a.1 AS Key, a.2 AS Value, Timestamp, TraceId, SpanId, a.3 AS Resource"
        f" FROM {table(source)} ARRAY JOIN arrayFilter(e -> lengthUTF8(e.2) <= {ATTR_VALUE_CHARS}, {entries}) AS a"
        " WHERE TraceId != '' AND SpanId != '' AND ProjectId != ''"
    )


def _attrs_mv_ddl(source: str = TRACES, target: str = ATTRS, on_cluster: str = "") -> str:
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table(ATTRS_MV)}{on_cluster} TO {table(target)} AS {_attrs_select(source)}"


def _attr_keys_ddl(
    ttl_days: int, name: str = ATTR_KEYS, engine: str = "AggregatingMergeTree", on_cluster: str = ""
) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table(name)}{on_cluster} (
    ProjectId LowCardinality(String),
    Day Date,
    Key LowCardinality(String),
    Resource UInt8,
    Spans SimpleAggregateFunction(sum, UInt64),
    TopValues AggregateFunction(topK({ATTR_TOP_VALUES}), String)
) ENGINE = {engine}
PARTITION BY toYYYYMM(Day)
ORDER BY (ProjectId, Day, Key, Resource)
{_ttl("Day", ttl_days)}
"""


def _attr_keys_select(source: str = ATTRS) -> str:
    return (
        f"SELECT ProjectId, toDate(Timestamp) AS Day, Key, Resource, count() AS Spans,"
        f" topKState({ATTR_TOP_VALUES})(Value) AS TopValues FROM {table(source)} GROUP BY ProjectId, Day, Key, Resource"
    )


def _attr_keys_mv_ddl(source: str = ATTRS, target: str = ATTR_KEYS, on_cluster: str = "") -> str:
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table(ATTR_KEYS_MV)}{on_cluster} TO {table(target)}"
        f" AS {_attr_keys_select(source)}"
    )


# --- settled facts: one row per model invocation, agent run and flow edge -----------------------
# Written only by the settler (monitoring/semantics/settle.py), which applies the counting rules once
# (monitoring/semantics/facts.py). When a later span changes a decision (a gateway span arrives for
# an agent's call, a re-delivery, a late root), the settler cancels the old row (Sign = -1, same
# Version) and writes the new one: VersionedCollapsingMergeTree folds the pairs, and every sum read
# as sum(Sign * x) is exact before and after merges. The rollups below are fed by the same rows,
# so they cancel too.

CALL_TYPES = {
    "ProjectId": _LC, "Timestamp": "DateTime64(9) CODEC(Delta, ZSTD(1))", "TraceId": "String CODEC(ZSTD(1))",
    "SpanId": "String CODEC(ZSTD(1))", "RunTraceId": "String CODEC(ZSTD(1))", "SpanName": _LC,
    "ServiceName": _LC, "Model": _LC, "Provider": _LC, "IsError": "UInt8", "IsEmbedding": "UInt8",
    "IsGateway": "UInt8", "IsReplay": "UInt8", "HasEnd": "UInt8", "Duration": "UInt64", "InputTokens": "UInt64",
    "OutputTokens": "UInt64", "CacheReadTokens": "UInt64", "CacheWriteTokens": "UInt64", "ReasoningTokens": "UInt64",
    "InputAudioTokens": "UInt64", "OutputAudioTokens": "UInt64", "ReportedCost": "Float64", "Cost": "Float64",
    "Priced": "UInt8", "CacheSavings": "Float64", "EndUser": "String CODEC(ZSTD(1))",
    "SessionId": "String CODEC(ZSTD(1))",
}  # fmt: skip
CALL_COLUMNS = tuple(CALL_TYPES)

RUN_TYPES = {
    "ProjectId": _LC, "Start": "DateTime64(9) CODEC(Delta, ZSTD(1))", "TraceId": "String CODEC(ZSTD(1))",
    "End": "DateTime64(9)", "HasEnd": "UInt8", "Name": _LC, "ServiceName": _LC,
    "Services": "Array(LowCardinality(String))", "Models": "Array(LowCardinality(String))", "IsError": "UInt8",
    "IsReplay": "UInt8", "Spans": "UInt32", "ErrorSpans": "UInt32", "AgentSteps": "UInt32", "LLMCalls": "UInt32",
    "InputTokens": "UInt64", "OutputTokens": "UInt64", "Cost": "Float64", "Unpriced": "UInt32",
    "EndUser": "String CODEC(ZSTD(1))", "SessionId": "String CODEC(ZSTD(1))", "FirstCall": "String", "LastCall": "String",
    "ScoreNames": "Array(LowCardinality(String))", "ScoreValues": "Array(Float64)", "ScoreLabels": "Array(String)",
    "ScoreCounts": "Array(UInt32)",
}  # fmt: skip
RUN_COLUMNS = tuple(RUN_TYPES)
# A run's scores (its own and its spans', otel_scores read with FINAL), one entry per name in name
# order: the mean of the numeric values (nan when none), the latest label ('' when none) and the
# count. Settled with the run (a score written marks its trace for the settler's next pass, as a
# span does), so the runs list filters and sorts on them without reading otel_scores: joining a
# month of scores to a month of runs cost 0.2-1.3 s at 10M spans (issue 20).
RUN_SCORE_COLUMNS = ("ScoreNames", "ScoreValues", "ScoreLabels", "ScoreCounts")

EDGE_TYPES = {
    "ProjectId": _LC, "Start": "DateTime64(9)", "TraceId": "String CODEC(ZSTD(1))", "Parent": _LC, "Child": _LC,
    "Calls": "UInt32", "Errors": "UInt32", "Duration": "UInt64", "RunFailed": "UInt8", "IsReplay": "UInt8",
    "Services": "Array(LowCardinality(String))", "Models": "Array(LowCardinality(String))",
}  # fmt: skip
EDGE_COLUMNS = tuple(EDGE_TYPES)


def _settled_ddl(
    ttl_days: int,
    name: str,
    types: dict[str, str],
    order_by: str,
    time_column: str,
    engine: str = "",
    on_cluster: str = "",
) -> str:
    engine = engine or "VersionedCollapsingMergeTree(Sign, Version)"
    return f"""
CREATE TABLE IF NOT EXISTS {table(name)}{on_cluster} (
    {_columns(types)},
    Sign Int8,
    Version UInt64,
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1
) ENGINE = {engine}
PARTITION BY toDate({time_column})
ORDER BY ({order_by})
{_ttl(time_column, ttl_days)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""


SETTLED = {
    # name: (types, ORDER BY, partition/TTL time column)
    CALLS: (CALL_TYPES, "ProjectId, Timestamp, TraceId, SpanId", "Timestamp"),
    RUNS: (RUN_TYPES, "ProjectId, Start, TraceId", "Start"),
    EDGES: (EDGE_TYPES, "ProjectId, Start, TraceId, Parent, Child", "Start"),
}


# --- rollups: what the dashboard sums over long windows -----------------------------------------
# AggregatingMergeTree tables of sums per 15-minute slice (every real time zone's offset is a
# multiple of 15 minutes, so a local hour or day is a whole number of slices), fed by materialized
# views on the settled tables: a cancelled row subtracts what it added. Latency has its own rollup,
# one row per fine log bucket (2^(1/32) wide, ~2%) holding the count and the sum of durations, from
# which p50/p95/p99 are read (exact when a bucket holds one value), split by the Analytics
# histogram's bin: plain sums over rows are ~10x cheaper to read than sumMap over per-slice maps.

SLICE_SECONDS = 15 * 60
# Latency bin edges of the Analytics histogram, in ms (the latency rollup's `Bin` is an index into them).
LATENCY_EDGES_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
FINE_BUCKETS_PER_OCTAVE = 32
FINE_BUCKET_BASE_NS = 10_000  # bucket 0 holds everything under 0.01 ms


def fine_bucket_sql(duration: str = "Duration") -> str:
    """The fine latency bucket of a duration in ns (UInt16)."""
    return (
        f"toUInt16(greatest(0, floor(log2(greatest({duration}, 1) / {FINE_BUCKET_BASE_NS})"
        f" * {FINE_BUCKETS_PER_OCTAVE}) + 1))"
    )


def latency_bin_sql(duration: str = "Duration") -> str:
    """The Analytics histogram bin (0 = under the first edge) of a duration in ns."""
    edges = ", ".join(str(e * 1_000_000) for e in LATENCY_EDGES_MS)
    return f"toUInt16(arrayCount(e -> e <= {duration}, [{edges}]))"


def _sum(type_: str = "Int64") -> str:
    return f"SimpleAggregateFunction(sum, {type_})"


ROLLUPS = {
    # name: (source, key columns with types, measure columns with types, measure expressions)
    CALLS_15M: (
        CALLS,
        {"ProjectId": _LC, "Slice": "DateTime('UTC')", "ServiceName": _LC, "Model": _LC, "Provider": _LC,
         "IsError": "UInt8", "IsEmbedding": "UInt8", "IsReplay": "UInt8"},
        {
            "Calls": (_sum(), "sum(Sign)"),
            "Timed": (_sum(), "sum(Sign * HasEnd)"),
            "DurationSum": (_sum(), "sum(Sign * toInt64(Duration))"),
            "InputTokens": (_sum(), "sum(Sign * toInt64(InputTokens))"),
            "OutputTokens": (_sum(), "sum(Sign * toInt64(OutputTokens))"),
            "CacheReadTokens": (_sum(), "sum(Sign * toInt64(CacheReadTokens))"),
            "CacheWriteTokens": (_sum(), "sum(Sign * toInt64(CacheWriteTokens))"),
            "ReasoningTokens": (_sum(), "sum(Sign * toInt64(ReasoningTokens))"),
            "ReportedCost": (_sum("Float64"), "sum(Sign * ReportedCost)"),
            "Cost": (_sum("Float64"), "sum(Sign * Cost)"),
            "Unpriced": (_sum(), "sum(Sign * toInt64(NOT Priced))"),
            "CacheSavings": (_sum("Float64"), "sum(Sign * CacheSavings)"),
        },
    ),
    LATENCY_1H: (
        CALLS,
        {"ProjectId": _LC, "Slice": "DateTime('UTC')", "ServiceName": _LC, "Model": _LC, "Provider": _LC,
         "IsError": "UInt8", "IsEmbedding": "UInt8", "IsReplay": "UInt8", "Bucket": "UInt16", "Bin": "UInt8"},
        {
            "Calls": (_sum(), "sum(Sign)"),
            "DurationSum": (_sum(), "sum(Sign * toInt64(Duration))"),
        },
    ),
    USERS_1H: (
        CALLS,
        {"ProjectId": _LC, "Slice": "DateTime('UTC')", "EndUser": "String", "ServiceName": _LC, "Model": _LC,
         "IsError": "UInt8", "IsReplay": "UInt8"},
        {
            "Calls": (_sum(), "sum(Sign)"),
            "InputTokens": (_sum(), "sum(Sign * toInt64(InputTokens))"),
            "OutputTokens": (_sum(), "sum(Sign * toInt64(OutputTokens))"),
            "Cost": (_sum("Float64"), "sum(Sign * Cost)"),
            "Unpriced": (_sum(), "sum(Sign * toInt64(NOT Priced))"),
            "Timed": (_sum(), "sum(Sign * HasEnd)"),
            "DurationSum": (_sum(), "sum(Sign * toInt64(Duration))"),
        },
    ),
    RUNS_15M: (
        RUNS,
        {"ProjectId": _LC, "Slice": "DateTime('UTC')", "ServiceName": _LC, "IsError": "UInt8", "IsReplay": "UInt8"},
        {
            "Runs": (_sum(), "sum(Sign)"),
            "LLMCalls": (_sum(), "sum(Sign * toInt64(LLMCalls))"),
            "Cost": (_sum("Float64"), "sum(Sign * Cost)"),
        },
    ),
    EDGES_15M: (
        EDGES,
        {"ProjectId": _LC, "Slice": "DateTime('UTC')", "Parent": _LC, "Child": _LC, "RunFailed": "UInt8",
         "IsReplay": "UInt8"},
        {
            "Calls": (_sum(), "sum(Sign * toInt64(Calls))"),
            "Errors": (_sum(), "sum(Sign * toInt64(Errors))"),
            "Duration": (_sum(), "sum(Sign * toInt64(Duration))"),
        },
    ),
}  # fmt: skip
# Services and models seen per hour (every span, not only calls): the filter bar's choices.
ROLLUPS[FACETS_1H] = (
    SPANS,
    {"ProjectId": _LC, "Slice": "DateTime('UTC')", "ServiceName": _LC, "Model": _LC},
    {"Spans": (_sum(), "toInt64(count())")},
)
ROLLUP_SLICE_SECONDS = {
    CALLS_15M: SLICE_SECONDS, USERS_1H: 3600, RUNS_15M: SLICE_SECONDS, EDGES_15M: SLICE_SECONDS, FACETS_1H: 3600,
    LATENCY_1H: 3600,
}  # fmt: skip
# Keys computed from the source row (others are its columns), and which source rows a rollup holds.
_ROLLUP_KEYS = {LATENCY_1H: {"Bucket": fine_bucket_sql(), "Bin": latency_bin_sql()}}
_ROLLUP_WHERE = {LATENCY_1H: "HasEnd = 1"}  # calls without an end time have no latency
_ROLLUP_TIME = {CALLS: "Timestamp", RUNS: "Start", EDGES: "Start", SPANS: "Timestamp"}


def _rollup_ddl(
    ttl_days: int, name: str, engine: str = "AggregatingMergeTree", on_cluster: str = "", table_name: str = ""
) -> str:
    """The rollup `name` (a key of ROLLUPS), created as `table_name` (a cluster's local table)."""
    _source, keys, measures = ROLLUPS[name]
    columns = ",\n    ".join([f"{k} {t}" for k, t in keys.items()] + [f"{m} {t}" for m, (t, _) in measures.items()])
    return f"""
CREATE TABLE IF NOT EXISTS {table(table_name or name)}{on_cluster} (
    {columns}
) ENGINE = {engine}
PARTITION BY toYYYYMM(Slice)
ORDER BY ({", ".join(keys)})
{_ttl("Slice", ttl_days)}
"""


def _rollup_select(name: str, source: str = "") -> str:
    origin, keys, measures = ROLLUPS[name]
    step = ROLLUP_SLICE_SECONDS[name]
    time_column = _ROLLUP_TIME[origin]
    slice_expr = f"toDateTime(intDiv(toUnixTimestamp({time_column}), {step}) * {step}, 'UTC') AS Slice"
    computed = _ROLLUP_KEYS.get(name, {})
    dims = [slice_expr if k == "Slice" else f"{computed[k]} AS {k}" if k in computed else k for k in keys]
    exprs = [f"{expr} AS {m}" for m, (_, expr) in measures.items()]
    where = f" WHERE {_ROLLUP_WHERE[name]}" if name in _ROLLUP_WHERE else ""
    return (
        f"SELECT {', '.join(dims + exprs)} FROM {table(source or origin)}{where} GROUP BY {', '.join(k for k in keys)}"
    )


def _rollup_mv_ddl(name: str, source: str = "", target: str = "", on_cluster: str = "") -> str:
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table(name + '_mv')}{on_cluster} TO {table(target or name)}"
        f" AS {_rollup_select(name, source)}"
    )


# --- the settler's bookkeeping --------------------------------------------------------------------


def _settle_state_ddl(
    name: str = SETTLE_STATE, engine: str = "ReplacingMergeTree(Updated)", on_cluster: str = ""
) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table(name)}{on_cluster} (
    Name LowCardinality(String),
    Through DateTime64(3),
    Updated DateTime64(3) DEFAULT now64(3)
) ENGINE = {engine}
ORDER BY Name
"""


# --- otel_logs: the exporter's log table (GenAI events arrive as log records) ---------------------
# The exporter's own DDL (collector-contrib exporter/clickhouseexporter, logs_table.sql) plus its
# newer optional EventName column, so a stock collector and our /v1/logs receiver write identical rows.


def _logs_ddl(ttl_days: int, name: str = LOGS, engine: str = "MergeTree", on_cluster: str = "") -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table(name)}{on_cluster} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    EventName LowCardinality(String) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = {engine}
PARTITION BY toDate(TimestampTime)
PRIMARY KEY (ServiceName, TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp)
{_ttl("TimestampTime", ttl_days)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""


def _logs_event_name_ddl(name: str = LOGS, on_cluster: str = "") -> str:
    """A table the collector made before its exporter knew LogRecord.event_name gets the column."""
    return f"ALTER TABLE {table(name)}{on_cluster} ADD COLUMN IF NOT EXISTS EventName LowCardinality(String) CODEC(ZSTD(1))"


def log_event_name(event_name: str = "EventName", attributes: str = "LogAttributes") -> str:
    """SQL: a log record's event name: LogRecord.event_name, else the older `event.name` attribute."""
    return f"if({event_name} != '', {event_name}, {attributes}['{semconv.LOG_EVENT_NAME_KEY}'])"


# --- otel_scores: one row per score, whatever gave it --------------------------------------------
# Sources: "evaluation" (gen_ai.evaluation.result events, as log records or span events: the two
# views below), "api", "person" and "judge" (monitoring/quality/). A score names its target by
# (TraceId, SpanId) or SessionId; an evaluation event without span context names the evaluated
# call's ResponseId, resolved when read. ReplacingMergeTree by (TraceId, ScoreId): a re-delivered
# event (the same id, made from its content) and a person's new score on the same target (the same
# id, made from target, name and author) replace the old row; IsDeleted = 1 removes one. Reads use FINAL.
# No time partition: a replacement must land beside what it replaces. `InsertedAt` (left to its
# default by every writer, so not in SCORE_COLUMNS) tells the settler whose run scores changed.

SCORE_TYPES = {
    "ProjectId": _LC,
    "ScoreId": "String",
    "Timestamp": "DateTime64(9) CODEC(Delta, ZSTD(1))",
    "TraceId": "String CODEC(ZSTD(1))",
    "SpanId": "String CODEC(ZSTD(1))",
    "SessionId": "String CODEC(ZSTD(1))",
    "ResponseId": "String CODEC(ZSTD(1))",
    "Name": _LC,
    "Value": "Nullable(Float64)",
    "Label": "String CODEC(ZSTD(1))",
    "Comment": "String CODEC(ZSTD(1))",
    "Source": _LC,
    "Author": "String CODEC(ZSTD(1))",
    "ConfigId": "String CODEC(ZSTD(1))",
    "Version": "UInt64",
    "IsDeleted": "UInt8",
}
SCORE_COLUMNS = tuple(SCORE_TYPES)
# By trace: the pages read a page's runs' or calls' scores, the settler a pass's traces' (a session's
# score has TraceId ''). A score keeps its ScoreId and target, except when an evaluation named by
# response id is placed on its call: that writes a tombstone for its old (TraceId '') row.
SCORES_ORDER_BY = "ProjectId, TraceId, ScoreId"
SCORES_SHARDING_KEY = "cityHash64(TraceId)"
SCORE_NANOS_COLUMNS = ("Timestamp",)


def _scores_ddl(
    ttl_days: int, name: str = SCORES, engine: str = "ReplacingMergeTree(Version, IsDeleted)", on_cluster: str = ""
) -> str:
    columns = ",\n    ".join(f"{column} {type_}" for column, type_ in SCORE_TYPES.items())
    return f"""
CREATE TABLE IF NOT EXISTS {table(name)}{on_cluster} (
    {columns},
    InsertedAt DateTime64(3) DEFAULT now64(3),
    INDEX idx_inserted InsertedAt TYPE minmax GRANULARITY 1,
    INDEX idx_score_id ScoreId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_session SessionId TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_response ResponseId TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time Timestamp TYPE minmax GRANULARITY 1
) ENGINE = {engine}
ORDER BY ({SCORES_ORDER_BY})
{_ttl("Timestamp", ttl_days)}
SETTINGS index_granularity = 1024
"""


def _scores_reordered(ttl: str, views: list[str]) -> list[str]:
    """Move an otel_scores of an earlier release (ordered by ScoreId alone) to SCORES_ORDER_BY,
    keeping its TTL `ttl` (current_ttl: a retention set since): a new table filled with every row (the
    engine replaces them as before), exchanged atomically, then the rows written to the old table
    since just before the copy (InsertedAt; a row copied twice is one row to FINAL) copied again
    before it goes, and the evaluation `views` made again to write into the new one. Only an
    evaluation event stored in the moment between dropping and making the views again (a
    collector writing in server mode) is left out of scores."""
    started = clickhouse.query_one("SELECT toUnixTimestamp64Milli(now64(3)) AS t", tag="schema.now")["t"]
    new = SCORES + "_reordered"
    columns = ", ".join((*SCORE_COLUMNS, "InsertedAt"))
    return [
        f"DROP TABLE IF EXISTS {table(new)}",
        _scores_ddl(0, new),
        *([f"ALTER TABLE {table(new)} MODIFY TTL {ttl}"] if ttl else []),
        f"INSERT INTO {table(new)} ({columns}) SELECT {columns} FROM {table(SCORES)}",
        f"DROP VIEW IF EXISTS {table(SCORES_FROM_LOGS_MV)}",
        f"DROP VIEW IF EXISTS {table(SCORES_FROM_EVENTS_MV)}",
        f"EXCHANGE TABLES {table(SCORES)} AND {table(new)}",
        f"INSERT INTO {table(SCORES)} ({columns}) SELECT {columns} FROM {table(new)}"
        f" WHERE InsertedAt >= fromUnixTimestamp64Milli({int(started)})",
        *views,
        f"DROP TABLE {table(new)}",
    ]


def _evaluation_select(attrs: str, timestamp: str, trace_id: str, span_id: str, source_from: str, where: str) -> str:
    """The scores of gen_ai.evaluation.result events (semantic-conventions-genai, "Evaluation event"):
    one row per event, its ScoreId made from the event's content so a re-delivery replaces it."""
    key = semconv
    value = f"toFloat64OrNull({attrs}['{key.EVALUATION_SCORE_VALUE}'])"
    return (
        "SELECT ResourceAttributes['project_id'] AS ProjectId,"
        f" lower(hex(sipHash128({trace_id}, {span_id}, toUnixTimestamp64Nano({timestamp}),"
        f" {attrs}['{key.EVALUATION_NAME}'], {attrs}['{key.EVALUATION_SCORE_VALUE}'],"
        f" {attrs}['{key.EVALUATION_SCORE_LABEL}'], {attrs}['{key.EVALUATION_EXPLANATION}'],"
        f" {attrs}['{key.EVALUATION_RESPONSE_ID}']))) AS ScoreId,"
        f" {timestamp} AS Timestamp, {trace_id} AS TraceId, {span_id} AS SpanId, '' AS SessionId,"
        f" {attrs}['{key.EVALUATION_RESPONSE_ID}'] AS ResponseId, {attrs}['{key.EVALUATION_NAME}'] AS Name,"
        f" if(isFinite(ifNull({value}, 0)), {value}, NULL) AS Value,"
        f" {attrs}['{key.EVALUATION_SCORE_LABEL}'] AS Label, {attrs}['{key.EVALUATION_EXPLANATION}'] AS Comment,"
        f" 'evaluation' AS Source, ServiceName AS Author, '' AS ConfigId,"
        f" toUInt64(toUnixTimestamp64Nano({timestamp})) AS Version, toUInt8(0) AS IsDeleted"
        f" FROM {source_from} WHERE {where} AND ResourceAttributes['project_id'] != ''"
        f" AND {attrs}['{key.EVALUATION_NAME}'] != ''"
    )


def _scores_from_logs_select(source: str = LOGS) -> str:
    where = f"{log_event_name()} = '{semconv.EVALUATION_EVENT}'"
    return _evaluation_select("LogAttributes", "Timestamp", "TraceId", "SpanId", table(source), where)


def _scores_from_events_select(source: str = TRACES) -> str:
    source_from = (
        f"{table(source)} ARRAY JOIN Events.Timestamp AS EventTimestamp, Events.Name AS EventName,"
        " Events.Attributes AS EventAttributes"
    )
    where = f"EventName = '{semconv.EVALUATION_EVENT}'"
    return _evaluation_select("EventAttributes", "EventTimestamp", "TraceId", "SpanId", source_from, where)


def run_scores_select(*where: str | Sql) -> Sql:
    """SQL of the RUN_SCORE_COLUMNS rule: a row per (project, trace) among the scores `where` keeps
    (a condition on otel_scores, in pieces), with `project`, `trace` and `names`, `values` (mean, nan
    when no number), `labels` (the latest by time, then ScoreId, '' when none) and `counts`, in name order."""
    return Sql(
        "SELECT project, trace, arrayMap(x -> x.1, s) AS names, arrayMap(x -> x.2, s) AS values,",
        " arrayMap(x -> x.3, s) AS labels, arrayMap(x -> x.4, s) AS counts FROM (",
        "SELECT project, trace, arraySort(groupArray((name, mean, label, n))) AS s FROM (",
        "SELECT ProjectId AS project, TraceId AS trace, Name AS name, ifNull(avgOrNull(Value), nan) AS mean,",
        " argMaxIf(Label, (Timestamp, ScoreId), Label != '') AS label, toUInt32(count()) AS n",
        f" FROM {table(SCORES)} FINAL WHERE TraceId != '' AND ",
        *where,
        " GROUP BY ProjectId, TraceId, Name) GROUP BY project, trace)",
    )


def _run_scores_backfill() -> str:
    """Give the runs settled before runs carried their scores (RUN_SCORE_COLUMNS) those scores: a
    cancel row and a new row for each scored run whose columns differ (so running it again writes
    nothing), as the settler writes a changed run."""
    columns = [c for c in RUN_COLUMNS if c not in RUN_SCORE_COLUMNS]
    old = (
        f"SELECT {', '.join(RUN_COLUMNS)}, Version FROM {table(RUNS)} FINAL WHERE Sign = 1"
        f" AND (ProjectId, TraceId) GLOBAL IN (SELECT ProjectId, TraceId FROM {table(SCORES)} WHERE TraceId != '')"
    )
    fresh = ", ".join(
        [
            *(f"o.{c} AS {c}" for c in columns),
            *(
                f"sc.{v} AS {c}"
                for v, c in zip(("names", "values", "labels", "counts"), RUN_SCORE_COLUMNS, strict=True)
            ),
        ]
    )
    scored = (
        f"SELECT {fresh}, o.Version AS OldVersion, o.ScoreNames != sc.names OR o.ScoreValues != sc.values"
        " OR o.ScoreLabels != sc.labels OR o.ScoreCounts != sc.counts AS changed"
        f" FROM ({old}) AS o GLOBAL INNER JOIN ({run_scores_select('1').text}) AS sc"
        " ON sc.project = o.ProjectId AND sc.trace = o.TraceId"
    )
    cols = ", ".join(RUN_COLUMNS)
    return (
        f"INSERT INTO {table(RUNS)} ({cols}, Sign, Version)"
        f" SELECT {cols}, toInt8(-1), Version FROM ({old}) WHERE (ProjectId, TraceId) GLOBAL IN"
        f" (SELECT ProjectId, TraceId FROM ({scored}) WHERE changed)"
        f" UNION ALL SELECT {cols}, toInt8(1), OldVersion + 1 FROM ({scored}) WHERE changed"
    )


def _scores_mv_ddl(name: str, select: str, target: str = SCORES, on_cluster: str = "") -> str:
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table(name)}{on_cluster} TO {table(target)} AS {select}"


def _exists(name: str) -> bool:
    return bool(existing_columns(name))


# Derived tables of earlier releases, replaced by the ones above (their data is rebuilt from otel_traces).
LEGACY = ("otel_llm_calls_mv", "otel_llm_calls")


def ensure_schema(ttl_days: int | None = None) -> list[str]:
    """Create or complete the schema; idempotent; never drops span data. Returns the statements run.

    New derived tables are filled from the spans already stored (a batch landing meanwhile may be
    copied twice into otel_spans: reads take one row per span id, so nothing is counted twice).
    """
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
    later += [f"DROP TABLE IF EXISTS {table(name)}" for name in LEGACY if _exists(name) or name.endswith("_mv")]
    if not _exists(SPANS):
        later += [
            _spans_ddl(days),
            _spans_mv_ddl(),
            f"INSERT INTO {table(SPANS)} ({', '.join(SPAN_COLUMNS)}) {_spans_select()}",
        ]
    new_attrs = not _exists(ATTRS)
    later += [_attrs_ddl(days), _attr_keys_ddl(days), _attr_keys_mv_ddl(), _attrs_mv_ddl()]
    if new_attrs:  # the spans stored before attribute filters existed are filterable too
        later.append(f"INSERT INTO {table(ATTRS)} ({', '.join(ATTR_COLUMNS)}) {_attrs_select()}")
    # Runs settled before they carried their scores get the columns (filled at the end: run_scores_backfill).
    for name, (types, order_by, time_column) in SETTLED.items():
        later.append(_settled_ddl(days, name, types, order_by, time_column))
    if _exists(RUNS) and "ScoreNames" not in existing_columns(RUNS):
        later += [f"ALTER TABLE {table(RUNS)} ADD COLUMN IF NOT EXISTS {c} {RUN_TYPES[c]}" for c in RUN_SCORE_COLUMNS]
    for name in ROLLUPS:
        if not _exists(name):
            later += [_rollup_ddl(days, name), _rollup_mv_ddl(name)]
            # A rollup added by an upgrade starts from the settled rows already there (the settler
            # runs after the schema is ensured, so none land twice).
            if _exists(ROLLUPS[name][0]):
                later.append(f"INSERT INTO {table(name)} {_rollup_select(name)}")
    later.append(_settle_state_ddl())
    later.append(_logs_ddl(days))
    if _exists(LOGS) and "EventName" not in existing_columns(LOGS):  # a collector's older table
        later.append(_logs_event_name_ddl())
    new_scores = not _exists(SCORES)
    later_views = [
        _scores_mv_ddl(SCORES_FROM_LOGS_MV, _scores_from_logs_select()),
        _scores_mv_ddl(SCORES_FROM_EVENTS_MV, _scores_from_events_select()),
    ]
    later += [_scores_ddl(days), *later_views]
    if new_scores:  # evaluation events stored before scores existed become scores too
        later += [
            f"INSERT INTO {table(SCORES)} ({', '.join(SCORE_COLUMNS)}) {_scores_from_logs_select()}",
            f"INSERT INTO {table(SCORES)} ({', '.join(SCORE_COLUMNS)}) {_scores_from_events_select()}",
        ]
    elif "InsertedAt" not in existing_columns(SCORES):
        # The scores stored before runs carried them count as old (time 0), then new ones are stamped.
        later += _scores_inserted_at(table(SCORES))
    if not new_scores and _table_field(SCORES, "sorting_key") != SCORES_ORDER_BY:
        later += _scores_reordered(current_ttl(SCORES), later_views)
    for sql in later:
        clickhouse.command(sql, tag="schema.ensure")
    later += _backfill_run_scores()
    return statements + later + _ensure_search_indexes() + _ensure_trace_projection(TRACES)


def _scores_inserted_at(target: str) -> list[str]:
    """Give a scores table of an earlier release (`target`: its name, with an ON CLUSTER clause)
    InsertedAt: its rows stamped 0 (settled), then new ones stamped when inserted."""
    inserted = f"ALTER TABLE {target} {{}} InsertedAt DateTime64(3) DEFAULT {{}}"
    return [
        inserted.format("ADD COLUMN IF NOT EXISTS", "toDateTime64(0, 3)"),
        f"ALTER TABLE {target} MATERIALIZE COLUMN InsertedAt SETTINGS mutations_sync = 2",
        inserted.format("MODIFY COLUMN", "now64(3)"),
        f"ALTER TABLE {target} ADD INDEX IF NOT EXISTS idx_inserted InsertedAt TYPE minmax GRANULARITY 1",
    ]


RUN_SCORES_MARK = "run-scores"  # a row of otel_settle_state: the runs settled before carried their scores


def _backfill_run_scores() -> list[str]:
    """Once per database, after the statements that may be cut short before it (a crash, a refused
    EXCHANGE): the runs settled before runs carried their scores get them (_run_scores_backfill,
    which writes nothing when run again), then the mark that says it is done. Returns the
    statements run."""
    done = clickhouse.query_one(
        f"SELECT count() AS n FROM {table(SETTLE_STATE)} WHERE Name = {{name:String}}",
        {"name": RUN_SCORES_MARK},
        tag="schema.run_scores",
    )
    if int(done.get("n") or 0):
        return []
    statements = [_run_scores_backfill()]
    clickhouse.command(statements[0], tag="schema.ensure")
    clickhouse.insert(
        table(SETTLE_STATE), ("Name", "Through"), [{"Name": RUN_SCORES_MARK, "Through": 0}], tag="schema.run_scores"
    )
    return statements


def _ensure_trace_projection(name: str) -> list[str]:
    """Add the by-trace-id projection once and start materializing it for the parts already
    stored (a background mutation; reads stay right meanwhile). Last, and never fatal: it only
    speeds trace reads, and a server that refuses it (an older one, an exporter configured with
    another engine) must still get the rest of the schema. Returns the statements run."""
    if has_trace_projection(name):
        return []
    statements = [_trace_projection_ddl(name), _materialize_projection_ddl(name)]
    for sql in statements:
        try:
            clickhouse.command(sql, tag="schema.ensure")
        except clickhouse.ClickHouseError as exc:
            log.warning("the %s projection of %s was not set up (%s); run: %s", TRACE_PROJECTION, name, exc, sql)
            return []
    return statements


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
    local = {
        name: name + LOCAL_SUFFIX
        for name in (TRACES, LOOKUP, SPANS, ATTRS, ATTR_KEYS, *SETTLED, *ROLLUPS, SETTLE_STATE, LOGS, SCORES)
    }

    def replicated(name: str, kind: str = "MergeTree", args: str = "") -> str:
        extra = f", {args}" if args else ""
        return f"Replicated{kind}('/clickhouse/tables/{{shard}}/{db}/{name}', '{{replica}}'{extra})"

    def distributed(name: str, key: str = "cityHash64(TraceId)") -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {table(name)}{on} AS {table(local[name])}"
            f" ENGINE = Distributed(`{cluster}`, `{db}`, `{local[name]}`, {key})"
        )

    derived = _derived_columns_ddl({}, local[TRACES], on)
    # The Distributed table carries the same derived columns so reads through it can name them.
    derived_dist = [sql.replace(table(local[TRACES]), table(TRACES)) for sql in derived]
    statements = [
        f"CREATE DATABASE IF NOT EXISTS `{db}`{on}",
        _traces_ddl(ttl_days, local[TRACES], replicated(local[TRACES]), on),
        _lookup_ddl(ttl_days, local[LOOKUP], replicated(local[LOOKUP]), on),
        _lookup_mv_ddl(local[TRACES], local[LOOKUP], on),
        *derived,
        _project_index_ddl(local[TRACES], on),
        _trace_projection_ddl(local[TRACES], on),
        _spans_ddl(ttl_days, local[SPANS], replicated(local[SPANS], "ReplacingMergeTree"), on),
        _spans_mv_ddl(local[TRACES], local[SPANS], on),
        _attrs_ddl(ttl_days, local[ATTRS], replicated(local[ATTRS]), on),
        _attr_keys_ddl(ttl_days, local[ATTR_KEYS], replicated(local[ATTR_KEYS], "AggregatingMergeTree"), on),
        _attr_keys_mv_ddl(local[ATTRS], local[ATTR_KEYS], on).replace(
            table(ATTR_KEYS_MV), table(ATTR_KEYS_MV + LOCAL_SUFFIX)
        ),
        _attrs_mv_ddl(local[TRACES], local[ATTRS], on).replace(table(ATTRS_MV), table(ATTRS_MV + LOCAL_SUFFIX)),
    ]
    for name, (types, order_by, time_column) in SETTLED.items():
        engine = replicated(local[name], "VersionedCollapsingMergeTree", "Sign, Version")
        statements.append(_settled_ddl(ttl_days, local[name], types, order_by, time_column, engine, on))
    for name in ROLLUPS:
        statements.append(_rollup_ddl(ttl_days, name, replicated(local[name], "AggregatingMergeTree"), on, local[name]))
        source = local[ROLLUPS[name][0]]
        statements.append(
            _rollup_mv_ddl(name, source, local[name], on).replace(table(name + "_mv"), table(local[name] + "_mv"))
        )
    statements.append(
        _settle_state_ddl(local[SETTLE_STATE], replicated(local[SETTLE_STATE], "ReplacingMergeTree", "Updated"), on)
    )
    statements += [
        _logs_ddl(ttl_days, local[LOGS], replicated(local[LOGS]), on),
        *(
            _search_index_ddl(name, index, text, tokenizer, on)
            for name, index, text, tokenizer in _search_indexes(local)
        ),
        _scores_ddl(ttl_days, local[SCORES], replicated(local[SCORES], "ReplacingMergeTree", "Version, IsDeleted"), on),
        _scores_mv_ddl(SCORES_FROM_LOGS_MV + LOCAL_SUFFIX, _scores_from_logs_select(local[LOGS]), local[SCORES], on),
        _scores_mv_ddl(
            SCORES_FROM_EVENTS_MV + LOCAL_SUFFIX, _scores_from_events_select(local[TRACES]), local[SCORES], on
        ),
    ]
    statements += [distributed(TRACES), distributed(LOOKUP), distributed(SPANS), distributed(ATTRS)]
    statements.append(distributed(ATTR_KEYS, "rand()"))
    # By trace, as the spans and logs whose evaluation views write scores on their own shard: a
    # score's replacements and tombstones (same trace and ScoreId) meet the row they replace.
    statements += [distributed(LOGS), distributed(SCORES, SCORES_SHARDING_KEY)]
    statements += [distributed(name) for name in SETTLED]
    statements += [distributed(name, "rand()") for name in ROLLUPS]
    statements.append(distributed(SETTLE_STATE, "0"))
    statements += derived_dist
    return statements


def ensure_cluster_schema(cluster: str, ttl_days: int | None = None) -> list[str]:
    days = settings.CLICKHOUSE["TTL_DAYS"] if ttl_days is None else ttl_days
    local_traces = TRACES + LOCAL_SUFFIX
    materialize = not has_trace_projection(local_traces)  # a cluster made before the projection
    # Tables made before a search index (those that exist and lack one) index their old parts too.
    unindexed = [
        (n, i)
        for n in (local_traces, LOGS + LOCAL_SUFFIX)
        if _exists(n)
        for i in (SEARCH_INDEX, SEARCH_LONG_INDEX)
        if not has_search_index(n, i)
    ]
    on = f" ON CLUSTER `{_identifier(cluster)}`"
    upgrade = _cluster_score_upgrade(on)
    statements = cluster_statements(cluster, days)
    for sql in [*upgrade, *statements]:
        clickhouse.command(sql, tag="schema.cluster")
    later = [_materialize_projection_ddl(local_traces, on)] if materialize else []
    later += [f"ALTER TABLE {table(n)}{on} MATERIALIZE INDEX {i} SETTINGS mutations_sync = 0" for n, i in unindexed]
    for sql in later:
        clickhouse.command(sql, tag="schema.cluster")
    return upgrade + statements + later + _backfill_run_scores()


def _cluster_score_upgrade(on: str) -> list[str]:
    """What a cluster made by an earlier release needs for runs to carry their scores: the run
    columns and the scores' InsertedAt on the local and Distributed tables (old scores stamped 0:
    settled), and the scores' Distributed table made again when it shards by ScoreId (it holds no
    data). The local scores table keeps its order by ScoreId (its reads stay right, only slower):
    moving it is a manual step (docs/cluster.md)."""
    out: list[str] = []
    runs_local, scores_local = RUNS + LOCAL_SUFFIX, SCORES + LOCAL_SUFFIX
    for name in (runs_local, RUNS):
        if _exists(name) and "ScoreNames" not in existing_columns(name):
            out += [
                f"ALTER TABLE {table(name)}{on} ADD COLUMN IF NOT EXISTS {c} {RUN_TYPES[c]}" for c in RUN_SCORE_COLUMNS
            ]
    if _exists(scores_local) and "InsertedAt" not in existing_columns(scores_local):
        out += _scores_inserted_at(table(scores_local) + on)
    if _exists(SCORES) and (
        "InsertedAt" not in existing_columns(SCORES) or SCORES_SHARDING_KEY not in _table_field(SCORES, "engine_full")
    ):
        out.append(f"DROP TABLE IF EXISTS {table(SCORES)}{on} SYNC")  # made again by cluster_statements
    return out


# --- retention --------------------------------------------------------------------------------


def set_retention(days: int) -> list[str]:
    """Change the TTL of the spans and every table derived from them. Cheap: with ttl_only_drop_parts whole daily
    parts are dropped as they expire; nothing is rewritten now (unlike a DELETE mutation)."""
    statements = []
    timed = [(TRACES, "Timestamp"), (LOOKUP, "Start"), (SPANS, "Timestamp"), (ATTRS, "Timestamp"), (ATTR_KEYS, "Day")]
    timed += [(name, time_column) for name, (_, _, time_column) in SETTLED.items()]
    timed += [(name, "Slice") for name in ROLLUPS]
    timed += [(LOGS, "TimestampTime"), (SCORES, "Timestamp")]
    for name, column in timed:
        ttl = _ttl(column, days) if days > 0 else "REMOVE TTL"
        verb = "MODIFY " + ttl if days > 0 else ttl
        statements.append(f"ALTER TABLE {table(name)} {verb} SETTINGS materialize_ttl_after_modify = 0")
    for sql in statements:
        clickhouse.command(sql, tag="schema.retention")
    _retentions.clear()
    return statements


# The TTL as the exporter writes it (its GenerateTTLExpr: the largest whole unit) and set_retention sets it.
_TTL_RE = re.compile(r"\bTTL\s+toDateTime\(\w+\)\s*\+\s*toInterval(Second|Minute|Hour|Day|Week)\((\d+)\)")
_UNIT_SECONDS = {"Second": 1, "Minute": 60, "Hour": 3600, "Day": 86400, "Week": 7 * 86400}
_RETENTION_MAX_AGE_S = 60.0  # another process's `clickhouse_retention` is seen within this
_retentions: dict[str, tuple[float, tuple[int, ...]]] = {}
_retentions_lock = threading.Lock()


def span_retentions(refresh: bool = True) -> tuple[int, ...]:
    """The retention in seconds of each table a span must be in to be found: otel_traces (its whole
    row), otel_spans (lists and trace pages) and the TraceId lookup, or their local tables on a
    cluster; from each TTL `toDateTime(<time>) + toInterval<Unit>(n)` (a table without one, or with
    a TTL of another shape, is left out). ClickHouse drops a row once that sum is <= now, at insert
    too, and the 32-bit DateTime sum wraps past 2106-02-07 06:28:15 UTC.

    Read at most once a minute (at once after ``set_retention`` here); with `refresh` False, or
    when ClickHouse cannot answer, the last value read is kept (none before the first read), so a
    caller in a hurry never waits for an engine that is down."""
    database = clickhouse.database()
    with _retentions_lock:
        seen = _retentions.get(database)
    if seen and (time.monotonic() - seen[0] < _RETENTION_MAX_AGE_S or not refresh):
        return seen[1]
    if not refresh:
        return ()
    names = [name + suffix for name in (TRACES, SPANS, LOOKUP) for suffix in ("", LOCAL_SUFFIX)]
    try:
        rows = clickhouse.query(
            "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name IN {names:Array(String)}",
            {"db": database, "names": names},
            tag="schema.retentions",
        )
    except clickhouse.ClickHouseError as exc:
        log.warning("retention unknown, kept as it was (asked again in a minute): %s", exc)
        found = seen[1] if seen else ()
    else:
        found = tuple(
            sorted(
                int(match[2]) * _UNIT_SECONDS[match[1]]
                for row in rows
                if (match := _TTL_RE.search(row["engine_full"])) and int(match[2]) > 0
            )
        )
    with _retentions_lock:
        _retentions[database] = (time.monotonic(), found)
    return found


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


def _table_field(name: str, field: str) -> str:
    """A column of the table's system.tables row (`sorting_key`: its ORDER BY spelled "a, b";
    `engine_full`), '' when the table does not exist."""
    if field not in ("sorting_key", "engine_full"):
        raise ValueError(field)
    row = clickhouse.query_one(
        f"SELECT {field} AS v FROM system.tables WHERE database = {{db:String}} AND name = {{t:String}}",
        {"db": clickhouse.database(), "t": name},
        tag="schema.table_field",
    )
    return str(row.get("v") or "")


def existing_columns(name: str = TRACES) -> dict[str, dict[str, str]]:
    """name -> {type, default_kind, comment} of a table's columns, empty if it does not exist."""
    rows = clickhouse.query(
        "SELECT name, type, default_kind, comment FROM system.columns"
        " WHERE database = {db:String} AND table = {t:String}",
        {"db": clickhouse.database(), "t": name},
        tag="schema.columns",
    )
    return {row["name"]: row for row in rows}
