"""Replay: a recorded run as steps, a re-run of one LLM call through the gateway, and two runs compared.

A step is a span in start order with its role (agent step, LLM call, tool, span), its messages
(monitoring.messages reads every dialect), model, tokens, cost, duration, status and parent path.
A re-run is recorded as a span of its own trace in the project, linked to the call it replays, so
it shows in Traces and counts in the numbers. When the gateway exports its own spans into the same
project (LITELLM_PROJECT_ID), the re-run's span is the caller of the gateway's call span (we send a
`traceparent`), so the usual de-duplication counts that invocation once.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.translation import gettext_lazy
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from monitoring import clickhouse, errors, gateway, ingest, pricing, schema, semconv
from monitoring.messages import Message, RequestParams, request_messages, request_params, response_messages
from monitoring.queries import runs as runs_q
from monitoring.queries import spans as spans_q
from monitoring.queries import trace as trace_q
from monitoring.queries.filter import SpanFilter

LLM, TOOL, AGENT, SPAN = "llm", "tool", "agent", "span"
ROLE_LABELS = {
    LLM: gettext_lazy("LLM call"),
    TOOL: gettext_lazy("Tool"),
    AGENT: gettext_lazy("Agent step"),
    SPAN: gettext_lazy("Span"),
}
REPLAY_SERVICE = "apm-replay"
REPLAY_SCOPE = "agent-portal-monitoring.replay"


def _role(span: trace_q.FullSpan, agent_names: tuple[str, ...]) -> str:
    a = span.attributes
    if span.is_llm_call:
        return LLM
    if (
        a.get("gen_ai.operation.name") in semconv.GENAI_TOOL_OPERATIONS
        or a.get("traceloop.span.kind") in semconv.TRACELOOP_TOOL_KINDS
        or a.get("openinference.span.kind") in semconv.OPENINFERENCE_TOOL_KINDS
    ):
        return TOOL
    if span.is_agent_step or span.name in agent_names:
        return AGENT
    return SPAN


@dataclass
class Step:
    index: int  # 1-based, as in the URL
    span: trace_q.FullSpan
    role: str
    path: list[str]
    cost_usd: float
    cost_source: str
    input: list[Message] = field(default_factory=list)
    output: list[Message] = field(default_factory=list)
    params: RequestParams | None = None
    # False for an LLM span that is not counted as a call of its own: an agent's span whose request
    # went through the LiteLLM gateway, whose span is the counted one (trace_q.invocations).
    counted: bool = True

    @property
    def role_label(self) -> str:
        return str(ROLE_LABELS[self.role])

    @property
    def key(self) -> str:
        """What aligns steps of two runs: role and name."""
        return f"{self.role}:{self.span.name}"

    @property
    def output_text(self) -> str:
        return "\n".join(m.content for m in self.output if m.content)

    @property
    def exceptions(self) -> list[dict]:
        return [
            {
                "type": e.attributes.get("exception.type", ""),
                "message": e.attributes.get("exception.message", ""),
                "stacktrace": e.attributes.get("exception.stacktrace", ""),
            }
            for e in self.span.exceptions
        ]

    @property
    def tools_called(self) -> list[str]:
        return [c.name for m in self.output for c in m.tool_calls]


@dataclass
class Run:
    """A trace as steps. Its numbers (duration, LLM calls, tokens, cost, errors) are the trace page's:
    `summary` is trace_q.summarize of the same trace, so one invocation is counted once everywhere."""

    trace_id: str
    steps: list[Step]
    hidden: int  # spans left out because they are plumbing (auth, router, HTTP...)
    summary: trace_q.TraceSummary

    @property
    def duration_ms(self) -> float:
        return self.summary.duration_ms

    @property
    def cost_usd(self) -> float:
        return self.summary.cost_usd

    @property
    def errors(self) -> int:
        return self.summary.errors


def _depths(spans: list[trace_q.FullSpan]) -> dict[str, int]:
    """Each span's depth in its tree (0 for a root, also for one whose parent was not received)."""
    parents = {s.span_id: s.parent_span_id for s in spans}
    depths: dict[str, int] = {}
    for span in spans:
        chain, current = [], span.span_id
        while current in parents and current not in depths and current not in chain:  # `chain`: no cycles
            chain.append(current)
            current = parents[current]
        depth = depths.get(current, -1) if current in parents else -1
        for span_id in reversed(chain):
            depth += 1
            depths[span_id] = depth
    return depths


