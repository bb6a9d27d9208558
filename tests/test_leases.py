"""One process at a time per database for the settler's jobs (models.Lease, monitoring/background.py),
and one evaluator per monitor and period (evaluation.claim_due) and per delivery (deliver_due), on
the test database (SQLite). The same with real processes contending on PostgreSQL:
tests/test_postgres.py."""

import datetime as dt
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from monitor_data import llm_call, now
from otlp import send
from receivers import http_receiver

from monitoring import background
from monitoring.models import Lease
from monitoring.monitors import delivery, evaluation
from monitoring.monitors.models import Channel, Delivery, Monitor
from monitoring.semantics import settle

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_leases_held():
    """What this process believes it holds starts empty (another test's rows were rolled back)."""
    background.release()
    yield
    background.release()


def test_a_lease_has_one_holder_until_it_runs_out_or_is_given_up():
    assert Lease.take("job", "a", 0.5) is True
    assert Lease.take("job", "b", 0.5) is False  # held
    assert Lease.take("job", "a", 0.5) is True  # renewed by its holder
    time.sleep(0.6)
    assert Lease.take("job", "b", 30) is True  # ran out: another takes it
    assert Lease.take("job", "a", 30) is False
    assert Lease.release("a") == 0 and Lease.release("b") == 1
    assert Lease.take("job", "a", 30) is True  # given up: free at once
    assert Lease.objects.get(name="job").holder == "a" and Lease.take("other", "b", 30) is True


@pytest.fixture
def leased_job():
    ran = []
    job = background.register("leased-probe", 5, lambda: ran.append(1), lease="probe-lease")
    yield job, ran
    background.unregister("leased-probe")
    background.release()


def server_mode(settings) -> None:
    """Only the mode is read here; these tests' jobs never reach ClickHouse."""
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "HOST": "127.0.0.1"}


def test_a_leased_job_runs_only_in_the_process_holding_its_lease(leased_job, caplog, settings):
    server_mode(settings)
    job, ran = leased_job
    Lease.take("probe-lease", "another-host:1:abcd", 30)
    assert background.run_pending(now=0, names=["leased-probe"]) == []
    assert ran == [] and job.runs == 0 and "held by another-host:1:abcd: standing by" in caplog.text
    Lease.release("another-host:1:abcd")  # the other stopped cleanly
    assert background.run_pending(now=job.next_run, names=["leased-probe"]) == ["leased-probe"]
    assert ran == [1] and f"took the lease 'probe-lease' as {background.holder()}" in caplog.text
    assert Lease.objects.get(name="probe-lease").holder == background.holder()
    assert background.release() == 1 and Lease.objects.get(name="probe-lease").holder == ""


def test_in_embedded_mode_the_data_folder_is_the_lease(leased_job):
    job, ran = leased_job
    Lease.take("probe-lease", "another-host:1:abcd", 30)  # a row left by a portal that was killed
    assert background.run_pending(now=0, names=["leased-probe"]) == ["leased-probe"] and ran == [1]
    out = StringIO()
    call_command("settle", stdout=out)  # no other process can have the folder open
    assert "traces settled" in out.getvalue()


def test_the_settlers_jobs_share_one_lease_and_a_one_off_pass_respects_it(settings):
    jobs = {job.name: job for job in background.jobs()}
    assert jobs[settle.JOB_NAME].lease == jobs["resettle"].lease == settle.LEASE
    assert jobs["monitors"].lease == ""  # evaluators claim each monitor instead
    server_mode(settings)
    Lease.take(settle.LEASE, "settler-host:7:beef", 30)
    with pytest.raises(CommandError, match=r"another settler holds the lease until .* \(settler-host:7:beef\)"):
        call_command("settle")  # refused before it asks ClickHouse anything
    assert Lease.objects.get(name=settle.LEASE).holder == "settler-host:7:beef"


def test_a_monitors_period_is_claimed_once(project):
    m = Monitor.objects.create(project=project, name="calls", metric="llm_calls", threshold=0)
    Monitor.objects.create(project=project, name="off", metric="llm_calls", threshold=0, enabled=False)
    t = now()
    assert evaluation.claim_due(t) == [m]
    assert evaluation.claim_due(t) == []  # a second evaluator in the same period
    assert evaluation.claim_due(t + dt.timedelta(seconds=59)) == []
    assert evaluation.claim_due(t + dt.timedelta(seconds=60)) == [m]
    m.refresh_from_db()
    assert m.next_evaluation_at == t + dt.timedelta(seconds=120)


def test_the_job_evaluates_only_what_it_claimed(client, project, ingest_key):
    m = Monitor.objects.create(project=project, name="calls", metric="llm_calls", threshold=0)
    send(client, ingest_key, llm_call())
    t = now()
    assert [o.fired for o in evaluation.run_due(t)] == [[""]]
    assert evaluation.run_due(t + dt.timedelta(seconds=30)) == []  # not due: nothing asked
    assert [o.fired for o in evaluation.run_due(t + dt.timedelta(seconds=60))] == [[]]
    m.refresh_from_db()
    assert m.last_evaluated_at == t + dt.timedelta(seconds=60)


def test_a_delivery_claimed_by_another_sender_is_not_sent_again(client, project, ingest_key, settings):
    settings.MONITOR_CHANNEL_ALLOWED_NETWORKS = ["127.0.0.1"]  # the webhook receiver below listens on loopback
    with http_receiver() as hook:
        channel = Channel.objects.create(project=project, name="hook", kind=Channel.WEBHOOK)
        channel.set_url(hook.url + "/hook")
        channel.save()
        m = Monitor.objects.create(project=project, name="calls", metric="llm_calls", threshold=0)
        m.channels.add(channel)
        send(client, ingest_key, llm_call())
        t = now()
        evaluation.evaluate([m], now=t)  # an event to tell, not sent yet
        item = Delivery.objects.get()
        # Another evaluator claims it (as deliver_due does) and is still sending:
        Delivery.objects.filter(pk=item.pk).update(next_attempt_at=t + dt.timedelta(seconds=delivery.SENDING_SECONDS))
        assert delivery.deliver_due(t) == [] and hook.received == []
        assert len(delivery.deliver_due(t + dt.timedelta(seconds=delivery.SENDING_SECONDS))) == 1  # it died: retried
        assert len(hook.received) == 1 and delivery.deliver_due(t + dt.timedelta(hours=1)) == []
    item.refresh_from_db()
    assert (item.state, item.attempts) == ("sent", 1)
