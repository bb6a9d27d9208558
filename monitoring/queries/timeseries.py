"""Analytics' series: Cost Trend, Token Usage (cached vs uncached input, reasoning), calls and
errors, latency and agent runs, per bucket of the viewer's time zone.

Buckets are the largest of day, hour and minute that still gives the window MIN_BUCKETS of them
(days from 3 days, hours from 3 hours, else minutes: a 60-hour window is 60 hours, not 3 days;
one rule for the Overview's trend lines, Analytics' charts, a user's cost line and the API), and
begin where the viewer's clock does (`SpanFilter.tz`): a day in Asia/Seoul starts at 15:00 UTC. Rollup slices
are 15 minutes, and every real zone's offset is a multiple of 15 minutes, so buckets are exact.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from monitoring.queries import parallel, sources
from monitoring.queries.filter import SpanFilter, iso
from monitoring.store.sql import Sql, run

MIN_BUCKETS = 3
# Minute buckets only for windows read from raw rows (sources.RAW_UP_TO): a rollup slice is 15 minutes.
HOURS_FROM = dt.timedelta(hours=MIN_BUCKETS)
DAYS_FROM = dt.timedelta(days=MIN_BUCKETS)
assert HOURS_FROM <= sources.RAW_UP_TO
UNITS = {"minute": "toIntervalMinute(1)", "hour": "toIntervalHour(1)", "day": "toIntervalDay(1)"}
# Per model: the Cost Trend's stacks and Token Usage; totals only for the rest.
METRICS = ("cost_usd", "input_tokens", "output_tokens", "llm_calls", "errors")
EXTRA_METRICS = (
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cache_savings_usd",
    "unpriced_calls",
    "timed_calls",
    "duration_ns",
)


def bucket_for(flt: SpanFilter) -> str:
    """The largest bucket that gives the window at least MIN_BUCKETS: "day" for 3 days and more,
    "hour" for 3 hours and more, else "minute" (1 h: 60 minutes; 24 h and 60 h: hours; 7 days: days)."""
    if flt.window.length >= DAYS_FROM:
        return "day"
    return "hour" if flt.window.length >= HOURS_FROM else "minute"


def bucket_starts(flt: SpanFilter, bucket: str) -> list[dt.datetime]:
    """Every bucket overlapping the window, as aware datetimes in the viewer's zone."""
    zone = ZoneInfo(flt.tz)
    start, end = flt.window.start.astimezone(zone), flt.window.end.astimezone(zone)
    if bucket == "day":
        day = start.date()
        starts: list[dt.datetime] = []
        while True:
            t = dt.datetime.combine(day, dt.time(), zone)
            if t >= end:
                return starts
            starts.append(t)
            day += dt.timedelta(days=1)
    step = dt.timedelta(minutes=1) if bucket == "minute" else dt.timedelta(hours=1)
    # Minutes and hours are whole in UTC too (offsets are whole quarter hours): step in UTC.
    utc_start = flt.window.start.astimezone(dt.UTC)
    t = utc_start.replace(second=0, microsecond=0)
    if bucket == "hour":
        local = start.replace(minute=0, second=0, microsecond=0)
        t = local.astimezone(dt.UTC)
    starts = []
    while t < flt.window.end:
        starts.append(t.astimezone(zone))
        t += step
    return starts


