"""Realistic demo traffic: OTLP ``ExportTraceServiceRequest`` protobufs for the ingest path.

What a week of a real deployment looks like, in the four attribute dialects monitoring/semantics/semconv.py reads:

* ``litellm-proxy``: clients calling the LiteLLM proxy directly. Each request is the proxy's own
  ~10 spans (FastAPI server span, ``fastapi.*`` operations, ``Received Proxy Server Request``,
  ``auth``, ``proxy_pre_call``, ``router``, ``litellm_request`` + ``raw_gen_ai_request``, and
  ``Failed Proxy Server Request`` on errors), shaped after a real capture of LiteLLM 1.108.7
  (tests/fixtures/litellm_1.108.7_spans.json): names, kinds, parents, statuses, attribute keys,
  their order and value types; streams, generation_name renames and rejected keys (401) included.
* ``agent-text2sql`` (OpenInference): text2sql -> retrieve_schema -> generate -> execute, and as a
  multi-step flow it hands the result to ``agent-analyze`` (another service, same trace).
* ``agent-analyze`` (OpenLLMetry/Traceloop): ``analyze.workflow`` with tasks, tools, LLM calls.
* ``agent-report`` (official GenAI semconv): ``invoke_agent`` -> ``chat`` / ``execute_tool``.

Agents call some models through the proxy (same trace: the proxy's spans hang under the agent's
LLM span), as real deployments do; the others go straight to the provider. Times follow a daily
and weekly rhythm (Korean office hours), every trace lies inside one UTC day and before ``now``,
and everything is drawn from one seeded RNG, so a (seed, now) pair always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from monitoring.ingest import otlp

__all__ = ["generate_requests", "count_spans", "estimate_spans", "DIALECT_SERVICES"]

MS: Final = 1_000_000
SEC: Final = 1_000_000_000
DAY_NS: Final = 86_400 * SEC

INTERNAL: Final = Span.SPAN_KIND_INTERNAL
SERVER: Final = Span.SPAN_KIND_SERVER
CLIENT: Final = Span.SPAN_KIND_CLIENT
UNSET: Final = Status.STATUS_CODE_UNSET
OK: Final = Status.STATUS_CODE_OK
ERROR: Final = Status.STATUS_CODE_ERROR

PROXY: Final = "litellm-proxy"
TEXT2SQL: Final = "agent-text2sql"
ANALYZE: Final = "agent-analyze"
REPORT: Final = "agent-report"
# Which dialect each service speaks (tests and the report use it).
DIALECT_SERVICES: Final = {"litellm": PROXY, "openinference": TEXT2SQL, "openllmetry": ANALYZE, "genai": REPORT}

# What a trace is, and how often (shares of all runs). The text2sql share includes the
# multi-step flow that continues into agent-analyze.
_SCENARIOS: Final = (("proxy", 0.45), ("text2sql", 0.22), ("analyze", 0.18), ("report", 0.15))
# Traffic per local hour (KST = UTC+9, office hours peak) and the weekend dip.
_HOURLY: Final = (
    0.15,
    0.1,
    0.08,
    0.07,
    0.07,
    0.1,
    0.2,
    0.4,
    0.8,
    1.0,
    1.0,
    0.9,
    0.7,
    0.95,
    1.0,
    1.0,
    0.9,
    0.75,
    0.5,
    0.4,
    0.35,
    0.3,
    0.25,
    0.2,
)
_WEEKEND: Final = 0.35
_TZ_OFFSET_H: Final = 9


# --- catalogue ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Model:
    alias: str  # the proxy's model_group, what users and agents ask for
    provider: str  # LiteLLM's custom_llm_provider
    provider_model: str  # the deployment's model, LiteLLM's gen_ai.request.model
    input_price: float  # USD per token, 0.0 for the self-hosted model LiteLLM cannot price
    output_price: float
    ttft_s: float  # time to first token
    tokens_per_s: float
    api_base: str  # as LiteLLM reports it in hidden_params
    self_hosted: bool = False


MODELS: Final = {
    m.alias: m
    for m in (
        Model("gpt-4o", "openai", "gpt-4o-2024-08-06", 2.5e-6, 1e-5, 0.45, 70, "https://api.openai.com"),
        Model("gpt-4o-mini", "openai", "gpt-4o-mini-2024-07-18", 1.5e-7, 6e-7, 0.3, 95, "https://api.openai.com"),
        Model(
            "claude-3-5-sonnet",
            "anthropic",
            "claude-3-5-sonnet-20241022",
            3e-6,
            1.5e-5,
            0.7,
            55,
            "https://api.anthropic.com/v1/messages",
        ),
        # vLLM's OpenAI-compatible server, configured as openai/<model> + api_base like the capture's.
        Model(
            "qwen-235b",
            "openai",
            "Qwen/Qwen3-235B-A22B",
            0.0,
            0.0,
            0.5,
            38,
            "http://qwen-vllm.internal:8000/v1",
            self_hosted=True,
        ),
        Model(
            "text-embedding-3-small", "openai", "text-embedding-3-small", 2e-8, 0.0, 0.08, 0, "https://api.openai.com"
        ),
    )
}

_SERVICE_RESOURCES: Final[dict[str, dict[str, str]]] = {
    # LiteLLM's own resource: service.name, deployment.environment, model_id (= service name).
    PROXY: {
        "service.instance.id": "5f0c7a52-9d1e-4c3b-8a4f-2e6d9b1c7a30",
        "deployment.environment": "production",
        "model_id": PROXY,
    },
    TEXT2SQL: {"service.version": "1.8.2", "deployment.environment": "production", "host.name": "text2sql-7c9f"},
    ANALYZE: {"service.version": "0.14.0", "deployment.environment": "production", "host.name": "analyze-5d2b"},
    REPORT: {"service.version": "2.3.1", "deployment.environment": "production", "host.name": "report-8a41"},
}
_SCOPE_VERSIONS: Final = {
    "litellm": "",
    "fastapi": "0.165.0",
    "openinference.instrumentation.openai": "0.1.30",
    "opentelemetry.instrumentation.httpx": "0.59b0",
    "text2sql.agent": "",
    "traceloop.tracer": "",
    "opentelemetry.instrumentation.openai.v1": "0.40.14",
    "opentelemetry.instrumentation.anthropic": "0.40.14",
    "opentelemetry.instrumentation.openai_v2": "2.1b0",
    "report.agent": "2.3.1",
}

_USERS: Final = tuple(
    f"{n}@acme.example"
    for n in (
        "minji.kim",
        "jihoon.park",
        "seoyeon.lee",
        "dohyun.choi",
        "yuna.jung",
        "hyunwoo.kang",
        "sora.yoon",
        "taeyang.lim",
        "eunji.han",
        "jaemin.shin",
        "alex.morgan",
        "priya.shah",
        "li.wei",
        "sam.taylor",
    )
)
_TEAMS: Final = (("data-platform", "team-3f1c"), ("analytics", "team-8b22"), ("support", "team-c710"))
_REGIONS: Final = ("Seoul", "Busan", "Incheon", "Daegu", "Tokyo", "Singapore")
_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

# (question, SQL, table) for the text2sql agent; {r} region, {m} month.
_SQL_TASKS: Final = (
    (
        "What was total revenue by region in {m}?",
        "SELECT region, sum(amount) AS revenue FROM sales.orders WHERE toMonth(created_at) = {mi} GROUP BY region "
        "ORDER BY revenue DESC",
        "sales.orders",
    ),
    (
        "Top 10 customers in {r} by order count last quarter",
        "SELECT c.name, count(*) AS orders FROM sales.orders o JOIN sales.customers c ON c.id = o.customer_id "
        "WHERE c.region = '{r}' AND o.created_at >= now() - INTERVAL 3 MONTH GROUP BY c.name ORDER BY orders DESC "
        "LIMIT 10",
        "sales.customers",
    ),
    (
        "How many daily active users did we have last week?",
        "SELECT toDate(ts) AS day, uniqExact(user_id) AS dau FROM app.events WHERE ts >= today() - 7 GROUP BY day "
        "ORDER BY day",
        "app.events",
    ),
    (
        "Average delivery time per warehouse in {m}",
        "SELECT warehouse, avg(dateDiff('hour', shipped_at, delivered_at)) AS avg_hours FROM ops.shipments "
        "WHERE toMonth(shipped_at) = {mi} GROUP BY warehouse",
        "ops.shipments",
    ),
    (
        "지난달 {r} 지역 매출 합계를 알려줘",
        "SELECT sum(amount) AS revenue FROM sales.orders WHERE region = '{r}' AND toStartOfMonth(created_at) = "
        "toStartOfMonth(now() - INTERVAL 1 MONTH)",
        "sales.orders",
    ),
    (
        "Which invoices are overdue by more than 30 days?",
        "SELECT invoice_id, customer_id, amount, due_date FROM finance.invoices WHERE paid = 0 AND due_date < "
        "today() - 30 ORDER BY due_date",
        "finance.invoices",
    ),
)
_SCHEMA_DOCS: Final = {
    "sales.orders": "sales.orders(id UInt64, customer_id UInt64, region String, amount Decimal(12,2), "
    "created_at DateTime)",
    "sales.customers": "sales.customers(id UInt64, name String, region String, segment String)",
    "app.events": "app.events(ts DateTime64(3), user_id String, event LowCardinality(String), props JSON)",
    "ops.shipments": "ops.shipments(id UInt64, warehouse String, shipped_at DateTime, delivered_at DateTime)",
    "finance.invoices": "finance.invoices(invoice_id String, customer_id UInt64, amount Decimal(12,2), "
    "due_date Date, paid UInt8)",
}
_CHAT_TASKS: Final = (
    (
        "summarize-ticket",
        "Summarize this support ticket in three bullet points:\n\nCustomer reports that exports to "
        "CSV time out for workspaces with more than 50k rows since the last release.",
        "- CSV exports time out for workspaces over 50k rows\n- Started after the latest release\n"
        "- Likely regression in the streaming exporter; needs an engineering fix",
    ),
    (
        "translate",
        "Translate to Korean: 'Your order has shipped and will arrive within two business days.'",
        "주문하신 상품이 발송되었으며 영업일 기준 2일 이내에 도착할 예정입니다.",
    ),
    (
        None,
        "Write a Python function that deduplicates a list while keeping order.",
        "```python\ndef dedupe(items):\n    return list(dict.fromkeys(items))\n```",
    ),
    (
        None,
        "Draft a short email to the finance team asking for the Q3 budget numbers by Friday.",
        "Hi team,\n\nCould you share the Q3 budget figures by Friday? We need them for the planning review.\n\nThanks!",
    ),
    (
        "classify-intent",
        "Classify the intent of: 'I was charged twice for my subscription this month.'",
        '{"intent": "billing_dispute", "confidence": 0.93}',
    ),
    (
        None,
        "다음 회의록을 요약해줘: 신규 대시보드 출시 일정은 다음 주 수요일로 확정, QA는 월요일까지 완료.",
        "신규 대시보드는 다음 주 수요일 출시로 확정되었고, QA는 월요일까지 완료할 예정입니다.",
    ),
)
_CLIENT_APPS: Final = (
    ("open-webui", "open-webui/0.6.5"),
    ("batch-jobs", "OpenAI/Python 1.54.4"),
    ("support-bot", "OpenAI/Python 1.51.0"),
)


# --- failures ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    type: str  # class name (LiteLLM's error.type)
    module: str  # for the qualified exception.type
    message: str
    status_code: int  # HTTP status the proxy answers with; 0 for in-agent failures
    stacktrace: str

    @property
    def qualified_type(self) -> str:
        return f"{self.module}.{self.type}" if self.module else self.type

    def event(self, at: int) -> tuple[int, str, dict[str, Any]]:
        """The OTel ``exception`` event, as ``span.record_exception`` writes it."""
        return (
            at,
            "exception",
            {
                "exception.type": self.qualified_type,
                "exception.message": self.message,
                "exception.stacktrace": self.stacktrace,
                "exception.escaped": "False",
            },
        )


def _traceback(frames: tuple[tuple[str, int, str, str], ...], exc: str) -> str:
    lines = ["Traceback (most recent call last):"]
    for path, line, func, code in frames:
        lines += [f'  File "{path}", line {line}, in {func}', f"    {code}"]
    return "\n".join([*lines, exc])


_LITELLM_FRAMES: Final = (
    ("/usr/lib/python3.11/site-packages/litellm/main.py", 560, "acompletion", "response = await init_response"),
    (
        "/usr/lib/python3.11/site-packages/litellm/llms/custom_httpx/llm_http_handler.py",
        271,
        "async_completion",
        "response = await self._make_common_async_call(",
    ),
    (
        "/usr/lib/python3.11/site-packages/litellm/llms/custom_httpx/llm_http_handler.py",
        141,
        "_make_common_async_call",
        "raise self._handle_error(e=e, provider_config=provider_config)",
    ),
)


def _proxy_failure(rng: random.Random, model: Model) -> Failure:
    """One of the errors LiteLLM really raises for this provider, with its message shapes."""
    prov = {"openai": "OpenAIException", "anthropic": "AnthropicException"}[model.provider]
    if model.self_hosted:
        kind = rng.choices(("conn", "timeout", "internal"), (5, 3, 2))[0]
    elif model.provider == "anthropic":
        kind = rng.choices(("internal", "rate", "timeout"), (5, 4, 1))[0]
    else:
        kind = rng.choices(("rate", "context", "internal", "timeout"), (6, 2, 1, 1))[0]
    if kind == "rate":
        wait = rng.uniform(0.4, 9)
        typ, code = "RateLimitError", 429
        msg = (
            f"litellm.RateLimitError: RateLimitError: {prov} - Rate limit reached for {model.provider_model} "
            f"on tokens per min (TPM): Limit 450000, Used 449212, Requested 2381. Please try again in {wait:.3f}s."
        )
    elif kind == "context":
        typ, code = "ContextWindowExceededError", 400
        msg = (
            f"litellm.ContextWindowExceededError: litellm.BadRequestError: {prov} - This model's maximum context "
            f"length is 128000 tokens. However, your messages resulted in {rng.randint(128100, 190000)} tokens."
        )
    elif kind == "internal":
        typ, code = "InternalServerError", 500
        detail = (
            "Overloaded" if model.provider == "anthropic" else "The server had an error while processing your request."
        )
        msg = f"litellm.InternalServerError: {prov} - {detail}"
    elif kind == "timeout":
        typ, code = "Timeout", 408
        msg = f"litellm.Timeout: {prov} - Request timed out. Connection timed out after 120.0 seconds."
    else:
        typ, code = "APIConnectionError", 500
        msg = f"litellm.APIConnectionError: APIConnectionError: {prov} - Connection error."
    trace = _traceback(_LITELLM_FRAMES, f"litellm.exceptions.{typ}: {msg}")
    return Failure(typ, "litellm.exceptions", msg, code, trace)


def _sql_failure(rng: random.Random, sql: str) -> Failure:
    if rng.random() < 0.6:
        col = rng.choice(("revenue_krw", "created", "customer", "region_name"))
        typ, mod = "DatabaseError", "clickhouse_connect.driver.exceptions"
        msg = (
            f"Code: 47. DB::Exception: Missing columns: '{col}' while processing query: '{sql[:80]}...'. "
            "(UNKNOWN_IDENTIFIER)"
        )
    else:
        typ, mod = "OperationalError", "clickhouse_connect.driver.exceptions"
        msg = "Code: 159. DB::Exception: Timeout exceeded: elapsed 30.0 seconds, maximum: 30. (TIMEOUT_EXCEEDED)"
    frames = (
        ("/app/text2sql/tools.py", 88, "run_sql", "result = client.query(sql, settings=READONLY)"),
        (
            "/usr/local/lib/python3.11/site-packages/clickhouse_connect/driver/client.py",
            221,
            "query",
            "return self._query_with_context(query_context)",
        ),
        (
            "/usr/local/lib/python3.11/site-packages/clickhouse_connect/driver/httpclient.py",
            437,
            "_error_handler",
            "raise OperationalError(err_str) if retried else DatabaseError(err_str) from None",
        ),
    )
    return Failure(typ, mod, msg, 0, _traceback(frames, f"{mod}.{typ}: {msg}"))


def _tool_failure(rng: random.Random, tool: str, path: str) -> Failure:
    typ, mod, msg = rng.choice(
        (
            ("KeyError", "", "'conversion_rate'"),
            ("ValueError", "", "cannot convert float NaN to integer"),
            ("TimeoutError", "", f"{tool} did not finish within 60s"),
            (
                "HTTPStatusError",
                "httpx",
                "Server error '503 Service Unavailable' for url 'http://metrics-api.internal/v2/query'",
            ),
        )
    )
    frames = ((path, rng.randint(40, 200), tool, "return _execute(payload)"),)
    return Failure(typ, mod, msg, 0, _traceback(frames, f"{mod + '.' if mod else ''}{typ}: {msg}"))


# --- one trace being built -----------------------------------------------------------------------


@dataclass(slots=True)
class SpanRec:
    """A span before encoding; times are ns from the trace's (not yet chosen) start."""

    service: str
    scope: str
    span_id: bytes
    parent_id: bytes
    name: str
    kind: Span.SpanKind.ValueType
    start: int
    end: int
    attrs: dict[str, Any]
    status: Status.StatusCode.ValueType = UNSET
    message: str = ""
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)


