#!/usr/bin/env python3
"""Where an ingested span's time goes, stage by stage, in-process on the embedded engine.

    .venv/bin/python bench/ingest_profile.py [--spans 20000]

Demo spans (the last 24 h) as 512-span OTLP requests, then per stage the best of 3 runs in µs per
span: protobuf decode; decode + rows (monitoring.ingest.decode.rows_from_body), also with one string
in each request cut mid-character (not UTF-8: read again leniently); the same from OTLP/JSON
(the fast path, and protobuf's own JSON parser for comparison); the insert body's serialisation;
and the ClickHouse insert at 512 and 4096 rows per insert (wall, and process CPU including the
background merges of the 2 s after); the settler's pass over the spans (monitoring/semantics/settle.py: the
counting rules, written as settled facts and rollups). Then the sum, CPU per stored span, and the
rate it allows on this machine's cores with nothing else running (no HTTP, no dashboard): a best
case for OTLP ingest here, as it takes the 4,096-row inserts (a served portal's batches of 512-span
exports are smaller), one settler pass over all the spans at once, and 2 s of merges. A fresh data
folder each run; no server, no network. Last, the settler as a served portal runs it: a pass a
second, each finding --cadence spans (CPU a span of the passes alone).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["PORTAL_VAR_DIR"] = tempfile.mkdtemp(prefix="apm-ingest-profile-")
os.environ["CLICKHOUSE_TTL_DAYS"] = "0"
os.environ.pop("CLICKHOUSE_HOST", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from google.protobuf import json_format  # noqa: E402

from demo import traffic  # noqa: E402
from monitoring.ingest import decode, otlp  # noqa: E402
from monitoring.semantics import settle  # noqa: E402
from monitoring.store import clickhouse, schema  # noqa: E402


def best(fn, spans: int, runs: int = 3) -> float:
    result = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        result = min(result, (time.perf_counter() - started) / spans * 1e6)
    return result


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=20_000)
    ap.add_argument(
        "--cadence",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[1000, 5000],
        help="spans a settler pass finds, comma-separated: each timed over --spans spans (default 1000,5000)",
    )
    args = ap.parse_args()
    call_command("migrate", verbosity=0)
    schema.ensure_schema()
    per_run = traffic.estimate_spans(days=1, runs_per_day=1000) / 1000
    requests = []
    for req, _ in traffic.generate_requests(
        days=1, runs_per_day=int(args.spans / per_run * 1.1) + 1, batch_spans=512, now=datetime.now(UTC)
    ):
        requests.append(req)
        if sum(len(s.spans) for r in requests for rs in r.resource_spans for s in rs.scope_spans) >= args.spans:
            break
    spans = sum(len(s.spans) for r in requests for rs in r.resource_spans for s in rs.scope_spans)
    pb = [r.SerializeToString() for r in requests]
    js = []
    for r in requests:
        doc = json_format.MessageToDict(r, use_integers_for_enums=True)
        for rs in doc.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    for item in (span, *span.get("links", [])):
                        for key in ("traceId", "spanId", "parentSpanId"):
                            if key in item:
                                item[key] = base64.b64decode(item[key]).hex()
        js.append(json.dumps(doc).encode())
    # The same requests with one string cut mid-character (not UTF-8) in each: read again leniently.
    marker = b"QzQzQzQz"
    cut = []
    for r in requests:
        copy = type(r).FromString(r.SerializeToString())
        first = copy.resource_spans[0].scope_spans[0].spans[0]
        first.name = marker.decode() + first.name
        cut.append(copy.SerializeToString().replace(marker, b"\xeb\xb6" + marker[2:], 1))
    print(f"{spans:,} demo spans in {len(pb)} requests; load average {os.getloadavg()[0]:.1f}\n")
    pid = "bench"
    rows = [row for body in pb for row in decode.rows_from_body(body, otlp.PROTOBUF_CONTENT_TYPE, None, pid).rows]
    stages = {
        "protobuf decode": lambda: [otlp.decode_request(b, otlp.PROTOBUF_CONTENT_TYPE, None) for b in pb],
        "protobuf -> rows": lambda: [decode.rows_from_body(b, otlp.PROTOBUF_CONTENT_TYPE, None, pid) for b in pb],
        "protobuf -> rows, a string not UTF-8": lambda: [
            decode.rows_from_body(b, otlp.PROTOBUF_CONTENT_TYPE, None, pid) for b in cut
        ],
        "OTLP/JSON -> rows (fast path)": lambda: [
            decode.rows_from_body(b, otlp.JSON_CONTENT_TYPE, None, pid) for b in js
        ],
        "OTLP/JSON -> rows (protobuf's parser)": lambda: [
            otlp.rows_from_request(otlp.decode_request(b, otlp.JSON_CONTENT_TYPE, None), pid) for b in js[:5]
        ],
    }
    per_span = {}
    for label, fn in stages.items():
        n = (
            spans
            if "protobuf's parser" not in label
            else sum(
                len(otlp.decode_request(b, otlp.JSON_CONTENT_TYPE, None).resource_spans[0].scope_spans[0].spans)
                for b in js[:5]
            )
        )
        per_span[label] = best(fn, n)
        print(f"{label:<40} {per_span[label]:8.1f} us/span")

    nanos = frozenset(schema.NANOS_COLUMNS)
    encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    def serialise():
        plain = [c not in nanos for c in schema.TRACE_COLUMNS]
        encode(
            [
                [
                    r[c] if keep else clickhouse._nanos_text(r[c])
                    for c, keep in zip(schema.TRACE_COLUMNS, plain, strict=True)
                ]
                for r in rows
            ]
        )

    serialised = best(serialise, len(rows))
    print(f"{'insert body serialisation':<40} {serialised:8.1f} us/span")
    to_rows = per_span["protobuf -> rows"]
    insert_cpu = {}
    for size in (512, 4096):
        c0, w0 = cpu(), time.perf_counter()
        for i in range(0, len(rows), size):
            clickhouse.insert(
                schema.table(),
                schema.TRACE_COLUMNS,
                rows[i : i + size],
                tag="bench",
                nanos_columns=schema.NANOS_COLUMNS,
            )
        wall = (time.perf_counter() - w0) / len(rows) * 1e6
        time.sleep(2)
        insert_cpu[size] = (cpu() - c0) / len(rows) * 1e6
        print(
            f"{f'ClickHouse insert, {size} rows each':<40} {wall:8.1f} us/span wall, "
            f"{insert_cpu[size]:6.1f} us/span CPU incl. merges"
        )
        if size == 512:  # the spans' first delivery: the settler's pass over them
            c0, w0 = cpu(), time.perf_counter()
            settle.settle_once()
            settle_wall = (time.perf_counter() - w0) / len(rows) * 1e6
            time.sleep(2)
            settle_cpu = (cpu() - c0) / len(rows) * 1e6
            print(f"{'settler pass':<40} {settle_wall:8.1f} us/span wall, {settle_cpu:6.1f} us/span CPU incl. merges")
    total = to_rows + insert_cpu[4096] + settle_cpu
    cores = os.cpu_count() or 1
    print(
        f"\nCPU per stored span, best case: rows {to_rows:.0f} (wall, one thread) + insert at 4096 (body, engine,"
        f" merges) {insert_cpu[4096]:.0f} + settler {settle_cpu:.0f} = {total:.0f} us; on {cores} cores with nothing"
        " else running, at most"
        f" {cores * 1e6 / total:,.0f} spans/s (and {1e6 / (to_rows + serialised):,.0f} spans/s for the Python"
        " steps alone, which hold the GIL: one core)"
    )
    # The settler as a served portal runs it: a pass a second over what came in since the last.
    # Its CPU a span depends on how many spans a pass finds (some 20 statements a pass).
    for per in args.cadence:
        project = f"cadence-{per}"
        copies = [{**r, "ResourceAttributes": {**r["ResourceAttributes"], "project_id": project}} for r in rows]
        settle.settle_once()
        used, passes = 0.0, 0
        for i in range(0, len(copies), per):
            clickhouse.insert(
                schema.table(),
                schema.TRACE_COLUMNS,
                copies[i : i + per],
                tag="bench",
                nanos_columns=schema.NANOS_COLUMNS,
            )
            time.sleep(1)
            c0 = cpu()
            settle.settle_once()
            used += cpu() - c0
            passes += 1
        print(
            f"{f'settler, a pass a second of {per} spans':<40} {used / len(copies) * 1e6:8.1f} us/span CPU"
            f" ({used / passes * 1000:.0f} ms a pass, {passes} passes)"
        )
    views = clickhouse.query_one(
        "SELECT arrayStringConcat(dependencies_table, ', ') AS v FROM system.tables"
        " WHERE database = {db:String} AND name = 'otel_traces'",
        {"db": clickhouse.database()},
        tag="bench",
    )["v"]
    print(f"\nmaterialized views fed by each insert: {views or 'none'}")


if __name__ == "__main__":
    main()
