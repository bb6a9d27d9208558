"""A re-run: one recorded LLM call sent again, as edited, through the gateway (monitoring.gateway),
recorded as a span of its own trace in the project, linked to the call it replays, so it shows in
Traces (the numbers leave Replay's re-runs out unless asked). Only an answered call is recorded: an
attempt that got no answer (gateway unreachable, timeout, its error) is not a run. When the gateway exports its own spans
into the same project (LITELLM_PROJECT_ID), the re-run's span is the caller of the gateway's call
span (we send a `traceparent`), so the usual de-duplication counts that invocation once.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from django.conf import settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from monitoring import gateway
from monitoring.ingest import otlp, span_store
from monitoring.queries import trace as trace_q
from monitoring.replay.diff import text_diff
from monitoring.replay.steps import Step
from monitoring.semantics import messages, pricing, semconv
from monitoring.store import clickhouse, errors

REPLAY_SCOPE = "agent-portal-monitoring.replay"


@dataclass
class Rerun:
    ok: bool
    trace_id: str
    span_id: str
    error: str = ""
    answer: gateway.GatewayAnswer | None = None
    unrecorded: str = ""  # why the re-run could not be stored as a span (the answer is still shown)
    cost_usd: float = 0.0
    cost_source: str = ""
    diff: list[tuple[str, str]] = field(default_factory=list)


def _content_parts(content: object) -> list[dict]:
    """OpenAI message content (text, or content parts) as GenAI semconv parts: text, and an image as a
    `blob` (a data: URI) or a `uri` part, so the recorded re-run shows the images it sent."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    if not isinstance(content, list):
        return [{"type": "text", "content": json.dumps(content, ensure_ascii=False)}] if content else []
    parts: list[dict] = []
    for item in content:
        found = messages.media_of(item) if isinstance(item, dict) else None
        if found is not None and found.data:
            parts.append(
                {"type": "blob", "modality": found.modality, "mime_type": found.mime_type, "content": found.data}
            )
        elif found is not None:
            parts.append({"type": "uri", "modality": found.modality, "mime_type": found.mime_type, "uri": found.uri})
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            parts.append({"type": "text", "content": item["text"]})
        else:
            parts.append(
                {"type": "text", "content": item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)}
            )
    return parts


def _parts(messages: list[dict]) -> str:
    """Messages in the GenAI semconv "parts" JSON, which monitoring.semantics.messages reads back."""
    out = []
    for m in messages:
        parts = _content_parts(m.get("content"))
        for call in m.get("tool_calls") or []:
            fn = call.get("function") or {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id", ""),
                    "name": fn.get("name", ""),
                    "arguments": fn.get("arguments", ""),
                }
            )
        item = {"role": m.get("role", "user"), "parts": parts}
        if m.get("tool_call_id"):
            item["parts"] = [{"type": "tool_call_response", "id": m["tool_call_id"], "response": m.get("content", "")}]
        out.append(item)
    return json.dumps(out, ensure_ascii=False)


def _attributes(original: trace_q.FullSpan, payload: dict, answer: gateway.GatewayAnswer, user: str) -> dict:
    """The re-run span's attributes: GenAI semconv 1.37 request/response/usage keys (messages as
    "parts" JSON), the reported cost, and which call it replays (apm.replay.*)."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": payload["model"],
        "gen_ai.request.temperature": payload.get("temperature"),
        "gen_ai.request.max_tokens": payload.get("max_tokens"),
        "gen_ai.input.messages": _parts(payload["messages"]),
        "apm.replay.original_trace_id": original.trace_id,
        "apm.replay.original_span_id": original.span_id,
        "apm.replay.user": user,
    }
    output = {
        "role": "assistant",
        "content": answer.content,
        "tool_calls": [{"function": c} for c in answer.tool_calls],
    }
    attributes |= {
        "gen_ai.response.model": answer.model,
        "gen_ai.usage.input_tokens": answer.input_tokens,
        "gen_ai.usage.output_tokens": answer.output_tokens,
        "gen_ai.output.messages": _parts([output]),
        "gen_ai.response.finish_reasons": answer.finish_reason or None,
    }
    if answer.cost_usd is not None:
        attributes["gen_ai.cost.total_cost"] = float(answer.cost_usd)
    if answer.call_id:
        attributes["litellm.call_id.of_gateway"] = answer.call_id
    return attributes


def _record(
    project_id: str,
    trace_id: bytes,
    span_id: bytes,
    original: trace_q.FullSpan,
    payload: dict,
    started_ns: int,
    ended_ns: int,
    answer: gateway.GatewayAnswer,
    user: str,
) -> None:
    """Store an answered re-run as one CLIENT span of service semconv.REPLAY_SERVICE, linked to
    `original`. Raises clickhouse.ClickHouseError."""
    span = Span(
        trace_id=trace_id,
        span_id=span_id,
        name=f"replay {payload['model']}",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=started_ns,
        end_time_unix_nano=ended_ns,
        attributes=otlp.key_values(_attributes(original, payload, answer, user)),
        status=Status(code=Status.STATUS_CODE_OK),
        links=[
            Span.Link(
                trace_id=bytes.fromhex(original.trace_id),
                span_id=bytes.fromhex(original.span_id),
                attributes=otlp.key_values({"apm.link.type": "replay_of"}),
            )
        ],
    )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=otlp.key_values({"service.name": semconv.REPLAY_SERVICE})),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name=REPLAY_SCOPE), spans=[span])],
            )
        ]
    )
    rows, _ = otlp.rows_from_request(request, project_id)
    span_store.store(rows, tag="replay.record")


def rerun(project, step: Step, payload: dict, user: str) -> Rerun:
    """Send the edited request to the gateway, record it as a span linked to the original, compare."""
    trace_id, span_id = os.urandom(16), os.urandom(8)
    # Tie the gateway's spans to ours only when they land in this same project: another project's
    # re-run must not put its trace id (and a link to its trace) into the gateway's project.
    same_project = str(project.id) == str(settings.LITELLM_PROJECT_ID)
    headers = {"traceparent": f"00-{trace_id.hex()}-{span_id.hex()}-01"} if same_project else {}
    started = time.time_ns()
    answer, error = None, ""
    try:
        answer = gateway.chat(payload, headers=headers)
    except gateway.GatewayError as exc:
        error = str(exc)
    ended = time.time_ns()
    result = Rerun(ok=answer is not None, trace_id=trace_id.hex(), span_id=span_id.hex(), error=error, answer=answer)
    if answer is None:
        # A call that got no answer is not a run: nothing is stored (lists and filters never see it).
        return result
    try:
        _record(str(project.id), trace_id, span_id, step.span, payload, started, ended, answer, user)
    except clickhouse.ClickHouseError as exc:
        # The call was made (and paid for): show its answer, and say it is missing from the traces.
        t = errors.trouble(exc)
        result.unrecorded = f"{t.title}; {t.detail}"
    if answer.cost_usd is not None:
        result.cost_usd, result.cost_source = answer.cost_usd, "reported"
    else:
        result.cost_usd, result.cost_source = pricing.cost_of_call(
            project.id, payload["model"], answer.input_tokens, answer.output_tokens
        )
    result.diff = text_diff(step.output_text, answer.content)
    return result
