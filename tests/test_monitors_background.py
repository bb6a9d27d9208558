"""The periodic job runner and the run_monitors command."""

import threading
import time
from io import StringIO

import pytest
from django.core.management import call_command
from monitor_data import llm_call
from otlp import send

from monitoring import background
from monitoring.monitors import evaluation
from monitoring.monitors.models import Event, Monitor


@pytest.fixture
def jobs():
    """A clean registry for the test; the app's own job is put back afterwards."""
    saved = background.jobs()
    for job in saved:
        background.unregister(job.name)
    yield
    background.stop()
    for job in background.jobs():
        background.unregister(job.name)
    for job in saved:
        background.register(job.name, job.every_seconds, job.fn, lease=job.lease)


def test_the_monitors_job_is_registered_but_not_running_in_tests():
    names = {job.name: job for job in background.jobs()}
    assert names["monitors"].every_seconds == 60 and names["monitors"].fn is evaluation.run_due
    assert not any(t.name == "background-jobs" for t in threading.enumerate())


def test_a_failing_job_is_logged_and_runs_again(jobs, caplog):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    job = background.register("flaky", 5, flaky)
    assert background.run_pending(now=0) == ["flaky"]
    assert job.failures == 1 and job.last_error == "RuntimeError: boom" and "background job flaky failed" in caplog.text
    assert background.run_pending(now=time.monotonic()) == []  # not due for 5 s
    assert background.run_pending(now=job.next_run) == ["flaky"]
    assert job.last_error == "" and len(calls) == 2


def test_start_runs_one_thread_per_process_and_only_when_allowed(jobs, settings):
    ran = threading.Event()
    background.register("probe", 60, ran.set)
    settings.BACKGROUND_JOBS = "off"
    assert background.start() is False
    settings.BACKGROUND_JOBS = "auto"  # embedded in tests: allowed
    assert background.start() is True and background.start() is True
    assert sum(t.name == "background-jobs" for t in threading.enumerate()) == 1
    assert ran.wait(5)
    background.stop()
    assert not any(t.name == "background-jobs" for t in threading.enumerate())


def test_a_period_under_a_second_is_refused(jobs):
    with pytest.raises(ValueError):
        background.register("busy", 0.1, lambda: None)


@pytest.mark.django_db
def test_run_monitors_evaluates_once(client, project, ingest_key):
    m = Monitor.objects.create(project=project, name="cost", metric="cost_usd", threshold=1)
    Monitor.objects.create(project=project, name="off", metric="cost_usd", threshold=1, enabled=False)
    send(client, ingest_key, llm_call(cost=2))
    out = StringIO()
    call_command("run_monitors", stdout=out)
    assert out.getvalue().strip() == "1 monitors evaluated: 1 fired, 0 resolved, 0 failed"
    assert Event.objects.get().monitor == m


def test_the_loop_heartbeat_is_what_the_container_checks(tmp_path, monkeypatch):
    from django.core.management.base import CommandError

    from monitoring.monitors.management.commands import run_monitors

    monkeypatch.setattr(run_monitors, "HEARTBEAT", tmp_path / "beat")
    with pytest.raises(CommandError, match="no heartbeat"):
        call_command("run_monitors", "--healthcheck")
    (tmp_path / "beat").touch()
    out = StringIO()
    call_command("run_monitors", "--healthcheck", stdout=out)
    assert out.getvalue().startswith("ok: last pass")
    old = time.time() - 10 * 60
    import os

    os.utime(tmp_path / "beat", (old, old))
    with pytest.raises(CommandError, match="the last pass was"):
        call_command("run_monitors", "--healthcheck")


def test_compose_runs_one_monitors_loop_with_the_readers_account():
    from pathlib import Path

    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parents[1] / "docker-compose.yml").read_text())
    service = compose["services"]["monitors"]
    assert service["command"] == ["python", "manage.py", "run_monitors", "--loop"]
    assert service["environment"]["CLICKHOUSE_USER"] == "portal_reader"
    assert service["healthcheck"]["test"][-1] == "--healthcheck"
    assert "deploy" in service and not service.get("ports")
    assert compose["x-portal-env"]["EMAIL_HOST"].startswith("${EMAIL_HOST")
