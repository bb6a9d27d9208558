"""Charts and cards as they read: the error-rate axis stops at 100 %, Sankey labels get room, the
Overview says "new" instead of a change against a near-empty window, trend lines per card."""

import datetime as dt

from django.utils import translation

from monitoring.queries import flow as flow_q
from monitoring.queries import overview as queries
from monitoring.queries import timeseries as timeseries_q
from monitoring.web import charts, kpis


def series(calls, errors, bucket="hour"):
    start = dt.datetime(2025, 12, 5, tzinfo=dt.UTC)
    times = tuple(start + dt.timedelta(hours=i) for i in range(len(calls)))
    values = {
        "llm_calls": {"m": list(calls)},
        "errors": {"m": list(errors)},
        "cost_usd": {"m": [c * 0.01 for c in calls]},
        "input_tokens": {"m": [0] * len(calls)},
        "output_tokens": {"m": [0] * len(calls)},
    }
    return timeseries_q.Timeseries(bucket, times, ("m",), values)


def test_the_error_rate_axis_stops_at_100_percent():
    fig = charts.calls_and_errors(series([4, 2, 5], [4, 0, 1]))
    assert fig["layout"]["yaxis2"]["range"] == [0, 1.0]
    fig = charts.calls_and_errors(series([10, 10], [1, 0]))
    assert fig["layout"]["yaxis2"]["range"][1] < 0.2


def test_the_flow_graph_gives_each_node_of_its_fullest_column_a_labels_height():
    nodes = [flow_q.FlowNode(f"llm:model {i}", count=1, roots=1) for i in range(14)]
    flow = flow_q.FlowGraph(runs=14, nodes=nodes, edges={})
    fig = charts.agent_flow(flow)
    (sankey,) = [t for t in fig["data"] if t["type"] == "sankey"]
    assert sankey["node"]["pad"] >= 16
    assert fig["layout"]["height"] >= 14 * (sankey["node"]["pad"] + 12)


def test_the_flow_graph_keeps_a_step_that_leads_nowhere_beside_its_caller():
    """node.align "left": leaves are not all stacked in the last column (whose labels plotly.js puts
    on their left, over the labels of the column before), so the height counts columns by depth."""
    links = [("start", "a"), ("a", "b"), ("a", "x"), ("start", "y"), ("b", "z")]
    assert charts._tallest_column(["start", "a", "b", "x", "y", "z"], links) == 2  # "justify" stacked x, y, z: 3
    nodes = [flow_q.FlowNode("agent:planner", count=3, roots=3), flow_q.FlowNode("llm:m", count=5)]
    fig = charts.agent_flow(flow_q.FlowGraph(runs=3, nodes=nodes, edges={("agent:planner", "llm:m"): 5}))
    (sankey,) = [t for t in fig["data"] if t["type"] == "sankey"]
    assert sankey["node"]["align"] == "left"


def overview(calls, agents=0, cost=0.0, errors=0):
    return queries.Overview(cost, calls, agents, 500.0, errors / max(calls + agents, 1), errors, 0, cost, 0.0)


def test_a_change_needs_a_previous_window_with_enough_data():
    with translation.override("en"):
        cards = {k.key: k for k in kpis.overview_cards(overview(1000, cost=10.0), overview(3, cost=0.001), "7d")}
        assert cards["total-cost"].change.direction == "new" and cards["total-cost"].change.text == "new"
        assert "previous 7 days" in cards["total-cost"].change.hint
        cards = {k.key: k for k in kpis.overview_cards(overview(1100, cost=11.0), overview(1000, cost=10.0), "7d")}
        assert cards["total-cost"].change.text == "+10.0% vs previous 7 days"
        assert cards["total-cost"].change.tone == "bad" and cards["llm-calls"].change.tone == "good"
        assert cards["llm-calls"].value == "1,100"
        cards = {k.key: k for k in kpis.overview_cards(overview(100, errors=5), overview(100, errors=2), "24h")}
        assert cards["fail-rate"].change.text == "+3.0 pp vs previous 24 hours"  # a rate moves in points
        none = {k.key: k for k in kpis.overview_cards(overview(0), overview(0), "1h")}
        assert none["llm-calls"].change.direction == "none"
    with translation.override("ko"):
        cards = {k.key: k for k in kpis.overview_cards(overview(1100, cost=11.0), overview(1000, cost=10.0), "7d")}
        assert cards["total-cost"].label == "전체 비용" and cards["total-cost"].change.text == "이전 7일 대비 +10.0%"


