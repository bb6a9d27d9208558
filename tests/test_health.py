"""/admin/monitoring/health: the guide's status checks with their hints."""

import pytest
from django.test import override_settings
from otlp import S, post, request

from monitoring import clickhouse

pytestmark = pytest.mark.django_db


def test_it_needs_a_login(client):
    r = client.get("/admin/monitoring/health")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")


def test_it_reports_the_engine_the_table_and_fresh_spans(client, alice, project, ingest_key):
    assert post(client, ingest_key, request(S("fresh"))).status_code == 200
    client.force_login(alice)
    r = client.get("/admin/monitoring/health")
    html = r.content.decode()
    assert r.status_code == 200, html
    assert "version 26." in html and "embedded (chdb)" in html
    assert "1 spans in your projects" in html
    assert "all present" in html


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
