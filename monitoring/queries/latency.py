"""LLM-call latency: percentiles and the Analytics histogram.

Both come from histograms that add up across rollup slices and live rows (monitoring/schema.py):
fine log buckets 2^(1/32) wide (~2.2 %) holding a count and the sum of their durations. A
percentile is the mean duration of the bucket holding it (nearest rank), so it is within one
bucket's width of the exact value and exact when that bucket holds a single duration. Calls
without an end time are not in either histogram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitoring import schema
from monitoring.queries import sources
from monitoring.queries.filter import SpanFilter
from monitoring.queries.sql import Sql, run_one

LATENCY_EDGES_MS = schema.LATENCY_EDGES_MS


def _pairs(value) -> dict[int, int]:
    """A sumMap result ([keys], [values]) as {key: value}."""
    if not value:
        return {}
    keys, values = value[0], value[1]
    return {int(k): int(v) for k, v in zip(keys, values, strict=False) if int(v)}


def percentiles(hist, sums, qs: tuple[float, ...]) -> tuple[float, ...]:
    """Percentiles in ms (0.0 when there is no timed call), from the fine histogram's
    {bucket: count} and {bucket: sum of ns} (sumMap results)."""
    counts, totals = _pairs(hist), _pairs(sums)
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
                out.append(round(totals.get(b, 0) / counts[b] / 1e6, 3))
                break
    return tuple(out)


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
    if lo == 0:
        return f"<{_ms_label(hi)}"
    if hi is None:
        return f"≥{_ms_label(lo)}"
    scale, unit = (1000, "s") if hi >= 1000 else (1, "ms")
    return f"{lo / scale:g}–{hi / scale:g}{unit}"


def latency(flt: SpanFilter) -> Latency:
    """The histogram of LLM-call durations (bins LATENCY_EDGES_MS) with errors per bin, and p50/95/99."""
    source = sources.calls(flt, ("LatencyHist", "LatencySums", "LatencyBins"))
    row = run_one(
        Sql(
            "SELECT sumMap(LatencyHist) AS hist, sumMap(LatencySums) AS sums, sumMap(LatencyBins) AS bins,",
            " sumMapIf(LatencyBins, IsError = 1) AS error_bins FROM (",
            source,
            ")",
        ),
        tag="analytics.latency",
    )
    calls, errors = _pairs(row.get("bins")), _pairs(row.get("error_bins"))
    bounds = [0, *LATENCY_EDGES_MS, None]
    bins = tuple(
        LatencyBin(bin_label(lo, hi), lo, hi, calls.get(i, 0), errors.get(i, 0))
        for i, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False))
    )
    return Latency(bins, *percentiles(row.get("hist"), row.get("sums"), (0.5, 0.95, 0.99)))
