#!/usr/bin/env python3
"""A whole team on the dashboard at once (issue 23, target 2), through the served portal.

    .venv/bin/python bench/team.py [--var var/bench-10m] [--users 20] [--seconds 60] [--window 30d]

Serves the data folder `bench/dashboard.py --spans 10000000 --load-only` loaded and settled (9.8M
spans) exactly as bin/demo serves it (config/serve.sh: embedded engine, waitress), logs in --users
people through the login form and has each load the tabs of bench/dashboard.py's mix (Overview,
Analytics and its flow graph and breakdowns parts, Agent runs, LLM Call, All, Replay; one --window)
one after another with no pause, each starting at a different tab, for --seconds. First one person
alone, then all of them at once. Prints pages/s, p50 and p95 per page load (wall time seen by the
client: queueing included), the server's CPU per page, and issue 23's targets: p95 <= 1 s with
--users users, pages/s with --users >= 1.5x pages/s with one.

A page a teammate loaded a moment ago is answered from the repeat-view cache (monitoring/web/cache.py)
while the data has not changed, as in real use; `--distinct` gives every person a window of their own
(shifted by a minute per person) so that nobody's answer is anybody else's: the uncached worst case.
The folder must not be open in another process (the embedded engine opens it once). Loopback only.
The machine is shared: say so with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import sys
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from ingest import DashboardUser, cpu_seconds  # noqa: E402
from live_portal import LivePortal  # noqa: E402

TARGET_P95_MS, TARGET_SCALE = 1000.0, 1.5
TABS = (
    "overview/",
    "analytics/",
    "analytics/flow",
    "analytics/breakdowns",
    "traces/?kind=agent",
    "traces/?kind=llm",
    "traces/?kind=all",
    "replay/",
)
USER, PASSWORD = "team", "pw-team-123"


def urls_for(project_id: str, window: str, person: int, distinct: bool, newest: dt.datetime) -> list[str]:
    """The tab mix for one person, rotated to start at their own tab; with `distinct`, a window of
    their own (`from`/`to` ending `person` minutes before the newest span)."""
    base = f"/admin/monitoring/{project_id}"
    if distinct:
        days = {"1h": 1 / 24, "24h": 1, "7d": 7, "30d": 30}[window]
        end = newest - dt.timedelta(minutes=person)
        query = urllib.parse.urlencode(
            {"from": (end - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M"), "to": end.strftime("%Y-%m-%dT%H:%M")}
        )
    else:
        query = f"range={window}"
    urls = [f"{base}/{tab}{'&' if '?' in tab else '?'}{query}" for tab in TABS]
    k = person % len(urls)
    return urls[k:] + urls[:k]


def run_people(portal: LivePortal, people: list[list[str]], seconds: float) -> dict:
    """Each list of URLs loaded in a loop by one logged-in person for `seconds`; the figures."""
    stop = threading.Event()
    users = [DashboardUser(portal, urls, stop, username=USER, password=PASSWORD) for urls in people]
    for user in users:
        user.start()
    while any(user.loads == 0 and user.is_alive() for user in users):
        time.sleep(0.05)  # everyone logged in and answered once: start the clock
    for user in users:
        user.latencies.clear()
        user.loads = user.errors = 0
    cpu, started = cpu_seconds(portal), time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for user in users:
        user.join(120)
    elapsed = time.perf_counter() - started  # the loads under way at the stop are counted: their time too
    used = cpu_seconds(portal) - cpu
    latencies = sorted(x for user in users for x in user.latencies)
    loads = sum(user.loads for user in users)
    return {
        "loads": loads,
        "errors": sum(user.errors for user in users),
        "pages_per_s": loads / elapsed,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p95_ms": latencies[max(0, math.ceil(len(latencies) * 0.95) - 1)]
        if latencies
        else float("nan"),  # nearest rank
        "cpu_ms_per_page": used / loads * 1000 if loads else float("nan"),
    }


def line(label: str, r: dict) -> str:
    return (
        f"{label:<10} {r['pages_per_s']:>8.1f} pages/s  p50 {r['p50_ms']:>6.0f} ms  p95 {r['p95_ms']:>6.0f} ms"
        f"  server CPU {r['cpu_ms_per_page']:>5.1f} ms/page  {r['loads']} loads, {r['errors']} errors"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--var", default=str(REPO / "var" / "bench-10m"), help="a data folder bench/dashboard.py loaded")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--window", default="30d", choices=("1h", "24h", "7d", "30d"))
    ap.add_argument("--distinct", action="store_true", help="a window of their own per person (no shared answers)")
    ap.add_argument("--server-env", action="append", default=[], help="NAME=VALUE for the server, repeatable")
    args = ap.parse_args()
    if not (Path(args.var) / "clickhouse").exists():
        sys.exit(f"{args.var} holds no engine data: load it first (bench/dashboard.py --spans 10000000 --load-only)")

    portal = LivePortal(args.var, **dict(item.split("=", 1) for item in args.server_env))
    made = portal.manage(
        "shell",
        "-c",
        "import json; from django.contrib.auth import get_user_model;"
        " from monitoring.models import Membership, Project;"
        " from monitoring.store import clickhouse, schema;"
        " p = Project.objects.get(name='bench');"
        f" u, _ = get_user_model().objects.get_or_create(username={USER!r}); u.set_password({PASSWORD!r}); u.save();"
        " Membership.objects.get_or_create(project=p, user=u, defaults={'role': Membership.VIEWER});"
        " n = clickhouse.query_one(f'SELECT count() AS n, toUnixTimestamp(max(Timestamp)) AS t FROM {schema.table()}"
        " WHERE ProjectId = {{p:String}}', {'p': str(p.id)}, tag='bench');"
        " print(json.dumps({'project': str(p.id), 'spans': int(n['n']), 'newest': int(n['t'])}))",
        timeout=600,
    )
    info = json.loads(made.strip().splitlines()[-1])
    newest = dt.datetime.fromtimestamp(info["newest"], dt.UTC)
    print(
        f"{info['spans']:,} spans in {args.var}; {args.window} window{' (one per person)' if args.distinct else ''};"
        f" {args.seconds:.0f} s per run; load average {os.getloadavg()[0]:.1f}"
    )
    portal.start(timeout=600)
    try:
        people = [urls_for(info["project"], args.window, i, args.distinct, newest) for i in range(args.users)]
        run_people(portal, people[:1], min(10.0, args.seconds))  # warm: the engine's caches, the first loads
        one = run_people(portal, people[:1], args.seconds)
        print(line("1 user", one))
        team = run_people(portal, people, args.seconds)
        print(line(f"{args.users} users", team))
    finally:
        portal.stop()
    scale = team["pages_per_s"] / one["pages_per_s"] if one["pages_per_s"] else float("nan")
    print(
        f"{args.users} users p95 {team['p95_ms']:.0f} ms (target <= {TARGET_P95_MS:.0f}: x{team['p95_ms'] / TARGET_P95_MS:.2f});"
        f" pages/s {args.users} users / 1 user: {scale:.2f} (target >= {TARGET_SCALE}: x{scale / TARGET_SCALE:.2f})"
    )


if __name__ == "__main__":
    main()
