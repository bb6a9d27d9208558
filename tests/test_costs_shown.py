"""Costs read the same everywhere (issue 21): an unpriced call is never $0 (Overview's warning,
Analytics' By Model bars and Cost Trend, Replay Compare, the API and the exports), a tiny cost shows
the digits it needs (Top models, chart hovers, monitor texts), numbers are rounded, never cut, and
chart axes of short windows never repeat a label nor draw 0-4.8 % for a rate with no failures."""

import datetime as dt
import json
import re

import pytest
from conftest import api_token
from otlp import S, send

from monitoring.monitors import wording
from monitoring.web import charts, display

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
HOUR = {"from": "2025-03-01T10:00:00Z", "to": "2025-03-01T11:00:00Z"}


def chat(at, model, cost=None, **kw):
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
    }
    if cost is not None:
        attributes["gen_ai.cost.total_cost"] = cost
    return S("chat", at=at, ms=200, attributes=attributes, **kw)


@pytest.fixture
def tiny(client, project, ingest_key):
    """Two priced calls of fractions of a cent and one call of a model nobody priced."""
    send(
        client,
        ingest_key,
        chat(T0 + dt.timedelta(minutes=10), "gpt-4o", 0.000266),
        chat(T0 + dt.timedelta(minutes=20), "gpt-4o", 0.00015),
        chat(T0 + dt.timedelta(minutes=30), "house-llm-7b"),
    )


def get(client, project, path, **params) -> str:
    r = client.get(f"/admin/monitoring/{project.id}/{path}", {**HOUR, **params})
    assert r.status_code == 200
    return r.content.decode()


def figures(html: str) -> dict[str, dict]:
    return {
        m.group(1): json.loads(m.group(2))
        for m in re.finditer(r'<script id="(fig-[\w-]+)" type="application/json">(.*?)</script>', html, re.S)
    }


def test_numbers_are_rounded_not_cut():
    assert display.usd(0.000266, 4) == "$0.000266"  # was $0.0002: a column's places never hide a cost
    assert display.usd(0.00004, 4) != "$0.0000" and display.usd(0, 4) == "$0.0000"
    assert display.usd(2.675) == "$2.68" and display.usd(0.00026666) == "$0.000267"
    assert display.duration_ms(1.25) == "1.3 ms" and display.percent(0.03166, 2) == "3.17%"
    assert display.unpriced_usd(0.2538, 13) == "$0.2538 + 13 unpriced"
    assert display.unpriced_usd(0, 2) == "2 unpriced" and display.unpriced_usd(0.5, 0) == "$0.50"


def test_a_cost_monitor_writes_a_tiny_cost_with_its_digits():
    assert wording.value("cost_usd", 0.000266) == "$0.000266" and wording.value("cost_usd", 20) == "$20.00"


def test_overview_top_models_show_a_tiny_cost_and_the_warning_never_says_zero(client, alice, project, tiny):
    client.force_login(alice)
    html = get(client, project, "overview/")
    board = re.search(r'data-board="top-models">(.*?)</article>', html, re.S).group(1)
    assert "$0.000416" in board and "$0.0004<" not in board and "$0.0000" not in board
    cost = re.search(r'data-kpi="total-cost">(.*?)</article>', html, re.S).group(1)
    assert '<p class="value">$0.000416</p>' in cost
    assert "1 call has no price (house-llm-7b) and is not in the total" in cost and "as $0" not in cost


def test_an_overview_where_nothing_is_priced_reads_unpriced(client, alice, project, ingest_key):
    send(client, ingest_key, chat(T0 + dt.timedelta(minutes=5), "house-llm-7b"))
    client.force_login(alice)
    cost = re.search(r'data-kpi="total-cost">(.*?)</article>', get(client, project, "overview/"), re.S).group(1)
    assert '<p class="value">1 unpriced</p>' in cost


