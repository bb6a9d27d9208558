"""Words for monitors in the active language (gettext): the rule as a sentence, values with units."""

from __future__ import annotations

from django.utils.translation import gettext as _

from monitoring.monitors import models as m
from monitoring.web import display


def value(metric: str, number: float | None) -> str:
    """A metric's value with its unit: "$12.34", "$0.000266" (the digits a cost needs, as on every
    page: display.usd), "1,234", "12.50%", "850 ms" / "1.2 s"."""
    if number is None:
        return "–"
    if metric == m.COST:
        return display.usd(number)
    if metric in (m.FAIL_RATE, m.SCORE_FAILING):
        return f"{number:,.2f}%"
    if metric == m.SCORE_MEAN:
        return f"{number:,.3f}"
    if metric in (m.P50, m.P95, m.P99):
        return f"{number / 1000:,.2f} s" if number >= 1000 else f"{number:,.0f} ms"
    return f"{number:,.0f}"


def threshold(monitor) -> str:
    if monitor.compares:
        return f"{monitor.threshold:g}%"
    return value(monitor.metric, monitor.threshold)


def rule(monitor) -> str:
    """The monitor as one sentence, e.g. "Cost (USD) of each end user over 30 days is above $20.00"."""
    metric = str(dict(m.METRICS)[monitor.metric])
    if monitor.scores:
        metric += f" ({monitor.score_name or _('every evaluation')})"
    window = str(dict(m.WINDOWS).get(monitor.window_minutes, f"{monitor.window_minutes} min"))
    scope = str(dict(m.GROUPS)[monitor.group_by])
    condition = str(dict(m.CONDITIONS)[monitor.condition])
    return _("%(metric)s · %(scope)s · last %(window)s %(condition)s %(threshold)s") % {
        "metric": metric,
        "scope": scope,
        "window": window,
        "condition": condition,
        "threshold": threshold(monitor),
    }


def group_label(monitor, group: str) -> str:
    """ "end user alice" / "model gpt-4o" / "service api" / '' for the whole project."""
    if not monitor.group_by or not group:
        return ""
    labels = {
        "user": _("end user %(name)s"),
        "model": _("model %(name)s"),
        "service": _("service %(name)s"),
        "agent": _("agent %(name)s"),
    }
    return labels[monitor.group_by] % {"name": group}
