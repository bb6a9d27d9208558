"""Replay as a user reads it: steps in the order they happened (a parent before a child that starts
at the same instant), the trace page's numbers in its header, Compare by ticking two runs."""

import datetime as dt

import pytest
from otlp import S, send

from monitoring.queries import trace as trace_q
from monitoring.replay import steps as replay

pytestmark = pytest.mark.django_db

AT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=20)
MS = dt.timedelta(milliseconds=1)


def proxied_run(client, key, at=AT) -> str:
    """An agent step whose LLM call went through LiteLLM, the call starting with its parent (and with
    a span id that sorts before the parent's)."""
    root = S(
        "invoke_agent text2sql",
        service="agent",
        at=at,
        ms=3000,
        span_id=b"\xf0" * 8,
        attributes={"gen_ai.operation.name": "invoke_agent"},
    )
    caller = root.child(
        "chat gpt-4o",
        at=at,
        ms=900,
        span_id=b"\x01" * 8,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 100,
        },
    )
    gateway = S(
        "litellm_request",
        service="litellm-proxy",
        at=at + 50 * MS,
        ms=800,
        trace=root.trace,
        attributes={
            "llm.request.type": "acompletion",
            "gen_ai.request.model": "openai/gpt-4o",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.cost.total_cost": 0.25,
        },
    )
    gateway.parent = caller.span_id
    send(client, key, [root, caller], scope="tests")
    send(client, key, [gateway], scope="litellm")
    return root.trace.hex()


def test_a_parent_comes_before_its_same_instant_child(client, project, ingest_key):
    run = replay.load_run(project, proxied_run(client, ingest_key))
    assert [s.span.name for s in run.steps] == ["invoke_agent text2sql", "chat gpt-4o", "litellm_request"]


def test_the_header_counts_like_the_trace_page(client, project, ingest_key):
    trace = proxied_run(client, ingest_key)
    run = replay.load_run(project, trace)
    ref = trace_q.locate(str(project.id), trace)
    page = trace_q.summarize(ref, trace_q.tree_spans(ref), trace_q.invocations(ref))
    assert (run.summary.llm_calls, run.summary.cost_usd) == (page.llm_calls, page.cost_usd) == (1, 0.25)
    assert [s.counted for s in run.steps] == [True, False, True]  # the caller is counted at the gateway


def test_the_replay_page_shows_the_summary_and_marks_the_caller(client, alice, project, ingest_key):
    trace = proxied_run(client, ingest_key)
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/replay/", {"trace": trace, "step": 2}).content.decode()
    assert '<div data-summary="llm-calls"><dt>LLM calls</dt><dd>1</dd>' in html
    assert '<div data-summary="cost"><dt>Cost</dt><dd>$0.25</dd>' in html
    assert "counted at the gateway's span" in html and 'class="role via"' in html


def test_compare_takes_two_ticked_runs(client, alice, project, ingest_key):
    a, b = proxied_run(client, ingest_key), proxied_run(client, ingest_key, AT + dt.timedelta(minutes=1))
    client.force_login(alice)
    url = f"/admin/monitoring/{project.id}/replay/compare/"
    r = client.get(f"{url}?run={a}&run={b}")
    assert r.status_code == 200 and r.content.decode().count('data-pair="same"') == 3
    assert client.get(f"{url}?run={a}").status_code == 400
    assert client.get(f"{url}?run={a}&run={a}").status_code == 400
    html = client.get(f"/admin/monitoring/{project.id}/replay/").content.decode()
    assert html.count('type="checkbox" name="run"') == 2 and "data-compare-submit" in html


def test_the_run_list_names_the_root_even_when_a_child_starts_with_it(client, alice, project, ingest_key):
    proxied_run(client, ingest_key)
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/replay/").content.decode()
    assert '<td>invoke_agent text2sql <span class="trace-id"' in html  # the root, then its short id
