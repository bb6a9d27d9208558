"""How a score reads on a page: `{{ run.scores|score_cell:"relevance" }}` -> "0.82 · pass (3)"."""

from django import template
from django.utils.formats import number_format

register = template.Library()


def _value(value: float | None) -> str:
    if value is None:
        return ""
    return number_format(round(value, 2), decimal_pos=2 if value != int(value) else 0, use_l10n=True)


@register.filter
def score_text(summary: dict | None) -> str:
    """One score's summary ({value, label, count}) as text: the mean, the latest label, the count."""
    if not summary:
        return ""
    parts = [p for p in (_value(summary.get("value")), summary.get("label") or "") if p]
    text = " · ".join(parts)
    count = summary.get("count") or 0
    return f"{text} ({count})" if count > 1 else text


@register.filter
def score_cell(scores: dict | None, name: str) -> str:
    """The summary of score `name` among a row's scores, as `score_text` writes it; '' when absent."""
    return score_text((scores or {}).get(name))


@register.filter
def score_value(value: float | None) -> str:
    return _value(value)