def load_run(project, trace_id: str, *, every_span: bool = False) -> Run | None:
    """The trace as steps in start order (a parent before a child that starts at the same instant);
    None when the project has no such trace."""
    trace_id = trace_id.strip().lower()
    if not spans_q.TRACE_ID.fullmatch(trace_id):
        return None
    ref = trace_q.locate(str(project.id), trace_id)
    spans = trace_q.full_spans(ref, agent_names=project.agent_names)  # invocations marked on them
    if not spans:
        return None
    tree = trace_q.tree_spans(ref, agent_names=project.agent_names)
    summary = trace_q.summarize(ref, tree, trace_q.invocations(ref, project.agent_names))
    counted = {s.span_id for s in spans if s.invocation}
    depth = _depths(spans)
    spans.sort(key=lambda s: (s.ts, depth[s.span_id], s.span_id))
    by_id = {s.span_id: s for s in spans}
    roles = {s.span_id: _role(s, project.agent_names) for s in spans}
    meaningful = [s for s in spans if roles[s.span_id] != SPAN]
    chosen = spans if every_span or not meaningful else meaningful
    steps = []
    for span in chosen:
        path, parent, seen = [], by_id.get(span.parent_span_id), set()
        while parent is not None and parent.span_id not in seen:
            seen.add(parent.span_id)
            path.insert(0, parent.name)
            parent = by_id.get(parent.parent_span_id)
        cost, source = span.cost_usd, span.cost_source
        role = roles[span.span_id]
        events = [(e.name, e.attributes) for e in span.events]
        steps.append(
            Step(
                index=len(steps) + 1,
                span=span,
                role=role,
                path=path,
                cost_usd=cost if role == LLM else 0.0,
                cost_source=source,
                input=request_messages(span.attributes, events),
                output=response_messages(span.attributes, events),
                params=request_params(span.attributes) if role == LLM else None,
                counted=role != LLM or span.span_id in counted,
            )
        )
    return Run(trace_id, steps, hidden=len(spans) - len(chosen), summary=summary)


def load_step(project, trace_id: str, span_id: str) -> Step | None:
    """One span of a trace as a step (what a re-run needs), without reading the whole trace."""
    trace_id = trace_id.strip().lower()
    if not spans_q.TRACE_ID.fullmatch(trace_id) or not re.fullmatch(r"[0-9a-f]{16}", span_id or ""):
        return None
    span = trace_q.full_span(trace_q.locate(str(project.id), trace_id), span_id, project.agent_names)
    if span is None:
        return None
    cost, source = span.cost_usd, span.cost_source
    role = _role(span, project.agent_names)
    events = [(e.name, e.attributes) for e in span.events]
    return Step(
        index=1,
        span=span,
        role=role,
        path=[],
        cost_usd=cost if role == LLM else 0.0,
        cost_source=source,
        input=request_messages(span.attributes, events),
        output=response_messages(span.attributes, events),
        params=request_params(span.attributes) if role == LLM else None,
    )


# --- recent runs to pick from ---------------------------------------------------------------------


def recent_runs(flt: SpanFilter, limit: int = 20) -> list[dict]:
    """The newest traces with an LLM call or an agent step, for the run picker (LLM calls counted
    once, as everywhere)."""
    return runs_q.recent_traces(flt, limit)


# --- re-run ---------------------------------------------------------------------------------------


class RerunInputError(ValueError):
    """The editor's content is not a request we can send."""


# Bounds of what the editor may send: deeper JSON than any chat request needs is refused before it
# can exhaust the stack; numbers stay within what every provider's API takes.
MAX_JSON_DEPTH = 64
MAX_TOKENS = 10_000_000
MAX_TEMPERATURE = 2.0  # OpenAI's upper bound; providers with a lower one answer with their own error