class TraceBuilder:
    """Collects one trace's spans; every id and value comes from the run's RNG."""

    def __init__(self, rng: random.Random, origin: int = 0) -> None:
        self.rng = rng
        self.origin = origin  # intended absolute start (ns); placement may shift the trace slightly
        self.trace_id = self.new_id(16)
        self.spans: list[SpanRec] = []
        self.user = rng.choice(_USERS)
        self.session = f"sess-{rng.getrandbits(48):012x}"

    def new_id(self, size: int = 8) -> bytes:
        while not (n := self.rng.getrandbits(size * 8)):
            pass  # all-zero ids are invalid in OTLP
        return n.to_bytes(size, "big")

    def hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def uuid(self) -> str:
        h = self.hex(128)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def ms(self, lo: float, hi: float) -> int:
        """A duration in ns, log-uniform between lo and hi ms (latencies are skewed, not flat)."""
        return int(math.exp(self.rng.uniform(math.log(lo), math.log(hi))) * MS)

    def add(
        self,
        service: str,
        scope: str,
        span_id: bytes,
        parent: bytes,
        name: str,
        kind: Span.SpanKind.ValueType,
        start: int,
        end: int,
        attrs: dict[str, Any],
        status: Status.StatusCode.ValueType = UNSET,
        message: str = "",
        events: list[tuple[int, str, dict[str, Any]]] | None = None,
    ) -> None:
        self.spans.append(
            SpanRec(service, scope, span_id, parent, name, kind, start, end, attrs, status, message, events or [])
        )


# --- LLM calls, dialect-neutral ---------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    """One model invocation: OpenAI-style messages in, one message out, usage and timing."""

    model: Model
    messages: list[dict[str, Any]]
    output: dict[str, Any] | None  # None when the call failed
    input_tokens: int
    output_tokens: int
    duration: int  # ns
    response_id: str
    tools: list[dict[str, Any]] = field(default_factory=list)
    temperature: float = 0.2
    max_tokens: int = 1024
    embedding: bool = False
    stream: bool = False
    set_params: bool = True  # whether the client sent temperature / max_tokens

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.output and self.output.get("tool_calls") else "stop"

    @property
    def input_cost(self) -> float:
        return self.input_tokens * self.model.input_price

    @property
    def output_cost(self) -> float:
        return self.output_tokens * self.model.output_price


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _chat(
    b: TraceBuilder,
    alias: str,
    messages: list[dict[str, Any]],
    *,
    answer: str | None = None,
    tool_call: tuple[str, dict[str, Any]] | None = None,
    tools: list[dict[str, Any]] | None = None,
    context: int = 0,
    slow: float = 1.0,
) -> Call:
    """A chat completion that answers with text, or with one tool call.

    `context` is prompt the demo does not spell out (few-shot examples, chat history); a run keeps it
    fixed so that input tokens grow along the agent loop as they do in real runs.
    """
    model = MODELS[alias]
    rng = b.rng
    if tool_call:
        name, args = tool_call
        call_id = f"toolu_01{b.hex(88)}" if model.provider == "anthropic" else f"call_{b.hex(96)}"
        arguments = json.dumps(args, ensure_ascii=False)
        output: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
        }
        out_tokens = _tokens(arguments) + rng.randint(8, 30)
    else:
        output = {"role": "assistant", "content": answer or ""}
        out_tokens = _tokens(output["content"]) + rng.randint(20, 400)
    in_tokens = (
        sum(_tokens(str(m.get("content") or "")) + _tokens(str(m.get("tool_calls") or "")) + 4 for m in messages)
        + context
        + 90 * len(tools or ())
    )
    seconds = model.ttft_s * rng.lognormvariate(0, 0.35) + out_tokens / model.tokens_per_s * rng.lognormvariate(0, 0.2)
    rid = f"msg_01{b.hex(88)}" if model.provider == "anthropic" else f"chatcmpl-{b.hex(116)}"
    return Call(
        model,
        messages,
        output,
        in_tokens,
        out_tokens,
        int(seconds * slow * SEC),
        rid,
        list(tools or ()),
        temperature=rng.choice((0.0, 0.2, 0.7)),
    )


def _embed(b: TraceBuilder, text: str) -> Call:
    model = MODELS["text-embedding-3-small"]
    return Call(
        model,
        [{"role": "user", "content": text}],
        {"role": "assistant", "content": ""},
        _tokens(text) + 2,
        0,
        b.ms(60, 260),
        f"emb-{b.hex(64)}",
        embedding=True,
        temperature=0.0,
        set_params=False,
    )


