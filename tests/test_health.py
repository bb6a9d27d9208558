"""/admin/monitoring/health: the stack's status checks with their hints."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from otlp import S, post, request

from monitoring.monitors.models import Channel
from monitoring.semantics import scoping, settle
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_database(settings):
    """A database of its own: the settler's progress is one per database."""
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "DATABASE": f"otel_health_{id(settings)}"}
    schema.ensure_schema(ttl_days=0)
    scoping.forget_state()
    yield
    scoping.forget_state()


def test_it_needs_a_login(client):
    r = client.get("/admin/monitoring/health")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")


def test_it_reports_the_engine_the_table_and_fresh_spans(client, alice, project, ingest_key):
    assert post(client, ingest_key, request(S("fresh"))).status_code == 200
    settle.settle_once()
    client.force_login(alice)
    r = client.get("/admin/monitoring/health")
    html = r.content.decode()
    assert r.status_code == 200, html
    assert "version 26." in html and "embedded (chdb)" in html
    assert "1 span in your projects" in html
    assert "all present" in html
    assert 'data-check="settler"' in html and "last pass" in html


def test_it_says_when_the_settler_is_not_running(
    client, alice, charlie, project, other_project, ingest_key, own_database, monkeypatch
):
    assert post(client, ingest_key, request(S("waiting"), S("also waiting"))).status_code == 200
    client.force_login(charlie)  # a member of another project is not told how much alice's project sends
    assert "no pass yet; nothing waiting" in client.get("/admin/monitoring/health").content.decode()
    client.force_login(alice)
    r = client.get("/admin/monitoring/health")
    html = r.content.decode()
    assert r.status_code == 503 and "no pass yet; 2 spans waiting" in html and "settle --loop" in html
    settle.settle_once()
    r = client.get("/admin/monitoring/health")
    assert r.status_code == 200 and "nothing waiting" in r.content.decode()
    monkeypatch.setattr(scoping, "STALE_AFTER_SECONDS", -1)  # as if the last pass were long ago
    r = client.get("/admin/monitoring/health")
    assert r.status_code == 503 and "settle --loop" in r.content.decode()


def test_it_lists_monitor_channels_that_fail(client, alice, project, ingest_key, other_project):
    assert post(client, ingest_key, request(S("fresh"))).status_code == 200
    settle.settle_once()
    Channel.objects.create(
        project=project, name="ops-slack", kind=Channel.SLACK, last_failure_at=timezone.now(), last_error="HTTP 500"
    )
    Channel.objects.create(
        project=other_project, name="not-yours", kind=Channel.SLACK, last_failure_at=timezone.now(), last_error="x"
    )
    client.force_login(alice)
    html = client.get("/admin/monitoring/health").content.decode()
    assert "Monitor: ops-slack" in html and "The last delivery failed." in html and f"/{project.id}/" in html
    assert "not-yours" not in html
    assert "HTTP 500" not in html  # the detail is for staff (issue 22)
    alice.is_staff = True
    alice.save()
    assert "Last delivery failed: HTTP 500" in client.get("/admin/monitoring/health").content.decode()


def test_it_hints_when_there_are_no_spans(client, charlie, other_project):
    client.force_login(charlie)
    r = client.get("/admin/monitoring/health")
    assert r.status_code == 503
    assert b"send a test request through LiteLLM" in r.content


def test_it_shows_the_guides_hint_when_clickhouse_is_down(client, alice, project):
    client.force_login(alice)
    down = {**clickhouse.settings.CLICKHOUSE, "HOST": "127.0.0.1", "PORT": 1, "CONNECT_TIMEOUT": 2.0}
    with override_settings(CLICKHOUSE=down):
        r = client.get("/admin/monitoring/health")
    assert r.status_code == 503
    assert b"docker compose restart monitoring-clickhouse" in r.content


def test_it_asks_litellm_when_configured(client, alice, project, ingest_key):
    alice.is_staff = True  # staff see the gateway's URL
    alice.save()
    assert post(client, ingest_key, request(S("fresh"))).status_code == 200
    client.force_login(alice)
    with override_settings(LITELLM_CONFIGURED=True, LITELLM_BASE_URL="http://127.0.0.1:1"):
        r = client.get("/admin/monitoring/health")
    assert r.status_code == 503
    assert b"LiteLLM gateway" in r.content and b"health/liveliness" in r.content


def test_the_settlers_container_health_check(own_database, monkeypatch):
    with pytest.raises(CommandError, match="no pass recorded yet"):
        call_command("settle", "--healthcheck")
    settle.settle_once()
    out = io.StringIO()
    call_command("settle", "--healthcheck", stdout=out)
    assert out.getvalue().startswith("ok: last pass recorded")
    monkeypatch.setattr(scoping, "STALE_AFTER_SECONDS", -1)
    with pytest.raises(CommandError, match="the last pass was recorded"):
        call_command("settle", "--healthcheck")


def test_it_speaks_korean_in_seoul_time(client, alice, project, ingest_key):
    from monitoring.models import UserPreference

    assert post(client, ingest_key, request(S("fresh"))).status_code == 200
    settle.settle_once()
    UserPreference.objects.update_or_create(user=alice, defaults={"time_zone": "Asia/Seoul", "language": "ko"})
    client.force_login(alice)
    html = client.get("/admin/monitoring/health", headers={"Accept-Language": "ko"}).content.decode()
    assert "점검 항목" in html and "내 프로젝트의 스팬 1개" in html and "정산기" in html
    assert " KST)" in html  # the newest span's time, in the viewer's zone
    assert 'data-check="settler"' in html  # stable keys whatever the language
