"""Where a question's rows come from: settled facts (rollup slices for the whole slices of a long
window, raw settled rows for the rest) plus, for traces not settled yet, their facts computed now
minus what is stored for them. Every source yields rows of one shape, so a question is a plain
`SELECT ... sum(x) ... FROM (source) GROUP BY ...`.

Rows carry `Time` (the row's instant, or its slice's start) and measures that add up: a settled
row weighs its `Sign` (a cancelled fact subtracts), a live row +1, a stored row of a live trace
-Sign. So sum(Calls) over the union is exactly the number of invocations, whichever way each was
found.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from monitoring.queries import attributes, live, ranges
from monitoring.queries.filter import SpanFilter, Window
from monitoring.store import schema
from monitoring.store.sql import Sql, to_nanos

# Windows up to this long read raw settled rows only: a few hours of calls cost less than slices.
RAW_UP_TO = dt.timedelta(hours=6)

# --- measures -------------------------------------------------------------------------------------
# name -> expression over one row of an invocation source (otel_calls, or facts.invocations), given
# the weight `w` of the row; rollup tables hold the same names already summed.

CALL_MEASURES = {
    "Calls": "toInt64(w)",
    "Timed": "toInt64(w * HasEnd)",
    "DurationSum": "w * toInt64(Duration)",
    "InputTokens": "w * toInt64(InputTokens)",
    "OutputTokens": "w * toInt64(OutputTokens)",
    "CacheReadTokens": "w * toInt64(CacheReadTokens)",
    "CacheWriteTokens": "w * toInt64(CacheWriteTokens)",
    "ReasoningTokens": "w * toInt64(ReasoningTokens)",
    "ReportedCost": "w * ReportedCost",
    "Cost": "w * Cost",
    "Unpriced": "toInt64(w * (Priced = 0))",
    "CacheSavings": "w * CacheSavings",
}
# One row per timed call: its fine latency bucket and Analytics bin (monitoring/store/schema.py).
LATENCY_MEASURES = {
    "Bucket": schema.fine_bucket_sql(),
    "Bin": schema.latency_bin_sql(),
    "Calls": "toInt64(w)",
    "DurationSum": "w * toInt64(Duration)",
}
USER_MEASURES = ("Calls", "InputTokens", "OutputTokens", "Cost", "Unpriced", "Timed", "DurationSum")
RUN_MEASURES = {
    "Runs": "toInt64(w)",
    "Failed": "toInt64(w * IsError)",
    "LLMCalls": "w * toInt64(LLMCalls)",
    "Cost": "w * Cost",
}
EDGE_MEASURES = {
    "Calls": "w * toInt64(Calls)",
    "Errors": "w * toInt64(Errors)",
    "Duration": "w * toInt64(Duration)",
}


def usd_sum(values: list[float]) -> float:
    """USD amounts summed in Python (a few dozen groups rolled up: cheaper than asking ClickHouse
    for each grouping): exactly rounded (math.fsum), or the plain sum where fsum refuses (an inf
    cancelled by -inf: ClickHouse's own sum gave nan there, and the page still drew)."""
    try:
        return math.fsum(values)
    except (ValueError, OverflowError):
        return sum(values)


USD_MEASURES = frozenset({"ReportedCost", "Cost", "CacheSavings"})  # Float64; the other measures count


def summed(rows: list[dict], columns) -> dict:
    """{column: its sum over `rows`}: USD measures (by name, with or without the `t_` of totals())
    with usd_sum, the others as integers. For rows of a few dozen groups rolled up in Python."""
    return {
        c: usd_sum([float(r[c]) for r in rows])
        if c.removeprefix("t_") in USD_MEASURES
        else sum(int(r[c]) for r in rows)
        for c in columns
    }


def totals(measures) -> str:
    """`sum(Calls) AS t_Calls, ...`: totals named apart from the measures (an alias may not shadow
    the column its aggregate reads)."""
    return ", ".join(f"sum({m}) AS t_{m}" for m in measures)


# --- conditions of the filter bar -----------------------------------------------------------------


def _time_range(column: str, lo: str, hi: str) -> str:
    return f"{column} >= fromUnixTimestamp64Nano({{{lo}:Int64}}) AND {column} < fromUnixTimestamp64Nano({{{hi}:Int64}})"


def call_conditions(flt: SpanFilter, p: str = "") -> list[str]:
    """The bar's conditions on rows with ServiceName, Model, IsError, IsReplay (calls and rollups)."""
    found = []
    if flt.services:
        found.append(f"ServiceName IN {{{p}services:Array(String)}}")
    if flt.models:
        found.append(f"Model IN {{{p}models:Array(String)}}")
    if flt.status == "error":
        found.append("IsError = 1")
    elif flt.status == "ok":
        found.append("IsError = 0")
    if not flt.include_replays:
        found.append("IsReplay = 0")
    return found


def run_conditions(flt: SpanFilter, raw: bool, p: str = "") -> list[str]:
    """The bar on runs: a service or model filter keeps runs holding a matching span (raw rows carry
    their services and models; rollups cannot answer that); status is the run's outcome."""
    found = []
    if raw and flt.services:
        found.append(f"hasAny(Services, {{{p}services:Array(String)}})")
    if raw and flt.models:
        found.append(f"hasAny(Models, {{{p}models:Array(String)}})")
    if flt.status == "error":
        found.append("IsError = 1")
    elif flt.status == "ok":
        found.append("IsError = 0")
    if not flt.include_replays:
        found.append("IsReplay = 0")
    return found


def edge_conditions(flt: SpanFilter, raw: bool, p: str = "") -> list[str]:
    found = run_conditions(flt, raw, p)
    return [c.replace("IsError", "RunFailed") for c in found]


def filter_params(flt: SpanFilter, p: str = "") -> dict:
    """The bar's values, named with the prefix `p` of the conditions above (the project is not
    prefixed: one statement may hold several filters of one project)."""
    return {"project": flt.project_id, f"{p}services": list(flt.services), f"{p}models": list(flt.models)}


def attr_conditions(flt: SpanFilter, level: str, p: str, windows: tuple[Window, ...] = ()) -> tuple[list[str], dict]:
    """The bar's `attr=` conditions and cost, tokens and latency ranges on raw rows (rollups cannot
    answer them) of calls (`level="span"`), runs (`"run"`) or edges (`"trace"`), attributes read
    over the span time of `windows` (default the filter's)."""
    windows = windows or (flt.window,)
    start, end = to_nanos(min(w.start for w in windows)), to_nanos(max(w.end for w in windows))
    found, params = attributes.for_filter(flt, "span" if level == "span" else "run", p, start, end)
    by_range, range_params = ranges.conditions(flt, "call" if level == "span" else level, p)
    return found + by_range, params | range_params


# --- the window split into slices and edges ---------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """A window as [start, s0) raw + [s0, s1) whole slices + [s1, end) raw (ns); s0 == s1: raw only."""

    start: int
    s0: int
    s1: int
    end: int

    @classmethod
    def of(cls, flt: SpanFilter, slice_seconds: int, force_raw: bool = False) -> Split:
        start, end = to_nanos(flt.window.start), to_nanos(flt.window.end)
        step = slice_seconds * 10**9
        s0 = -(-start // step) * step
        s1 = end // step * step
        if force_raw or flt.window.length <= RAW_UP_TO or s1 <= s0:
            return cls(start, end, end, end)
        return cls(start, s0, s1, end)

    def params(self, p: str) -> dict:
        """Bound values named with the source's prefix `p` (sources of one query may split differently)."""
        return {f"{p}start": self.start, f"{p}s0": self.s0, f"{p}s1": self.s1, f"{p}end": self.end}


def _raw_ranges(column: str, split: Split, p: str) -> str:
    if split.s0 == split.s1:
        return _time_range(column, f"{p}start", f"{p}end")
    return f"(({_time_range(column, f'{p}start', f'{p}s0')}) OR ({_time_range(column, f'{p}s1', f'{p}end')}))"


def _weighted(measures: dict[str, str], dims: tuple[str, ...], time: str, weight: str, win: str = "") -> str:
    """SELECT list of a row-level source: [Win,] Time, dims and measures over rows weighing `w`."""
    exprs = [f"{time} AS Time", *dims, *(f"{expr} AS {name}" for name, expr in measures.items())]
    return f"SELECT {win}{', '.join(exprs)} FROM (SELECT *, {weight} AS w FROM "


def _tagged(conditions: list[tuple[int, str]], tag: bool) -> tuple[str, str]:
    """(`multiIf(...) AS Win, ` naming the window of a row, the rows' condition) from the condition
    of each window, (window index, SQL); no Win when `tag` is false (one window)."""
    where = " OR ".join(f"({c})" for _i, c in conditions)
    if not tag:
        return "", where
    *first, (last, _c) = conditions
    cases = "".join(f"{c}, {i}, " for i, c in first)
    return (f"multiIf({cases}{last}) AS Win, " if first else f"{last} AS Win, "), f"({where})"


def _live_parts(
    flt: SpanFilter,
    kind: str,
    settled: str,
    measures: dict[str, str],
    dims: tuple[str, ...],
    time: str,
    prefixes: list[str],
    where: Sql,
) -> list[Sql]:
    """For traces not settled yet: their facts computed now (+1) and what is stored for them (-Sign),
    both inside the windows; [] when the settler keeps up."""
    now = live.facts_for(flt)
    if now is None:
        return []
    win, window = _tagged(
        [(i, _time_range(time, f"{q}start", f"{q}end")) for i, q in enumerate(prefixes)], len(prefixes) > 1
    )
    return [
        Sql(_weighted(measures, dims, time, "1", win), getattr(now.tables, kind), ") WHERE ", window, " AND ", where),
        Sql(
            _weighted(measures, dims, time, "-Sign", win),
            f"{schema.table(settled)} WHERE ProjectId = {{project:String}} AND TraceId IN (",
            now.scope.traces,
            ")) WHERE ",
            window,
            " AND ",
            where,
        ),
    ]


@dataclass(frozen=True)
class _Shape:
    """Where one kind of row lives: its rollup (None: raw rows only), its settled table and time
    column, the live facts' table of that kind, and how rollup rows spell each measure."""

    rollup: str | None
    table: str
    time: str
    live: str
    rollup_measures: dict[str, str] | None = None  # measure -> expression over a rollup row


def _source(
    flt: SpanFilter,
    shape: _Shape,
    dims: tuple[str, ...],
    row_measures: dict[str, str],
    p: str,
    rollup_where: list[str],
    raw_where: list[str],
    force_raw: bool,
    windows: tuple[Window, ...] = (),
    extra_params: dict | None = None,
) -> Sql:
    """Rollup slices for the window's whole slices, settled rows for the rest, and the live part.
    With several `windows` (disjoint) every part reads them all at once and its rows carry `Win`,
    the index of their window: a UNION branch costs ClickHouse 5-10 ms of planning whatever it
    reads, so two windows in one set of branches answer in about the time of one."""
    windows = windows or (flt.window,)
    if any(a.start < b.end and b.start < a.end for i, a in enumerate(windows) for b in windows[i + 1 :]):
        raise ValueError(f"overlapping windows: {windows}")  # a row is given to one window only
    slice_seconds = schema.ROLLUP_SLICE_SECONDS[shape.rollup] if shape.rollup else 1
    force_raw = force_raw or shape.rollup is None
    splits = [Split.of(flt.with_window(w), slice_seconds, force_raw=force_raw) for w in windows]
    prefixes = [p] if len(windows) == 1 else [f"{p}{i}_" for i in range(len(windows))]
    tag, by_window = len(windows) > 1, list(enumerate(zip(prefixes, splits, strict=True)))
    parts: list[Sql] = []
    sliced = [(i, _time_range("Slice", f"{q}s0", f"{q}s1")) for i, (q, s) in by_window if s.s0 < s.s1]
    if shape.rollup and sliced:
        spelled = shape.rollup_measures or {m: m for m in row_measures}
        win, in_slices = _tagged(sliced, tag)
        parts.append(
            Sql(
                f"SELECT {win}Slice AS Time, {', '.join(dims)}, ",
                ", ".join(f"{spelled[m]} AS {m}" if spelled[m] != m else m for m in row_measures),
                f" FROM {schema.table(shape.rollup)} WHERE ProjectId = {{project:String}} AND ",
                in_slices,
                " AND ",
                Sql.all(rollup_where),
            )
        )
    where = Sql.all(raw_where)
    win, in_raw = _tagged([(i, _raw_ranges(shape.time, s, q)) for i, (q, s) in by_window], tag)
    parts.append(
        Sql(
            _weighted(row_measures, dims, shape.time, "Sign", win),
            f"{schema.table(shape.table)} WHERE ProjectId = {{project:String}} AND {in_raw}",
            ") WHERE ",
            where,
        )
    )
    parts += _live_parts(flt, shape.live, shape.table, row_measures, dims, shape.time, prefixes, where)
    bounds = {k: v for _i, (q, s) in by_window for k, v in s.params(q).items()}
    return Sql(Sql.join(" UNION ALL ", parts), **filter_params(flt, p), **bounds, **(extra_params or {}))


# --- invocations ----------------------------------------------------------------------------------

CALL_DIMS = ("ServiceName", "Model", "Provider", "IsError", "IsEmbedding", "IsReplay")
_CALLS = _Shape(schema.CALLS_15M, schema.CALLS, "Timestamp", "calls")
_USER_CALLS = _Shape(schema.USERS_1H, schema.CALLS, "Timestamp", "calls")
_LATENCY = _Shape(schema.LATENCY_1H, schema.CALLS, "Timestamp", "calls")
_RUNS = _Shape(
    schema.RUNS_15M, schema.RUNS, "Start", "runs",
    {"Runs": "Runs", "Failed": "Runs * IsError", "LLMCalls": "LLMCalls", "Cost": "Cost"},
)  # fmt: skip
_EDGES = _Shape(schema.EDGES_15M, schema.EDGES, "Start", "edges")


def calls(
    flt: SpanFilter,
    measures: tuple[str, ...] = tuple(CALL_MEASURES),
    by_user: bool = False,
    p: str = "wc_",
    extra_dims: tuple[str, ...] = (),
    windows: tuple[Window, ...] = (),
) -> Sql:
    """Invocation rows of the filter: Time, ServiceName, Model, Provider, IsError, IsEmbedding,
    IsReplay (and EndUser when `by_user`), and `measures` (names of CALL_MEASURES).

    `p` prefixes the window's parameter names: two sources in one statement over different windows
    need different prefixes. `extra_dims` (columns of otel_calls such as SessionId, TraceId,
    RunTraceId) are carried too; rollups do not hold them, so those rows are read raw. `windows`
    (disjoint; default the filter's own) are read at once, each row led by `Win`, its window's
    index, when there are several. Raises ValueError for overlapping windows."""
    dims: tuple[str, ...] = CALL_DIMS
    if by_user:
        dims = ("ServiceName", "Model", "IsError", "IsReplay", "EndUser")
        measures = tuple(m for m in measures if m in USER_MEASURES)
    where = call_conditions(flt, p)
    by_attrs, attr_params = attr_conditions(flt, "span", p, windows)
    return _source(
        flt,
        _USER_CALLS if by_user else _CALLS,
        (*dims, *extra_dims),
        {m: CALL_MEASURES[m] for m in measures},
        p,
        rollup_where=where,
        raw_where=[*where, *by_attrs],
        force_raw=bool(extra_dims or flt.attrs or flt.ranges),
        windows=windows,
        extra_params=attr_params,
    )


def latency(flt: SpanFilter, p: str = "wl_", extra_dims: tuple[str, ...] = ()) -> Sql:
    """Timed invocations of the filter as histogram rows: Time, ServiceName, Model, Provider, IsError,
    IsEmbedding, IsReplay, Bucket (fine log bucket), Bin (Analytics bin), Calls, DurationSum (ns).
    `extra_dims` as for calls() (read raw)."""
    where = call_conditions(flt, p)
    by_attrs, attr_params = attr_conditions(flt, "span", p)
    return _source(
        flt,
        _LATENCY,
        (*CALL_DIMS, *extra_dims),
        LATENCY_MEASURES,
        p,
        rollup_where=where,
        raw_where=[*where, "HasEnd = 1", *by_attrs],
        force_raw=bool(extra_dims or flt.attrs or flt.ranges),
        extra_params=attr_params,
    )


# --- agent runs -----------------------------------------------------------------------------------


def runs(
    flt: SpanFilter,
    measures: tuple[str, ...] = tuple(RUN_MEASURES),
    p: str = "wr_",
    extra_dims: tuple[str, ...] = (),
    windows: tuple[Window, ...] = (),
) -> Sql:
    """Agent-run rows of the filter: Time (the run's start), ServiceName, IsError, IsReplay, `measures`
    (and `extra_dims`, columns of otel_runs such as SessionId or EndUser, read raw); `windows` as
    for calls()."""
    by_attrs, attr_params = attr_conditions(flt, "run", p, windows)
    return _source(
        flt,
        _RUNS,
        ("ServiceName", "IsError", "IsReplay", *extra_dims),
        {m: RUN_MEASURES[m] for m in measures},
        p,
        rollup_where=run_conditions(flt, raw=False, p=p),
        raw_where=[*run_conditions(flt, raw=True, p=p), *by_attrs],
        # "runs holding a matching span": rollups cannot tell; nor do they hold extra dimensions.
        force_raw=bool(flt.services or flt.models or flt.attrs or flt.ranges or extra_dims),
        windows=windows,
        extra_params=attr_params,
    )


# --- flow edges -----------------------------------------------------------------------------------


def edges(flt: SpanFilter, p: str = "we_") -> Sql:
    """Flow-edge rows of the filter's runs: Time (run start), Parent, Child, Calls, Errors, Duration."""
    by_attrs, attr_params = attr_conditions(flt, "trace", p)
    return _source(
        flt,
        _EDGES,
        ("Parent", "Child"),
        EDGE_MEASURES,
        p,
        rollup_where=edge_conditions(flt, raw=False, p=p),
        raw_where=[*edge_conditions(flt, raw=True, p=p), *by_attrs],
        force_raw=bool(flt.services or flt.models or flt.attrs or flt.ranges),
        extra_params=attr_params,
    )
