"""The filter bar's cost, tokens and latency ranges (`cost_min`, `cost_max`, `tokens_min`, …; issue
24) as SQL conditions on each kind of row.

A call is kept on its own numbers (settled otel_calls rows: Cost in USD, input plus output tokens,
its duration), a run on its own (the run's cost and tokens, start to end). The span lists keep a
span on its duration and tokens, and on cost only when it is a model invocation (the only spans
with a cost). A latency range keeps only rows with an end time. Bounds are inclusive.
"""

from __future__ import annotations

from monitoring.queries.filter import MeasureRange, SpanFilter
from monitoring.store import schema

# level -> measure -> SQL over one row of that level
_MEASURES = {
    "call": {
        "cost": "Cost",
        "tokens": "(InputTokens + OutputTokens)",
        "latency": "if(HasEnd = 1, Duration / 1e6, NULL)",
    },
    "run": {
        "cost": "Cost",
        "tokens": "(InputTokens + OutputTokens)",
        "latency": "if(HasEnd = 1, (toUnixTimestamp64Nano(End) - toUnixTimestamp64Nano(Start)) / 1e6, NULL)",
    },
    "run_list": {  # the runs list's rows (monitoring/queries/runs.py) carry the duration as DurationNs
        "cost": "Cost",
        "tokens": "(InputTokens + OutputTokens)",
        "latency": "if(HasEnd = 1, DurationNs / 1e6, NULL)",
    },
    "span": {
        "tokens": "(InputTokens + OutputTokens)",
        "latency": f"if(Duration < {2**62}, Duration / 1e6, NULL)",  # semconv.NO_END_DURATION_NS: no end yet
    },
}


def _bounded(expr: str, r: MeasureRange, q: str) -> str:
    parts = []
    if r.low is not None:
        parts.append(f"{expr} >= {{{q}lo:Float64}}")
    if r.high is not None:
        parts.append(f"{expr} <= {{{q}hi:Float64}}")
    return " AND ".join(parts) or "1"


def conditions(flt: SpanFilter, level: str, p: str = "", target: str = "TraceId") -> tuple[list[str], dict]:
    """SQL conditions and their parameters (prefix `p`) keeping the rows of `level`: "call" (otel_calls
    rows), "run" (otel_runs rows), "run_list" (the runs list's rows), "span" (otel_spans rows: TraceId, SpanId, Duration, tokens) or
    "trace" (any row with a TraceId, spelled `target`: kept when its run is; flow edges, scores).
    The statement binds `{project:String}`."""
    found: list[str] = []
    params: dict = {}
    for r in flt.ranges:
        q = f"{p}rg_{r.measure}_"
        params |= {f"{q}lo": r.low or 0.0, f"{q}hi": r.high or 0.0}
        if level in ("call", "run", "run_list"):
            found.append(_bounded(_MEASURES[level][r.measure], r, q))
        elif level == "span" and r.measure != "cost":
            found.append(_bounded(_MEASURES["span"][r.measure], r, q))
        elif level == "span":
            found.append(
                f"(TraceId, SpanId) IN (SELECT TraceId, SpanId FROM {schema.table(schema.CALLS)} FINAL"
                f" WHERE ProjectId = {{project:String}} AND Sign = 1 AND {_bounded('Cost', r, q)})"
            )
        else:
            found.append(
                f"{target} IN (SELECT TraceId FROM {schema.table(schema.RUNS)} FINAL"
                f" WHERE ProjectId = {{project:String}} AND Sign = 1 AND {_bounded(_MEASURES['run'][r.measure], r, q)})"
            )
    return found, params
