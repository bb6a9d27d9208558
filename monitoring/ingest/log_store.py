"""The one insert of log records into `otel_logs`: rows as the collector's ClickHouse exporter writes
them (`monitoring.ingest.logs.rows_from_request` makes them, keyed by `schema.LOG_COLUMNS`).
Used by the OTLP receiver's log writer (monitoring/ingest/batcher.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitoring.store import clickhouse, schema, versions


def store(rows: Sequence[dict[str, Any]], *, tag: str) -> None:
    """Insert `rows` (one dict per log record, `schema.LOG_COLUMNS` keys; times in ns) in one
    statement. `tag` names the caller in logs and metrics. Raises clickhouse.ClickHouseError."""
    clickhouse.insert(
        schema.table(schema.LOGS), schema.LOG_COLUMNS, rows, tag=tag, nanos_columns=schema.LOG_NANOS_COLUMNS
    )
    # Evaluation events among them become scores (the materialized views): the projects' answers change.
    versions.bump(row.get("ResourceAttributes", {}).get("project_id", "") for row in rows)
