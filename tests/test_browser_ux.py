"""The dashboard as a Korean or English user meets it, at 1440 and 390 px, in a real browser
(Playwright driving Debian's Chromium) against a live portal.

Seeded: an agent run whose LLM call went through the LiteLLM proxy (step 5 of its replay holds a
long system prompt and a long one-line tool call), a second run to compare with, and a failed call.
Screenshots of every screen, both languages, both widths: test-artifacts/ux-<lang>-<width>-<screen>.png.
"""

import datetime as dt
import json

import pytest
from browser import ARTIFACTS, log_in, new_page
from otlp import S, send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=40)
MS = dt.timedelta(milliseconds=1)
SYSTEM = "You translate questions into ClickHouse SQL. Use only the tables given. Tables: " + ",".join(
    f"ops.shipments_{i}(id_UInt64,warehouse_String,shipped_at_DateTime)" for i in range(8)
)
ARGUMENTS = json.dumps(
    {"sql": "SELECT warehouse, avg(dateDiff('hour', shipped_at, delivered_at)) AS avg_hours FROM " + "x" * 240}
)


def proxied_run(at: dt.datetime, answer: str = "Delivery takes 31 hours on average.") -> tuple[list[S], list[S], S]:
    """An OpenInference text2sql agent; its ChatCompletion went through LiteLLM (gateway span: $0.25).

    Steps in order: text2sql, retrieve_schema (starts with its parent), CreateEmbeddingResponse,
    generate, ChatCompletion (the caller, same instant as generate and a lower span id),
    litellm_request (the gateway's call), execute, ChatCompletion (the answer)."""
    agent = {"openinference.span.kind": "AGENT"}
    root = S("text2sql", service="agent-text2sql", at=at, ms=6000, attributes=agent, span_id=b"\xf0" * 8)
    schema = root.child("retrieve_schema", at=at, ms=160, attributes={"openinference.span.kind": "TOOL"})
    embedding = root.child(
        "CreateEmbeddingResponse",
        at=at + 20 * MS,
        ms=120,
        attributes={
            "openinference.span.kind": "EMBEDDING",
            "embedding.model_name": "text-embedding-3-small",
            "llm.token_count.prompt": 13,
        },
    )
    generate = root.child("generate", at=at + 200 * MS, ms=1300, attributes=agent, span_id=b"\xe0" * 8)
    caller = generate.child(
        "ChatCompletion",
        at=at + 200 * MS,
        ms=1250,
        span_id=b"\x01" * 8,  # sorts before its parent: the replay must still list the parent first
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 2266,
            "llm.token_count.completion": 48,
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": SYSTEM,
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "Average delivery time per warehouse in November",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_D3378aA7f88F",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "run_sql",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": ARGUMENTS,
        },
    )
    execute = root.child("execute", at=at + 1600 * MS, ms=20, attributes={"openinference.span.kind": "TOOL"})
    final = root.child(
        "ChatCompletion",
        at=at + 1700 * MS,
        ms=4000,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.prompt": 700,
            "llm.token_count.completion": 60,
            "llm.input_messages.0.message.role": "tool",
            "llm.input_messages.0.message.tool_call_id": "call_D3378aA7f88F",
            "llm.input_messages.0.message.content": '{"rows": [["north", 31.2]]}',
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": answer,
        },
    )
    # The proxy's spans (scope "litellm"), children of the caller: one model invocation, two LLM spans.
    server = S("POST /v1/chat/completions", service="litellm-proxy", at=at + 210 * MS, ms=1220, trace=root.trace)
    server.parent = caller.span_id
    received = server.child("Received Proxy Server Request", ms=1210)
    call = received.child(
        "litellm_request",
        ms=1200,
        attributes={
            "llm.request.type": "acompletion",
            "gen_ai.operation.name": "acompletion",
            "litellm.model_group": "gpt-4o",
            "gen_ai.request.model": "openai/gpt-4o",
            "gen_ai.usage.input_tokens": 2266,
            "gen_ai.usage.output_tokens": 48,
            "gen_ai.cost.total_cost": 0.25,
        },
    )
    agent_spans = [root, schema, embedding, generate, caller, execute, final]
    proxy_spans = [server, received, received.child("auth", ms=3), received.child("router", ms=1), call]
    return agent_spans, proxy_spans, root


def seed(client, key) -> dict:
    traces = {}
    for name, at, answer in (
        ("a", AT, "Delivery takes 31 hours."),
        ("b", AT + dt.timedelta(minutes=5), "It takes 29 hours."),
    ):
        agent_spans, proxy_spans, root = proxied_run(at, answer)
        send(client, key, agent_spans, scope="openinference.instrumentation.openai")
        send(client, key, proxy_spans, scope="litellm")
        traces[name] = root.trace.hex()
    failed = S(
        "chat",
        at=AT + dt.timedelta(minutes=7),
        ms=300,
        error=True,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
    )
    send(client, key, [failed], scope="tests")
    return traces


