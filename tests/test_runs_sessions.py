"""Traces > Agent runs, Sessions and Users, search reasons, the replays toggle and the Overview's
trend lines, against the real engine.

Seeded: session chat-42 of kim (three runs two minutes apart, the second failed), session chat-43
of lee (one run on a self-hosted model with no price), a run without session or user, a plain
LLM call of chat-42 outside any run, and a Replay re-run (service apm-replay).
"""

import datetime as dt
import html as htmllib
import logging
import re

import pytest
from otlp import S, request, send

from monitoring.ingest import otlp
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

AT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=30)
MIN = dt.timedelta(minutes=1)
AGENT = {"openinference.span.kind": "AGENT"}


def llm(parent: S, *, at, ms, model, question, answer, tokens=(100, 20), **extra) -> S:
    return parent.child(
        "ChatCompletion",
        at=at,
        ms=ms,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": model,
            "llm.token_count.prompt": tokens[0],
            "llm.token_count.completion": tokens[1],
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "You are the support agent.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": question,
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": answer,
            **extra,
        },
    )


def agent_run(*, at, ms, session="", user="", error=False, model="gpt-4o", turns=(("Q", "A"),), tokens=(100, 20)):
    """An OpenInference agent run: its root AGENT span and one LLM call per (question, answer); the
    session and user on every span, as OpenInference's `using_attributes` context puts them."""
    who = {**({"session.id": session} if session else {}), **({"user.id": user} if user else {})}
    root = S("support_agent", service="agent-support", at=at, ms=ms, error=error, attributes={**AGENT, **who})
    calls = [
        llm(
            root,
            at=at + dt.timedelta(milliseconds=10 + 100 * i),
            ms=50,
            model=model,
            question=q,
            answer=a,
            tokens=tokens,
            **who,
        )
        for i, (q, a) in enumerate(turns)
    ]
    return root, [root, *calls]


@pytest.fixture
def world(client, project, ingest_key):
    w = {}
    w["r1"], spans1 = agent_run(
        at=AT,
        ms=1000,
        session="chat-42",
        user="kim@example.com",
        turns=(("Where is my order 1182?", "Let me look it up."), ("It was last week", "Order 1182 ships tomorrow.")),
    )
    w["r2"], spans2 = agent_run(
        at=AT + 2 * MIN,
        ms=5000,
        session="chat-42",
        user="kim@example.com",
        error=True,
        turns=(("Can I change the address?", "I could not reach the address service."),),
        tokens=(1000, 500),
    )
    w["r3"], spans3 = agent_run(
        at=AT + 4 * MIN,
        ms=3000,
        session="chat-42",
        user="kim@example.com",
        turns=(("Thanks, cancel it then", "Order 1182 is cancelled."),),
    )
    w["r4"], spans4 = agent_run(
        at=AT + 6 * MIN,
        ms=2000,
        session="chat-43/b",  # a slash: ids go in the query string, never the path
        user="lee",
        model="house-llm-7b",
        turns=(("안녕하세요, 환불 가능한가요?", "네, 7일 이내 환불됩니다."),),
    )
    w["r5"], spans5 = agent_run(at=AT + 8 * MIN, ms=400, turns=(("ping", "pong"),))
    send(client, ingest_key, spans1 + spans2 + spans3 + spans4 + spans5, scope="openinference.instrumentation.openai")
    # An LLM call of chat-42 outside any run (a plain gateway call), and a Replay re-run.
    plain = S(
        "chat gpt-4o",
        service="backend",
        at=AT + 5 * MIN,
        ms=300,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 10,
            "session.id": "chat-42",
        },
    )
    replay = S(
        "replay gpt-4o",
        service="apm-replay",
        at=AT + 9 * MIN,
        ms=700,
        error=True,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 50,
            "gen_ai.usage.output_tokens": 50,
        },
    )
    send(client, ingest_key, [plain, replay], scope="tests")
    return w


def tid(s: S) -> str:
    return s.trace.hex()


def page(client, project, path="traces/", **params) -> str:
    r = client.get(f"/admin/monitoring/{project.id}/{path}", {"range": "24h", **params})
    assert r.status_code == 200, r.content[:2000]
    return r.content.decode()


def run_rows(html: str) -> list[str]:
    return re.findall(r'<tr class="run-item[^"]*" data-run="([0-9a-f]{32})"', html)


