"""The OpenAI-compatible gateway (LiteLLM) that Replay re-runs recorded LLM calls through.

One call, one answer: `chat()` returns a `GatewayAnswer` or raises `GatewayError` whose message a
person can act on (unreachable, timeout, the gateway's own error text). No retries: a re-run spends
money, so the person decides whether to try again.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from django.conf import settings

TIMEOUT_SECONDS = 30.0


class GatewayError(Exception):
    def __init__(self, message: str, *, status: int | None = None, kind: str = "error"):
        super().__init__(message)
        self.status = status
        self.kind = kind  # "unreachable", "timeout" or "error"


@dataclass
class GatewayAnswer:
    content: str
    tool_calls: list[dict]
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # what the gateway says it cost (LiteLLM's x-litellm-response-cost), None if unsaid
    latency_ms: float
    finish_reason: str = ""
    call_id: str = ""


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:500]
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        return str(error.get("message") or error)[:500]
    return str(error)[:500]


def _opener(url: str) -> urllib.request.OpenerDirector:
    """The gateway's address is the operator's own setting (LITELLM_BASE_URL), not a member's URL:
    it is called as set, loopback included (monitors/egress.py governs members' URLs only). A
    loopback gateway (bin/demo's) is called directly, never through an HTTP(S)_PROXY of the environment."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return urllib.request.build_opener(urllib.request.ProxyHandler({})) if loopback else urllib.request.build_opener()


def chat(
    payload: dict,
    *,
    headers: dict | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> GatewayAnswer:
    """POST /v1/chat/completions with `payload` (model, messages, temperature, max_tokens, tools...)."""
    url = (base_url or settings.LITELLM_BASE_URL).rstrip("/") + "/v1/chat/completions"
    key = api_key if api_key is not None else settings.LITELLM_API_KEY
    headers = {"Content-Type": "application/json", **(headers or {})}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers, method="POST")
    started = time.perf_counter()
    try:
        with _opener(url).open(request, timeout=timeout) as response:
            body = response.read()
            cost_header = response.headers.get("x-litellm-response-cost")
            call_id = response.headers.get("x-litellm-call-id", "")
    except urllib.error.HTTPError as exc:
        text = _error_text(exc.read())
        raise GatewayError(f"The gateway answered {exc.code}: {text}", status=exc.code) from exc
    except TimeoutError as exc:
        raise GatewayError(f"The gateway did not answer within {timeout:g} s ({url}).", kind="timeout") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (socket.timeout, TimeoutError)):
            raise GatewayError(f"The gateway did not answer within {timeout:g} s ({url}).", kind="timeout") from exc
        raise GatewayError(f"The gateway at {url} is unreachable: {exc.reason}", kind="unreachable") from exc
    except OSError as exc:
        raise GatewayError(f"The gateway at {url} is unreachable: {exc}", kind="unreachable") from exc
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        return _answer(json.loads(body), payload, cost_header, call_id, latency_ms)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
        raise GatewayError(f"The gateway's answer is not a chat completion: {body[:300]!r}") from exc


def _answer(data: dict, payload: dict, cost_header: str | None, call_id: str, latency_ms: float) -> GatewayAnswer:
    choice = data["choices"][0]
    message = choice.get("message") or {}
    usage = data.get("usage") or {}
    try:
        cost = float(cost_header) if cost_header not in (None, "") else None
    except ValueError:
        cost = None
    content = message.get("content") or ""
    return GatewayAnswer(
        content=content if isinstance(content, str) else json.dumps(content, ensure_ascii=False),
        tool_calls=[
            {
                "name": (c.get("function") or {}).get("name", ""),
                "arguments": (c.get("function") or {}).get("arguments", ""),
            }
            for c in message.get("tool_calls") or []
        ],
        model=data.get("model") or payload.get("model", ""),
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cost_usd=cost,
        latency_ms=latency_ms,
        finish_reason=choice.get("finish_reason") or "",
        call_id=call_id,
    )
