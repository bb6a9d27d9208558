"""Analytics as it reads: minute ticks for a 1 h window, cached vs uncached input, agent runs per
bucket, embeddings as their own kind of flow node; and the cached-input numbers on the page and the
Overview from a recorded Anthropic call that read most of its prompt from the cache."""

import datetime as dt
import json
import re

import pytest
from django.utils import translation
from otlp import post_recorded, recorded

from monitoring.queries import flow as flow_q
from monitoring.queries import timeseries as timeseries_q
from monitoring.web import charts

pytestmark = pytest.mark.django_db


def series(bucket="minute", n=4, **extra):
    start = dt.datetime(2025, 12, 5, 9, 0, tzinfo=dt.UTC)
    step = {"minute": dt.timedelta(minutes=1), "hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}[bucket]
    times = tuple(start + i * step for i in range(n))
    zeros = [0] * n
    values = {
        "llm_calls": {"m": [1] * n},
        "errors": {"m": list(zeros)},
        "cost_usd": {"m": [0.01] * n},
        "input_tokens": {"m": extra.pop("input_tokens", [1000] * n)},
        "output_tokens": {"m": list(zeros)},
    }
    return timeseries_q.Timeseries(bucket, times, ("m",), values, extra.pop("extra", {}), **extra)


def test_minute_buckets_are_labelled_by_the_clock():
    with translation.override("en"):
        fig = charts.calls_and_errors(series("minute"))
        assert fig["layout"]["xaxis"]["tickformat"] == "%H:%M"
        assert fig["layout"]["xaxis"]["hoverformat"].startswith("%Y-%m-%d %H:%M")
        assert charts.calls_and_errors(series("hour"))["layout"]["xaxis"]["tickformat"] == "%H:%M\n%b %-d"
        assert charts.calls_and_errors(series("day"))["layout"]["xaxis"]["tickformat"] == "%b %-d"


def test_input_cache_stacks_uncached_written_and_read_input():
    s = series(
        "hour",
        n=3,
        input_tokens=[1000, 1000, 500],
        extra={"cache_read_tokens": [800, 0, 0], "cache_write_tokens": [100, 0, 0]},
    )
    with translation.override("en"):
        fig = charts.input_cache(s)
    bars = {t["name"]: t["y"] for t in fig["data"]}
    assert bars == {"uncached input": [100, 1000, 500], "cache write": [100, 0, 0], "cache read": [800, 0, 0]}
    assert fig["layout"]["barmode"] == "stack"
    assert charts.input_cache(series("hour")) is None  # no cache use: the card says so instead


def test_agent_runs_per_bucket_stack_finished_and_failed():
    s = series("hour", n=3, runs=[3, 0, 2], failed_runs=[1, 0, 0])
    fig = charts.agent_runs(s)
    assert [t["y"] for t in fig["data"]] == [[2, 0, 2], [1, 0, 0]]
    assert charts.agent_runs(series("hour", n=3)) is None


def test_embeddings_are_their_own_kind_of_flow_node_with_a_legend_entry():
    nodes = [
        flow_q.FlowNode("agent:rag", count=2, roots=2),
        flow_q.FlowNode("embed:text-embedding-3-small", count=2),
        flow_q.FlowNode("llm:gpt-4o", count=2),
    ]
    flow = flow_q.FlowGraph(runs=2, nodes=nodes, edges={("agent:rag", "embed:text-embedding-3-small"): 2})
    with translation.override("en"):
        fig = charts.agent_flow(flow)
        legend = charts.flow_legend(flow)
    (sankey,) = [t for t in fig["data"] if t["type"] == "sankey"]
    assert "■ text-embedding-3-small" in sankey["node"]["label"]
    assert "(embedding)" in sankey["node"]["customdata"][sankey["node"]["label"].index("■ text-embedding-3-small")]
    assert legend == [("◆", "agent step"), ("●", "LLM call"), ("■", "embedding")]
    with translation.override("ko"):
        assert ("■", "임베딩") in charts.flow_legend(flow)


def _figures(html: str) -> dict:
    found = re.findall(r'<script id="(fig-[\w-]+)" type="application/json">(.*?)</script>', html, re.S)
    return {k: json.loads(v) for k, v in found}


def test_the_page_and_the_overview_show_what_cached_input_saved(client, alice, project, ingest_key):
    doc = recorded("cases/case-01-cache-read-pricing")
    assert post_recorded(client, ingest_key, doc).status_code == 200
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/analytics/", {"range": "1h"}).content.decode()
    card = re.search(r'data-panel="input-cache">(.*?)</article>', html, re.S).group(1)
    assert "tokens per minute" in card and "99% of input from cache" in card and "saved" in card
    bars = {t["name"]: sum(t["y"]) for t in _figures(html)["fig-input-cache"]["data"]}
    assert bars == {"uncached input": 5, "cache write": 1_253, "cache read": 128_955}  # 130,213 in all
    assert 'data-total="cache_savings_usd"' in html
    assert _figures(html)["fig-cost-trend"]["layout"]["xaxis"]["tickformat"] == "%H:%M"  # minute buckets
    overview = client.get(f"/admin/monitoring/{project.id}/overview/", {"range": "1h"}).content.decode()
    cost = re.search(r'data-kpi="total-cost">(.*?)</article>', overview, re.S).group(1)
    assert "saved by cached input" in cost
