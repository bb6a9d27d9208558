"""The Analytics tab: Cost Trend, Token Usage, calls/errors, Agent Flow Graph, breakdowns and latency,
exactly, on spans written for the test in every dialect (monitoring/semantics/semconv.py); the page, its htmx partial,
and the time-series API."""

import datetime as dt
import json
import re
from unittest import mock

import pytest
from conftest import api_token
from django.test import override_settings
from otlp import S, send

from monitoring.models import IngestKey, ModelPrice
from monitoring.queries import breakdowns as breakdowns_q
from monitoring.queries import flow as flow_q
from monitoring.queries import latency as latency_q
from monitoring.queries import overview as queries
from monitoring.queries import timeseries as timeseries_q
from monitoring.semantics import settle
from monitoring.store import clickhouse
from monitoring.store.sql import Sql
from monitoring.web import charts
from monitoring.web.forms import SpanFilter, Window

pytestmark = pytest.mark.django_db

UTC = dt.UTC
DAY = dt.datetime(2025, 3, 1, tzinfo=UTC)
DAYS = Window(DAY, DAY + dt.timedelta(days=3))  # 72 h: daily buckets
HOURS = Window(DAY + dt.timedelta(hours=9, minutes=30), DAY + dt.timedelta(hours=12, minutes=30))  # hourly


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return DAY + dt.timedelta(days=day, hours=hour, minutes=minute)


def litellm(when, model, cost, *, inp=10, out=20, ms=100.0, user=""):
    """LiteLLM's call span (the proxy's other spans are not LLM calls; test_overview_queries covers them)."""
    attrs = {
        "llm.request.type": "acompletion",
        "litellm.model_group": model,
        "gen_ai.request.model": f"openai/{model}",
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        "gen_ai.cost.total_cost": cost,
    }
    if user:
        attrs["llm.user"] = user
    return S("litellm_request", service="litellm-proxy", at=when, ms=ms, attributes=attrs)


def openinference(when, model, inp, out, *, ms=100.0, service="svc-analyze", **attrs):
    return S(
        "ChatCompletion",
        service=service,
        at=when,
        ms=ms,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": model,
            "llm.token_count.prompt": inp,
            "llm.token_count.completion": out,
            **attrs,
        },
    )