def _failed(call: Call, failure: Failure, rng: random.Random) -> Call:
    """The same call, failed: no output, no usage; timeouts take the full timeout."""
    call.output = None
    call.output_tokens = 0
    if failure.type == "Timeout":
        call.duration = int(120 * SEC + rng.uniform(0, 0.3) * SEC)
    elif failure.type == "APIConnectionError":
        call.duration = int(rng.uniform(0.002, 3.1) * SEC)
    else:
        call.duration = min(call.duration, int(rng.uniform(0.08, 0.9) * SEC))
    return call


def _functions_attrs(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """Tools offered to the model as ``llm.request.functions.N.*`` (LiteLLM and OpenLLMetry alike)."""
    a: dict[str, Any] = {}
    for i, tool in enumerate(tools):
        fn, p = tool["function"], f"llm.request.functions.{i}"
        a |= {
            f"{p}.name": fn["name"],
            f"{p}.description": fn["description"],
            f"{p}.parameters": json.dumps(fn["parameters"]),
        }
    return a


def _tool_schema(name: str, description: str, **params: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {k: {"type": "string", "description": v} for k, v in params.items()},
                "required": list(params),
            },
        },
    }


_RUN_SQL: Final = _tool_schema("run_sql", "Run a read-only ClickHouse query", sql="The SQL to run")
_QUERY_WH: Final = _tool_schema("query_warehouse", "Load a metric series", metric="Metric name", window="e.g. 28d")
_RUN_PY: Final = _tool_schema("run_python", "Run pandas code on the loaded frame", code="Python code")
_FETCH: Final = _tool_schema("fetch_metrics", "Fetch KPI values for a team", team="Team", period="ISO week")
_CHART: Final = _tool_schema("render_chart", "Render a chart and return its URL", spec="Vega-lite spec")


# --- LiteLLM proxy (service litellm-proxy) -----------------------------------------------------------
# Mirrors tests/fixtures/litellm_1.108.7_spans.json (real spans of LiteLLM 1.108.7's "otel" callback):
# span names, kinds, parents, status codes, attribute keys, their order and value types.


@dataclass(frozen=True, slots=True)
class ProxyClient:
    key_alias: str
    key_hash: str
    team: tuple[str, str]  # (alias, id)
    user_agent: str
    ip: str
    user: str  # the OpenAI `user` field, LiteLLM's llm.user / end_user_id


def _proxy_client(b: TraceBuilder, key_alias: str, user_agent: str, team: tuple[str, str] | None = None) -> ProxyClient:
    # One virtual key per client app, so its hash is stable across requests.
    return ProxyClient(
        key_alias,
        _sha_hex(key_alias),
        team or b.rng.choice(_TEAMS),
        user_agent,
        f"10.0.{b.rng.randint(1, 6)}.{b.rng.randint(2, 250)}",
        b.user,
    )


@lru_cache(maxsize=64)
def _sha_hex(s: str) -> str:
    """Stable 64-hex "hashes" (LiteLLM's key hashes and deployment model_ids are sha256)."""
    return hashlib.sha256(s.encode()).hexdigest()


def _litellm_metadata(
    b: TraceBuilder, call: Call, client: ProxyClient, route: str, generation_name: str | None
) -> dict[str, Any]:
    """LiteLLM's StandardLoggingMetadata as metadata.* attributes: None becomes "", dicts their repr."""
    usage = (
        "{}"
        if call.output is None
        else str(
            {
                "completion_tokens": call.output_tokens,
                "prompt_tokens": call.input_tokens,
                "total_tokens": call.input_tokens + call.output_tokens,
                "completion_tokens_details": None,
                "prompt_tokens_details": None,
            }
        )
    )
    # What the client sent as metadata, plus the trace id and request headers the proxy adds.
    requester: dict[str, Any] = {"generation_name": generation_name} if generation_name else {}
    requester |= {
        "trace_id": b.trace_id.hex(),
        "headers": {
            "host": "litellm-proxy:4000",
            "accept": "application/json",
            "content-type": "application/json",
            "user-agent": client.user_agent,
            "content-length": str(len(json.dumps(call.messages)) + 60),
        },
        "used_client_oauth_token": False,
    }
    team_alias, team_id = client.team
    md: dict[str, Any] = {
        "user_api_key_hash": client.key_hash,
        "user_api_key_alias": client.key_alias,
        "user_api_key_spend": round(b.rng.uniform(3, 180), 6),
        "user_api_key_max_budget": "",
        "user_api_key_budget_reset_at": "",
        "user_api_key_user_spend": "",
        "user_api_key_user_max_budget": "",
        "user_api_key_team_spend": round(b.rng.uniform(200, 900), 4),
        "user_api_key_team_max_budget": 1000.0,
        "user_api_key_team_id": team_id,
        "user_api_key_org_id": "",
        "user_api_key_org_alias": "",
        "user_api_key_project_id": "",
        "user_api_key_project_alias": "",
        "user_api_key_user_id": client.user,
        "user_api_key_team_alias": team_alias,
        "user_api_key_user_email": client.user,
        "user_api_key_end_user_id": client.user,
        "user_api_key_request_route": route,
        "spend_logs_metadata": "",
        "requester_ip_address": client.ip,
        "user_agent": client.user_agent,
        "requester_metadata": str(requester),
        "prompt_management_metadata": "",
        "applied_guardrails": "[]",
        "mcp_tool_call_metadata": "",
        "vector_store_request_metadata": "",
        "routing_decision": "",
        "usage_object": usage,
        "requester_custom_headers": "{}",
        "cold_storage_object_key": "",
        "user_api_key_auth_metadata": "{}",
        "team_alias": team_alias,
        "team_id": team_id,
        "used_client_oauth_token": False,
    }
    return {f"metadata.{k}": v for k, v in md.items()}


def _litellm_parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """LiteLLM's OTel 'parts' message format (``_transform_messages_to_otel_semantic_conventions``)."""
    out = []
    for m in messages:
        content = m.get("content")
        msg: dict[str, Any] = {
            "role": m["role"],
            "parts": [{"type": "text", "content": content}] if isinstance(content, str) else [],
        }
        for key in ("tool_calls", "tool_call_id"):
            if key in m:
                msg[key] = m[key]
        out.append(msg)
    return out


_COST_EXTRAS: Final = (
    "discount_percent",
    "discount_amount",
    "margin_percent",
    "margin_fixed_amount",
    "margin_total_amount",
)


def _litellm_request_attrs(
    b: TraceBuilder, call: Call, client: ProxyClient, route: str, call_id: str, generation_name: str | None
) -> dict[str, Any]:
    """The ``litellm_request`` span's attributes, in LiteLLM's order and with its value types."""
    m = call.model
    ok = call.output is not None
    cost = call.input_cost + call.output_cost
    a = _litellm_metadata(b, call, client, route, generation_name)
    if ok:
        headers = (
            {}
            if call.stream
            else {
                "x-litellm-model-group": m.alias,
                "x-litellm-attempted-retries": 0,
                "x-litellm-attempted-fallbacks": 0,
            }
        )
        hidden = {
            "model_id": _sha_hex(m.provider_model),
            "cache_key": None,
            "api_base": "" if call.stream else m.api_base,
            "response_cost": cost,
            "additional_headers": headers,
        }
    else:
        hidden = {
            "model_id": None,
            "cache_key": None,
            "api_base": None,
            "response_cost": 0.0,
            "additional_headers": None,
        }
    hidden |= {
        "litellm_overhead_time_ms": None,
        "batch_models": None,
        "batch_successful_requests": None,
        "batch_failed_requests": None,
        "litellm_model_name": f"{m.provider}/{m.provider_model}" if ok else None,
        "usage_object": None,
    }
    a["hidden_params"] = json.dumps(hidden)
    a |= {
        "http.route": route,
        "litellm.model_group": m.alias,
        "litellm.provider.model": f"{m.provider}/{m.provider_model}",
    }
    if ok:  # cost 0.0 for a model LiteLLM has no price for (our self-hosted qwen-235b)
        a |= {
            "gen_ai.cost.input_cost": call.input_cost,
            "gen_ai.cost.output_cost": call.output_cost,
            "gen_ai.cost.total_cost": cost,
            "gen_ai.cost.tool_usage_cost": 0.0,
            "gen_ai.cost.original_cost": cost,
        }
        a |= {f"gen_ai.cost.{k}": 0.0 for k in _COST_EXTRAS}
    call_type = "aembedding" if call.embedding else "acompletion"
    a |= {"gen_ai.request.model": m.provider_model, "llm.request.type": call_type, "gen_ai.system": m.provider}
    if call.set_params:  # only when the client sent them
        a |= {"gen_ai.request.max_tokens": call.max_tokens, "gen_ai.request.temperature": call.temperature}
    a["llm.is_streaming"] = str(call.stream)  # the Python repr, not a bool
    if client.user:
        a["llm.user"] = client.user
    a |= {"gen_ai.response.id": call.response_id if ok else call_id, "litellm.call_id": call_id}
    if ok:
        a |= {
            "gen_ai.response.model": m.alias,
            "gen_ai.usage.total_tokens": call.input_tokens + call.output_tokens,
            "gen_ai.usage.output_tokens": call.output_tokens,
            "gen_ai.usage.input_tokens": call.input_tokens,
        }
    a |= _functions_attrs(call.tools)
    if not call.embedding:  # an embedding request has `input`, not `messages`
        a["gen_ai.input.messages"] = json.dumps(_litellm_parts(call.messages))
    a["gen_ai.operation.name"] = call_type
    if ok and not call.embedding:
        out = _litellm_parts([call.output])[0] | {"finish_reason": call.finish_reason}  # type: ignore[list-item]
        a |= {
            "gen_ai.output.messages": json.dumps([out]),
            "gen_ai.response.finish_reasons": json.dumps([call.finish_reason]),
        }
        for tc in call.output.get("tool_calls") or ():  # type: ignore[union-attr]
            a |= {
                "gen_ai.completion.0.function_call.arguments": tc["function"]["arguments"],
                "gen_ai.completion.0.function_call.name": tc["function"]["name"],
            }
    return a


def _raw_request_attrs(call: Call, created: int) -> dict[str, Any]:
    """``raw_gen_ai_request``: the provider's raw response as ``llm.<provider>.<field>``, non-scalars as repr.

    (With mock deployments the capture shows only ``stringified_raw_response``; a real provider
    answers JSON, which LiteLLM splits into one attribute per top-level field. Streams carry none.)
    """
    if call.stream or call.output is None:
        return {}
    p = f"llm.{call.model.provider}"
    if call.embedding:
        return {
            f"{p}.object": "list",
            f"{p}.model": call.model.provider_model,
            f"{p}.usage": str({"prompt_tokens": call.input_tokens, "total_tokens": call.input_tokens}),
        }
    return {
        f"{p}.id": call.response_id,
        f"{p}.object": "chat.completion",
        f"{p}.created": created,
        f"{p}.model": call.model.provider_model,
        f"{p}.choices": str([{"index": 0, "message": call.output, "finish_reason": call.finish_reason}]),
        f"{p}.usage": str(
            {
                "prompt_tokens": call.input_tokens,
                "completion_tokens": call.output_tokens,
                "total_tokens": call.input_tokens + call.output_tokens,
            }
        ),
    }


