"""The Overview's cards: each number formatted, its change against the previous window of the same
length, and a small trend line. The template only lays them out; what a card says is decided here.

A change is shown only when the previous window has enough data to compare with (MIN_BASELINE LLM
calls plus agent runs): against a near-empty window, "+994,962.9%" says nothing, so the card says
"new" instead. A rate (the fail rate) changes in percentage points, not in percent of itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from monitoring.web import charts, display

MIN_BASELINE = 20  # LLM calls + agent runs the previous window needs before a change is shown

UP, DOWN, FLAT, NEW, NONE = "up", "down", "flat", "new", "none"
GOOD, BAD, NEUTRAL = "good", "bad", "neutral"

# Preset windows as people read them ("vs previous 7 days").
RANGE_NAMES = {
    "1h": gettext_lazy("previous hour"),
    "24h": gettext_lazy("previous 24 hours"),
    "7d": gettext_lazy("previous 7 days"),
    "30d": gettext_lazy("previous 30 days"),
}


@dataclass(frozen=True)
class Change:
    direction: str  # UP, DOWN, FLAT, NEW (nothing to compare with) or NONE (no data either side)
    tone: str  # GOOD, BAD or NEUTRAL: the colour
    text: str
    hint: str = ""  # why, on hover


@dataclass(frozen=True)
class KpiLine:
    """A second number on a card, with its own change (the quality card's negative feedback rate)."""

    key: str
    label: str
    value: str
    change: Change
    detail: str = ""


@dataclass(frozen=True)
class Kpi:
    key: str  # stable id: data-kpi attribute, CSS
    label: str
    value: str
    change: Change
    detail: str = ""  # the line under the change (p50/p95/p99, what failed, reported vs priced)
    trend: dict | None = None  # charts.sparkline(...)
    trend_note: str = ""  # what the trend line shows
    warning: str = ""  # what the number leaves out (calls without a price)
    lines: tuple[KpiLine, ...] = ()  # more numbers of the card, each with its change


def change(
    now: float,
    before: float,
    *,
    baseline: int,
    window: str,
    up_is_bad: bool,
    rate: bool = False,
    hint: str = "",
    current: int | None = None,
) -> Change:
    """How `now` compares with `before` (the previous window had `baseline` LLM calls + agent runs,
    or what `hint` says it counts: "… (fewer than %(count)s scored runs)").

    One rule for every card: without enough to compare with, the card says "new" when this window
    has data (`current`: its LLM calls + agent runs, or what the card counts; default: `now` is not
    zero) and "no data" only when it has none, so a 0 % fail rate over 40 calls is "new", not "no data"."""
    against = str(RANGE_NAMES.get(window, gettext_lazy("previous window")))
    if baseline < MIN_BASELINE or (not rate and not before):
        hint = (
            hint
            or _("Too little data in the %(window)s to compare with (fewer than %(count)s LLM calls and agent runs).")
        ) % {
            "window": against,
            "count": MIN_BASELINE,
        }
        if now if current is None else current:
            return Change(NEW, NEUTRAL, _("new"), hint)
        return Change(NONE, NEUTRAL, _("no data"), hint)
    # Rounded past what is shown: 0.25 - 0.2 is 0.04999…, which number_format cut to "+4.9 pp".
    delta = round(now - before, 10) if rate else (now - before) / before
    if abs(delta) < 0.0005:
        return Change(FLAT, NEUTRAL, _("no change vs %(window)s") % {"window": against})
    direction = UP if delta > 0 else DOWN
    tone = BAD if (delta > 0) == up_is_bad else GOOD
    amount = display.points(delta) if rate else display.signed_percent(delta)
    return Change(direction, tone, _("%(change)s vs %(window)s") % {"change": amount, "window": against})


def overview_cards(current, previous, window: str, series=None) -> list[Kpi]:
    """The five cards from two `queries.Overview`s (this window, the previous one) and, for the
    trend lines, this window's `analytics.Timeseries` (None: no trend lines)."""
    baseline = previous.llm_calls + previous.agent_calls
    attempts = current.llm_calls + current.agent_calls

    def delta(now, before, up_is_bad, rate=False):
        return change(now, before, baseline=baseline, window=window, up_is_bad=up_is_bad, rate=rate, current=attempts)

    trends: dict[str, dict | None] = {}
    note = ""
    if series is not None and len(series.times) > 1:
        calls, errors = series.total("llm_calls"), series.total("errors")
        runs, failed_runs = series.runs, series.failed_runs
        trends = {
            "total-cost": charts.sparkline(series.total("cost_usd")),
            "llm-calls": charts.sparkline(calls),
            "agent-calls": charts.sparkline(runs),
            "avg-latency": charts.sparkline(series.avg_latency_ms()),
            # The card's rule per bucket: (failed calls + failed runs) / (calls + runs); no attempts, no point.
            "fail-rate": charts.sparkline(
                [
                    (e + f) / (c + r) if c + r else None
                    for c, e, r, f in zip(calls, errors, runs, failed_runs, strict=False)
                ]
            ),
        }
        note = {"minute": _("per minute"), "hour": _("per hour")}.get(series.bucket, _("per day"))
    failed = ngettext("%(count)s LLM call", "%(count)s LLM calls", current.llm_errors) % {
        "count": display.count(current.llm_errors)
    }
    failed_runs = ngettext("%(count)s agent run", "%(count)s agent runs", current.agent_errors) % {
        "count": display.count(current.agent_errors)
    }
    return [
        Kpi(
            "total-cost",
            _("Total Cost"),
            # Nothing priced but calls without a price: "3 unpriced", never "$0".
            display.usd(current.total_cost_usd)
            if current.total_cost_usd or not current.unpriced_calls
            else display.unpriced_usd(0, current.unpriced_calls),
            delta(current.total_cost_usd, previous.total_cost_usd, up_is_bad=True),
            _cost_detail(current),
            trends.get("total-cost"),
            note,
            _unpriced_warning(current),
        ),
        Kpi(
            "llm-calls",
            _("LLM Calls"),
            display.count(current.llm_calls),
            delta(current.llm_calls, previous.llm_calls, up_is_bad=False),
            "",
            trends.get("llm-calls"),
            note,
        ),
        Kpi(
            "agent-calls",
            _("Agent Calls"),
            display.count(current.agent_calls),
            delta(current.agent_calls, previous.agent_calls, up_is_bad=False),
            "",
            trends.get("agent-calls"),
            note,
        ),
        Kpi(
            "avg-latency",
            _("Avg Latency"),
            display.duration_ms(current.avg_latency_ms),
            delta(current.avg_latency_ms, previous.avg_latency_ms, up_is_bad=True),
            _("p50 %(p50)s · p95 %(p95)s · p99 %(p99)s")
            % {
                "p50": display.duration_ms(current.p50_latency_ms),
                "p95": display.duration_ms(current.p95_latency_ms),
                "p99": display.duration_ms(current.p99_latency_ms),
            },
            trends.get("avg-latency"),
            note,
        ),
        Kpi(
            "fail-rate",
            _("Fail Rate"),
            display.percent(current.fail_rate, 2),
            delta(current.fail_rate, previous.fail_rate, up_is_bad=True, rate=True),
            _("failed: %(calls)s, %(runs)s") % {"calls": failed, "runs": failed_runs},
            trends.get("fail-rate"),
            note,
        ),
    ]


def _cost_detail(current) -> str:
    text = _("%(reported)s reported · %(priced)s priced from tokens") % {
        "reported": display.usd(current.reported_cost_usd),
        "priced": display.usd(current.priced_cost_usd),
    }
    if current.cache_savings_usd > 0:
        text += " · " + _("%(saved)s saved by cached input") % {"saved": display.usd(current.cache_savings_usd)}
    return text


MAX_NAMED_MODELS = 3


def _unpriced_warning(current) -> str:
    """Calls with tokens but no reported cost and no known price add nothing to the total (they are
    unpriced, not free: README, "Cost"): say how many, and which models."""
    if not current.unpriced_calls:
        return ""
    models = current.unpriced_models[:MAX_NAMED_MODELS]
    names = ", ".join(models) + ("…" if len(current.unpriced_models) > MAX_NAMED_MODELS else "")
    return ngettext(
        "%(count)s call has no price (%(models)s) and is not in the total: set one in Django admin, Projects, model prices.",
        "%(count)s calls have no price (%(models)s) and are not in the total: set one in Django admin, Projects, model prices.",
        current.unpriced_calls,
    ) % {"count": display.count(current.unpriced_calls), "models": names}


def quality_card(now, before, window: str) -> Kpi | None:
    """The quality card from two `queries.quality.Quality`s (this window, the previous one): the
    share of scored runs that fail their evaluations, and the negative feedback rate, each with its
    change in percentage points (the rule: monitoring/queries/quality.py). None when neither window
    holds an evaluation or a thumb (a project that does not score shows no card)."""
    if now.empty and before.empty:
        return None
    fail_change = change(
        now.fail_share,
        before.fail_share,
        baseline=before.scored_runs,
        window=window,
        up_is_bad=True,
        rate=True,
        hint=_("Too little data in the %(window)s to compare with (fewer than %(count)s scored runs)."),
        current=now.scored_runs,
    )
    feedback_change = change(
        now.negative_feedback_rate,
        before.negative_feedback_rate,
        baseline=before.feedback,
        window=window,
        up_is_bad=True,
        rate=True,
        hint=_("Too little data in the %(window)s to compare with (fewer than %(count)s thumbs)."),
        current=now.feedback,
    )
    runs = ngettext(
        "%(failing)s of %(count)s scored run fails its evaluations",
        "%(failing)s of %(count)s scored runs fail their evaluations",
        now.scored_runs,
    ) % {"failing": display.count(now.failing_runs), "count": display.count(now.scored_runs)}
    thumbs = ngettext("%(down)s of %(count)s thumb down", "%(down)s of %(count)s thumbs down", now.feedback) % {
        "down": display.count(now.negative_feedback),
        "count": display.count(now.feedback),
    }
    return Kpi(
        "quality",
        _("Quality"),
        display.percent(now.fail_share, 1) if now.scored_runs else "–",
        fail_change,
        runs,
        lines=(
            KpiLine(
                "negative-feedback",
                _("Negative feedback"),
                display.percent(now.negative_feedback_rate, 1) if now.feedback else "–",
                feedback_change,
                thumbs,
            ),
        ),
    )
