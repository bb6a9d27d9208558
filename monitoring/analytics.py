"""The Analytics tab's questions (Cost Trend, Token Usage, Agent Flow Graph, breakdowns, latency),
one function per question with its SQL beside it. Same rules as `queries`: every query is scoped by
project and window through `$where`/`$scope`, every value is bound, LLM calls are read from the
narrow `otel_llm_calls` table (`$calls` with `queries.CALL_ROW`: one row per model invocation) and
agent steps are `queries.AGENT`.

Cost is priced like the Overview: a call's reported cost, else its tokens at the project's or the
public price. Pricing is linear, so pricing per (bucket, model) or per (service, model) group adds up
to the Overview's total for the same filter.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from monitoring import clickhouse, pricing, queries
from monitoring.forms import SpanFilter

# --- time series: Cost Trend, Token Usage, calls and errors --------------------------------------

HOURLY_UP_TO = dt.timedelta(hours=48)
BUCKET_SECONDS = {"hour": 3600, "day": 86400}
METRICS = ("cost_usd", "input_tokens", "output_tokens", "llm_calls", "errors")


def bucket_for(flt: SpanFilter) -> str:
    """Hourly buckets for windows up to 48 h, daily beyond (at most ~400 points either way)."""
    return "hour" if flt.window.length <= HOURLY_UP_TO else "day"


# Buckets are whole UTC hours/days since the epoch, so they line up across windows and backends.
TIMESERIES_SQL = f"""
SELECT intDiv(toUnixTimestamp(Timestamp), {{step:UInt32}}) * {{step:UInt32}} AS t,
       Model AS model,
       count() AS llm_calls,
       countIf(IsError) AS errors,
       sum(ReportedCost) AS reported,
       sumIf(InputTokens, ReportedCost = 0) AS unpriced_input,
       sumIf(OutputTokens, ReportedCost = 0) AS unpriced_output,
       sum(InputTokens) AS input_tokens,
       sum(OutputTokens) AS output_tokens
FROM $calls
WHERE $where AND {queries.CALL_ROW}
GROUP BY t, model
"""


@dataclass(frozen=True)
class Timeseries:
    """Per bucket and model: `values[metric][model][i]` is bucket `times[i]`. Every bucket of the
    window is present (zeros where nothing happened), so a chart's x axis is continuous."""

    bucket: str
    times: tuple[dt.datetime, ...]
    models: tuple[str, ...]  # most expensive first, then most called; '' = calls without a model
    values: dict[str, dict[str, list]]

    def total(self, metric: str) -> list:
        sums = [0] * len(self.times)
        for series in self.values[metric].values():
            sums = [a + b for a, b in zip(sums, series, strict=False)]
        return [round(v, 10) for v in sums] if metric == "cost_usd" else sums

    @property
    def empty(self) -> bool:
        return not any(self.total("llm_calls"))

    def points(self) -> list[dict]:
        """The API's shape: one point per bucket, totals over models."""
        totals = {m: self.total(m) for m in METRICS}
        return [
            {"t": t.isoformat().replace("+00:00", "Z"), **{m: totals[m][i] for m in METRICS}}
            for i, t in enumerate(self.times)
        ]


def _cost(row: dict, overrides: dict) -> float:
    """A (group, model) row's USD: what its calls reported, plus the tokens of those that reported none."""
    unpriced = {
        "model": row["model"],
        "input_tokens": int(row["unpriced_input"]),
        "output_tokens": int(row["unpriced_output"]),
    }
    return float(row["reported"]) + pricing.cost_of_tokens([unpriced], overrides)