_PROXY_FRAMES: Final = (
    (
        "/usr/lib/python3.11/site-packages/litellm/proxy/proxy_server.py",
        12326,
        "chat_completion",
        "result: Final = await base_llm_response_processor.base_process_llm_request(",
    ),
    (
        "/usr/lib/python3.11/site-packages/litellm/proxy/common_request_processing.py",
        2919,
        "_process_llm_request",
        "responses = await llm_responses",
    ),
    (
        "/usr/lib/python3.11/site-packages/litellm/router.py",
        3167,
        "acompletion",
        "response = await self.async_function_with_fallbacks(**kwargs)",
    ),
)


def _frames_only(trace: str) -> str:
    """LiteLLM's error.stack_trace: the frames, without the 'Traceback' header and the exception line."""
    lines = trace.split("\n")[1:-1]
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class _ProxyRequest:
    """One request inside the proxy being recorded: its span ids, route and timeline (ns)."""

    b: TraceBuilder
    call: Call
    route: str
    endpoint_fn: str
    server: bytes
    received: bytes
    req: bytes
    d0: int  # auth dependency starts
    e0: int  # the endpoint starts
    r0: int  # the router starts
    llm0: int  # the provider call starts
    llm1: int  # ... and ends

    def litellm(
        self,
        span_id: bytes,
        parent_id: bytes,
        name: str,
        kind: Span.SpanKind.ValueType,
        s: int,
        e: int,
        attrs: dict[str, Any],
        status: Status.StatusCode.ValueType = OK,
        events: list[tuple[int, str, dict[str, Any]]] | None = None,
    ) -> None:
        self.b.add(PROXY, "litellm", span_id, parent_id, name, kind, s, e, attrs, status, "", events)

    def service(self, name: str, s: int, e: int, call_type: str) -> None:
        self.litellm(self.b.new_id(), self.received, name, INTERNAL, s, e, {"call_type": call_type, "service": name})

    def endpoint(self, e1: int, attrs: dict[str, Any], status: Status.StatusCode.ValueType = UNSET) -> None:
        self.b.add(
            PROXY, "fastapi", self.b.new_id(), self.server, "fastapi.endpoint", INTERNAL, self.e0, e1, attrs, status
        )


# What the proxy's "Received Proxy Server Request" span gets from how the call went:
# (its end, the server span's end, attributes after url.path/http.route, status, events).
_Received = tuple[int, int, dict[str, Any], Status.StatusCode.ValueType, list[tuple[int, str, dict[str, Any]]]]


def proxy_request(
    b: TraceBuilder,
    parent: bytes,
    start: int,
    call: Call,
    client: ProxyClient,
    *,
    failure: Failure | None = None,
    generation_name: str | None = None,
) -> int:
    """The LiteLLM proxy's spans for one request; returns the end time.

    FastAPI's server span with ``fastapi.dependencies`` (auth), ``fastapi.endpoint`` and, on success,
    ``fastapi.serialization``; LiteLLM's ``Received Proxy Server Request`` (opened during auth: its
    parent is the caller's span when a traceparent came in, else the auth dependency) with ``auth``,
    ``proxy_pre_call``, ``router`` x2 and ``litellm_request`` -> ``raw_gen_ai_request`` (both renamed
    by metadata.generation_name). A failed call has one router span, no raw span, an Error endpoint
    and a ``Failed Proxy Server Request``; 5xx also marks the server span Error.
    """
    route = "/v1/embeddings" if call.embedding else "/v1/chat/completions"
    endpoint_fn = "litellm.proxy.proxy_server." + ("embeddings" if call.embedding else "chat_completion")
    call_id = b.uuid()
    server, deps, received, req = b.new_id(), b.new_id(), b.new_id(), b.new_id()
    status_code = failure.status_code if failure else 200
    team_alias, team_id = client.team
    team = {"metadata.user_api_key_team_id": team_id, "metadata.user_api_key_team_alias": team_alias}

    # Timeline (ns from `start`), shaped like the capture.
    d0 = start + b.ms(0.3, 0.45)
    d1 = d0 + (b.ms(8, 70) if b.rng.random() < 0.05 else b.ms(1.5, 4))  # auth; sometimes a key-cache miss
    e0 = d1 + b.ms(0.1, 0.5)
    pre0 = e0 + b.ms(0.3, 0.6)
    pre1 = pre0 + b.ms(0.05, 0.2)
    r0 = pre1 + b.ms(0.6, 1.2)
    llm0 = r0 + b.ms(0.3, 0.8)
    llm1 = llm0 + call.duration
    first_chunk = llm0 + min(call.duration, int(call.model.ttft_s * SEC))
    p = _ProxyRequest(b, call, route, endpoint_fn, server, received, req, d0, e0, r0, llm0, llm1)

    p.service("auth", d0 + 200_000, d1 - 100_000, route)
    p.service("proxy_pre_call", pre0, pre1, "add_litellm_data_to_request")
    name = generation_name or "litellm_request"
    attrs = _litellm_request_attrs(b, call, client, route, call_id, generation_name)
    if failure is None:
        recv_end, end, recv_attrs, recv_status, recv_events = _proxy_answered(p, name, attrs, first_chunk, team)
    else:
        recv_end, end, recv_attrs, recv_status, recv_events = _proxy_failed(p, name, attrs, failure, team)
    p.litellm(
        received,
        parent or deps,
        "Received Proxy Server Request",
        SERVER,
        d0 + 200_000,
        recv_end,
        {"url.path": route, "http.route": route} | recv_attrs,
        recv_status,
        recv_events,
    )
    b.add(PROXY, "fastapi", deps, server, "fastapi.dependencies", INTERNAL, d0, d1, {"code.function.name": endpoint_fn})
    status = ERROR if status_code >= 500 else UNSET  # FastAPI marks only 5xx as a server error
    b.add(
        PROXY, "fastapi", server, parent, f"POST {route}", SERVER, start, end, _server_attrs(route, status_code), status
    )
    return end


def _server_attrs(route: str, status_code: int) -> dict[str, Any]:
    """FastAPI's server span of the proxy (OTel HTTP semconv keys, as captured)."""
    attrs: dict[str, Any] = {
        "server.address": "litellm-proxy",
        "server.port": 4000,
        "url.path": route,
        "url.scheme": "http",
        "http.request.method": "POST",
        "network.protocol.version": "1.1",
        "http.route": route,
        "http.response.status_code": status_code,
    }
    if status_code >= 500:  # FastAPI marks only 5xx as a server error
        attrs["error.type"] = str(status_code)
    return attrs


def _proxy_answered(
    p: _ProxyRequest, name: str, attrs: dict[str, Any], first_chunk: int, team: dict[str, str]
) -> _Received:
    """A call the provider answered: two router spans, ``litellm_request`` -> ``raw_gen_ai_request``,
    the endpoint and, unless streamed, ``fastapi.serialization``."""
    b, call = p.b, p.call
    # The router span of the call ends at the first chunk when streaming; the endpoint returns then too.
    router_end = (first_chunk if call.stream else p.llm1) + b.ms(0.5, 2.5)
    p.service("router", p.r0, router_end, "aembedding" if call.embedding else "acompletion")
    p.service("router", p.r0 + b.ms(0.08, 0.15), p.r0 + b.ms(0.2, 0.35), "async_get_available_deployment")
    p.litellm(p.req, p.received, name, INTERNAL, p.llm0, p.llm1, attrs)
    created = (b.origin + p.llm1) // SEC  # the provider's unix-seconds stamp
    raw_name = name if name != "litellm_request" else "raw_gen_ai_request"  # generation_name renames both
    p.litellm(b.new_id(), p.req, raw_name, INTERNAL, p.llm0, p.llm1, _raw_request_attrs(call, created))
    e1 = router_end + b.ms(0.8, 2.5)
    end = max(e1, p.llm1) + b.ms(0.5, 1.2)
    if not call.stream:
        s0 = e1 + b.ms(0.05, 0.1)
        end = s0 + b.ms(0.05, 0.1) + b.ms(0.5, 1.2)
        span_id, code = b.new_id(), {"code.function.name": p.endpoint_fn}
        serialized = s0 + b.ms(0.04, 0.1)
        b.add(PROXY, "fastapi", span_id, p.server, "fastapi.serialization", INTERNAL, s0, serialized, code)
    # A stream's handoff time is not recorded.
    handoff = {} if call.stream else {"litellm.preprocessing.duration_ms": (p.llm0 - p.d0) / MS}
    p.endpoint(e1, {"code.function.name": p.endpoint_fn})
    return p.llm1, end, handoff | team | {"http.response.status_code": 200}, OK, []


def _proxy_failed(
    p: _ProxyRequest, name: str, attrs: dict[str, Any], failure: Failure, team: dict[str, str]
) -> _Received:
    """A call that failed: one router span, an Error ``litellm_request`` with the exception, the
    proxy's ``Failed Proxy Server Request`` and an Error endpoint."""
    b, call = p.b, p.call
    p.service("router", p.r0 + b.ms(0.08, 0.15), p.r0 + b.ms(0.2, 0.35), "async_get_available_deployment")
    short = failure.message
    long = (
        f"{short}\n\nLiteLLM: model group '{call.model.alias}' failed with the error above. No fallback was attempted."
    )
    status_code = failure.status_code
    err = {"error.code": str(status_code), "http.response.status_code": status_code, "error.type": failure.type}
    attrs |= err | {
        "error.message": short,
        "error.llm_provider": call.model.provider,
        "error.stack_trace": _frames_only(failure.stacktrace),
    }
    p.litellm(p.req, p.received, name, INTERNAL, p.llm0, p.llm1, attrs, ERROR, [failure.event(p.llm1 - 20_000)])
    recv_end = p.llm1 + b.ms(2, 40)  # the proxy's failure handling
    failed = {"exception": long} | team
    p.litellm(
        b.new_id(),
        p.received,
        "Failed Proxy Server Request",
        INTERNAL,
        recv_end - 50_000,
        recv_end - 30_000,
        failed,
        ERROR,
    )
    proxy_trace = _traceback(_PROXY_FRAMES + _LITELLM_FRAMES, f"{failure.qualified_type}: {long}")
    recv_attrs = (
        team
        | err
        | {
            "error.message": long,
            "error.llm_provider": call.model.provider,
            "error.stack_trace": _frames_only(proxy_trace),
            "litellm.preprocessing.duration_ms": (p.llm0 - p.d0) / MS,
        }
    )
    exception = {
        "exception.type": failure.qualified_type,
        "exception.message": long,
        "exception.stacktrace": proxy_trace,
        "exception.escaped": "False",
    }
    e1 = recv_end + b.ms(0.2, 1)
    end = e1 + b.ms(0.3, 1)
    p.endpoint(e1, {"code.function.name": p.endpoint_fn, "error.type": "litellm.proxy._types.ProxyException"}, ERROR)
    return recv_end, end, recv_attrs, ERROR, [(recv_end - 60_000, "exception", exception)]


