"""Settlers that scale out (SETTLE_PARTITIONS, semantics/settle.py): projects split by
cityHash64(ProjectId) % N, each partition settled by the holder of its own lease, the partitions
shared out between the running `settle --loop` processes; readers use the low-water mark `facts`.

The proof runs two real settler processes against the two-shard test cluster (tests/cluster.py):
their facts equal one settler's on the same spans (several projects, LiteLLM gateway traces matched
to their agents' calls across traces and shards), each process settles one partition, and a killed
process's partition is taken over. A skipped partition leaves facts missing, a partition settled
by both at once leaves each fact twice: both fail the comparison.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from otlp import request
from test_cluster import _matched_pairs

from demo import traffic
from monitoring import background
from monitoring.ingest import otlp
from monitoring.models import Lease
from monitoring.semantics import resettle, scoping, settle
from monitoring.store import clickhouse, schema

REPO = Path(__file__).resolve().parents[1]
LEASE_SECONDS = 3


# --- the partitions, on the embedded engine ----------------------------------------------------------


def _partition_of(project_id: str, count: int) -> int:
    row = clickhouse.query_one(
        "SELECT cityHash64({p:String}) % {n:UInt64} AS i", {"p": project_id, "n": count}, tag="test"
    )
    return int(row["i"])


def _projects(per_partition: int = 2, count: int = 2) -> list[str]:
    """Project ids, `per_partition` of each partition, alternating."""
    found: dict[int, list[str]] = {i: [] for i in range(count)}
    while any(len(v) < per_partition for v in found.values()):
        pid = str(uuid.uuid4())
        found[_partition_of(pid, count)].append(pid)
    return [found[i][k] for k in range(per_partition) for i in range(count)]


def test_it_names_partitions_and_their_leases_and_state_rows():
    two = scoping.Partition(1, 2)
    assert (two.label, two.state_name, settle.lease(two)) == ("2of2", "facts/2of2", "settle/2of2")
    assert (scoping.ALL.state_name, settle.lease(scoping.ALL)) == ("facts", "settle")
    assert settle.job_name("resettle", two) == "resettle/2of2" and settle.job_name("settle", scoping.ALL) == "settle"
    assert not scoping.ALL.where() and "cityHash64(ProjectId)" in two.where().text


def test_in_embedded_mode_one_process_settles_whatever_the_setting_says(settings):
    settings.SETTLE_PARTITIONS = 4
    assert scoping.partitions() == [scoping.ALL]
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "HOST": "127.0.0.1"}
    assert scoping.partitions() == [scoping.Partition(i, 4) for i in range(4)]


def test_the_default_jobs_are_todays_one_settler():
    jobs = {job.name: job for job in background.jobs()}
    assert jobs["settle"].lease == jobs["resettle"].lease == "settle" and jobs["settle"].among == ()
    assert not [name for name in jobs if "/" in name]


def _state_row(name: str, ns: int) -> None:
    clickhouse.insert(
        schema.table(schema.SETTLE_STATE), ("Name", "Through"), [{"Name": name, "Through": ns_datetime(ns)}], tag="test"
    )


def ns_datetime(ns: int):
    from monitoring.store.sql import from_nanos

    return from_nanos(ns)


def test_a_partition_without_a_state_starts_where_the_settlers_before_it_got_to():
    count = 7  # names no other test writes
    if not scoping.state()[0]:
        _state_row("facts", 1_700_000_000_000_000_000)  # older than any other test's: harmless
    scoping.forget_state()
    mark = scoping.state()[0]  # the low-water mark as earlier tests left it
    first, second, third = (scoping.Partition(i, count) for i in range(3))
    assert scoping.partition_state(first)[0] == mark  # no row of its own: the low-water mark
    _state_row(first.state_name, mark + 5_000_000_000)
    assert scoping.partition_state(first)[0] == mark + 5_000_000_000 and scoping.partition_state(second)[0] == mark
    _state_row(third.state_name, mark - 10_000_000_000)  # left from an earlier N: read as the mark
    assert scoping.partition_state(third)[0] == mark
    assert scoping.low_water(count) == (mark, mark)  # the others have no row: the mark stays


# --- the share-out of partition leases between processes -----------------------------------------------


@pytest.fixture
def server_leases(settings):
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "HOST": "127.0.0.1"}  # only the mode is read
    background.release()
    background._members_seen.clear()
    yield
    background.release()
    background._members_seen.clear()


@pytest.mark.django_db
def test_a_process_alone_takes_every_partition_and_gives_one_up_when_another_arrives(server_leases):
    among = ("p/1of2", "p/2of2")
    assert background.claim("p/1of2", among) and background.claim("p/2of2", among)  # alone: both
    other = "other-host:9:beef"
    group = background._group(among)
    Lease.take(f"members/{group}/other", other, 30)  # a second settler announces itself
    background._members_seen.clear()
    assert background.claim("p/1of2", among) is True  # its share: one
    assert background.claim("p/2of2", among) is False  # the extra one, given up between runs
    assert Lease.objects.get(name="p/2of2").holder == ""
    assert Lease.take("p/2of2", other, 30)  # the newcomer takes it
    assert background.claim("p/2of2", among) is False
    Lease.release(other)  # it stops: its partition is free again, and this process alone again
    background._members_seen.clear()
    assert background.claim("p/2of2", among) is True


@pytest.mark.django_db
def test_a_standby_process_takes_over_a_dead_ones_partition(server_leases):
    among = ("q/1of2", "q/2of2")
    group = background._group(among)
    for name in among:  # another process held both, and was killed: its leases run out
        Lease.take(name, "dead:1:aa", 0.2)
    Lease.take(f"members/{group}/dead", "dead:1:aa", 0.2)
    assert not background.claim("q/1of2", among)
    time.sleep(0.3)
    background._members_seen.clear()
    assert background.claim("q/1of2", among) and background.claim("q/2of2", among)


# --- the pass of one partition, on the embedded engine ----------------------------------------------------


def _store(project_id: str, spans_or_request) -> None:
    req = spans_or_request if hasattr(spans_or_request, "resource_spans") else request(*spans_or_request)
    rows, _ = otlp.rows_from_request(req, project_id)
    clickhouse.insert(schema.table(), schema.TRACE_COLUMNS, rows, tag="test.load", nanos_columns=schema.NANOS_COLUMNS)


def _litellm(spans) -> object:
    req = request(*spans)
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            ss.scope.name = "litellm"
    return req


def _traffic(projects: list[str], seed: int = 3) -> None:
    """Per project: demo traffic and four agents whose calls went through the LiteLLM gateway in
    traces of their own (matched across traces)."""
    import datetime as dt

    anchor = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=2)
    for n, pid in enumerate(projects):
        for req, _ in traffic.generate_requests(days=1, runs_per_day=6, seed=seed + n, now=anchor):
            _store(pid, req)
        agents, gateways = _matched_pairs(anchor, n=4)
        for spans in agents:
            _store(pid, spans)
        for spans in gateways:
            _store(pid, _litellm(spans))


def _row(row: dict) -> tuple:
    """A fact's values as comparable text; numbers as floats (the native client gave a Float64 zero
    as 0 in one read and 0.0 in another)."""
    return tuple(repr(float(v)) if isinstance(v, (int, float)) else str(v) for v in row.values())


def _facts(projects: list[str]) -> dict[str, list[tuple]]:
    """Every settled fact of the projects (FINAL, without the version a pass stamps), sorted."""
    found = {}
    for name, columns in ((schema.CALLS, schema.CALL_COLUMNS), (schema.RUNS, schema.RUN_COLUMNS)):
        rows = clickhouse.query(
            f"SELECT {', '.join(columns)} FROM {schema.table(name)} FINAL"
            " WHERE ProjectId IN {p:Array(String)} AND Sign = 1",
            {"p": projects},
            tag="test.facts",
        )
        found[name] = sorted(_row(r) for r in rows)
    rows = clickhouse.query(
        f"SELECT {', '.join(schema.EDGE_COLUMNS)} FROM {schema.table(schema.EDGES)} FINAL"
        " WHERE ProjectId IN {p:Array(String)} AND Sign = 1",
        {"p": projects},
        tag="test.facts",
    )
    found[schema.EDGES] = sorted(_row(r) for r in rows)
    return found


@pytest.mark.django_db
def test_a_partitions_pass_settles_its_projects_only_and_records_the_low_water_mark():
    count = 2
    projects = _projects(1, count)  # [partition 0's, partition 1's]
    _traffic(projects)
    first, second = scoping.Partition(0, count), scoping.Partition(1, count)
    report = settle.settle_once(partition=first)
    assert report.projects == {projects[0]}
    assert _facts([projects[1]])[schema.CALLS] == [] and _facts([projects[0]])[schema.CALLS]
    before = scoping.state()[0]
    waiting = scoping.waiting_spans(before, projects)
    report = settle.settle_once(partition=second)
    assert report.projects == {projects[1]} and _facts([projects[1]])[schema.CALLS]
    through = scoping.partition_throughs(count)
    assert all(through) and scoping.low_water(count)[1] >= min(through)
    assert report.settled_ns == scoping.state()[0] >= min(through)  # /metrics' apm_settle_through_seconds
    assert waiting > 0 and scoping.waiting_spans(scoping.state()[0], projects) == 0


@pytest.mark.django_db
def test_waiting_spans_counts_each_partition_from_its_own_through(monkeypatch):
    projects = _projects(1, 2)
    _traffic(projects, seed=11)
    settle.settle_once(partition=scoping.Partition(0, 2))
    mark = scoping.state()[0]  # partition 1 has not passed: the low-water mark stays behind
    assert scoping.waiting_spans(mark, projects[:1]) > 0  # as one settler's reader counts
    monkeypatch.setattr(scoping, "partitions", lambda: [scoping.Partition(0, 2), scoping.Partition(1, 2)])
    # Partition 0 settled its project: none of its spans wait, whatever the low-water mark says.
    assert scoping.waiting_spans(mark, projects[:1]) == 0
    assert scoping.waiting_spans(mark, projects[1:]) > 0


@pytest.mark.django_db
def test_a_partitions_resettle_job_re_settles_its_own_projects_only(project, other_project):
    from monitoring.models import Project

    count = 2
    Project.objects.filter(pk__in=[project.pk, other_project.pk]).update(facts_version=5, facts_settled=1)
    mine = _partition_of(str(project.pk), count)
    theirs = _partition_of(str(other_project.pk), count)
    done = resettle.resettle_changed(scoping.Partition(mine, count))
    assert str(project.pk) in done and (str(other_project.pk) in done) == (theirs == mine)
    done = resettle.resettle_changed(scoping.Partition(theirs, count))
    assert str(other_project.pk) in done or theirs == mine


# --- two settler processes on the two-shard cluster -------------------------------------------------------


def _env(cluster, var: Path, partitions: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE_", "PORTAL_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATABASE_URL=f"sqlite:///{var / 'db.sqlite3'}",
        CLICKHOUSE_HOST="127.0.0.1",
        CLICKHOUSE_PORT=str(cluster.ports[0]),
        CLICKHOUSE_TTL_DAYS="0",
        PORTAL_VAR_DIR=str(var),
        SECRET_KEY="partition-tests-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        JOB_LEASE_SECONDS=str(LEASE_SECONDS),
        SETTLE_PARTITIONS=str(partitions),
        BACKGROUND_JOBS="off",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


class Settler:
    """One `manage.py settle --loop` process, its output in a file."""

    def __init__(self, env: dict, log: Path):
        self.log_path = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "settle", "--loop"],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(20)


def _wait(what: str, check, settlers, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n" + "\n---\n".join(s.log()[-3000:] for s in settlers))


def _holders(var: Path) -> dict[str, str]:
    with sqlite3.connect(var / "db.sqlite3") as db:
        rows = db.execute(
            "SELECT name, holder FROM monitoring_lease WHERE name LIKE 'settle/%' AND expires_at > datetime('now')"
        ).fetchall()
    return dict(rows)


def _newest_insert_ns() -> int:
    row = clickhouse.query_one(
        f"SELECT toUnixTimestamp64Nano(max(InsertedAt)) AS t FROM {schema.table(schema.SPANS)}", tag="test"
    )
    return int(row["t"] or 0)


def _settled_up_to(ns: int) -> bool:
    scoping.forget_state()
    return scoping.state()[0] > ns


def _differences(a: list[tuple], b: list[tuple]) -> list[str]:
    """The facts only one side has, column by column against the other side's nearest row."""
    out = []
    for row in sorted(set(a) - set(b))[:3]:
        near = min(set(b) - set(a), key=lambda r: sum(x != y for x, y in zip(r, row, strict=True)), default=())
        out.append(f"{[(i, x, y) for i, (x, y) in enumerate(zip(row, near, strict=True)) if x != y]}")
    return out + [f"{len(set(a) - set(b))} rows only in the first, {len(set(b) - set(a))} only in the second"]


