"""Replay: step through a recorded run, re-run an LLM call through a real LiteLLM proxy, compare runs."""

import datetime as dt
import json

import pytest
from conftest import require
from django.test import override_settings
from litellm_proxy import litellm_available, start_litellm_proxy
from otlp import S, post, request

from monitoring.replay import compare, diff, steps
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

AT = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
MESSAGES = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "How many orders today?"}]}])
ANSWER = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "There were 42 orders today."}]}])


def agent_run(client, key, *, answer=ANSWER, model="gpt-4o-mini", tool_error=False):
    """text2sql agent (GenAI semconv): chat call, run_sql tool, then a plumbing span."""
    root = S(
        "invoke_agent text2sql",
        service="agent-text2sql",
        at=AT,
        ms=3000,
        attributes={"gen_ai.operation.name": "invoke_agent"},
    )
    llm = root.child(
        "chat " + model,
        at=AT + dt.timedelta(milliseconds=10),
        ms=800,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 64,
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.output_tokens": 7,
            "gen_ai.input.messages": MESSAGES,
            "gen_ai.output.messages": answer,
        },
    )
    tool = root.child(
        "execute_tool run_sql",
        at=AT + dt.timedelta(seconds=1),
        ms=300,
        error=tool_error,
        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "run_sql"},
    )
    plumbing = root.child("GET /healthz", at=AT + dt.timedelta(seconds=2), ms=5)
    assert post(client, key, request(root, llm, tool, plumbing)).status_code == 200
    return root.trace.hex(), llm.span_id.hex()


def test_it_plays_the_run_as_steps_with_roles_messages_and_paths(client, alice, project, ingest_key):
    trace, _ = agent_run(client, ingest_key)
    run = steps.load_run(project, trace)
    assert [(s.role, s.span.name) for s in run.steps] == [
        ("agent", "invoke_agent text2sql"),
        ("llm", "chat gpt-4o-mini"),
        ("tool", "execute_tool run_sql"),
    ]
    assert run.hidden == 1  # the health check is plumbing, shown on request
    llm = run.steps[1]
    assert llm.path == ["invoke_agent text2sql"]
    assert llm.input[0].content == "How many orders today?" and llm.output_text == "There were 42 orders today."
    assert llm.cost_usd == pytest.approx(12 * 0.15e-6 + 7 * 0.6e-6)  # gpt-4o-mini priced by genai-prices
    assert len(steps.load_run(project, trace, every_span=True).steps) == 4


def test_the_step_is_in_the_url(client, alice, project, ingest_key):
    trace, _ = agent_run(client, ingest_key)
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/replay/", {"trace": trace, "step": 2})
    html = r.content.decode()
    assert r.status_code == 200
    assert 'data-step="2"' in html and "Step 2 / 3" in html and "There were 42 orders today." in html
    assert "step=1" in html and "step=3" in html  # back and forward links
    assert "data-rerun-form" in html  # an admin may re-run the LLM call
    r = client.get(f"/admin/monitoring/{project.id}/replay/", {"trace": trace, "step": 99})
    assert 'data-step="3"' in r.content.decode()


def test_a_viewer_steps_through_but_cannot_rerun(client, bob, project, ingest_key):
    trace, span = agent_run(client, ingest_key)
    client.force_login(bob)
    r = client.get(f"/admin/monitoring/{project.id}/replay/", {"trace": trace, "step": 2})
    assert r.status_code == 200 and "data-rerun-form" not in r.content.decode()
    r = client.post(
        f"/admin/monitoring/{project.id}/replay/rerun",
        {"trace": trace, "span": span, "model": "x", "messages": '[{"role":"user","content":"hi"}]'},
    )
    assert r.status_code == 403


def test_another_projects_trace_is_404(client, charlie, project, other_project, ingest_key):
    trace, span = agent_run(client, ingest_key)
    client.force_login(charlie)
    assert client.get(f"/admin/monitoring/{other_project.id}/replay/", {"trace": trace}).status_code == 404
    assert client.get(f"/admin/monitoring/{project.id}/replay/", {"trace": trace}).status_code == 404
    r = client.post(
        f"/admin/monitoring/{other_project.id}/replay/rerun",
        {"trace": trace, "span": span, "model": "x", "messages": '[{"role":"user","content":"hi"}]'},
    )
    assert r.status_code == 404


