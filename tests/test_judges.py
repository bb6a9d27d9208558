"""LLM judges (issue 20, item 5): evaluators judge settled runs and LLM calls through a real LiteLLM
proxy whose `mock_response` deployments answer as judges; scores, idempotence, sampling, filters, the
cost cap, the switches, the backfill cap, failures and retries, judge spans kept out of the numbers,
and the pages — against the real engine (chdb)."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from conftest import require
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from litellm_proxy import litellm_available, start_litellm_proxy
from otlp import S, send

from monitoring.models import Project
from monitoring.quality import judges
from monitoring.quality.models import Evaluator, JudgeFailure, JudgeSettings, ScoreConfig
from monitoring.queries import judging
from monitoring.queries import scores as scores_q
from monitoring.semantics import settle
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

AT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=20)
AGENT = {"openinference.span.kind": "AGENT"}
GOOD = {"score": 0.8, "label": "pass", "explanation": "Answers the question."}
# Per call: the mock's usage is fixed, so a price per token makes an exact cost per judge call.
PRICES = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}


def _deployment(name: str, answer: str, **extra) -> dict:
    return {
        "model_name": name,
        "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "sk-mock", "mock_response": answer, **extra},
    }


CONFIG = {
    "model_list": [
        _deployment("judge-good", json.dumps(GOOD), **PRICES),
        _deployment("judge-yes", '```json\n{"score": true, "explanation": "Polite."}\n```', **PRICES),
        _deployment("judge-garbled", "I would rate it highly.", **PRICES),
        _deployment("judge-broken", "litellm.InternalServerError"),
    ],
    "litellm_settings": {"num_retries": 0},
}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    require(litellm_available(), "no LiteLLM venv (.venv-litellm); bin/setup --test installs it")
    started = start_litellm_proxy(CONFIG, {}, tmp_path_factory.mktemp("judge-proxy"))
    yield started
    started.stop()


@pytest.fixture
def gateway(proxy):
    with override_settings(LITELLM_BASE_URL=proxy.base_url, LITELLM_API_KEY=proxy.master_key):
        yield proxy


def agent_run(*, service="agent-support", agent="support_agent", model="gpt-4o", question="Where is my order?", at=AT):
    """An agent run: its root step and one chat call with its messages; returns (root, call)."""
    root = S(agent, service=service, at=at, ms=500, attributes=AGENT)
    call = root.child(
        "chat gpt-4o",
        at=at + dt.timedelta(milliseconds=10),
        ms=50,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": question}]}]),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "It ships today."}]}]
            ),
        },
    )
    return root, call


def config(project, name="helpfulness", **kw) -> ScoreConfig:
    kw.setdefault("data_type", ScoreConfig.NUMERIC)
    kw.setdefault("min_value", 0)
    kw.setdefault("max_value", 1)
    return ScoreConfig.objects.create(project=project, name=name, **kw)


def evaluator(project, score_config=None, **kw) -> Evaluator:
    kw.setdefault("name", "helpful")
    kw.setdefault("prompt", "Question: {{ input }}\nAnswer: {{ output }}\nAgent: {{ metadata.agent }}")
    kw.setdefault("model", "judge-good")
    return Evaluator.objects.create(project=project, score_config=score_config or config(project), **kw)


def judge_scores(project) -> list[scores_q.Score]:
    found = scores_q.listing(str(project.id), name="", start_ns=0)
    return sorted((s for s in found if s.source == "judge"), key=lambda s: (s.trace_id, s.span_id, s.score_id))


def all_scores(project) -> list[scores_q.Score]:
    rows = clickhouse.query(
        f"SELECT ScoreId FROM {schema.table(schema.SCORES)} FINAL WHERE ProjectId = {{p:String}} AND Source = 'judge'",
        {"p": str(project.id)},
        tag="test",
    )
    found = [scores_q.get(str(project.id), r["ScoreId"]) for r in rows]
    return sorted((s for s in found if s), key=lambda s: (s.trace_id, s.span_id, s.score_id))


def judge_spans(project) -> list[dict]:
    return clickhouse.query(
        f"SELECT StatusCode AS status, IsReplay AS replay, IsLLMCall AS llm, ReportedCost AS reported,"
        f" SpanAttributes['apm.judge.cost_usd'] AS cost, SpanAttributes['gen_ai.input.messages'] AS asked,"
        f" Links.TraceId AS linked FROM {schema.table()} WHERE ProjectId = {{p:String}} AND ServiceName = 'apm-judge'"
        " ORDER BY Timestamp",
        {"p": str(project.id)},
        tag="test",
    )


def runs_in(client, ingest_key, *runs) -> list[str]:
    """Send the runs, settle them, and return their trace ids in order."""
    for root, call in runs:
        send(client, ingest_key, root, call)
    settle.settle_once()
    return [root.trace.hex() for root, _ in runs]


# --- the answer and the prompt (no gateway) --------------------------------------------------------


def test_an_answer_is_parsed_leniently_and_checked_against_its_config(project):
    numeric = ScoreConfig(data_type=ScoreConfig.NUMERIC, min_value=0, max_value=1)
    assert judges.parse_answer(
        'Sure:\n```json\n{"score": "0.8", "label": "pass", "explanation": "ok"}\n```', numeric
    ) == (
        0.8,
        "pass",
        "ok",
    )
    boolean = ScoreConfig(data_type=ScoreConfig.BOOLEAN)
    assert judges.parse_answer('{"score": true}', boolean) == (1.0, "true", "")
    assert judges.parse_answer('{"label": "fail", "explanation": "rude"}', boolean) == (0.0, "fail", "rude")
    categorical = ScoreConfig(data_type=ScoreConfig.CATEGORICAL, categories="good, bad")
    assert judges.parse_answer('{"label": "bad", "explanation": "x"}', categorical) == (None, "bad", "x")
    for text, cfg in [
        ("no JSON here", numeric),
        ('{"score": 1.5}', numeric),
        ('{"score": "high"}', numeric),
        ('{"score": 0.5}', boolean),
        ('{"label": "ugly"}', categorical),
    ]:
        with pytest.raises(judges.Unparsable):
            judges.parse_answer(text, cfg)


def test_a_prompt_renders_its_fields_and_nothing_else():
    fields = {"input": "Q<", "output": "A", "agent": "bot", "metadata": {"agent": "bot"}}
    assert judges.render("{{ input }}|{{ output|upper }}|{{ metadata.agent }}", "django", fields) == "Q<|A|bot"
    assert judges.render("{input}|{agent}", "format", fields) == "Q<|bot"
    assert judges.render("{% if output %}{{ input|lower|truncatechars:5 }}{% endif %}", "django", fields) == "q<"
    assert judges.render("{input:>4}", "format", fields) == "  Q<"
    for prompt, syntax in [
        ("{% debug %}", "django"),
        ("{% load static %}", "django"),
        ('{% include "base.html" %}', "django"),
        ("{input.__class__}", "format"),
        ("{input[0]}", "format"),
        ("{nothing}", "format"),
        ('{{ input|ljust:"999999999" }}', "django"),
        ('{{ input|stringformat:"999999999s" }}', "django"),
        ("{input:>999999999}", "format"),
    ]:
        with pytest.raises(ValueError):
            judges.render(prompt, syntax, fields)


def test_the_score_id_is_the_same_in_python_and_in_clickhouse(project):
    expected = judging.judge_score_id(str(project.id), 7, 3, "ab" * 16, "cd" * 8)
    row = clickhouse.query_one(
        "SELECT substring(lower(hex(SHA256(concat({prefix:String}, {t:String}, '\\x1f', {s:String})))), 1, 32) AS id",
        {"prefix": "\x1f".join(["judge", str(project.id), "7", "3", ""]), "t": "ab" * 16, "s": "cd" * 8},
        tag="test",
    )
    assert row["id"] == expected and len(expected) == 32


def test_a_change_of_what_judges_bumps_the_version(project):
    ev = evaluator(project)
    ev.checked_through_ns = 123
    ev.sampling_rate, ev.services = 0.5, "a"
    ev.save()
    assert (ev.version, ev.checked_through_ns) == (1, 123)  # what is judged, not how: same version
    for change in [{"prompt": "Rate {{ output }}"}, {"model": "judge-yes"}, {"target": Evaluator.CALL}]:
        for key, value in change.items():
            setattr(ev, key, value)
        ev.save()
    ev.refresh_from_db()
    assert (ev.version, ev.checked_through_ns) == (4, 0)


def test_judge_spans_are_experiments_kept_out_of_the_numbers(client, alice, project, ingest_key):
    """A span of service apm-judge is IsReplay = 1 like apm-replay's: out of the Overview unless asked."""
    root, call = agent_run()
    judge_call = S(
        "judge helpful",
        service="apm-judge",
        at=AT,
        ms=30,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 7},
    )
    send(client, ingest_key, root, call, judge_call)
    settle.settle_once()
    client.force_login(alice)
    plain = client.get(f"/api/v1/projects/{project.id}/overview", {"range": "24h"}).json()
    replays = client.get(f"/api/v1/projects/{project.id}/overview", {"range": "24h", "replays": "1"}).json()
    assert plain["llm_calls"] == 1 and replays["llm_calls"] == 2
    row = clickhouse.query_one(
        f"SELECT IsReplay AS r FROM {schema.table(schema.SPANS)} WHERE ProjectId = {{p:String}} AND ServiceName = 'apm-judge'",
        {"p": str(project.id)},
        tag="test",
    )
    assert row["r"] == 1


