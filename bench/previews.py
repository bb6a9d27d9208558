#!/usr/bin/env python3
"""The runs list's input/output previews (monitoring.queries.runs.add_previews) on the embedded engine.

    .venv/bin/python bench/previews.py [--days 7] [--runs-per-day 300] [--repeat 20]

Loads the demo traffic (its own data folder, var/bench-previews-<days>x<runs>, reused), settles it,
then times add_previews for the newest page of PAGE_SIZE runs and the 7-day window's page sorted by
cost: p50 wall ms and the process's CPU ms per call (chdb runs in-process, so CPU includes the
engine's threads). Prints how many runs of a page fell back to their agent steps' own text.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
_args = argparse.ArgumentParser()
_args.add_argument("--days", type=int, default=7)
_args.add_argument("--runs-per-day", type=int, default=300)
_args.add_argument("--repeat", type=int, default=20)
ARGS = _args.parse_args()
os.environ.setdefault("PORTAL_VAR_DIR", str(REPO / "var" / f"bench-previews-{ARGS.days}x{ARGS.runs_per_day}"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.pop("CLICKHOUSE_HOST", None)
os.environ["CLICKHOUSE_TTL_DAYS"] = "0"
os.environ["SETTLE_FRESH_SECONDS"] = "1e12"  # settled reads, as a settler keeping up gives

import django  # noqa: E402

django.setup()

import datetime as dt  # noqa: E402

from django.core.management import call_command  # noqa: E402

from demo import traffic  # noqa: E402
from monitoring.ingest import otlp  # noqa: E402
from monitoring.models import Project  # noqa: E402
from monitoring.queries import runs as runs_q  # noqa: E402
from monitoring.queries.filter import SpanFilter, Window  # noqa: E402
from monitoring.semantics import settle  # noqa: E402
from monitoring.store import clickhouse, schema  # noqa: E402


def main() -> None:
    call_command("migrate", verbosity=0)
    schema.ensure_schema()
    project, _ = Project.objects.get_or_create(name="bench-previews")
    have = clickhouse.query_one(
        f"SELECT count() AS n FROM {schema.table()} WHERE ProjectId = {{p:String}}", {"p": str(project.id)}, tag="bench"
    )["n"]
    if not have:
        for request, _ in traffic.generate_requests(days=ARGS.days, runs_per_day=ARGS.runs_per_day, seed=5):
            rows, _ = otlp.rows_from_request(request, str(project.id))
            clickhouse.insert(
                schema.table(), schema.TRACE_COLUMNS, rows, tag="bench", nanos_columns=schema.NANOS_COLUMNS
            )
    settle.settle_once()
    now = dt.datetime.now(dt.UTC)
    flt = SpanFilter(str(project.id), Window(now - dt.timedelta(days=ARGS.days + 1), now))
    for sort in ("time", "cost"):
        page = runs_q.list_runs(flt, runs_q.RunQuery(sort=sort)).items
        walls, cpus = [], []
        for _ in range(ARGS.repeat):
            w, c = time.perf_counter(), time.process_time()
            runs_q.add_previews(flt.project_id, page)
            walls.append((time.perf_counter() - w) * 1000)
            cpus.append((time.process_time() - c) * 1000)
        shown = sum(1 for r in page if r.first_input)
        print(
            f"sort={sort}: {len(page)} runs, {shown} with an input; add_previews p50 {statistics.median(walls):.1f} ms wall,"
            f" {statistics.median(cpus):.1f} ms CPU (max {max(walls):.1f} ms wall)"
        )


if __name__ == "__main__":
    main()
