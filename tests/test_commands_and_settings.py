"""Management commands and start-up settings: what an operator types and sees."""

import json
import os
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from monitoring.models import IngestKey, Membership, Project
from monitoring.queries import overview as queries
from monitoring.web.forms import SpanFilter, Window

REPO = Path(__file__).resolve().parents[1]


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_createproject_prints_one_json_line_with_a_working_key(alice):
    pid = str(uuid.uuid4())
    line = run("createproject", "Search agents", "--owner", "alice", "--id", pid).strip()
    data = json.loads(line)
    assert data["project_id"] == pid and "\n" not in line
    assert IngestKey.find(data["ingest_key"]).project_id == uuid.UUID(pid)
    assert Membership.objects.get(project_id=pid, user=alice).role == Membership.ADMIN


@pytest.mark.django_db
def test_createproject_needs_a_real_owner_and_uuid(alice):
    with pytest.raises(CommandError, match="No user"):
        run("createproject", "X", "--owner", "nobody")
    with pytest.raises(CommandError, match="UUID"):
        run("createproject", "X", "--owner", "alice", "--id", "123")


@pytest.mark.django_db
def test_keys_are_stored_hashed(project):
    key, secret = IngestKey.issue(project)
    key.refresh_from_db()
    assert secret not in (key.digest, key.prefix) and len(key.digest) == 64


@pytest.mark.django_db
def test_the_default_project_exists_after_migrate(settings):
    assert Project.objects.filter(id=settings.DEFAULT_PROJECT_ID).exists()


@pytest.mark.django_db
def test_demo_traces_go_through_ingest_and_fill_the_overview(settings):
    project = Project.objects.create(name="demo")
    run("demo_traces", "--project", str(project.id), "--days", "2", "--runs-per-day", "20", "--no-progress")
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    o = queries.overview(SpanFilter(str(project.id), Window(now - dt.timedelta(days=3), now + dt.timedelta(hours=1))))
    # Failures are drawn at a few percent from (seed, now): 40 runs may have none.
    assert o.llm_calls > 20 and o.agent_calls > 5 and o.total_cost_usd > 0 and 0 <= o.fail_rate < 0.5


def test_clickhouse_init_is_idempotent():
    assert "Schema ready" in run("clickhouse_init")
    assert "Schema ready" in run("clickhouse_init")


@pytest.mark.parametrize(
    "name, value",
    [
        ("CLICKHOUSE_PORT", "ninety"),
        ("CLICKHOUSE_PORT", "70000"),
        ("CLICKHOUSE_TTL_DAYS", "-1"),
        ("CLICKHOUSE_CONNECT_TIMEOUT", "0"),
        ("CLICKHOUSE_DATABASE", "otel; DROP"),
        ("DEFAULT_PROJECT_ID", "default"),
        ("DEBUG", "maybe"),
        ("MONITOR_CHANNEL_ALLOWED_NETWORKS", "10.0.0.0/33"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_variable(tmp_path, name, value):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": str(tmp_path), name: value}
    r = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert name in r.stderr and "ImproperlyConfigured" in r.stderr


@pytest.mark.parametrize("demo", ["", "1"])
def test_the_demo_app_is_in_only_where_asked_for(tmp_path, demo):
    """Production settings leave the demo generator out; PORTAL_DEMO=1 (bin/demo) brings its commands."""
    env = {k: v for k, v in os.environ.items() if k != "PORTAL_DEMO"}
    env |= {"DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": str(tmp_path), "PORTAL_DEMO": demo}
    r = subprocess.run([sys.executable, "manage.py", "help"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert ("demo_setup" in r.stdout and "demo_traces" in r.stdout) == bool(demo)