def genai(when, model, inp=None, out=None, *, ms=100.0, error=False, service="svc-text2sql", **attrs):
    usage = {} if inp is None else {"gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out}
    return S(
        f"chat {model}",
        service=service,
        at=when,
        ms=ms,
        error=error,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": model, **usage, **attrs},
    )


def openllmetry(when, model, inp, out, *, ms=100.0, service="svc-report"):
    return S(
        "anthropic.chat",
        service=service,
        at=when,
        ms=ms,
        attributes={
            "llm.request.type": "chat",
            "gen_ai.request.model": model,
            "gen_ai.usage.prompt_tokens": inp,
            "gen_ai.usage.completion_tokens": out,
        },
    )


@pytest.fixture
def calls(client, project, ingest_key):
    """Six LLM calls over two days in four dialects, and two outside the window.

    day 0: gpt-4o via LiteLLM reported $0.5 (10:00) and unpriced (11:00: 10 x $2.5/M + 20 x $10/M = $0.000225),
           gpt-4o via OpenInference (12:00: 1000 x $2.5/M + 500 x $10/M = $0.0075)
    day 1: qwen-235b via GenAI semconv at the project's price (1000 x $1/M + 1000 x $2/M = $0.003) and a failed one,
           claude-3-5-sonnet via OpenLLMetry (2000 x $3/M + 100 x $15/M = $0.0075)
    """
    ModelPrice.objects.create(project=project, model="qwen-235b", input_per_million=1, output_per_million=2)
    send(
        client,
        ingest_key,
        [litellm(at(0, 10), "gpt-4o", 0.5, ms=100, user="u-1"), litellm(at(0, 11), "gpt-4o", 0.0, ms=300)],
        scope="litellm",
    )
    send(
        client,
        ingest_key,
        [
            openinference(at(0, 12), "gpt-4o", 1000, 500, ms=800, **{"user.id": "u-1"}),
            genai(at(1, 9), "qwen-235b", 1000, 1000, ms=1200, **{"user.id": "u-2"}),
            genai(at(1, 16), "qwen-235b", ms=70_000, error=True, **{"user.id": "u-2"}),
            openllmetry(at(1, 15), "claude-3-5-sonnet", 2000, 100, ms=40),
            genai(DAY - dt.timedelta(minutes=1), "gpt-4o", 5, 5),  # before the window
            genai(DAYS.end, "gpt-4o", 5, 5),  # the end is exclusive
        ],
    )


def flt(project, window=DAYS, **kw) -> SpanFilter:
    return SpanFilter(str(project.id), window, **kw)


# --- time series ------------------------------------------------------------------------------------


def test_it_trends_cost_per_day_per_model_reported_and_priced(project, calls):
    s = timeseries_q.timeseries(flt(project))
    assert s.bucket == "day"
    assert s.times == (DAY, at(1, 0), at(2, 0))  # the empty third day is there too
    assert s.models == ("gpt-4o", "claude-3-5-sonnet", "qwen-235b")  # most expensive first
    cost = s.values["cost_usd"]
    assert cost["gpt-4o"] == pytest.approx([0.5 + 0.000225 + 0.0075, 0, 0])
    assert cost["claude-3-5-sonnet"] == pytest.approx([0, 0.0075, 0])
    assert cost["qwen-235b"] == pytest.approx([0, 0.003, 0])
    assert sum(s.total("cost_usd")) == pytest.approx(queries.overview(flt(project)).total_cost_usd)


def test_it_sums_tokens_calls_and_errors_per_day(project, calls):
    s = timeseries_q.timeseries(flt(project))
    assert s.total("input_tokens") == [10 + 10 + 1000, 1000 + 2000, 0]
    assert s.total("output_tokens") == [20 + 20 + 500, 1000 + 100, 0]
    assert s.values["input_tokens"]["qwen-235b"] == [0, 1000, 0]
    assert s.values["output_tokens"]["claude-3-5-sonnet"] == [0, 100, 0]
    assert s.total("llm_calls") == [3, 3, 0]
    assert s.total("errors") == [0, 1, 0]


def test_it_uses_aligned_hourly_buckets_for_a_short_window(project, calls):
    s = timeseries_q.timeseries(flt(project, HOURS))
    assert s.bucket == "hour"
    assert s.times == (at(0, 9), at(0, 10), at(0, 11), at(0, 12))
    assert s.total("llm_calls") == [0, 1, 1, 1]
    assert s.total("cost_usd") == pytest.approx([0, 0.5, 0.000225, 0.0075])
    assert s.total("input_tokens") == [0, 10, 10, 1000]


def test_it_switches_to_days_from_3_days():
    """Days only when the window holds 3 of them (a 60-hour window is drawn in hours: issue 21)."""
    start = dt.datetime(2025, 3, 1, 6, 30, tzinfo=UTC)
    assert timeseries_q.bucket_for(SpanFilter("p", Window(start, start + dt.timedelta(hours=71)))) == "hour"
    day = SpanFilter("p", Window(start, start + dt.timedelta(hours=72)))
    assert timeseries_q.bucket_for(day) == "day"
    assert timeseries_q.bucket_starts(day, "day") == [DAY, at(1, 0), at(2, 0), at(3, 0)]


@pytest.mark.parametrize(
    "kw, llm_calls, errors, cost",
    [
        ({"services": ("litellm-proxy",)}, [2, 0, 0], [0, 0, 0], [0.500225, 0, 0]),
        ({"models": ("qwen-235b",)}, [0, 2, 0], [0, 1, 0], [0, 0.003, 0]),
        ({"status": "error"}, [0, 1, 0], [0, 1, 0], [0, 0, 0]),
        ({"status": "ok"}, [3, 2, 0], [0, 0, 0], [0.507725, 0.0105, 0]),
        ({"services": ("svc-report", "svc-analyze"), "models": ("gpt-4o",)}, [1, 0, 0], [0, 0, 0], [0.0075, 0, 0]),
    ],
)
def test_the_filter_bar_changes_the_series(project, calls, kw, llm_calls, errors, cost):
    s = timeseries_q.timeseries(flt(project, **kw))
    assert s.total("llm_calls") == llm_calls
    assert s.total("errors") == errors
    assert s.total("cost_usd") == pytest.approx(cost)


# --- breakdowns and latency -------------------------------------------------------------------------


def _rows(shares):
    return [(s.name, s.calls, s.errors, round(s.cost_usd, 6)) for s in shares]


def test_it_breaks_cost_and_calls_down_by_model_service_and_end_user(project, calls):
    b = breakdowns_q.breakdowns(flt(project))
    assert _rows(b["model"]) == [
        ("gpt-4o", 3, 0, 0.507725),
        ("claude-3-5-sonnet", 1, 0, 0.0075),
        ("qwen-235b", 2, 1, 0.003),
    ]
    assert _rows(b["service"]) == [
        ("litellm-proxy", 2, 0, 0.500225),
        ("svc-analyze", 1, 0, 0.0075),
        ("svc-report", 1, 0, 0.0075),
        ("svc-text2sql", 2, 1, 0.003),
    ]
    assert _rows(b["user"]) == [("u-1", 2, 0, 0.5075), ("", 2, 0, 0.007725), ("u-2", 2, 1, 0.003)]
    gpt = b["model"][0]
    assert (gpt.input_tokens, gpt.output_tokens, gpt.avg_latency_ms) == (1020, 540, 400.0)


def test_it_folds_the_long_tail_into_one_row(project, calls):
    b = breakdowns_q.breakdowns(flt(project), top=2)
    assert _rows(b["model"]) == [("gpt-4o", 3, 0, 0.507725), ("", 3, 1, 0.0105)]
    assert b["model"][1].folded == 2


def test_it_bins_llm_latency(project, calls):
    lat = latency_q.latency(flt(project))
    counts = {b.label: (b.calls, b.errors) for b in lat.bins if b.calls}
    assert counts == {
        "<50ms": (1, 0),
        "100–250ms": (1, 0),
        "250–500ms": (1, 0),
        "0.5–1s": (1, 0),
        "1–2.5s": (1, 0),
        "≥60s": (1, 1),
    }
    assert [b.label for b in lat.bins][:2] == ["<50ms", "50–100ms"]
    assert lat.calls == 6
    assert lat.p50_ms > 0


# --- Agent Flow Graph -------------------------------------------------------------------------------

FLOW = Window(dt.datetime(2025, 4, 1, 10, tzinfo=UTC), dt.datetime(2025, 4, 1, 11, tzinfo=UTC))
T = FLOW.start + dt.timedelta(minutes=5)


@pytest.fixture
def agent_runs(client, project, ingest_key):
    """Three runs: two OpenInference text2sql runs (one LLM call straight, one through the LiteLLM
    proxy; the first one's tool fails) and a GenAI-semconv planner whose tool fails. Plus a plain
    LLM call and a run outside the window, which the graph must not show."""
    oi = {"service": "agent-text2sql", "at": T}
    run1 = S("text2sql", ms=2000, attributes={"openinference.span.kind": "AGENT"}, **oi)
    run1_llm = run1.child(
        "ChatCompletion",
        ms=500,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 10,
            "llm.token_count.completion": 5,
        },
    )
    run1_tool = run1.child("run_sql", ms=100, error=True, attributes={"openinference.span.kind": "TOOL"})
    run2 = S("text2sql", ms=3000, attributes={"openinference.span.kind": "AGENT"}, **oi)
    caller = run2.child(
        "ChatCompletion",
        ms=900,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 10,
            "llm.token_count.completion": 5,
        },
    )
    run2_tool = run2.child("run_sql", ms=300, attributes={"openinference.span.kind": "TOOL"})
    # The proxy's spans between the agent's LLM span and the gateway's call span.
    inside = T + dt.timedelta(milliseconds=50)
    server = S(
        "POST /v1/chat/completions", service="litellm-proxy", at=inside, ms=850, trace=run2.trace, parent=caller.span_id
    )
    received = server.child("Received Proxy Server Request", ms=840)
    gateway = received.child(
        "litellm_request",
        ms=800,
        attributes={
            "llm.request.type": "acompletion",
            "litellm.model_group": "gpt-4o",
            "gen_ai.cost.total_cost": 0.25,
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
        },
    )
    raw = gateway.child("raw_gen_ai_request", attributes={"llm.openai.stringified_raw_response": "{}"})
    planner = S(
        "invoke_agent planner",
        service="agent-planner",
        at=T,
        ms=4000,
        attributes={"gen_ai.operation.name": "invoke_agent"},
    )
    planner_llm = planner.child(
        "chat qwen-235b", ms=1000, attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "qwen-235b"}
    )
    planner_tool = planner.child(
        "execute_tool search", ms=200, error=True, attributes={"gen_ai.operation.name": "execute_tool"}
    )
    plain = genai(T, "gpt-4o", 1, 1, service="backend")
    old = S(
        "text2sql",
        service="agent-text2sql",
        at=FLOW.start - dt.timedelta(hours=1),
        attributes={"openinference.span.kind": "AGENT"},
    )
    send(
        client,
        ingest_key,
        [run1, run1_llm, run1_tool, run2, caller, run2_tool, planner, planner_llm, planner_tool, plain, old],
        scope="openinference",
    )
    send(client, ingest_key, [server, received, gateway, raw], scope="litellm")


