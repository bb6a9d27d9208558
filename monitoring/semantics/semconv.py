"""Which span attributes mean what, for every SDK whose spans the portal reads.

One row per meaning; each key names the SDK (and the version read) that writes it, so the next SDK
is one more row. `monitoring.store.schema` turns these lists into MATERIALIZED columns of `otel_traces`,
so queries read one column instead of many Map lookups. In each list the first non-empty key wins.
Everything here is a constant of ours; nothing a client sends is ever formatted into SQL.

Dialects (sources are public: the OpenTelemetry GenAI semantic conventions, and each SDK's own
instrumentation code at the version named):
- LiteLLM 1.108 proxy, "otel" callback (`litellm/integrations/opentelemetry.py`), and its V2 tracer.
- GenAI semconv v1.26-v1.41 (`model/gen-ai/registry.yaml`), as written by
  opentelemetry-instrumentation-openai-v2, Semantic Kernel (.NET 1.4x-1.80, Python), Pydantic AI
  (1.x and 2.x), AWS Strands Agents 1.40, Google ADK 1.x-2.13.
- OpenLLMetry / Traceloop 0.47 (legacy keys) to 0.62 (`gen_ai.*`, `llm.*`, `traceloop.*`).
- OpenInference (Arize) semconv 0.1.32 (`openinference.span.kind`, `llm.*`, `input.value`).
- Vercel AI SDK 4, 5 and 6 (`ai.*` spans; `packages/ai/core/telemetry`, `packages/ai/src/...`).
Token conventions differ (GenAI semconv v1.40 says input tokens SHOULD include cached ones, v1.41
that output tokens include reasoning); the exceptions are normalised in monitoring/store/schema.py and
listed below (VERCEL_SCOPE, STRANDS_SCOPE, ADK_SCOPE).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """An attribute key and who writes it (SDK and version), for the record and for tests."""

    name: str
    source: str


def names(keys: tuple[Key, ...]) -> tuple[str, ...]:
    return tuple(k.name for k in keys)


# --- the model and the provider -------------------------------------------------------------------

# The model a user knows: LiteLLM's proxy alias first, then what the provider answered, then asked.
MODEL = (
    Key("litellm.model_group", "LiteLLM 1.108 (the proxy alias the client asked for)"),
    Key("gen_ai.response.model", "GenAI semconv; LiteLLM; OpenLLMetry"),
    Key("gen_ai.request.model", "GenAI semconv; LiteLLM; OpenLLMetry; Vercel AI SDK 4/5"),
    Key("llm.model_name", "OpenInference"),
    Key("embedding.model_name", "OpenInference (EMBEDDING spans)"),
    Key("ai.model.id", "Vercel AI SDK 4-6"),
    Key("model_name", "Pydantic AI 1.x run span"),
)
# The model the caller asked for: how an agent's client span and the gateway's span of the same call
# are matched when they land in different traces (LiteLLM records the alias it was asked for).
REQUEST_MODEL = (
    Key("litellm.model_group", "LiteLLM 1.108"),
    Key("gen_ai.request.model", "GenAI semconv; OpenLLMetry; Vercel AI SDK"),
    Key("ai.model.id", "Vercel AI SDK 4/5"),
)
# OpenInference keeps the requested model inside a JSON attribute (chat, and embedding spans).
OPENINFERENCE_INVOCATION_PARAMETERS = "llm.invocation_parameters"
OPENINFERENCE_EMBEDDING_PARAMETERS = "embedding.invocation_parameters"
# Last, when neither names the request's model: the model OpenInference says answered.
REQUEST_MODEL_ANSWERED = (
    Key("llm.model_name", "OpenInference (the request's model when invocation parameters lack one)"),
    Key("embedding.model_name", "OpenInference (EMBEDDING spans, which have no llm.* keys)"),
)
PROVIDER = (
    Key("gen_ai.provider.name", "GenAI semconv 1.37+"),
    Key("gen_ai.system", "GenAI semconv <= 1.36; LiteLLM; OpenLLMetry; Semantic Kernel; Google ADK"),
    Key("llm.provider", "OpenInference"),
    Key("llm.system", "OpenInference"),
    Key("ai.model.provider", "Vercel AI SDK ('openai.responses', 'anthropic.messages')"),
)
# Values of the keys above that name a framework, not the model's provider (Strands, Google ADK 1.x).
NOT_PROVIDERS = ("strands-agents", "gcp.vertex.agent")

# --- tokens -----------------------------------------------------------------------------------
# The product's rule (GenAI semconv 1.37 `gen_ai.usage.input_tokens`): input tokens INCLUDE cached
# reads and writes; output tokens INCLUDE reasoning tokens. Keys that count otherwise are listed
# apart and added (see VERCEL_SCOPE and STRANDS_SCOPE below, applied in monitoring/store/schema.py).
INPUT_TOKENS = (
    Key("gen_ai.usage.input_tokens", "GenAI semconv v1.27+; LiteLLM; OpenLLMetry 0.50+; Vercel; Pydantic AI; ADK"),
    Key("gen_ai.usage.prompt_tokens", "GenAI semconv <= v1.26; OpenLLMetry <= 0.49; Semantic Kernel; Strands"),
    Key("llm.token_count.prompt", "OpenInference"),
    Key("llm.usage.prompt_tokens", "OpenLLMetry (old)"),
    Key("ai.usage.inputTokens", "Vercel AI SDK 5 stream*, 6"),
    Key("ai.usage.promptTokens", "Vercel AI SDK 4, 5 generate*"),
    Key("ai.usage.tokens", "Vercel AI SDK embed/embedMany"),
)
OUTPUT_TOKENS = (
    Key("gen_ai.usage.output_tokens", "GenAI semconv v1.27+; LiteLLM; OpenLLMetry 0.50+; Vercel; Pydantic AI; ADK"),
    Key("gen_ai.usage.completion_tokens", "GenAI semconv <= v1.26; OpenLLMetry <= 0.49; Semantic Kernel; Strands"),
    Key("llm.token_count.completion", "OpenInference"),
    Key("llm.usage.completion_tokens", "OpenLLMetry (old)"),
    Key("ai.usage.outputTokens", "Vercel AI SDK 5 stream*, 6"),
    Key("ai.usage.completionTokens", "Vercel AI SDK 4, 5 generate*"),
)
CACHE_READ_TOKENS = (
    Key("gen_ai.usage.cache_read.input_tokens", "GenAI semconv v1.40+; OpenLLMetry 0.54+; Pydantic AI 1.78+; ADK 2.x"),
    Key("gen_ai.usage.cache_read_input_tokens", "OpenLLMetry <= 0.53; AWS Strands 1.x"),
    Key("gen_ai.usage.details.cache_read_tokens", "Pydantic AI 1.x"),
    Key("llm.token_count.prompt_details.cache_read", "OpenInference"),
    Key("ai.usage.cachedInputTokens", "Vercel AI SDK 5 stream*"),
    Key("ai.usage.inputTokenDetails.cacheReadTokens", "Vercel AI SDK 6"),
)
CACHE_WRITE_TOKENS = (
    Key("gen_ai.usage.cache_creation.input_tokens", "GenAI semconv v1.40+; OpenLLMetry 0.54+; Pydantic AI 1.78+"),
    Key("gen_ai.usage.cache_creation_input_tokens", "OpenLLMetry <= 0.53"),
    Key("gen_ai.usage.cache_write_input_tokens", "AWS Strands 1.x"),
    Key("gen_ai.usage.details.cache_write_tokens", "Pydantic AI 1.x"),
    Key("llm.token_count.prompt_details.cache_write", "OpenInference"),
    Key("ai.usage.inputTokenDetails.cacheWriteTokens", "Vercel AI SDK 6"),
)
REASONING_TOKENS = (
    Key("gen_ai.usage.reasoning.output_tokens", "GenAI semconv v1.41; ADK 2.x"),
    Key("gen_ai.usage.reasoning_tokens", "OpenLLMetry 0.54+"),
    Key("llm.usage.reasoning_tokens", "OpenLLMetry <= 0.53"),
    Key("gen_ai.usage.details.reasoning_tokens", "Pydantic AI 1.x"),
    Key("gen_ai.usage.experimental.reasoning_tokens", "Google ADK 1.x (NOT inside output tokens)"),
    Key("llm.token_count.completion_details.reasoning", "OpenInference"),
    Key("ai.usage.reasoningTokens", "Vercel AI SDK 5, 6"),
    Key("ai.usage.outputTokenDetails.reasoningTokens", "Vercel AI SDK 6"),
)
INPUT_AUDIO_TOKENS = (
    Key("llm.token_count.prompt_details.audio", "OpenInference"),
    Key("gen_ai.usage.details.input_audio_tokens", "Pydantic AI 1.x"),
    Key("gen_ai.usage.audio.input_tokens", "GenAI semconv (semantic-conventions-genai, after v1.41)"),
)
OUTPUT_AUDIO_TOKENS = (
    Key("llm.token_count.completion_details.audio", "OpenInference"),
    Key("gen_ai.usage.details.output_audio_tokens", "Pydantic AI 1.x"),
    Key("gen_ai.usage.audio.output_tokens", "GenAI semconv (semantic-conventions-genai, after v1.41)"),
)
# Cache counts some SDKs keep inside JSON (or a Python repr) instead of their own attribute:
# (attribute, path to the count) for reads and for writes.
CACHE_READ_IN_JSON = (
    ("ai.response.providerMetadata", ("anthropic", "cacheReadInputTokens")),  # Vercel AI SDK 4/5 + Anthropic
    ("ai.response.providerMetadata", ("openai", "cachedPromptTokens")),  # Vercel AI SDK 4 + OpenAI
)
CACHE_WRITE_IN_JSON = (("ai.response.providerMetadata", ("anthropic", "cacheCreationInputTokens")),)
# LiteLLM 1.108 writes the provider's Usage only as `metadata.usage_object`, a Python repr (not JSON).
LITELLM_USAGE_OBJECT = "metadata.usage_object"
# Input tokens that EXCLUDE cache reads/writes (Anthropic's and Bedrock's own `input_tokens` passed
# through): the cache counts are added. Vercel AI SDK 4/5 with an Anthropic model (v6 writes
# `ai.usage.inputTokenDetails.*` and is inclusive); AWS Strands 1.x with a Bedrock or Anthropic model.
# Any other span whose cache counts exceed its input tokens is taken as exclusive too.
VERCEL_SCOPE = "ai"
VERCEL_V6_MARKER = "ai.usage.inputTokenDetails.noCacheTokens"
STRANDS_SCOPE = "strands.telemetry.tracer"
EXCLUSIVE_MODEL_PATTERN = "(?i)(claude|anthropic|amazon|nova|titan|bedrock|^(us|eu|apac|global)[.])"
# Google ADK 1.x writes Gemini's candidates count (thoughts excluded) as output tokens and the
# thoughts apart: they are added (ADK 2.x writes them inclusive, under the semconv key).
ADK_SCOPE = "gcp.vertex.agent"
ADK_EXCLUSIVE_REASONING = "gen_ai.usage.experimental.reasoning_tokens"

# --- cost (USD) -------------------------------------------------------------------------------
# Only gateways report cost; 0.0 there means "unpriced", so the price table fills it in.
REPORTED_COST = (
    Key("gen_ai.cost.total_cost", "LiteLLM 1.108 'otel' callback"),
    Key("litellm.cost.total", "LiteLLM V2 tracer (LITELLM_OTEL_V2=true)"),
    Key("operation.cost", "Pydantic AI (priced with genai-prices)"),
)

# --- who and which conversation ---------------------------------------------------------------
END_USER = (
    Key("user.id", "OpenInference; GenAI semconv (general)"),
    Key("enduser.id", "OpenTelemetry general attributes"),
    Key("llm.user", "LiteLLM 1.108 (the request's `user`)"),
    Key("gen_ai.user", "OpenLLMetry"),
    Key("metadata.user_api_key_end_user_id", "LiteLLM 1.108 (end user of the key)"),
    Key("traceloop.association.properties.user_id", "OpenLLMetry association properties"),
    Key("ai.telemetry.metadata.userId", "Vercel AI SDK (experimental_telemetry.metadata)"),
    Key("metadata.user_api_key_user_id", "LiteLLM 1.108 (the key's owner)"),
)
SESSION = (
    Key("session.id", "OpenInference; OpenTelemetry general attributes"),
    Key("gcp.vertex.agent.session_id", "Google ADK"),
    Key("gen_ai.conversation.id", "GenAI semconv 1.37+; LiteLLM"),
    Key("traceloop.association.properties.session_id", "OpenLLMetry association properties"),
    Key("ai.telemetry.metadata.sessionId", "Vercel AI SDK (experimental_telemetry.metadata)"),
    Key("metadata.session_id", "LiteLLM 1.108 (request metadata)"),
)
RESPONSE_ID = (
    Key("gen_ai.response.id", "GenAI semconv; LiteLLM 1.108; OpenLLMetry"),
    Key("ai.response.id", "Vercel AI SDK 4/5"),
)
# OpenInference has no response-id key: the provider's JSON answer in `output.value` carries `id`.
OPENINFERENCE_OUTPUT_VALUE = "output.value"

# --- span roles -------------------------------------------------------------------------------
# An LLM call is one model invocation. LiteLLM's proxy wraps each call in ~11 spans (FastAPI,
# auth, router, proxy_pre_call, raw_gen_ai_request...) and a client's metadata.generation_name
# renames the call span, so LiteLLM's call is recognised by what only it carries (measured on
# 1.108.7 captures, tests/fixtures/litellm_1.108.7_spans.json): its instrumentation scope plus
# `llm.request.type` (default tracer, success and failure, with or without message capture) or
# `litellm.call_type` (the V2 tracer). On a rejected key LiteLLM writes the same attributes onto
# FastAPI's span, whose scope is "fastapi", so the scope test keeps that out.
LITELLM_SCOPE = "litellm"
LITELLM_CALL_MARKER_KEYS = ("llm.request.type", "litellm.call_type")
OPERATION_NAME = "gen_ai.operation.name"
# GenAI semconv 1.37 `gen_ai.operation.name` values that are one model invocation ("completion" is
# an older spelling seen in the wild).
GENAI_LLM_OPERATIONS = (
    "chat",
    "text_completion",
    "generate_content",
    "embeddings",
    "completion",  # seen in the wild
    "chat.completions",  # Semantic Kernel <= .NET 1.46 / Python 1.18
    "chat.streaming_completions",
    "text.completions",
    "text_completions",
)
GENAI_EMBEDDING_OPERATIONS = ("embeddings",)
# Spans recognised by their instrumentation scope and name (SDKs without an operation attribute):
# (scope, span name prefix). Google ADK 1.x: `call_llm` is the model call; its `generate_content`
# child (ADK 1.23-1.39, no gen_ai.provider.name) repeats it and is not counted.
NAMED_LLM_SPANS = (("gcp.vertex.agent", "call_llm"),)
ADK_1X_GENERATE_CONTENT = "generate_content"
NAMED_AGENT_SPANS = (("pydantic-ai", "agent run"), ("gcp.vertex.agent", "agent_run"))
NAMED_TOOL_SPANS = (("pydantic-ai", "running tool"), ("pydantic-ai", "running output function"))
OPENLLMETRY_LLM_REQUEST_TYPES = ("chat", "completion", "embedding", "rerank")
OPENINFERENCE_LLM_KINDS = ("LLM", "EMBEDDING")
OPENINFERENCE_EMBEDDING_KINDS = ("EMBEDDING",)
# The Vercel AI SDK writes no gen_ai.operation.name; its model calls are the do* spans
# (`ai.operationId`, also the span name), the outer ai.generateText etc. wrap them.
VERCEL_OPERATION_ID = "ai.operationId"
VERCEL_LLM_OPERATIONS = (
    "ai.generateText.doGenerate",
    "ai.streamText.doStream",
    "ai.generateObject.doGenerate",
    "ai.streamObject.doStream",
    "ai.embed.doEmbed",
    "ai.embedMany.doEmbed",
)
VERCEL_EMBEDDING_OPERATIONS = ("ai.embed.doEmbed", "ai.embedMany.doEmbed")
VERCEL_TOOL_OPERATIONS = ("ai.toolCall",)

# Agent steps: the dialects' own markers. Per-project span-name patterns are applied at query time.
GENAI_AGENT_OPERATIONS = ("invoke_agent", "create_agent", "execute_tool", "invoke_workflow")
TRACELOOP_AGENT_KINDS = ("workflow", "task", "agent", "tool")
OPENINFERENCE_AGENT_KINDS = ("AGENT", "CHAIN", "TOOL", "RETRIEVER")
AGENT_SERVICE_PREFIX = "agent-"
# Tool steps among agent steps (a tool call, a retriever), drawn apart in the Agent Flow Graph and Replay.
GENAI_TOOL_OPERATIONS = ("execute_tool",)
TRACELOOP_TOOL_KINDS = ("tool",)
OPENINFERENCE_TOOL_KINDS = ("TOOL", "RETRIEVER")
ERROR_STATUS = ("Error", "STATUS_CODE_ERROR")  # the exporter's spelling, and the pre-2024 one


def is_error(status_code: str) -> bool:
    """Whether a span failed: its StatusCode is Error (OTel trace API, "Set Status"), in either spelling."""
    return status_code in ERROR_STATUS


# Replay's re-runs are recorded under this service; they are experiments, out of the KPIs by default.
REPLAY_SERVICE = "apm-replay"
# LLM judges' calls (monitoring/quality/judges.py) are recorded under this one: experiments too.
JUDGE_SERVICE = "apm-judge"
# Services whose spans the numbers leave out unless "include Replay re-runs" is ticked (IsReplay).
EXPERIMENT_SERVICES = (REPLAY_SERVICE, JUDGE_SERVICE)

# A span exported before it ended has no end time: the exporter stores end - start as an unsigned
# 64-bit number, which wraps around to more than 2^63 (and an Int64 column shows it negative).
# Durations of 2^62 ns (146 years) or more are "no end time".
NO_END_DURATION_NS = 2**62
# A finished span whose end is a little *before* its start (a clock stepped back: NTP, a VM moved)
# wraps to within CLOCK_SKEW_MAX_NS of 2^64; a span with no end wraps to 2^64 - start, far below that.
# It ended: it is timed, with a duration of 0 (openobserve#14367's fix), and the pages note the skew
# (handed case case-13-end-before-start-clock-skew). The one rule for "timed": has_end() below.
CLOCK_SKEW_MAX_NS = 3600 * 10**9
SKEWED_DURATION_MIN = 2**64 - CLOCK_SKEW_MAX_NS


def has_end(duration: int) -> bool:
    """Whether a stored Duration (ns, the exporter's wrapped UInt64) belongs to a span that ended."""
    return duration < NO_END_DURATION_NS or duration >= SKEWED_DURATION_MIN


def duration_ns(duration: int) -> int:
    """The span's duration in ns as the numbers count it: 0 without an end and for clock skew."""
    return duration if duration < NO_END_DURATION_NS else 0


def clock_skew_ns(duration: int) -> int:
    """How far (ns) a finished span's end lies before its start; 0 when it does not."""
    return 2**64 - duration if duration >= SKEWED_DURATION_MIN else 0


# --- GenAI events (semantic-conventions-genai, "gen-ai-events"; OTel spec 2026: events are log
# records, `LogRecord.event_name`; older SDKs set the `event.name` attribute or send span events) ---
LOG_EVENT_NAME_KEY = "event.name"  # the event name before LogRecord.event_name existed (logs data model < 1.5)
INFERENCE_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"
EVALUATION_RESPONSE_ID = "gen_ai.response.id"
# The events that carry chat content (messages.py reads them), as log records or span events.
MESSAGE_EVENTS = (
    INFERENCE_DETAILS_EVENT,
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.choice",
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
)

# --- attribute filters (monitoring/queries/attributes.py): one name, every SDK's spelling ----------
# A filter on any key of a family matches the span holding any of them (`attr=user.id:eq:alice`
# finds Langfuse's `langfuse.user.id` too). Tags are list attributes (a JSON array in the
# exporter's map): each element is a value of its own.
LANGFUSE_USER = "langfuse.user.id"  # Langfuse SDK v3 (OTel)
LANGFUSE_SESSION = "langfuse.session.id"
TAGS = (
    Key("tag.tags", "OpenInference (using_attributes(tags=...))"),
    Key("langfuse.trace.tags", "Langfuse SDK v3"),
)
ATTRIBUTE_KIN = (
    (*names(END_USER), LANGFUSE_USER),
    (*names(SESSION), LANGFUSE_SESSION),
    names(TAGS),
)
# Metadata: OpenInference's `metadata` is one JSON object; Langfuse spells each entry as its own
# key. `metadata.<k>` names entry <k> in any of them (a JSON object's top-level entries are stored
# as `<key>.<entry>`, monitoring/store/schema.py).
METADATA_PREFIXES = ("metadata.", "langfuse.trace.metadata.", "langfuse.observation.metadata.")
