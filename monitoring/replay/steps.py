"""A recorded run as Replay's steps: the trace's spans in start order, each with its role (agent
step, LLM call, tool, span), its messages (monitoring.semantics.messages reads every dialect), model, tokens,
cost, duration, status and parent path. Reads only (monitoring.queries.trace); no re-run here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from monitoring.queries import runs as runs_q
from monitoring.queries import spans as spans_q
from monitoring.queries import trace as trace_q
from monitoring.queries.filter import SpanFilter
from monitoring.semantics import semconv
from monitoring.semantics.messages import (
    Message,
    RequestParams,
    embedding_inputs,
    request_messages,
    request_params,
    response_messages,
)

LLM, TOOL, AGENT, SPAN = "llm", "tool", "agent", "span"
ROLE_LABELS = {
    LLM: gettext_lazy("LLM call"),
    TOOL: gettext_lazy("Tool"),
    AGENT: gettext_lazy("Agent step"),
    SPAN: gettext_lazy("Span"),
}


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
    def rerunnable(self) -> bool:
        """A chat call: what Replay re-sends to the gateway's /v1/chat/completions. An embedding
        call is not offered: its answer is a vector, which spans do not record, so a re-run would
        have nothing to be compared with (and its input is not a chat)."""
        return self.role == LLM and not self.span.is_embedding

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


@dataclass
class Lookup:
    """What a typed trace id names: `trace_id` when it names one trace of the project; else `error`
    (the message), `status` (400: not an id, or a prefix of several; 404: none) and `candidates`."""

    trace_id: str = ""
    error: str = ""
    status: int = 200
    candidates: list[str] = field(default_factory=list)


CANDIDATES_SHOWN = 5


def find_trace(project, text: str) -> Lookup:
    """A whole trace id (32 hex digits) as it is, or the start of one (6+ hex digits, as search takes
    it: the 8-digit short ids every table shows) when exactly one trace of the project starts so."""
    text = text.strip().lower()
    if spans_q.TRACE_ID.fullmatch(text):
        return Lookup(text)
    if not spans_q.TRACE_PREFIX.fullmatch(text):
        return Lookup(
            error=str(_("A trace id is 32 hex digits, or its first 6 or more (the short id the tables show).")),
            status=400,
        )
    found = trace_q.traces_starting(str(project.id), text, CANDIDATES_SHOWN + 1)
    if len(found) == 1:
        return Lookup(found[0])
    if not found:
        return Lookup(error=str(_("No trace of this project starts with %(prefix)s.") % {"prefix": text}), status=404)
    return Lookup(
        error=str(
            _("More than one trace starts with %(prefix)s: type more of its id, or pick one.") % {"prefix": text}
        ),
        status=400,
        candidates=found[:CANDIDATES_SHOWN],
    )


def load_run(project, trace_id: str, *, every_span: bool = False) -> Run | None:
    """The trace as steps in start order (a parent before a child that starts at the same instant);
    None when the project has no such trace."""
    trace_id = trace_id.strip().lower()
    if not spans_q.TRACE_ID.fullmatch(trace_id):
        return None
    ref = trace_q.locate(str(project.id), trace_id)
    found = trace_q.invocations(ref, project.agent_names)
    spans = trace_q.full_spans(ref, agent_names=project.agent_names, found=found)  # invocations marked on them
    if not spans:
        return None
    embeddings = trace_q.embedding_span_ids(ref)
    for span in spans:
        span.is_embedding = span.span_id in embeddings
    tree = trace_q.tree_of(spans, project.agent_names)  # the same spans, not read again
    summary = trace_q.summarize(ref, tree, found)
    counted = {s.span_id for s in spans if s.invocation}
    depth = _depths(spans)
    spans.sort(key=lambda s: (s.ts, depth[s.span_id], s.span_id))
    by_id = {s.span_id: s for s in spans}
    roles = {s.span_id: _role(s, project.agent_names) for s in spans}
    meaningful = [s for s in spans if roles[s.span_id] != SPAN]
    chosen = spans if every_span or not meaningful else meaningful
    steps: list[Step] = []
    for span in chosen:
        path: list[str] = []
        parent, seen = by_id.get(span.parent_span_id), set()
        while parent is not None and parent.span_id not in seen:
            seen.add(parent.span_id)
            path.insert(0, parent.name)
            parent = by_id.get(parent.parent_span_id)
        role = roles[span.span_id]
        counts = role != LLM or span.span_id in counted
        steps.append(_step(span, role, index=len(steps) + 1, path=path, counted=counts))
    return Run(trace_id, steps, hidden=len(spans) - len(chosen), summary=summary)


def load_step(project, trace_id: str, span_id: str) -> Step | None:
    """One span of a trace as a step (what a re-run needs), without reading the whole trace."""
    trace_id = trace_id.strip().lower()
    if not spans_q.TRACE_ID.fullmatch(trace_id) or not spans_q.SPAN_ID.fullmatch(span_id or ""):
        return None
    ref = trace_q.locate(str(project.id), trace_id)
    span = trace_q.full_span(ref, span_id, project.agent_names)
    if span is None:
        return None
    span.is_embedding = span.is_llm_call and span_id in trace_q.embedding_span_ids(ref)
    return _step(span, _role(span, project.agent_names))


def _step(
    span: trace_q.FullSpan, role: str, *, index: int = 1, path: list[str] | None = None, counted: bool = True
) -> Step:
    """A span as a step: its messages read from every dialect; cost only on an LLM call."""
    events = [(e.name, e.attributes) for e in span.events]
    texts = embedding_inputs(span.attributes) if span.is_embedding else []
    return Step(
        index=index,
        span=span,
        role=role,
        path=path or [],
        cost_usd=span.cost_usd if role == LLM else 0.0,
        cost_source=span.cost_source,
        # An embedding's input is the texts it embedded, not its request body as a chat message.
        input=[Message("user", t) for t in texts] if texts else request_messages(span.attributes, events),
        output=response_messages(span.attributes, events),
        params=request_params(span.attributes) if role == LLM else None,
        counted=counted,
    )


# --- recent runs to pick from ---------------------------------------------------------------------


def recent_runs(
    flt: SpanFilter, limit: int = 20, *, q: str = "", cursor: runs_q.RunCursor | None = None
) -> runs_q.TracePage:
    """A page of the newest traces with an LLM call or an agent step, for the run picker (LLM calls
    counted once, as everywhere): runs_q.recent_traces."""
    return runs_q.recent_traces(flt, limit, q=q, cursor=cursor)
