"""Traces > Agent runs, a session's page, a user's page, search by short id and the replays toggle in
a real browser (Playwright driving Debian's Chromium), at 1440 and 390 px, in English and Korean.

Screenshots: test-artifacts/runs-<lang>-<width>-<screen>.png.
"""

import datetime as dt

import pytest
from browser import ARTIFACTS
from test_browser_ux import base, no_page_scroll, open_session
from test_runs_sessions import AT, MIN, S, agent_run, send, tid

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def seed(client, key) -> dict:
    w = {}
    w["r1"], spans1 = agent_run(
        at=AT,
        ms=1000,
        session="chat-42",
        user="kim@example.com",
        turns=(
            ("Where is my order 1182? It was supposed to arrive on Monday.", "Let me look it up."),
            ("It was last week", "Order 1182 left the Incheon warehouse yesterday and ships to you tomorrow."),
        ),
    )
    w["r2"], spans2 = agent_run(
        at=AT + 2 * MIN,
        ms=5000,
        session="chat-42",
        user="kim@example.com",
        error=True,
        turns=(("Can I change the delivery address?", "I could not reach the address service."),),
        tokens=(1000, 500),
    )
    w["r3"], spans3 = agent_run(
        at=AT + 4 * MIN,
        ms=3000,
        session="chat-42",
        user="kim@example.com",
        turns=(("Thanks, cancel it then", "Order 1182 is cancelled; the refund arrives in 3–5 days."),),
    )
    w["r4"], spans4 = agent_run(
        at=AT + 6 * MIN,
        ms=2000,
        session="chat-43",
        user="lee",
        model="house-llm-7b",
        turns=(("안녕하세요, 환불 가능한가요?", "네, 구매 후 7일 이내라면 환불됩니다."),),
    )
    send(client, key, spans1 + spans2 + spans3 + spans4)
    replay = S(
        "replay gpt-4o",
        service="apm-replay",
        at=AT + 9 * MIN,
        ms=700,
        error=True,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
    )
    send(client, key, [replay], scope="tests")
    return w


@pytest.fixture
def world(live_server, client, alice, project, ingest_key):
    return {"url": live_server.url, "project": project, "runs": seed(client, ingest_key)}


def shot(page, lang, width, screen):
    page.screenshot(path=str(ARTIFACTS / f"runs-{lang}-{width}-{screen}.png"), full_page=True)


LABELS = {
    "en": {"runs": "Agent runs", "sessions": "Sessions", "conversation": "Conversation"},
    "ko": {"runs": "에이전트 실행", "sessions": "세션", "conversation": "대화"},
}


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_runs_list_and_a_session_page_at_both_widths(browser, world, lang):
    w = world["runs"]
    for width in (1440, 390):
        page = open_session(browser, world, lang=lang, width=width)
        page.click("[data-tab-link=traces]")
        page.wait_for_selector("[data-runs] tr.run-item")
        assert page.text_content("[data-kind-link=runs]").strip() == LABELS[lang]["runs"]
        rows = page.locator("tr.run-item")
        assert [rows.nth(i).get_attribute("data-run") for i in range(rows.count())] == [
            tid(w[k]) for k in ("r4", "r3", "r2", "r1")
        ]
        assert page.locator("tr.run-item [data-unpriced]").count() == 1  # the self-hosted model
        assert no_page_scroll(page), (lang, width, "runs")
        shot(page, lang, width, "runs")

        # Sorted by cost with a click on its header: the 1,500-token run first.
        page.click("[data-sort=cost]")
        page.wait_for_url("**sort=cost**")
        page.wait_for_selector("th a.sorted[data-sort=cost]")
        assert page.locator("tr.run-item").first.get_attribute("data-run") == tid(w["r2"])

        # The session of the oldest run: its runs in order and the conversation.
        page.click(f"tr[data-run='{tid(w['r1'])}'] [data-session-link]")
        page.wait_for_selector("[data-conversation] .bubble")
        assert "session=chat-42" in page.url
        assert page.locator("[data-turn]").count() == 3
        assert page.locator("[data-turn-run]").first.get_attribute("data-turn-run") == tid(w["r1"])
        user = page.locator(".bubble.user").first.bounding_box()
        answer = page.locator(".bubble.assistant").first.bounding_box()
        assert user["x"] + user["width"] > answer["x"] + answer["width"]  # the user on the right
        assert page.locator("[data-conversation] h3").text_content().startswith(LABELS[lang]["conversation"])
        assert no_page_scroll(page), (lang, width, "session")
        shot(page, lang, width, "session")

        # Its end user's page, then the Sessions and Users lists.
        page.click("[data-summary=users] a")
        page.wait_for_selector("[data-user-page] [data-user-sessions]")
        assert page.locator("tr.run-item").count() == 3
        assert no_page_scroll(page), (lang, width, "user")
        shot(page, lang, width, "user")
        page.click("[data-kind-link=sessions]")
        page.wait_for_selector("[data-groups=session] tr.group-item")
        assert page.locator("tr.group-item").count() == 2
        assert no_page_scroll(page), (lang, width, "sessions")
        shot(page, lang, width, "sessions")
        page.click("[data-kind-link=users]")
        page.wait_for_selector("[data-groups=user] tr.group-item")
        assert no_page_scroll(page), (lang, width, "users")
        shot(page, lang, width, "users")
        assert not page.errors, page.errors
        page.context.close()


