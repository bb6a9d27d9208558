"""How numbers, money, durations, rates and statuses read on screen, in the active language.

Counts get thousands separators (Django's number_format with the locale's grouping), USD keeps
enough decimals for per-call costs of a fraction of a cent, durations are ms below a second and s
above (the house rule; minutes beyond a minute). Views and templates (the `display` template tag
library) share these functions, so a number reads the same on every page.
"""

from __future__ import annotations

import math

from django.utils.formats import get_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from monitoring.semantics import semconv

COST_SOURCES = {
    "reported": gettext_lazy("reported"),
    "priced": gettext_lazy("priced from tokens"),
    "unpriced": gettext_lazy("no reported cost and no known price"),
    "wrapped": gettext_lazy("counted once, at another span of the same call"),
}
# A span exported before it ended has no duration (OTLP end time 0): never shown as 0 ms.
IN_PROGRESS = gettext_lazy("in progress")
NO_END_HINT = gettext_lazy("No end time: the span was exported before it ended")
UNPRICED = gettext_lazy("unpriced")
UNPRICED_HINT = gettext_lazy("No reported cost and no known price: set one in Django admin, Projects, model prices")
# Why a search found a row (monitoring/queries/spans.py SpanRow.matched).
MATCH_REASONS = {
    "trace id": gettext_lazy("trace id"),
    "name": gettext_lazy("name"),
    "attribute": gettext_lazy("attribute %(key)s"),
    "event": gettext_lazy("event %(name)s"),
    "log record": gettext_lazy("a log record (GenAI event)"),
}

OK, ERROR = "ok", "error"


def _number(value: float, places: int) -> str:
    return number_format(value, places, use_l10n=True, force_grouping=True)


def count(value) -> str:
    """12345 -> "12,345"."""
    try:
        return _number(int(value), 0)
    except (TypeError, ValueError):
        return ""


def score(value) -> str:
    """A score's number with up to three decimals, trailing zeros dropped: 0.525 · 0.8 · 12 · "" for None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(number):
        return ""
    text = _number(round(number, 3), 3)
    decimal = str(get_format("DECIMAL_SEPARATOR"))
    return text.rstrip("0").rstrip(decimal) if decimal in text else text


def usd(value, places: int | None = None) -> str:
    """US dollars with the decimals the amount needs: $1,234.57 · $0.0125 · $0.50 · $0.000354 · $0;
    with `places`, exactly that many (a column of per-call costs lines up: $0.002000, $0.000354)."""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return ""
    if places is not None and math.isfinite(amount):
        return ("-$" if amount < 0 else "$") + _number(abs(amount), int(places))
    if amount == 0 or not math.isfinite(amount):
        return "$0"
    size = abs(amount)
    if size >= 1:
        places = 2
    elif size >= 0.01:
        places = 4
    else:  # three significant digits of a fraction of a cent (a single call's cost), at most 8 places
        places = min(8, 2 - math.floor(math.log10(size)))
    whole, _sep, fraction = f"{round(size, places):.{places}f}".partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")  # $0.50, $0.0125, not $0.5000
    text = _number(int(whole), 0) + get_format("DECIMAL_SEPARATOR") + fraction
    return ("-$" if amount < 0 else "$") + text


def duration_ms(value) -> str:
    """A duration given in ms: "0.4 ms", "850 ms", "1.24 s", "12.5 s", "2 min 5 s"."""
    try:
        ms = float(value)
    except (TypeError, ValueError):
        return ""
    if ms == 0:
        return _("%(value)s ms") % {"value": "0"}
    if ms < 10:
        return _("%(value)s ms") % {"value": _number(ms, 1)}
    if ms < 1000:
        return _("%(value)s ms") % {"value": _number(ms, 0)}
    seconds = ms / 1000
    if seconds < 60:
        return _("%(value)s s") % {"value": _number(seconds, 2 if seconds < 10 else 1)}
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return _("%(minutes)d min %(seconds)d s") % {"minutes": minutes, "seconds": rest}
    hours, minutes = divmod(minutes, 60)
    return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}


def percent(value, places: int = 1) -> str:
    """A share 0..1 as a percentage: 0.0316 -> "3.16%" (places=2)."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        return ""
    return _number(share * 100, places) + "%"


def signed_percent(value, places: int = 1) -> str:
    """A relative change 0.123 -> "+12.3%"."""
    return ("+" if value > 0 else "") + percent(value, places)


def points(value, places: int = 1) -> str:
    """A change of a rate in percentage points: 0.012 -> "+1.2 pp"."""
    text = _number(value * 100, places)
    return _("%(value)s pp") % {"value": ("+" if value > 0 else "") + text}


def status(code: str) -> tuple[str, str]:
    """(kind, label) of a span status. OpenTelemetry's Unset means "no error recorded": shown as OK."""
    if semconv.is_error(code):
        return ERROR, pgettext("span status", "Error")
    return OK, pgettext("span status", "OK")
