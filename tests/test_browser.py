"""The dashboard in a real browser (Playwright driving Debian's Chromium) against a live portal.

Screenshots of each tab land in test-artifacts/.
"""

import datetime as dt
import json

import pytest
from browser import ARTIFACTS, log_in, new_page
from conftest import require
from litellm_proxy import litellm_available, start_litellm_proxy
from otlp import S, post, request

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AT = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
ANSWER = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "There were 42 orders today."}]}])
QUESTION = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "How many orders today?"}]}])


def seed(client, key):
    """An agent run with two LLM calls on two models and a tool, plus a plain LiteLLM call."""
    root = S("text2sql", service="agent-text2sql", at=AT, ms=4000, attributes={"openinference.span.kind": "AGENT"})
    first = root.child(
        "ChatCompletion",
        at=AT + dt.timedelta(milliseconds=100),
        ms=900,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.prompt": 1000,
            "llm.token_count.completion": 200,
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "How many orders today?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "SELECT count(*) FROM orders",
        },
    )
    tool = root.child(
        "run_sql", at=AT + dt.timedelta(seconds=1), ms=500, attributes={"openinference.span.kind": "TOOL"}
    )
    second = root.child(
        "chat",
        at=AT + dt.timedelta(seconds=2),
        ms=1200,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 500,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.input.messages": QUESTION,
            "gen_ai.output.messages": ANSWER,
        },
    )
    assert post(client, key, request(root, first, tool, second)).status_code == 200
    return root.trace.hex()


@pytest.fixture
def page(browser, live_server, client, alice, project, ingest_key):
    trace = seed(client, ingest_key)
    page = new_page(browser, width=1400, viewport={"width": 1400, "height": 1000})
    errors = page.errors
    page.goto(f"{live_server.url}/admin/monitoring/")
    assert "/accounts/login/" in page.url
    log_in(page, live_server.url, ready=".kpis")
    page.wait_for_function("() => window.htmx !== undefined && window.Plotly !== undefined")
    page.trace_id = trace
    page.errors = errors
    yield page
    assert not errors, errors


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_the_dashboard_end_to_end(page, project):
    # Overview: the numbers of the seeded data (2 LLM calls, 1 agent run).
    assert page.text_content("[data-kpi=llm-calls] .value").strip() == "2"
    assert page.text_content("[data-kpi=agent-calls] .value").strip() == "1"
    shot(page, "overview")

    # Analytics swaps the panel without a page load, updates the URL, and Plotly draws.
    page.evaluate("window.__noReload = true")
    page.click("[data-tab-link=analytics]")
    page.wait_for_url("**/analytics/**")
    page.wait_for_selector("[data-chart] .main-svg", timeout=20000)
    assert page.evaluate("window.__noReload") is True
    assert page.get_attribute("[data-tab-link=analytics]", "class") == "active"
    shot(page, "analytics")

    # Traces > LLM Call, filtered by model.
    page.click("[data-tab-link=traces]")
    page.wait_for_url("**/traces/**")
    page.click("[data-kind-link=llm]")
    page.wait_for_selector("section[data-kind=llm]")
    assert page.locator("tr.span-item").count() == 2
    page.select_option("select[data-filter=model]", "gpt-4o")
    page.click(".filter-bar button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('tr.span-item').length === 1")
    assert "model=gpt-4o" in page.url
    assert page.evaluate("window.__noReload") is True
    shot(page, "traces-llm-gpt-4o")

    # A trace opens with its waterfall and the chat of the selected span.
    page.click("tr.span-item td.name a")
    page.wait_for_selector(".waterfall .wf-rows")
    page.wait_for_selector("#span-panel [data-role=assistant]")
    assert "There were 42 orders today." in page.text_content("#span-panel")
    assert page.locator(".wf-rows [data-span]").count() >= 4
    shot(page, "trace")

    # The back button brings each previous view back: the filtered list, then ... the Analytics tab.
    page.go_back()
    page.wait_for_selector("section[data-kind=llm]")
    assert page.locator("tr.span-item").count() == 1
    for _ in range(3):  # unfiltered LLM list, Agent list, Analytics
        page.go_back()
    page.wait_for_url("**/analytics/**")
    page.wait_for_selector("[data-tab=analytics]")
    assert page.get_attribute("[data-tab-link=analytics]", "class") == "active"


def test_replay_steps_rerun_and_compare(page, live_server, project, tmp_path, settings):
    require(litellm_available(), "no LiteLLM venv (.venv-litellm); bin/setup --test installs it")
    proxy = start_litellm_proxy(
        {
            "model_list": [
                {
                    "model_name": "gpt-4o",
                    "litellm_params": {
                        "model": "openai/gpt-4o",
                        "api_key": "sk-mock",
                        "mock_response": "There were 43 orders today.",
                    },
                }
            ],
            "litellm_settings": {"num_retries": 0},
        },
        {},
        tmp_path,
    )
    settings.LITELLM_BASE_URL, settings.LITELLM_API_KEY = proxy.base_url, proxy.master_key
    try:
        page.click("[data-tab-link=replay]")
        page.fill("input[name=trace]", page.trace_id)
        page.click(".replay-open button[type=submit]")
        page.wait_for_selector("[data-step='1']")
        page.click("[data-step-next]")
        page.wait_for_selector("[data-step='2']")
        page.click("[data-step-next]")
        page.wait_for_selector("[data-step='3']")
        assert "step=3" in page.url
        page.reload()
        page.wait_for_selector("[data-step='3']")
        page.wait_for_function("() => window.htmx !== undefined")
        page.click("[data-step-next]")
        page.wait_for_selector("[data-step='4']")  # the gpt-4o chat call
        shot(page, "replay-step")
        page.fill("textarea[name=messages]", json.dumps([{"role": "user", "content": "How many orders yesterday?"}]))
        page.click("[data-rerun-form] button[type=submit]")
        page.wait_for_selector("[data-rerun-answer]", timeout=60000)
        assert "43" in page.text_content("[data-rerun-answer]")
        assert "42" in page.text_content("[data-rerun-diff] del")
        shot(page, "replay-rerun")
        page.click("[data-compare-link]")
        page.wait_for_selector("[data-compare]")
        assert page.locator("[data-pair]").count() >= 1
        shot(page, "replay-compare")
    finally:
        proxy.stop()