def test_search_by_short_id_and_the_replays_toggle(browser, world):
    page = open_session(browser, world)
    w = world["runs"]
    short = tid(w["r2"])[:8]
    page.goto(f"{base(world)}/traces/?kind=runs")
    page.fill(".trace-search input[name=q]", short)
    page.click(".trace-search button[type=submit]")
    page.wait_for_selector("tr.span-item[data-matched='trace id']")
    assert page.locator("tr.span-item").count() == 2  # the run's agent span and its call
    assert page.locator("tr.span-item .trace-id mark").first.text_content() == short
    assert "trace id" in page.locator("[data-match-reason]").first.text_content()
    shot(page, "en", 1440, "search")

    page.goto(f"{base(world)}/overview/?range=24h")
    before = page.text_content("[data-kpi=llm-calls] .value").strip()
    page.check("[data-filter=replays]")
    page.click(".filter-bar button[type=submit]")
    page.wait_for_url("**replays=1**")
    page.wait_for_selector("[data-filter=replays]:checked")
    after = page.text_content("[data-kpi=llm-calls] .value").strip()
    assert (before, after) == ("5", "6")  # the re-run counts only when asked for
    assert page.locator(".kpi [data-sparkline]").count() == 5  # a trend line on every card
    shot(page, "en", 1440, "overview-replays")
    assert not page.errors, page.errors


def test_a_run_that_has_not_ended_shows_a_hatched_bar(browser, world, project):
    from otlp import request
    from test_runs_sessions import AGENT, llm

    from monitoring.ingest import otlp
    from monitoring.store import clickhouse, schema

    root = S("support_agent", service="agent-support", at=AT + 10 * MIN, ms=4000, attributes=AGENT)
    call = llm(root, at=AT + 10 * MIN + dt.timedelta(seconds=1), ms=0, model="gpt-4o", question="Q?", answer="")
    rows = otlp.rows_from_request(request(root, call), str(project.id)).rows
    for row in rows:
        if row["SpanId"] == call.span_id.hex():
            row["Duration"] = 2**64 - row["Timestamp"]  # the exporter's end 0 - start, in uint64
    clickhouse.insert(schema.table(), schema.TRACE_COLUMNS, rows, tag="test.no_end", nanos_columns=schema.NANOS_COLUMNS)
    page = open_session(browser, world)
    page.goto(f"{base(world)}/traces/{tid(root)}/?span={call.span_id.hex()}")
    bar = page.locator(f".span-row[data-span='{call.span_id.hex()}'] .wf-bar.no-end")
    track = page.locator(f".span-row[data-span='{call.span_id.hex()}'] .wf-track")
    box, lane = bar.bounding_box(), track.bounding_box()
    assert abs((box["x"] + box["width"]) - (lane["x"] + lane["width"])) < 3  # to the trace's end
    assert page.text_content(f".span-row[data-span='{call.span_id.hex()}'] .wf-dur").strip() == "in progress"
    shot(page, "en", 1440, "in-progress")
    assert not page.errors, page.errors