# --- Traces > Agent runs ---------------------------------------------------------------------------


def test_traces_opens_on_one_row_per_agent_run_with_its_numbers_and_previews(client, alice, project, world):
    client.force_login(alice)
    html = page(client, project)
    w = world
    assert 'data-kind="runs"' in html and re.search(r'data-kind-link="runs"\s+class="active"', html)
    # Five runs, newest first; their LLM-call spans are not rows.
    assert run_rows(html) == [tid(w[k]) for k in ("r5", "r4", "r3", "r2", "r1")]
    row = re.search(rf'data-run="{tid(w["r1"])}">(.*?)</tr>', html, re.S).group(1)
    assert "support_agent" in row and "agent-support" in row and "1.00 s" in row
    assert re.search(r"data-llm-calls>2<", row)  # two calls in the run
    assert "200 / 40" in row  # tokens in / out
    assert 'data-preview="input" title="Where is my order 1182?"' in row  # the first call's question
    assert 'data-preview="output" title="Order 1182 ships tomorrow."' in row  # the last call's answer
    assert "&session=chat-42" in htmllib.unescape(row) and "&user=kim%40example.com" in htmllib.unescape(row)
    assert f'href="/admin/monitoring/{project.id}/traces/{tid(w["r1"])}/?range=24h&amp;kind=runs"' in row
    failed = re.search(rf'data-run="{tid(w["r2"])}">(.*?)</tr>', html, re.S).group(1)
    assert 'data-status="error"' in failed
    unpriced = re.search(rf'data-run="{tid(w["r4"])}">(.*?)</tr>', html, re.S).group(1)
    assert "data-unpriced" in unpriced and "+1 unpriced" in unpriced  # never a silent $0
    assert "session=chat-43%2Fb" in unpriced
    trace = page(client, project, f"traces/{tid(w['r4'])}/")
    cost = re.search(r'data-summary="cost">(.*?)</div>', trace, re.S).group(1)
    assert "data-unpriced" in cost and "+1 unpriced" in cost  # the trace page says so too


def test_runs_sort_by_duration_and_cost_and_page_by_keyset(client, alice, project, world):
    client.force_login(alice)
    w = world
    by_duration = run_rows(page(client, project, kind="runs", sort="duration"))
    assert by_duration == [tid(w[k]) for k in ("r2", "r3", "r4", "r1", "r5")]  # 5 s, 3 s, 2 s, 1 s, 0.4 s
    by_cost = run_rows(page(client, project, kind="runs", sort="cost"))
    assert by_cost[0] == tid(w["r2"])  # 1,000 + 500 tokens of gpt-4o
    # Pages of two through the API: every run once, in the order of one big page.
    for sort, whole in (("duration", by_duration), ("time", [tid(w[k]) for k in ("r5", "r4", "r3", "r2", "r1")])):
        seen, cursor = [], None
        for _ in range(5):
            params = {
                "range": "24h",
                "kind": "runs",
                "sort": sort,
                "limit": 2,
                **({"cursor": cursor} if cursor else {}),
            }
            data = client.get(f"/api/v1/projects/{project.id}/traces", params).json()
            seen += [i["trace_id"] for i in data["items"]]
            cursor = data["next_cursor"]
            if not cursor:
                break
        assert seen == whole, sort
    # The page's "More" link carries the cursor and keeps the sort.
    html = client.get(
        f"/admin/monitoring/{project.id}/traces/", {"range": "24h", "kind": "runs", "sort": "cost"}
    ).content.decode()
    assert "data-older" not in html  # five runs fit one page
    assert 'aria-sort="descending"' in html and 'data-sort="cost" class="sorted"' in html


