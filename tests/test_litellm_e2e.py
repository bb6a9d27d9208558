"""A real LiteLLM proxy (1.108.7, mock deployments) exporting OTLP into a live portal: the Overview
API must report the calls it served, the ones that failed, and the costs LiteLLM itself computed."""

import json
import time
import urllib.error
import urllib.request

import pytest
from conftest import require
from litellm_proxy import litellm_available, start_litellm_proxy

from monitoring.models import ApiToken, IngestKey

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONFIG = {
    "model_list": [
        {
            "model_name": "gpt-4o-mini",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "sk-mock", "mock_response": "Hello!"},
        },
        {
            "model_name": "qwen-235b",
            "litellm_params": {
                "model": "openai/Qwen/Qwen3-235B-A22B",
                "api_base": "http://127.0.0.1:9/v1",
                "api_key": "none",
                "mock_response": "Qwen says hi",
                "input_cost_per_token": 2e-7,
                "output_cost_per_token": 6e-7,
            },
        },
        {
            "model_name": "gpt-ratelimited",
            "litellm_params": {
                "model": "openai/gpt-4o",
                "api_key": "sk-mock",
                "mock_response": "litellm.RateLimitError",
            },
        },
    ],
    "litellm_settings": {"callbacks": ["otel"], "num_retries": 0},
}

# (model, metadata) per request; one renamed by generation_name, two failing.
CALLS = [
    ("gpt-4o-mini", {}),
    ("gpt-4o-mini", {"generation_name": "sql-writer"}),
    ("qwen-235b", {}),
    ("qwen-235b", {}),
    ("gpt-ratelimited", {}),
    ("gpt-4o-mini", {}),
    ("gpt-ratelimited", {}),
]


def _chat(proxy, model, metadata) -> tuple[int, float]:
    body = {"model": model, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 10}
    if metadata:
        body["metadata"] = metadata
    req = urllib.request.Request(
        f"{proxy.base_url}/v1/chat/completions", data=json.dumps(body).encode(), headers=proxy.headers, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, float(r.headers.get("x-litellm-response-cost") or 0)
    except urllib.error.HTTPError as e:
        return e.code, 0.0


def _overview(live_server, project, token, since) -> dict:
    req = urllib.request.Request(
        f"{live_server.url}/api/v1/projects/{project.id}/overview?from={since}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_overview_matches_what_litellm_served(live_server, project, alice, tmp_path):
    require(litellm_available(), "no LiteLLM venv (.venv-litellm); bin/setup installs it")
    _, ingest_key = IngestKey.issue(project)
    _, token = ApiToken.issue(alice)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": live_server.url,
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {ingest_key}",
        "OTEL_SERVICE_NAME": "litellm-proxy",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    proxy = start_litellm_proxy(CONFIG, env, tmp_path)
    try:
        results = [_chat(proxy, model, metadata) for model, metadata in CALLS]
    finally:
        proxy.stop()  # flushes the exporter's last batch
    statuses = [status for status, _ in results]
    assert statuses.count(200) == 5 and statuses.count(429) == 2, proxy.logs()[-3000:]
    litellm_cost = sum(cost for _, cost in results)
    assert litellm_cost > 0

    deadline = time.time() + 30
    while True:
        data = _overview(live_server, project, token, since)
        if data["llm_calls"] >= len(CALLS) or time.time() > deadline:
            break
        time.sleep(0.5)
    assert data["llm_calls"] == len(CALLS), (data, proxy.logs()[-3000:])
    assert data["llm_errors"] == 2
    assert data["fail_rate"] == pytest.approx(2 / len(CALLS))
    assert data["agent_calls"] == 0
    assert data["total_cost_usd"] == pytest.approx(litellm_cost, rel=1e-9)
    assert data["avg_latency_ms"] > 0