def _graph(g):
    nodes = {n.key: (n.count, n.errors, n.error_rate, n.avg_latency_ms, n.roots) for n in g.nodes}
    return g.runs, nodes, g.edges


def test_it_draws_the_agent_flow_of_a_known_run_shape(project, agent_runs):
    runs, nodes, edges = _graph(flow_q.agent_flow(flt(project, FLOW)))
    assert runs == 3
    assert nodes == {
        "agent:text2sql": (2, 0, 0.0, 2500.0, 2),
        "llm:gpt-4o": (2, 0, 0.0, 650.0, 0),  # run 1's own call, run 2's call at the gateway (800 ms), not the caller
        "tool:run_sql": (2, 1, 0.5, 200.0, 0),
        "agent:invoke_agent planner": (1, 0, 0.0, 4000.0, 1),
        "llm:qwen-235b": (1, 0, 0.0, 1000.0, 0),
        "tool:execute_tool search": (1, 1, 1.0, 200.0, 0),
    }
    assert edges == {
        ("agent:text2sql", "llm:gpt-4o"): 2,  # through the proxy's HTTP spans and the agent's own LLM span
        ("agent:text2sql", "tool:run_sql"): 2,
        ("agent:invoke_agent planner", "llm:qwen-235b"): 1,
        ("agent:invoke_agent planner", "tool:execute_tool search"): 1,
    }
    assert [n.key for n in flow_q.agent_flow(flt(project, FLOW)).nodes][:3] == [
        "agent:text2sql",
        "llm:gpt-4o",
        "tool:run_sql",
    ]


