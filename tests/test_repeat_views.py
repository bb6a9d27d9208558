"""Repeat views from cache (issue 23, item 3): the same Overview or timeseries question asked again
while the project's data has not changed answers without asking ClickHouse; whatever changes the
answer (a settled span, a score, an evaluation event, a price, the project's settings) gives a fresh
one; another project, user, language or zone never gets another's answer; nothing is cached while
the settler does not keep up."""

import datetime as dt

import pytest
from otlp import S, send
from test_quality import evaluation, logs_request, post_logs

from monitoring.models import Membership, ModelPrice, UserPreference
from monitoring.quality import scores
from monitoring.quality.models import ScoreConfig
from monitoring.semantics import resettle, scoping, settle
from monitoring.store import clickhouse

pytestmark = pytest.mark.django_db

AT = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
CALL = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "qwen-235b",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 500,
}
# The settler's own reads: the only questions a cached answer may still ask (is it keeping up?).
SETTLER_TAGS = {"settle.state"}


@pytest.fixture(autouse=True)
def keeping_up(settings):
    """The test settings compute every trace live (SETTLE_FRESH_SECONDS = 0): here the settler keeps up."""
    settings.SETTLE_FRESH_SECONDS = 3600
    scoping.forget_state()


@pytest.fixture
def questions(monkeypatch):
    """The tags of the SELECTs asked of ClickHouse, other than the settler's state."""
    asked: list[str] = []

    def seen(tag, action, seconds, outcome):
        if action == "query" and tag not in SETTLER_TAGS:
            asked.append(tag)

    monkeypatch.setattr(clickhouse, "on_timed", seen)
    return asked


def _api(client, project, what="overview", **params):
    response = client.get(f"/api/v1/projects/{project.id}/{what}", {"range": "24h", **params})
    assert response.status_code == 200, response.content
    return response.json()


def _settled(client, ingest_key, *spans):
    send(client, ingest_key, *spans)
    settle.settle_once()


def test_a_repeat_answers_from_the_cache_and_a_settled_span_gives_a_fresh_one(
    client, project, ingest_key, alice, questions
):
    _settled(client, ingest_key, S("chat qwen-235b", service="app", at=AT, attributes=CALL))
    client.force_login(alice)
    first = _api(client, project)
    assert questions, "the first answer is computed"
    questions.clear()
    assert _api(client, project) == first
    assert questions == []
    series = _api(client, project, "timeseries")
    questions.clear()
    assert _api(client, project, "timeseries") == series and questions == []

    _settled(client, ingest_key, S("chat qwen-235b", service="app", at=AT, attributes=CALL))
    assert _api(client, project)["llm_calls"] == first["llm_calls"] + 1
    assert sum(p["llm_calls"] for p in _api(client, project, "timeseries")["points"]) == first["llm_calls"] + 1


def test_scores_evaluation_events_prices_and_settings_each_give_a_fresh_answer(
    client, project, ingest_key, alice, questions
):
    span = S("chat qwen-235b", service="app", at=AT, attributes=CALL)
    _settled(client, ingest_key, span)
    client.force_login(alice)

    def fresh() -> dict:
        questions.clear()
        found = _api(client, project)
        assert questions, "computed again"
        questions.clear()
        assert _api(client, project) == found and questions == [], "and cached again"
        return found

    unpriced = fresh()
    assert unpriced["unpriced_calls"] == 1
    scores.record(project, scores.Target(trace_id=span.trace.hex()), "helpful", value=1, source="api", author="alice")
    fresh()
    assert post_logs(client, ingest_key, logs_request(evaluation(span, "relevance", value=0.5))).status_code == 200
    fresh()
    ModelPrice.objects.create(project=project, model="qwen-235b", input_per_million=1, output_per_million=2)
    resettle.resettle_changed()
    priced = fresh()
    assert (priced["unpriced_calls"], priced["total_cost_usd"]) == (0, pytest.approx(1000e-6 + 500 * 2e-6))
    ScoreConfig.objects.create(project=project, name="relevance", data_type="numeric", min_value=0, max_value=1)
    fresh()
    project.name = "Renamed"
    project.save()
    fresh()


def test_another_project_user_language_or_zone_never_gets_anothers_answer(
    client, project, other_project, ingest_key, alice, bob, charlie, questions
):
    _settled(client, ingest_key, S("chat qwen-235b", service="app", at=AT, attributes=CALL))
    client.force_login(alice)
    mine = _api(client, project)
    client.force_login(charlie)
    assert client.get(f"/api/v1/projects/{project.id}/overview", {"range": "24h"}).status_code == 404
    Membership.objects.create(project=other_project, user=alice, role=Membership.VIEWER)
    client.force_login(alice)
    assert _api(client, other_project)["llm_calls"] == 0 != mine["llm_calls"]
    for login, params in ((bob, {}), (alice, {"tz": "Asia/Seoul"})):
        client.force_login(login)
        questions.clear()
        _api(client, project, **params)
        assert questions, f"{login} {params} computed its own answer"

    page = f"/admin/monitoring/{project.id}/overview/?range=24h"
    client.force_login(alice)
    assert client.get(page).status_code == 200
    UserPreference.objects.update_or_create(user=alice, defaults={"language": "ko"})
    questions.clear()
    korean = client.get(page)
    assert korean.status_code == 200 and any(t.startswith("overview") for t in questions)
    questions.clear()
    assert client.get(page).status_code == 200
    assert not any(t.startswith("overview") for t in questions), "the page's own part is cached"


def test_nothing_is_cached_while_pages_compute_unsettled_traces_live(
    client, project, ingest_key, alice, questions, settings
):
    _settled(client, ingest_key, S("chat qwen-235b", service="app", at=AT, attributes=CALL))
    settings.SETTLE_FRESH_SECONDS = 0
    scoping.forget_state()
    client.force_login(alice)
    _api(client, project)
    questions.clear()
    _api(client, project)
    assert questions


def test_analytics_tab_and_parts_repeat_from_the_cache_until_a_span_is_settled(
    client, project, ingest_key, alice, questions
):
    _settled(client, ingest_key, S("chat qwen-235b", service="app", at=AT, attributes=CALL))
    client.force_login(alice)
    base = f"/admin/monitoring/{project.id}/analytics"
    urls = [f"{base}/?range=24h", *(f"{base}/{part}?range=24h" for part in ("flow", "breakdowns", "scores"))]
    first = [client.get(url).content for url in urls]
    questions.clear()
    again = [client.get(url) for url in urls]
    assert [r.status_code for r in again] == [200] * 4
    assert not any(t.startswith(("analytics.", "breakdowns", "latency", "quality")) for t in questions), questions
    assert [r.content for r in again[1:]] == first[1:]  # the parts: the same bytes (the tab has a CSRF token)
    _settled(client, ingest_key, S("chat qwen-235b", service="app", at=AT, attributes=CALL))
    questions.clear()
    for url in urls:
        client.get(url)
    assert "analytics.timeseries" in questions and "analytics.agent_flow" in questions


def test_a_per_process_cache_in_front_of_a_clickhouse_server_caches_nothing(
    client, project, ingest_key, alice, questions, monkeypatch
):
    """Several workers with their own locmem cache would never see the settler's bumps."""
    _settled(client, ingest_key, S("chat qwen-235b", service="app", at=AT, attributes=CALL))
    monkeypatch.setattr(clickhouse, "is_embedded", lambda: False)
    client.force_login(alice)
    _api(client, project)
    questions.clear()
    _api(client, project)
    assert questions