def test_each_card_with_a_series_has_a_trend_line():
    cards = {k.key: k for k in kpis.overview_cards(overview(11), overview(0), "24h", series([4, 2, 5], [1, 0, 0]))}
    # Avg latency has no timed call in any bucket here: no line rather than a line of zeros.
    assert {k for k, c in cards.items() if c.trend} == {"total-cost", "llm-calls", "agent-calls", "fail-rate"}
    line = cards["llm-calls"].trend["line"].split()
    assert len(line) == 3 and line[2].startswith("120,")  # the last bucket at the right edge
    assert charts.sparkline([1.0]) is None


def test_trend_lines_follow_each_cards_rule_per_bucket():
    s = series([4, 0, 6], [1, 0, 0])
    s.runs[:] = [1, 0, 4]
    s.failed_runs[:] = [1, 0, 0]
    s.extra["timed_calls"][:] = [4, 0, 6]
    s.extra["duration_ns"][:] = [4 * 500_000_000, 0, 6 * 1_000_000_000]
    assert s.avg_latency_ms() == [500.0, None, 1000.0]
    cards = {k.key: k for k in kpis.overview_cards(overview(10, 5), overview(0), "24h", s)}
    # Fail rate per bucket: (1 + 1) / (4 + 1) = 40 %, nothing in the second bucket (no point), 0 %.
    fail = cards["fail-rate"].trend["line"].split()
    assert [p.split(",")[0] for p in fail] == ["0", "120"]  # the empty bucket is left out
    assert float(fail[0].split(",")[1]) < float(fail[1].split(",")[1])  # 40 % sits higher than 0 %
    latency = cards["avg-latency"].trend["line"].split()
    assert len(latency) == 2 and latency[1].startswith("120,")
    runs = cards["agent-calls"].trend["line"].split()
    assert len(runs) == 3 and runs[2].split(",")[1] == "2"  # the busiest bucket at the top
    assert charts.sparkline([None, 3.0])["dot"] == (120, 2)  # a lone value is a dot where its bucket is
    assert charts.sparkline([None, None]) is None


def every_chart():
    """Each chart of the portal drawn from small inputs, in each bucket size (hand-made rows: the
    charts never run a query)."""
    from monitoring.queries.breakdowns import Share
    from monitoring.queries.latency import Latency, LatencyBin

    drawn = {}
    for bucket in ("minute", "hour", "day"):
        s = series([4, 2, 5], [1, 0, 1], bucket)
        s.values["input_tokens"]["m"] = [100, 50, 70]
        s.values["output_tokens"]["m"] = [10, 5, 7]
        s.extra.update(cache_read_tokens=[40, 0, 10], cache_write_tokens=[5, 5, 0])
        s.runs[:] = [2, 1, 3]
        s.failed_runs[:] = [1, 0, 0]
        colours = charts.model_colours(s.models)
        drawn |= {
            f"cost/{bucket}": charts.cost_trend(s, colours),
            f"tokens/{bucket}": charts.token_usage(s, colours),
            f"calls/{bucket}": charts.calls_and_errors(s),
            f"cache/{bucket}": charts.input_cache(s),
            f"runs/{bucket}": charts.agent_runs(s),
        }
    shares = [Share("m", 5, 1, 0.5, 100, 10, 10**9, 5), Share("other", 2, 0, 0.1, 10, 1, 0, 0, folded=3)]
    drawn["breakdown"] = charts.breakdown(shares, "model", {"m": "#4c6ef5"})
    drawn["latency"] = charts.latency_histogram(
        Latency((LatencyBin("<1s", 0, 1000, 3, 1), LatencyBin(">1s", 1000, None, 2, 0)))
    )
    nodes = [flow_q.FlowNode("agent:planner", count=3, roots=3), flow_q.FlowNode("llm:m", count=5, errors=1)]
    drawn["flow"] = charts.agent_flow(flow_q.FlowGraph(runs=3, nodes=nodes, edges={("agent:planner", "llm:m"): 5}))
    return drawn


def test_every_chart_is_a_figure_plotly_validates_unchanged():
    """Figures are made unvalidated for speed (monitoring/web/charts.py): here plotly's validators read
    each one, refusing a misspelt property, and must give back exactly what the page sends."""
    import json

    import plotly.graph_objects as go
    import pytest

    drawn = every_chart()
    assert all(drawn.values()), [name for name, fig in drawn.items() if not fig]
    for name, fig in drawn.items():
        validated = json.loads(go.Figure(fig).to_json())
        assert validated == json.loads(json.dumps(fig)), name
    with pytest.raises(ValueError, match="colour"):  # the check is real: a misspelt property fails it
        go.Figure({"data": [{"type": "bar", "x": [1], "marker": {"colour": "red"}}]})
