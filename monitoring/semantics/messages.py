"""A span's chat, whichever SDK recorded it: attributes and span events -> messages (pure; no
Django, no DB).

The Traces tab renders these, search finds their text and Replay re-sends them, so the API is
small and typed:

    request_messages(attrs, events)  -> list[Message]  what was sent (system, user, assistant, tool)
    response_messages(attrs, events) -> list[Message]  what the model answered (one per choice)
    request_params(attrs)            -> RequestParams  model, temperature, max_tokens, tools offered
    question(attrs, events) / answer(attrs, events) -> str  a call's last user message / its answer
    embedding_inputs(attrs)          -> list[str]      the texts an embedding call embedded

`events` are the span's events as (name, attributes) pairs. Sources, first found wins:
1. GenAI semconv v1.37+ / LiteLLM / OpenLLMetry 0.54+ / Pydantic AI: `gen_ai.input.messages` /
   `gen_ai.output.messages`, JSON in the "parts" format (`gen_ai.system_instructions` adds the
   system prompt). An OpenAI-shaped list is accepted too (Semantic Kernel's agent spans).
2. Older GenAI / OpenLLMetry flat keys: `gen_ai.prompt.N.*`, `gen_ai.completion.N.*` incl.
   `tool_calls.M.*` and LiteLLM's `gen_ai.completion.N.function_call.*`.
3. OpenInference flat keys: `llm.input_messages.N.message.*` / `llm.output_messages.N.message.*`
   incl. `message.tool_calls.M.tool_call.function.name/arguments` and `message.contents.M.*`.
4. Vercel AI SDK 4-6: `ai.prompt.messages` / `ai.prompt` and `ai.response.text` +
   `ai.response.toolCalls`; Google ADK 1.x: `gcp.vertex.agent.llm_request` / `llm_response`.
5. Span events: GenAI semconv v1.26 `gen_ai.content.prompt` / `gen_ai.content.completion`
   (attributes `gen_ai.prompt` / `gen_ai.completion`); the v1.27-v1.36 per-message events
   `gen_ai.{system,user,assistant,tool}.message` and `gen_ai.choice` (Semantic Kernel .NET puts the
   body in `gen_ai.event.content`, AWS Strands in `content` / `message` as content blocks); and
   `gen_ai.client.inference.operation.details` (the v1.37 attributes, on an event).
6. Raw payloads: `input.value` / `output.value` (an OpenAI or Anthropic body when JSON, else text),
   then OpenLLMetry's `traceloop.entity.input` / `.output` on workflow and task spans.
LiteLLM writes a tool call only in the flat `function_call` keys beside the JSON output, so flat
tool calls are merged into the chosen source when it lacks them. In JSON messages, images (GenAI
`blob` / `uri` / `file` parts, OpenAI `image_url`, Anthropic `image`) are kept as `Message.media` and
reasoning (GenAI `reasoning` parts, Anthropic `thinking`) as `Message.reasoning`, both apart from the
text; an embeddings or Responses API body in `input.value` reads as its input text.

Attribute values may be strings (as stored in ClickHouse) or already-typed values (OTLP captures).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_ROLES = {
    "human": "user",
    "ai": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "function": "tool",
    "developer": "system",
}


@dataclass
class ToolCall:
    name: str
    arguments: str = ""  # JSON text, as the model produced it
    id: str = ""


# Inline images shown as <img src="data:…">: raster types only (an SVG can carry script), valid
# base64, and at most this many characters (a bigger one is named, not sent to the browser).
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
MAX_INLINE_IMAGE_CHARS = 2_000_000
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_DATA_URI = re.compile(r"data:([a-zA-Z0-9.+-]+/[a-zA-Z0-9.+-]+);base64,(.*)", re.S)


@dataclass
class Media:
    """A non-text part of a message: an image (or audio, a file) sent inline (`data`, base64) or by
    reference (`uri`). GenAI semconv `blob` / `uri` / `file` parts, OpenAI `image_url` /
    `input_image`, Anthropic `image` blocks."""

    modality: str = "image"  # image | audio | video | file
    mime_type: str = ""
    data: str = ""  # base64, without the data: prefix
    uri: str = ""

    @property
    def data_uri(self) -> str:
        """A data: URI to show as an <img>, or '' (not an allowed image type, not base64, too big)."""
        mime = self.mime_type.lower()
        if not self.data or mime not in IMAGE_MIME_TYPES or len(self.data) > MAX_INLINE_IMAGE_CHARS:
            return ""
        return f"data:{mime};base64,{self.data}" if _BASE64.fullmatch(self.data) else ""

    @property
    def link(self) -> str:
        """The part's http(s) address, or '' (another scheme is never made a link)."""
        return self.uri if re.match(r"https?://", self.uri, re.I) else ""

    def as_openai(self) -> dict | None:
        """The part as an OpenAI chat content part (an image only; None for what chat takes otherwise)."""
        if self.modality != "image" and not self.mime_type.lower().startswith("image/"):
            return None
        if self.data:
            return {
                "type": "image_url",
                "image_url": {"url": f"data:{self.mime_type or 'image/png'};base64,{self.data}"},
            }
        return {"type": "image_url", "image_url": {"url": self.uri}} if self.uri else None