@pytest.mark.parametrize(
    "kw, runs, text2sql, planner",
    [
        ({"status": "error"}, 2, 1, 1),  # runs with a failed span
        ({"status": "ok"}, 1, 1, 0),  # runs without one
        ({"services": ("agent-planner",)}, 1, 0, 1),
        ({"models": ("gpt-4o",)}, 2, 2, 0),
        ({"models": ("claude-3-5-sonnet",)}, 0, 0, 0),
    ],
)
def test_the_filter_bar_selects_the_runs_of_the_flow(project, agent_runs, kw, runs, text2sql, planner):
    g = flow_q.agent_flow(flt(project, FLOW, **kw))
    counts = {n.key: n.count for n in g.nodes}
    assert (g.runs, counts.get("agent:text2sql", 0), counts.get("agent:invoke_agent planner", 0)) == (
        runs,
        text2sql,
        planner,
    )


def test_it_caps_the_flow_to_the_most_frequent_nodes(project, agent_runs):
    g = flow_q.agent_flow(flt(project, FLOW), max_nodes=3)
    assert [n.key for n in g.nodes] == ["agent:text2sql", "llm:gpt-4o", "tool:run_sql"]
    assert g.hidden_nodes == 3
    assert g.edges == {("agent:text2sql", "llm:gpt-4o"): 2, ("agent:text2sql", "tool:run_sql"): 2}