def test_a_pass_starts_no_judge_call_after_its_time(client, project, ingest_key):
    """In embedded mode the settler waits for the judges' pass: it stops starting calls in time, and
    what it did not reach is left for the next pass (the cursor stays)."""
    runs_in(client, ingest_key, agent_run())
    ev = evaluator(project, model="unreachable-anyway")
    with override_settings(LITELLM_BASE_URL="http://127.0.0.1:9"):
        assert [(r.scored, r.failed, r.stopped) for r in judges.run_once(seconds=0)] == [(0, 0, "time")]
    ev.refresh_from_db()
    assert ev.checked_through_ns == 0 and judge_spans(project) == []


def test_a_failure_whose_target_is_gone_is_dropped(project):
    ev = evaluator(project)
    JudgeFailure.objects.create(
        evaluator=ev, version=1, trace_id="ab" * 16, error="x", kind="error", retry_at=timezone.now()
    )
    with override_settings(LITELLM_BASE_URL="http://127.0.0.1:9"):
        assert [(r.scored, r.failed) for r in judges.run_once()] == [(0, 0)]
    assert not JudgeFailure.objects.exists()


def test_a_score_config_an_evaluator_writes_is_not_deleted(client, alice, project):
    ev = evaluator(project)
    client.force_login(alice)
    response = client.post(f"/admin/monitoring/{project.id}/scores/configs/{ev.score_config_id}/delete")
    assert response.status_code == 400 and "helpful" in response.content.decode()
    assert ScoreConfig.objects.filter(pk=ev.score_config_id).exists()


