"""How numbers, money, durations, rates and statuses read on screen, in the active language.

Counts get thousands separators (Django's number_format with the locale's grouping), USD keeps
enough decimals for per-call costs of a fraction of a cent, durations are ms below a second and s
above (the house rule; minutes beyond a minute). Views and templates (the `display` template tag
library) share these functions, so a number reads the same on every page.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from django.utils.formats import get_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext

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
    """`value` rounded half away from zero to `places` decimals, grouped in the active locale.
    Django's number_format cuts the decimals it drops (0.000266 to 4 places read 0.0002): the
    value is rounded here first, from its shortest decimal spelling (2.675 -> 2.68, as written)."""
    if isinstance(value, float) and math.isfinite(value):
        value = Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)  # type: ignore[assignment]
    return number_format(value, places, use_l10n=True, force_grouping=True)


def usd_places(amount: float) -> int:
    """The decimals an amount in USD needs: 2 from $1, 4 from a cent, else three significant
    digits of a fraction of a cent (a single call's cost), at most 8 ($0.000354, $0.00000125)."""
    size = abs(amount)
    if size >= 1 or size == 0 or not math.isfinite(size):
        return 2
    if size >= 0.01:
        return 4
    return min(8, 2 - math.floor(math.log10(size)))


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
    """US dollars with the decimals the amount needs (usd_places): $1,234.57 · $0.0125 · $0.50 ·
    $0.000354 · $0; with `places`, that many (a column of per-call costs lines up: $0.002000,
    $0.000354), or more when fewer would show a cost as $0.000000. Rounded, never cut. An unknown
    cost (None: an unpriced call) is "", never $0: see unpriced_usd."""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return ""
    if places is not None and math.isfinite(amount):
        places = max(int(places), usd_places(amount)) if amount else int(places)
        return ("-$" if amount < 0 else "$") + _number(abs(amount), places)
    if amount == 0 or not math.isfinite(amount):
        return "$0"
    size = abs(amount)
    places = usd_places(size)
    whole, _sep, fraction = f"{_number_plain(size, places)}".partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")  # $0.50, $0.0125, not $0.5000
    whole = whole if len(whole) < 4 else _number(int(whole), 0)  # grouping only where a separator goes
    text = whole + get_format("DECIMAL_SEPARATOR") + fraction
    return ("-$" if amount < 0 else "$") + text


def _number_plain(value: float, places: int) -> str:
    """`value` rounded half away from zero to `places` decimals, "1234.5600" (no grouping)."""
    return f"{Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):f}"


def unpriced_usd(cost, unpriced: int) -> str:
    """A sum of costs that leaves out `unpriced` calls (no reported cost, no known price), as the
    README says it reads: "$0.2538 + 13 unpriced", "13 unpriced" when nothing was priced (never
    "$0"), or usd(cost) when every call has a cost."""
    if not unpriced:
        return usd(cost)
    calls = ngettext("%(count)s unpriced", "%(count)s unpriced", unpriced) % {"count": count(unpriced)}
    try:
        priced = float(cost or 0)
    except (TypeError, ValueError):
        priced = 0.0
    return f"{usd(priced)} + {calls}" if priced else calls


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