def bucket_starts(flt: SpanFilter, bucket: str) -> list[dt.datetime]:
    step = BUCKET_SECONDS[bucket]
    start, end = flt.window.start.timestamp(), flt.window.end.timestamp()
    t = int(start // step) * step
    starts = []
    while t < end:
        starts.append(dt.datetime.fromtimestamp(t, dt.UTC))
        t += step
    return starts


def timeseries(flt: SpanFilter) -> Timeseries:
    bucket = bucket_for(flt)
    times = bucket_starts(flt, bucket)
    index = {int(t.timestamp()): i for i, t in enumerate(times)}
    overrides = pricing.project_prices(flt.project_id)
    values: dict[str, dict[str, list]] = {m: {} for m in METRICS}
    for row in queries.run(TIMESERIES_SQL, flt, tag="analytics.timeseries", step=BUCKET_SECONDS[bucket]):
        i = index.get(int(row["t"]))
        if i is None:  # cannot happen for rows inside the window; never index out of it
            continue
        model = row["model"]
        found = {
            "cost_usd": _cost(row, overrides),
            "input_tokens": int(row["input_tokens"]),
            "output_tokens": int(row["output_tokens"]),
            "llm_calls": int(row["llm_calls"]),
            "errors": int(row["errors"]),
        }
        for metric, value in found.items():
            values[metric].setdefault(model, [0.0 if metric == "cost_usd" else 0] * len(times))[i] += value
    models = sorted(values["llm_calls"], key=lambda m: (-sum(values["cost_usd"][m]), -sum(values["llm_calls"][m]), m))
    return Timeseries(bucket, tuple(times), tuple(models), values)


# --- breakdowns: cost and calls by model, service, end user --------------------------------------

DIMENSIONS = ("model", "service", "user")

# One scan for all three: grouped by (dimension, model) so tokens are priced per model.
BREAKDOWN_SQL = f"""
SELECT grouping(ServiceName, EndUser) AS level, ServiceName AS service, EndUser AS user, Model AS model,
       count() AS calls,
       countIf(IsError) AS errors,
       sum(ReportedCost) AS reported,
       sumIf(InputTokens, ReportedCost = 0) AS unpriced_input,
       sumIf(OutputTokens, ReportedCost = 0) AS unpriced_output,
       sum(InputTokens) AS input_tokens,
       sum(OutputTokens) AS output_tokens,
       sum(Duration) AS duration
FROM $calls
WHERE $where AND {queries.CALL_ROW}
GROUP BY GROUPING SETS ((Model), (ServiceName, Model), (EndUser, Model))
"""
# `grouping(ServiceName, EndUser)` is a bit mask of the columns NOT in the row's set (ServiceName = 2, EndUser = 1).
_LEVELS = {3: "model", 1: "service", 2: "user"}


@dataclass
class Share:
    """One bar of a breakdown."""

    name: str
    calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    duration_ns: int = 0
    folded: int = 0  # > 0 for the "other" row: how many names it holds

    @property
    def avg_latency_ms(self) -> float:
        return round(self.duration_ns / self.calls / 1e6, 3) if self.calls else 0.0


def breakdowns(flt: SpanFilter, top: int = 10) -> dict[str, list[Share]]:
    """{"model"|"service"|"user": shares by cost, then calls}; beyond `top` names one "other" row."""
    overrides = pricing.project_prices(flt.project_id)
    found: dict[str, dict[str, Share]] = {d: {} for d in DIMENSIONS}
    for row in queries.run(BREAKDOWN_SQL, flt, tag="analytics.breakdowns"):
        dim = _LEVELS.get(int(row["level"]))
        if dim is None:
            continue
        share = found[dim].setdefault(row[dim], Share(row[dim]))
        share.calls += int(row["calls"])
        share.errors += int(row["errors"])
        share.cost_usd += _cost(row, overrides)
        share.input_tokens += int(row["input_tokens"])
        share.output_tokens += int(row["output_tokens"])
        share.duration_ns += int(row["duration"])
    return {dim: _top(list(shares.values()), top) for dim, shares in found.items()}


def _top(shares: list[Share], top: int) -> list[Share]:
    for s in shares:
        s.cost_usd = round(s.cost_usd, 10)
    shares.sort(key=lambda s: (-s.cost_usd, -s.calls, s.name))
    if len(shares) <= top:
        return shares
    rest = Share("", folded=len(shares) - top + 1)
    for s in shares[top - 1 :]:
        for f in ("calls", "errors", "cost_usd", "input_tokens", "output_tokens", "duration_ns"):
            setattr(rest, f, getattr(rest, f) + getattr(s, f))
    rest.cost_usd = round(rest.cost_usd, 10)
    return shares[: top - 1] + [rest]


# --- latency distribution of LLM calls ------------------------------------------------------------

# Bin edges in ms, roughly logarithmic: latency spreads over orders of magnitude.
LATENCY_EDGES_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)

# Bin i holds durations in [edge[i-1], edge[i]); bin 0 is below the first edge, the last one open.
_BIN = "arrayCount(e -> e <= Duration, {edges:Array(UInt64)})"
_BINS = len(LATENCY_EDGES_MS) + 1
# One scan: -Resample counts per bin into fixed-length arrays, beside the quantiles.
LATENCY_SQL = f"""
SELECT count() AS calls,
       quantiles(0.5, 0.95, 0.99)(Duration) AS q,
       countResample(0, {_BINS}, 1)({_BIN}) AS calls_by_bin,
       sumResample(0, {_BINS}, 1)(IsError, {_BIN}) AS errors_by_bin
FROM $calls
WHERE $where AND {queries.CALL_ROW}
"""


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