# --- through a real LiteLLM proxy --------------------------------------------------------------------


@pytest.mark.e2e
def test_it_scores_new_runs_once_per_version(client, alice, project, ingest_key, gateway):
    traces = runs_in(client, ingest_key, agent_run(question="Where is my order?"), agent_run(question="Refund?"))
    ev = evaluator(project)
    reports = judges.run_once()
    assert [(r.scored, r.failed, r.stopped) for r in reports if r.evaluator_id == ev.pk] == [(2, 0, "")]
    found = all_scores(project)
    assert [(s.trace_id, s.span_id) for s in found] == sorted((t, "") for t in traces)
    assert {(s.name, s.value, s.label, s.comment, s.source, s.author) for s in found} == {
        ("helpfulness", 0.8, "pass", "Answers the question.", "judge", f"judge:{ev.pk}")
    }
    assert {s.score_id for s in found} == {judging.judge_score_id(str(project.id), ev.pk, 1, t, "") for t in traces}
    spans = judge_spans(project)
    assert [(s["status"], s["replay"], s["llm"]) for s in spans] == [("Ok", 1, 1)] * 2
    # The mock's usage is 10 prompt + 20 completion tokens: 10 * 1e-6 + 20 * 2e-6, as LiteLLM reported it.
    assert [float(s["cost"]) for s in spans] == [pytest.approx(5e-5)] * 2
    assert [s["reported"] for s in spans] == [pytest.approx(5e-5)] * 2
    asked = "".join(s["asked"] for s in spans)
    assert "Where is my order?" in asked and "Refund?" in asked and "It ships today." in asked
    assert "support_agent" in asked
    assert sorted(link for s in spans for link in s["linked"]) == sorted(traces)
    # The runs list carries the judge's score.
    client.force_login(alice)
    listed = client.get(f"/api/v1/projects/{project.id}/traces", {"kind": "runs", "range": "24h"}).json()
    assert {r["scores"]["helpfulness"]["value"] for r in listed["items"]} == {0.8}

    # A second pass writes nothing and calls nobody.
    judges.run_once()
    assert len(all_scores(project)) == 2 and len(judge_spans(project)) == 2
    # A new version judges the same runs again: two more scores, the old ones stay.
    ev.prompt = "Be strict. {{ input }} / {{ output }}"
    ev.save()
    judges.run_once()
    found = all_scores(project)
    assert len(found) == 4 and len(judge_spans(project)) == 4
    assert {s.score_id for s in found} == {
        judging.judge_score_id(str(project.id), ev.pk, v, t, "") for t in traces for v in (1, 2)
    }
    # Only runs settled since: a third run alone is judged next.
    (third,) = runs_in(client, ingest_key, agent_run(question="Cancel it"))
    report = judges.evaluate(Evaluator.objects.get(pk=ev.pk))
    assert (report.scored, [t.trace_id for t in report.targets]) == (1, [third])