def test_it_climbs_to_the_nearest_step_and_notes_recursion():
    """Pure: the graph's bookkeeping on rows as the SQL returns them."""
    rows = [
        {"parent": "", "child": "agent:a", "calls": 3, "errors": 1, "duration": 3_000_000, "runs": 3},
        {"parent": "agent:a", "child": "agent:a", "calls": 2, "errors": 0, "duration": 2_000_000, "runs": 3},
    ]
    with (
        mock.patch.object(flow_q, "run", return_value=rows),
        mock.patch.object(flow_q, "run_one", return_value={"runs": 3}),
        mock.patch.object(flow_q.sources, "edges", return_value=Sql("SELECT 1")),
        mock.patch.object(flow_q.sources, "runs", return_value=Sql("SELECT 1")),
    ):
        g = flow_q.agent_flow(SpanFilter("p", FLOW))
    (node,) = g.nodes
    assert (node.count, node.errors, node.roots, node.self_calls, node.avg_latency_ms) == (5, 1, 3, 2, 1.0)
    assert g.edges == {}


# --- charts (pure) ----------------------------------------------------------------------------------


def test_charts_are_none_when_there_is_nothing_to_draw(project):
    empty = timeseries_q.timeseries(flt(project))
    assert empty.empty
    colours = charts.model_colours(empty.models)
    assert charts.cost_trend(empty, colours) is None
    assert charts.token_usage(empty, colours) is None
    assert charts.calls_and_errors(empty) is None
    assert charts.agent_flow(flow_q.agent_flow(flt(project))) is None
    assert charts.breakdown([], "model") is None
    assert charts.latency_histogram(latency_q.latency(flt(project))) is None


def test_charts_give_a_model_one_colour_and_stack_cost(project, calls):
    s = timeseries_q.timeseries(flt(project))
    colours = charts.model_colours(s.models)
    cost = charts.cost_trend(s, colours)
    assert cost["layout"]["barmode"] == "stack"
    assert [(t["type"], t["name"]) for t in cost["data"]] == [
        ("bar", "gpt-4o"),
        ("bar", "claude-3-5-sonnet"),
        ("bar", "qwen-235b"),
    ]
    assert cost["data"][0]["x"] == ["2025-03-01 00:00", "2025-03-02 00:00", "2025-03-03 00:00"]
    assert cost["data"][0]["y"] == pytest.approx([0.507725, 0, 0])
    tokens = charts.token_usage(s, colours)
    by_model = charts.breakdown(breakdowns_q.breakdowns(flt(project))["model"], "model", colours)
    gpt = colours["gpt-4o"]
    assert cost["data"][0]["marker"]["color"] == gpt == tokens["data"][0]["line"]["color"]
    assert by_model["data"][0]["marker"]["color"][0] == gpt
    assert cost["layout"]["template"]["layout"]["paper_bgcolor"] == "rgba(0,0,0,0)"  # transparent on the card
    json.dumps(cost), json.dumps(tokens), json.dumps(by_model)  # JSON-ready


