"""`{% load display %}`: the filters of monitoring/web/display.py, so templates format like views."""

import json
import re

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from monitoring.web import display, preferences

register = template.Library()

register.filter("count", display.count)
register.filter("usd", display.usd)
register.filter("unpriced_usd", display.unpriced_usd)


@register.filter
def duration(value) -> str:
    """A duration in ms as text; None (a span without an end time) reads "in progress", never 0 ms."""
    if value is None:
        return str(display.IN_PROGRESS)
    return display.duration_ms(value)


@register.filter
def zoned(value, fmt: str = "Y-m-d H:i") -> str:
    """An instant in the viewer's zone, named: `2026-12-07 21:35 KST (UTC+09:00)` (preferences.local_time)."""
    return preferences.local_time(value, fmt)


register.filter("percent", display.percent)
register.filter("score", display.score)

# Cells of every row of a list, as tags rather than included templates: an {% include %} per cell
# cost a 50-row list more than its queries' planning.


@register.simple_tag
def duration_cell(ms) -> SafeString | str:
    """A duration in ms as text; a span without an end time (None) is marked "in progress", with why."""
    if ms is None:
        return format_html(
            '<span class="in-progress" title="{}" data-in-progress>{}</span>', display.NO_END_HINT, display.IN_PROGRESS
        )
    return display.duration_ms(ms)


@register.simple_tag
def cost_cell(cost, source: str, places: int | None = None) -> SafeString | str:
    """A cost in USD by where it comes from (`source`, as in display.COST_SOURCES): "unpriced" with
    what to do about it, a dash for a call counted at another span, else the amount (`places`
    decimals), marked "p" when priced from tokens; nothing without a source."""
    if source == "unpriced":
        return format_html(
            '<span class="unpriced" data-unpriced title="{}">{}</span>', display.UNPRICED_HINT, display.UNPRICED
        )
    if source == "wrapped":
        return mark_safe('<span class="muted">—</span>')
    if source:
        return format_html("{}{}", display.usd(cost, places), mark_safe("<sup>p</sup>") if source == "priced" else "")
    return ""


@register.filter
def status_kind(code: str) -> str:
    """ "ok" or "error" (CSS class and data attribute) of a span status."""
    return display.status(code)[0]


@register.filter
def status_label(code: str) -> str:
    """OK unless an error is recorded (OpenTelemetry's Unset reads as OK), translated."""
    return display.status(code)[1]


@register.filter
def cost_source(source: str) -> str:
    """Where a cost comes from ("reported" by the span, "priced" from its tokens), translated."""
    return str(display.COST_SOURCES.get(source, source))


def _marked(text: str, start: int, end: int) -> str:
    return escape(text[:start]) + "<mark>" + escape(text[start:end]) + "</mark>" + escape(text[end:])


@register.filter
def highlight(text, term) -> str:
    """`text` escaped, every case-insensitive occurrence of the search `term` in <mark>, as typed
    or as JSON escapes it (the search finds "한" in JSON text as "\\ud55c": that is marked too)."""
    text, term = str(text or ""), str(term or "").strip()
    if not term:
        return escape(text)
    forms = {term, json.dumps(term)[1:-1]}
    pattern = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    parts, pos = [], 0
    for m in re.finditer(pattern, text, flags=re.IGNORECASE):
        parts.append(escape(text[pos : m.start()]) + "<mark>" + escape(m.group()) + "</mark>")
        pos = m.end()
    parts.append(escape(text[pos:]))
    return mark_safe("".join(parts))


@register.filter
def short_id(trace_id, term="") -> str:
    """The first 8 hex digits of a trace id (what tables show), its start in <mark> when the search
    `term` is a prefix of the id (the way a short id is searched)."""
    trace_id, term = str(trace_id or ""), str(term or "").strip().lower()
    short = trace_id[:8]
    if term and trace_id.startswith(term):
        return mark_safe(_marked(short, 0, min(len(term), len(short))))
    return escape(short)


@register.filter
def match_reason(matched: str) -> str:
    """Why a search found a row ("trace id", "name", "attribute <key>", "event <name>", "log record"), translated."""
    kind, _sep, rest = str(matched or "").partition(" ")
    if matched == "trace id":
        return str(display.MATCH_REASONS["trace id"])
    if kind == "name":
        return str(display.MATCH_REASONS["name"])
    if kind == "attribute":
        return str(display.MATCH_REASONS["attribute"]) % {"key": rest}
    if kind == "event":
        return str(display.MATCH_REASONS["event"]) % {"name": rest}
    if matched == "log record":
        return str(display.MATCH_REASONS["log record"])
    return str(matched or "")