@dataclass
class Message:
    role: str  # system | user | assistant | tool
    content: str = ""  # the text (the answer's, without reasoning; images are in `media`)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""  # on a tool result: the call it answers
    name: str = ""
    finish_reason: str = ""
    reasoning: str = ""  # the model's reasoning (GenAI `reasoning` parts, Anthropic `thinking`), apart
    media: list[Media] = field(default_factory=list)

    def as_openai(self) -> dict:
        """The message as an OpenAI chat-completions request item (what Replay sends): with images,
        content parts (text, then `image_url`, inline as a data: URI); reasoning is never sent."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        images = [p for p in (m.as_openai() for m in self.media) if p] if self.role in ("user", "system") else []
        if images:
            out["content"] = ([{"type": "text", "text": self.content}] if self.content else []) + images
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id or f"call_{i}",
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments or "{}"},
                }
                for i, c in enumerate(self.tool_calls)
            ]
            if not self.content:
                out["content"] = None
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name and self.role != "tool":
            out["name"] = self.name
        return out


@dataclass
class Tool:
    name: str
    description: str = ""
    parameters: dict | None = None  # JSON schema

    def as_openai(self) -> dict:
        fn: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.parameters is not None:
            fn["parameters"] = self.parameters
        return {"type": "function", "function": fn}


@dataclass
class RequestParams:
    model: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stream: bool | None = None
    tools: list[Tool] = field(default_factory=list)


# --- public API -------------------------------------------------------------------------------


Events = Iterable[tuple[str, Mapping[str, Any]]]


def _semconv_input(attrs: Mapping[str, Any]) -> list[Message] | None:
    messages = _json_messages(attrs.get("gen_ai.input.messages"))
    if messages is None:
        return None
    system = _system_instructions(attrs.get("gen_ai.system_instructions"))
    return ([system] if system and not any(m.role == "system" for m in messages) else []) + messages


def request_messages(attrs: Mapping[str, Any], events: Events = ()) -> list[Message]:
    """The messages sent to the model, oldest first; [] when the span recorded none."""
    messages = _semconv_input(attrs)
    if messages is not None:
        return messages
    for read in (_flat_genai_prompt, _flat_openinference_input, _vercel_input, _adk_input):
        messages = read(attrs)
        if messages:
            return messages
    return _event_input(list(events)) or _raw_input(attrs)


def response_messages(attrs: Mapping[str, Any], events: Events = ()) -> list[Message]:
    """The model's answer(s), one message per choice; [] when the span recorded none."""
    messages = _json_messages(attrs.get("gen_ai.output.messages"), default_role="assistant")
    if messages is None:
        messages = (
            _flat_genai_completion(attrs)
            or _flat_openinference_output(attrs)
            or _vercel_output(attrs)
            or _adk_output(attrs)
            or _event_output(list(events))
            or _raw_output(attrs)
        )
    else:
        _merge_flat_tool_calls(messages, _flat_genai_completion(attrs))
    return messages