@pytest.mark.e2e
def test_sampling_zero_writes_nothing_and_the_sample_is_deterministic(client, project, ingest_key, gateway):
    traces = runs_in(client, ingest_key, *[agent_run(question=f"q{i}") for i in range(8)])
    evaluator(project, name="none", sampling_rate=0.0)
    half = evaluator(project, score_config=config(project, "tone"), name="half", sampling_rate=0.5)
    judges.run_once()
    found = all_scores(project)
    assert {s.author for s in found} == {f"judge:{half.pk}"}
    sampled = sorted(s.trace_id for s in found)
    in_sample = clickhouse.query(
        "SELECT t FROM (SELECT arrayJoin({traces:Array(String)}) AS t)"
        " WHERE cityHash64(concat({key:String}, t, '\\x1f', '')) % 1000000 < 500000 ORDER BY t",
        {"traces": traces, "key": f"{half.pk}\x1f"},
        tag="test",
    )
    assert sampled == [r["t"] for r in in_sample]  # exactly the runs the hash picks (8 of 8 is 1 in 256)
    # And the hash picks about half: over 4,000 ids the share is 0.5 within a few points.
    share = clickhouse.query_one(
        "SELECT avg(cityHash64(concat({key:String}, lower(hex(MD5(toString(number)))), '\\x1f', '')) % 1000000 < 500000)"
        " AS share FROM numbers(4000)",
        {"key": f"{half.pk}\x1f"},
        tag="test",
    )["share"]
    assert 0.45 < share < 0.55
    # The hash decides the same way on a window read: a backfill finds nothing left in the sample.
    assert judges.backfill(half, timezone.now() - dt.timedelta(hours=1), timezone.now(), 100).scored == 0


