"""`{% load display %}`: the filters of monitoring/display.py, so templates format like views."""

from django import template

from monitoring import display

register = template.Library()

register.filter("count", display.count)
register.filter("usd", display.usd)
register.filter("duration", display.duration_ms)  # value in ms
register.filter("percent", display.percent)


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
