"""One number per question per page, and one rule for buckets and comparisons (issue 21): an end
user's cost line adds up to their Cost; a 60-hour window is drawn in hours everywhere; a card with
nothing to compare with says "new" when its window has data, Fail Rate included."""

import datetime as dt
import re

import pytest
from conftest import api_token
from otlp import S, send

from monitoring.queries import timeseries as timeseries_q
from monitoring.web.forms import SpanFilter, Window

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 1, 0, 0, tzinfo=dt.UTC)
WEEK = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-08T00:00:00Z"}


def chat(at, model="gpt-4o", cost=None, user="kim", **kw):
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
        "user.id": user,
    }
    if cost is not None:
        attributes["gen_ai.cost.total_cost"] = cost
    return S("chat", at=at, ms=200, attributes=attributes, **kw)


def test_an_end_users_cost_line_adds_up_to_their_cost(client, alice, project, ingest_key):
    """The summary counted every call of theirs; the line under it only their runs' calls ($0.227
    beside $0.2538 + 13 unpriced): now both are their calls over the window."""
    root = S(
        "invoke_agent text2sql",
        at=T0 + dt.timedelta(days=1),
        attributes={"gen_ai.operation.name": "invoke_agent", "user.id": "kim"},
    )
    in_run = chat(T0 + dt.timedelta(days=1), cost=0.01)
    in_run.trace, in_run.parent = root.trace, root.span_id
    send(
        client,
        ingest_key,
        root,
        in_run,
        chat(T0 + dt.timedelta(days=2), cost=0.02),  # a plain gateway call of theirs, in no run
        chat(T0 + dt.timedelta(days=3), model="house-llm-7b"),  # no price
    )
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/traces/users/", {**WEEK, "user": "kim"}).content.decode()
    summary = re.search(r'data-summary="cost"><dt>Cost</dt><dd>(.*?)</dd>', html, re.S).group(1)
    assert summary.startswith("$0.03 ") and "+1 unpriced" in summary
    line = re.search(r"data-cost-line>(.*?)</section>", html, re.S).group(1)
    assert "Cost of their calls" in line
    assert "$0.03 + 1 unpriced in this window · busiest bucket $0.02" in line


def window(hours: float) -> SpanFilter:
    return SpanFilter("p", Window(T0, T0 + dt.timedelta(hours=hours)))


def test_one_bucket_rule_gives_every_window_enough_points():
    assert [timeseries_q.bucket_for(window(h)) for h in (1, 2.9, 3, 24, 60, 71, 72, 168, 720)] == [
        "minute",
        "minute",  # was "hour": 2 points
        "hour",
        "hour",
        "hour",  # was "day": 3 sparkline points
        "hour",
        "day",
        "day",
        "day",
    ]


def test_a_60_hour_window_is_drawn_in_hours_on_every_page_and_in_the_api(client, alice, project, ingest_key):
    send(client, ingest_key, *[chat(T0 + dt.timedelta(hours=h, minutes=5)) for h in range(0, 60, 5)])
    sixty = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-03T12:00:00Z"}
    client.force_login(alice)
    overview = client.get(f"/admin/monitoring/{project.id}/overview/", sixty).content.decode()
    card = re.search(r'data-kpi="llm-calls">(.*?)</article>', overview, re.S).group(1)
    assert "per hour" in card
    points = re.search(r'class="spark-line"[^>]*points="([^"]+)"|points="([^"]+)"[^>]*class="spark-line"', card)
    assert len((points.group(1) or points.group(2)).split()) == 60
    analytics = client.get(f"/admin/monitoring/{project.id}/analytics/", sixty).content.decode()
    assert "USD per hour, by model" in analytics
    api = client.get(
        f"/api/v1/projects/{project.id}/timeseries", sixty, headers={"Authorization": f"Bearer {api_token('alice')}"}
    ).json()
    assert api["bucket"] == "hour" and len(api["points"]) == 60


def test_every_card_says_new_when_its_window_has_data_and_the_previous_has_none(client, alice, project, ingest_key):
    send(client, ingest_key, *[chat(T0 + dt.timedelta(minutes=m)) for m in range(5, 50, 10)])  # none fails
    client.force_login(alice)
    hour = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-01T01:00:00Z"}
    html = client.get(f"/admin/monitoring/{project.id}/overview/", hour).content.decode()
    changes = dict(re.findall(r'data-kpi="([\w-]+)">.*?data-change="(\w+)"', html, re.S))
    # One rule: nothing to compare with, data in this window -> "new" on every card (Fail Rate said "no data").
    assert changes == dict.fromkeys(("total-cost", "llm-calls", "agent-calls", "avg-latency", "fail-rate"), "new")
    fail = re.search(r'data-kpi="fail-rate">(.*?)</article>', html, re.S).group(1)
    assert "no data" not in fail and ">new<" in fail
    empty = client.get(
        f"/admin/monitoring/{project.id}/overview/", {"from": "2025-04-01T00:00:00Z", "to": "2025-04-01T01:00:00Z"}
    ).content.decode()
    assert "no data" in re.search(r'data-kpi="fail-rate">(.*?)</article>', empty, re.S).group(1)