def test_bad_editor_input_is_400(client, alice, project, ingest_key, settings):
    settings.RERUN_RATE_LIMIT = "100/m"  # many refused re-runs in a row: this test is not about the limit
    trace, span = agent_run(client, ingest_key)
    client.force_login(alice)
    deep = '[{"role": "user", "content": ' + "[" * 5000 + "]" * 5000 + "}]"
    nested = '[{"role": "user", "content": ' + "[" * 100 + "]" * 100 + "}]"  # loads, but deeper than any chat
    for messages in ["not json", "[]", '[{"content": "no role"}]', deep, nested]:
        r = client.post(
            f"/admin/monitoring/{project.id}/replay/rerun",
            {"trace": trace, "span": span, "model": "gpt-4o-mini", "messages": messages},
        )
        assert r.status_code == 400, messages[:80]
    good = '[{"role": "user", "content": "hi"}]'
    for name, value in [("max_tokens", "9" * 400), ("max_tokens", "0"), ("max_tokens", "١٢"), ("max_tokens", "1.5"),
                        ("temperature", "nan"), ("temperature", "inf"), ("temperature", "1e400"), ("temperature", "-1"),
                        ("temperature", "9" * 400)]:  # fmt: skip
        r = client.post(
            f"/admin/monitoring/{project.id}/replay/rerun",
            {"trace": trace, "span": span, "model": "gpt-4o-mini", "messages": good, name: value},
        )
        assert r.status_code == 400 and name.encode() in r.content, (name, value)
    deep_tools = "[" * 5000 + "]" * 5000
    r = client.post(
        f"/admin/monitoring/{project.id}/replay/rerun",
        {"trace": trace, "span": span, "model": "gpt-4o-mini", "messages": good, "tools": deep_tools},
    )
    assert r.status_code == 400


def test_an_unreachable_gateway_is_a_message_and_not_a_run(client, alice, project, ingest_key):
    """A re-run that got no answer is not stored: it never shows in the runs, lists or filters."""
    trace, span = agent_run(client, ingest_key)
    client.force_login(alice)
    with override_settings(LITELLM_BASE_URL="http://127.0.0.1:1"):
        r = client.post(
            f"/admin/monitoring/{project.id}/replay/rerun",
            {"trace": trace, "span": span, "model": "gpt-4o-mini", "messages": '[{"role":"user","content":"hi"}]'},
        )
    assert r.status_code == 200
    html = r.content.decode()
    assert "unreachable" in html and 'data-rerun-outcome="error"' in html and "data-not-recorded" in html
    row = clickhouse.query_one(
        f"SELECT count() AS n FROM {schema.table()} WHERE ProjectId = {{p:String}} AND ServiceName = 'apm-replay'",
        {"p": str(project.id)},
        tag="test",
    )
    assert row == {"n": 0}
    runs = client.get(f"/api/v1/projects/{project.id}/traces", {"range": "1h", "kind": "runs", "replays": "1"})
    assert [i["trace_id"] for i in runs.json()["items"]] == [trace]


def test_an_embedding_call_shows_its_texts_and_is_not_offered_a_chat_rerun(client, alice, project, ingest_key):
    root = S(
        "invoke_agent rag", service="agent-rag", at=AT, ms=900, attributes={"gen_ai.operation.name": "invoke_agent"}
    )
    embed = root.child(
        "CreateEmbeddings",
        at=AT + dt.timedelta(milliseconds=5),
        ms=40,
        attributes={
            "openinference.span.kind": "EMBEDDING",
            "embedding.model_name": "text-embedding-3-small",
            "input.value": json.dumps({"input": "Which invoices are overdue?", "model": "text-embedding-3-small"}),
            "embedding.embeddings.0.embedding.text": "Which invoices are overdue?",
            "llm.token_count.prompt": 6,
        },
    )
    assert post(client, ingest_key, request(root, embed)).status_code == 200
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/replay/", {"trace": root.trace.hex(), "span": embed.span_id.hex()})
    html = r.content.decode()
    assert r.status_code == 200 and "data-no-rerun" in html and "data-rerun-form" not in html
    io = html[html.index('data-io="input"') : html.index('data-io="output"')]
    assert "Which invoices are overdue?" in io and "text-embedding-3-small" not in io  # the text, not the body
    posted = client.post(
        f"/admin/monitoring/{project.id}/replay/rerun",
        {
            "trace": root.trace.hex(),
            "span": embed.span_id.hex(),
            "model": "text-embedding-3-small",
            "messages": '[{"role":"user","content":"x"}]',
        },
    )
    assert posted.status_code == 400 and "embedding" in posted.content.decode()


def test_compare_aligns_steps_and_shows_what_differs(client, alice, project, ingest_key):
    a, _ = agent_run(client, ingest_key)
    other = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "There were 40 orders today."}]}])
    b, _ = agent_run(client, ingest_key, answer=other, tool_error=True)
    pairs = compare.compare(steps.load_run(project, a), steps.load_run(project, b))
    assert [(p.kind, p.a.span.name) for p in pairs] == [
        ("same", "invoke_agent text2sql"),
        ("changed", "chat gpt-4o-mini"),
        ("changed", "execute_tool run_sql"),
    ]
    assert (
        pairs[1].changed == ["output"]
        and ("delete", "42") in pairs[1].output_diff
        and ("insert", "40") in pairs[1].output_diff
    )
    assert pairs[2].changed == ["status"]
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/replay/compare/", {"a": a, "b": b})
    assert r.status_code == 200 and r.content.decode().count('data-pair="changed"') == 2