def _bin_label(lo: float, hi: float | None) -> str:
    """Short enough for a tick: "<50ms", "250–500ms", "0.5–1s", "≥60s"."""
    if lo == 0:
        return f"<{_ms_label(hi)}"
    if hi is None:
        return f"≥{_ms_label(lo)}"
    scale, unit = (1000, "s") if hi >= 1000 else (1, "ms")
    return f"{lo / scale:g}–{hi / scale:g}{unit}"


def latency(flt: SpanFilter) -> Latency:
    edges_ns = [int(e * 1_000_000) for e in LATENCY_EDGES_MS]
    row = queries.run(LATENCY_SQL, flt, tag="analytics.latency", edges=edges_ns)[0]
    bounds = [0, *LATENCY_EDGES_MS, None]
    bins = tuple(
        LatencyBin(_bin_label(lo, hi), lo, hi, int(calls), int(errors))
        for lo, hi, calls, errors in zip(bounds, bounds[1:], row["calls_by_bin"], row["errors_by_bin"], strict=False)
    )
    quantiles = [round(float(q) / 1e6, 3) for q in row["q"]] if int(row["calls"]) else [0.0, 0.0, 0.0]
    return Latency(bins, *quantiles)


# --- Agent Flow Graph ---------------------------------------------------------------------------
#
# Runs are traces with an agent step in the window that the filter bar selects: some span matches
# the services/models chosen, and "errors only" keeps runs with a failed span, "ok only" runs
# without one. Nodes are the runs' agent steps (by span name; tools apart) and LLM calls (by model).
# A node's parent is its nearest ancestor that is a node: between an agent step and the LiteLLM
# span that made its call there are HTTP and proxy spans (and the agent's own, uncounted, LLM span),
# which are climbed over. Edges count how often a parent node directly led to a child node.

TOOL = "IsToolStep"  # a MATERIALIZED column (schema.py): no attribute map is read
_RUN_STATUS = {"": "1", "error": "max(IsError) = 1", "ok": "max(IsError) = 0"}
_CLIMB = 8  # non-node spans climbed over between two nodes (LiteLLM's proxy puts 3 in between)
# Span ids are hashed to UInt64 for the per-trace arrays (`indexOf` on numbers, not hex strings).


def _climb() -> str:
    """`up0` is each span's parent index in its trace's arrays (0: none); each step jumps over one more non-node."""
    steps = ["arrayMap(p -> indexOf(ids, p), parents) AS up0"]
    for n in range(1, _CLIMB + 1):
        steps.append(f"arrayMap(k -> if(k = 0 OR nodes[k] != '', k, up0[k]), up{n - 1}) AS up{n}")
    return ",\n           ".join(steps)


FLOW_SQL = f"""
WITH flow_runs AS (
    SELECT TraceId FROM $table
    WHERE $scope AND TraceId != '' AND $sample
    GROUP BY TraceId
    HAVING countIf({queries.AGENT}) > 0 AND countIf($match) > 0 AND $run_status
),
flow_spans AS (
    SELECT TraceId, cityHash64(SpanId) AS span, cityHash64(ParentSpanId) AS parent_span, Duration, IsError,
           multiIf({queries.CALL}, concat('llm:', if(Model != '', Model, SpanName)),
                   {queries.AGENT}, concat(if({TOOL}, 'tool:', 'agent:'), SpanName),
                   '') AS node
    FROM $table
    WHERE $scope AND $sample AND TraceId IN flow_runs
),
flow_traces AS (
    SELECT groupArray(span) AS ids, groupArray(parent_span) AS parents, groupArray(node) AS nodes,
           groupArray(Duration) AS durations, groupArray(IsError) AS failed,
           count() OVER () AS run_count,
           {_climb()}
    FROM flow_spans
    GROUP BY TraceId
)
SELECT if(up{_CLIMB}[i] = 0, '', nodes[up{_CLIMB}[i]]) AS parent, nodes[i] AS child,
       count() AS calls, sum(failed[i]) AS errors, sum(durations[i]) AS duration, any(run_count) AS runs
FROM flow_traces
ARRAY JOIN arrayEnumerate(ids) AS i
WHERE nodes[i] != ''
GROUP BY parent, child
ORDER BY calls DESC, parent, child
LIMIT 5000
"""

