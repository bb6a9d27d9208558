#!/usr/bin/env python3
"""Server time of building each chart (monitoring/web/charts.py) from real query results: no SQL timed.

    PORTAL_VAR_DIR=var/bench-1m .venv/bin/python bench/charts.py [--repeat 30] [--lang ko]

Reads the Analytics and Overview inputs (timeseries, breakdowns, latency, flow graph) once per
window (1 h, 24 h, 7 d, 30 d ending at the newest settled slice) of the busiest project of a
data folder bench/dashboard.py filled, then times each chart function alone: the median and the
fastest of `--repeat` calls, in ms, in the viewer's language and zone (`--lang`, `--tz`). The
data folder is only read, but chdb must be its only user while this runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.pop("CLICKHOUSE_HOST", None)
os.environ["CLICKHOUSE_TTL_DAYS"] = "0"  # keep what was loaded, whatever day the bench runs
os.environ["SETTLE_FRESH_SECONDS"] = "1e12"  # settled facts only, as the pages read them

import django  # noqa: E402

django.setup()

from django.utils import timezone, translation  # noqa: E402

from monitoring.queries import breakdowns, flow, latency, timeseries  # noqa: E402
from monitoring.queries.filter import SpanFilter, Window  # noqa: E402
from monitoring.store import clickhouse, schema  # noqa: E402
from monitoring.web import charts  # noqa: E402

WINDOWS = {
    "1h": dt.timedelta(hours=1),
    "24h": dt.timedelta(hours=24),
    "7d": dt.timedelta(days=7),
    "30d": dt.timedelta(days=30),
}


def inputs(tz: str) -> dict[str, dict]:
    """Per window: what the Analytics views hand to the chart functions."""
    row = clickhouse.query_one(
        f"SELECT ProjectId, max(Slice) AS newest FROM {schema.table(schema.CALLS_15M)} GROUP BY ProjectId"
        " ORDER BY count() DESC LIMIT 1",
        tag="bench.charts",
    )
    end = row["newest"].replace(tzinfo=dt.UTC) if row["newest"].tzinfo is None else row["newest"]
    end = end.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    out = {}
    for name, length in WINDOWS.items():
        flt = SpanFilter(row["ProjectId"], Window(end - length, end), tz=tz)
        out[name] = {
            "series": timeseries.timeseries(flt),
            "shares": breakdowns.breakdowns(flt),
            "latency": latency.latency(flt),
            "flow": flow.agent_flow(flt),
        }
    return out


def calls(got: dict) -> dict:
    """chart name -> a call that builds it, as monitoring/web/views/analytics.py and kpis.py do."""
    s, shares = got["series"], got["shares"]
    colours = charts.model_colours(s.models)
    by_model = charts.model_colours([x.name for x in shares["model"]])
    kpi_lines = [s.total("cost_usd"), s.total("llm_calls"), s.runs, s.avg_latency_ms(), s.total("errors")]
    return {
        "cost_trend": lambda: charts.cost_trend(s, colours),
        "token_usage": lambda: charts.token_usage(s, colours),
        "calls_and_errors": lambda: charts.calls_and_errors(s),
        "input_cache": lambda: charts.input_cache(s),
        "agent_runs": lambda: charts.agent_runs(s),
        "agent_flow": lambda: charts.agent_flow(got["flow"]),
        "latency_histogram": lambda: charts.latency_histogram(got["latency"]),
        "breakdown model": lambda: charts.breakdown(shares["model"], "model", by_model),
        "breakdown service": lambda: charts.breakdown(shares["service"], "service"),
        "breakdown user": lambda: charts.breakdown(shares["user"], "user"),
        "5 KPI sparklines": lambda: [charts.sparkline(v) for v in kpi_lines],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--lang", default="ko")
    parser.add_argument("--tz", default="Asia/Seoul")
    args = parser.parse_args()
    translation.activate(args.lang)
    timezone.activate(args.tz)
    data = inputs(args.tz)
    print(f"ms per chart (median / fastest of {args.repeat}), {args.lang}, {args.tz}")
    print(f"{'chart':<20}" + "".join(f"{w:>16}" for w in WINDOWS))
    rows: dict[str, list[str]] = {}
    for _window, got in data.items():
        for name, build in calls(got).items():
            build()  # warm: translations, caches
            took = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                build()
                took.append((time.perf_counter() - t0) * 1000)
            rows.setdefault(name, []).append(f"{statistics.median(took):.2f} / {min(took):.2f}")
    for name, cells in rows.items():
        print(f"{name:<20}" + "".join(f"{c:>16}" for c in cells))
    sizes = {w: (len(g["series"].times), len(g["series"].models), len(g["flow"].nodes)) for w, g in data.items()}
    print("buckets, models, flow nodes per window:", sizes)


if __name__ == "__main__":
    main()
