"""Monitor states against the real engine: fire once, stay quiet while firing, resolve once; per
group; minimum sample size; change vs the previous window; mute; ClickHouse trouble."""

import datetime as dt

import pytest
from django.test import override_settings
from monitor_data import agent_run, llm_call, now
from otlp import send
from receivers import http_receiver

from monitoring.monitors import evaluation
from monitoring.monitors.models import Alert, Channel, Delivery, Event, Monitor
from monitoring.store import clickhouse

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _local_receivers_allowed(settings):
    """The receivers here listen on loopback, which channels reach only when the operator allows it."""
    settings.MONITOR_CHANNEL_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def monitor(project, **kw) -> Monitor:
    fields = {"name": "cost", "metric": "cost_usd", "window_minutes": 60, "condition": "above", "threshold": 1.0}
    return Monitor.objects.create(project=project, **(fields | kw))


def events(m, kind=None):
    qs = Event.objects.filter(monitor=m).order_by("at", "id")
    return list(qs.filter(kind=kind) if kind else qs)


def test_it_fires_once_stays_quiet_and_resolves_once(client, project, ingest_key):
    with http_receiver() as hook:
        channel = Channel.objects.create(project=project, name="hook", kind=Channel.WEBHOOK)
        channel.set_url(hook.url + "/hook")
        channel.save()
        m = monitor(project, window_minutes=15)
        m.channels.add(channel)
        t0 = now()

        assert evaluation.run_once(t0)[0].fired == []  # nothing yet: OK
        send(client, ingest_key, llm_call(cost=0.75, at=t0 - dt.timedelta(minutes=3)))
        assert evaluation.run_once(t0)[0].fired == []  # $0.75 is not above $1
        send(client, ingest_key, llm_call(cost=0.5, at=t0 - dt.timedelta(minutes=2)))

        first = evaluation.run_once(t0 + dt.timedelta(seconds=5))[0]
        assert first.fired == [""]
        for minute in range(1, 4):  # still above: nothing new, nobody told again
            again = evaluation.run_once(t0 + dt.timedelta(minutes=minute))[0]
            assert again.fired == [] and again.resolved == []
        assert len(hook.received) == 1
        assert m.open_alerts().get().last_value == pytest.approx(1.25)

        # 15 minutes later the calls have left the window: resolved, once.
        later = t0 + dt.timedelta(minutes=16)
        assert evaluation.run_once(later)[0].resolved == [""]
        assert evaluation.run_once(later + dt.timedelta(minutes=1))[0].resolved == []

    assert [e.kind for e in events(m)] == ["fired", "resolved"]
    fired, resolved = events(m)
    assert fired.value == pytest.approx(1.25) and fired.sample == 2 and resolved.value == 0
    assert [Delivery.objects.get(event=e).state for e in (fired, resolved)] == ["sent", "sent"]
    assert [r.headers["x-monitoring-event"] for r in hook.received] == ["monitor.fired", "monitor.resolved"]
    assert Alert.objects.get(monitor=m).resolved_at == later
    m.refresh_from_db()
    assert m.state() == "ok" and m.last_value == 0


def test_per_user_spend_fires_once_per_offending_user(client, project, ingest_key):
    m = monitor(project, name="spend", group_by="user", window_minutes=43200, threshold=20)
    month = now() - dt.timedelta(days=20)
    send(
        client,
        ingest_key,
        llm_call(user="ann", cost=15, at=month),
        llm_call(user="ann", cost=10),  # ann: $25 over 30 days
        llm_call(user="ben", cost=19.5),  # ben: below
        *agent_run(user="cid", calls=[{"model": "gpt-4o", "user": "cid", "cost": 30}]),  # cid: $30
        llm_call(cost=500),  # no end user: nobody's spend
    )
    outcome = evaluation.evaluate([m])[0]
    assert sorted(outcome.fired) == ["ann", "cid"]
    assert evaluation.evaluate([m])[0].fired == []  # the same users do not fire twice
    send(client, ingest_key, llm_call(user="ben", cost=1))
    assert evaluation.evaluate([m])[0].fired == ["ben"]  # a new offender fires on its own
    fired = {e.group: e for e in events(m, Event.FIRED)}
    assert set(fired) == {"ann", "cid", "ben"}
    assert fired["ann"].value == pytest.approx(25) and fired["cid"].value == pytest.approx(30)
    assert set(m.open_alerts().values_list("group", flat=True)) == {"ann", "ben", "cid"}
    assert "/analytics/?from=" in fired["ann"].dashboard_url()  # end users are in the breakdowns


def test_a_small_sample_does_not_page(client, project, ingest_key):
    m = monitor(project, metric="fail_rate", threshold=50, min_samples=5)
    send(client, ingest_key, llm_call(error=True))  # one failed call at night: 100% of 1
    assert evaluation.evaluate([m])[0].fired == []
    send(client, ingest_key, *[llm_call(error=True) for _ in range(4)])
    assert evaluation.evaluate([m])[0].fired == [""]
    assert events(m, Event.FIRED)[0].value == pytest.approx(100) and events(m, Event.FIRED)[0].sample == 5


