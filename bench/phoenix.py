#!/usr/bin/env python3
"""Side by side with Arize Phoenix: the same OTLP spans into both, then the three questions of a UI.

    .venv/bin/python bench/phoenix.py [--spans 100000] [--requests 20] [--phoenix-python PATH]

PATH (or $PHOENIX_PYTHON, else .venv-phoenix/bin/python in or beside the repository) is the Python
of a venv of its own with Phoenix (never ours: its dependencies are not our pins), e.g.
    python3 -m venv ../.venv-phoenix && ../.venv-phoenix/bin/pip install arize-phoenix==20.26.1

bench/ingest.py's demo spans (LiteLLM proxy + agents, the last 24 h) are made once, protobuf in
requests of --batch spans, and sent by its sender from --concurrency keep-alive connections (OTLP/HTTP's
retryable answers, Phoenix's 503 "at capacity", sent again after a backoff): first to the portal as
bench/ingest.py serves it (gunicorn on a loopback port, embedded engine, a temp data folder), which is
then stopped; then to `phoenix serve` (loopback, a temp PHOENIX_WORKING_DIR: SQLite). Each product:
  - ingest spans/s acknowledged, and end to end: until its own API counts every span (our Health page;
    Phoenix's GraphQL `recordCount`: Phoenix answers before it stores), with peak RSS and CPU per span;
  - p50 (p95) over --requests HTTP requests, timed at the client after one warm-up, of the three
    questions as each UI asks them, over one window holding every span:
    trace list:  our Traces tab (newest 50 agent runs) and API `traces?kind=runs`; Phoenix's
                 ProjectPageQueriesTracesQuery (root spans newest first, each with <= 50 descendants)
                 asking 50 rows where its UI asks 30;
    aggregates:  our Overview tab and API `overview`; Phoenix's ProjectPageQuery (trace count, cost,
                 latency p50/p99) with `recordCount` and `tokenCountTotal` added (span count, tokens).
                 Phoenix keeps these answers in memory until spans of the project are inserted
                 (phoenix/server/api/dataloaders/cache, dml_event_handler.py): with none arriving its
                 p50 is a cache hit, "first" the computed answer;
    one trace:   the generated trace with the most spans: our trace page and API `traces/<id>`;
                 Phoenix's TraceDetailsQuery.
Phoenix's GraphQL texts are read from its own UI bundle (phoenix/server/static), as its browser sends
them. Prints both figures and the speed-up ours/Phoenix (x2.0: ours twice as fast); without Phoenix,
says so after our figures and exits 0. Loopback only (Phoenix's gRPC receiver binds every interface
and has no setting for it: a wrapper binds it to 127.0.0.1); bounded (--store-timeout, 120 s a
request); both servers are stopped on exit, on errors and on Ctrl-C. The machine is shared: say so.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # (it puts the repository and tests/ on sys.path)
from live_portal import LivePortal, free_port, rss_mib

REPO = ingest.REPO
REQUEST_TIMEOUT = 120.0
PHOENIX_VENVS = [REPO / ".venv-phoenix", REPO.parent / ".venv-phoenix"]
# Started by the Phoenix Python: `phoenix serve`, its gRPC OTLP receiver bound to loopback.
PHOENIX_MAIN = """
import sys
from grpc.aio import _server
bind = _server.Server.add_insecure_port
_server.Server.add_insecure_port = lambda self, address: bind(self, address.replace("[::]:", "127.0.0.1:"))
from phoenix.server.main import main
sys.argv = ["phoenix", "serve"]
main()
"""
UI_QUERIES = ("ProjectPageQueriesTracesQuery", "ProjectPageQuery", "TraceDetailsQuery")


class Http:
    """One keep-alive connection to a loopback port (opened again after a failure)."""

    def __init__(self, port: int, headers: dict[str, str] | None = None):
        self.port, self.headers = port, dict(headers or {})
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)

    def call(self, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, bytes]:
        """(status, body); a keep-alive connection the server closed while idle (uvicorn: after 5 s) is
        opened again once."""
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers={**self.headers, **headers})
                response = self.conn.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.RemoteDisconnected):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class Ours:
    """The portal's pages and read API, logged in as LivePortal.prepare's owner."""

    name = "ours"

    def __init__(self, portal: LivePortal, window: tuple[datetime, datetime]):
        self.portal, self.port, self.ingest_key = portal, portal.port, portal.ingest_key
        self.http = Http(portal.port, {"Accept-Language": "en"})
        self.http.headers["Cookie"] = ingest.login(self.http.conn)
        self.range = f"from={iso(window[0])}&to={iso(window[1])}"
        self.page = f"/admin/monitoring/{portal.project_id}"
        self.api = f"/api/v1/projects/{portal.project_id}"

    def pids(self) -> list[int]:
        return self.portal.pids()

    def rss_mib(self) -> float:
        return rss_mib(self.pids())

    def health(self) -> str:
        return self.http.call("GET", "/admin/monitoring/health")[1].decode()

    def stored(self) -> int:
        """Spans in the project, as the Health page's table check counts them."""
        found = re.search(r'data-check="table".*?<td>.*?</td>\s*<td>.*?</td>\s*<td>([\d,]+)', self.health(), re.S)
        return int(found.group(1).replace(",", "")) if found else 0

    def settled(self) -> bool:
        found = re.search(r'data-check="settler".*?</tr>', self.health(), re.S)
        return bool(found and "nothing waiting" in found.group(0))

    def questions(self, trace_id: str) -> dict:
        """Label -> a function asking it once, returning the HTTP status and a short account of the answer."""

        def page(path: str):
            return lambda: (lambda s, b: (s, f"{len(b) // 1024} KiB HTML"))(*self.http.call("GET", path))

        def api(path: str, account):
            def ask():
                status, body = self.http.call("GET", path)
                return status, account(json.loads(body)) if status == 200 else body[:200]

            return ask

        return {
            "trace list, page": page(f"{self.page}/traces/?{self.range}"),
            "trace list, API": api(
                f"{self.api}/traces?kind=runs&limit=50&{self.range}", lambda d: f"{len(d['items'])} runs"
            ),
            "aggregates, page": page(f"{self.page}/overview/?{self.range}"),
            "aggregates, API": api(
                f"{self.api}/overview?{self.range}",
                lambda d: (
                    f"{d['llm_calls']:,} LLM calls, {d['agent_calls']:,} agent runs,"
                    f" {d['input_tokens'] + d['output_tokens']:,} tokens, ${d['total_cost_usd']:,.2f},"
                    f" p50 {d['p50_latency_ms']:.0f} / p99 {d['p99_latency_ms']:.0f} ms"
                ),
            ),
            "one trace, page": page(f"{self.page}/traces/{trace_id}/"),
            "one trace, API": api(f"{self.api}/traces/{trace_id}", lambda d: f"{len(d['spans'])} spans"),
        }