def proxy_auth_failure(b: TraceBuilder, start: int, client: ProxyClient, call: Call) -> int:
    """A revoked or mistyped virtual key (401): as captured, LiteLLM then records the request's
    attributes on the ``fastapi.dependencies`` span, and no ``litellm_request`` span exists."""
    route = "/v1/chat/completions"
    endpoint_fn = "litellm.proxy.proxy_server.chat_completion"
    server, deps, received = b.new_id(), b.new_id(), b.new_id()
    d0 = start + b.ms(0.3, 0.45)
    d1 = d0 + b.ms(2, 6)
    msg = (
        f"Authentication Error, Invalid proxy server token passed. Received API Key = sk-...Xf3a, Key Hash "
        f"(Token) ={_sha_hex(b.hex(64))}. Unable to find token in cache or `LiteLLM_VerificationTokenTable`"
    )
    trace = _traceback(
        (
            (
                "/usr/lib/python3.11/site-packages/litellm/proxy/auth/user_api_key_auth.py",
                1398,
                "_user_api_key_auth_builder",
                "raise ProxyException(",
            ),
        ),
        f"litellm.proxy._types.ProxyException: {msg}",
    )
    err = {"error.code": "401", "http.response.status_code": 401}
    event = [
        (
            d1 - 100_000,
            "exception",
            {
                "exception.type": "litellm.proxy._types.ProxyException",
                "exception.message": msg,
                "exception.stacktrace": trace,
                "exception.escaped": "False",
            },
        )
    ]
    # The request never reached a key, so almost all metadata is empty.
    known = {
        "metadata.user_api_key_hash": _sha_hex(b.hex(64)),
        "metadata.user_api_key_spend": 0.0,
        "metadata.user_api_key_request_route": route,
        "metadata.applied_guardrails": "[]",
        "metadata.usage_object": "{}",
        "metadata.user_api_key_auth_metadata": "{}",
    }
    unanswered = replace(call, output=None, output_tokens=0)
    attrs: dict[str, Any] = {"code.function.name": endpoint_fn}
    for k, v in _litellm_request_attrs(b, unanswered, client, route, b.uuid(), None).items():
        if k != "llm.user":
            attrs[k] = known.get(k, "") if k.startswith("metadata.") else v
    attrs |= err | {"error.message": msg, "error.type": "litellm.proxy._types.ProxyException"}
    b.add(PROXY, "fastapi", deps, server, "fastapi.dependencies", INTERNAL, d0, d1, attrs, ERROR, "", event)
    b.add(
        PROXY,
        "litellm",
        received,
        deps,
        "Received Proxy Server Request",
        SERVER,
        d0 + 180_000,
        d1 - 200_000,
        {"url.path": route, "http.route": route} | err | {"error.type": "ProxyException", "error.message": msg},
        ERROR,
        "",
        event,
    )
    b.add(
        PROXY,
        "litellm",
        b.new_id(),
        received,
        "Failed Proxy Server Request",
        INTERNAL,
        d1 - 260_000,
        d1 - 245_000,
        {"exception": msg},
        ERROR,
    )
    end = d1 + b.ms(0.5, 1.5)
    b.add(PROXY, "fastapi", server, b"", f"POST {route}", SERVER, start, end, _server_attrs(route, 401))
    return end


# --- how an SDK sees a failed call ----------------------------------------------------------------


def _sdk_failure(f: Failure, model: Model, via_proxy: bool) -> Failure:
    """The client SDK's exception for a failed call, as the calling agent records it.

    Through the proxy the OpenAI SDK sees LiteLLM's error body; direct, the provider's own SDK
    (openai or anthropic) sees the provider's message.
    """
    sdk = "anthropic" if model.provider == "anthropic" and not via_proxy else "openai"
    typ = {429: "RateLimitError", 400: "BadRequestError", 408: "APITimeoutError"}.get(
        f.status_code, "InternalServerError"
    )
    if f.type == "APIConnectionError":
        typ, msg = "APIConnectionError", "Connection error."
    elif typ == "APITimeoutError":
        msg = "Request timed out."
    else:
        text = f.message if via_proxy else f.message.split("Exception - ", 1)[-1]
        body = {"error": {"message": text, "type": None, "param": None, "code": str(f.status_code)}}
        msg = f"Error code: {f.status_code} - {body}"
    frames = (
        (
            f"/usr/local/lib/python3.11/site-packages/{sdk}/_base_client.py",
            1594,
            "request",
            "raise self._make_status_error_from_response(err.response) from None",
        ),
    )
    return Failure(typ, sdk, msg, f.status_code, _traceback(frames, f"{sdk}.{typ}: {msg}"))


def _maybe_llm_failure(b: TraceBuilder, call: Call, p: float) -> Failure | None:
    """With probability p, fail the call (provider-side error) and return the proxy-side failure."""
    if b.rng.random() >= p:
        return None
    failure = _proxy_failure(b.rng, call.model)
    _failed(call, failure, b.rng)
    return failure


def _via_proxy(
    b: TraceBuilder,
    parent: bytes,
    start: int,
    call: Call,
    client: ProxyClient | None,
    failure: Failure | None,
    generation_name: str | None = None,
) -> int:
    """Time the call: through the proxy (its spans become children of `parent`) or straight to the provider."""
    if client is None:
        return start + call.duration
    net = b.ms(0.4, 2.5)
    return proxy_request(b, parent, start + net, call, client, failure=failure, generation_name=generation_name) + net


# --- OpenInference: agent-text2sql ------------------------------------------------------------------

_OI_LLM_SCOPE: Final = "openinference.instrumentation.openai"
_OI_AGENT_SCOPE: Final = "text2sql.agent"


