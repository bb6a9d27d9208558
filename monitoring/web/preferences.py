"""The viewer's language and time zone, active for the whole request.

Language: a signed-in person's saved choice (UserPreference), else the `django_language` cookie,
else the browser's Accept-Language (Django's LocaleMiddleware does those two), else English.
Time zone: the zone the person picked, else the `apm_tz` cookie (the browser's zone, reported by
static/monitoring/preferences.js), else the zone a browser of theirs reported before, else
settings.PORTAL_TIME_ZONE. Every time shown on a page is in
this zone (`django.utils.timezone.activate`), naive From/To times typed into the filter bar mean it,
and queries get it as `SpanFilter.tz` so a daily bucket is a local day.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from django.conf import settings
from django.utils import dateformat, timezone, translation

TZ_COOKIE = "apm_tz"
COOKIE_MAX_AGE = 365 * 24 * 3600


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones() | {"UTC"})


def valid_zone(name: str | None) -> str | None:
    """The IANA zone name if the tz database knows it, else None (never a path or an offset)."""
    name = (name or "").strip()
    return name if name in _zones() else None


def zone_names() -> list[str]:
    """Every zone a person may pick, sorted; the common ones of this product's users first."""
    first = ["Asia/Seoul", "UTC", "Asia/Tokyo", "Asia/Singapore", "America/Los_Angeles", "Europe/London"]
    return first + sorted(z for z in _zones() if z not in first and "/" in z and not z.startswith(("Etc/", "SystemV/")))


def zone_label(zone: str, at: dt.datetime | None = None) -> str:
    """`KST (UTC+09:00)`: the zone's abbreviation when it has a real one, and its offset at `at`."""
    at = at or timezone.now()
    local = at.astimezone(zoneinfo.ZoneInfo(zone))
    offset = local.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}" if offset not in ("+0000", "") else "UTC"
    abbreviation = local.tzname() or ""
    if abbreviation and abbreviation[0] not in "+-" and abbreviation != "UTC":
        return f"{abbreviation} ({offset})"
    return offset


def active_zone() -> str:
    """The IANA name of the zone times are shown in now: the viewer's during a request
    (PreferenceMiddleware), the one a notification is written in (`timezone.override`), else the
    project default."""
    return valid_zone(timezone.get_current_timezone_name()) or settings.PORTAL_TIME_ZONE


def local_time(value: dt.datetime | None, fmt: str = "Y-m-d H:i", zone: str | None = None) -> str:
    """An instant as the wall-clock time of `zone` (default: active_zone()) in Django's date format
    `fmt`, named as the top bar names zones: `2026-12-07 21:35 KST (UTC+09:00)`. "" for None.
    Every time written with its zone (monitor pages, e-mail, Slack and webhook text) uses this, so
    no text says "UTC" of a time in another zone."""
    if value is None:
        return ""
    name = valid_zone(zone) or active_zone()
    local = value.astimezone(zoneinfo.ZoneInfo(name))
    return f"{dateformat.format(local, fmt)} {zone_label(name, value)}"


def _preference(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    from monitoring.models import UserPreference

    return UserPreference.objects.filter(user=user).first()


class PreferenceMiddleware:
    """Activates the viewer's language and time zone (after AuthenticationMiddleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        pref = _preference(request)
        request.preference = pref
        if pref is not None and pref.language:
            translation.activate(pref.language)
            request.LANGUAGE_CODE = pref.language
        saved = valid_zone(pref.time_zone) if pref is not None else None
        chosen = saved if saved and pref.time_zone_chosen else None
        browser = valid_zone(request.COOKIES.get(TZ_COOKIE))  # what this browser reported last
        request.time_zone = chosen or browser or saved or settings.PORTAL_TIME_ZONE
        # Unless the person picked a zone, the page reports the browser's when it has not here yet,
        # or when it differs (a laptop that travelled): static/monitoring/preferences.js.
        request.time_zone_known = bool(chosen or browser)
        request.time_zone_chosen = bool(chosen)
        timezone.activate(zoneinfo.ZoneInfo(request.time_zone))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def context(request) -> dict:
    """For base.html: the language switcher and the zone the page's times are in."""
    zone = getattr(request, "time_zone", settings.PORTAL_TIME_ZONE)
    return {
        "languages": settings.LANGUAGES,
        "time_zone": zone,
        "time_zone_label": zone_label(zone),
        "time_zone_known": getattr(request, "time_zone_known", False),
        "time_zone_chosen": getattr(request, "time_zone_chosen", False),
    }