def test_the_runs_api_item_shape_and_steps_under_kind_agent(client, alice, project, world):
    client.force_login(alice)
    data = client.get(
        f"/api/v1/projects/{project.id}/traces", {"range": "24h", "kind": "runs", "tz": "Asia/Seoul"}
    ).json()
    first = next(i for i in data["items"] if i["trace_id"] == tid(world["r1"]))
    assert first["start"].endswith("+09:00") and first["status"] == "OK"
    assert (first["llm_calls"], first["input_tokens"], first["output_tokens"]) == (2, 200, 40)
    assert (first["session"], first["end_user"], first["duration_ms"]) == ("chat-42", "kim@example.com", 1000.0)
    assert first["first_input"] == "Where is my order 1182?" and first["last_output"] == "Order 1182 ships tomorrow."
    # kind=agent (the API's default) stays one row per agent step span.
    steps = client.get(f"/api/v1/projects/{project.id}/traces", {"range": "24h"}).json()["items"]
    assert {i["name"] for i in steps} == {"support_agent"} and len(steps) == 5
    bad = client.get(f"/api/v1/projects/{project.id}/traces", {"kind": "runs", "sort": "name"})
    assert bad.status_code == 400 and "sort" in bad.json()["error"]


def test_the_runs_list_narrows_to_a_session_or_a_user(client, alice, project, world):
    client.force_login(alice)
    html = page(client, project, kind="runs", session="chat-42")
    assert run_rows(html) == [tid(world[k]) for k in ("r3", "r2", "r1")]
    assert "data-narrowed" in html and "<code>chat-42</code>" in html
    assert run_rows(page(client, project, kind="runs", user="lee")) == [tid(world["r4"])]


# --- Sessions and Users ----------------------------------------------------------------------------


def test_the_sessions_list_counts_calls_runs_cost_and_errors(client, alice, project, world):
    client.force_login(alice)
    html = page(client, project, "traces/sessions/")
    assert re.search(r'data-kind-link="sessions"\s+class="active"', html)
    keys = re.findall(r'<tr class="group-item" data-group="([^"]+)"', html)
    assert keys == ["chat-43/b", "chat-42"]  # most recently active first
    row = re.search(r'data-group="chat-42">(.*?)</tr>', html, re.S).group(1)
    assert re.search(r"data-runs>3<", row)
    assert re.search(r"data-calls>5<", row)  # 4 calls in its runs + the plain call
    assert re.search(r"data-errors[^>]*>1<", row)  # the failed run
    assert "&amp;session=chat-42" in row


def test_a_session_page_shows_its_runs_in_order_and_the_conversation(client, alice, project, world):
    client.force_login(alice)
    html = page(client, project, "traces/sessions/", session="chat-42")
    w = world
    assert "data-session-page" in html and "<code" in html and ">chat-42</code>" in html
    assert run_rows(html) == [tid(w[k]) for k in ("r1", "r2", "r3")]  # oldest first
    turns = re.findall(r'data-turn-run="([0-9a-f]{32})"', html)
    assert turns == [tid(w[k]) for k in ("r1", "r2", "r3")]
    bubbles = re.findall(r'<div class="bubble (user|assistant)" data-role="\1">(.*?)</div>', html, re.S)
    assert bubbles == [
        ("user", "Where is my order 1182?"),
        ("assistant", "Order 1182 ships tomorrow."),
        ("user", "Can I change the address?"),
        ("assistant", "I could not reach the address service."),
        ("user", "Thanks, cancel it then"),
        ("assistant", "Order 1182 is cancelled."),
    ]
    assert 'class="turn failed" data-turn="2"' in html
    summary = re.search(r"data-group-summary>(.*?)</dl>", html, re.S).group(1)
    assert re.search(r'data-summary="runs"><dt>Runs</dt><dd>3<', summary)
    assert re.search(r'data-summary="llm-calls"><dt>LLM calls</dt><dd>5<', summary)
    assert "kim@example.com" in summary  # its end user, linked
    # A session id with a slash opens through the query string.
    other = page(client, project, "traces/sessions/", session="chat-43/b")
    assert run_rows(other) == [tid(w["r4"])] and "환불" in other
    # Unknown in this window: a page that says so, not an error.
    empty = page(client, project, "traces/sessions/", session="nope")
    assert 'data-empty="session"' in empty


def test_a_session_or_user_page_reads_its_own_numbers_not_the_whole_list(client, alice, project, world, caplog):
    """Exact for any session or user, also one beyond the list's newest rows: its calls outside runs
    and its failed calls included."""
    client.force_login(alice)
    with caplog.at_level(logging.DEBUG, logger="monitoring.store.clickhouse"):
        session = page(client, project, "traces/sessions/", session="chat-42")
        user = page(client, project, "traces/users/", user="kim@example.com")
    assert "sessions.one" in caplog.text and "users.one" in caplog.text
    assert "sessions.list" not in caplog.text and "users.list" not in caplog.text
    summary = re.search(r"data-group-summary>(.*?)</dl>", session, re.S).group(1)
    assert re.search(r'data-summary="llm-calls"><dt>LLM calls</dt><dd>5<', summary)  # 4 in runs + 1 plain
    assert re.search(r'data-summary="errors"><dt>Errors</dt><dd class="bad"[^>]*>1<', summary)
    summary = re.search(r"data-group-summary>(.*?)</dl>", user, re.S).group(1)
    assert re.search(r'data-summary="runs"><dt>Runs</dt><dd>3<', summary)


