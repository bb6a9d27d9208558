#!/usr/bin/env python3
"""The settler scaled out (SETTLE_PARTITIONS): spans settled per second per settler process, one
process against two processes with a partition each, on the two-shard test cluster (tests/cluster.py:
two processes of the real engine serving the native protocol on loopback).

    .venv/bin/python bench/settlers.py [--spans 60000] [--projects 8]

Loads --spans spans of the demo traffic generator (LiteLLM proxy + agents in every dialect, one
day), spread over --projects projects, into the cluster's Distributed tables; then times
  1. one settler: `manage.py settle` (SETTLE_PARTITIONS=1), one pass over everything;
  2. two settlers at once: `manage.py settle --partition 1/2` and `--partition 2/2` (each process
     settles the projects with cityHash64(ProjectId) % 2 = its index), on the same spans after the
     facts and the settler's state are emptied.
Prints, per process, the spans of its partition, its pass's seconds (as the command reports them:
Django's start-up not counted), spans/s; the wall time of both, the aggregate spans/s and the
speed-up; the CPU seconds (user + system) of the settler processes and of the two shard servers
(which do most of a pass's work). The machine is shared (2 cores for every engineer): the wall
figures are inflated and noisy, the CPU figures less so. Both shard servers and both settlers
share these 2 cores, so two settlers cannot get twice the throughput here; the per-process
rate is what adding a settler on its own cores would add.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
VAR = Path(tempfile.mkdtemp(prefix="apm-bench-settlers-"))
os.environ["PORTAL_VAR_DIR"] = str(VAR)
os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
os.environ["CLICKHOUSE_TTL_DAYS"] = "0"
os.environ.setdefault("SECRET_KEY", "bench-settlers-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ["DATABASE_URL"] = f"sqlite:///{VAR / 'db.sqlite3'}"
os.environ["BACKGROUND_JOBS"] = "off"


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


PASS = re.compile(r"(\d+) traces settled: .* in ([0-9.]+) s")


def _settle(env: dict, partitions: list[str]) -> tuple[list[float], float, float]:
    """Run one `manage.py settle` process per partition at once: (pass seconds each, wall, their CPU)."""
    cpu = _children_cpu()
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "settle", *(["--partition", p] if p else [])],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in partitions
    ]
    seconds = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        found = PASS.search(out or "")
        if proc.returncode or not found:
            raise SystemExit(f"settle failed:\n{out}")
        seconds.append(float(found[2]))
    return seconds, time.perf_counter() - started, _children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=60_000)
    parser.add_argument("--projects", type=int, default=8)
    args = parser.parse_args()

    from cluster import start_cluster

    cluster = start_cluster(shards=2)
    try:
        os.environ.update(CLICKHOUSE_HOST="127.0.0.1", CLICKHOUSE_PORT=str(cluster.ports[0]))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        cluster.apply_schema()
        run(cluster, args)
    finally:
        cluster.stop()
        shutil.rmtree(VAR, ignore_errors=True)


def run(cluster, args) -> None:
    import uuid

    from demo import traffic
    from monitoring.ingest import otlp
    from monitoring.store import clickhouse, schema

    projects = [str(uuid.uuid4()) for _ in range(args.projects)]
    per_run = traffic.estimate_spans(days=1, runs_per_day=1000) / 1000
    runs_per_day = max(1, round(args.spans / per_run / len(projects)))
    spans = 0
    started = time.perf_counter()
    for n, pid in enumerate(projects):
        for req, _ in traffic.generate_requests(days=1, runs_per_day=runs_per_day, seed=n, batch_spans=5000):
            rows, _ = otlp.rows_from_request(req, pid)
            clickhouse.insert(
                schema.table(), schema.TRACE_COLUMNS, rows, tag="bench.insert", nanos_columns=schema.NANOS_COLUMNS
            )
            spans += len(rows)
    print(f"{spans:,} spans of {len(projects)} projects loaded into 2 shards in {time.perf_counter() - started:.1f} s")
    by_partition = [
        int(
            clickhouse.query_one(
                f"SELECT count() AS n FROM {schema.table(schema.SPANS)} WHERE cityHash64(ProjectId) % 2 = {{i:UInt8}}",
                {"i": i},
                tag="bench.count",
            )["n"]
        )
        for i in (0, 1)
    ]
    env = dict(os.environ)
    shards = [p.pid for p in cluster.procs]

    def empty() -> None:
        for node in (0, 1):
            for name in (*schema.SETTLED, *schema.ROLLUPS, schema.SETTLE_STATE):
                if name != schema.FACETS_1H:  # fed by the spans, not the settler
                    cluster.execute(node, f"TRUNCATE TABLE otel_2.{name}_local")

    def measure(partitions: list[str], count: int) -> tuple[list[float], float, float, float]:
        empty()
        server_cpu = sum(_cpu_of(p) for p in shards)
        seconds, wall, cpu = _settle({**env, "SETTLE_PARTITIONS": str(count)}, partitions)
        return seconds, wall, cpu, sum(_cpu_of(p) for p in shards) - server_cpu

    print(f"load average before: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores, shared)")
    one, one_wall, one_cpu, one_server = measure([""], 1)
    print(
        f"1 settler : pass {one[0]:6.1f} s  {spans / one[0]:9,.0f} spans/s per process"
        f"  (wall {one_wall:.1f} s with start-up; CPU: settler {one_cpu:.1f} s, shard servers {one_server:.1f} s)"
    )
    two, two_wall, two_cpu, two_server = measure(["1/2", "2/2"], 2)
    for i, (s, n) in enumerate(zip(two, by_partition, strict=True)):
        print(f"2 settlers: partition {i + 1}of2 {n:,} spans, pass {s:6.1f} s  {n / s:9,.0f} spans/s per process")
    aggregate = spans / max(two)
    print(
        f"2 settlers: {aggregate:,.0f} spans/s together (the slower pass), {aggregate / (spans / one[0]):.2f}x one"
        f" settler; wall {two_wall:.1f} s with start-up; CPU: settlers {two_cpu:.1f} s, shard servers {two_server:.1f} s"
    )
    print(
        f"CPU per span (settlers + shard servers): one settler {(one_cpu + one_server) / spans * 1e6:.0f} us,"
        f" two settlers {(two_cpu + two_server) / spans * 1e6:.0f} us (the settlers' Django start-up included)"
    )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
