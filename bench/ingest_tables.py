#!/usr/bin/env python3
"""What each extra of the span schema costs an insert: CPU per span of 4,096-row inserts into otel_traces,
with the extras taken away one at a time (cumulatively), embedded engine, in-process.

    .venv/bin/python bench/ingest_tables.py [--spans 20000] [--rows 4096]

A fresh data folder with the product's schema (monitoring.store.schema.ensure_schema); --spans demo
spans (the last 24 h) built into rows beforehand (not timed). Each step empties the span tables,
inserts every row through monitoring.store.clickhouse.insert, --rows per insert, and counts the
process's CPU (user + system) until 2 s after the last insert (its merges), per span; then drops one
more extra. The difference between two lines is what that extra costs. The last line is the
exporter's plain table, as bench/ingest.py's bare insert. A shared machine: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["PORTAL_VAR_DIR"] = tempfile.mkdtemp(prefix="apm-ingest-tables-")
os.environ["CLICKHOUSE_TTL_DAYS"] = "0"
os.environ.pop("CLICKHOUSE_HOST", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from demo import traffic  # noqa: E402
from monitoring.ingest import decode, otlp  # noqa: E402
from monitoring.store import clickhouse, schema  # noqa: E402


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def run(sql: str) -> None:
    clickhouse.command(sql, tag="bench.tables")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=20_000)
    ap.add_argument("--rows", type=int, default=4096)
    args = ap.parse_args()
    call_command("migrate", verbosity=0)
    schema.ensure_schema()
    per_run = traffic.estimate_spans(days=1, runs_per_day=1000) / 1000
    rows: list[dict] = []
    for req, _ in traffic.generate_requests(
        days=1, runs_per_day=int(args.spans / per_run * 1.1) + 1, batch_spans=512, now=datetime.now(UTC)
    ):
        body = req.SerializeToString()
        rows += decode.rows_from_body(body, otlp.PROTOBUF_CONTENT_TYPE, None, "bench").rows
        if len(rows) >= args.spans:
            break
    print(f"{len(rows):,} demo spans, {args.rows} per insert; load average {os.getloadavg()[0]:.1f}")
    t = schema.table
    derived = ", ".join(f"DROP COLUMN {name}" for name, _, _ in schema.derived_columns())
    steps = [
        ("the product's schema", []),
        ("- the trigram text index", [f"ALTER TABLE {t()} DROP INDEX {schema.SEARCH_LONG_INDEX}"]),
        ("- the bigram text index", [f"ALTER TABLE {t()} DROP INDEX {schema.SEARCH_INDEX}"]),
        ("- the by_trace_id projection", [f"ALTER TABLE {t()} DROP PROJECTION {schema.TRACE_PROJECTION}"]),
        ("- otel_span_attrs (+ attr keys)", [f"DROP VIEW {t(schema.ATTRS_MV)}", f"DROP VIEW {t(schema.ATTR_KEYS_MV)}"]),
        ("- otel_spans", [f"DROP VIEW {t(schema.SPANS_MV)}"]),
        ("- the TraceId lookup", [f"DROP VIEW {t(schema.LOOKUP_MV)}"]),
        ("- the scores-from-events view", [f"DROP VIEW {t(schema.SCORES_FROM_EVENTS_MV)}"]),
        ("- idx_project", [f"ALTER TABLE {t()} DROP INDEX idx_project"]),
        ("- the materialized columns", [f"ALTER TABLE {t()} {derived}"]),
    ]
    targets = [schema.TRACES, schema.SPANS, schema.LOOKUP, schema.ATTRS, schema.ATTR_KEYS, schema.SCORES]
    previous = None
    for label, ddl in steps:
        for sql in ddl:
            run(sql)
        for name in targets:
            run(f"TRUNCATE TABLE {t(name)}")
        time.sleep(2)
        c0 = cpu()
        for i in range(0, len(rows), args.rows):
            clickhouse.insert(
                t(),
                schema.TRACE_COLUMNS,
                rows[i : i + args.rows],
                tag="bench.tables",
                nanos_columns=schema.NANOS_COLUMNS,
            )
        time.sleep(2)
        used = (cpu() - c0) / len(rows) * 1e6
        delta = "" if previous is None else f"  ({used - previous:+.1f})"
        print(f"{label:<36} {used:7.1f} us/span CPU incl. merges{delta}")
        previous = used


if __name__ == "__main__":
    main()