def question(attrs: Mapping[str, Any], events: Events = ()) -> str:
    """What a call (or an agent step) was asked: its request's last user message ('' when none).

    A run's input is its first chat call's question, else its agent step's own (the runs list,
    sessions, the user page, judges and exports all read it through monitoring.queries.runs). The
    *last* user message: in a multi-turn session the first call of a run carries the earlier turns
    before this run's own question."""
    asked = [m for m in request_messages(attrs, events) if m.role == "user" and m.content]
    return asked[-1].content if asked else ""


def answer(attrs: Mapping[str, Any], events: Events = ()) -> str:
    """What a call (or an agent step) answered: its last response message with text ('' when none)."""
    said = [m for m in response_messages(attrs, events) if m.content]
    return said[-1].content if said else ""


def embedding_inputs(attrs: Mapping[str, Any]) -> list[str]:
    """The texts an embedding call embedded (OpenInference, Vercel AI SDK, an OpenAI request body,
    OpenLLMetry's flat prompt), [] when none was recorded."""
    found = [_text(v.get("embedding.text")) for v in _indexed(attrs, "embedding.embeddings").values()]
    if any(found):
        return [t for t in found if t]
    for key in ("ai.values", "ai.value"):  # Vercel AI SDK: JSON-encoded strings (an array of them for values)
        value = attrs.get(key)
        parsed = _json(value)
        items = parsed if isinstance(parsed, list) else ([value] if _text(value) else [])
        texts = [_unquoted(item) for item in items]
        if any(texts):
            return [t for t in texts if t]
    body = _json(attrs.get("input.value"))
    if isinstance(body, dict) and "input" in body:
        value = body["input"]
        return [_text(v) for v in value] if isinstance(value, list) else [_text(value)]
    flat = [_text(v.get("content")) for v in _indexed(attrs, "gen_ai.prompt").values()]
    return [t for t in flat if t]


def request_params(attrs: Mapping[str, Any]) -> RequestParams:
    invocation = _json(attrs.get("llm.invocation_parameters"))
    invocation = invocation if isinstance(invocation, dict) else {}
    body = _json(attrs.get("input.value"))
    body = body if isinstance(body, dict) else {}

    def first(keys, *extra):
        for key in keys:
            if _text(attrs.get(key)):
                return attrs.get(key)
        for source, key in extra:
            if source.get(key) not in (None, ""):
                return source.get(key)
        return None

    return RequestParams(
        # The proxy alias first: it is what a client (and Replay) names when calling LiteLLM.
        model=_text(
            first(
                ("litellm.model_group", "gen_ai.request.model", "llm.model_name", "gen_ai.response.model"),
                (body, "model"),
            )
        ),
        temperature=_number(
            first(
                ("gen_ai.request.temperature", "llm.request.temperature"),
                (invocation, "temperature"),
                (body, "temperature"),
            )
        ),
        max_tokens=_integer(
            first(
                ("gen_ai.request.max_tokens", "llm.request.max_tokens"),
                (invocation, "max_tokens"),
                (invocation, "max_completion_tokens"),
                (body, "max_tokens"),
                (body, "max_completion_tokens"),
            )
        ),
        top_p=_number(first(("gen_ai.request.top_p", "llm.request.top_p"), (invocation, "top_p"), (body, "top_p"))),
        stream=_boolean(
            first(
                ("llm.is_streaming", "gen_ai.request.stream", "llm.request.stream"),
                (invocation, "stream"),
                (body, "stream"),
            )
        ),
        tools=_tools(attrs, body),
    )


# --- values -----------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    """A JSON attribute, parsed; typed values pass through; None when it is not JSON."""
    if isinstance(value, (list, dict)):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or text[0] not in "[{":
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _unquoted(value: Any) -> str:
    """A JSON-encoded string's text ('"hi"' -> 'hi'); other values as text."""
    text = _text(value)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except ValueError:
            return text
        return decoded if isinstance(decoded, str) else text
    return text


def _number(value: Any) -> float | None:
    try:
        number = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is None or math.isfinite(number) else None  # "nan", "1e999": not a setting


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    return {"true": True, "1": True, "false": False, "0": False}.get(text)


def _role(value: Any, default: str = "user") -> str:
    role = _text(value).strip().lower() or default
    return _ROLES.get(role, role)


