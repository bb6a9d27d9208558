"""The Overview's numbers: Total Cost, LLM Calls, Agent Calls, Avg Latency, Fail Rate, the token
breakdown, latency percentiles, and the leaders (models by cost, services by failures).

Counting rules are those of monitoring/semantics/facts.py: one model invocation counts once, a run is
a trace with an agent step, a failed run is one whose agent step failed. Fail Rate = (failed calls
+ failed runs) / (calls + runs). Latency statistics cover calls with an end time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from monitoring.queries import latency as latency_q
from monitoring.queries import parallel, sources
from monitoring.queries import timeseries as timeseries_q
from monitoring.queries.filter import SpanFilter, Window
from monitoring.store.sql import Sql, run

# Changes against the previous window are shown only when it had at least this many calls+runs.
MIN_PREVIOUS_SAMPLE = 20


@dataclass
class Leader:
    """One row of a leader board: `calls` counts LLM calls and agent runs, `errors` the failed ones."""

    name: str
    calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Overview:
    """The five numbers and what they are made of. Money in USD, durations in ms, rates 0..1."""

    total_cost_usd: float
    llm_calls: int
    agent_calls: int
    avg_latency_ms: float
    fail_rate: float
    llm_errors: int
    agent_errors: int
    reported_cost_usd: float
    priced_cost_usd: float
    p50_latency_ms: float = 0.0
    p95_latency_ms: float = 0.0
    p99_latency_ms: float = 0.0
    models: list[Leader] = field(default_factory=list)  # per model, by cost
    input_tokens: int = 0  # including cache reads and writes
    output_tokens: int = 0  # including reasoning
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_savings_usd: float = 0.0  # what cache reads saved against the full input price
    unpriced_calls: int = 0  # calls with tokens but no reported cost and no known price
    unpriced_models: list[str] = field(default_factory=list)
    calls_without_end: int = 0  # exported before they ended: counted, not in latency
    services: list[Leader] = field(default_factory=list)  # calls + runs per service, most failures first

    @property
    def sample(self) -> int:
        return self.llm_calls + self.agent_calls

    def as_dict(self) -> dict:
        data = asdict(self)
        data["models"] = [asdict(m) for m in self.models]
        data["services"] = [asdict(s) for s in self.services]
        return data


_CALL_TOTALS = (
    "Calls",
    "Timed",
    "DurationSum",
    "InputTokens",
    "OutputTokens",
    "CacheReadTokens",
    "CacheWriteTokens",
    "ReasoningTokens",
    "ReportedCost",
    "Cost",
    "Unpriced",
    "CacheSavings",
)


def _rolled_up(rows: list[dict], measures: tuple[str, ...]) -> list[dict]:
    """(model, service) rows -> a row per model (`service` ''), a row per service (`model` '',
    `by_service` 1) and a total row (`is_total` 1), as GROUPING SETS would give. Summed here: the
    groups are a few dozen, and GROUPING SETS cost ClickHouse 25 ms of planning at any size."""
    groups: dict[tuple[str, str, int, int], list[dict]] = {}
    for r in rows:
        for key in ((r["model"], "", 0, 0), ("", r["service"], 0, 1), ("", "", 1, 0)):
            groups.setdefault(key, []).append(r)
    out = []
    for (model, service, is_total, by_service), members in groups.items():
        sums = sources.summed(members, measures)
        out.append({"model": model, "service": service, "is_total": is_total, "by_service": by_service} | sums)
    return out


def _by_bucket(flt: SpanFilter, windows: tuple[Window, ...], bucket: str | None) -> tuple[str, dict]:
    """(`t` column and its GROUP BY key, bound values) when the first window's rows are asked per
    series bucket too (the other windows' rows keep t = 0: only their totals are read)."""
    if not bucket:
        return "", {}
    t = timeseries_q.bucket_sql(bucket)
    return (f"if(Win = 0, {t}, 0) AS t, " if len(windows) > 1 else f"{t} AS t, "), {"tz": flt.tz}


def _calls_rows(flt: SpanFilter, windows: tuple[Window, ...], bucket: str | None = None) -> list[dict]:
    """Calls summed per window (`win`), model and service, and per series bucket (`t`) with one."""
    t, params = _by_bucket(flt, windows, bucket)
    return run(
        Sql(
            f"SELECT {_win(windows)} AS win, {t}Model AS model, ServiceName AS service,",
            f" sumIf(Calls, IsError = 1) AS t_Errors, {sources.totals(_CALL_TOTALS)}",
            " FROM (",
            sources.calls(flt, _CALL_TOTALS, windows=windows),
            f") GROUP BY win, {'t, ' if t else ''}Model, ServiceName",
            **params,
        ),
        tag="overview.calls",
    )


def _calls_by_window(rows: list[dict], n: int) -> list[list[dict]]:
    """Per window: a row per model (`service` ''), a row per service (`model` '', `by_service` 1)
    and a total row (`is_total` 1)."""
    found: list[list[dict]] = [[] for _ in range(n)]
    for r in rows:
        found[int(r["win"])].append(
            {"model": r["model"], "service": r["service"]} | {k[2:]: v for k, v in r.items() if k.startswith("t_")}
        )
    measures = ("Errors", *_CALL_TOTALS)
    return [_rolled_up(window, measures) for window in found]


def _runs_rows(flt: SpanFilter, windows: tuple[Window, ...], bucket: str | None = None) -> list[dict]:
    """Runs and failed runs per window (`win`) and service, and per series bucket (`t`) with one."""
    t, params = _by_bucket(flt, windows, bucket)
    return run(
        Sql(
            f"SELECT {_win(windows)} AS win, {t}ServiceName AS service, sum(Runs) AS runs, sum(Failed) AS failed FROM (",
            sources.runs(flt, ("Runs", "Failed"), windows=windows),
            f") GROUP BY win, {'t, ' if t else ''}ServiceName",
            **params,
        ),
        tag="overview.runs",
    )


def _runs_by_window(rows: list[dict], n: int) -> list[dict]:
    """Per window: {"runs", "failed", "services": {service: (runs, failed)}}, services with runs."""
    found: list[dict] = [{"services": {}, "runs": 0, "failed": 0} for _ in range(n)]
    for r in rows:
        into = found[int(r["win"])]
        into["runs"] += int(r["runs"])
        into["failed"] += int(r["failed"])
        runs, failed = into["services"].get(r["service"], (0, 0))
        into["services"][r["service"]] = (runs + int(r["runs"]), failed + int(r["failed"]))
    for into in found:
        into["services"] = {s: counts for s, counts in into["services"].items() if counts[0]}
    return found


def _series(flt: SpanFilter, call_rows: list[dict], run_rows: list[dict]) -> timeseries_q.Timeseries:
    """The first window's series from rows per bucket, model and service (summed over services
    here: what timeseries.timeseries asks ClickHouse for)."""
    calls: dict[tuple, list[dict]] = {}
    for r in call_rows:
        if not int(r["win"]):
            calls.setdefault((int(r["t"]), r["model"]), []).append(r)
    columns = ("t_Errors", *(f"t_{m}" for m in timeseries_q.CALL_MEASURES))
    summed = [{"t": t, "model": model} | sources.summed(members, columns) for (t, model), members in calls.items()]
    runs: dict[int, list[int]] = {}
    for r in run_rows:
        if not int(r["win"]):
            into = runs.setdefault(int(r["t"]), [0, 0])
            into[0] += int(r["runs"])
            into[1] += int(r["failed"])
    return timeseries_q.from_rows(flt, summed, [{"t": t, "runs": n, "failed": f} for t, (n, f) in runs.items()])


def _round(value, digits: int = 10) -> float:
    return round(float(value or 0), digits)


def _win(windows: tuple[Window, ...]) -> str:
    """The window index of a source's row: its `Win` column when it reads several windows."""
    return "Win" if len(windows) > 1 else "0"


def _asked(
    flt: SpanFilter, windows: tuple[Window, ...], bucket: str | None = None
) -> tuple[list[dict], list[dict], dict]:
    """Rows of calls and runs per window (and series bucket), and the first window's latency
    percentiles: three independent statements, asked at once (monitoring/queries/parallel.py)."""
    calls, runs, latencies = parallel.gather(
        flt,
        lambda: _calls_rows(flt, windows, bucket),
        lambda: _runs_rows(flt, windows, bucket),
        lambda: latency_q.percentiles_by(flt, tag="overview.latency"),
    )
    return calls, runs, latencies


def overview(flt: SpanFilter) -> Overview:
    """The window's Overview (three statements: calls by model, runs, latency). Raises ClickHouseError."""
    calls, runs, latencies = _asked(flt, (flt.window,))
    return _overview(_calls_by_window(calls, 1)[0], _runs_by_window(runs, 1)[0], latencies)


def overview_page(flt: SpanFilter, previous: Window) -> tuple[Overview, Overview, timeseries_q.Timeseries]:
    """The Overview tab: the window's Overview, that of the `previous` window (same filter
    otherwise, not overlapping: ValueError) and the window's series (the cards' trend lines, as
    timeseries.timeseries), from three statements each reading both windows at once, their rows
    asked per series bucket too. The card changes need only the previous window's totals: its
    latency percentiles are left at 0. Raises ClickHouseError."""
    calls, runs, latencies = _asked(flt, (flt.window, previous), timeseries_q.bucket_for(flt))
    calls_by, runs_by = _calls_by_window(calls, 2), _runs_by_window(runs, 2)
    return (
        _overview(calls_by[0], runs_by[0], latencies),
        _overview(calls_by[1], runs_by[1], {}),
        _series(flt, calls, runs),
    )


def _overview(rows: list[dict], runs: dict, latencies: dict) -> Overview:
    total = next((r for r in rows if int(r["is_total"])), {})
    models, unpriced = [], []
    services: dict[str, Leader] = {}
    for service, (n, failed) in runs.get("services", {}).items():
        services[service] = Leader(service or "(no service)", n, failed)
    for row in rows:
        if int(row["by_service"]) and int(row["Calls"]):
            leader = services.setdefault(row["service"], Leader(row["service"] or "(no service)"))
            leader.calls += int(row["Calls"])
            leader.errors += int(row["Errors"])
            leader.cost_usd = _round(leader.cost_usd + float(row["Cost"]))
        if int(row["is_total"]) or int(row["by_service"]) or not int(row["Calls"]):
            continue
        if row["model"]:
            models.append(Leader(row["model"], int(row["Calls"]), int(row["Errors"]), _round(row["Cost"])))
        if int(row["Unpriced"]):
            unpriced.append(row["model"] or "(no model)")
    models.sort(key=lambda m: (-m.cost_usd, -m.calls, m.name))
    calls = int(total.get("Calls") or 0)
    errors = int(total.get("Errors") or 0)
    agent_calls = int(runs.get("runs") or 0)
    agent_errors = int(runs.get("failed") or 0)
    timed = int(total.get("Timed") or 0)
    p50, p95, p99 = latencies.get("", (0.0, 0.0, 0.0))
    attempts = calls + agent_calls
    cost = _round(total.get("Cost"))
    reported = _round(total.get("ReportedCost"))
    return Overview(
        total_cost_usd=cost,
        llm_calls=calls,
        agent_calls=agent_calls,
        avg_latency_ms=round(int(total.get("DurationSum") or 0) / timed / 1e6, 3) if timed else 0.0,
        fail_rate=round((errors + agent_errors) / attempts, 6) if attempts else 0.0,
        llm_errors=errors,
        agent_errors=agent_errors,
        reported_cost_usd=reported,
        priced_cost_usd=_round(cost - reported),
        p50_latency_ms=p50,
        p95_latency_ms=p95,
        p99_latency_ms=p99,
        models=models,
        input_tokens=int(total.get("InputTokens") or 0),
        output_tokens=int(total.get("OutputTokens") or 0),
        cache_read_tokens=int(total.get("CacheReadTokens") or 0),
        cache_write_tokens=int(total.get("CacheWriteTokens") or 0),
        reasoning_tokens=int(total.get("ReasoningTokens") or 0),
        cache_savings_usd=_round(total.get("CacheSavings")),
        unpriced_calls=int(total.get("Unpriced") or 0),
        unpriced_models=sorted(unpriced),
        calls_without_end=calls - timed,
        services=sorted(services.values(), key=lambda s: (-s.errors, s.name)),
    )


def change(current: float, previous: float, previous_sample: int | None = None) -> float | None:
    """Relative change against the previous window; None when there is nothing to compare with
    (no value before, or fewer than MIN_PREVIOUS_SAMPLE calls and runs when `previous_sample` is given)."""
    if not previous:
        return None
    if previous_sample is not None and previous_sample < MIN_PREVIOUS_SAMPLE:
        return None
    return (current - previous) / previous


# --- leader boards --------------------------------------------------------------------------------


def top_services(overview: Overview, limit: int = 5) -> list[Leader]:
    """Services with failures, by failed LLM calls plus failed agent runs (a run belongs to its
    root's service), from an Overview already asked (no statement)."""
    return [s for s in overview.services if s.errors][:limit]