class Phoenix:
    """`phoenix serve` on loopback ports with its own working directory; GraphQL as its UI asks."""

    name = "Phoenix"
    ingest_key = ""  # no auth: Phoenix's default

    def __init__(self, python: str, window: tuple[datetime, datetime]):
        self.python, self.window = python, window
        self.dir = Path(tempfile.mkdtemp(prefix="apm-phoenix-"))
        self.port, self.grpc_port = free_port(), free_port()
        self.proc: subprocess.Popen | None = None
        self.http = Http(self.port)
        self.project = ""
        self.texts = ui_queries(python)

    def start(self, timeout: float = 120) -> Phoenix:
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")},
            "PHOENIX_WORKING_DIR": str(self.dir),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        with open(self.dir / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [self.python, "-c", PHOENIX_MAIN],
                cwd=self.dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends all of it
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"phoenix exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.http.call("GET", "/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"phoenix did not answer within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(20)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.dir / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def pids(self) -> list[int]:
        if self.proc is None:
            return []
        out = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def rss_mib(self) -> float:
        return rss_mib(self.pids())

    def graphql(self, query: str, variables: dict) -> tuple[int, dict]:
        status, body = self.http.call(
            "POST",
            "/graphql",
            json.dumps({"query": query, "variables": variables}).encode(),
            **{"Content-Type": "application/json"},
        )
        data = json.loads(body) if body[:1] == b"{" else {"errors": [body[:200].decode(errors="replace")]}
        if data.get("errors"):
            raise RuntimeError(f"phoenix GraphQL: {data['errors']}")
        return status, data["data"]

    def stored(self) -> int:
        if not self.project:
            projects = self.graphql("{ projects { edges { node { id name } } } }", {})[1]["projects"]["edges"]
            self.project = next((e["node"]["id"] for e in projects if e["node"]["name"] == "default"), "")
            if not self.project:
                return 0
        return self.graphql(
            "query($id: ID!) { node(id: $id) { ... on Project { recordCount } } }", {"id": self.project}
        )[1]["node"]["recordCount"]

    def questions(self, trace_id: str) -> dict:
        time_range = {"start": iso(self.window[0]), "end": iso(self.window[1])}

        def ask(name: str, variables: dict, account):
            return lambda: (lambda s, d: (s, account(d["project"])))(*self.graphql(self.texts[name], variables))

        return {
            "trace list": ask(
                "ProjectPageQueriesTracesQuery",
                {"id": self.project, "timeRange": time_range, "traceFilterCondition": None},
                lambda p: f"{len(p['rootSpans']['edges'])} root spans",
            ),
            "aggregates": ask(
                "ProjectPageQuery",
                {"id": self.project, "timeRange": time_range},
                lambda p: (
                    f"{p['recordCount']:,} spans, {p['timeRangeTraceCount']:,} traces,"
                    f" {int(p['tokenCountTotal'] or 0):,} tokens, ${p['costSummary']['total']['cost'] or 0:,.2f},"
                    f" p50 {p['latencyMsP50'] or 0:.0f} / p99 {p['latencyMsP99'] or 0:.0f} ms"
                ),
            ),
            "one trace": ask(
                "TraceDetailsQuery",
                {"id": self.project, "traceId": trace_id},
                lambda p: f"{len(p['trace']['spans']['edges'])} spans" if p.get("trace") else "no such trace",
            ),
        }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_phoenix(given: str) -> str:
    """The Python of a venv with arize-phoenix: --phoenix-python, $PHOENIX_PYTHON, or PHOENIX_VENVS; ''."""
    candidates = [given] if given else [str(v / "bin" / "python") for v in PHOENIX_VENVS]
    for python in candidates:
        if python and Path(python).exists():
            return python
    return ""


def phoenix_version(python: str) -> str:
    code = "from importlib.metadata import version; print(version('arize-phoenix'))"
    run = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    return run.stdout.strip() if run.returncode == 0 else ""


def ui_queries(python: str) -> dict[str, str]:
    """The GraphQL texts of UI_QUERIES as Phoenix's UI bundle (Relay's compiled `text:`) holds them;
    the traces table asks 50 rows (ours shows 50) where the UI asks 30; the project page's stats also
    ask the span count and token total."""
    code = "import importlib.util as u; print(u.find_spec('phoenix').submodule_search_locations[0])"
    root = Path(
        subprocess.run([python, "-c", code], capture_output=True, text=True, cwd="/", timeout=60).stdout.strip()
    )
    bundle = "".join(p.read_text(errors="replace") for p in (root / "server" / "static" / "assets").glob("*.js"))
    texts = {}
    for name in UI_QUERIES:
        found = re.search(r"text:`(query " + name + r"\(.*?)`", bundle, re.S)
        if not found:
            raise RuntimeError(f"{name} is not in Phoenix's UI bundle under {root}: another Phoenix version?")
        texts[name] = found.group(1).replace("\\n", "\n")
    texts["ProjectPageQueriesTracesQuery"] = texts["ProjectPageQueriesTracesQuery"].replace(
        "rootSpans: spans(first: 30,", "rootSpans: spans(first: 50,"
    )
    stats = "timeRangeTraceCount: traceCount(timeRange: $timeRange)"
    texts["ProjectPageQuery"] = texts["ProjectPageQuery"].replace(
        stats, stats + "\n  recordCount(timeRange: $timeRange)\n  tokenCountTotal(timeRange: $timeRange)"
    )
    if "first: 50" not in texts["ProjectPageQueriesTracesQuery"] or "recordCount" not in texts["ProjectPageQuery"]:
        raise RuntimeError("Phoenix's UI queries changed shape: see ui_queries()")
    return texts


def biggest_trace(bodies: list[bytes]) -> tuple[str, int]:
    """The trace id (hex) with the most spans in the OTLP requests, and its span count."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans: Counter[bytes] = Counter()
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                spans.update(span.trace_id for span in ss.spans)
    trace_id, n = max(spans.items(), key=lambda kv: (kv[1] if kv[1] <= 1000 else 0, kv[0]))
    return trace_id.hex(), n


def ingest_into(server, bodies: list[bytes], total: int, concurrency: int, store_timeout: float) -> dict:
    """Sends every body, then waits until `server.stored()` reaches `total`: rates, RSS, CPU."""
    rss = ingest.RssSampler(server)
    rss.start()
    cpu = ingest.cpu_seconds(server)
    started = time.perf_counter()
    sent, _, statuses = ingest.send_all(server, bodies, "application/x-protobuf", concurrency, retry=True)
    deadline, stored = time.monotonic() + store_timeout, 0
    while time.monotonic() < deadline:
        stored = server.stored()
        if stored >= total:
            break
        # Each count is a query the server answers while it stores: ask less often as the wait grows.
        time.sleep(min(2.0, 0.25 + (time.perf_counter() - started) / 50))
    elapsed = time.perf_counter() - started
    rss.stop.set()
    used = ingest.cpu_seconds(server) - cpu
    print(
        f"{server.name}: {total:,} spans sent in {sent:.1f} s (answers {statuses}), {stored:,} stored after {elapsed:.1f} s;"
        f" peak RSS {rss.peak:.0f} MiB, CPU {used / total * 1e6:.0f} us/span"
    )
    if stored < total:
        print(
            f"   {server.name} stored {stored:,} of {total:,} within {store_timeout:.0f} s: end-to-end rate is a bound"
        )
    return {"ingest acknowledged": total / sent, "ingest stored": total / elapsed, "rss": rss.peak}


def time_questions(server, trace_id: str, n: int) -> dict[str, float]:
    figures = {}
    for label, ask in server.questions(trace_id).items():
        started = time.perf_counter()
        _, account = ask()  # warm-up: the first of a kind plans queries and fills caches (not in p50)
        first = (time.perf_counter() - started) * 1000
        times, statuses = [], Counter()
        for _ in range(n):
            started = time.perf_counter()
            statuses[ask()[0]] += 1
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        figures[label] = statistics.median(times)
        print(
            f"   {label:<18} p50 {figures[label]:>8.1f} ms  p95 {times[max(0, int(len(times) * 0.95) - 1)]:>8.1f} ms"
            f"  first {first:>8.1f} ms  {dict(statuses)}  {account}"
        )
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--requests", type=int, default=20, help="timed requests per question (after one warm-up)")
    ap.add_argument("--store-timeout", type=float, default=1800, help="seconds to wait for every span stored")
    ap.add_argument("--phoenix-python", default=os.environ.get("PHOENIX_PYTHON", ""))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # finally-blocks stop the servers

    made = datetime.now(UTC)
    bodies, _, total = ingest.make_bodies(args.spans, args.batch, with_json=False)
    window = (made - timedelta(hours=25), made + timedelta(hours=1))  # every generated span, in both
    trace_id, trace_spans = biggest_trace(bodies)
    print(
        f"{total:,} demo spans in {len(bodies)} protobuf requests of <= {args.batch}, {args.concurrency} connections;"
        f" window {iso(window[0])} .. {iso(window[1])}; trace {trace_id} has {trace_spans} spans;"
        f" load average {os.getloadavg()[0]:.1f}"
    )

    results: dict[str, dict] = {}
    portal = LivePortal(RATELIMIT_ENABLE="false").prepare()
    try:
        portal.start()
        ours = Ours(portal, window)
        results["ours"] = ingest_into(ours, bodies, total, args.concurrency, args.store_timeout)
        deadline = time.monotonic() + 180
        while not ours.settled() and time.monotonic() < deadline:
            time.sleep(1)
        print(
            f"   settler {'caught up' if ours.settled() else 'still behind after 180 s'}; load average {os.getloadavg()[0]:.1f}"
        )
        results["ours"] |= time_questions(ours, trace_id, args.requests)
    finally:
        portal.stop()
        shutil.rmtree(portal.var_dir, ignore_errors=True)

    python = find_phoenix(args.phoenix_python)
    version = phoenix_version(python) if python else ""
    if not version:
        print(
            "Phoenix is not installed (no --phoenix-python, $PHOENIX_PYTHON or .venv-phoenix with arize-phoenix):"
            " no side-by-side figures. See this script's docstring."
        )
        return
    phoenix = Phoenix(python, window)
    try:
        phoenix.start()
        print(f"arize-phoenix {version} ({python}); load average {os.getloadavg()[0]:.1f}")
        results["phoenix"] = ingest_into(phoenix, bodies, total, args.concurrency, args.store_timeout)
        results["phoenix"] |= time_questions(phoenix, trace_id, args.requests)
    finally:
        phoenix.stop()

    ours_, theirs = results["ours"], results["phoenix"]
    print(f"\n{'':<28} {'ours':>12} {'Phoenix ' + version:>16} {'speed-up':>9}")
    for key in ("ingest acknowledged", "ingest stored"):
        print(f"{key + ', spans/s':<28} {ours_[key]:>12,.0f} {theirs[key]:>16,.0f} {ours_[key] / theirs[key]:>8.1f}x")
    print(f"{'peak RSS ingesting, MiB':<28} {ours_['rss']:>12,.0f} {theirs['rss']:>16,.0f}")
    for question in ("trace list", "aggregates", "one trace"):
        for how in ("page", "API"):
            key = f"{question}, {how}"
            print(
                f"{key + ', p50 ms':<28} {ours_[key]:>12,.1f} {theirs[question]:>16,.1f} {theirs[question] / ours_[key]:>8.1f}x"
            )


if __name__ == "__main__":
    main()