def test_analytics_never_draws_an_unpriced_call_as_zero(client, alice, project, tiny):
    client.force_login(alice)
    html = get(client, project, "analytics/")
    assert re.search(r'data-total="cost_usd">\$0.000416 \+ 1 unpriced<', html)
    assert "1 call without a price is not in the bars" in html
    figs = figures(html)
    trend = figs["fig-cost-trend"]
    bars = [t for t in trend["data"] if t["type"] == "bar"]
    hovers = [text for t in bars for text in t["customdata"] if text != "$0"]
    assert sorted(hovers) == ["$0.00015", "$0.000266"]  # was "$%{y:,.4f}": $0.0003, $0.0002
    (marks,) = [t for t in trend["data"] if t["name"] == "unpriced"]
    assert marks["customdata"].count("1 unpriced") == 1 and marks["mode"] == "markers"
    # Ticks of a $0.000266 axis differ in their digits (",.4~f" labelled 0.00015 and 0.0002 alike).
    decimals = int(re.match(r",\.(\d+)~f", trend["layout"]["yaxis"]["tickformat"]).group(1))
    assert decimals >= 5
    # No failures: the error-rate axis is a fixed 0-100 %, not 0-4.8 %.
    rate_axis = figs["fig-calls-errors"]["layout"]["yaxis2"]
    assert rate_axis["range"] == [0, 1] and rate_axis["tickformat"] == ".0%"
    part = (
        re.search(r'hx-get="([^"]+/analytics/breakdowns[^"]*)" hx-trigger="load"', html).group(1).replace("&amp;", "&")
    )
    by_model = figures(client.get(part).content.decode())
    (fig,) = [f for name, f in by_model.items() if "model" in name]
    cost_bars = fig["data"][0]
    labels = dict(zip([y.strip() for y in cost_bars["y"]], cost_bars["text"], strict=True))
    assert labels == {"gpt-4o": "$0.000416", "house-llm-7b": "1 unpriced"}
    assert all("$0 " not in h and not h.endswith("$0") for h in cost_bars["customdata"])


def test_the_api_and_the_export_leave_an_unpriced_cost_empty(client, alice, project, tiny):
    token = api_token("alice")
    auth = {"Authorization": f"Bearer {token}"}
    base = f"/api/v1/projects/{project.id}"
    r = client.get(f"{base}/traces", {**HOUR, "kind": "llm"}, headers=auth)
    assert r.status_code == 200, r.content
    items = {i["model"]: i for i in r.json()["items"]}
    assert items["house-llm-7b"]["cost_usd"] is None and items["house-llm-7b"]["cost_source"] == "unpriced"
    series = client.get(f"{base}/timeseries", HOUR, headers=auth).json()
    assert sum(p["unpriced_calls"] for p in series["points"]) == 1
    client.force_login(alice)
    csv = client.get(f"/admin/monitoring/{project.id}/traces/export.csv", {**HOUR, "kind": "llm"})
    text = b"".join(csv.streaming_content).decode()
    (row,) = [line for line in text.splitlines() if "house-llm-7b" in line]
    assert ",,unpriced," in row


def test_replay_compare_says_unpriced_not_zero(client, alice, project, ingest_key):
    runs = []
    for i in range(2):
        root = S(
            "invoke_agent text2sql",
            at=T0 + dt.timedelta(minutes=i),
            attributes={"gen_ai.operation.name": "invoke_agent"},
        )
        call = chat(T0 + dt.timedelta(minutes=i), "house-llm-7b")
        call.trace, call.parent = root.trace, root.span_id
        send(client, ingest_key, root, call)
        runs.append(root.trace.hex())
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/replay/compare/", {"run": runs, **HOUR})
    assert r.status_code == 200
    html = r.content.decode()
    assert "· $0 ·" not in html and "data-unpriced" in html and "1 unpriced" in html


def test_chart_axes_have_the_digits_their_ticks_need():
    assert charts._usd_axis(0.0009)["tickformat"] == ",.5~f"
    assert charts._usd_axis(12.0)["tickformat"] == ",.2~f"
    assert charts._rate_axis(0) == {"range": [0, 1], "tickformat": ".0%", "dtick": 0.25}
    assert charts._rate_axis(0.002)["range"] == [0, 0.05]
    assert charts._rate_axis(0.002)["tickformat"] == ".1~%"  # 0.5 % steps