@pytest.mark.e2e
def test_filters_choose_the_calls_and_runs_judged(client, project, ingest_key, gateway):
    runs_in(
        client,
        ingest_key,
        agent_run(service="agent-support", agent="support_agent", model="gpt-4o"),
        agent_run(service="agent-sales", agent="sales_agent", model="gpt-4o-mini"),
        agent_run(service="agent-sales", agent="support_agent", model="gpt-4o-mini"),
    )
    by_model = evaluator(project, name="by-model", target=Evaluator.CALL, model_names="gpt-4o-mini")
    by_agent = evaluator(project, score_config=config(project, "a"), name="by-agent", agents="support_agent")
    by_service = evaluator(
        project, score_config=config(project, "s"), name="by-svc", target="call", services="agent-sales"
    )
    by_name = evaluator(project, score_config=config(project, "n"), name="by-name", target="call", span_names="nope")
    reports = {r.evaluator_id: r for r in judges.run_once()}
    assert [reports[e.pk].scored for e in (by_model, by_agent, by_service, by_name)] == [2, 2, 2, 0]
    calls = [s for s in all_scores(project) if s.author == f"judge:{by_model.pk}"]
    assert all(len(s.span_id) == 16 for s in calls)  # a call's score is on its span


@pytest.mark.e2e
def test_a_failed_judge_call_is_a_failure_not_a_score_and_is_retried(client, project, ingest_key, gateway):
    (trace,) = runs_in(client, ingest_key, agent_run())
    garbled = evaluator(project, name="garbled", model="judge-garbled")
    broken = evaluator(project, score_config=config(project, "b"), name="broken", model="judge-broken")
    reports = {r.evaluator_id: r for r in judges.run_once()}
    assert [(reports[e.pk].scored, reports[e.pk].failed) for e in (garbled, broken)] == [(0, 1), (0, 1)]
    assert all_scores(project) == []
    failures = {f.evaluator_id: f for f in JudgeFailure.objects.all()}
    assert failures[garbled.pk].kind == "unparsable" and "no JSON object" in failures[garbled.pk].error
    assert failures[broken.pk].kind == "error" and "500" in failures[broken.pk].error
    assert [(f.trace_id, f.span_id, f.attempts) for f in failures.values()] == [(trace, "", 1)] * 2
    wait = failures[garbled.pk].retry_at - timezone.now()
    assert dt.timedelta(seconds=50) < wait <= dt.timedelta(seconds=60)
    assert [s["status"] for s in judge_spans(project)] == ["Error", "Error"]
    # Not due yet: the next pass leaves it alone.
    judges.run_once()
    assert JudgeFailure.objects.get(evaluator=garbled).attempts == 1 and len(judge_spans(project)) == 2
    # Due: tried again, failed again, and waits twice as long.
    JudgeFailure.objects.update(retry_at=timezone.now() - dt.timedelta(seconds=1))
    judges.run_once()
    again = JudgeFailure.objects.get(evaluator=garbled)
    assert again.attempts == 2
    assert dt.timedelta(seconds=110) < again.retry_at - timezone.now() <= dt.timedelta(seconds=120)
    # The gateway answers well now (the same version's model alias serves a good answer): scored, failure gone.
    JudgeFailure.objects.update(retry_at=timezone.now() - dt.timedelta(seconds=1))
    with override_settings(LITELLM_BASE_URL="http://127.0.0.1:9"):  # and first: a gateway down
        judges.evaluate(Evaluator.objects.get(pk=broken.pk))
    assert JudgeFailure.objects.get(evaluator=broken).kind == "unreachable"
    Evaluator.objects.filter(pk=broken.pk).update(model="judge-good")  # no version bump: the same target retried
    JudgeFailure.objects.update(retry_at=timezone.now() - dt.timedelta(seconds=1))
    judges.evaluate(Evaluator.objects.get(pk=broken.pk))
    assert not JudgeFailure.objects.filter(evaluator=broken).exists()
    assert [(s.trace_id, s.value, s.author) for s in all_scores(project)] == [(trace, 0.8, f"judge:{broken.pk}")]


