#!/usr/bin/env python3
"""Dashboard speed on the embedded engine: load N realistic spans, settle them, time every tab.

    .venv/bin/python bench/dashboard.py [--spans 1000000] [--requests 20] [--live] [--only runs,score]

Loads the demo traffic generator's spans (LiteLLM proxy + agents in every dialect, 30 days) into
its own data folder (var/bench-<N>, reused by later runs). Above 1M spans the 1M generated spans are
copied with fresh trace and span ids (same 30 days, 10x denser for 10M), which is minutes instead
of an hour of generating. Then one settler pass (timed: the backfill), then server time p50/p95 per
tab, part and API endpoint for 1 h, 24 h, 7 d and 30 d windows, measured around Django's test client
(whole view: auth, filter parsing, every query, template rendering). A trace's page and its API
are timed on distinct traces, each loaded once: ClickHouse answers a statement asked again with the
same values from its query condition cache, which a first look at a trace does not have.

Pages read settled facts (the settler keeping up: SETTLE_FRESH_SECONDS is large); `--live` times
them with every span unsettled instead (the settler stopped: the rules computed per request).

Targets (issue: 10M spans, every tab p50 <= 100 ms, p95 <= 200 ms, trace detail <= 60 ms; the
1M -> 10M ratio of each 30-day figure <= 1.5): each row prints its ratio to the target; results are
kept in var/bench-<N>/results.json so a run at 10M prints the 1M -> 10M ratios too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
_args = argparse.ArgumentParser(add_help=False)
_args.add_argument("--spans", type=int, default=1_000_000)
_args.add_argument("--live", action="store_true")
_known, _ = _args.parse_known_args()
BASE_SPANS = 1_000_000
os.environ.setdefault("PORTAL_VAR_DIR", str(REPO / "var" / f"bench-{_known.spans // 1_000_000 or 1}m"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ["ALLOWED_HOSTS"] = "testserver"  # the test client's host
os.environ.pop("CLICKHOUSE_HOST", None)
os.environ["CLICKHOUSE_TTL_DAYS"] = "0"  # keep what was loaded, whatever day the bench runs
os.environ["SETTLE_FRESH_SECONDS"] = "0" if _known.live else "1e12"  # settled-only reads, or all live
os.environ["RATELIMIT_ENABLE"] = "false"  # a benchmark, not an abuser
os.environ.setdefault("CLICKHOUSE_QUERY_TIMEOUT", "3600")  # loading 10M spans takes statements of minutes

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from demo import traffic  # noqa: E402
from monitoring.ingest import otlp  # noqa: E402
from monitoring.models import Membership, Project  # noqa: E402
from monitoring.semantics import settle  # noqa: E402
from monitoring.store import clickhouse, schema  # noqa: E402

DAYS = 30
TARGET_P50, TARGET_P95, TARGET_TRACE = 100.0, 200.0, 60.0


def _count(project: Project) -> int:
    return clickhouse.query_one(
        f"SELECT count() AS n FROM {schema.table()} WHERE ProjectId = {{p:String}}",
        {"p": str(project.id)},
        tag="bench.count",
    )["n"]


def generate(project: Project, target: int) -> int:
    have = _count(project)
    if have >= target * 0.95:
        return have
    per_run = traffic.estimate_spans(days=1, runs_per_day=1000) / 1000
    runs_per_day = max(1, int((target - have) / per_run / DAYS))
    started, stored = time.perf_counter(), have
    for request, _ in traffic.generate_requests(days=DAYS, runs_per_day=runs_per_day, seed=7, batch_spans=5000):
        rows, _ = otlp.rows_from_request(request, str(project.id))
        clickhouse.insert(
            schema.table(), schema.TRACE_COLUMNS, rows, tag="bench.load", nanos_columns=schema.NANOS_COLUMNS
        )
        stored += len(rows)
        print(f"\r  generated {stored:,} spans ({stored / (time.perf_counter() - started):,.0f}/s)", end="", flush=True)
    print()
    return stored


# A copy of the generated spans with fresh ids: 64-bit hashes of the old ids and the copy's number,
# in lower-case hex as the exporter writes them (parent links stay consistent within a copy). The
# source rows are chosen in a subquery: the SELECT's aliases would shadow its own columns.
_COPY = """
INSERT INTO {table} ({columns})
SELECT Timestamp,
       lower(concat(hex(cityHash64(TraceId, {k})), hex(cityHash64(TraceId, {k}, 1)))) AS TraceId,
       lower(hex(cityHash64(SpanId, {k}))) AS SpanId,
       if(ParentSpanId = '', '', lower(hex(cityHash64(ParentSpanId, {k})))) AS ParentSpanId,
       'bench-copy' AS TraceState, SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes,
       Duration, StatusCode, StatusMessage, Events.Timestamp, Events.Name, Events.Attributes,
       Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes
FROM (SELECT * FROM {table} WHERE ProjectId = {{p:String}} AND TraceState != 'bench-copy'
      AND cityHash64(TraceId) % 1000 < {share})