def test_change_vs_the_previous_window(client, project, ingest_key):
    m = monitor(project, metric="llm_calls", condition="increase", threshold=200, window_minutes=60)
    t = now()
    send(client, ingest_key, *[llm_call(at=t - dt.timedelta(minutes=90)) for _ in range(2)])  # previous hour: 2
    send(client, ingest_key, *[llm_call(at=t - dt.timedelta(minutes=10)) for _ in range(5)])  # this hour: 5 (+150%)
    assert evaluation.evaluate([m], now=t)[0].fired == []
    send(client, ingest_key, llm_call(at=t - dt.timedelta(minutes=5)))  # 6 = +200%
    assert evaluation.evaluate([m], now=t)[0].fired == [""]
    fired = events(m, Event.FIRED)[0]
    assert (fired.value, fired.previous) == (6, 2)


def test_a_below_condition_and_per_model_groups(client, project, ingest_key):
    quiet = monitor(project, name="traffic stopped", metric="llm_calls", condition="below", threshold=1, min_samples=0)
    assert evaluation.evaluate([quiet])[0].fired == [""]  # no call at all this hour
    slow = monitor(project, name="slow", metric="latency_p95_ms", group_by="model", threshold=1000)
    send(client, ingest_key, llm_call("gpt-4o", ms=3000), llm_call("gpt-4o-mini", ms=100))
    assert evaluation.evaluate([slow])[0].fired == ["gpt-4o"]
    assert evaluation.evaluate([quiet])[0].resolved == [""]
    event = events(slow, Event.FIRED)[0]
    assert "model=gpt-4o" in event.dashboard_url() and "/overview/" in event.dashboard_url()


def test_mute_suppresses_notifications_but_keeps_history(client, project, ingest_key, alice):
    with http_receiver() as hook:
        channel = Channel.objects.create(project=project, name="slack", kind=Channel.SLACK)
        channel.set_url(hook.url + "/slack")
        channel.save()
        m = monitor(project)
        m.channels.add(channel)
        evaluation.mute(m, now() + dt.timedelta(hours=1), alice)
        send(client, ingest_key, llm_call(cost=5))
        assert evaluation.run_once()[0].fired == [""]
        assert hook.received == [] and not Delivery.objects.exists()
        assert m.state() == "muted"
        fired = events(m, Event.FIRED)[0]
        assert fired.muted
        evaluation.unmute(m, alice)
        m.refresh_from_db()
        assert m.state() == "firing"
        assert evaluation.run_once()[0].fired == []  # already firing: unmuting tells nobody twice
        assert hook.received == []
    assert [e.kind for e in events(m)] == ["muted", "fired", "unmuted"]


def test_acknowledge_an_open_alert(client, project, ingest_key, alice):
    m = monitor(project)
    send(client, ingest_key, llm_call(cost=5))
    evaluation.evaluate([m])
    alert = m.open_alerts().get()
    assert evaluation.acknowledge(alert, alice) is True
    assert evaluation.acknowledge(alert, alice) is False
    alert.refresh_from_db()
    assert alert.acknowledged_by == alice and events(m)[-1].kind == "acknowledged"


def test_clickhouse_down_is_recorded_once_and_keeps_the_state(client, project, ingest_key):
    m = monitor(project)
    send(client, ingest_key, llm_call(cost=5))
    evaluation.evaluate([m])
    down = {**clickhouse.settings.CLICKHOUSE, "HOST": "127.0.0.1", "PORT": 1, "CONNECT_TIMEOUT": 1.0}
    with override_settings(CLICKHOUSE=down):
        for _ in range(3):
            outcome = evaluation.evaluate([Monitor.objects.get(pk=m.pk)])[0]
            assert outcome.error.startswith("ClickHouse unavailable")
    m.refresh_from_db()
    assert m.last_error and m.state() == "firing"  # not resolved by an outage
    assert len(events(m, Event.ERROR)) == 1
    evaluation.evaluate([Monitor.objects.get(pk=m.pk)])
    m.refresh_from_db()
    assert m.last_error == "" and m.state() == "firing"


def test_two_passes_at_once_open_one_alert(client, project, ingest_key):
    """'Evaluate now' may race the minute's pass: the second sees the open alert and stays quiet."""
    m = monitor(project)
    send(client, ingest_key, llm_call(cost=5))
    stale = Monitor.objects.get(pk=m.pk)
    assert evaluation.evaluate([m])[0].fired == [""]
    # A pass that read no open alert before the other one wrote it:
    found = {"": evaluation.Finding(5.0, 1)}
    window = evaluation.windows(stale, now())[0]
    from unittest import mock

    with mock.patch.object(Monitor, "open_alerts", lambda self: Alert.objects.none()):
        outcome = evaluation.apply(stale, found, window, now())
    assert outcome.fired == [] and Alert.objects.filter(monitor=m).count() == 1
    assert len(events(m, Event.FIRED)) == 1


def test_the_health_page_data_names_failing_and_stale_monitors(client, project, ingest_key, other_project):
    from monitoring.monitors import health

    failing = monitor(project, name="failing")
    Monitor.objects.filter(pk=failing.pk).update(last_error="ClickHouse unavailable: down", last_evaluated_at=now())
    stale = monitor(project, name="stale")
    Monitor.objects.filter(pk=stale.pk).update(created=now() - dt.timedelta(minutes=10))
    monitor(other_project, name="not yours", last_error="x")
    problems = {(p.kind, p.subject) for p in health.delivery_problems([project])}
    assert problems == {("evaluation_failing", "failing"), ("evaluator_stale", "stale")}
    evaluation.evaluate([Monitor.objects.get(pk=stale.pk)])
    assert ("evaluator_stale", "stale") not in {(p.kind, p.subject) for p in health.delivery_problems([project.pk])}