@pytest.mark.e2e
def test_the_daily_cost_cap_stops_judging(client, project, ingest_key, gateway):
    runs_in(client, ingest_key, *[agent_run(question=f"q{i}") for i in range(3)])
    JudgeSettings.objects.create(project=project, daily_cost_cap_usd="0.00008")  # 1.6 calls of 5e-5
    ev = evaluator(project)
    (report,) = judges.run_once()
    assert (report.scored, report.stopped) == (2, "cap")
    assert judging.judge_cost(str(project.id), judges.day_start_ns()) == pytest.approx(1e-4)
    (report,) = judges.run_once()  # today's spend is read back from the judge spans
    assert (report.scored, report.stopped) == (0, "cap")
    assert len(all_scores(project)) == 2
    JudgeSettings.objects.filter(project=project).update(daily_cost_cap_usd="1")
    assert judges.evaluate(Evaluator.objects.get(pk=ev.pk)).scored == 1


@pytest.mark.e2e
def test_the_switches_stop_every_judge(client, project, ingest_key, gateway):
    runs_in(client, ingest_key, agent_run())
    evaluator(project)
    settings_row = JudgeSettings.objects.create(project=project, enabled=False)
    assert [(r.scored, r.stopped) for r in judges.run_once()] == [(0, "project")]
    settings_row.enabled = True
    settings_row.save()
    with override_settings(JUDGES_ENABLED=False):
        assert judges.run_once() == []
        out = StringIO()
        call_command("run_judges", stdout=out, stderr=StringIO())
        assert "0 evaluators" in out.getvalue()
    assert all_scores(project) == [] and judge_spans(project) == []
    assert [(r.scored, r.stopped) for r in judges.run_once()] == [(1, "")]