@pytest.fixture
def world(live_server, client, alice, project, ingest_key):
    return {"url": live_server.url, "project": project, "traces": seed(client, ingest_key)}


def open_session(browser, world, *, lang="en", width=1440):
    """A logged-in page in a browser that asks for `lang` and lives in Asia/Seoul."""
    page = new_page(browser, lang=lang, width=width, zone="Asia/Seoul")
    # The browser reports its zone once; the page reloads in it.
    log_in(page, world["url"], ready='body[data-time-zone="Asia/Seoul"][data-time-zone-known="1"] .kpis')
    page.wait_for_function("() => window.htmx !== undefined && window.Plotly !== undefined")
    return page


def base(world) -> str:
    return f"{world['url']}/admin/monitoring/{world['project'].id}"


def no_page_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def shot(page, lang, width, screen):
    page.screenshot(path=str(ARTIFACTS / f"ux-{lang}-{width}-{screen}.png"), full_page=True)


def test_the_korean_ui_renders_the_overview_in_korean(browser, world):
    page = open_session(browser, world, lang="ko")
    assert page.get_attribute("html", "lang") == "ko"
    labels = page.locator(".kpi h2").all_text_contents()
    assert labels == ["전체 비용", "LLM 호출 수", "에이전트 실행 수", "평균 응답 시간", "에러 비율"]
    # 2 runs x (embedding, the gateway's call, the answer) + the failed call: the caller is the gateway's call
    assert page.text_content("[data-kpi=llm-calls] .value").strip() == "7"
    assert page.text_content("[data-tab-link=overview]").strip() == "개요"
    assert "KST (UTC+09:00)" in page.text_content("[data-time-zone-link]")
    # The switcher: English, remembered for the person (a new browser context gets English too).
    page.select_option("#language-switcher", "en")
    page.wait_for_selector("html[lang=en] .kpis")
    assert page.locator(".kpi h2").first.text_content().strip() == "Total Cost"
    assert not page.errors, page.errors
    page.context.close()
    again = open_session(browser, world, lang="ko")
    assert again.get_attribute("html", "lang") == "en"
    again.context.close()


def test_390px_fits_without_horizontal_page_scroll(browser, world):
    page = open_session(browser, world, width=390)
    trace = world["traces"]["a"]
    for path in (
        "/overview/",
        "/analytics/",
        "/traces/?kind=all",
        f"/traces/{trace}/",
        f"/replay/?trace={trace}&step=5",
        "/replay/",
        f"/replay/compare/?a={trace}&b={world['traces']['b']}",
    ):
        page.goto(base(world) + path)
        page.wait_for_load_state("networkidle")
        assert no_page_scroll(page), (path, page.evaluate("document.documentElement.scrollWidth"))
    # Tables keep their columns and scroll inside their card.
    page.goto(base(world) + "/traces/?kind=all")
    wrap = page.locator(".table-wrap").first
    assert wrap.evaluate("el => el.scrollWidth > el.clientWidth") and no_page_scroll(page)
    # The top bar and the tabs fit.
    for selector in (".topbar", "#tabs"):
        box = page.locator(selector).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, selector
    assert not page.errors, page.errors


def test_replay_step_5_of_a_proxied_run_keeps_two_columns_and_the_trace_pages_numbers(browser, world):
    page = open_session(browser, world)
    trace = world["traces"]["a"]
    page.goto(f"{base(world)}/replay/?trace={trace}&step=5")
    steps = [s.strip() for s in page.locator("[data-steps] .step-name").all_text_contents()]
    assert steps[:6] == [
        "text2sql",
        "retrieve_schema",
        "CreateEmbeddingResponse",
        "generate",
        "ChatCompletion",
        "litellm_request",
    ]  # parents before their same-instant children
    assert page.locator("[data-steps] li.current .via").count() == 1  # the caller: counted at the gateway
    io = page.locator(".io").bounding_box()
    inp, out = page.locator("[data-io=input]").bounding_box(), page.locator("[data-io=output]").bounding_box()
    assert inp["width"] >= 0.45 * io["width"] and out["width"] >= 0.45 * io["width"], (inp, out, io)
    assert abs(inp["y"] - out["y"]) < 2  # side by side
    assert no_page_scroll(page)
    assert "call_D3378aA7f88F" in page.inner_text("[data-io=output]")  # ids keep their case on screen
    replay_numbers = {
        k: page.text_content(f"[data-summary={k}] dd").strip() for k in ("llm-calls", "cost", "spans", "errors")
    }
    page.goto(f"{base(world)}/replay/?trace={trace}&step=8")
    assert "↩ call_D3378aA7f88F" in page.inner_text("[data-io=input] .msg-role")  # not upper-cased with the role
    page.goto(f"{base(world)}/traces/{trace}/")
    trace_numbers = {
        k: page.text_content(f"[data-summary={k}] dd").strip() for k in ("llm-calls", "cost", "spans", "errors")
    }
    assert replay_numbers == trace_numbers and replay_numbers["llm-calls"] == "3"
    # The waterfall's durations sit in their own column, never on a bar.
    row = page.locator(".wf-rows .span-row").first
    bar, label = row.locator(".wf-bar").bounding_box(), row.locator(".wf-dur").bounding_box()
    assert label["x"] >= bar["x"] + bar["width"]
    # Its name column widens by dragging, and stays so on the next trace page.
    name = page.locator(".wf-head .wf-name")
    before = name.bounding_box()["width"]
    handle = page.locator("[data-wf-resize]").bounding_box()
    page.mouse.move(handle["x"] + 4, handle["y"] + 10)
    page.mouse.down()
    page.mouse.move(handle["x"] + 124, handle["y"] + 10, steps=5)
    page.mouse.up()
    widened = name.bounding_box()["width"]
    assert widened > before + 100
    page.goto(f"{base(world)}/traces/{world['traces']['b']}/")
    assert abs(page.locator(".wf-head .wf-name").bounding_box()["width"] - widened) < 2
    assert not page.errors, page.errors


