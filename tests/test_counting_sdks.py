"""One agent run with two chat calls (and an embedding where the SDK makes one), as each common SDK
records it (tests/fixtures/sdk, shaped from the SDKs' own instrumentation code; each file's
`_source` names it): every SDK's run gives the same invocations, tokens and cost.

The expected cost is genai-prices' own `calc_price` of each call (input inclusive of cache reads
and writes, output inclusive of reasoning), computed here, not read back from the product.
"""

import datetime as dt

import pytest
from conftest import last_hour
from genai_prices import Usage, calc_price
from otlp import S, post_recorded, recorded, send

from monitoring.queries import overview as overview_q
from monitoring.queries import trace as trace_q
from monitoring.queries.spans import ListQuery, list_spans
from monitoring.semantics import messages, settle
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

SONNET_45, GPT_4O, GEMINI = "claude-sonnet-4-5-20250929", "gpt-4o-2024-08-06", "gemini-2.5-flash"
# (model, provider for genai-prices, input incl. cache, cache read, cache write, output incl. reasoning)
ANTHROPIC_RUN = [(SONNET_45, "anthropic", 1492, 0, 1480, 64), (SONNET_45, "anthropic", 1575, 1480, 0, 17)]
OPENAI_RUN = [(GPT_4O, "openai", 1412, 1280, 0, 18), (GPT_4O, "openai", 1461, 1408, 0, 12)]
EMBED = ("text-embedding-3-small", "openai")

EXPECTED = {
    # Google ADK 1.x: call_llm is the call (its generate_content child repeats it); thoughts are
    # written apart and added to output.
    "google-adk-1.39": [(GEMINI, "google", 1412, 0, 0, 222), (GEMINI, "google", 1461, 0, 0, 106)],
    "google-adk-2.13": [(GEMINI, "google", 1412, 1024, 0, 222), (GEMINI, "google", 1461, 1408, 0, 106)],
    # LangChain's ChatOpenAI and the OpenAI SDK's ChatCompletion record each call twice, unparented.
    "openinference-langchain-openai": [*OPENAI_RUN, (*EMBED, 5, 0, 0, 0)],
    "openllmetry-0.47-legacy-anthropic": ANTHROPIC_RUN,
    "openllmetry-0.62-anthropic": ANTHROPIC_RUN,
    "otel-genai-semconv-1.41": [*OPENAI_RUN, (*EMBED, 9, 0, 0, 0)],
    "pydantic-ai-1.x-version2": ANTHROPIC_RUN,  # the run span's total usage is not a call
    "pydantic-ai-2.x-version5": ANTHROPIC_RUN,
    "semantic-kernel-dotnet": [("gpt-4o", "openai", 1412, 0, 0, 18), ("gpt-4o", "openai", 1461, 0, 0, 12)],
    # Strands with Bedrock writes Anthropic's input_tokens, cache excluded: made inclusive.
    "strands-agents-1.40": [("us.anthropic.claude-sonnet-4-20250514-v1:0", "aws", *c[2:]) for c in ANTHROPIC_RUN],
    "vercel-ai-v4-generateText-embedMany": [*OPENAI_RUN, (*EMBED, 10, 0, 0, 0)],
    # Vercel AI SDK 5 with Anthropic: input excludes cache (read in ai.usage, write in providerMetadata).
    "vercel-ai-v5-streamText-embed": [*ANTHROPIC_RUN, (*EMBED, 5, 0, 0, 0)],
}


def price(model, provider, inp, read, write, out) -> float:
    usage = Usage(input_tokens=inp, cache_read_tokens=read, cache_write_tokens=write, output_tokens=out)
    return float(calc_price(usage, model, provider_id=provider).total_price)


@pytest.mark.parametrize("sdk", sorted(EXPECTED))
@pytest.mark.parametrize("mode", ["live", "settled"])
def test_every_sdk_gives_the_same_invocations_tokens_and_cost(client, project, ingest_key, sdk, mode):
    r = post_recorded(client, ingest_key, recorded(f"sdk/{sdk}"))
    assert r.status_code == 200, r.content
    if mode == "settled":
        settle.settle_once()
    calls = EXPECTED[sdk]
    o = overview_q.overview(last_hour(project))
    assert o.llm_calls == len(calls)
    assert o.agent_calls == 1  # one agent run per file
    assert o.input_tokens == sum(c[2] for c in calls)
    assert (o.cache_read_tokens, o.cache_write_tokens) == (sum(c[3] for c in calls), sum(c[4] for c in calls))
    assert o.output_tokens == sum(c[5] for c in calls)
    assert o.unpriced_calls == 0
    assert o.total_cost_usd == pytest.approx(sum(price(*c) for c in calls), rel=1e-9)
    listed = list_spans(last_hour(project), ListQuery(kind="llm", limit=50)).items
    assert sorted((r.input_tokens, r.output_tokens) for r in listed) == sorted((c[2], c[5]) for c in calls)