def test_a_user_page_shows_their_numbers_sessions_runs_and_cost_over_the_window(client, alice, project, world):
    client.force_login(alice)
    users = page(client, project, "traces/users/")
    assert re.findall(r'<tr class="group-item" data-group="([^"]+)"', users) == ["lee", "kim@example.com"]
    html = page(client, project, "traces/users/", user="kim@example.com")
    assert "data-user-page" in html and run_rows(html) == [tid(world[k]) for k in ("r3", "r2", "r1")]
    assert re.findall(r'data-user-session="([^"]+)"', html) == ["chat-42"]
    assert "data-cost-line" in html and 'class="spark-line"' in html
    summary = re.search(r"data-group-summary>(.*?)</dl>", html, re.S).group(1)
    assert re.search(r'data-summary="runs"><dt>Runs</dt><dd>3<', summary)
    assert re.search(r'data-summary="llm-calls"><dt>LLM calls</dt><dd>4<', summary)


def test_sessions_and_users_need_membership(client, charlie, project, world):
    client.force_login(charlie)
    for path in ("traces/sessions/", "traces/users/"):
        assert client.get(f"/admin/monitoring/{project.id}/{path}").status_code == 404


# --- search, replays, in-progress spans, Overview trends ------------------------------------------


def test_search_by_short_trace_id_says_why_and_marks_it(client, alice, project, world):
    client.force_login(alice)
    short = tid(world["r1"])[:8]
    html = page(client, project, kind="all", q=short)
    rows = re.findall(r'<tr class="span-item[^"]*" data-span="[0-9a-f]{16}" data-matched="([^"]+)">', html)
    assert rows and set(rows) == {"trace id"} and len(rows) == 3  # the run's three spans
    assert "matched in trace id" in html
    assert f'<span class="trace-id" title="trace {tid(world["r1"])}"><mark>{short}</mark></span>' in html
    named = page(client, project, kind="all", q="Completion")
    assert 'data-matched="name"' in named and "Chat<mark>Completion</mark>" in named
    attribute = page(client, project, kind="all", q="1182")
    assert "matched in attribute llm.input_messages.1.message.content" in attribute
    # A search link without a sub-tab (the Agent list was the default before runs) still searches steps.
    steps = page(client, project, q="support")
    assert 'data-kind="agent"' in steps and 'data-matched="name"' in steps


def test_the_replays_toggle_brings_replay_re_runs_into_the_numbers(client, alice, project, world):
    client.force_login(alice)

    def llm_calls(**params) -> str:
        html = page(client, project, "overview/", **params)
        return re.search(r'data-kpi="llm-calls">.*?<p class="value">([^<]+)</p>', html, re.S).group(1)

    html = page(client, project, "overview/")
    assert 'name="replays" value="1" data-filter="replays">' in html  # unticked
    assert llm_calls() == "7"  # 6 calls in runs + the plain call; the re-run is an experiment
    assert llm_calls(replays="1") == "8"
    ticked = page(client, project, "overview/", replays="1")
    assert 'data-filter="replays" checked>' in ticked
    assert re.search(r'data-tab-link="analytics"[^>]*', ticked) and "replays=1" in re.search(
        r'href="([^"]+)" data-tab-link="analytics"', ticked
    ).group(1)