def _json_list(raw: str, what: str):
    """The editor's JSON text parsed; RerunInputError when it is not JSON or nests too deep."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = "it nests too deep" if isinstance(exc, RecursionError) else exc
        raise RerunInputError(f"{what} are not valid JSON: {reason}") from None
    stack = [(value, 1)]
    while stack:  # iterative: the check itself must not recurse
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise RerunInputError(f"{what} nest deeper than {MAX_JSON_DEPTH} levels.")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return value


def _number(data, name: str, cast, lo: float, hi: float):
    """An optional number field: None when empty; RerunInputError unless plain ASCII within [lo, hi]."""
    raw = (data.get(name) or "").strip()
    if not raw:
        return None
    pattern = r"[0-9]{1,12}" if cast is int else r"[+-]?(?:[0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})"
    if not re.fullmatch(pattern, raw) or not lo <= cast(raw) <= hi:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise RerunInputError(f"{name} must be a number from {lo:g} to {hi:g}, not {shown!r}.")
    return cast(raw)


def payload_from_form(data) -> dict:
    """The edited request: model, temperature (0..MAX_TEMPERATURE), max_tokens (1..MAX_TOKENS),
    messages (a JSON list of objects with a role) and tools (a JSON list). Raises RerunInputError."""
    model = (data.get("model") or "").strip()
    if not model:
        raise RerunInputError("Choose a model.")
    messages = _json_list(data.get("messages") or "[]", "Messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and m.get("role") for m in messages)
    ):
        raise RerunInputError(
            'Messages must be a JSON list of objects with a role, e.g. [{"role": "user", "content": "Hello"}].'
        )
    payload: dict = {"model": model, "messages": messages}
    for name, cast, lo, hi in (("temperature", float, 0.0, MAX_TEMPERATURE), ("max_tokens", int, 1, MAX_TOKENS)):
        value = _number(data, name, cast, lo, hi)
        if value is not None:
            payload[name] = value
    tools_raw = (data.get("tools") or "").strip()
    if tools_raw and tools_raw != "[]":
        tools = _json_list(tools_raw, "Tools")
        if not isinstance(tools, list):
            raise RerunInputError("Tools must be a JSON list.")
        payload["tools"] = tools
    return payload


def editor_defaults(step: Step) -> dict:
    """The recorded request, ready for the editor."""
    params = step.params or RequestParams()
    messages = [m.as_openai() for m in step.input]
    return {
        "model": params.model or step.span.model,
        "temperature": "" if params.temperature is None else params.temperature,
        "max_tokens": "" if params.max_tokens is None else params.max_tokens,
        "messages": json.dumps(messages, indent=2, ensure_ascii=False),
        "tools": json.dumps([t.as_openai() for t in params.tools], indent=2, ensure_ascii=False)
        if params.tools
        else "",
    }


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


def _parts(messages: list[dict]) -> str:
    """Messages in the GenAI semconv "parts" JSON, which monitoring.messages reads back."""
    out = []
    for m in messages:
        parts = []
        if m.get("content"):
            parts.append(
                {"type": "text", "content": m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])}
            )
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


def _record(
    project_id: str,
    trace_id: bytes,
    span_id: bytes,
    original: trace_q.FullSpan,
    payload: dict,
    started_ns: int,
    ended_ns: int,
    answer: gateway.GatewayAnswer | None,
    error: str,
    user: str,
) -> None:
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
    if answer is not None:
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
    else:
        attributes["error.type"] = "GatewayError"
    span = Span(
        trace_id=trace_id,
        span_id=span_id,
        name=f"replay {payload['model']}",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=started_ns,
        end_time_unix_nano=ended_ns,
        attributes=ingest.key_values(attributes),
        status=Status(code=Status.STATUS_CODE_ERROR, message=error) if error else Status(code=Status.STATUS_CODE_OK),
        links=[
            Span.Link(
                trace_id=bytes.fromhex(original.trace_id),
                span_id=bytes.fromhex(original.span_id),
                attributes=ingest.key_values({"apm.link.type": "replay_of"}),
            )
        ],
    )
    if error:
        span.events.append(
            Span.Event(
                time_unix_nano=ended_ns,
                name="exception",
                attributes=ingest.key_values({"exception.type": "GatewayError", "exception.message": error}),
            )
        )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=ingest.key_values({"service.name": REPLAY_SERVICE})),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name=REPLAY_SCOPE), spans=[span])],
            )
        ]
    )
    rows, _ = ingest.rows_from_request(request, project_id)
    clickhouse.insert(
        schema.table(), schema.TRACE_COLUMNS, rows, tag="replay.record", nanos_columns=schema.NANOS_COLUMNS
    )


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
    try:
        _record(str(project.id), trace_id, span_id, step.span, payload, started, ended, answer, error, user)
    except clickhouse.ClickHouseError as exc:
        # The call was made (and paid for): show its answer, and say it is missing from the traces.
        t = errors.trouble(exc)
        result.unrecorded = f"{t.title}; {t.detail}"
    if answer is not None:
        if answer.cost_usd is not None:
            result.cost_usd, result.cost_source = answer.cost_usd, "reported"
        else:
            result.cost_usd, result.cost_source = pricing.cost_of_call(
                project.id, payload["model"], answer.input_tokens, answer.output_tokens
            )
        result.diff = text_diff(step.output_text, answer.content)
    return result


# --- differences ------------------------------------------------------------------------------------


MAX_DIFF_TOKENS = 4000  # words and spaces per side: the matcher is quadratic in the worst case


def text_diff(before: str, after: str) -> list[tuple[str, str]]:
    """Word-level diff as (op, text) with op "equal", "delete" or "insert"; long texts are compared
    on their first MAX_DIFF_TOKENS tokens and the rest is shown as a whole."""
    a, b = re.findall(r"\S+|\s+", before), re.findall(r"\S+|\s+", after)
    rest_a, rest_b = "".join(a[MAX_DIFF_TOKENS:]), "".join(b[MAX_DIFF_TOKENS:])
    a, b = a[:MAX_DIFF_TOKENS], b[:MAX_DIFF_TOKENS]
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("equal", "".join(a[i1:i2])))
        if op in ("delete", "replace"):
            out.append(("delete", "".join(a[i1:i2])))
        if op in ("insert", "replace"):
            out.append(("insert", "".join(b[j1:j2])))
    if rest_a != rest_b:
        out += [("delete", rest_a)] * bool(rest_a) + [("insert", rest_b)] * bool(rest_b)
    elif rest_a:
        out.append(("equal", rest_a))
    return out


@dataclass
class Pair:
    a: Step | None
    b: Step | None
    changed: list[str] = field(default_factory=list)  # which of status/tokens/cost/latency/output/tools/input differ
    output_diff: list[tuple[str, str]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        if self.a is None:
            return "added"
        if self.b is None:
            return "removed"
        return "changed" if self.changed else "same"

    @property
    def kind_label(self) -> str:
        return str(PAIR_KINDS[self.kind])

    @property
    def changed_labels(self) -> list[str]:
        return [str(CHANGES.get(c, c)) for c in self.changed]


PAIR_KINDS = {
    "same": gettext_lazy("same"),
    "added": gettext_lazy("only in B"),
    "removed": gettext_lazy("only in A"),
    "changed": gettext_lazy("changed"),
}
CHANGES = {
    "name": gettext_lazy("name"),
    "status": gettext_lazy("status"),
    "tokens": gettext_lazy("tokens"),
    "cost": gettext_lazy("cost"),
    "latency": gettext_lazy("latency"),
    "input": gettext_lazy("input"),
    "output": gettext_lazy("output"),
    "tools": gettext_lazy("tools"),
}


LATENCY_TOLERANCE = 0.2  # a latency counts as changed beyond +-20 %


def _compare_steps(a: Step, b: Step) -> Pair:
    changed = []
    if a.span.status != b.span.status:
        changed.append("status")
    if (a.span.input_tokens, a.span.output_tokens) != (b.span.input_tokens, b.span.output_tokens):
        changed.append("tokens")
    if abs(a.cost_usd - b.cost_usd) > 1e-12:
        changed.append("cost")
    slow, fast = max(a.span.duration_ns, b.span.duration_ns), min(a.span.duration_ns, b.span.duration_ns)
    if slow and (slow - fast) / slow > LATENCY_TOLERANCE:
        changed.append("latency")
    if [m.content for m in a.input] != [m.content for m in b.input]:
        changed.append("input")
    if a.output_text != b.output_text:
        changed.append("output")
    if a.tools_called != b.tools_called:
        changed.append("tools")
    diff = text_diff(a.output_text, b.output_text) if "output" in changed else []
    return Pair(a, b, changed, diff)


def compare(run_a: Run, run_b: Run) -> list[Pair]:
    """Steps aligned by role and name in order (a sequence alignment), with what differs."""
    keys_a, keys_b = [s.key for s in run_a.steps], [s.key for s in run_b.steps]
    pairs: list[Pair] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=keys_a, b=keys_b, autojunk=False).get_opcodes():
        if op == "equal":
            pairs += [
                _compare_steps(run_a.steps[i], run_b.steps[j])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=False)
            ]
            continue
        # replace/insert/delete: pair what lines up, the rest stands alone
        left, right = run_a.steps[i1:i2], run_b.steps[j1:j2]
        for k in range(max(len(left), len(right))):
            a = left[k] if k < len(left) else None
            b = right[k] if k < len(right) else None
            if a is not None and b is not None and a.role == b.role:
                pair = _compare_steps(a, b)
                if a.span.name != b.span.name:
                    pair.changed.insert(0, "name")
                pairs.append(pair)
            else:
                if a is not None:
                    pairs.append(Pair(a, None))
                if b is not None:
                    pairs.append(Pair(None, b))
    return pairs