def test_text_diff_is_word_level():
    assert diff.text_diff("the cat sat", "the dog sat") == [
        ("equal", "the "),
        ("delete", "cat"),
        ("insert", "dog"),
        ("equal", " sat"),
    ]


@pytest.mark.e2e
def test_rerun_through_a_real_litellm_proxy(client, alice, project, ingest_key, tmp_path):
    require(litellm_available(), "no LiteLLM venv (.venv-litellm); bin/setup --test installs it")
    trace, span = agent_run(client, ingest_key)
    config = {
        "model_list": [
            {
                "model_name": "gpt-4o-mini",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_key": "sk-mock",
                    "mock_response": "There were 43 orders today.",
                },
            },
            {
                "model_name": "broken",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_key": "sk-mock",
                    "mock_response": "litellm.InternalServerError",
                },
            },
        ],
        "litellm_settings": {"num_retries": 0},
    }
    proxy = start_litellm_proxy(config, {}, tmp_path)
    client.force_login(alice)
    edited = json.dumps([{"role": "user", "content": "How many orders yesterday?"}])
    try:
        with override_settings(LITELLM_BASE_URL=proxy.base_url, LITELLM_API_KEY=proxy.master_key):
            ok = client.post(
                f"/admin/monitoring/{project.id}/replay/rerun",
                {"trace": trace, "span": span, "model": "gpt-4o-mini", "messages": edited, "max_tokens": "20"},
            )
            failed = client.post(
                f"/admin/monitoring/{project.id}/replay/rerun",
                {"trace": trace, "span": span, "model": "broken", "messages": edited},
            )
    finally:
        proxy.stop()
    html = ok.content.decode()
    assert ok.status_code == 200, html
    assert "There were 43 orders today." in html and 'data-rerun-outcome="ok"' in html
    assert "<del>42</del><ins>43</ins>" in html
    assert "(reported)" in html  # LiteLLM said what it cost
    assert (
        failed.status_code == 200
        and "500" in failed.content.decode()
        and 'data-rerun-outcome="error"' in failed.content.decode()
    )
    rows = clickhouse.query(
        f"SELECT StatusCode AS status, Links.TraceId AS link_traces, Links.SpanId AS link_spans, InputTokens AS i,"
        f" OutputTokens AS o, ReportedCost AS cost, IsLLMCall AS llm, SpanAttributes['gen_ai.input.messages'] AS msgs"
        f" FROM {schema.table()} WHERE ProjectId = {{p:String}} AND ServiceName = 'apm-replay' ORDER BY Timestamp",
        {"p": str(project.id)},
        tag="test",
    )
    assert [r["status"] for r in rows] == ["Ok"]  # the failed attempt is not a run
    assert rows[0]["link_traces"] == [trace] and rows[0]["link_spans"] == [span]
    assert rows[0]["i"] > 0 and rows[0]["o"] > 0 and rows[0]["cost"] > 0 and rows[0]["llm"] == 1
    assert "How many orders yesterday?" in rows[0]["msgs"]


def test_a_link_from_traces_opens_the_step_of_that_span(client, alice, project, ingest_key):
    trace, span = agent_run(client, ingest_key)
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/replay/", {"trace": trace, "span": span})
    assert 'data-step="2"' in r.content.decode()


def test_the_run_picker_is_newest_first_by_each_runs_first_step_whatever_stretch_holds_it(client, project, ingest_key):
    """The picker looks in the newest hour first, then wider stretches (monitoring/queries/runs.py):
    a run whose first step is older than the stretch but whose later step is in it ranks by its
    first step, below a run that began after it; paging walks on to the older ones."""
    from otlp import send

    from monitoring.queries.filter import SpanFilter, Window
    from monitoring.queries.runs import RunCursor

    now = dt.datetime.now(dt.UTC)
    call = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.system": "openai"}

    def run_with_calls(*minutes_ago):
        root = S(
            "invoke_agent planner",
            at=now - dt.timedelta(minutes=max(minutes_ago) + 1),
            ms=1000.0 * 60 * (max(minutes_ago) + 1),
        )
        return root, [root] + [
            root.child("chat gpt-4o-mini", at=now - dt.timedelta(minutes=m), attributes=call) for m in minutes_ago
        ]

    straddling, spans_a = run_with_calls(180, 10)  # first step 3 h ago, another 10 min ago
    older, spans_b = run_with_calls(120)
    newest, spans_c = run_with_calls(30)
    send(client, ingest_key, *spans_a, *spans_b, *spans_c)
    flt = SpanFilter(str(project.id), Window(now - dt.timedelta(hours=24), now + dt.timedelta(minutes=1)))
    seen, cursor = [], None
    for _ in range(4):  # a run a page: the newest hour alone holds the straddling run's later step
        page = steps.recent_runs(flt, limit=1, cursor=RunCursor.decode(cursor) if cursor else None)
        seen += [r["trace_id"] for r in page.items]
        if not (cursor := page.next_cursor):
            break
    assert seen == [newest.trace.hex(), older.trace.hex(), straddling.trace.hex()]
