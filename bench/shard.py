#!/usr/bin/env python3
"""What one node (one shard's worth of work) sustains: OTLP ingest and a settle pass, on the
embedded engine of this machine. The figures behind docs/cluster.md's plan.

    .venv/bin/python bench/shard.py [--spans 200000] [--batch 5000]

Into a fresh data folder (var/bench-shard, wiped first) it loads --spans spans of the demo traffic
generator (LiteLLM proxy + agents in every dialect, one day) in --batch span requests, timing
(1) decoding the OTLP protobuf into rows (what the receiver does per request) and (2) the INSERT
(otel_traces and the materialized views behind it: otel_spans, the TraceId lookup, the facets
rollup); then one settle pass over everything (the counting rules, otel_calls/runs/edges and their
rollups). Prints spans/s of each, bytes on disk per span, and what a day of each means.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VAR = REPO / "var" / "bench-shard"
sys.path.insert(0, str(REPO))
os.environ["PORTAL_VAR_DIR"] = str(VAR)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.pop("CLICKHOUSE_HOST", None)
os.environ["CLICKHOUSE_TTL_DAYS"] = "0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000, help="spans per OTLP request")
    args = parser.parse_args()
    shutil.rmtree(VAR, ignore_errors=True)
    VAR.mkdir(parents=True)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from demo import traffic
    from monitoring.ingest import otlp
    from monitoring.models import Project
    from monitoring.semantics import settle
    from monitoring.store import clickhouse, schema

    project = Project.objects.create(name="bench-shard")
    schema.ensure_schema(ttl_days=0)
    per_run = traffic.estimate_spans(days=1, runs_per_day=1000) / 1000
    runs_per_day = max(1, round(args.spans / per_run))
    decode_s = insert_s = 0.0
    spans = 0
    for request, _ in traffic.generate_requests(days=1, runs_per_day=runs_per_day, seed=1, batch_spans=args.batch):
        body = request.SerializeToString()
        started = time.perf_counter()
        decoded = otlp.decode_request(body, otlp.PROTOBUF_CONTENT_TYPE, None)
        rows, _ = otlp.rows_from_request(decoded, str(project.id))
        decode_s += time.perf_counter() - started
        started = time.perf_counter()
        clickhouse.insert(
            schema.table(), schema.TRACE_COLUMNS, rows, tag="bench.insert", nanos_columns=schema.NANOS_COLUMNS
        )
        insert_s += time.perf_counter() - started
        spans += len(rows)
    started = time.perf_counter()
    report = settle.settle_once()
    settle_s = time.perf_counter() - started
    disk = clickhouse.query(
        "SELECT table, sum(bytes_on_disk) AS bytes FROM system.parts WHERE database = {db:String} AND active"
        " GROUP BY table ORDER BY bytes DESC",
        {"db": clickhouse.database()},
        tag="bench.disk",
    )
    total_bytes = sum(int(r["bytes"]) for r in disk)
    day = 86_400
    print(f"{spans:,} spans, {report.traces:,} traces, {args.batch} spans per request, {os.cpu_count()} cores")
    print(f"decode OTLP -> rows   {decode_s:8.1f} s  {spans / decode_s:10,.0f} spans/s")
    print(f"INSERT (+ views)      {insert_s:8.1f} s  {spans / insert_s:10,.0f} spans/s")
    print(f"settle pass           {settle_s:8.1f} s  {spans / settle_s:10,.0f} spans/s", end="")
    print(f"  ({report.calls_written:,} call, {report.runs_written:,} run, {report.edges_written:,} edge rows)")
    print(f"on disk               {total_bytes / spans:8.0f} bytes/span (all tables, before merges finish)")
    for row in disk[:6]:
        print(f"    {row['table']:<28} {int(row['bytes']) / spans:8.0f} bytes/span")
    ingest_rate = spans / (decode_s + insert_s)
    settle_rate = spans / settle_s
    print(
        f"a day of one process at 100%: ingest {ingest_rate * day / 1e6:,.0f} M spans,"
        f" settle {settle_rate * day / 1e6:,.0f} M spans; load average now {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
