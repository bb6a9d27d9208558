#!/usr/bin/env python3
"""Dashboard speed on the embedded engine: load N realistic spans, then time every tab.

    .venv/bin/python bench/dashboard.py [--spans 1000000] [--requests 20]

Loads the demo traffic generator's spans (LiteLLM proxy + agents in every dialect, 30 days) into
its own data folder (var/bench, reused by later runs), then prints server time p50/p95 over
--requests requests per tab and window (24 h, 7 d, 30 d), measured around Django's test client
(whole view: auth, filter parsing, every query, template rendering).
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
os.environ.setdefault("PORTAL_VAR_DIR", str(REPO / "var" / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ["ALLOWED_HOSTS"] = "testserver"  # the test client's host
os.environ.pop("CLICKHOUSE_HOST", None)
os.environ["CLICKHOUSE_TTL_DAYS"] = "0"  # keep what was loaded, whatever day the bench runs

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from monitoring import clickhouse, demo, ingest, schema  # noqa: E402
from monitoring.models import Membership, Project  # noqa: E402

DAYS = 30


def load(project: Project, target: int) -> int:
    have = clickhouse.query_one(
        f"SELECT count() AS n FROM {schema.table()} WHERE ProjectId = {{p:String}}",
        {"p": str(project.id)},
        tag="bench.count",
    )["n"]
    if have >= target * 0.95:
        return have
    per_run = demo.estimate_spans(days=1, runs_per_day=1000) / 1000
    runs_per_day = max(1, int((target - have) / per_run / DAYS))
    started, stored = time.perf_counter(), have
    for request, _ in demo.generate_requests(
        days=DAYS, runs_per_day=runs_per_day, seed=int(time.time()), batch_spans=5000
    ):
        rows, _ = ingest.rows_from_request(request, str(project.id))
        clickhouse.insert(
            schema.table(), schema.TRACE_COLUMNS, rows, tag="bench.load", nanos_columns=schema.NANOS_COLUMNS
        )
        stored += len(rows)
        print(f"\r  loaded {stored:,} spans ({stored / (time.perf_counter() - started):,.0f}/s)", end="", flush=True)
    print()
    clickhouse.command(f"OPTIMIZE TABLE {schema.table()} FINAL", tag="bench.optimize")
    return stored


def timed(client: Client, url: str, n: int) -> tuple[float, float, int]:
    times, status = [], 0
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        status = response.status_code
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--load-only", action="store_true", help="load the spans and stop")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    schema.ensure_schema(ttl_days=0)
    user, _ = get_user_model().objects.get_or_create(username="bench")
    project, _ = Project.objects.get_or_create(name="bench")
    Membership.objects.get_or_create(project=project, user=user, defaults={"role": Membership.ADMIN})
    total = load(project, args.spans)
    print(f"{total:,} spans in project {project.id} ({settings.CLICKHOUSE['DATA_DIR']})")
    if args.load_only:
        return

    client = Client()
    client.force_login(user)
    base = f"/admin/monitoring/{project.id}"
    trace_id = clickhouse.query_one(
        f"SELECT TraceId AS t, count() AS n FROM {schema.table()} WHERE ProjectId = {{p:String}}"
        " AND Timestamp > now64() - INTERVAL 1 DAY GROUP BY TraceId ORDER BY n DESC LIMIT 1",
        {"p": str(project.id)},
        tag="bench.trace",
    ).get("t", "")
    pages = {
        "overview": f"{base}/overview/",
        "analytics": f"{base}/analytics/",
        "  + flow graph": f"{base}/analytics/flow",  # loaded beside the tab, in its own request
        "  + breakdowns": f"{base}/analytics/breakdowns",
        "traces agent": f"{base}/traces/?kind=agent",
        "traces llm": f"{base}/traces/?kind=llm",
        "traces all": f"{base}/traces/?kind=all",
    }
    print(f"\n{'page':<16} {'window':>6} {'p50 ms':>8} {'p95 ms':>8}  status")
    for name, url in pages.items():
        for window in ("24h", "7d", "30d"):
            sep = "&" if "?" in url else "?"
            p50, p95, status = timed(client, f"{url}{sep}range={window}", args.requests)
            print(f"{name:<16} {window:>6} {p50:>8.1f} {p95:>8.1f}  {status}")
    if trace_id:
        p50, p95, status = timed(client, f"{base}/traces/{trace_id}/", args.requests)
        print(f"{'trace detail':<16} {'-':>6} {p50:>8.1f} {p95:>8.1f}  {status}")


if __name__ == "__main__":
    main()
