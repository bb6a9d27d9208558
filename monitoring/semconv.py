"""Which attribute keys mean what, across LiteLLM, GenAI semconv, OpenLLMetry and OpenInference.

The schema turns these lists into MATERIALIZED columns, so the dashboard reads one column instead
of four Map lookups. Keys are listed in order of preference: the first non-empty one wins.
Everything here is a constant of ours; nothing a client sends is ever formatted into SQL.
"""

# LiteLLM's proxy alias (what users know) before the provider's model name.
MODEL_KEYS = (
    "litellm.model_group",
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.model_name",
)
INPUT_TOKEN_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
OUTPUT_TOKEN_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
# Only LiteLLM reports cost; 0.0 there means "unpriced", so a price table fills it in.
COST_KEYS = (
    "gen_ai.cost.total_cost",  # LiteLLM's default "otel" callback
    "litellm.cost.total",  # LiteLLM's V2 tracer (LITELLM_OTEL_V2=true)
)
USER_KEYS = ("user.id", "llm.user", "gen_ai.user", "enduser.id", "metadata.user_api_key_user_id")
SESSION_KEYS = ("session.id", "gen_ai.conversation.id", "metadata.session_id")

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
GENAI_LLM_OPERATIONS = ("chat", "text_completion", "embeddings", "generate_content", "completion")
OPENLLMETRY_LLM_REQUEST_TYPES = ("chat", "completion", "embedding", "rerank")
OPENINFERENCE_LLM_KINDS = ("LLM", "EMBEDDING")

# Agent steps: the dialects' own markers. Per-project span-name patterns are applied at query time.
GENAI_AGENT_OPERATIONS = ("invoke_agent", "create_agent", "execute_tool")
TRACELOOP_AGENT_KINDS = ("workflow", "task", "agent", "tool")
OPENINFERENCE_AGENT_KINDS = ("AGENT", "CHAIN", "TOOL", "RETRIEVER")
AGENT_SERVICE_PREFIX = "agent-"
# Tool steps among agent steps (a tool call, a retriever), drawn apart in the Agent Flow Graph and Replay.
GENAI_TOOL_OPERATIONS = ("execute_tool",)
TRACELOOP_TOOL_KINDS = ("tool",)
OPENINFERENCE_TOOL_KINDS = ("TOOL", "RETRIEVER")
# The seed's Agent tab: workflow spans with these names (each project can change its list).
DEFAULT_AGENT_SPAN_NAMES = ("text2sql", "analyze", "generate", "execute")

ERROR_STATUS = ("Error", "STATUS_CODE_ERROR")  # the exporter's spelling, and the pre-2024 one