def _oi_messages(prefix: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenInference's flattened messages: llm.input_messages.N.message.role/content/tool_calls..."""
    a: dict[str, Any] = {}
    for i, m in enumerate(messages):
        p = f"{prefix}.{i}.message"
        a[f"{p}.role"] = m["role"]
        if m.get("content"):
            a[f"{p}.content"] = m["content"]
        if "tool_call_id" in m:
            a[f"{p}.tool_call_id"] = m["tool_call_id"]
        for j, tc in enumerate(m.get("tool_calls") or ()):
            a[f"{p}.tool_calls.{j}.tool_call.id"] = tc["id"]
            a[f"{p}.tool_calls.{j}.tool_call.function.name"] = tc["function"]["name"]
            a[f"{p}.tool_calls.{j}.tool_call.function.arguments"] = tc["function"]["arguments"]
    return a


def _oi_llm(
    b: TraceBuilder, parent: bytes, start: int, call: Call, client: ProxyClient | None, failure: Failure | None
) -> int:
    """An OpenInference LLM (or EMBEDDING) span; through the proxy there is an httpx client span between."""
    span = b.new_id()
    m = call.model
    model_name = m.alias if client else m.provider_model  # the proxy echoes the alias
    if call.embedding:
        a: dict[str, Any] = {
            "openinference.span.kind": "EMBEDDING",
            "embedding.model_name": model_name,
            "embedding.embeddings.0.embedding.text": call.messages[0]["content"],
            "input.value": json.dumps({"input": call.messages[0]["content"], "model": m.alias}),
            "input.mime_type": "application/json",
            "llm.token_count.prompt": call.input_tokens,
            "llm.token_count.total": call.input_tokens,
        }
        name = "CreateEmbeddingResponse"
    else:
        request = {"messages": call.messages, "model": m.alias, "temperature": call.temperature}
        a = {
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.system": "openai",
            "llm.model_name": model_name,
            "llm.invocation_parameters": json.dumps({"model": m.alias, "temperature": call.temperature}),
            "input.value": json.dumps(request, ensure_ascii=False),
            "input.mime_type": "application/json",
            **_oi_messages("llm.input_messages", call.messages),
        }
        for i, tool in enumerate(call.tools):
            a[f"llm.tools.{i}.tool.json_schema"] = json.dumps(tool)
        if call.output is not None:
            a |= _oi_messages("llm.output_messages", [call.output])
            a |= {
                "output.value": json.dumps(
                    {
                        "id": call.response_id,
                        "model": model_name,
                        "choices": [{"index": 0, "message": call.output, "finish_reason": call.finish_reason}],
                    },
                    ensure_ascii=False,
                ),
                "output.mime_type": "application/json",
                "llm.token_count.prompt": call.input_tokens,
                "llm.token_count.completion": call.output_tokens,
                "llm.token_count.total": call.input_tokens + call.output_tokens,
            }
        name = "ChatCompletion"
    a |= {"user.id": b.user, "session.id": b.session}
    t = start + b.ms(0.2, 1.5)
    if client:
        http = b.new_id()
        route = "/v1/embeddings" if call.embedding else "/v1/chat/completions"
        h0 = t
        t = _via_proxy(b, http, h0, call, client, failure)
        status = failure.status_code if failure else 200
        b.add(
            TEXT2SQL,
            "opentelemetry.instrumentation.httpx",
            http,
            span,
            "POST",
            CLIENT,
            h0,
            t,
            {"http.method": "POST", "http.url": f"http://litellm-proxy:4000{route}", "http.status_code": status},
            ERROR if status >= 400 else UNSET,
        )
    else:
        t = _via_proxy(b, span, t, call, None, failure)
    end = t + b.ms(0.3, 3)
    if failure:
        err = _sdk_failure(failure, call.model, client is not None)
        b.add(
            TEXT2SQL,
            _OI_LLM_SCOPE,
            span,
            parent,
            name,
            INTERNAL,
            start,
            end,
            a,
            ERROR,
            f"{err.type}: {err.message}",
            [err.event(end - 10_000)],
        )
    else:
        b.add(TEXT2SQL, _OI_LLM_SCOPE, span, parent, name, INTERNAL, start, end, a, OK)
    return end


def _oi_span(
    b: TraceBuilder,
    span: bytes,
    parent: bytes,
    name: str,
    kind: str,
    start: int,
    end: int,
    inp: str,
    out: str | None,
    extra: dict[str, Any] | None = None,
    failure: Failure | None = None,
) -> None:
    """A user-made OpenInference span (AGENT/CHAIN/TOOL/RETRIEVER)."""
    a: dict[str, Any] = {"openinference.span.kind": kind, "input.value": inp, "input.mime_type": "text/plain"}
    if out is not None:
        a |= {"output.value": out, "output.mime_type": "text/plain"}
    a |= (extra or {}) | {"user.id": b.user, "session.id": b.session}
    if failure:
        b.add(
            TEXT2SQL,
            _OI_AGENT_SCOPE,
            span,
            parent,
            name,
            INTERNAL,
            start,
            end,
            a,
            ERROR,
            f"{failure.type}: {failure.message}",
            [failure.event(end - 5_000)],
        )
    else:
        b.add(TEXT2SQL, _OI_AGENT_SCOPE, span, parent, name, INTERNAL, start, end, a, OK)


_TEXT2SQL_SYSTEM: Final = (
    "You translate questions into ClickHouse SQL. Use only the tables given. "
    "Call run_sql with the query; never modify data."
)


def _retrieve_schema(b: TraceBuilder, root: bytes, start: int, question: str, table: str) -> tuple[int, list[str]]:
    """Schema retrieval (OpenInference RETRIEVER): embed the question, pick the closest table docs.
    Returns the end time and the tables picked, the asked one first."""
    retr = b.new_id()
    t = _oi_llm(b, retr, start + b.ms(0.2, 1), _embed(b, question), None, None)
    tables = [table, *b.rng.sample([k for k in _SCHEMA_DOCS if k != table], 2)]
    docs: dict[str, Any] = {}
    for i, name in enumerate(tables):
        p = f"retrieval.documents.{i}.document"
        docs |= {
            f"{p}.id": name,
            f"{p}.content": _SCHEMA_DOCS[name],
            f"{p}.score": round(0.91 - 0.13 * i - b.rng.random() / 20, 4),
        }
    t += b.ms(2, 25)  # vector search
    _oi_span(b, retr, root, "retrieve_schema", "RETRIEVER", start, t, question, None, docs)
    return t, tables


def run_text2sql(b: TraceBuilder, start: int = 0) -> tuple[int, Failure | None]:
    """text2sql -> retrieve_schema -> generate -> execute (-> fix and retry) -> answer; sometimes -> analyze."""
    rng = b.rng
    question, sql, table = rng.choice(_SQL_TASKS)
    month = rng.randrange(12)
    region = rng.choice(_REGIONS)
    question = question.format(m=_MONTHS[month], r=region)
    sql = sql.format(mi=month + 1, r=region)
    via = rng.random() < 0.55  # qwen-235b lives behind the proxy; gpt-4o goes direct
    client = _proxy_client(b, "agent-text2sql", "OpenAI/Python 1.54.4", _TEAMS[0]) if via else None
    model = "qwen-235b" if via else "gpt-4o"
    ctx = rng.randint(400, 3000)
    n_rows, top = 0, 0.0
    root = b.new_id()
    t = start + b.ms(1, 6)

    t, tables = _retrieve_schema(b, root, t, question, table)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": f"{_TEXT2SQL_SYSTEM}\nTables:\n" + "\n".join(_SCHEMA_DOCS[x] for x in tables)},
        {"role": "user", "content": question},
    ]
    failed: Failure | None = None
    rows = ""
    for attempt in range(2):
        # generate: the model answers with a run_sql tool call.
        gen = b.new_id()
        g0 = t + b.ms(0.2, 1)
        call = _chat(b, model, list(messages), tool_call=("run_sql", {"sql": sql}), tools=[_RUN_SQL], context=ctx)
        llm_fail = _maybe_llm_failure(b, call, 0.02)
        t = _oi_llm(b, gen, g0 + b.ms(0.1, 0.5), call, client, llm_fail) + b.ms(0.1, 1)
        if llm_fail:
            failed = _sdk_failure(llm_fail, call.model, via)
            _oi_span(b, gen, root, "generate", "CHAIN", g0, t, question, None, failure=failed)
            break
        _oi_span(b, gen, root, "generate", "CHAIN", g0, t, question, sql)
        messages = [*messages, call.output]  # type: ignore[list-item]
        tool_call = call.output["tool_calls"][0]  # type: ignore[index]

        # execute: run the SQL; sometimes slow, sometimes wrong.
        ex = b.new_id()
        e0 = t + b.ms(0.1, 0.8)
        slow = rng.random() < 0.03
        t = e0 + (b.ms(20_000, 180_000) if slow else b.ms(15, 1800))
        tool_attrs = {
            "tool.name": "run_sql",
            "tool.description": _RUN_SQL["function"]["description"],
            "tool.parameters": json.dumps(_RUN_SQL["function"]["parameters"]),
        }
        if rng.random() < 0.045:
            failed = _sql_failure(rng, sql)
            _oi_span(
                b, ex, root, "execute", "TOOL", e0, t, tool_call["function"]["arguments"], None, tool_attrs, failed
            )
            messages.append({"role": "tool", "tool_call_id": tool_call["id"], "content": f"Error: {failed.message}"})
            if attempt == 0 and rng.random() < 0.6:
                failed = None  # the agent feeds the error back and regenerates
                continue
            break
        n_rows, top = rng.randint(1, 40), round(rng.uniform(1e3, 9e6), 2)
        rows = json.dumps({"columns": ["key", "value"], "rows": n_rows, "sample": [[region, top]]})
        _oi_span(b, ex, root, "execute", "TOOL", e0, t, tool_call["function"]["arguments"], rows, tool_attrs)
        messages.append({"role": "tool", "tool_call_id": tool_call["id"], "content": rows})
        break

    answer = None
    if failed is None:
        answer = (
            f"I ran the query on {table} and got {n_rows} rows. The largest value is {top:,.0f}; "
            "the SQL is attached if you want to refine it."
        )
        call = _chat(b, "gpt-4o-mini", messages, answer=answer, context=ctx // 4)
        t = _oi_llm(b, root, t + b.ms(0.2, 1), call, None, None)
        if rng.random() < 0.35:
            t = _flow_to_analyze(b, root, t, question, rows)
    end = t + b.ms(0.5, 4)
    _oi_span(
        b,
        root,
        b"",
        "text2sql",
        "AGENT",
        start,
        end,
        question,
        answer,
        {"agent.name": "text2sql", "metadata": json.dumps({"channel": rng.choice(("slack", "web", "api"))})},
        failed,
    )
    return end, failed


def _flow_to_analyze(b: TraceBuilder, root: bytes, start: int, question: str, rows: str) -> int:
    """The multi-step flow's last hop: an OpenInference CHAIN that POSTs to agent-analyze (same trace).

    A failed analysis fails only this step: the SQL answer still goes back to the user.
    """
    step, http = b.new_id(), b.new_id()
    h0 = start + b.ms(0.2, 1)
    end, failure = run_analyze(b, http, h0 + b.ms(0.5, 3), question=f"Explain this result: {question}", data=rows)
    h1 = end + b.ms(0.5, 3)
    code = 500 if failure else 200
    b.add(
        TEXT2SQL,
        "opentelemetry.instrumentation.httpx",
        http,
        step,
        "POST",
        CLIENT,
        h0,
        h1,
        {"http.method": "POST", "http.url": "http://agent-analyze:8080/analyze", "http.status_code": code},
        ERROR if failure else UNSET,
    )
    step_failure = None
    if failure:
        msg = "Server error '500 Internal Server Error' for url 'http://agent-analyze:8080/analyze'"
        step_failure = Failure(
            "HTTPStatusError",
            "httpx",
            msg,
            0,
            _traceback(
                (("/app/text2sql/flow.py", 57, "analyze", "resp.raise_for_status()"),), f"httpx.HTTPStatusError: {msg}"
            ),
        )
    _oi_span(
        b,
        step,
        root,
        "analyze",
        "CHAIN",
        start,
        h1 + b.ms(0.1, 1),
        question,
        None if failure else "analysis attached",
        failure=step_failure,
    )
    return h1 + b.ms(0.2, 2)


# --- OpenLLMetry / Traceloop: agent-analyze -----------------------------------------------------------


def _tl_context(b: TraceBuilder, path: str) -> dict[str, Any]:
    """What the Traceloop SDK stamps on every span in a workflow, LLM spans included (empty values are skipped)."""
    a = {
        "traceloop.workflow.name": "analyze",
        "traceloop.association.properties.user_id": b.user,
        "traceloop.association.properties.session_id": b.session,
    }
    return a | {"traceloop.entity.path": path} if path else a


def _tl_span(
    b: TraceBuilder,
    span: bytes,
    parent: bytes,
    name: str,
    kind: str,
    path: str,
    start: int,
    end: int,
    inp: Any,
    out: Any,
    failure: Failure | None = None,
) -> None:
    """A Traceloop SDK decorator span: ``<name>.<kind>`` with traceloop.* attributes."""
    a: dict[str, Any] = {"traceloop.span.kind": kind, "traceloop.entity.name": name} | _tl_context(b, path)
    a["traceloop.entity.input"] = json.dumps({"args": [], "kwargs": inp}, ensure_ascii=False)
    if out is not None:
        a["traceloop.entity.output"] = json.dumps(out, ensure_ascii=False)
    if failure:
        b.add(
            ANALYZE,
            "traceloop.tracer",
            span,
            parent,
            f"{name}.{kind}",
            INTERNAL,
            start,
            end,
            a,
            ERROR,
            f"{failure.type}: {failure.message}",
            [failure.event(end - 5_000)],
        )
    else:
        b.add(ANALYZE, "traceloop.tracer", span, parent, f"{name}.{kind}", INTERNAL, start, end, a)


def _tl_llm(
    b: TraceBuilder, parent: bytes, start: int, call: Call, client: ProxyClient | None, failure: Failure | None
) -> int:
    """OpenLLMetry's ``openai.chat`` / ``anthropic.chat`` client span (it propagates trace context itself)."""
    m = call.model
    anthropic = m.provider == "anthropic" and client is None
    a: dict[str, Any] = {
        "llm.request.type": "chat",
        "gen_ai.system": "Anthropic" if anthropic else "openai",
        "gen_ai.request.model": m.provider_model if anthropic else m.alias,
        "gen_ai.request.temperature": call.temperature,
        "gen_ai.request.max_tokens": call.max_tokens,
        "llm.is_streaming": call.stream,
        "llm.user": b.user,
    } | _tl_context(b, "analyze.analyze")
    if not anthropic:
        a["gen_ai.openai.api_base"] = "http://litellm-proxy:4000/v1/" if client else "https://api.openai.com/v1/"
    a |= _functions_attrs(call.tools)
    for i, msg in enumerate(call.messages):
        a[f"gen_ai.prompt.{i}.role"] = msg["role"]
        if msg.get("content"):
            a[f"gen_ai.prompt.{i}.content"] = msg["content"]
        if "tool_call_id" in msg:
            a[f"gen_ai.prompt.{i}.tool_call_id"] = msg["tool_call_id"]
        for j, tc in enumerate(msg.get("tool_calls") or ()):
            a |= {
                f"gen_ai.prompt.{i}.tool_calls.{j}.id": tc["id"],
                f"gen_ai.prompt.{i}.tool_calls.{j}.name": tc["function"]["name"],
                f"gen_ai.prompt.{i}.tool_calls.{j}.arguments": tc["function"]["arguments"],
            }
    if call.output is not None:
        a |= {
            "gen_ai.response.model": m.alias if client else m.provider_model,
            "gen_ai.response.id": call.response_id,
            "llm.usage.total_tokens": call.input_tokens + call.output_tokens,
        }
        # The Anthropic instrumentation still writes the older usage keys.
        if anthropic:
            a |= {"gen_ai.usage.prompt_tokens": call.input_tokens, "gen_ai.usage.completion_tokens": call.output_tokens}
        else:
            a |= {
                "gen_ai.usage.input_tokens": call.input_tokens,
                "gen_ai.usage.output_tokens": call.output_tokens,
                "gen_ai.usage.cache_read_input_tokens": 0,
            }
        # Anthropic reports its own stop reasons.
        reason = {"tool_calls": "tool_use", "stop": "end_turn"}[call.finish_reason] if anthropic else call.finish_reason
        a |= {"gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": reason}
        if call.output.get("content"):
            a["gen_ai.completion.0.content"] = call.output["content"]
        for j, tc in enumerate(call.output.get("tool_calls") or ()):
            a |= {
                f"gen_ai.completion.0.tool_calls.{j}.id": tc["id"],
                f"gen_ai.completion.0.tool_calls.{j}.name": tc["function"]["name"],
                f"gen_ai.completion.0.tool_calls.{j}.arguments": tc["function"]["arguments"],
            }
    span = b.new_id()
    end = _via_proxy(b, span, start + b.ms(0.1, 0.8), call, client, failure) + b.ms(0.2, 2)
    name = "anthropic.chat" if anthropic else "openai.chat"
    scope = "opentelemetry.instrumentation.anthropic" if anthropic else "opentelemetry.instrumentation.openai.v1"
    if failure:
        err = _sdk_failure(failure, call.model, client is not None)
        a["error.type"] = err.type
        b.add(ANALYZE, scope, span, parent, name, CLIENT, start, end, a, ERROR, err.message, [err.event(end - 5_000)])
    else:
        b.add(ANALYZE, scope, span, parent, name, CLIENT, start, end, a)
    return end


_ANALYZE_QUESTIONS: Final = (
    "Why did checkout conversion drop on {d}?",
    "What drove the spike in refunds in {r}?",
    "Is the week-over-week growth in {r} signups significant?",
    "{r} 지역 이탈률이 왜 증가했는지 분석해줘",
)


def run_analyze(
    b: TraceBuilder, parent: bytes = b"", start: int = 0, question: str | None = None, data: str | None = None
) -> tuple[int, Failure | None]:
    """analyze.workflow -> load_data.task (-> query_warehouse.tool) -> analyze.agent (LLM, run_python, LLM)."""
    rng = b.rng
    region = rng.choice(_REGIONS)
    day = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    question = question or rng.choice(_ANALYZE_QUESTIONS).format(d=day, r=region)
    via = rng.random() < 0.5  # claude-3-5-sonnet through the proxy, or a provider directly
    client = _proxy_client(b, "agent-analyze", "OpenAI/Python 1.54.4", _TEAMS[1]) if via else None
    model = "claude-3-5-sonnet" if via else rng.choice(("gpt-4o-mini", "claude-3-5-sonnet"))
    wf, load, agent = b.new_id(), b.new_id(), b.new_id()
    t = start + b.ms(0.5, 3)

    # load_data: pull the metric series (occasionally a multi-minute warehouse scan).
    l0 = t
    tool = b.new_id()
    q0 = t + b.ms(0.1, 1)
    t = q0 + (b.ms(60_000, 300_000) if rng.random() < 0.03 else b.ms(80, 4000))
    series = data or json.dumps({"metric": "conversion_rate", "points": 28, "last": round(rng.uniform(0.01, 0.09), 4)})
    _tl_span(
        b,
        tool,
        load,
        "query_warehouse",
        "tool",
        "analyze.load_data",
        q0,
        t,
        {"metric": "conversion_rate", "window": "28d"},
        {"rows": 28},
    )
    t += b.ms(0.5, 20)
    _tl_span(b, load, wf, "load_data", "task", "analyze", l0, t, {"question": question}, {"series": series[:200]})

    # The agent loop: plan with a tool call, run the code, explain.
    a0 = t + b.ms(0.1, 1)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a data analyst. Use run_python for computations; explain briefly."},
        {"role": "user", "content": f"{question}\nData: {series[:300]}"},
    ]
    code = "df['conversion_rate'].pct_change().rolling(7).mean().tail(3)"
    ctx = rng.randint(200, 1500)
    call = _chat(
        b, model, list(messages), tool_call=("run_python", {"code": code}), tools=[_RUN_PY, _QUERY_WH], context=ctx
    )
    failure = _maybe_llm_failure(b, call, 0.02)
    t = _tl_llm(b, agent, a0 + b.ms(0.2, 2), call, client, failure)
    failed: Failure | None = _sdk_failure(failure, call.model, via) if failure else None
    answer = None
    if failed is None:
        messages.append(call.output)  # type: ignore[arg-type]
        tc = call.output["tool_calls"][0]  # type: ignore[index]
        py = b.new_id()
        p0 = t + b.ms(0.1, 1)
        t = p0 + b.ms(30, 2500)
        if rng.random() < 0.03:
            failed = _tool_failure(rng, "run_python", "/app/analyze/tools.py")
            _tl_span(b, py, agent, "run_python", "tool", "analyze.analyze", p0, t, {"code": code}, None, failed)
        else:
            result = f"conversion_rate 7d mean change: {rng.uniform(-15, 8):.1f}%"
            _tl_span(b, py, agent, "run_python", "tool", "analyze.analyze", p0, t, {"code": code}, result)
            messages.append({"role": "tool", "tool_call_id": tc["id"], "content": result})
            answer = (
                f"{result}. The drop lines up with the {region} payment-provider incident; excluding it, "
                "conversion is within its normal range."
            )
            final = _chat(b, model, messages, answer=answer, context=ctx)
            t = _tl_llm(b, agent, t + b.ms(0.2, 2), final, client, None)
    t += b.ms(0.2, 2)
    _tl_span(b, agent, wf, "analyze", "agent", "analyze", a0, t, {"question": question}, answer, failed)
    end = t + b.ms(0.3, 3)
    _tl_span(b, wf, parent, "analyze", "workflow", "", start, end, {"question": question}, answer, failed)
    return end, failed


