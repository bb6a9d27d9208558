"""The one insert of spans into `otel_traces`: rows as the collector's ClickHouse exporter writes them
(`monitoring.ingest.otlp.rows_from_request` makes them, keyed by `schema.TRACE_COLUMNS`).

Used by the OTLP receiver's writer (monitoring/ingest/batcher.py), Replay's re-runs
(monitoring/replay/rerun.py) and the demo traffic (`manage.py demo_traces`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitoring.store import clickhouse, schema


def store(rows: Sequence[dict[str, Any]], *, tag: str) -> None:
    """Insert `rows` (one dict per span, `schema.TRACE_COLUMNS` keys; times in ns) in one statement.
    `tag` names the caller in logs and metrics. Raises clickhouse.ClickHouseError."""
    clickhouse.insert(schema.table(), schema.TRACE_COLUMNS, rows, tag=tag, nanos_columns=schema.NANOS_COLUMNS)