def _content(value: Any) -> str:
    """Message content as text: a string, or content parts (OpenAI, Anthropic, GenAI) joined."""
    parsed = value if isinstance(value, list) else None
    if isinstance(value, str) and value.lstrip().startswith("[{"):
        parsed = _json(value) if isinstance(_json(value), list) else None
    if parsed is None:
        return _text(value)
    pieces = []
    for part in parsed:
        if not isinstance(part, dict):
            pieces.append(_text(part))
            continue
        kind = part.get("type", "text")
        if "text" in part or ("content" in part and kind in ("text", "reasoning", "output_text", "input_text")):
            pieces.append(_text(part.get("text", part.get("content"))))
        elif kind in ("image_url", "image", "blob", "uri", "file", "input_image", "input_audio", "audio"):
            pieces.append(f"[{kind}]")
    return "\n".join(p for p in pieces if p)


def _indexed(attrs: Mapping[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """`prefix.N.rest` keys -> {N: {rest: value}}, ordered by N."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.(.+)")
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        match = pattern.fullmatch(key)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return dict(sorted(found.items()))


# --- 1. JSON messages (GenAI "parts", or OpenAI / Anthropic shaped) ----------------------------


def _json_messages(value: Any, default_role: str = "user") -> list[Message] | None:
    """None when the attribute is absent or unreadable, so the next source is tried."""
    items = _json(value)
    if isinstance(items, dict):
        items = items.get("messages") if isinstance(items.get("messages"), list) else [items]
    if not isinstance(items, list):
        return None
    messages: list[Message] = []
    for item in items:
        if isinstance(item, dict):
            found = _one_json_message(item, default_role)
            # Drop what is not a message at all (no role, no text, no calls); keep an empty turn that has a role.
            messages.extend(
                m for m in found if "role" in item or m.content or m.tool_calls or m.tool_call_id or m.media
            )
        elif item is not None:
            messages.append(Message(default_role, _text(item)))
    return messages


def _one_json_message(item: dict, default_role: str) -> list[Message]:
    if "message" in item and isinstance(item["message"], dict):  # an OpenAI choice
        return _one_json_message({**item["message"], "finish_reason": item.get("finish_reason", "")}, default_role)
    role = _role(item.get("role"), default_role)
    message = Message(
        role,
        name=_text(item.get("name")),
        finish_reason=_text(item.get("finish_reason")),
        tool_call_id=_text(item.get("tool_call_id")),
    )
    results: list[Message] = []
    if isinstance(item.get("parts"), list):
        texts = []
        for part in item["parts"]:
            if not isinstance(part, dict):
                texts.append(_text(part))
            elif part.get("type") in ("reasoning", "thinking"):
                message.reasoning = "\n".join(t for t in (message.reasoning, _text(part.get("content"))) if t)
            elif (media := media_of(part)) is not None:
                message.media.append(media)
            elif part.get("type") == "tool_call":
                message.tool_calls.append(
                    ToolCall(_text(part.get("name")), _text(part.get("arguments")), _text(part.get("id")))
                )
            elif part.get("type") == "tool_call_response":
                response = part.get("response", part.get("result", part.get("content")))
                results.append(Message("tool", _text(response), tool_call_id=_text(part.get("id"))))
            else:
                texts.append(_content([part]))
        message.content = "\n".join(t for t in texts if t)
    else:
        content = item.get("content")
        if isinstance(content, list):  # Anthropic blocks may carry tool use and tool results
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    message.tool_calls.append(
                        ToolCall(_text(block.get("name")), _text(block.get("input")), _text(block.get("id")))
                    )
                elif isinstance(block, dict) and block.get("type") == "tool_result":
                    results.append(
                        Message("tool", _content(block.get("content")), tool_call_id=_text(block.get("tool_use_id")))
                    )
            content = [b for b in content if not (isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result"))]
            for block in content:  # reasoning and images apart from the text
                if isinstance(block, dict) and block.get("type") in ("reasoning", "thinking"):
                    said = _text(block.get("thinking", block.get("text", block.get("content"))))
                    message.reasoning = "\n".join(t for t in (message.reasoning, said) if t)
                elif isinstance(block, dict) and (media := media_of(block)) is not None:
                    message.media.append(media)
            content = [
                b
                for b in content
                if not (isinstance(b, dict) and (b.get("type") in ("reasoning", "thinking") or media_of(b) is not None))
            ]
        message.content = _content(content)
        for call in item.get("tool_calls") or []:
            if isinstance(call, dict):
                fn = call["function"] if isinstance(call.get("function"), dict) else call
                message.tool_calls.append(
                    ToolCall(_text(fn.get("name")), _text(fn.get("arguments")), _text(call.get("id")))
                )
        if isinstance(item.get("function_call"), dict):
            fc = item["function_call"]
            message.tool_calls.append(ToolCall(_text(fc.get("name")), _text(fc.get("arguments"))))
    if role == "tool" and results and not message.content and not message.tool_calls:
        return results  # a tool message is its results
    return ([message] if message.content or message.tool_calls or not results else []) + results


def media_of(part: dict) -> Media | None:
    """An image (or other non-text) part of any spelling as Media; None for a text or tool part."""
    kind = _text(part.get("type"))
    if kind == "blob":  # GenAI semconv: inline, base64
        return Media(
            _text(part.get("modality")) or "image", _text(part.get("mime_type")), data=_text(part.get("content"))
        )
    if kind in ("uri", "file"):  # GenAI semconv: by address (a file part may name only a file id)
        uri = _text(part.get("uri")) or _text(part.get("file_id"))
        return Media(_text(part.get("modality")) or "file", _text(part.get("mime_type")), uri=uri)
    if kind in ("image_url", "input_image"):  # OpenAI chat {"image_url": {"url"}}; Responses {"image_url": "…"}
        ref = part.get("image_url")
        url = _text(ref.get("url") if isinstance(ref, dict) else ref)
        found = _DATA_URI.fullmatch(url.strip())
        if found:
            return Media("image", found.group(1), data=found.group(2).strip())
        return Media("image", "", uri=url)
    if kind == "image" and isinstance(part.get("source"), dict):  # Anthropic
        source = part["source"]
        if source.get("type") == "base64":
            return Media("image", _text(source.get("media_type")), data=_text(source.get("data")))
        return Media("image", _text(source.get("media_type")), uri=_text(source.get("url")))
    return None


def _system_instructions(value: Any) -> Message | None:
    parsed = _json(value)
    if parsed is None:
        text = _text(value)
        return Message("system", text) if text else None
    text = _content(parsed if isinstance(parsed, list) else [parsed])
    return Message("system", text) if text else None


# --- 2. flat GenAI / OpenLLMetry keys ----------------------------------------------------------


def _flat_tool_calls(fields: Mapping[str, Any]) -> list[ToolCall]:
    calls = [
        ToolCall(_text(c.get("name")), _text(c.get("arguments")), _text(c.get("id")))
        for c in _indexed(fields, "tool_calls").values()
    ]
    if fields.get("function_call.name"):
        calls.append(ToolCall(_text(fields["function_call.name"]), _text(fields.get("function_call.arguments"))))
    return [c for c in calls if c.name or c.arguments]


def _flat_genai(attrs: Mapping[str, Any], prefix: str, default_role: str) -> list[Message]:
    messages = []
    for fields in _indexed(attrs, prefix).values():
        message = Message(
            _role(fields.get("role"), default_role),
            _content(fields.get("content")),
            _flat_tool_calls(fields),
            _text(fields.get("tool_call_id")),
            _text(fields.get("name")),
            _text(fields.get("finish_reason")),
        )
        if message.content or message.tool_calls or "role" in fields:
            messages.append(message)
    return messages


def _flat_genai_prompt(attrs: Mapping[str, Any]) -> list[Message]:
    return _flat_genai(attrs, "gen_ai.prompt", "user")


def _flat_genai_completion(attrs: Mapping[str, Any]) -> list[Message]:
    return _flat_genai(attrs, "gen_ai.completion", "assistant")


def _merge_flat_tool_calls(messages: list[Message], flat: list[Message]) -> None:
    """Add flat-key tool calls (LiteLLM's `function_call`) that the JSON output left out."""
    for index, extra in enumerate(flat):
        if not extra.tool_calls:
            continue
        if index >= len(messages):
            messages.append(Message("assistant", tool_calls=list(extra.tool_calls)))
            continue
        known = {(c.name, c.arguments) for c in messages[index].tool_calls}
        messages[index].tool_calls += [c for c in extra.tool_calls if (c.name, c.arguments) not in known]


# --- 3. flat OpenInference keys ----------------------------------------------------------------


def _openinference(attrs: Mapping[str, Any], prefix: str, default_role: str) -> list[Message]:
    messages = []
    for fields in _indexed(attrs, prefix).values():
        content = _content(fields.get("message.content"))
        if not content:
            parts = []
            for part in _indexed(fields, "message.contents").values():
                kind = _text(part.get("message_content.type")) or "text"
                parts.append(_text(part.get("message_content.text")) if kind == "text" else f"[{kind}]")
            content = "\n".join(p for p in parts if p)
        calls = [
            ToolCall(
                _text(c.get("tool_call.function.name")),
                _text(c.get("tool_call.function.arguments")),
                _text(c.get("tool_call.id")),
            )
            for c in _indexed(fields, "message.tool_calls").values()
        ]
        if fields.get("message.function_call_name"):
            calls.append(
                ToolCall(
                    _text(fields["message.function_call_name"]),
                    _text(fields.get("message.function_call_arguments_json")),
                )
            )
        messages.append(
            Message(
                _role(fields.get("message.role"), default_role),
                content,
                calls,
                _text(fields.get("message.tool_call_id")),
                _text(fields.get("message.name")),
            )
        )
    return messages


def _flat_openinference_input(attrs: Mapping[str, Any]) -> list[Message]:
    return _openinference(attrs, "llm.input_messages", "user")


def _flat_openinference_output(attrs: Mapping[str, Any]) -> list[Message]:
    return _openinference(attrs, "llm.output_messages", "assistant")


# --- 4. Vercel AI SDK and Google ADK 1.x ----------------------------------------------------------


def _vercel_part(role: str, parts: list) -> list[Message]:
    """A Vercel AI SDK prompt message's content parts: text, tool-call, tool-result."""
    message = Message(role)
    results: list[Message] = []
    texts = []
    for part in parts:
        if not isinstance(part, dict):
            texts.append(_text(part))
        elif part.get("type") == "tool-call":
            arguments = part.get("input", part.get("args"))
            message.tool_calls.append(
                ToolCall(_text(part.get("toolName")), _text(arguments), _text(part.get("toolCallId")))
            )
        elif part.get("type") == "tool-result":
            output = part.get("output", part.get("result"))
            if isinstance(output, dict) and "value" in output:  # v5 {type, value}
                output = output["value"]
            results.append(
                Message(
                    "tool", _text(output), tool_call_id=_text(part.get("toolCallId")), name=_text(part.get("toolName"))
                )
            )
        else:
            texts.append(_text(part.get("text", "")))
    message.content = "\n".join(t for t in texts if t)
    if role == "tool":
        return results
    return ([message] if message.content or message.tool_calls else []) + results


def _vercel_messages(items: Any) -> list[Message]:
    out: list[Message] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        role, content = _role(item.get("role")), item.get("content")
        if isinstance(content, list):
            out += _vercel_part(role, content)
        elif content not in (None, ""):
            out.append(Message(role, _text(content)))
    return out


def _vercel_input(attrs: Mapping[str, Any]) -> list[Message]:
    messages = _vercel_messages(_json(attrs.get("ai.prompt.messages")))
    if messages:
        return messages
    prompt = _json(attrs.get("ai.prompt"))
    if not isinstance(prompt, dict):
        return []
    out = [Message("system", _text(prompt["system"]))] if prompt.get("system") else []
    if isinstance(prompt.get("prompt"), str):
        out.append(Message("user", prompt["prompt"]))
    return out + _vercel_messages(prompt.get("messages"))


def _vercel_output(attrs: Mapping[str, Any]) -> list[Message]:
    text = _text(attrs.get("ai.response.text")) or _text(attrs.get("ai.response.object"))
    calls = _json(attrs.get("ai.response.toolCalls"))
    if not text and not calls:
        return []
    message = Message("assistant", text, finish_reason=_text(attrs.get("ai.response.finishReason")))
    for call in calls if isinstance(calls, list) else []:
        if isinstance(call, dict):
            arguments = call.get("input", call.get("args"))
            message.tool_calls.append(
                ToolCall(_text(call.get("toolName")), _text(arguments), _text(call.get("toolCallId")))
            )
    return [message]


def _adk_parts(role: str, parts: Any) -> list[Message]:
    """Gemini content parts as ADK records them: text, function_call, function_response."""
    message = Message(role)
    results: list[Message] = []
    texts = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("function_call"), dict):
            fc = part["function_call"]
            message.tool_calls.append(ToolCall(_text(fc.get("name")), _text(fc.get("args")), _text(fc.get("id"))))
        elif isinstance(part.get("function_response"), dict):
            fr = part["function_response"]
            results.append(
                Message("tool", _text(fr.get("response")), tool_call_id=_text(fr.get("id")), name=_text(fr.get("name")))
            )
        elif part.get("text") is not None:
            texts.append(_text(part["text"]))
    message.content = "\n".join(t for t in texts if t)
    return ([message] if message.content or message.tool_calls else []) + results


def _adk_input(attrs: Mapping[str, Any]) -> list[Message]:
    request = _json(attrs.get("gcp.vertex.agent.llm_request"))
    if not isinstance(request, dict) or not request.get("contents"):
        return []
    config = request["config"] if isinstance(request.get("config"), dict) else {}
    system = _content(config.get("system_instruction")) if config.get("system_instruction") else ""
    out = [Message("system", system)] if system else []
    for content in request["contents"]:
        if isinstance(content, dict):
            out += _adk_parts(_role(content.get("role")), content.get("parts"))
    return out


def _adk_output(attrs: Mapping[str, Any]) -> list[Message]:
    response = _json(attrs.get("gcp.vertex.agent.llm_response"))
    if not isinstance(response, dict) or not isinstance(response.get("content"), dict):
        return []
    messages = _adk_parts("assistant", response["content"].get("parts"))
    for m in messages:
        if m.role == "assistant":
            m.finish_reason = _text(response.get("finish_reason")).lower()
    return messages


# --- 5. span events --------------------------------------------------------------------------------

_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _strands_blocks(role: str, blocks: Any, tool_call_id: str = "") -> list[Message]:
    """AWS Strands content blocks: {text}, {toolUse: {toolUseId, name, input}}, {toolResult: {...}}."""
    if not isinstance(blocks, list):
        return [Message(role, _text(blocks), tool_call_id=tool_call_id)] if _text(blocks) else []
    message = Message(role, tool_call_id=tool_call_id)
    results: list[Message] = []
    texts = []
    for block in blocks:
        if not isinstance(block, dict):
            texts.append(_text(block))
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            message.tool_calls.append(
                ToolCall(_text(use.get("name")), _text(use.get("input")), _text(use.get("toolUseId")))
            )
        elif isinstance(block.get("toolResult"), dict):
            result = block["toolResult"]
            results.append(
                Message("tool", _content(result.get("content")), tool_call_id=_text(result.get("toolUseId")))
            )
        elif "text" in block:
            texts.append(_text(block["text"]))
    message.content = "\n".join(t for t in texts if t)
    if role == "tool" and results:
        return results
    return ([message] if message.content or message.tool_calls else []) + results


def _event_message(name: str, attrs: Mapping[str, Any]) -> list[Message]:
    role = _EVENT_ROLES.get(name, "assistant")
    body = _json(attrs.get("gen_ai.event.content"))  # Semantic Kernel .NET: the event body as JSON
    if isinstance(body, dict):
        if name == "gen_ai.choice" and isinstance(body.get("message"), dict):
            return _one_json_message({**body["message"], "finish_reason": body.get("finish_reason", "")}, "assistant")
        return _one_json_message({"role": role, **{k: v for k, v in body.items() if v is not None}}, role)
    if name == "gen_ai.choice":  # Strands: `message` holds content blocks
        messages = _strands_blocks("assistant", _json(attrs.get("message")) or attrs.get("message"))
        for m in messages:
            m.finish_reason = _text(attrs.get("finish_reason"))
        return messages
    return _strands_blocks(role, _json(attrs.get("content")) or attrs.get("content"), _text(attrs.get("id")))


def _event_input(events: list) -> list[Message]:
    for name, attrs in events:
        if name == "gen_ai.client.inference.operation.details":
            found = _semconv_input(attrs)
            if found:
                return found
        if name == "gen_ai.content.prompt":
            found = _json_messages(attrs.get("gen_ai.prompt"))
            if found:
                return found
    out: list[Message] = []
    for name, attrs in events:
        if name in _EVENT_ROLES:
            out += _event_message(name, attrs)
    return out


def _event_output(events: list) -> list[Message]:
    for name, attrs in events:
        if name == "gen_ai.client.inference.operation.details":
            found = _json_messages(attrs.get("gen_ai.output.messages"), default_role="assistant")
            if found:
                return found
        if name == "gen_ai.content.completion":
            found = _json_messages(attrs.get("gen_ai.completion"), default_role="assistant")
            if found:
                return found
    out: list[Message] = []
    for name, attrs in events:
        if name == "gen_ai.choice":
            out += _event_message(name, attrs)
    return out


# --- 6. raw payloads ---------------------------------------------------------------------------


def _raw_input(attrs: Mapping[str, Any]) -> list[Message]:
    for key in ("input.value", "traceloop.entity.input"):
        value = attrs.get(key)
        if not _text(value):
            continue
        body = _json(value)
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            system = [Message("system", _content(body["system"]))] if body.get("system") else []
            return system + (_json_messages(body["messages"]) or [])
        if isinstance(body, dict) and isinstance(body.get("prompt"), str):
            return [Message("user", body["prompt"])]
        if isinstance(body, dict) and "input" in body:  # an embeddings or Responses API body: its input, not the JSON
            given = body["input"]
            if isinstance(given, list) and any(isinstance(item, dict) for item in given):
                return _json_messages(given) or []
            texts = [_text(v) for v in given] if isinstance(given, list) else [_text(given)]
            return [Message("user", "\n".join(t for t in texts if t))] if any(texts) else []
        return [Message("user", _text(value))]
    return []


def _raw_output(attrs: Mapping[str, Any]) -> list[Message]:
    for key in ("output.value", "traceloop.entity.output"):
        value = attrs.get(key)
        if not _text(value):
            continue
        body = _json(value)
        if isinstance(body, dict) and isinstance(body.get("choices"), list):
            messages = []
            for choice in body["choices"]:
                if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                    messages += _one_json_message(choice, "assistant")
                elif isinstance(choice, dict) and "text" in choice:
                    messages.append(
                        Message("assistant", _text(choice["text"]), finish_reason=_text(choice.get("finish_reason")))
                    )
            return messages
        if isinstance(body, dict) and body.get("type") == "message" and isinstance(body.get("content"), list):
            return _one_json_message(
                {**body, "role": "assistant", "finish_reason": body.get("stop_reason", "")}, "assistant"
            )
        return [Message("assistant", _text(value))]
    return []


# --- tools offered -----------------------------------------------------------------------------


def _schema(value: Any) -> dict | None:
    parsed = _json(value)
    return parsed if isinstance(parsed, dict) else None


def _tool_from_json(item: Any) -> Tool | None:
    if not isinstance(item, dict):
        return None
    fn = item["function"] if isinstance(item.get("function"), dict) else item
    if not fn.get("name"):
        return None
    params = fn.get("parameters", fn.get("input_schema"))
    return Tool(
        _text(fn["name"]), _text(fn.get("description")), params if isinstance(params, dict) else _schema(params)
    )


def _tools(attrs: Mapping[str, Any], body: dict) -> list[Tool]:
    for prefix in ("llm.request.functions", "gen_ai.tool"):
        flat = [
            Tool(_text(f["name"]), _text(f.get("description")), _schema(f.get("parameters")))
            for f in _indexed(attrs, prefix).values()
            if f.get("name")
        ]
        if flat:
            return flat
    definitions = _json(attrs.get("gen_ai.tool.definitions"))
    if isinstance(definitions, list):
        return [t for t in map(_tool_from_json, definitions) if t]
    openinference = [_tool_from_json(_json(f.get("tool.json_schema"))) for f in _indexed(attrs, "llm.tools").values()]
    if any(openinference):
        return [t for t in openinference if t]
    if isinstance(body.get("tools"), list):
        return [t for t in map(_tool_from_json, body["tools"]) if t]
    return []