"""


def copy(project: Project, base: int, target: int) -> int:
    have = _count(project)
    k = 0
    while have < target * 0.95:
        k += 1
        share = min(1000, round(1000 * (target - have) / base))
        started = time.perf_counter()
        columns = ", ".join(f"`{c}`" for c in schema.TRACE_COLUMNS)
        # Only generated spans are copied (copies carry TraceState 'bench-copy').
        clickhouse.command(
            _COPY.format(table=schema.table(), columns=columns, k=k, share=share),
            {"p": str(project.id)},
            tag="bench.copy",
        )
        have = _count(project)
        print(f"  copy {k}: {have:,} spans ({time.perf_counter() - started:.0f} s)")
        if k > 20:
            break
    return have


def merge() -> None:
    """Merge each table's parts as a server's background merges do over time (a bulk load leaves a
    part per batch and day; pages would otherwise be timed against hundreds of fresh parts)."""
    started = time.perf_counter()
    names = [schema.TRACES, schema.LOOKUP, schema.SPANS, *schema.SETTLED, *schema.ROLLUPS]
    for name in names:
        clickhouse.command(f"OPTIMIZE TABLE {schema.table(name)} FINAL", tag="bench.merge")
    parts = clickhouse.query_one(
        "SELECT count() AS n FROM system.parts WHERE database = {db:String} AND active",
        {"db": clickhouse.database()},
        tag="bench.merge",
    )["n"]
    print(f"merged {len(names)} tables to {parts} parts in {time.perf_counter() - started:.1f} s")


def load(project: Project, spans: int, settled: bool = True) -> int:
    """The project's spans (generated, then copied up to `spans`), settled and merged once; the count."""
    total = generate(project, min(spans, BASE_SPANS))
    if spans > BASE_SPANS:
        total = copy(project, total, spans)
    print(f"{total:,} spans in project {project.id} ({settings.CLICKHOUSE['DATA_DIR']})")
    if settled:
        started = time.perf_counter()
        report = settle.settle_once()
        print(
            f"settler pass: {report.traces:,} traces, {report.calls_written:,} call / {report.runs_written:,} run /"
            f" {report.edges_written:,} edge rows in {time.perf_counter() - started:.1f} s"
        )
        if report.traces:  # a later run on a settled folder finds the parts merged already
            merge()
    return total


def score_every_run(project: Project) -> int:
    """One evaluation score ("relevance", uniform in [0, 1)) on every settled run of the project, as an
    evaluator would write them, once; the number of runs scored."""
    table = schema.table(schema.SCORES)
    have = clickhouse.query_one(
        f"SELECT count() AS n FROM {table} WHERE ProjectId = {{p:String}}", {"p": str(project.id)}, tag="bench.scores"
    )["n"]
    if not have:
        clickhouse.command(
            f"INSERT INTO {table} (ProjectId, ScoreId, Timestamp, TraceId, Name, Value, Label, Source, Author, Version)"
            " SELECT ProjectId, lower(hex(sipHash128('bench', TraceId))), Start + INTERVAL 1 SECOND, TraceId,"
            " 'relevance', v, if(v < 0.5, 'fail', 'pass'), 'evaluation', 'bench', 1"
            f" FROM (SELECT ProjectId, TraceId, Start, randCanonical() AS v FROM {schema.table(schema.RUNS)} FINAL"
            " WHERE ProjectId = {p:String} AND Sign = 1)",
            {"p": str(project.id)},
            tag="bench.scores",
        )
    return clickhouse.query_one(
        f"SELECT count() AS n FROM {table} WHERE ProjectId = {{p:String}}", {"p": str(project.id)}, tag="bench.scores"
    )["n"]


def timed_each(client: Client, urls: list[str]) -> tuple[float, float, int]:
    """p50/p95 (ms) of loading each of `urls` once, after one load of the first to warm up: a page
    asked again with the same statement is answered from ClickHouse's query condition cache (on by
    default), so the trace pages are timed on traces each looked up for the first time."""
    client.get(urls[0])
    times, status = [], 0
    for url in urls[1:]:
        started = time.perf_counter()
        status = client.get(url).status_code
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], status