def test_the_flow_chart_colours_nodes_by_error_rate_and_stays_readable_at_60_nodes(project, agent_runs):
    fig = charts.agent_flow(flow_q.agent_flow(flt(project, FLOW)))
    (sankey,) = [t for t in fig["data"] if t["type"] == "sankey"]
    labels = sankey["node"]["label"]
    colour = dict(zip(labels, sankey["node"]["color"], strict=False))
    assert colour["◆ text2sql"] == charts._error_colour(0.0) != colour["⚙ run_sql"] == charts._error_colour(0.5)
    assert colour["⚙ execute_tool search"] == charts._error_colour(1.0)
    assert "650 ms" in sankey["node"]["customdata"][labels.index("● gpt-4o")]
    links = {
        (labels[s], labels[t]): v
        for s, t, v in zip(sankey["link"]["source"], sankey["link"]["target"], sankey["link"]["value"], strict=False)
    }
    assert links[("◆ text2sql", "● gpt-4o")] == 2 and links[("▶ 3 runs", "◆ text2sql")] == 2

    big = flow_q.FlowGraph(
        runs=100,
        nodes=[flow_q.FlowNode(f"agent:step {i:02d}", count=100 - i, roots=1) for i in range(60)],
        edges={(f"agent:step {i:02d}", f"agent:step {i + 1:02d}"): 5 for i in range(59)},
        hidden_nodes=10,
        hidden_edges={"agent:step 05": 3},
    )
    fig = charts.agent_flow(big)
    (sankey,) = [t for t in fig["data"] if t["type"] == "sankey"]
    assert len(sankey["node"]["label"]) == 62  # start + 60 + "more steps"
    assert (
        fig["layout"]["height"] <= 1000 and max(len(label) for label in sankey["node"]["label"]) <= 26
    )  # short labels


# --- the page -------------------------------------------------------------------------------------

PAGE_QUERY = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-04T00:00:00Z"}


def _figures(html: str) -> dict[str, dict]:
    return {
        m.group(1): json.loads(m.group(2))
        for m in re.finditer(r'<script id="(fig-[\w-]+)" type="application/json">(.*?)</script>', html, re.S)
    }


def _with_parts(client, html: str) -> str:
    """The tab's HTML plus the cards it loads beside it (as htmx would, on load)."""
    parts = re.findall(r'hx-get="([^"]+)" hx-trigger="load"', html)
    assert len(parts) == 3  # the flow graph, the breakdowns and the scores
    for url in parts:
        r = client.get(url.replace("&amp;", "&"), headers={"HX-Request": "true"})
        assert r.status_code == 200
        html += r.content.decode()
    return html


def test_the_page_draws_every_chart(client, alice, project, calls):
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/analytics/", PAGE_QUERY)
    assert r.status_code == 200
    html = r.content.decode()
    assert "<html" in html and 'data-tab="analytics"' in html and "monitoring/charts.js" in html
    html = _with_parts(client, html)
    figures = _figures(html)
    charted = re.findall(r'data-chart="(fig-[\w-]+)"', html)
    assert (
        set(charted)
        == set(figures)
        >= {
            "fig-cost-trend",
            "fig-token-usage",
            "fig-calls-errors",
            "fig-latency",
            "fig-by-model",
            "fig-by-service",
            "fig-by-user",
        }
    )
    assert 'data-empty="agent-flow"' in html  # no agent runs among these calls
    assert figures["fig-cost-trend"]["data"][0]["name"] == "gpt-4o"
    assert '<strong data-total="cost_usd">$0.5182</strong>' in html  # 0.507725 + 0.0075 + 0.003
    assert '<strong data-total="llm_calls">6</strong>' in html
    assert "Cost Trend" in html and "Token Usage" in html and "Agent Flow Graph" in html


