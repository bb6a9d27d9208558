"""Scores where decisions are made (issue 20, item 4): each score's trend, distribution and breakdowns
(Analytics and GET …/scores/summary), the Overview's quality card, the monitors' score metrics and
the exports' scores — against the real engine (chdb), exact numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from conftest import api_token
from otlp import S, send
from test_quality import evaluation, logs_request, post_logs

from monitoring.models import Membership
from monitoring.quality.models import ScoreConfig
from monitoring.queries import quality as quality_q
from monitoring.queries.filter import SpanFilter, Window
from monitoring.semantics import settle

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
EARLY = NOW - dt.timedelta(hours=3)  # another hour bucket of a 24 h window than LATE
LATE = NOW - dt.timedelta(minutes=20)
BEFORE = NOW - dt.timedelta(hours=30)  # the previous 24 h window
AGENT = {"openinference.span.kind": "AGENT"}


def agent_run(agent: str, service: str, model: str, *, at=LATE, response_id="") -> tuple[S, S]:
    root = S(agent, service=service, at=at, ms=500, attributes=AGENT)
    call = root.child(
        f"chat {model}",
        at=at + dt.timedelta(milliseconds=10),
        ms=50,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            **({"gen_ai.response.id": response_id} if response_id else {}),
        },
    )
    return root, call


def api_score(client, token, project, *, trace: S, span: S | None = None, **body):
    body = {"trace_id": trace.trace.hex(), **body}
    if span is not None:
        body["span_id"] = span.span_id.hex()
    made = client.post(
        f"/api/v1/projects/{project.id}/scores",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201, made.content


@pytest.fixture
def scored(client, alice, project, ingest_key):
    """Three settled runs with evaluations at two times, a categorical verdict and thumbs:

    relevance (evaluation events): call of A 0.9 and run B 0.2 at EARLY; call of B 0.4 and, by
    response id only, call of C 0.6 at LATE; run D 0.1 in the previous window.
    verdict (API): A pass, B fail, C pass. feedback (API): A down, B up, C up, A up (a second token
    user is not needed: API scores do not replace each other)."""
    a = agent_run("support_agent", "agent-support", "gpt-4o")
    b = agent_run("billing_agent", "agent-billing", "claude-3-5-sonnet")
    c = agent_run("support_agent", "agent-support", "gpt-4o", response_id="resp-c")
    d = agent_run("support_agent", "agent-support", "gpt-4o", at=BEFORE)
    for root, call in (a, b, c, d):
        send(client, ingest_key, root, call)
    settle.settle_once()
    events = [
        evaluation(a[1], "relevance", value=0.9, at=EARLY),
        evaluation(b[0], "relevance", value=0.2, at=EARLY),
        evaluation(b[1], "relevance", value=0.4, at=LATE),
        evaluation(None, "relevance", value=0.6, response_id="resp-c", at=LATE),
        evaluation(d[0], "relevance", value=0.1, at=BEFORE),
    ]
    assert post_logs(client, ingest_key, logs_request(*events)).status_code == 200
    from monitoring.quality import scores as writes

    assert writes.place_loose() == 1  # C's, named by response id only, onto C's call
    token = api_token("alice")
    for run, label in ((a, "pass"), (b, "fail"), (c, "pass")):
        api_score(client, token, project, trace=run[0], name="verdict", label=label)
    for run, value in ((a, 0), (b, 1), (c, 1), (a, 1)):
        api_score(client, token, project, trace=run[0], name="feedback", value=value)
    return {"a": a, "b": b, "c": c, "d": d, "token": token}


def day(project, **kw) -> SpanFilter:
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)  # the API's scores are given at the time of asking
    return SpanFilter(str(project.id), Window(end - dt.timedelta(hours=24), end, "24h"), **kw)


def test_a_scores_summary_has_its_trend_distribution_and_breakdowns(scored, project):
    found = quality_q.summary(day(project), "relevance")
    assert (found.bucket, found.count, found.mean, found.failing) == ("hour", 4, 0.525, 2)
    trend = {t: (m, n) for t, m, n in zip(found.times, found.trend, found.counts, strict=True) if n}
    hour = lambda t: t.replace(minute=0, second=0)  # noqa: E731
    assert trend == {hour(EARLY): (0.55, 2), hour(LATE): (0.5, 2)}
    assert len(found.times) in (24, 25)
    # No config: ten bins over the values' own [0.2, 0.9].
    assert [b.count for b in found.histogram] == [1, 0, 1, 0, 0, 1, 0, 0, 0, 1]
    assert (found.histogram[0].low, found.histogram[-1].high) == (0.2, 0.9)
    as_rows = {dim: [(g.key, g.count, g.mean, g.failing) for g in groups] for dim, groups in found.breakdowns.items()}
    assert as_rows == {
        "model": [("claude-3-5-sonnet", 2, 0.3, 2), ("gpt-4o", 2, 0.75, 0)],
        "agent": [("billing_agent", 2, 0.3, 2), ("support_agent", 2, 0.75, 0)],
        "service": [("agent-billing", 2, 0.3, 2), ("agent-support", 2, 0.75, 0)],
    }
    # A config's range sets the bins; labels make a categorical distribution.
    in_range = quality_q.summary(day(project), "relevance", bounds=(0.0, 1.0))
    assert [b.count for b in in_range.histogram] == [0, 0, 1, 0, 1, 0, 1, 0, 0, 1]
    verdict = quality_q.summary(day(project), "verdict")
    assert (verdict.kind, verdict.labels, verdict.failing) == ("labels", [("pass", 2), ("fail", 1)], 1)
    thumbs = quality_q.summary(day(project), "feedback", kind="boolean")
    assert (thumbs.labels, thumbs.mean, thumbs.failing) == ([("1", 3), ("0", 1)], 0.75, 0)
    # The filter bar narrows by the score's model and service.
    claude = quality_q.summary(day(project, models=("claude-3-5-sonnet",)), "relevance")
    assert (claude.count, claude.mean) == (2, 0.3)
    assert quality_q.names(day(project)) == ["feedback", "relevance", "verdict"]  # most given, then by name


def test_the_score_summary_api_answers_trend_distribution_and_breakdowns(client, alice, charlie, project, scored):
    url = f"/api/v1/projects/{project.id}/scores/summary"
    client.force_login(alice)
    data = client.get(url, {"name": "relevance", "range": "24h"}).json()
    assert (data["name"], data["bucket"], data["tz"], data["count"], data["mean"], data["failing"]) == (
        "relevance", "hour", "UTC", 4, 0.525, 2,
    )  # fmt: skip
    assert [(p["mean"], p["count"]) for p in data["trend"] if p["count"]] == [(0.55, 2), (0.5, 2)]
    assert data["distribution"]["kind"] == "histogram" and data["distribution"]["labels"] == []
    assert [b["count"] for b in data["distribution"]["bins"]] == [1, 0, 1, 0, 0, 1, 0, 0, 0, 1]
    assert data["breakdowns"]["agent"] == [
        {"key": "billing_agent", "count": 2, "mean": 0.3, "failing": 2},
        {"key": "support_agent", "count": 2, "mean": 0.75, "failing": 0},
    ]
    # A config: its range sets the bins and its pass mark the failing (0..10: everything is below 5).
    ScoreConfig.objects.create(project=project, name="relevance", data_type="numeric", min_value=0, max_value=10)
    data = client.get(url, {"name": "relevance", "range": "24h", "tz": "Asia/Seoul"}).json()
    assert [b["count"] for b in data["distribution"]["bins"]] == [4, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert data["failing"] == 4 and data["tz"] == "Asia/Seoul" and data["trend"][0]["t"].endswith("+09:00")
    thumbs = client.get(url, {"name": "feedback", "range": "24h"}).json()  # boolean without a config
    assert thumbs["distribution"]["labels"] == [{"label": "1", "count": 3}, {"label": "0", "count": 1}]
    verdict = client.get(url, {"name": "verdict", "range": "24h", "service": "agent-billing"}).json()
    assert verdict["distribution"]["labels"] == [{"label": "fail", "count": 1}] and verdict["failing"] == 1
    # Bad input: a clear 400; another project's member: 404; a token reads too.
    assert client.get(url, {"range": "24h"}).status_code == 400
    assert "'name'" in client.get(url, {"range": "24h"}).json()["error"]
    assert client.get(url, {"name": "relevance", "range": "2y"}).status_code == 400
    token = scored["token"]
    assert client.get(url, {"name": "relevance"}, headers={"Authorization": f"Bearer {token}"}).json()["count"] == 4
    client.force_login(charlie)
    assert client.get(url, {"name": "relevance"}).status_code == 404


def test_the_analytics_tab_shows_each_scores_trend_distribution_and_breakdowns(client, alice, bob, project, scored):
    client.force_login(bob)  # a member
    tab = client.get(f"/admin/monitoring/{project.id}/analytics/", {"range": "24h"}).content.decode()
    assert 'data-lazy="scores"' in tab
    page = client.get(f"/admin/monitoring/{project.id}/analytics/scores", {"range": "24h"})
    html = page.content.decode()
    assert page.status_code == 200
    for i in range(3):  # feedback, relevance, verdict: the most given first
        assert f'data-panel="score-{i}-trend"' in html and f'data-chart="fig-score-{i}-distribution"' in html
    assert 'data-breakdowns="relevance"' in html and '<tr data-key="billing_agent">' in html
    assert "mean 0.525 · 4 scores · 2 failing" in html
    assert 'data-panel="score-3-trend"' not in html
    empty = client.get(
        f"/admin/monitoring/{project.id}/analytics/scores",
        {"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"},
    ).content.decode()
    assert 'data-empty="scores"' in empty


def test_exports_carry_each_rows_scores(client, alice, project, scored):
    a_call, b_call = scored["a"][1], scored["b"][1]
    client.force_login(alice)
    url = f"/admin/monitoring/{project.id}/traces/export"
    body = b"".join(client.get(f"{url}.csv", {"kind": "llm", "range": "7d"}).streaming_content).decode()
    rows = {r["span_id"]: r["scores"] for r in csv.DictReader(io.StringIO(body))}
    assert json.loads(rows[a_call.span_id.hex()]) == {"relevance": {"value": 0.9, "label": "", "count": 1}}
    assert json.loads(rows[b_call.span_id.hex()]) == {"relevance": {"value": 0.4, "label": "", "count": 1}}
    assert json.loads(rows[scored["c"][1].span_id.hex()]) == {"relevance": {"value": 0.6, "label": "", "count": 1}}
    assert rows[scored["d"][1].span_id.hex()] == ""  # no score of its own
    data = json.loads(b"".join(client.get(f"{url}.json", {"kind": "all", "range": "7d"}).streaming_content))
    by_span = {r["span_id"]: r["scores"] for r in data["items"]}
    assert by_span[b_call.span_id.hex()] == {"relevance": {"value": 0.4, "label": "", "count": 1}}
    # The root span's own evaluation; the run's verdict (given to the trace, no span) is on the runs list.
    assert by_span[scored["b"][0].span_id.hex()] == {"relevance": {"value": 0.2, "label": "", "count": 1}}
    # The list's score filter holds in the export too.
    low = json.loads(
        b"".join(
            client.get(f"{url}.json", {"kind": "llm", "range": "7d", "score": "relevance:lt:0.5"}).streaming_content
        )
    )
    assert [r["span_id"] for r in low["items"]] == [b_call.span_id.hex()]


def test_the_overview_has_a_quality_card_and_the_api_its_numbers(client, alice, project, other_project, scored):
    client.force_login(alice)
    page = client.get(f"/admin/monitoring/{project.id}/overview/", {"range": "24h"}).content.decode()
    card = page[page.index('data-kpi="quality"') :]
    card = card[: card.index("</article>")]
    # A, B and C have evaluations (relevance events, the API's verdicts); B fails (0.2, 0.4, "fail").
    assert '<p class="value">33.3%</p>' in card and "1 of 3 scored runs fail their evaluations" in card
    assert 'data-change="new"' in card and "fewer than 20 scored runs" in card  # the previous window: D alone
    assert 'data-kpi-line="negative-feedback"' in card and "<strong>25.0%</strong>" in card
    assert "1 of 4 thumbs down" in card
    data = client.get(f"/api/v1/projects/{project.id}/overview", {"range": "24h"}).json()
    assert data["quality"] == {
        "scored_runs": 3,
        "failing_runs": 1,
        "fail_share": 0.333333,
        "feedback": 4,
        "negative_feedback": 1,
        "negative_feedback_rate": 0.25,
        "previous": {
            "scored_runs": 1,
            "failing_runs": 1,
            "fail_share": 1.0,
            "feedback": 0,
            "negative_feedback": 0,
            "negative_feedback_rate": 0.0,
        },
    }
    assert data["llm_calls"] == 3 and data["agent_calls"] == 3  # the existing fields are unchanged
    # A lower-is-better config fails what lies above its mark: C's toxicity 0.7 of 0..1.
    ScoreConfig.objects.create(
        project=project, name="toxicity", data_type="numeric", min_value=0, max_value=1, higher_is_better=False
    )
    api_score(client, scored["token"], project, trace=scored["c"][0], name="toxicity", value=0.7)
    api_score(client, scored["token"], project, trace=scored["a"][0], name="toxicity", value=0.3)
    quality = client.get(f"/api/v1/projects/{project.id}/overview", {"range": "24h"}).json()["quality"]
    assert (quality["scored_runs"], quality["failing_runs"]) == (3, 2)
    # A config's range moves the mark: relevance of 0..10 passes at 5, so A (0.9) fails too.
    ScoreConfig.objects.create(project=project, name="relevance", data_type="numeric", min_value=0, max_value=10)
    quality = client.get(f"/api/v1/projects/{project.id}/overview", {"range": "24h"}).json()["quality"]
    assert (quality["scored_runs"], quality["failing_runs"], quality["fail_share"]) == (3, 3, 1.0)
    # A project that scores nothing shows no card.
    Membership.objects.create(project=other_project, user=alice)
    other = client.get(f"/admin/monitoring/{other_project.id}/overview/", {"range": "24h"}).content.decode()
    assert 'data-kpi="total-cost"' in other and 'data-kpi="quality"' not in other


def test_the_quality_cards_changes_are_in_points_once_the_previous_window_has_enough():
    from monitoring.web import kpis

    now, before = quality_q.Quality(40, 10, 50, 5), quality_q.Quality(25, 5, 20, 8)
    card = kpis.quality_card(now, before, "7d")
    assert (card.key, card.value, card.change.text, card.change.direction, card.change.tone) == (
        "quality", "25.0%", "+5.0 pp vs previous 7 days", "up", "bad",
    )  # fmt: skip
    (line,) = card.lines
    assert (line.value, line.change.text, line.change.tone, line.detail) == (
        "10.0%", "-30.0 pp vs previous 7 days", "good", "5 of 50 thumbs down",
    )  # fmt: skip
    assert kpis.quality_card(quality_q.Quality(), quality_q.Quality(), "7d") is None


def test_score_monitors_fire_per_model_agent_and_project_through_the_channels(client, alice, project, scored, settings):
    from receivers import http_receiver

    settings.MONITOR_CHANNEL_ALLOWED_NETWORKS = ["127.0.0.1"]  # the webhook receiver below listens on loopback

    from monitoring.monitors import evaluation
    from monitoring.monitors.models import Channel, Delivery, Event, Monitor

    def monitor(**kw) -> Monitor:
        fields = {"window_minutes": 1440, "condition": "above", "threshold": 40.0, "metric": "score_fail_share"}
        return Monitor.objects.create(project=project, name=kw.get("metric", "score"), **(fields | kw))

    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    with http_receiver() as hook:
        channel = Channel.objects.create(project=project, name="hook", kind=Channel.WEBHOOK)
        channel.set_url(hook.url + "/hook")
        channel.save()
        low = monitor(metric="score_mean", score_name="relevance", group_by="model", condition="below", threshold=0.5)
        low.channels.add(channel)
        per_agent = monitor(group_by="agent")  # every evaluation: relevance and verdict
        whole = monitor(min_samples=8)  # 7 evaluations: too few
        thumbs = monitor(metric="score_mean", score_name="feedback", condition="below", threshold=0.8)
        outcomes = {o.monitor_id: o for o in evaluation.run_once(at)}
        assert outcomes[low.pk].fired == ["claude-3-5-sonnet"]  # mean 0.3; gpt-4o's is 0.75
        assert outcomes[per_agent.pk].fired == ["billing_agent"]  # 3 of 3 fail; support_agent 0 of 4
        assert outcomes[whole.pk].fired == [] and outcomes[thumbs.pk].fired == [""]  # 3 up of 4: 0.75
        fired = Event.objects.get(monitor=low, kind=Event.FIRED)
        assert (fired.group, fired.value, fired.sample) == ("claude-3-5-sonnet", 0.3, 2)
        assert Delivery.objects.get(event=fired).state == "sent" and len(hook.received) == 1
        body = json.loads(hook.received[0].body)
        assert (body["monitor"]["metric"], body["monitor"]["score_name"], body["group"]) == (
            "score_mean", "relevance", "claude-3-5-sonnet",
        )  # fmt: skip
        assert body["text"] == "model claude-3-5-sonnet: Average score (relevance) is 0.300"
    for m, value, sample in ((per_agent, 100.0, 3), (whole, 42.857143, 7)):
        m.refresh_from_db()
        assert (m.last_value, m.last_sample) == (value, sample), m
    # The form says what a score metric needs.
    from monitoring.monitors.forms import MonitorForm

    base = {"name": "x", "window_minutes": 60, "condition": "above", "threshold": 1, "min_samples": 1}
    form = MonitorForm({**base, "metric": "score_mean", "group_by": "agent"}, project=project)
    assert not form.is_valid() and "score_name" in form.errors
    form = MonitorForm({**base, "metric": "cost_usd", "group_by": "agent"}, project=project)
    assert not form.is_valid() and "group_by" in form.errors
    form = MonitorForm({**base, "metric": "score_fail_share", "group_by": "agent"}, project=project)
    assert form.is_valid(), form.errors


def test_the_score_charts_are_figures_plotly_validates_unchanged():
    """As tests/test_ux_charts.py checks the others: plotly's validators give back what the page sends."""
    import plotly.graph_objects as go

    from monitoring.web import charts

    times = [NOW - dt.timedelta(hours=2), NOW - dt.timedelta(hours=1), NOW]
    numeric = quality_q.Summary(
        "relevance", "hour", times, [0.5, None, 0.75], [2, 0, 4], count=6, mean=0.6667,
        histogram=quality_q.binned_histogram({2: 1, 9: 5}, 0.0, 1.0),
    )  # fmt: skip
    labelled = quality_q.Summary(
        "verdict", "hour", times, [None] * 3, [1, 0, 2], count=3, labels=[("pass", 2), ("", 1)]
    )
    drawn = {
        "trend": charts.score_trend(numeric),
        "histogram": charts.score_distribution(numeric),
        "labels": charts.score_distribution(labelled),
        "label trend": charts.score_trend(labelled),
    }
    assert [t["name"] for t in drawn["label trend"]["data"]] == ["scores"]  # no mean to draw
    assert drawn["histogram"]["data"][0]["y"] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 5]
    assert drawn["labels"]["data"][0]["x"] == ["pass", "(no label)"]
    for name, fig in drawn.items():
        assert json.loads(go.Figure(fig).to_json()) == json.loads(json.dumps(fig)), name
    assert charts.score_trend(quality_q.Summary("x", "hour", times, [None] * 3, [0] * 3)) is None


