"""Server mode on production's Django database: PostgreSQL (tests/postgres_server.py), where row locks
are real, with ClickHouse over the native protocol (tests/native_server.py), and the portal's own
processes (`manage.py settle --loop`, `manage.py run_monitors --loop`) contending as they would in
a deployment that runs two of each.

- Two settlers: exactly one holds the lease and settles; the other stands by, takes over once the
  holder is killed and its lease runs out, and a holder stopped with SIGTERM gives the lease up.
- Two monitor evaluators: exactly one evaluates a monitor per period, and its notification is sent
  once, through a slow SMTP server that keeps the send in flight while the other evaluator runs.

Every test here has `postgres` in its name: `pytest -k postgres` runs them (CI: .ci/run installs
Debian's postgresql; without it they skip, except under CI where they fail).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from monitor_data import llm_call
from native_server import start_native_server, stop_native_server
from otlp import request
from receivers import smtp_server

from monitoring.ingest import otlp
from monitoring.store import clickhouse, schema

REPO = Path(__file__).resolve().parents[1]
LEASE_SECONDS = 3  # JOB_LEASE_SECONDS of the processes: a killed holder is replaced within it


@pytest.fixture(scope="module")
def native_port(tmp_path_factory):
    proc, port = start_native_server(str(tmp_path_factory.mktemp("native-postgres")))
    yield port
    stop_native_server(proc)


@pytest.fixture(scope="module")
def migrated(postgres_server, tmp_path_factory):
    """A database migrated by `manage.py migrate` on PostgreSQL: each test copies it."""
    with postgres_server.connect() as conn:
        conn.execute("CREATE DATABASE migrated")
    var = tmp_path_factory.mktemp("portal-var")
    env = portal_env(postgres_server.url("migrated"), 9000, "unused", var)
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return "migrated"


def portal_env(database_url: str, clickhouse_port: int, clickhouse_database: str, var: Path, **more: str) -> dict:
    """The environment of a server-mode portal process: production settings, Django on PostgreSQL,
    ClickHouse over the native protocol on loopback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE_", "PORTAL_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATABASE_URL=database_url,
        CLICKHOUSE_HOST="127.0.0.1",
        CLICKHOUSE_PORT=str(clickhouse_port),
        CLICKHOUSE_DATABASE=clickhouse_database,
        CLICKHOUSE_TTL_DAYS="0",
        PORTAL_VAR_DIR=str(var),
        SECRET_KEY="postgres-tests-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        JOB_LEASE_SECONDS=str(LEASE_SECONDS),
        BACKGROUND_JOBS="off",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        **more,
    )
    return env


class Portal:
    """One `manage.py` process, its output in a file."""

    def __init__(self, args: list[str], env: dict, log: Path):
        self.log_path = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


def wait_for(what: str, check, timeout: float = 60, every: float = 0.2, logs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n" + "\n---\n".join(p.log() for p in logs))


def on_server(settings, port: int, database: str) -> None:
    """This test process asks the same ClickHouse server (schema, spans, settled facts)."""
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "HOST": "127.0.0.1", "PORT": port, "DATABASE": database}
    schema.ensure_schema(ttl_days=0)


def store_calls(project_id: str, count: int) -> None:
    rows, _ = otlp.rows_from_request(request(*[llm_call() for _ in range(count)]), project_id)
    clickhouse.insert(schema.table(), schema.TRACE_COLUMNS, rows, tag="test.load", nanos_columns=schema.NANOS_COLUMNS)


def settled_calls(project_id: str) -> int:
    row = clickhouse.query(
        f"SELECT sum(Sign) AS n FROM {schema.table(schema.CALLS)} WHERE ProjectId = {{p:String}}",
        {"p": project_id},
        tag="test.settled",
    )
    return int(row[0]["n"] or 0)


def lease_row(postgres_server, database: str, name: str) -> tuple:
    with postgres_server.connect(database) as conn:
        return conn.execute(
            "SELECT holder, expires_at > now() FROM monitoring_lease WHERE name = %s", (name,)
        ).fetchone()


