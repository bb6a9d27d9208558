"""The users and projects most tests need (settings: portal/settings_test.py, a private var/ per run).

Every test writes spans under a project UUID of its own, so tests never see each other's spans
and the engine never needs wiping.
"""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command

from monitoring.models import IngestKey, Membership, Project
from monitoring.queries.filter import SpanFilter, Window


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters are keyed by user id, which the next test's user reuses: start at zero."""
    from django.core.cache import caches

    caches["ratelimit"].clear()


@pytest.fixture
def browser(monkeypatch):
    """Debian's Chromium under Playwright, for the browser tests (tests/browser.py has their helpers)."""
    import browser as chromium

    yield from chromium.launched(monkeypatch)


@pytest.fixture(scope="module")
def cluster():
    """A two-shard cluster of the embedded engine on loopback with the schema applied (tests/cluster.py),
    one per test module."""
    from cluster import start_cluster

    require(bool(__import__("importlib").util.find_spec("clickhouse_driver")), "clickhouse-driver is not installed")
    try:
        running = start_cluster(shards=2)
    except RuntimeError as exc:
        require(False, f"the engine cannot serve a two-shard cluster on loopback here: {exc}")
    try:
        running.apply_schema()
        yield running
    finally:
        running.stop()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-pass-123")


@pytest.fixture
def bob(django_user_model):
    """A viewer of alice's project."""
    return django_user_model.objects.create_user("bob", password="bob-pass-123")


@pytest.fixture
def charlie(django_user_model):
    """Member of nothing."""
    return django_user_model.objects.create_user("charlie", password="charlie-pass-123")


@pytest.fixture
def project(alice, bob):
    project = Project.objects.create(name="Alice's project")
    Membership.objects.create(project=project, user=alice, role=Membership.ADMIN)
    Membership.objects.create(project=project, user=bob, role=Membership.VIEWER)
    return project


@pytest.fixture
def other_project(charlie):
    project = Project.objects.create(name="Charlie's project")
    Membership.objects.create(project=project, user=charlie, role=Membership.ADMIN)
    return project


@pytest.fixture
def ingest_key(project):
    return IngestKey.issue(project)[1]


def require(condition: bool, reason: str) -> None:
    """Skip a test whose tool is missing here; under CI (CI=true) a missing tool fails instead,
    since .ci/run installs it: a green CI must not hide a suite that did not run."""
    import os

    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it: see .ci/run)")
    pytest.skip(reason)


def api_token(username: str) -> str:
    """A new personal API token of `username` (`manage.py create_api_token`), for the read API."""
    out = StringIO()
    call_command("create_api_token", username, stdout=out)
    return out.getvalue().strip()


def last_hour(project) -> SpanFilter:
    """The project's filter over the hour before now, nothing else chosen."""
    now = dt.datetime.now(dt.UTC)
    return SpanFilter(str(project.id), Window(now - dt.timedelta(hours=1), now))


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL (tests/postgres_server.py) for the whole session: initdb once, stopped at
    the end. Skipped only where the package is missing, and never under CI, which installs it."""
    import postgres_server as pg

    require(pg.binaries() is not None, "PostgreSQL is not installed (Debian: apt-get install postgresql)")
    server = pg.start_postgres()
    yield server
    pg.stop_postgres(server)
