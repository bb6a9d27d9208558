"""The portal's own Prometheus metrics (beside django-prometheus' request metrics).

Names follow the Prometheus naming guide (``_total`` counters, base units: seconds, bytes).
In server mode gunicorn runs several worker processes: each keeps its own registry, so
``/metrics`` shows the answering worker only unless ``PROMETHEUS_MULTIPROC_DIR`` is set (the
prometheus-client multiprocess mode, which the gunicorn config sets up; see config/gunicorn.conf.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from monitoring.store import clickhouse

SPANS_ACCEPTED = Counter(
    "apm_ingest_spans_accepted_total",
    "Spans acknowledged to OTLP senders, by where they went (stored in ClickHouse, spooled to disk in an outage,"
    " or queued on disk for a larger insert: the write-behind queue).",
    ["outcome"],
)
SPANS_REJECTED = Counter(
    "apm_ingest_spans_rejected_total",
    "Spans refused: reported back as OTLP partialSuccess (reason=span) or whole requests refused (reason=request, busy, spool_full).",
    ["reason"],
)
SPANS_DRAINED = Counter("apm_ingest_spool_drained_spans_total", "Spooled spans later stored in ClickHouse.")
INGEST_REQUESTS = Counter("apm_ingest_requests_total", "OTLP export requests answered, by HTTP status.", ["status"])
SPOOL_BATCHES = Gauge(
    "apm_ingest_spool_batches", "Batches waiting in the local spool (all processes).", multiprocess_mode="max"
)
SPOOL_BYTES = Gauge("apm_ingest_spool_bytes", "Bytes of the local spool.", multiprocess_mode="max")
SPOOL_OLDEST_AGE = Gauge(
    "apm_ingest_spool_oldest_age_seconds", "Age of the oldest spooled batch (0: empty).", multiprocess_mode="max"
)
INSERT_BATCH_SPANS = Histogram(
    "apm_ingest_insert_batch_spans",
    "Spans per ClickHouse insert made by the ingest batcher.",
    buckets=(1, 16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536),
)
SETTLED_THROUGH = Gauge(
    "apm_settle_through_seconds",
    "Insert time (Unix seconds, the engine's clock) up to which every span is settled, as of this"
    " process's last settler pass (0: none yet).",
    multiprocess_mode="max",
)
CLICKHOUSE_SECONDS = Histogram(
    "apm_clickhouse_query_seconds",
    "ClickHouse call latency by tag (the question asked) and outcome.",
    ["tag", "action", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def observe_clickhouse(tag: str, action: str, seconds: float, outcome: str) -> None:
    """Hook for monitoring.store.clickhouse._run: one observation per query/command/insert."""
    CLICKHOUSE_SECONDS.labels(tag=tag, action=action, outcome=outcome).observe(seconds)


clickhouse.on_timed = observe_clickhouse


def observe_settle_pass(report) -> None:
    """Hook for monitoring.semantics.settle.settle_once: `report.settled_ns` (ns) as seconds, when
    the pass knew it (with settler partitions: the lowest partition's, read as it recorded itself)."""
    if report.settled_ns:
        SETTLED_THROUGH.set(report.settled_ns / 1e9)