def test_postgres_two_settlers_one_holds_the_lease_and_a_killed_holder_is_replaced(
    settings, postgres_server, migrated, native_port, tmp_path
):
    started = time.monotonic()
    url = postgres_server.new_database(template=migrated)
    database = url.rsplit("/", 1)[1]
    on_server(settings, native_port, "pg_settle")
    project = str(uuid.uuid4())
    env = portal_env(url, native_port, "pg_settle", tmp_path)
    a = Portal(["settle", "--loop"], env, tmp_path / "a.log")
    b = Portal(["settle", "--loop"], env, tmp_path / "b.log")
    settlers = (a, b)
    try:
        # Three batches a second apart: each pass re-reads the last seconds before it, so without a
        # lease both settlers would see (and settle) every batch.
        total = 0
        for _ in range(3):
            store_calls(project, 4)
            total += 4
            time.sleep(1)
        wait_for("the first batches settled", lambda: settled_calls(project) == total, logs=settlers)
        time.sleep(2)  # both keep looping meanwhile

        working = [p for p in settlers if re.search(r"settled \d+ traces", p.log())]
        assert len(working) == 1, [p.log() for p in settlers]
        holder = working[0]
        standby = b if holder is a else a
        assert "took the lease 'settle'" in holder.log() and "took the lease" not in standby.log()
        assert "standing by" in standby.log()
        held_by, live = lease_row(postgres_server, database, "settle")
        assert f":{holder.pid}:" in held_by and live
        once = subprocess.run(
            [sys.executable, "manage.py", "settle"], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert once.returncode == 1 and "another settler holds the lease" in once.stderr  # a one-off pass

        # The holder dies without a word; its lease runs out and the other takes it and settles on.
        holder.stop(signal.SIGKILL)
        killed = time.monotonic()
        store_calls(project, 5)
        total += 5
        wait_for("the standby to take over", lambda: "took the lease 'settle'" in standby.log(), logs=settlers)
        took = time.monotonic() - killed
        wait_for("the late batch settled", lambda: settled_calls(project) == total, logs=settlers)
        assert took <= LEASE_SECONDS + 5, took
        assert f":{standby.pid}:" in lease_row(postgres_server, database, "settle")[0]
        wait_for("its pass's line", lambda: re.search(r"settled \d+ traces", standby.log()), 10, logs=settlers)

        # A holder stopped with SIGTERM finishes its pass and gives the lease up at once.
        assert standby.stop(signal.SIGTERM) == 0
        assert lease_row(postgres_server, database, "settle") == ("", None)
        once = subprocess.run(
            [sys.executable, "manage.py", "settle"], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert once.returncode == 0 and "traces settled" in once.stdout, once.stderr
        assert lease_row(postgres_server, database, "settle") == ("", None)  # given back after its pass
    finally:
        for p in settlers:
            p.stop(signal.SIGKILL)
    print(f"two settlers on PostgreSQL: {time.monotonic() - started:.1f} s")


SETUP_MONITOR = """
from monitoring.models import Project
from monitoring.monitors.models import Channel, Monitor
project = Project.objects.create(id="{project}", name="pg")
channel = Channel.objects.create(project=project, name="ops", kind=Channel.EMAIL, recipients="ops@example.com")
monitor = Monitor.objects.create(
    project=project, name="calls", metric="llm_calls", window_minutes=5, condition="above", threshold=0
)
monitor.channels.add(channel)
"""


def test_postgres_two_monitor_evaluators_evaluate_a_monitor_once_per_period_and_notify_once(
    settings, postgres_server, migrated, native_port, tmp_path
):
    started = time.monotonic()
    url = postgres_server.new_database(template=migrated)
    database = url.rsplit("/", 1)[1]
    on_server(settings, native_port, "pg_monitors")
    project = str(uuid.uuid4())
    store_calls(project, 3)
    with smtp_server(delay=3) as (smtp_port, messages):
        env = portal_env(url, native_port, "pg_monitors", tmp_path, EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(smtp_port))
        made = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SETUP_MONITOR.format(project=project)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr
        evaluators = [
            Portal(
                ["run_monitors", "--loop"],
                {**env, "MONITORS_HEARTBEAT_FILE": str(tmp_path / f"{n}.beat")},
                tmp_path / f"{n}.log",
            )
            for n in ("a", "b")
        ]
        try:
            wait_for("the notification", lambda: messages, logs=evaluators)
            time.sleep(4)  # longer than a send takes: a second sender would have delivered by now
        finally:
            for p in evaluators:
                p.stop()

    assert len(messages) == 1, [m["Subject"] for m in messages]
    assert "calls" in messages[0]["Subject"]
    with postgres_server.connect(database) as conn:
        events = conn.execute("SELECT kind, count(*) FROM monitors_event GROUP BY kind").fetchall()
        deliveries = conn.execute("SELECT state, attempts FROM monitors_delivery").fetchall()
        evaluated = conn.execute("SELECT last_evaluated_at, next_evaluation_at FROM monitors_monitor").fetchone()
    assert events == [("fired", 1)] and deliveries == [("sent", 1)]
    # One period (a minute) of the test: one of the two evaluated the monitor, the other found it taken.
    passes = [re.findall(r"^(\d+) monitors evaluated", p.log(), re.M) for p in evaluators]
    assert sorted(passes) == [["0"], ["1"]], [p.log() for p in evaluators]
    assert evaluated[1] - evaluated[0] == dt.timedelta(seconds=60)
    print(f"two monitor evaluators on PostgreSQL: {time.monotonic() - started:.1f} s")


def test_postgres_is_installed_by_ci_without_starting_its_service():
    script = (REPO / ".ci" / "run").read_text()
    assert "need+=(postgresql)" in script
    guard, install = script.index("policy-rc.d"), script.index('apt-get install -y -qq "${need[@]}"')
    assert guard < install  # Debian's postinst would start a cluster on 5432 otherwise
