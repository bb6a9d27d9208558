"""`manage.py check --deploy` flags each item of the production checklist (README), and passes a
correct configuration."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring import checks
from monitoring.store import schema

REPO = Path(__file__).resolve().parents[1]
GOOD_ENV = {
    "SECRET_KEY": "k" * 20 + "Zq8#vN2!pL5@xR7$wT1^yU4&" + "m" * 20,
    "DEBUG": "false",
    "ALLOWED_HOSTS": "monitoring.example.com",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "CLICKHOUSE_TTL_DAYS": "30",
    "CLICKHOUSE_CONNECT_TIMEOUT": "10",
    "CLICKHOUSE_QUERY_TIMEOUT": "30",
}


def check_deploy(tmp_path, **overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE_", "SECURE_", "DEBUG", "DJANGO_ALLOW"))}
    env |= {"DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": str(tmp_path)} | GOOD_ENV | overrides
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_correct_configuration_passes(tmp_path):
    r = check_deploy(tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "no issues" in r.stdout


@pytest.mark.parametrize(
    "overrides, flagged",
    [
        ({"CLICKHOUSE_TTL_DAYS": "0"}, "monitoring.W002"),
        ({"CLICKHOUSE_CONNECT_TIMEOUT": "120"}, "monitoring.W003"),
        ({"CLICKHOUSE_QUERY_TIMEOUT": "600"}, "monitoring.W003"),
        ({"DEBUG": "true"}, "security.W018"),
        ({"SESSION_COOKIE_SECURE": "false"}, "security.W012"),
        ({"SECRET_KEY": "short"}, "security.W009"),
    ],
)
def test_it_flags_each_checklist_item(tmp_path, overrides, flagged):
    r = check_deploy(tmp_path, **overrides)
    assert r.returncode != 0 and flagged in r.stderr + r.stdout


@pytest.mark.parametrize("password", ["", "password", "default"])
def test_it_flags_a_default_clickhouse_password(settings, password):
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "HOST": "clickhouse.internal", "PASSWORD": password}
    assert [m.id for m in checks.clickhouse_password(None)] == ["monitoring.W001"]
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "PASSWORD": "Xk2-very-long-random"}
    assert checks.clickhouse_password(None) == []


def test_it_flags_a_table_without_ttl(settings, monkeypatch):
    from monitoring.store import clickhouse

    monkeypatch.setattr(clickhouse, "on_embedded_open", None)
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "DATABASE": "otel_no_ttl", "TTL_DAYS": 30}
    schema.ensure_schema(ttl_days=0)  # as a collector with no ttl would have made it
    assert [m.id for m in checks.retention(None)] == ["monitoring.W002"]
    schema.set_retention(30)
    assert checks.retention(None) == []


def test_it_flags_a_monitoring_endpoint_without_auth(monkeypatch):
    from monitoring.web.views import api

    assert checks.monitoring_endpoints_need_auth(None) == []
    monkeypatch.delattr(api.overview, "apm_auth")
    assert [m.id for m in checks.monitoring_endpoints_need_auth(None)] == ["monitoring.E004"]