@pytest.mark.cluster
@pytest.mark.django_db
def test_two_settler_processes_write_the_facts_one_settler_writes(cluster, settings, tmp_path):
    projects = _projects(2, 2)
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=_env(cluster, tmp_path, 2),
        capture_output=True,
        text=True,
    )
    assert migrated.returncode == 0, migrated.stderr
    settings.CLICKHOUSE = cluster.settings(settings.CLICKHOUSE)
    settings.SETTLE_PARTITIONS = 2
    _traffic(projects[:2])
    settlers = [Settler(_env(cluster, tmp_path, 2), tmp_path / f"settler{i}.log") for i in (1, 2)]
    try:
        newest = _newest_insert_ns()
        _wait("both partitions settled", lambda: _settled_up_to(newest), settlers)
        _wait("a partition each", lambda: len(set(_holders(tmp_path).values())) == 2, settlers)
        assert all(re.search(r"settled \d+ traces", s.log()) for s in settlers), [s.log() for s in settlers]
        # Each pass settled one partition's one project (a pass of a settler that left the filter
        # out would touch both projects, whether or not it found their facts written already).
        passes = [
            m
            for s in settlers
            for m in re.findall(r"settled \d+ traces of (\d+) projects \(partition (\dof2)\)", s.log())
        ]
        assert {p for _, p in passes} == {"1of2", "2of2"} and {n for n, _ in passes} == {"1"}, passes
        # One is killed: once its lease runs out the other settles its partition too.
        settlers[1].stop(signal.SIGKILL)
        _traffic(projects[2:], seed=21)
        newest = _newest_insert_ns()
        _wait("the survivor settled both partitions", lambda: _settled_up_to(newest), settlers, timeout=90)
        assert set(_holders(tmp_path)) == {"settle/1of2", "settle/2of2"}
        assert len(set(_holders(tmp_path).values())) == 1
    finally:
        for s in settlers:
            s.stop()
    shared = _facts(projects)
    assert {r[0] for r in shared[schema.CALLS]} >= set(projects)  # ProjectId leads CALL_COLUMNS
    assert shared[schema.RUNS] and shared[schema.EDGES]
    states = {name for (name,) in cluster.execute(0, "SELECT DISTINCT Name FROM otel_2.otel_settle_state_local")}
    assert {"facts", "facts/1of2", "facts/2of2"} <= states
    # The same spans settled afresh by one settler (partition ALL) in this process.
    for node in (0, 1):
        for name in (*schema.SETTLED, schema.SETTLE_STATE):
            cluster.execute(node, f"TRUNCATE TABLE otel_2.{name}_local")
    scoping.forget_state()
    settle.settle_once()
    single = _facts(projects)
    for name in schema.SETTLED:
        assert shared[name] == single[name], (name, _differences(shared[name], single[name]))
    assert len(single[schema.CALLS]) >= 4 * 8


@pytest.mark.django_db
def test_a_one_off_pass_over_one_partition_and_a_bad_partition_refused():
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    projects = _projects(1, 3)
    _traffic(projects[:1], seed=31)
    out = StringIO()
    call_command("settle", "--partition", f"{_partition_of(projects[0], 3) + 1}/3", stdout=out)
    assert re.match(r"[1-9]\d* traces settled", out.getvalue()) and _facts(projects[:1])[schema.CALLS]
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(CommandError, match="--partition must be I/N"):
            call_command("settle", "--partition", bad)


def test_a_one_off_pass_with_another_n_than_the_settlers_is_refused(settings):
    """Server mode: `--partition 1/4` beside settlers of SETTLE_PARTITIONS=2 would hold other leases
    and settle their projects a second time; refused before anything is read."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "HOST": "127.0.0.1"}
    settings.SETTLE_PARTITIONS = 2
    with pytest.raises(
        CommandError, match=r"splits the projects in 4, the settlers in 2 \(SETTLE_PARTITIONS\): use I/2"
    ):
        call_command("settle", "--partition", "1/4")
