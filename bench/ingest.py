#!/usr/bin/env python3
"""OTLP ingest end to end, through the real server as bin/demo serves it (config/serve.sh, embedded).

    .venv/bin/python bench/ingest.py [--spans 100000] [--batch 512] [--concurrency 4] [--users 20]

Starts the portal on a loopback port with a fresh data folder, then runs three scenarios, each
sending --spans demo spans (LiteLLM proxy + agents in every dialect, the last 24 h) in OTLP
requests of --batch spans from --concurrency keep-alive connections:
  1. protobuf;  2. OTLP/JSON;  3. protobuf while --users simulated dashboard users keep loading
     tabs (Overview, Analytics + its flow graph and breakdowns parts, Traces agent/llm/all, Replay;
     24 h window), each user one request at a time, no think time.
Prints spans/s, request latency p50/p95, the largest server RSS seen, the server's CPU time per
span (user + system, all threads: steadier than spans/s on a shared machine; scenario 3's includes
serving the dashboard), and the ratio against the
targets of issue 23 (15,000 spans/s protobuf; JSON >= 0.5x protobuf; 7,500 spans/s under
dashboard load) and issue 12 (RSS <= 600 MB), plus the materialized views attached to otel_traces.

Then issue 23's ratio, in one line of exactly this form:
    served/bare CPU per span: <ratio>x (served <X> us, bare <Y> us)
- served: user + system CPU of every portal process from scenario 1's first export until every
  span is stored and settled (the settler's `apm_settle_through_seconds` on /metrics has passed the
  moment the last export was answered, and the spool is empty), per span;
- bare: the same spans, as rows built beforehand (not timed), inserted through the same client and
  insert format the served path uses (monitoring.store.clickhouse.insert), 4,096 per insert, into a
  table of the OTel Collector exporter's plain columns (its own DDL: no materialized columns,
  projections, views or second copies), in a process of its own on a fresh data folder, with the
  2 s of merges after the last insert counted; per span.
Loopback only, bounded (every request has a 60 s timeout). The machine is shared: say so with the
figures.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import pickle
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from live_portal import LivePortal  # noqa: E402

TARGET_PB, TARGET_UNDER_LOAD, TARGET_RSS_MB = 15_000, 7_500, 600
TARGET_RATIO = 3.0  # served CPU per span at most this many times the bare insert's (issue 23)
BARE_INSERT_ROWS = 4096
BARE_TABLE = "bare_traces"
SETTLE_WAIT_SECONDS = 120


def make_bodies(spans: int, batch: int, with_json: bool = True) -> tuple[list[bytes], list[bytes], int]:
    """About `spans` demo spans (the last 24 h) as OTLP requests of <= `batch` spans: protobuf bodies,
    the same as OTLP/JSON bodies (none without `with_json`), and the exact span count."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from google.protobuf import json_format

    from demo import traffic

    per_run = traffic.estimate_spans(days=1, runs_per_day=1000) / 1000
    runs = int(spans / per_run * 1.05) + 1
    pb, js, total = [], [], 0
    for req, n in traffic.generate_requests(days=1, runs_per_day=runs, batch_spans=batch, now=datetime.now(UTC)):
        if total >= spans:
            break
        pb.append(req.SerializeToString())
        total += n
        if not with_json:
            continue
        doc = json_format.MessageToDict(req)
        for rs in doc.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64decode(span[key]).hex()
                    for link in span.get("links", []):
                        for key in ("traceId", "spanId"):
                            if key in link:
                                link[key] = base64.b64decode(link[key]).hex()
        js.append(json.dumps(doc).encode())
    return pb, js, total


class RssSampler(threading.Thread):
    def __init__(self, portal: LivePortal):
        super().__init__(daemon=True)
        self.portal, self.peak, self.stop = portal, 0.0, threading.Event()

    def run(self):
        while not self.stop.wait(0.25):
            self.peak = max(self.peak, self.portal.rss_mib())


# OTLP/HTTP "Retryable Response Codes": the exporter sends the request again after a backoff.
RETRYABLE = (429, 502, 503, 504)


