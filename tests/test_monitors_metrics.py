"""metrics.py against the real engine: the monitors' numbers are the dashboard's numbers."""

import datetime as dt

import pytest
from monitor_data import agent_run, llm_call, now
from otlp import send

from monitoring.monitors import metrics
from monitoring.queries import breakdowns as breakdowns_q
from monitoring.queries import overview as queries
from monitoring.web.forms import SpanFilter, Window

pytestmark = pytest.mark.django_db


def last(project, minutes=60, end=None, **kw) -> SpanFilter:
    end = end or now()
    return SpanFilter(str(project.id), Window(end - dt.timedelta(minutes=minutes), end), **kw)


@pytest.fixture
def traffic(client, project, ingest_key):
    send(
        client,
        ingest_key,
        llm_call("gpt-4o", user="ann", cost=1.5, ms=100),
        llm_call("gpt-4o", user="ann", cost=2.5, ms=300, error=True),
        llm_call("gpt-4o-mini", user="ben", tokens=(1_000_000, 0), ms=500, service="api"),
        *agent_run(user="ann", calls=[{"model": "gpt-4o", "cost": 1.0}]),
        *agent_run(user="ben", error=True, calls=[{"model": "gpt-4o-mini", "cost": 0.25}]),
        llm_call("gpt-4o", user="old", cost=100, at=now() - dt.timedelta(hours=3)),
    )


def test_it_counts_like_the_overview(project, traffic):
    flt = last(project)
    values = metrics.measure(metrics.Question(flt))[""]
    overview = queries.overview(flt)
    assert values.llm_calls == overview.llm_calls == 5
    assert values.agent_runs == overview.agent_calls == 2
    assert values.cost_usd == pytest.approx(overview.total_cost_usd)
    assert values.cost_usd == pytest.approx(1.5 + 2.5 + 0.15 + 1.0 + 0.25)  # gpt-4o-mini: $0.15 / M input
    assert values.fail_rate == pytest.approx(100 * overview.fail_rate, abs=1e-3)
    assert values.fail_rate == pytest.approx(100 * 2 / 7)
    assert values.latency_p99_ms == pytest.approx(overview.p99_latency_ms)
    assert values.tokens == 4 * 110 + 1_000_000
    assert values.sample("fail_rate") == 7 and values.sample("cost_usd") == 5


def test_it_groups_like_the_breakdowns(project, traffic):
    flt = last(project)
    breakdowns = breakdowns_q.breakdowns(flt, top=100)
    for group_by, dim in (("user", "user"), ("model", "model"), ("service", "service")):
        found = metrics.measure(metrics.Question(flt, group_by))
        shares = {s.name: s for s in breakdowns[dim] if s.name}
        for name, share in shares.items():
            assert found[name].llm_calls == share.calls, (group_by, name)
            assert found[name].cost_usd == pytest.approx(share.cost_usd), (group_by, name)
            assert found[name].tokens == share.input_tokens + share.output_tokens
    users = metrics.measure(metrics.Question(flt, "user"))
    assert set(users) == {"ann", "ben"}
    # A call is a user's when its span names the user, else its run's user (as in the breakdowns:
    # Langfuse's trace-level user works the same way); a run is the user's when any of its spans
    # names them: the run's own call (no user.id on it) is ann's spend too.
    assert users["ann"].cost_usd == pytest.approx(5.0) and users["ann"].agent_runs == 1
    assert users["ben"].agent_runs == 1 and users["ben"].agent_errors == 1
    assert users["ben"].cost_usd == pytest.approx(0.15 + 0.25)
    assert users["ann"].latency_p50_ms == pytest.approx(200, abs=101)


def test_it_honours_the_filter_bar(project, traffic):
    only_mini = metrics.measure(metrics.Question(last(project, models=("gpt-4o-mini",))))[""]
    assert only_mini.llm_calls == 2 and only_mini.agent_runs == 1
    errors = metrics.measure(metrics.Question(last(project, status="error")))[""]
    assert errors.llm_calls == 1 and errors.agent_runs == 1
    wide = metrics.measure(metrics.Question(last(project, minutes=240), "user"))
    assert wide["old"].cost_usd == pytest.approx(100)


def test_an_empty_window_is_zero_not_missing(project):
    assert metrics.measure(metrics.Question(last(project)))[""] == metrics.Values()
    assert metrics.measure(metrics.Question(last(project), "user")) == {}


def test_one_question_is_asked_once(project, traffic):
    q = metrics.Question(last(project), "model")
    answers = metrics.measure_many([q, q, metrics.Question(q.flt)])
    assert len(answers) == 2 and set(answers[q]) == {"gpt-4o", "gpt-4o-mini"}


def test_a_call_through_the_proxy_counts_once_under_every_filter(client, project, ingest_key):
    from test_overview_queries import agent_call_through_the_proxy

    agent_call_through_the_proxy(client, ingest_key)
    filters = [{}, {"services": ("agent-text2sql",)}, {"models": ("gpt-4o",)}, {"status": "ok"}, {"status": "error"}]
    questions = [metrics.Question(last(project, **kw)) for kw in filters]
    answers = metrics.measure_many(questions)  # one statement for all five
    for question in questions:
        values, overview = answers[question][""], queries.overview(question.flt)
        assert (values.llm_calls, values.agent_runs) == (overview.llm_calls, overview.agent_calls), question.flt
        assert values.cost_usd == pytest.approx(overview.total_cost_usd), question.flt
        assert values.latency_p50_ms == pytest.approx(overview.p50_latency_ms), question.flt


def test_a_batch_answers_as_each_question_alone(project, traffic):
    end = now()
    questions = [
        metrics.Question(last(project, minutes=minutes, end=end, **kw), group_by)
        for minutes in (60, 240)
        for kw in ({}, {"models": ("gpt-4o",)}, {"services": ("api", "svc")}, {"status": "error"})
        for group_by in ("", "user", "model", "service")
    ]
    together = metrics.measure_many(questions)
    for question in questions[::3]:
        assert metrics.measure(question) == together[question], question
    assert together[metrics.Question(last(project, minutes=240, end=end), "user")]["old"].cost_usd == pytest.approx(100)


def test_questions_asked_together_answer_as_each_alone(project, traffic):
    """measure_many batches the questions of a project and group-by into three statements: each
    answer is the one its question gets alone, whatever filters and windows the batch mixes."""
    questions = [
        metrics.Question(last(project, **bar), group_by)
        for group_by in metrics.GROUP_BYS
        for bar in ({}, {"models": ("gpt-4o-mini",)}, {"status": "error"}, {"minutes": 240}, {"services": ("api",)})
    ]
    together = metrics.measure_many(questions)
    assert set(together) == set(questions)
    for question in questions:
        assert together[question] == metrics.measure(question), question
    assert together[questions[3]]  # the 4-hour window holds "old"'s call