@pytest.fixture(scope="module")
def native_port(tmp_path_factory):
    from native_server import start_native_server, stop_native_server

    try:
        proc, port = start_native_server(str(tmp_path_factory.mktemp("native-quality")))
    except RuntimeError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"cannot serve the engine over the native protocol here: {exc}")
    yield port
    stop_native_server(proc)


def test_a_server_over_the_native_protocol_answers_as_the_embedded_engine(settings, project, native_port):
    """The score reads (joins, typed array parameters, FINAL) in server mode (clickhouse-driver to a
    served engine on 127.0.0.1) give the embedded engine's numbers."""
    from demo import traffic
    from monitoring.ingest import otlp
    from monitoring.monitors import metrics
    from monitoring.quality import scores as writes
    from monitoring.queries import runs as runs_q
    from monitoring.semantics import scoping
    from monitoring.store import clickhouse, schema

    settings.SETTLE_FRESH_SECONDS = 1e12  # settled facts only: what the settler stored
    requests = [req for req, _ in traffic.generate_requests(days=1, runs_per_day=12, seed=7, now=NOW)]
    marks = (quality_q.pass_mark("relevance", 0, 10, True),)

    def answers() -> dict:
        schema.ensure_schema(ttl_days=0)
        for req in requests:
            rows, _ = otlp.rows_from_request(req, str(project.id))
            clickhouse.insert(
                schema.table(), schema.TRACE_COLUMNS, rows, tag="test.load", nanos_columns=schema.NANOS_COLUMNS
            )
        scoping.forget_state()
        settle.settle_once()
        flt = day(project)
        found = runs_q.list_runs(flt, runs_q.RunQuery(limit=500)).items
        for i, run in enumerate(sorted(found, key=lambda r: r.trace_id)):
            target = writes.Target(trace_id=run.trace_id)
            writes.record(project, target, "relevance", value=float(i % 10), source="api", author="t", score_id=f"r{i}")
            writes.record(
                project,
                target,
                "verdict",
                label="fail" if i % 3 else "pass",
                source="api",
                author="t",
                score_id=f"v{i}",
            )
        flt = day(project)
        summary = quality_q.summary(flt, "relevance", marks, bounds=(0.0, 10.0))
        question = metrics.Question(flt, "model", latency=False, scores=True, score_name="", marks=marks)
        return {
            "runs": len(found),
            "summary": summary.as_dict(),
            "verdict": quality_q.summary(flt, "verdict", marks).as_dict(),
            "quality": quality_q.quality(flt, marks)[0].as_dict(),
            "monitor": metrics.measure(question),
        }

    base = settings.CLICKHOUSE
    settings.CLICKHOUSE = {**base, "DATABASE": "otel_quality_embedded"}
    try:
        embedded = answers()
        settings.CLICKHOUSE = {**base, "HOST": "127.0.0.1", "PORT": native_port, "DATABASE": "otel_quality_server"}
        served = answers()
    finally:
        settings.CLICKHOUSE = base
        scoping.forget_state()
    # How many of the day's 12 generated runs start inside the last 24 h depends on the hour it is run.
    assert embedded["runs"] >= 3 and embedded["summary"]["count"] == embedded["runs"]
    assert embedded["quality"]["scored_runs"] == embedded["runs"] and embedded["monitor"]
    for key in embedded:
        if key != "summary":
            assert served[key] == embedded[key], key
    # The trend's bucket times are made per call; the rest must match exactly.
    for key in ("count", "mean", "failing", "distribution", "breakdowns"):
        assert served["summary"][key] == embedded["summary"][key], key