def send_all(portal, bodies: list[bytes], content_type: str, concurrency: int, retry: bool = False):
    """POSTs `bodies` to `portal`'s /v1/traces (it has `port` and `ingest_key`, empty for none) from
    `concurrency` keep-alive connections. With `retry`, a RETRYABLE answer is sent again after its
    Retry-After (at most 5 s) or a backoff of 0.25 s doubling to 4 s. Returns (seconds, latency ms of
    every attempt, {status: attempts})."""
    work: queue.Queue = queue.Queue()
    for body in bodies:
        work.put(body)
    latencies, statuses, lock = [], {}, threading.Lock()

    def sender():
        conn = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=60)
        headers = {"Content-Type": content_type}
        if portal.ingest_key:
            headers["Authorization"] = f"Bearer {portal.ingest_key}"
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            backoff = 0.25
            while True:
                started = time.perf_counter()
                conn.request("POST", "/v1/traces", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                if not retry or response.status not in RETRYABLE:
                    break
                after = response.headers.get("Retry-After", "")
                time.sleep(min(float(after), 5.0) if after.isdigit() else backoff)
                backoff = min(backoff * 2, 4.0)
        conn.close()

    threads = [threading.Thread(target=sender) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies, statuses


def login(conn: http.client.HTTPConnection, username: str = "owner", password: str = "pw-owner-123") -> str:
    """Logs in through the login form on `conn` (LivePortal.prepare's owner); the Cookie header."""
    conn.request("GET", "/accounts/login/")
    response = conn.getresponse()
    response.read()
    cookies = {
        c.split("=", 1)[0]: c.split("=", 1)[1].split(";", 1)[0] for c in response.headers.get_all("Set-Cookie") or []
    }
    token = cookies.get("csrftoken", "")
    form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
    conn.request(
        "POST",
        "/accounts/login/",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={token}"},
    )
    response = conn.getresponse()
    response.read()
    for c in response.headers.get_all("Set-Cookie") or []:
        cookies[c.split("=", 1)[0]] = c.split("=", 1)[1].split(";", 1)[0]
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


class DashboardUser(threading.Thread):
    """Logs in, then loads tab after tab until told to stop."""

    def __init__(
        self, portal: LivePortal, urls: list[str], stop: threading.Event, username="owner", password="pw-owner-123"
    ):
        super().__init__(daemon=True)
        self.portal, self.urls, self.stop, self.loads, self.errors = portal, urls, stop, 0, 0
        self.username, self.password = username, password
        self.latencies: list[float] = []

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.portal.port, timeout=60)
        cookie = login(conn, self.username, self.password)
        i = 0
        while not self.stop.is_set():
            url = self.urls[i % len(self.urls)]
            i += 1
            started = time.perf_counter()
            try:
                conn.request("GET", url, headers={"Cookie": cookie})
                response = conn.getresponse()
                response.read()
                self.loads += 1
                self.errors += response.status >= 400
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn = http.client.HTTPConnection("127.0.0.1", self.portal.port, timeout=60)
            self.latencies.append((time.perf_counter() - started) * 1000)


def cpu_seconds(portal: LivePortal) -> float:
    """User + system CPU time of the server's processes so far (all threads), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in portal.pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def metric(portal: LivePortal, name: str) -> float | None:
    """One unlabelled sample of the portal's /metrics (loopback may read it), None when absent."""
    status, _, body = portal.request("GET", "/metrics", timeout=10)
    if status != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_settled(portal: LivePortal, answered_at: float, timeout: float = SETTLE_WAIT_SECONDS) -> float:
    """Waits until every span answered by `answered_at` (Unix s) is stored and settled: the spool is
    empty and a settler pass that began after that moment has ended. Seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        through = metric(portal, "apm_settle_through_seconds") or 0.0
        spooled = metric(portal, "apm_ingest_spool_batches") or 0.0
        if through >= answered_at and not spooled:
            return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"not settled within {timeout} s")


def bare_insert_cpu(bodies: list[bytes], project_id: str) -> tuple[float, int]:
    """(CPU us per span, spans) of the bare insert of `bodies`' rows, measured by `bare_main` in a
    process of its own on a fresh data folder (only one process may open a folder)."""
    with tempfile.TemporaryDirectory(prefix="apm-bare-") as folder:
        path = Path(folder) / "bodies.pickle"
        path.write_bytes(pickle.dumps(bodies))
        env = {
            **os.environ,
            "PORTAL_VAR_DIR": folder,
            "CLICKHOUSE_TTL_DAYS": "0",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
        }
        env.pop("CLICKHOUSE_HOST", None)
        run = subprocess.run(
            [sys.executable, __file__, "--bare-bodies", str(path), "--bare-project", project_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if run.returncode != 0:
            raise RuntimeError(f"bare insert failed:\n{run.stdout}\n{run.stderr}")
        cpu_us, spans = run.stdout.strip().splitlines()[-1].split()
        return float(cpu_us), int(spans)


def bare_main(bodies_path: str, project_id: str) -> None:
    """The child of `bare_insert_cpu`: prints "<CPU us per span> <spans>"."""
    import django

    django.setup()
    from monitoring.ingest import decode, otlp
    from monitoring.store import clickhouse, schema

    bodies = pickle.loads(Path(bodies_path).read_bytes())
    rows = [
        row for body in bodies for row in decode.rows_from_body(body, otlp.PROTOBUF_CONTENT_TYPE, None, project_id).rows
    ]
    clickhouse.command(schema._traces_ddl(0, name=BARE_TABLE), tag="bench.bare")  # the exporter's own DDL
    clickhouse.query("SELECT 1", tag="bench.bare")  # the engine open and its schema made before timing
    time.sleep(2)  # and settled: the schema's own first merges are not the insert's
    times = os.times()
    before = times.user + times.system
    for i in range(0, len(rows), BARE_INSERT_ROWS):
        part = rows[i : i + BARE_INSERT_ROWS]
        clickhouse.insert(
            schema.table(BARE_TABLE), schema.TRACE_COLUMNS, part, tag="bench.bare", nanos_columns=schema.NANOS_COLUMNS
        )
    time.sleep(2)  # its merges
    times = os.times()
    stored = clickhouse.query_one(f"SELECT count() AS n FROM {schema.table(BARE_TABLE)}", tag="bench.bare")["n"]
    if int(stored) != len(rows):
        raise SystemExit(f"bare table holds {stored} rows, {len(rows)} inserted")
    print(f"{(times.user + times.system - before) / len(rows) * 1e6:.1f} {len(rows)}")


def report(label, spans, elapsed, latencies, statuses, rss, target, cpu):
    latencies = sorted(latencies)
    rate = spans / elapsed
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
    print(
        f"{label:<34} {rate:>9,.0f} spans/s  p50 {statistics.median(latencies):>6.0f} ms  p95 {p95:>6.0f} ms"
        f"  RSS {rss:>5.0f} MiB  server CPU {cpu / spans * 1e6:>5.1f} us/span  statuses {statuses}"
        f"  x{rate / target:.2f} of {target:,.0f}"
    )
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--server-env", action="append", default=[], help="NAME=VALUE for the server, repeatable")
    ap.add_argument("--bare-bodies", help=argparse.SUPPRESS)  # bare_main's child process
    ap.add_argument("--bare-project", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_bodies:
        bare_main(args.bare_bodies, args.bare_project)
        return

    pb, js, total = make_bodies(args.spans, args.batch)
    print(f"{total:,} demo spans in {len(pb)} requests of <= {args.batch}; load average {os.getloadavg()[0]:.1f}")
    env = dict(item.split("=", 1) for item in args.server_env)
    portal = LivePortal(**env).prepare()
    views = (
        portal.manage(
            "shell",
            "-c",
            "from monitoring.store import clickhouse; print(clickhouse.query_one(\"SELECT arrayStringConcat(dependencies_table, ', ')"
            " AS v FROM system.tables WHERE database = 'otel_2' AND name = 'otel_traces'\", tag='bench')['v'])",
        )
        .strip()
        .splitlines()[-1]
    )
    print(f"materialized views fed by each otel_traces insert: {views or 'none'}")
    portal.start()
    try:
        rss = RssSampler(portal)
        rss.start()
        cpu = first = cpu_seconds(portal)
        elapsed, lat, st = send_all(portal, pb, "application/x-protobuf", args.concurrency)
        answered_at = time.time()
        cpu, used = cpu_seconds(portal), cpu_seconds(portal) - cpu
        rate_pb = report("1. protobuf", total, elapsed, lat, st, rss.peak, TARGET_PB, used)
        waited = wait_settled(portal, answered_at)
        cpu = cpu_seconds(portal)
        served = (cpu - first) / total * 1e6
        print(f"   stored and settled {waited:.1f} s after the last answer; server CPU {served:.1f} us/span in all")
        inserts = metric(portal, "apm_ingest_insert_batch_spans_count") or 0
        if inserts:
            spans_in = metric(portal, "apm_ingest_insert_batch_spans_sum") or 0
            print(f"   {inserts:.0f} inserts of {spans_in / inserts:,.0f} spans on average")
        elapsed, lat, st = send_all(portal, js, "application/json", args.concurrency)
        cpu, used = cpu_seconds(portal), cpu_seconds(portal) - cpu
        rate_js = report("2. OTLP/JSON", total, elapsed, lat, st, rss.peak, TARGET_PB / 2, used)
        print(f"   JSON / protobuf = {rate_js / rate_pb:.2f} (target >= 0.5)")

        base = f"/admin/monitoring/{portal.project_id}"
        urls = [
            f"{base}/overview/?range=24h",
            f"{base}/analytics/?range=24h",
            f"{base}/analytics/flow?range=24h",
            f"{base}/analytics/breakdowns?range=24h",
            f"{base}/traces/?kind=agent&range=24h",
            f"{base}/traces/?kind=llm&range=24h",
            f"{base}/traces/?kind=all&range=24h",
            f"{base}/replay/?range=24h",
        ]
        stop = threading.Event()
        users = [DashboardUser(portal, urls[i % len(urls) :] + urls[: i % len(urls)], stop) for i in range(args.users)]
        for user in users:
            user.start()
        time.sleep(2)
        cpu = cpu_seconds(portal)
        elapsed, lat, st = send_all(portal, pb, "application/x-protobuf", args.concurrency)
        used = cpu_seconds(portal) - cpu
        stop.set()
        for user in users:
            user.join(70)
        label = f"3. protobuf + {args.users} dashboard users"
        report(label, total, elapsed, lat, st, rss.peak, TARGET_UNDER_LOAD, used)
        tab = sorted(x for u in users for x in u.latencies)
        if tab:
            print(
                f"   dashboard: {sum(u.loads for u in users)} tab loads ({sum(u.errors for u in users)} errors),"
                f" p50 {statistics.median(tab):.0f} ms, p95 {tab[int(len(tab) * 0.95) - 1]:.0f} ms"
            )
        rss.stop.set()
        print(f"peak server RSS {rss.peak:.0f} MiB (target <= {TARGET_RSS_MB}: x{rss.peak / TARGET_RSS_MB:.2f})")
        # Stored = sent is checked once the spool has drained (a stop now would leave the last
        # write-behind batches in the spool, stored at the next start, which a count cannot see).
        wait_settled(portal, time.time())
    finally:
        portal.stop()
    stored = portal.count()
    print(f"stored: {stored:,} spans (sent {3 * total:,}: {'equal' if stored == 3 * total else 'NOT EQUAL'})")
    bare, bare_spans = bare_insert_cpu(pb, portal.project_id)
    assert bare_spans == total, (bare_spans, total)
    print(
        f"served/bare CPU per span: {served / bare:.2f}x (served {served:.1f} us, bare {bare:.1f} us)\n"
        f"   target <= {TARGET_RATIO:.0f}x: x{TARGET_RATIO / (served / bare):.2f} of it"
    )


if __name__ == "__main__":
    main()