def test_overview_cards_each_have_a_trend_line_and_services_count_calls_and_runs(client, alice, project, world):
    client.force_login(alice)
    html = page(client, project, "overview/", range="1h")
    cards = re.findall(r'<article class="kpi" data-kpi="([^"]+)">(.*?)</article>', html, re.S)
    assert [k for k, body in cards if "data-sparkline" in body] == [
        "total-cost",
        "llm-calls",
        "agent-calls",
        "avg-latency",
        "fail-rate",
    ]
    board = re.search(r'data-board="top-services">(.*?)</article>', html, re.S).group(1)
    assert "Calls + runs" in board and "agent-support" in board
    # The unpriced self-hosted model is a warning, not a silent $0.
    cost = dict(cards)["total-cost"]
    assert "data-unpriced" in cost and "house-llm-7b" in cost
    models = re.search(r'data-board="top-models">(.*?)</article>', html, re.S).group(1)
    assert re.search(r"<td>house-llm-7b</td>.*?data-unpriced", models, re.S) and "$0.0000" not in models


def test_a_span_without_an_end_time_reads_in_progress(client, alice, project):
    """Written as the OTel Collector's ClickHouse exporter writes a span exported before it ended:
    end time 0, so its uint64 Duration wraps around (monitoring/semantics/semconv.py NO_END_DURATION_NS)."""
    client.force_login(alice)
    root = S("support_agent", service="agent-support", at=AT, ms=2000, attributes=AGENT)
    call = llm(root, at=AT + dt.timedelta(milliseconds=100), ms=0, model="gpt-4o", question="Q?", answer="")
    rows = otlp.rows_from_request(request(root, call), str(project.id)).rows
    for row in rows:
        if row["SpanId"] == call.span_id.hex():
            row["Duration"] = 2**64 - row["Timestamp"]  # 0 - start in uint64
    clickhouse.insert(schema.table(), schema.TRACE_COLUMNS, rows, tag="test.no_end", nanos_columns=schema.NANOS_COLUMNS)
    listed = page(client, project, kind="llm")
    assert "data-in-progress>in progress</span>" in listed and ">0 ms<" not in listed
    trace = page(client, project, f"traces/{tid(root)}/", span=call.span_id.hex())
    bar = re.search(
        rf'data-span="{call.span_id.hex()}".*?<span class="wf-bar([^"]*)" style="left:([0-9.]+)%;width:([0-9.]+)%"',
        trace,
        re.S,
    )
    assert "no-end" in bar.group(1) and float(bar.group(2)) + float(bar.group(3)) == pytest.approx(100, abs=0.01)
    assert "in progress · no end time" in trace  # the span panel
    summary = re.search(r'data-summary="duration">(.*?)</div>', trace, re.S).group(1)
    assert "data-in-progress" in summary  # the trace's duration is a lower bound
    runs = page(client, project)
    row = re.search(rf'data-run="{tid(root)}">(.*?)</tr>', runs, re.S).group(1)
    assert "data-in-progress" in row  # the run has not ended either


def test_the_runs_page_continues_below_its_last_row_through_htmx(client, alice, project, ingest_key):
    client.force_login(alice)
    roots = [
        S("nightly_report", service="agent-report", at=AT + i * MIN / 4, ms=100 + i, attributes=AGENT)
        for i in range(53)
    ]
    send(client, ingest_key, roots, scope="openinference.instrumentation.openai")
    html = page(client, project, kind="runs")
    first = run_rows(html)
    assert len(first) == 50 and first[0] == tid(roots[-1])  # newest first
    older = htmllib.unescape(re.search(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#run-more"', html).group(1))
    assert "kind=runs" in older and "cursor=" in older
    r = client.get(older, headers={"HX-Request": "true", "HX-Target": "run-more"})
    rest = run_rows(r.content.decode())
    assert r.status_code == 200 and "<html" not in r.content.decode()
    assert rest == [tid(s) for s in reversed(roots[:3])] and not set(rest) & set(first)


def test_runs_that_start_at_the_same_instant_page_once_each(client, alice, project, ingest_key):
    client.force_login(alice)
    roots = [S("batch_agent", service="agent-batch", at=AT, ms=100, attributes=AGENT) for _ in range(4)]
    send(client, ingest_key, roots, scope="openinference.instrumentation.openai")
    seen, cursor = [], None
    for _ in range(6):
        params = {"range": "24h", "kind": "runs", "limit": 1, **({"cursor": cursor} if cursor else {})}
        data = client.get(f"/api/v1/projects/{project.id}/traces", params).json()
        seen += [i["trace_id"] for i in data["items"]]
        cursor = data["next_cursor"]
        if not cursor:
            break
    assert seen == sorted((tid(r) for r in roots), reverse=True)  # same start: trace id descending