MAX_FLOW_NODES = 60
# Beyond this many runs the graph is drawn from a deterministic sample of runs (by trace id hash),
# with counts scaled back up: the shape of the flow is what matters, and a month of runs would
# otherwise cost a second per page.
MAX_FLOW_RUNS = 2000
RUN_ESTIMATE_SQL = "SELECT uniq(TraceId) AS runs FROM $table WHERE $agents"


@dataclass
class FlowNode:
    key: str  # "agent:<span name>", "tool:<span name>" or "llm:<model>"
    count: int = 0
    errors: int = 0
    duration_ns: int = 0
    roots: int = 0  # times it had no node above it (a run's entry)
    self_calls: int = 0  # times its parent was a node of the same key (recursion)

    @property
    def kind(self) -> str:
        return self.key.partition(":")[0]

    @property
    def label(self) -> str:
        return self.key.partition(":")[2]

    @property
    def error_rate(self) -> float:
        return round(self.errors / self.count, 6) if self.count else 0.0

    @property
    def avg_latency_ms(self) -> float:
        return round(self.duration_ns / self.count / 1e6, 3) if self.count else 0.0


@dataclass(frozen=True)
class FlowGraph:
    runs: int
    nodes: list[FlowNode]  # most frequent first, at most MAX_FLOW_NODES
    edges: dict[tuple[str, str], int]  # (parent key, child key) -> count, among kept nodes
    hidden_nodes: int = 0  # nodes beyond the cap
    hidden_edges: dict[str, int] = field(default_factory=dict)  # child key -> count from hidden parents
    sampled_every: int = 1  # 1: every run; n: one run in n, counts scaled by n

    @property
    def empty(self) -> bool:
        return not self.nodes


def _flow_sql(flt: SpanFilter, sampled: bool) -> str:
    match = dataclasses.replace(flt, status="").sql()  # services and models, without the status
    sample = "cityHash64(TraceId) % {flow_every:UInt64} = 0" if sampled else "1"
    return (
        FLOW_SQL.replace("$match", f"({match})")
        .replace("$run_status", _RUN_STATUS[flt.status])
        .replace("$sample", sample)
    )


EXACT_RUNS_BELOW = 100_000  # uniq() is exact for small sets and within ~2 % above


def agent_run_estimate(flt: SpanFilter) -> int:
    """Agent runs in the filter (approximate above EXACT_RUNS_BELOW): cheap enough to ask first."""
    row = clickhouse.query_one(queries.sql(RUN_ESTIMATE_SQL, flt), queries.params(flt), tag="analytics.flow_runs")
    return int(row.get("runs") or 0)


def agent_flow(flt: SpanFilter, max_nodes: int = MAX_FLOW_NODES, max_runs: int = MAX_FLOW_RUNS) -> FlowGraph:
    estimate = agent_run_estimate(flt)
    every = max(1, -(-estimate // max_runs))
    rows = queries.run(_flow_sql(flt, every > 1), flt, tag="analytics.agent_flow", flow_every=every)
    nodes: dict[str, FlowNode] = {}
    edges: dict[tuple[str, str], int] = {}
    for row in rows:
        parent, child, calls = row["parent"], row["child"], int(row["calls"]) * every
        node = nodes.setdefault(child, FlowNode(child))
        node.count += calls
        node.errors += int(row["errors"]) * every
        node.duration_ns += int(row["duration"]) * every
        if not parent:
            node.roots += calls
        elif parent == child:
            node.self_calls += calls
        else:
            edges[(parent, child)] = edges.get((parent, child), 0) + calls
    ranked = sorted(nodes.values(), key=lambda n: (-n.count, n.key))
    kept = ranked[:max_nodes]
    keys = {n.key for n in kept}
    hidden_edges: dict[str, int] = {}
    for (parent, child), count in edges.items():
        if child in keys and parent not in keys:
            hidden_edges[child] = hidden_edges.get(child, 0) + count
    return FlowGraph(
        runs=int(rows[0]["runs"]) * every if rows else 0,
        nodes=kept,
        edges={e: c for e, c in edges.items() if e[0] in keys and e[1] in keys},
        hidden_nodes=len(ranked) - len(kept),
        hidden_edges=hidden_edges,
        sampled_every=every,
    )