def test_the_page_draws_the_flow_graph(client, alice, project, agent_runs):
    client.force_login(alice)
    r = client.get(
        f"/admin/monitoring/{project.id}/analytics/", {"from": "2025-04-01T10:00:00Z", "to": "2025-04-01T11:00:00Z"}
    )
    html = _with_parts(client, r.content.decode())
    figures = _figures(html)
    assert any(t["type"] == "sankey" for t in figures["fig-agent-flow"]["data"])
    assert "3 agent runs" in html


def test_an_unknown_part_is_404(client, alice, project):
    client.force_login(alice)
    assert client.get(f"/admin/monitoring/{project.id}/analytics/nope").status_code == 404


def test_the_flow_graph_counts_every_run_without_sampling(client, project, agent_runs):
    """Settled edges are summed per slice, so the graph is exact at any size (it used to sample
    beyond 2,000 runs): settling changes nothing."""
    flt = SpanFilter(
        str(project.id),
        Window(dt.datetime(2025, 4, 1, 10, tzinfo=dt.UTC), dt.datetime(2025, 4, 1, 11, tzinfo=dt.UTC)),
    )
    live = flow_q.agent_flow(flt)
    settle.settle_once()
    settled = flow_q.agent_flow(flt)
    assert settled.sampled_every == 1 and settled.runs == live.runs == 3
    assert [(n.key, n.count, n.errors) for n in settled.nodes] == [(n.key, n.count, n.errors) for n in live.nodes]
    assert settled.edges == live.edges


def test_it_serves_only_the_panel_to_htmx(client, alice, project, calls):
    client.force_login(alice)
    r = client.get(
        f"/admin/monitoring/{project.id}/analytics/", PAGE_QUERY, headers={"HX-Request": "true", "HX-Target": "panel"}
    )
    html = r.content.decode()
    assert r.status_code == 200 and html.lstrip().startswith('<section class="panel" data-tab="analytics">')
    assert "<html" not in html and 'data-chart="fig-cost-trend"' in html and "fig-cost-trend" in _figures(html)
    assert "HX-Request" in r.headers["Vary"]
    # A fragment has no panel of its own: asked for one, it answers itself (not a 500).
    for part in ("flow", "breakdowns"):
        r = client.get(
            f"/admin/monitoring/{project.id}/analytics/{part}",
            PAGE_QUERY,
            headers={"HX-Request": "true", "HX-Target": "panel"},
        )
        assert r.status_code == 200 and b'<article class="card chart-card' in r.content, part


def test_an_empty_window_shows_the_empty_state(client, alice, project, calls):
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/analytics/", {"range": "1h"})
    html = r.content.decode()
    assert r.status_code == 200 and 'data-empty="analytics"' in html and "data-chart=" not in html


def test_it_shows_the_banner_when_clickhouse_is_down(client, alice, project):
    client.force_login(alice)
    down = {**clickhouse.settings.CLICKHOUSE, "HOST": "127.0.0.1", "PORT": 1, "CONNECT_TIMEOUT": 2.0}
    with override_settings(CLICKHOUSE=down):
        r = client.get(f"/admin/monitoring/{project.id}/analytics/")
        api = client.get(f"/api/v1/projects/{project.id}/timeseries")
    assert r.status_code == 503 and b'data-banner="clickhouse"' in r.content and b"data-chart=" not in r.content
    assert api.status_code == 503 and api.json()["kind"] == "unavailable"


def test_the_page_keeps_to_logins_and_members(client, charlie, alice, project):
    url = f"/admin/monitoring/{project.id}/analytics/"
    assert client.get(url).status_code == 302
    client.force_login(charlie)
    assert client.get(url).status_code == 404
    client.force_login(alice)
    r = client.get(url, {"from": "yesterday"})
    assert r.status_code == 400 and b"ISO 8601" in r.content