def test_arrow_keys_step_and_autoplay_leaves_no_history_trail(browser, world):
    page = open_session(browser, world)
    page.goto(f"{base(world)}/replay/?trace={world['traces']['a']}&step=1")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("[data-step='2']")
    assert "step=2" in page.url
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("[data-step='1']")
    before = page.evaluate("history.length")
    page.select_option("[data-autoplay-speed]", "4")
    page.click("[data-autoplay]")
    page.wait_for_selector("[data-step='4']", timeout=15000)
    page.click("[data-autoplay]")  # stop
    assert page.evaluate("history.length") == before
    assert "step=4" in page.url or "step=5" in page.url  # the address follows the step it shows
    assert not page.errors, page.errors


def test_compare_is_chosen_by_ticking_two_runs(browser, world):
    page = open_session(browser, world)
    page.click("[data-tab-link=replay]")
    page.wait_for_selector("[data-compare-picker]")
    submit = page.locator("[data-compare-submit]")
    assert submit.is_disabled()
    boxes = page.locator("[data-compare-run]")
    assert boxes.count() >= 3
    a, b = world["traces"]["a"], world["traces"]["b"]
    page.check(f"[data-compare-run][value='{a}']")
    page.check(f"[data-compare-run][value='{b}']")
    assert submit.is_enabled() and "(2/2)" in submit.text_content()
    third = page.locator("[data-compare-run]:not(:checked)").first
    assert third.is_disabled()  # two at most
    submit.click()
    page.wait_for_selector("[data-compare]")
    assert f"run={a}" in page.url and f"run={b}" in page.url
    assert page.locator("[data-pair=changed]").count() >= 1  # the answers differ
    assert not page.errors, page.errors


SCREENS = [
    ("overview", "/overview/?range=24h", ".kpis"),
    ("analytics", "/analytics/?range=24h", "[data-panel=agent-flow] .main-svg"),
    ("traces", "/traces/?kind=all", "tr.span-item"),
    ("trace", "/traces/{a}/", "#span-panel article"),
    ("replay-runs", "/replay/", "[data-compare-picker]"),
    ("replay-step-5", "/replay/?trace={a}&step=5", "[data-step='5']"),
    ("compare", "/replay/compare/?run={a}&run={b}", "[data-compare]"),
]


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_screenshots_of_every_screen(browser, world, lang):
    """Every screen at 1440 and 390 px in test-artifacts/, for people to look at; each must load,
    draw, and fit the width."""
    for width in (1440, 390):
        page = open_session(browser, world, lang=lang, width=width)
        for name, path, ready in SCREENS:
            page.goto(base(world) + path.format(**world["traces"]))
            page.wait_for_selector(ready, timeout=20000)
            page.wait_for_load_state("networkidle")
            assert no_page_scroll(page), (lang, width, name)
            shot(page, lang, width, name)
        page.goto(f"{world['url']}/admin/monitoring/preferences")
        shot(page, lang, width, "preferences")
        page.goto(f"{world['url']}/admin/monitoring/health")
        shot(page, lang, width, "health")
        assert not page.errors, page.errors
        page.context.close()
        login = browser.new_page(viewport={"width": width, "height": 900}, locale="ko-KR" if lang == "ko" else "en-US")
        login.goto(f"{world['url']}/accounts/login/")
        shot(login, lang, width, "login")
        login.context.close()