@dataclass(frozen=True)
class Timeseries:
    """`values[metric][model][i]` is bucket `times[i]` for METRICS; `extra[metric][i]` and
    `runs`/`failed_runs` are totals. Every bucket of the window is present (zeros where nothing
    happened), so a chart's x axis is continuous."""

    bucket: str
    times: tuple[dt.datetime, ...]
    models: tuple[str, ...]  # most expensive first, then most called; '' = calls without a model
    values: dict[str, dict[str, list]]
    extra: dict[str, list] = field(default_factory=dict)
    runs: list[int] = field(default_factory=list)
    failed_runs: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Zeros for what a caller left out (charts built from a few series in tests and sparklines).
        n = len(self.times)
        for metric in EXTRA_METRICS:
            self.extra.setdefault(metric, [0.0 if metric.endswith("usd") else 0] * n)
        if not self.runs:
            object.__setattr__(self, "runs", [0] * n)
        if not self.failed_runs:
            object.__setattr__(self, "failed_runs", [0] * n)

    def total(self, metric: str) -> list:
        if metric in self.extra:
            return list(self.extra[metric])
        sums = [0] * len(self.times)
        for series in self.values[metric].values():
            sums = [a + b for a, b in zip(sums, series, strict=False)]
        return [round(v, 10) for v in sums] if metric == "cost_usd" else sums

    def avg_latency_ms(self) -> list[float | None]:
        """Mean LLM-call latency per bucket, None where no timed call ended."""
        return [
            round(d / n / 1e6, 3) if n else None
            for d, n in zip(self.extra["duration_ns"], self.extra["timed_calls"], strict=False)
        ]

    @property
    def empty(self) -> bool:
        return not any(self.total("llm_calls")) and not any(self.runs)

    def points(self) -> list[dict]:
        """The API's shape: one point per bucket, totals over models (times ISO 8601 with offset);
        `cost_usd` leaves out the bucket's `unpriced_calls` (no reported cost, no known price)."""
        totals = {
            m: self.total(m)
            for m in (*METRICS, "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "unpriced_calls")
        }
        latency = self.avg_latency_ms()
        return [
            {
                "t": iso(t),
                **{m: totals[m][i] for m in totals},
                "avg_latency_ms": latency[i],
                "agent_runs": self.runs[i],
                "failed_runs": self.failed_runs[i],
            }
            for i, t in enumerate(self.times)
        ]


CALL_MEASURES = (
    "Calls",
    "Cost",
    "InputTokens",
    "OutputTokens",
    "CacheReadTokens",
    "CacheWriteTokens",
    "ReasoningTokens",
    "CacheSavings",
    "Unpriced",
    "Timed",
    "DurationSum",
)


def bucket_sql(bucket: str) -> str:
    """The Unix second of the bucket a source row's Time falls in, in the filter's zone (`tz`)."""
    return f"toUnixTimestamp(toStartOfInterval(Time, {UNITS[bucket]}, {{tz:String}}))"


def timeseries(flt: SpanFilter) -> Timeseries:
    """The filter's series: calls by bucket and model, runs by bucket (two statements, asked at
    once). Raises ClickHouseError."""
    bucket = bucket_for(flt)
    calls = Sql(
        f"SELECT {bucket_sql(bucket)} AS t, Model AS model, sumIf(Calls, IsError = 1) AS t_Errors,",
        f" {sources.totals(CALL_MEASURES)} FROM (",
        sources.calls(flt, CALL_MEASURES),
        ") GROUP BY t, model",
        tz=flt.tz,
    )
    runs_by_bucket = Sql(
        f"SELECT {bucket_sql(bucket)} AS t, sum(Runs) AS runs, sum(Failed) AS failed FROM (",
        sources.runs(flt, ("Runs", "Failed")),
        ") GROUP BY t",
        tz=flt.tz,
    )
    call_rows, run_rows = parallel.gather(
        flt,
        lambda: run(calls, tag="analytics.timeseries"),
        lambda: run(runs_by_bucket, tag="analytics.timeseries_runs"),
    )
    return from_rows(flt, call_rows, run_rows)


def from_rows(flt: SpanFilter, call_rows: list[dict], run_rows: list[dict]) -> Timeseries:
    """The series of rows already asked: calls as {t (bucket_sql), model, t_Errors, t_<measure>
    for CALL_MEASURES}, one per (bucket, model); runs as {t, runs, failed}, one per bucket."""
    bucket = bucket_for(flt)
    times = bucket_starts(flt, bucket)
    index = {int(t.timestamp()): i for i, t in enumerate(times)}
    n = len(times)
    values: dict[str, dict[str, list]] = {m: {} for m in METRICS}
    extra: dict[str, list] = {m: [0.0 if m.endswith("usd") else 0] * n for m in EXTRA_METRICS}
    for row in call_rows:
        i = index.get(int(row["t"]))
        if i is None:  # cannot happen for rows inside the window; never index out of it
            continue
        found = {
            "cost_usd": float(row["t_Cost"]),
            "input_tokens": int(row["t_InputTokens"]),
            "output_tokens": int(row["t_OutputTokens"]),
            "llm_calls": int(row["t_Calls"]),
            "errors": int(row["t_Errors"]),
        }
        if not any(found.values()):
            continue  # a slice whose facts cancelled out
        for metric, value in found.items():
            values[metric].setdefault(row["model"], [0.0 if metric == "cost_usd" else 0] * n)[i] += value
        for metric, column in (
            ("cache_read_tokens", "t_CacheReadTokens"),
            ("cache_write_tokens", "t_CacheWriteTokens"),
            ("reasoning_tokens", "t_ReasoningTokens"),
            ("unpriced_calls", "t_Unpriced"),
            ("timed_calls", "t_Timed"),
            ("duration_ns", "t_DurationSum"),
        ):
            extra[metric][i] += int(row[column])
        extra["cache_savings_usd"][i] += float(row["t_CacheSavings"])
    runs, failed = [0] * n, [0] * n
    for row in run_rows:
        i = index.get(int(row["t"]))
        if i is not None:
            runs[i] += int(row["runs"])
            failed[i] += int(row["failed"])
    for model in values["cost_usd"]:
        values["cost_usd"][model] = [round(v, 10) for v in values["cost_usd"][model]]
    extra["cache_savings_usd"] = [round(v, 10) for v in extra["cache_savings_usd"]]
    models = sorted(values["llm_calls"], key=lambda m: (-sum(values["cost_usd"][m]), -sum(values["llm_calls"][m]), m))
    return Timeseries(bucket, tuple(times), tuple(models), values, extra, runs, failed)
