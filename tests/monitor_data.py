"""Spans for the monitors' tests, written through the real ingest path with fresh timestamps."""

from __future__ import annotations

import datetime as dt

from otlp import S


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def llm_call(
    model: str = "gpt-4o",
    *,
    user: str = "",
    cost: float | None = None,
    tokens: tuple[int, int] = (100, 10),
    ms: float = 200,
    error: bool = False,
    service: str = "svc",
    at: dt.datetime | None = None,
    parent: S | None = None,
) -> S:
    """A GenAI-semconv chat span; `cost` is the reported USD (else priced from tokens)."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": tokens[0],
        "gen_ai.usage.output_tokens": tokens[1],
    }
    if user:
        attributes["user.id"] = user
    if cost is not None:
        attributes["gen_ai.cost.total_cost"] = cost
    at = at or now() - dt.timedelta(minutes=2)
    if parent is not None:
        return parent.child("chat", attributes=attributes, ms=ms, error=error, at=at)
    return S("chat", service=service, attributes=attributes, ms=ms, error=error, at=at)


def agent_run(*, user: str = "", error: bool = False, service: str = "agent-x", at=None, calls=()) -> list[S]:
    """An agent run (root agent span) with LLM calls under it: calls are dicts of llm_call kwargs."""
    at = at or now() - dt.timedelta(minutes=2)
    attributes = {"gen_ai.operation.name": "invoke_agent"}
    if user:
        attributes["user.id"] = user
    root = S("invoke_agent", service=service, attributes=attributes, error=error, at=at, ms=1000)
    return [root, *(llm_call(parent=root, at=at, **c) for c in calls)]