# --- official GenAI semconv: agent-report -------------------------------------------------------------

_REPORT_SCOPE: Final = "report.agent"
_SEMCONV_LLM_SCOPE: Final = "opentelemetry.instrumentation.openai_v2"


def _semconv_parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GenAI semconv message JSON: parts of type text / tool_call / tool_call_response."""
    out = []
    for m in messages:
        if m["role"] == "system":
            continue  # system prompt goes to gen_ai.system_instructions
        parts: list[dict[str, Any]] = []
        if m["role"] == "tool":
            parts.append({"type": "tool_call_response", "id": m["tool_call_id"], "response": m["content"]})
        elif m.get("content"):
            parts.append({"type": "text", "content": m["content"]})
        for tc in m.get("tool_calls") or ():
            parts.append(
                {
                    "type": "tool_call",
                    "id": tc["id"],
                    "name": tc["function"]["name"],
                    "arguments": json.loads(tc["function"]["arguments"]),
                }
            )
        out.append({"role": m["role"], "parts": parts})
    return out


def _semconv_llm(
    b: TraceBuilder, parent: bytes, start: int, call: Call, client: ProxyClient | None, failure: Failure | None
) -> int:
    m = call.model
    op = "embeddings" if call.embedding else "chat"
    a: dict[str, Any] = {
        "gen_ai.operation.name": op,
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": m.alias,
        "server.address": "litellm-proxy" if client else m.api_base.split("/")[2],
        "server.port": 4000 if client else 443,
    }
    if not call.embedding:
        a |= {
            "gen_ai.request.temperature": call.temperature,
            "gen_ai.request.max_tokens": call.max_tokens,
            "gen_ai.output.type": "text",
            "gen_ai.input.messages": json.dumps(_semconv_parts(call.messages), ensure_ascii=False),
        }
        system = [msg["content"] for msg in call.messages if msg["role"] == "system"]
        if system:
            a["gen_ai.system_instructions"] = json.dumps([{"type": "text", "content": s} for s in system])
        if call.tools:
            a["gen_ai.tool.definitions"] = json.dumps(call.tools)
    if call.output is not None:
        a |= {
            "gen_ai.response.model": m.alias if client else m.provider_model,
            "gen_ai.response.id": call.response_id,
            "gen_ai.usage.input_tokens": call.input_tokens,
        }
        if not call.embedding:
            a |= {
                "gen_ai.usage.output_tokens": call.output_tokens,
                "gen_ai.response.finish_reasons": [call.finish_reason],  # a string array, as the spec says
                "gen_ai.output.messages": json.dumps(
                    [_semconv_parts([call.output])[0] | {"finish_reason": call.finish_reason}], ensure_ascii=False
                ),
            }
    span = b.new_id()
    end = _via_proxy(b, span, start + b.ms(0.1, 0.8), call, client, failure) + b.ms(0.2, 2)
    name = f"{op} {m.alias}"
    if failure:
        err = _sdk_failure(failure, call.model, client is not None)
        a["error.type"] = err.qualified_type
        b.add(REPORT, _SEMCONV_LLM_SCOPE, span, parent, name, CLIENT, start, end, a, ERROR, err.message)
    else:
        b.add(REPORT, _SEMCONV_LLM_SCOPE, span, parent, name, CLIENT, start, end, a)
    return end


def _semconv_tool(
    b: TraceBuilder,
    parent: bytes,
    start: int,
    tc: dict[str, Any],
    description: str,
    result: str | None,
    duration: int,
    failure: Failure | None = None,
) -> int:
    name = tc["function"]["name"]
    a: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": tc["id"],
        "gen_ai.tool.type": "function",
        "gen_ai.tool.description": description,
        "gen_ai.tool.call.arguments": tc["function"]["arguments"],
    }
    end = start + duration
    if failure:
        a["error.type"] = failure.qualified_type
        b.add(
            REPORT,
            _REPORT_SCOPE,
            b.new_id(),
            parent,
            f"execute_tool {name}",
            INTERNAL,
            start,
            end,
            a,
            ERROR,
            failure.message,
            [failure.event(end - 5_000)],
        )
    else:
        a["gen_ai.tool.call.result"] = result or ""
        b.add(REPORT, _REPORT_SCOPE, b.new_id(), parent, f"execute_tool {name}", INTERNAL, start, end, a)
    return end


def run_report(b: TraceBuilder, start: int = 0) -> tuple[int, Failure | None]:
    """invoke_agent report -> [embeddings] -> chat -> execute_tool fetch_metrics -> chat -> render_chart -> chat."""
    rng = b.rng
    team = rng.choice(("growth", "payments", "logistics", "support"))
    week = f"2025-W{rng.randint(1, 52):02d}"
    question = f"Generate the weekly KPI report for the {team} team ({week})."
    final_model = "qwen-235b" if rng.random() < 0.3 else "gpt-4o"
    client = _proxy_client(b, "agent-report", "OpenAI/Python 1.54.4", _TEAMS[1])
    root = b.new_id()
    t = start + b.ms(0.5, 3)
    if rng.random() < 0.4:  # look up last week's report for tone and format
        t = _semconv_llm(b, root, t, _embed(b, question), None, None)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You write concise KPI reports in Markdown. Fetch numbers before writing."},
        {"role": "user", "content": question},
    ]
    failed: Failure | None = None
    ctx = rng.randint(300, 1500)
    chart = '{"mark": "line", "encoding": {"x": "day", "y": "value"}}'
    steps = (
        ("fetch_metrics", _FETCH, {"team": team, "period": week}, (150, 5000)),
        ("render_chart", _CHART, {"spec": chart}, (300, 3000)),
    )
    for tool_name, schema, args, dur in steps:
        call = _chat(b, "gpt-4o", list(messages), tool_call=(tool_name, args), tools=[_FETCH, _CHART], context=ctx)
        t = _semconv_llm(b, root, t + b.ms(0.1, 1), call, None, None)
        tc = call.output["tool_calls"][0]  # type: ignore[index]
        messages.append(call.output)  # type: ignore[arg-type]
        fail = _tool_failure(rng, tool_name, "/srv/report/tools.py") if rng.random() < 0.02 else None
        result = (
            json.dumps(
                {
                    "active_users": rng.randint(900, 40000),
                    "revenue_krw": rng.randint(10**7, 10**9),
                    "wow_change": round(rng.uniform(-0.2, 0.3), 3),
                }
            )
            if tool_name == "fetch_metrics"
            else f"https://charts.acme.example/{b.hex(40)}.png"
        )
        t = _semconv_tool(b, root, t + b.ms(0.1, 1), tc, schema["function"]["description"], result, b.ms(*dur), fail)
        if fail:
            failed = fail
            break
        messages.append({"role": "tool", "tool_call_id": tc["id"], "content": result})
    answer = None
    if failed is None:
        answer = (
            f"# {team.title()} weekly report ({week})\n\n- Active users and revenue are in the table below.\n"
            f"- Week over week: see chart.\n\n![trend]({messages[-1]['content']})"
        )
        call = _chat(b, final_model, messages, answer=answer, context=ctx, slow=rng.uniform(1, 2.5))
        via = client if final_model == "qwen-235b" else None
        failure = _maybe_llm_failure(b, call, 0.025 if via else 0.005)
        t = _semconv_llm(b, root, t + b.ms(0.1, 1), call, via, failure)
        if failure:
            failed = _sdk_failure(failure, call.model, via is not None)
            answer = None
    end = t + b.ms(0.3, 3)
    a: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "report",
        "gen_ai.agent.id": "asst_report_v2",
        "gen_ai.agent.description": "Weekly KPI report writer",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.conversation.id": b.session,
        "user.id": b.user,
    }
    if failed:
        a["error.type"] = failed.qualified_type
        b.add(
            REPORT,
            _REPORT_SCOPE,
            root,
            b"",
            "invoke_agent report",
            INTERNAL,
            start,
            end,
            a,
            ERROR,
            failed.message,
            [failed.event(end - 5_000)],
        )
    else:
        b.add(REPORT, _REPORT_SCOPE, root, b"", "invoke_agent report", INTERNAL, start, end, a)
    return end, failed


# --- direct proxy traffic -----------------------------------------------------------------------------


def run_proxy(b: TraceBuilder, start: int = 0) -> tuple[int, Failure | None]:
    """A client (chat UI, batch job, bot) calling the proxy with no tracing of its own."""
    rng = b.rng
    app, agent = rng.choice(_CLIENT_APPS)
    client = _proxy_client(b, app, agent)
    if app == "batch-jobs":  # a service account: no end user
        client = ProxyClient(client.key_alias, client.key_hash, client.team, client.user_agent, client.ip, "")
    if app == "batch-jobs" and rng.random() < 0.3:
        call, name = _embed(b, rng.choice(_CHAT_TASKS)[1]), None
    else:
        gen_name, prompt, answer = rng.choice(_CHAT_TASKS)
        alias = rng.choices(("gpt-4o-mini", "gpt-4o", "qwen-235b", "claude-3-5-sonnet"), (35, 25, 25, 15))[0]
        messages = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": prompt}]
        call = _chat(b, alias, messages, answer=answer, context=rng.randint(0, 1200))
        call.stream = rng.random() < (0.7 if app == "open-webui" else 0.05)
        call.set_params = app != "batch-jobs"
        name = gen_name if gen_name and rng.random() < 0.6 else None
    if rng.random() < 0.01:
        auth_error = Failure("ProxyException", "litellm.proxy._types", "Authentication Error", 401, "")
        return proxy_auth_failure(b, start, client, call), auth_error
    failure = _maybe_llm_failure(b, call, 0.045)
    return proxy_request(b, b"", start, call, client, failure=failure, generation_name=name), failure


_RUNNERS: Final[dict[str, Callable[[TraceBuilder], tuple[int, Failure | None]]]] = {
    "proxy": run_proxy,
    "text2sql": run_text2sql,
    "analyze": run_analyze,
    "report": run_report,
}


# --- time: when runs happen --------------------------------------------------------------------------


def _weight(t_ns: int) -> float:
    """Relative traffic at an instant: office hours in KST, lighter weekends."""
    local_s = t_ns // SEC + _TZ_OFFSET_H * 3600
    hour = local_s // 3600 % 24
    weekday = (local_s // 86_400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return _HOURLY[hour] * (_WEEKEND if weekday >= 5 else 1.0)


def _start_times(rng: random.Random, n: int, lo: int, hi: int) -> list[int]:
    """n start times in [lo, hi) following the daily rhythm (rejection sampling), sorted."""
    out: list[int] = []
    while len(out) < n:
        t = rng.randrange(lo, hi)
        if rng.random() < _weight(t):
            out.append(t)
    return sorted(out)


# --- encoding ----------------------------------------------------------------------------------------


@cache
def _resource(service: str) -> Resource:
    attrs = {
        "service.name": service,
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": "1.45.2",
    } | _SERVICE_RESOURCES[service]
    return Resource(attributes=otlp.key_values(attrs))


def _encode(spans: list[tuple[bytes, int, SpanRec]]) -> ExportTraceServiceRequest:
    """One request: spans grouped by service (resource) and instrumentation scope, as an SDK exports them."""
    groups: dict[str, dict[str, list[Span]]] = {}
    for trace_id, t0, s in spans:
        pb = Span(
            trace_id=trace_id,
            span_id=s.span_id,
            parent_span_id=s.parent_id,
            name=s.name,
            kind=s.kind,
            start_time_unix_nano=t0 + s.start,
            end_time_unix_nano=t0 + s.end,
            attributes=otlp.key_values(s.attrs),
            status=Status(code=s.status, message=s.message),
        )
        for at, name, attrs in s.events:
            pb.events.add(time_unix_nano=t0 + at, name=name, attributes=otlp.key_values(attrs))
        groups.setdefault(s.service, {}).setdefault(s.scope, []).append(pb)
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=_resource(service),
                scope_spans=[
                    ScopeSpans(scope=InstrumentationScope(name=scope, version=_SCOPE_VERSIONS[scope]), spans=pbs)
                    for scope, pbs in scopes.items()
                ],
            )
            for service, scopes in groups.items()
        ]
    )


# --- public API ----------------------------------------------------------------------------------------


def _pick_scenario(rng: random.Random) -> str:
    return rng.choices([s for s, _ in _SCENARIOS], [w for _, w in _SCENARIOS])[0]


def build_trace(rng: random.Random, origin: int = 0) -> tuple[TraceBuilder, int]:
    """One run of a randomly chosen scenario; returns the builder and the trace's duration (ns)."""
    b = TraceBuilder(rng, origin)
    end, _ = _RUNNERS[_pick_scenario(rng)](b)
    return b, end


