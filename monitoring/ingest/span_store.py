"""The one insert of spans into `otel_traces`: rows as the collector's ClickHouse exporter writes them
(`monitoring.ingest.otlp.rows_from_request` makes them, keyed by `schema.TRACE_COLUMNS`).

Used by the OTLP receiver's writer (monitoring/ingest/batcher.py), Replay's re-runs
(monitoring/replay/rerun.py) and the demo traffic (`manage.py demo_traces`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from monitoring.store import clickhouse, schema

# The most attribute entries (of all its rows' maps, events and links) one insert carries: the
# engine holds an insert's whole block while it writes it, ~350 bytes an entry (a 17.8 MB export
# of 12,000 spans of 40 attributes: 312 MB at its peak in one insert, 113 MB in four).
INSERT_ENTRIES = 150_000


def _entries(row: dict[str, Any]) -> int:
    events, links = row["Events.Attributes"], row["Links.Attributes"]
    return (
        1
        + len(row["SpanAttributes"])
        + len(row["ResourceAttributes"])
        + len(events)
        + sum(map(len, events))
        + len(links)
        + sum(map(len, links))
    )


def _inserts(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    """`rows` in runs of at most INSERT_ENTRIES entries (a row holding more goes alone)."""
    start, held = 0, 0
    for i, row in enumerate(rows):
        entries = _entries(row)
        if held and held + entries > INSERT_ENTRIES:
            yield rows[start:i]
            start, held = i, 0
        held += entries
    if start < len(rows):
        yield rows[start:] if start else rows


def store(rows: Sequence[dict[str, Any]], *, tag: str) -> None:
    """Insert `rows` (one dict per span, `schema.TRACE_COLUMNS` keys; times in ns): one statement,
    or one per INSERT_ENTRIES entries for a big batch. If one of several fails, those before it are
    stored: a caller's retry stores their spans again, which every read takes once (by span id).
    `tag` names the caller in logs and metrics. Raises clickhouse.ClickHouseError."""
    for part in _inserts(rows):
        clickhouse.insert(schema.table(), schema.TRACE_COLUMNS, part, tag=tag, nanos_columns=schema.NANOS_COLUMNS)


@dataclass(frozen=True)
class Encoded:
    """Rows as the data of one embedded insert (`clickhouse.json_rows`), with their span and entry counts."""

    body: str
    spans: int
    entries: int


def encode(rows: Sequence[dict[str, Any]]) -> Encoded:
    """`rows` (as `store` takes them) as one insert's data, for the ingest write-behind queue: it is
    written to the spool as it is and inserted later with its neighbours (`store_encoded`)."""
    body = clickhouse.json_rows(schema.TRACE_COLUMNS, rows, frozenset(schema.NANOS_COLUMNS))
    return Encoded(body, len(rows), sum(map(_entries, rows)))


def decode(body: str) -> list[dict[str, Any]]:
    """The rows of an `encode`d body again (the error path: find the rows the engine refuses)."""
    return clickhouse.rows_from_json_rows(schema.TRACE_COLUMNS, body, frozenset(schema.NANOS_COLUMNS))


def store_encoded(bodies: Sequence[str], *, tag: str) -> None:
    """Insert `encode`d bodies, together at most INSERT_ENTRIES entries (the caller groups them),
    as one statement. Embedded engine only. Raises clickhouse.ClickHouseError."""
    clickhouse.insert_json_rows(schema.table(), schema.TRACE_COLUMNS, ",".join(bodies), tag=tag)
