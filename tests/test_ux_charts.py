"""Charts and cards as they read: the error-rate axis stops at 100 %, Sankey labels get room, the
Overview says "new" instead of a change against a near-empty window, trend lines per card."""

import datetime as dt

from django.utils import translation

from monitoring import analytics, charts, kpis
from monitoring.queries import overview as queries


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
    return analytics.Timeseries(bucket, times, ("m",), values)


def test_the_error_rate_axis_stops_at_100_percent():
    fig = charts.calls_and_errors(series([4, 2, 5], [4, 0, 1]))
    assert fig["layout"]["yaxis2"]["range"] == [0, 1.0]
    fig = charts.calls_and_errors(series([10, 10], [1, 0]))
    assert fig["layout"]["yaxis2"]["range"][1] < 0.2


def test_the_flow_graph_gives_each_node_of_its_fullest_column_a_labels_height():
    nodes = [analytics.FlowNode(f"llm:model {i}", count=1, roots=1) for i in range(14)]
    flow = analytics.FlowGraph(runs=14, nodes=nodes, edges={})
    fig = charts.agent_flow(flow)
    (sankey,) = [t for t in fig["data"] if t["type"] == "sankey"]
    assert sankey["node"]["pad"] >= 16
    assert fig["layout"]["height"] >= 14 * (sankey["node"]["pad"] + 12)


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
    assert {k for k, c in cards.items() if c.trend} == {"total-cost", "llm-calls", "fail-rate"}
    line = cards["llm-calls"].trend["line"].split()
    assert len(line) == 3 and line[2].startswith("120,")  # the last bucket at the right edge
    assert charts.sparkline([1.0]) is None
