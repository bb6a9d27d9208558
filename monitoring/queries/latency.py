"""LLM-call latency: percentiles and the Analytics histogram.

Both come from histogram rows that add up across rollup slices and live rows (sources.latency,
monitoring/store/schema.py): fine log buckets 2^(1/32) wide (~2.2 %), each with a count and the sum of
its durations, split by the Analytics histogram's bin. A
percentile is the mean duration of the bucket holding it (nearest rank), so it is within one
bucket's width of the exact value and exact when that bucket holds a single duration. Calls
without an end time are not in either histogram.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from monitoring.queries import sources
from monitoring.queries.filter import SpanFilter
from monitoring.store import schema
from monitoring.store.sql import Sql, run

LATENCY_EDGES_MS = schema.LATENCY_EDGES_MS


QUANTILES = (0.5, 0.95, 0.99)


def percentiles(counts: Mapping[int, int], sums: Mapping[int, int], qs=QUANTILES) -> tuple[float, ...]:
    """Percentiles in ms (0.0 each when there is no timed call), nearest rank over the fine
    histogram's {bucket: calls} and {bucket: sum of durations in ns}."""
    counts = {b: n for b, n in counts.items() if n > 0}
    n = sum(counts.values())
    if n <= 0:
        return tuple(0.0 for _ in qs)
    buckets = sorted(counts)
    out = []
    for q in qs:
        rank = max(1, math.ceil(q * n))
        seen = 0
        for b in buckets:
            seen += counts[b]
            if seen >= rank:
                out.append(round(sums.get(b, 0) / counts[b] / 1e6, 3))
                break
    return tuple(out)


def percentiles_by(
    flt: SpanFilter, group: str = "''", extra_dims: tuple[str, ...] = (), tag: str = "latency.percentiles"
) -> dict[str, tuple[float, ...]]:
    """{group: (p50, p95, p99) in ms} of the filter's timed calls, `group` an expression over the
    source's columns ("''": one group '', or e.g. "Model"; columns beyond sources.CALL_DIMS go in
    `extra_dims`). Groups without a timed call are absent. Raises ClickHouseError."""
    rows = run(
        Sql(
            f"SELECT {group} AS grp, Bucket, sum(Calls) AS calls, sum(DurationSum) AS sums FROM (",
            sources.latency(flt, extra_dims=extra_dims),
            ") GROUP BY grp, Bucket",
        ),
        tag=tag,
    )
    counts: dict[str, dict[int, int]] = defaultdict(dict)
    sums: dict[str, dict[int, int]] = defaultdict(dict)
    for r in rows:
        counts[r["grp"]][int(r["Bucket"])] = int(r["calls"])
        sums[r["grp"]][int(r["Bucket"])] = int(r["sums"])
    found = {g: percentiles(counts[g], sums[g]) for g in counts}
    return {g: p for g, p in found.items() if any(p)}


@dataclass(frozen=True)
class LatencyBin:
    label: str
    lo_ms: float
    hi_ms: float | None  # None: open-ended
    calls: int
    errors: int


@dataclass(frozen=True)
class Latency:
    bins: tuple[LatencyBin, ...]
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0

    @property
    def calls(self) -> int:
        return sum(b.calls for b in self.bins)


def _ms_label(ms: float) -> str:
    return f"{ms / 1000:g}s" if ms >= 1000 else f"{ms:g}ms"


def bin_label(lo: float, hi: float | None) -> str:
    """Short enough for a tick: "<50ms", "250–500ms", "0.5–1s", "≥60s"."""
    if lo == 0 and hi is not None:
        return f"<{_ms_label(hi)}"
    if hi is None:
        return f"≥{_ms_label(lo)}"
    scale, unit = (1000, "s") if hi >= 1000 else (1, "ms")
    return f"{lo / scale:g}–{hi / scale:g}{unit}"


def latency(flt: SpanFilter) -> Latency:
    """The histogram of LLM-call durations (bins LATENCY_EDGES_MS) with errors per bin, and p50/95/99."""
    rows = run(
        Sql(
            "SELECT Bucket, Bin, sum(Calls) AS calls, sum(DurationSum) AS sums, sumIf(Calls, IsError = 1) AS errors",
            " FROM (",
            sources.latency(flt),
            ") GROUP BY Bucket, Bin",
        ),
        tag="analytics.latency",
    )
    counts: dict[int, int] = defaultdict(int)
    sums: dict[int, int] = defaultdict(int)
    calls: dict[int, int] = defaultdict(int)
    errors: dict[int, int] = defaultdict(int)
    for r in rows:
        counts[int(r["Bucket"])] += int(r["calls"])
        sums[int(r["Bucket"])] += int(r["sums"])
        calls[int(r["Bin"])] += int(r["calls"])
        errors[int(r["Bin"])] += int(r["errors"])
    his: list[float | None] = [*LATENCY_EDGES_MS, None]
    bins = tuple(
        LatencyBin(bin_label(lo, hi), lo, hi, calls.get(i, 0), errors.get(i, 0))
        for i, (lo, hi) in enumerate(zip([0, *LATENCY_EDGES_MS], his, strict=True))
    )
    return Latency(bins, *percentiles(counts, sums))