@pytest.mark.e2e
def test_a_backfill_judges_a_past_window_up_to_its_cap(client, alice, project, ingest_key, gateway):
    old = AT - dt.timedelta(hours=5)
    runs_in(client, ingest_key, *[agent_run(question=f"q{i}", at=old + dt.timedelta(minutes=i)) for i in range(5)])
    ev = evaluator(project, enabled=False)  # no pass of its own: only the backfills
    end = timezone.now()
    report = judges.backfill(ev, end - dt.timedelta(hours=6), end, 2)
    assert (report.scored, ev.backfill_left) == (2, 0)
    out = StringIO()
    call_command("run_judges", "--backfill", str(ev.pk), "--hours", "6", "--limit", "2", stdout=out)
    assert out.getvalue().strip() == f"evaluator {ev.pk}: 2 scored, 0 failed"
    # The page's button asks for one; the next pass judges it (the evaluator enabled again).
    client.force_login(alice)
    response = client.post(
        f"/admin/monitoring/{project.id}/judges/{ev.pk}/",
        {"action": "backfill", "hours": "6", "limit": "10"},
    )
    assert response.status_code == 302
    ev.refresh_from_db()
    assert ev.backfill_left == 10
    Evaluator.objects.filter(pk=ev.pk).update(enabled=True, checked_through_ns=10**19 // 10)  # nothing new
    (report,) = judges.run_once()
    assert report.scored == 1  # the window's last one; the backfill is over
    assert Evaluator.objects.get(pk=ev.pk).backfill_left == 0
    assert len(all_scores(project)) == 5
    with pytest.raises(ValueError):
        judges.start_backfill(ev, end - dt.timedelta(hours=1), end, judges.BACKFILL_MAX + 1)


@pytest.mark.e2e
def test_the_overview_leaves_judge_calls_out(client, alice, project, ingest_key, gateway):
    runs_in(client, ingest_key, agent_run(), agent_run())
    client.force_login(alice)
    before = client.get(f"/api/v1/projects/{project.id}/overview", {"range": "24h"}).json()
    evaluator(project)
    assert judges.run_once()[0].scored == 2
    settle.settle_once()
    after = client.get(f"/api/v1/projects/{project.id}/overview", {"range": "24h"}).json()
    counted = client.get(f"/api/v1/projects/{project.id}/overview", {"range": "24h", "replays": "1"}).json()
    for key in ("llm_calls", "total_cost_usd", "input_tokens", "output_tokens", "agent_runs"):
        assert after.get(key) == before.get(key), key
    assert counted["llm_calls"] == before["llm_calls"] + 2


# --- the pages ----------------------------------------------------------------------------------------


def test_members_read_the_judges_pages_admins_edit_them(client, alice, bob, charlie, project):
    ev = evaluator(project)
    base = f"/admin/monitoring/{project.id}/judges/"
    client.force_login(bob)
    page = client.get(base)
    assert page.status_code == 200 and "helpful" in page.content.decode()
    assert client.get(f"{base}{ev.pk}/").status_code == 200
    assert client.post(f"{base}{ev.pk}/", {"action": "edit", "name": "x"}).status_code == 403
    assert client.post(base, {"action": "settings", "enabled": "", "daily_cost_cap_usd": "2"}).status_code == 403
    client.force_login(charlie)
    assert client.get(base).status_code == 404 and client.get(f"{base}{ev.pk}/").status_code == 404
    client.logout()
    assert client.get(base).status_code == 302
    client.force_login(alice)
    edited = client.post(
        f"{base}{ev.pk}/",
        {
            "action": "edit",
            "name": "helpful",
            "prompt": "Strictly: {{ output }}",
            "syntax": "django",
            "model": "judge-good",
            "score_config": ev.score_config_id,
            "target": "run",
            "sampling_rate": "0.25",
            "services": "",
            "model_names": "",
            "agents": "",
            "span_names": "",
            "enabled": "on",
        },
    )
    assert edited.status_code == 302, edited.content.decode()
    ev.refresh_from_db()
    assert (ev.version, ev.sampling_rate) == (2, 0.25)
    bad = client.post(
        base,
        {"action": "create", "name": "b", "prompt": "{% debug %}", "syntax": "django", "model": "m",
         "score_config": ev.score_config_id, "target": "run", "sampling_rate": "2"},
    )  # fmt: skip
    assert bad.status_code == 400 and Evaluator.objects.filter(project=project).count() == 1
    other = config(Project.objects.create(name="other"), "theirs")
    foreign = client.post(
        base,
        {"action": "create", "name": "c", "prompt": "{{ output }}", "syntax": "django", "model": "m",
         "score_config": other.pk, "target": "run", "sampling_rate": "1"},
    )  # fmt: skip
    assert foreign.status_code == 400
    saved = client.post(base, {"action": "settings", "daily_cost_cap_usd": "2.5"})
    assert saved.status_code == 302
    own = JudgeSettings.objects.get(project=project)
    assert (own.enabled, float(own.daily_cost_cap_usd)) == (False, 2.5)
    assert client.post(f"{base}{ev.pk}/", {"action": "delete"}).status_code == 302
    assert not Evaluator.objects.filter(pk=ev.pk).exists()


def test_health_has_a_line_for_the_judges(client, alice, project):
    evaluator(project)
    client.force_login(alice)
    html = client.get("/admin/monitoring/health").content.decode()
    assert 'data-check="judges-' in html and "1 enabled" in html
    JudgeSettings.objects.create(project=project, enabled=False)
    html = client.get("/admin/monitoring/health").content.decode()
    assert "switched off" in html


def test_the_judges_pages_show_tiny_costs_with_their_digits(client, alice, project):
    """Issue 21 ("costs show the digits they need everywhere"): a daily cap of a fraction of a cent
    reads as itself, not as 0.0000 (floatformat:4 did)."""
    from monitoring.quality.models import JudgeSettings

    evaluator(project)
    JudgeSettings.objects.update_or_create(project=project, defaults={"daily_cost_cap_usd": "0.000013"})
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/judges/").content.decode()
    assert "$0.000013" in html and "0.0000 USD" not in html