def _traces(days: int, runs_per_day: int, seed: int, now: datetime) -> Iterator[tuple[int, TraceBuilder, int]]:
    """(sampled start ns, builder, duration ns) of each trace, in start order: what the requests hold."""
    now_ns = int(now.timestamp()) * SEC + now.microsecond * 1000
    rng = random.Random(seed)
    for start in _start_times(rng, days * runs_per_day, now_ns - days * DAY_NS, now_ns - 60 * SEC):
        b, duration = build_trace(random.Random(rng.getrandbits(64)), start)
        yield start, b, duration


def _utc_now(now: datetime | None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def count_spans(*, days: int = 7, runs_per_day: int = 120, seed: int = 0, now: datetime | None = None) -> int:
    """The exact span count of ``generate_requests`` with the same arguments (a progress bar's total:
    the start times, hence the traces drawn, depend on `now`, so pass the same one)."""
    return sum(len(b.spans) for _, b, _ in _traces(days, runs_per_day, seed, _utc_now(now)))


def generate_requests(
    *, days: int = 7, runs_per_day: int = 120, seed: int = 0, now: datetime | None = None, batch_spans: int = 500
) -> Iterator[tuple[ExportTraceServiceRequest, int]]:
    """Yield (request, span count) covering the `days` before `now`, oldest first.

    `days * runs_per_day` traces, each lying inside one UTC day and ending before `now`; each request
    holds at most `batch_spans` spans, all from one UTC day (ClickHouse partitions by day). A trace may
    be split over two consecutive requests, as a batching exporter would do. Deterministic per (seed, now).
    """
    if batch_spans < 1:
        raise ValueError("batch_spans must be >= 1")
    now = _utc_now(now)
    now_ns = int(now.timestamp()) * SEC + now.microsecond * 1000
    pending: list[tuple[bytes, int, SpanRec]] = []
    day = None
    for start, b, duration in _traces(days, runs_per_day, seed, now):
        t0 = _place(start, duration, now_ns)
        if day is not None and t0 // DAY_NS != day:
            yield from _flush(pending, batch_spans, final=True)
        day = t0 // DAY_NS
        pending.extend((b.trace_id, t0, s) for s in b.spans)
        yield from _flush(pending, batch_spans, final=False)
    yield from _flush(pending, batch_spans, final=True)


def _place(start: int, duration: int, now_ns: int) -> int:
    """Where a trace sampled at `start` really starts: inside one UTC day and over before `now`."""
    day_start = start - start % DAY_NS
    latest_end = min(day_start + DAY_NS, now_ns) - 1000
    if latest_end - duration >= day_start:
        return min(start, latest_end - duration)  # slide it earlier if it would cross midnight or now
    return day_start - 1000 - duration  # minutes after midnight and still running: it ran just before


def _flush(
    pending: list[tuple[bytes, int, SpanRec]], size: int, *, final: bool
) -> Iterator[tuple[ExportTraceServiceRequest, int]]:
    """Emit full batches (and on `final` the remainder), consuming them from `pending`."""
    while len(pending) >= size or (final and pending):
        chunk = pending[:size]
        del pending[:size]
        yield _encode(chunk), len(chunk)


@lru_cache(maxsize=1)
def _mean_spans_per_run() -> float:
    # Sampled once from a fixed seed: the estimate follows any change to the scenarios by itself.
    rng = random.Random(20240611)
    n = 1500
    return sum(len(build_trace(random.Random(rng.getrandbits(64)))[0].spans) for _ in range(n)) / n


def estimate_spans(days: int = 7, runs_per_day: int = 120) -> int:
    """The expected span count of ``generate_requests(days=..., runs_per_day=...)`` (for sizing a
    benchmark; a progress bar takes ``count_spans``, which is exact)."""
    return round(days * runs_per_day * _mean_spans_per_run())
