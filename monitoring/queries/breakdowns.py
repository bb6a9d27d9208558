"""Analytics' breakdowns: cost, calls, errors, tokens and latency by model, by service and by end
user, each invocation counted once (monitoring/semantics/facts.py) and priced like the Overview, so
each breakdown adds up to the Overview's totals for the same filter."""

from __future__ import annotations

from dataclasses import dataclass

from monitoring.queries import parallel, sources
from monitoring.queries.filter import SpanFilter
from monitoring.store.sql import Sql, run

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


def _rows(flt: SpanFilter, columns: tuple[str, ...], by_user: bool, tag: str) -> list[dict]:
    """The filter's calls summed per `columns` (t_Errors and t_<measure> for _MEASURES)."""
    grouped = ", ".join(columns)
    return run(
        Sql(
            f"SELECT {grouped}, sumIf(Calls, IsError = 1) AS t_Errors, {sources.totals(_MEASURES)} FROM (",
            sources.calls(flt, _MEASURES, by_user=by_user, p="wu_" if by_user else "wc_"),
            f") GROUP BY {grouped}",
        ),
        tag=tag,
    )


def _shares(rows: list[dict], column: str) -> list[Share]:
    """One Share per value of `column`, summing the rows of that value; names without a call
    (every call cancelled) are left out."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r[column], []).append(r)
    shares = []
    for name, members in groups.items():
        total = sources.summed(members, ("t_Errors", *(f"t_{m}" for m in _MEASURES)))
        if not total["t_Calls"]:
            continue
        shares.append(
            Share(
                name,
                total["t_Calls"],
                total["t_Errors"],
                round(total["t_Cost"], 10),
                total["t_InputTokens"],
                total["t_OutputTokens"],
                total["t_DurationSum"],
                total["t_Timed"],
                total["t_Unpriced"],
            )
        )
    return shares


def _by_model_and_service(flt: SpanFilter) -> tuple[list[Share], list[Share]]:
    # One statement for both (a few dozen (model, service) groups): planning a statement costs
    # more than summing its rows here.
    rows = _rows(flt, ("Model", "ServiceName"), False, "analytics.breakdown.model_service")
    return _shares(rows, "Model"), _shares(rows, "ServiceName")


def breakdowns(flt: SpanFilter, top: int = 10) -> dict[str, list[Share]]:
    """{"model"|"service"|"user": shares by cost, then calls}; beyond `top` names one "other" row.
    Two statements, asked at once. Raises ClickHouseError."""
    (models, services), users = parallel.gather(
        flt,
        lambda: _by_model_and_service(flt),
        lambda: _shares(_rows(flt, ("EndUser",), True, "analytics.breakdown.user"), "EndUser"),
    )
    return {"model": _top(models, top), "service": _top(services, top), "user": _top(users, top)}


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
