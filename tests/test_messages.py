"""messages.py: one span's chat from each dialect's attributes (monitoring/semantics/semconv.py). Pure; no database."""

import json
from pathlib import Path

from monitoring.semantics.messages import Message, ToolCall, request_messages, request_params, response_messages

CAPTURE = json.loads((Path(__file__).parent / "fixtures" / "litellm_1.108.7_spans.json").read_text())


def capture_span(label, capture="otel", scope="litellm"):
    """The LLM call span LiteLLM 1.108.7 wrote for one request of the capture."""
    spans = [
        s
        for s in CAPTURE["captures"][capture]["spans"]
        if s["request_label"] == label and s["scope"]["name"] == scope and "llm.request.type" in s["attributes"]
    ]
    assert len(spans) == 1, [s["name"] for s in spans]
    return spans[0]["attributes"]


def as_stored(attrs: dict) -> dict:
    """Attributes as ClickHouse returns them: every value a string (the exporter's Map(String, String))."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, (list, dict)):
            out[k] = json.dumps(v, separators=(",", ":"))
        else:
            out[k] = str(v)
    return out


# --- LiteLLM (real capture) -------------------------------------------------------------------


def test_it_reads_litellms_parts_format_from_the_real_capture():
    attrs = capture_span("success")
    for a in (attrs, as_stored(attrs)):
        assert request_messages(a) == [Message("user", "Say hello")]
        assert response_messages(a) == [Message("assistant", "Hello!", finish_reason="stop")]


def test_it_merges_litellms_function_call_keys_into_the_answer():
    attrs = as_stored(capture_span("tool_call"))
    assert request_messages(attrs) == [Message("user", "Use a tool")]
    [answer] = response_messages(attrs)
    assert answer.role == "assistant" and answer.content == "This is a mock request"
    assert answer.tool_calls == [ToolCall("run_sql", '{"query": "select 1"}')]
    params = request_params(attrs)
    assert params.model == "gpt-tools"  # the proxy alias a client would call again
    assert params.stream is False
    assert [(t.name, t.parameters) for t in params.tools] == [
        ("run_sql", {"type": "object", "properties": {"query": {"type": "string"}}})
    ]


def test_it_reads_a_failed_litellm_call_that_has_no_answer():
    attrs = as_stored(capture_span("rate_limit_429"))
    assert request_messages(attrs) == [Message("user", "Fail please")]
    assert response_messages(attrs) == []


def test_it_finds_nothing_when_litellm_did_not_record_content():
    attrs = as_stored(capture_span("success", capture="otel_no_content"))
    assert request_messages(attrs) == [] and response_messages(attrs) == []
    assert request_params(attrs).model == "gpt-4o-mini"


def test_it_reads_the_v2_tracers_tool_keys():
    spans = [s for s in CAPTURE["captures"]["otel_v2"]["spans"] if "gen_ai.tool.0.name" in s["attributes"]]
    params = request_params(as_stored(spans[0]["attributes"]))
    assert [t.name for t in params.tools] == ["run_sql"]


# --- GenAI semconv (parts format, with tools) --------------------------------------------------


def test_it_reads_genai_parts_with_tool_calls_and_results_and_system_instructions():
    attrs = {
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You write SQL."}]),
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "user", "parts": [{"type": "text", "content": "How many users?"}]},
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": "call_1",
                            "name": "run_sql",
                            "arguments": {"query": "select count() from users"},
                        }
                    ],
                },
                {
                    "role": "tool",
                    "parts": [{"type": "tool_call_response", "id": "call_1", "response": {"rows": [[42]]}}],
                },
            ]
        ),
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "There are 42 users."}],
                    "finish_reason": "stop",
                }
            ]
        ),
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": "0.2",
        "gen_ai.request.max_tokens": "256",
        "gen_ai.tool.definitions": json.dumps(
            [{"type": "function", "name": "run_sql", "description": "Run SQL", "parameters": {"type": "object"}}]
        ),
    }
    assert request_messages(attrs) == [
        Message("system", "You write SQL."),
        Message("user", "How many users?"),
        Message("assistant", tool_calls=[ToolCall("run_sql", '{"query": "select count() from users"}', "call_1")]),
        Message("tool", '{"rows": [[42]]}', tool_call_id="call_1"),
    ]
    assert response_messages(attrs) == [Message("assistant", "There are 42 users.", finish_reason="stop")]
    params = request_params(attrs)
    assert (params.model, params.temperature, params.max_tokens) == ("gpt-4o", 0.2, 256)
    assert [(t.name, t.description) for t in params.tools] == [("run_sql", "Run SQL")]


def test_it_turns_messages_into_an_openai_request_for_replay():
    attrs = {
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": {"a": 1}}]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "ok"}]},
            ]
        )
    }
    assert [m.as_openai() for m in request_messages(attrs)] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
        },
        {"role": "tool", "content": "ok", "tool_call_id": "c1"},
    ]


# --- older GenAI / OpenLLMetry flat keys ------------------------------------------------------


def test_it_reads_flat_prompt_and_completion_keys_with_tool_calls():
    attrs = {
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "Be brief.",
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": "Weather in Paris?",
        "gen_ai.prompt.2.role": "assistant",
        "gen_ai.prompt.2.tool_calls.0.id": "t1",
        "gen_ai.prompt.2.tool_calls.0.name": "weather",
        "gen_ai.prompt.2.tool_calls.0.arguments": '{"city": "Paris"}',
        "gen_ai.prompt.3.role": "tool",
        "gen_ai.prompt.3.tool_call_id": "t1",
        "gen_ai.prompt.3.content": "rain",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "It rains.",
        "gen_ai.completion.0.finish_reason": "stop",
        "gen_ai.completion.1.role": "assistant",
        "gen_ai.completion.1.tool_calls.0.name": "umbrella",
        "gen_ai.completion.1.tool_calls.0.arguments": "{}",
        "llm.request.functions.0.name": "weather",
        "llm.request.functions.0.parameters": '{"type": "object"}',
    }
    assert request_messages(attrs) == [
        Message("system", "Be brief."),
        Message("user", "Weather in Paris?"),
        Message("assistant", tool_calls=[ToolCall("weather", '{"city": "Paris"}', "t1")]),
        Message("tool", "rain", tool_call_id="t1"),
    ]
    assert response_messages(attrs) == [
        Message("assistant", "It rains.", finish_reason="stop"),
        Message("assistant", tool_calls=[ToolCall("umbrella", "{}")]),
    ]
    assert [t.name for t in request_params(attrs).tools] == ["weather"]


def test_it_orders_flat_messages_numerically_past_ten():
    attrs = {f"gen_ai.prompt.{i}.content": f"m{i}" for i in range(12)}
    assert [m.content for m in request_messages(attrs)] == [f"m{i}" for i in range(12)]


def test_it_reads_a_litellm_function_call_without_json_output():
    attrs = {"gen_ai.completion.0.function_call.name": "run_sql", "gen_ai.completion.0.function_call.arguments": "{}"}
    assert response_messages(attrs) == [Message("assistant", tool_calls=[ToolCall("run_sql", "{}")])]


# --- OpenInference ----------------------------------------------------------------------------


def test_it_reads_openinference_messages_tool_calls_and_invocation_parameters():
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o",
        "llm.invocation_parameters": '{"temperature": 0.5, "max_completion_tokens": 100}',
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "You are terse.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": "What is in this picture?",
        "llm.input_messages.1.message.contents.1.message_content.type": "image",
        "llm.input_messages.2.message.role": "tool",
        "llm.input_messages.2.message.tool_call_id": "x",
        "llm.input_messages.2.message.content": "42",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_9",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"q": "cat"}',
        "llm.tools.0.tool.json_schema": json.dumps(
            {"type": "function", "function": {"name": "lookup", "parameters": {}}}
        ),
        "input.value": '{"messages": []}',
        "output.value": "ignored: flat keys come first",
    }
    assert request_messages(attrs) == [
        Message("system", "You are terse."),
        Message("user", "What is in this picture?\n[image]"),
        Message("tool", "42", tool_call_id="x"),
    ]
    assert response_messages(attrs) == [Message("assistant", tool_calls=[ToolCall("lookup", '{"q": "cat"}', "call_9")])]
    params = request_params(attrs)
    assert (params.model, params.temperature, params.max_tokens) == ("gpt-4o", 0.5, 100)
    assert [t.name for t in params.tools] == ["lookup"]


# --- raw payload fallbacks --------------------------------------------------------------------


def test_it_falls_back_to_an_openai_body_in_input_and_output_value():
    attrs = {
        "input.mime_type": "application/json",
        "input.value": json.dumps(
            {
                "model": "gpt-4o-mini",
                "temperature": 0,
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                ],
                "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}],
            }
        ),
        "output.value": json.dumps(
            {
                "choices": [
                    {
                        "finish_reason": "tool_calls",
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                            ],
                        },
                    }
                ]
            }
        ),
    }
    assert request_messages(attrs) == [Message("system", "sys"), Message("user", "hi")]
    assert response_messages(attrs) == [
        Message("assistant", "", [ToolCall("f", "{}", "c")], finish_reason="tool_calls")
    ]
    params = request_params(attrs)
    assert (params.model, params.temperature, [t.name for t in params.tools]) == ("gpt-4o-mini", 0.0, ["f"])


def test_it_reads_anthropic_blocks_in_raw_payloads():
    attrs = {
        "input.value": json.dumps(
            {
                "system": "sys",
                "messages": [
                    {"role": "user", "content": "q"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "tu1", "name": "calc", "input": {"x": 1}}],
                    },
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "2"}]},
                ],
            }
        ),
        "output.value": json.dumps(
            {"type": "message", "stop_reason": "end_turn", "content": [{"type": "text", "text": "two"}]}
        ),
    }
    assert request_messages(attrs) == [
        Message("system", "sys"),
        Message("user", "q"),
        Message("assistant", tool_calls=[ToolCall("calc", '{"x": 1}', "tu1")]),
        Message("tool", "2", tool_call_id="tu1"),
    ]
    assert response_messages(attrs) == [Message("assistant", "two", finish_reason="end_turn")]


def test_it_shows_plain_text_payloads_as_one_message_each():
    attrs = {"input.value": "just text", "output.value": "an answer"}
    assert request_messages(attrs) == [Message("user", "just text")]
    assert response_messages(attrs) == [Message("assistant", "an answer")]
    assert request_messages({"traceloop.entity.input": '{"args": [1]}'}) == [Message("user", '{"args": [1]}')]


def test_it_survives_garbage():
    attrs = {
        "gen_ai.input.messages": "not json",
        "gen_ai.output.messages": '[1, {"parts": 5}]',
        "gen_ai.prompt.x.content": "ignored",
        "llm.input_messages.0.message.role": "",
    }
    assert request_messages(attrs) == [Message("user", "")]
    assert response_messages(attrs) == [Message("assistant", "1")]
    assert request_messages({}) == [] and response_messages({}) == []
    assert request_params({"gen_ai.request.temperature": "hot"}).temperature is None


def test_hostile_values_do_not_break_reading():
    from monitoring.semantics.messages import request_messages, request_params

    deep = "[" * 100_000 + "]" * 100_000
    attrs = {"gen_ai.request.max_tokens": "nan", "gen_ai.request.temperature": "1e999", "gen_ai.input.messages": deep}
    params = request_params(attrs)
    assert params.max_tokens is None and params.temperature is None
    assert isinstance(request_messages(attrs), list)