def timed(client: Client, url: str, n: int) -> tuple[float, float, int]:
    times, status = [], 0
    client.get(url)  # warm: the first request of a kind plans its queries
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
    parser.add_argument("--live", action="store_true", help="time with every span unsettled")
    parser.add_argument("--load-only", action="store_true", help="load and settle the spans and stop")
    parser.add_argument("--only", default="", help="time only the pages whose name holds one of these words (a,b)")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    schema.ensure_schema(ttl_days=0)
    user, _ = get_user_model().objects.get_or_create(username="bench")
    project, _ = Project.objects.get_or_create(name="bench")
    Membership.objects.get_or_create(project=project, user=user, defaults={"role": Membership.ADMIN})
    total = load(project, args.spans, settled=not args.live)
    if not args.live:
        print(f"{score_every_run(project):,} runs scored (one 'relevance' evaluation each)")
    if args.load_only:
        return

    client = Client()
    client.force_login(user)
    base = f"/admin/monitoring/{project.id}"
    api = f"/api/v1/projects/{project.id}"
    # The biggest traces of the newest day of spans (the demo's agent runs, ~65 spans), one per load.
    trace_ids = [
        row["t"]
        for row in clickhouse.query(
            f"SELECT TraceId AS t, count() AS n FROM {schema.table(schema.SPANS)} WHERE ProjectId = {{p:String}}"
            f" AND Timestamp > (SELECT max(Timestamp) FROM {schema.table(schema.SPANS)} WHERE ProjectId = {{p:String}})"
            " - INTERVAL 1 DAY GROUP BY TraceId ORDER BY n DESC, TraceId LIMIT {k:UInt32}",
            {"p": str(project.id), "k": 2 * args.requests + 2},
            tag="bench.trace",
        )
    ]
    pages = {
        "overview": f"{base}/overview/",
        "analytics": f"{base}/analytics/",
        "  + flow graph": f"{base}/analytics/flow",
        "  + breakdowns": f"{base}/analytics/breakdowns",
        "traces agent": f"{base}/traces/?kind=agent",
        "traces llm": f"{base}/traces/?kind=llm",
        "traces all": f"{base}/traces/?kind=all",
        "api overview": f"{api}/overview",
        "api timeseries": f"{api}/timeseries",
        "api traces llm": f"{api}/traces?kind=llm",
        # Scores (issue: a score on every run): the runs list with its score column, and filtered.
        "traces runs": f"{base}/traces/?kind=runs",
        "runs score<0.5": f"{base}/traces/?kind=runs&score=relevance:lt:0.5",
        "api runs": f"{api}/traces?kind=runs",
        "api runs score": f"{api}/traces?kind=runs&score=relevance:lt:0.5",
        "runs sort score": f"{base}/traces/?kind=runs&sort=score:relevance",
        "api runs sort sc": f"{api}/traces?kind=runs&sort=score:relevance",
        "llm score cols": f"{base}/traces/?kind=llm&scores=relevance",
        # The score summaries: Analytics' scores part, the read API's summary (the Overview's quality
        # card is timed with the Overview and its API above).
        "  + scores": f"{base}/analytics/scores",
        "api score sum": f"{api}/scores/summary?name=relevance",
    }
    if args.only:
        pages = {name: url for name, url in pages.items() if any(word in name for word in args.only.split(","))}
    results: dict[str, dict] = {}
    print(f"\n{'page':<16} {'window':>6} {'p50 ms':>8} {'p95 ms':>8} {'p50/100':>8} {'p95/200':>8}  status")
    for name, url in pages.items():
        for window in ("1h", "24h", "7d", "30d"):
            sep = "&" if "?" in url else "?"
            p50, p95, status = timed(client, f"{url}{sep}range={window}", args.requests)
            results[f"{name.strip()} {window}"] = {"p50": p50, "p95": p95}
            print(
                f"{name:<16} {window:>6} {p50:>8.1f} {p95:>8.1f} {p50 / TARGET_P50:>8.2f} {p95 / TARGET_P95:>8.2f}  {status}"
            )
    if len(trace_ids) > 2 and not args.only:
        half = len(trace_ids) // 2  # the page and the API each on traces of their own
        p50, p95, status = timed_each(client, [f"{base}/traces/{t}/" for t in trace_ids[:half]])
        results["trace detail"] = {"p50": p50, "p95": p95}
        print(f"{'trace detail':<16} {'-':>6} {p50:>8.1f} {p95:>8.1f} {p50 / TARGET_TRACE:>8.2f} {'':>8}  {status}")
        p50, p95, status = timed_each(client, [f"{api}/traces/{t}" for t in trace_ids[half:]])
        print(f"{'api trace':<16} {'-':>6} {p50:>8.1f} {p95:>8.1f} {p50 / TARGET_TRACE:>8.2f} {'':>8}  {status}")

    out = Path(settings.VAR_DIR) / ("results-live.json" if args.live else "results.json")
    if args.only and out.exists():  # a partial run updates its rows and keeps the others
        results = json.loads(out.read_text())["results"] | results
    out.write_text(json.dumps({"spans": total, "results": results}, indent=1))
    small = REPO / "var" / "bench-1m" / out.name
    if args.spans > BASE_SPANS and small.exists():
        before = json.loads(small.read_text())
        print(f"\n1M -> {total / 1e6:.1f}M ratio of the 30-day p50 (target <= 1.5):")
        for key, now in results.items():
            if key.endswith("30d") and key in before["results"]:
                print(
                    f"  {key:<22} {before['results'][key]['p50']:>7.1f} -> {now['p50']:>7.1f} ms  x{now['p50'] / before['results'][key]['p50']:.2f}"
                )


if __name__ == "__main__":
    main()
