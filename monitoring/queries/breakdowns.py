"""Analytics' breakdowns: cost, calls, errors, tokens and latency by model, by service and by end
user, each invocation counted once (monitoring/queries/facts.py) and priced like the Overview, so
each breakdown adds up to the Overview's totals for the same filter."""

from __future__ import annotations

from dataclasses import dataclass

from monitoring.queries import parallel, sources
from monitoring.queries.filter import SpanFilter
from monitoring.queries.sql import Sql, run

DIMENSIONS = ("model", "service", "user")
_COLUMNS = {"model": "Model", "service": "ServiceName", "user": "EndUser"}
_MEASURES = ("Calls", "Cost", "InputTokens", "OutputTokens", "Timed", "DurationSum", "Unpriced")


@dataclass
class Share:
    """One bar of a breakdown (USD, tokens, ns)."""

    name: str
    calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    duration_ns: int = 0
    timed: int = 0  # calls with an end time (the latency's denominator)
    unpriced: int = 0
    folded: int = 0  # > 0 for the "other" row: how many names it holds

    @property
    def avg_latency_ms(self) -> float:
        return round(self.duration_ns / self.timed / 1e6, 3) if self.timed else 0.0


def _shares(flt: SpanFilter, dim: str) -> list[Share]:
    column = _COLUMNS[dim]
    source = sources.calls(flt, _MEASURES, by_user=dim == "user", p="wu_" if dim == "user" else "wc_")
    rows = run(
        Sql(
            f"SELECT {column} AS name, sumIf(Calls, IsError = 1) AS t_Errors, {sources.totals(_MEASURES)}",
            " FROM (",
            source,
            f") GROUP BY {column} HAVING t_Calls != 0",
        ),
        tag=f"analytics.breakdown.{dim}",
    )
    return [
        Share(
            r["name"],
            int(r["t_Calls"]),
            int(r["t_Errors"]),
            round(float(r["t_Cost"]), 10),
            int(r["t_InputTokens"]),
            int(r["t_OutputTokens"]),
            int(r["t_DurationSum"]),
            int(r["t_Timed"]),
            int(r["t_Unpriced"]),
        )
        for r in rows
    ]


def breakdowns(flt: SpanFilter, top: int = 10) -> dict[str, list[Share]]:
    """{"model"|"service"|"user": shares by cost, then calls}; beyond `top` names one "other" row."""
    found = parallel.gather(flt, *(lambda dim=dim: _shares(flt, dim) for dim in DIMENSIONS))
    return {dim: _top(shares, top) for dim, shares in zip(DIMENSIONS, found, strict=True)}


def _top(shares: list[Share], top: int) -> list[Share]:
    shares.sort(key=lambda s: (-s.cost_usd, -s.calls, s.name))
    if len(shares) <= top:
        return shares
    rest = Share("", folded=len(shares) - top + 1)
    for s in shares[top - 1 :]:
        for f in ("calls", "errors", "cost_usd", "input_tokens", "output_tokens", "duration_ns", "timed", "unpriced"):
            setattr(rest, f, getattr(rest, f) + getattr(s, f))
    rest.cost_usd = round(rest.cost_usd, 10)
    return shares[: top - 1] + [rest]