def test_another_projects_data_never_appears(client, alice, project, other_project, calls, agent_runs):
    key = IngestKey.issue(other_project)[1]
    send(client, key, [litellm(at(0, 10), "gpt-4o", 9.0, user="stranger")], scope="litellm")
    theirs = timeseries_q.timeseries(flt(other_project))
    assert sum(theirs.total("cost_usd")) == pytest.approx(9.0)
    assert flow_q.agent_flow(flt(other_project, FLOW)).empty
    mine = timeseries_q.timeseries(flt(project))
    assert sum(mine.total("cost_usd")) == pytest.approx(0.518225)
    assert "stranger" not in [s.name for s in breakdowns_q.breakdowns(flt(project))["user"]]
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/analytics/", PAGE_QUERY).content.decode()
    assert "stranger" not in html and "$9.0000" not in html


# --- the time-series API --------------------------------------------------------------------------


def test_the_api_answers_the_time_series_exactly(client, bob, project, calls):
    r = client.get(
        f"/api/v1/projects/{project.id}/timeseries",
        {"from": "2025-03-01T09:30:00Z", "to": "2025-03-01T12:30:00Z"},
        headers={"Authorization": f"Bearer {api_token('bob')}"},
    )
    assert r.status_code == 200
    data = r.json()
    assert data["bucket"] == "hour"
    points = data["points"]
    assert {"cache_read_tokens", "reasoning_tokens", "avg_latency_ms", "agent_runs"} <= set(points[0])
    keys = ("t", "cost_usd", "input_tokens", "output_tokens", "llm_calls", "errors")
    points = [{k: (round(p[k], 9) if k == "cost_usd" else p[k]) for k in keys} for p in points]
    assert points == [
        {
            "t": "2025-03-01T09:00:00Z",
            "cost_usd": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "llm_calls": 0,
            "errors": 0,
        },
        {
            "t": "2025-03-01T10:00:00Z",
            "cost_usd": 0.5,
            "input_tokens": 10,
            "output_tokens": 20,
            "llm_calls": 1,
            "errors": 0,
        },
        {
            "t": "2025-03-01T11:00:00Z",
            "cost_usd": 0.000225,
            "input_tokens": 10,
            "output_tokens": 20,
            "llm_calls": 1,
            "errors": 0,
        },
        {
            "t": "2025-03-01T12:00:00Z",
            "cost_usd": 0.0075,
            "input_tokens": 1000,
            "output_tokens": 500,
            "llm_calls": 1,
            "errors": 0,
        },
    ]


def test_the_api_honours_the_filter_bar_and_days(client, alice, project, calls):
    client.force_login(alice)
    r = client.get(f"/api/v1/projects/{project.id}/timeseries", {**PAGE_QUERY, "model": "qwen-235b", "status": "error"})
    data = r.json()
    assert data["bucket"] == "day"
    assert [(p["t"], p["llm_calls"], p["errors"]) for p in data["points"]] == [
        ("2025-03-01T00:00:00Z", 0, 0),
        ("2025-03-02T00:00:00Z", 1, 1),
        ("2025-03-03T00:00:00Z", 0, 0),
    ]


def test_the_api_refuses_strangers_and_bad_filters(client, alice, charlie, project):
    url = f"/api/v1/projects/{project.id}/timeseries"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer apm_token_nope"}).status_code == 401
    token = api_token("charlie")
    for pid in [project.id, "not-a-uuid", "00000000-0000-0000-0000-000000000000"]:
        r = client.get(f"/api/v1/projects/{pid}/timeseries", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 404, pid
    client.force_login(alice)
    for query in [{"from": "nope"}, {"range": "5y"}, {"from": "2025-01-02T00:00:00Z", "to": "2025-01-01T00:00:00Z"}]:
        r = client.get(url, query)
        assert r.status_code == 400 and r.json()["error"], query