@pytest.mark.parametrize(
    "sdk, span_name, first_user, answer",
    [
        ("semantic-kernel-dotnet", "chat gpt-4o", "What's the weather in Paris?", "It's rainy and 14°C in Paris."),
        ("strands-agents-1.40", "chat", "What's the weather in Paris?", "It's rainy and 14°C in Paris."),
        ("vercel-ai-v5-streamText-embed", "ai.streamText.doStream", "What's the weather in Paris?", None),
        ("google-adk-1.39", "call_llm", "What's the weather in Paris?", None),
    ],
)
def test_the_chat_of_every_sdk_is_read_from_attributes_or_events(
    client, project, ingest_key, sdk, span_name, first_user, answer
):
    doc = recorded(f"sdk/{sdk}")
    assert post_recorded(client, ingest_key, doc, "protobuf").status_code == 200
    trace_id = next(
        s["traceId"]
        for rs in doc["resourceSpans"]
        for ss in rs["scopeSpans"]
        for s in ss["spans"]
        if s["name"] == span_name
    )
    spans = [s for s in trace_q.full_spans(trace_q.locate(str(project.id), trace_id)) if s.name == span_name]
    assert len(spans) == 2
    chats = []
    for span in spans:
        events = [(e.name, e.attributes) for e in span.events]
        chats.append(
            (messages.request_messages(span.attributes, events), messages.response_messages(span.attributes, events))
        )
    (first_in, first_out), (last_in, last_out) = sorted(chats, key=lambda c: len(c[0]))
    assert [m.content for m in first_in if m.role == "user"] == [first_user]
    assert first_in[0].role == "system"
    assert [c.name for m in first_out for c in m.tool_calls] in (["get_weather"], ["WeatherPlugin-GetWeather"])
    assert [m.role for m in last_in][-1] == "tool" and "rainy" in last_in[-1].content
    if answer:
        assert last_out[-1].content == answer


def test_an_embedding_shows_its_input_text_not_a_chat(client, project, ingest_key):
    doc = recorded("sdk/vercel-ai-v4-generateText-embedMany")
    assert post_recorded(client, ingest_key, doc).status_code == 200
    trace_id = next(
        s["traceId"]
        for rs in doc["resourceSpans"]
        for ss in rs["scopeSpans"]
        for s in ss["spans"]
        if s["name"] == "ai.embedMany.doEmbed"
    )
    (span,) = [
        s for s in trace_q.full_spans(trace_q.locate(str(project.id), trace_id)) if s.name == "ai.embedMany.doEmbed"
    ]
    assert messages.embedding_inputs(span.attributes) == ["rainy, 14°C", "sunny, 25°C"]
    assert messages.request_messages(span.attributes) == []


# --- the same run through a LiteLLM gateway, recorded in a trace of its own ------------------------


def _without_response_ids(doc: dict) -> dict:
    """The SDK's recording as an agent that did not propagate traceparent and got no response id
    (embeddings never have one): only time, alias and usage can tie its calls to the gateway's."""
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                s["attributes"] = [a for a in s["attributes"] if a["key"] not in ("gen_ai.response.id", "output.value")]
    return doc


def _gateway_calls(project, calls) -> list:
    """LiteLLM's span of each call, in a trace of its own, inside the client's span, for the alias the
    client asked for, with the same usage; each reports $0.001."""
    rows = clickhouse.query(
        f"SELECT TraceId, SpanId, toUnixTimestamp64Nano(Timestamp) AS st, Duration AS dur,"
        f" if(RequestModel != '', RequestModel, Model) AS alias,"
        f" InputTokens AS i, OutputTokens AS o, IsEmbedding AS embedding FROM {schema.table()}"
        " WHERE ProjectId = {p:String} AND (TraceId, SpanId) IN {keys:Array(Tuple(String, String))}",
        {"p": str(project.id), "keys": [(c.trace_id, c.span_id) for c in calls]},
        tag="test",
    )
    assert len(rows) == len(calls)
    return [
        S(
            "litellm_request",
            service="litellm-proxy",
            at=dt.datetime.fromtimestamp((r["st"] + r["dur"] // 4) / 1e9, dt.UTC),
            ms=r["dur"] / 2 / 1e6,
            attributes={
                "llm.request.type": "aembedding" if r["embedding"] else "acompletion",
                "litellm.model_group": r["alias"],
                "gen_ai.request.model": r["alias"],
                "gen_ai.usage.input_tokens": r["i"],
                "gen_ai.usage.output_tokens": r["o"],
                "gen_ai.cost.total_cost": 0.001,
            },
        )
        for r in rows
    ]


@pytest.mark.parametrize("sdk", sorted(EXPECTED))
@pytest.mark.parametrize("mode", ["live", "settled"])
def test_every_sdks_calls_through_the_gateway_in_another_trace_count_once(client, project, ingest_key, sdk, mode):
    """Chat and embedding calls alike: each client span and the gateway's span of it are one
    invocation (the gateway's, with its reported cost), matched one to one across the traces."""
    r = post_recorded(client, ingest_key, _without_response_ids(recorded(f"sdk/{sdk}")))
    assert r.status_code == 200, r.content
    calls = list_spans(last_hour(project), ListQuery(kind="llm", limit=50)).items
    assert len(calls) == len(EXPECTED[sdk])
    send(client, ingest_key, _gateway_calls(project, calls), scope="litellm")
    if mode == "settled":
        settle.settle_once()
    o = overview_q.overview(last_hour(project))
    assert (o.llm_calls, o.agent_calls) == (len(EXPECTED[sdk]), 1)
    assert o.total_cost_usd == pytest.approx(0.001 * len(EXPECTED[sdk]))  # the gateway's, once each
    assert o.input_tokens == sum(c[2] for c in EXPECTED[sdk])
