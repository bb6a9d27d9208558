"""Parse a request once into the question it asks: which project, which time window, in which zone.

Messages are translated (gettext): they are shown to people as the filter bar's "Bad filter" banner
and returned by the API as its `error`.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import cast

from django import forms
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from monitoring.models import SavedView
from monitoring.queries import runs as runs_q
from monitoring.queries import scores as scores_q
from monitoring.queries import spans as spans_q
from monitoring.queries.filter import (
    RANGE_MEASURES,
    AttrCondition,
    BadQuery,
    MeasureRange,
    SpanFilter,
    Window,
    parse_attrs,
)
from monitoring.web import preferences

RANGES = {
    "1h": dt.timedelta(hours=1),
    "24h": dt.timedelta(hours=24),
    "7d": dt.timedelta(days=7),
    "30d": dt.timedelta(days=30),
}
DEFAULT_RANGE = "24h"
MAX_WINDOW = dt.timedelta(days=400)
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2262, 4, 11, tzinfo=dt.UTC)


def _parse_instant(value: str, zone: str = "UTC") -> dt.datetime:
    """An ISO 8601 time as a UTC datetime; a time without an offset is a wall-clock time in `zone`
    (what a person typed into a datetime-local picker labelled with their zone)."""
    text = value.strip()
    # An unencoded "+" of an offset arrives from a query string as a space: "...T09:00:00 09:00".
    if re.fullmatch(r".+T\S+ \d{2}:?\d{2}", text):
        head, _sep, offset = text.rpartition(" ")
        text = f"{head}+{offset}"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        # fold=0: a wall-clock time that happens twice (clocks going back) means the first one.
        parsed = parsed.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return parsed.astimezone(dt.UTC)


class WindowForm(forms.Form):
    """`?range=24h`, or `?from=<ISO 8601>&to=<ISO 8601>`; default last 24 h. A time without an offset
    is in the form's `tz` (the viewer's zone; UTC for the API unless it sends `tz=`)."""

    range = forms.ChoiceField(choices=[(k, k) for k in RANGES], required=False)
    # "from" is a keyword, so the form field has another name; see `from_query`.
    start = forms.CharField(required=False)
    end = forms.CharField(required=False)

    def __init__(self, data=None, tz: str = "UTC", **kwargs):
        super().__init__(data, **kwargs)
        self.tz = preferences.valid_zone(tz) or "UTC"

    def _instant(self, name: str, label: str) -> dt.datetime | None:
        value = self.cleaned_data.get(name) or ""
        if not value:
            return None
        try:
            instant = _parse_instant(value, self.tz)
        except (ValueError, OverflowError):
            raise forms.ValidationError(
                _("'%(name)s' must be an ISO 8601 time like 2025-12-05T09:00:00Z, not %(value)r")
                % {"name": label, "value": value}
            )
        if not EARLIEST <= instant <= LATEST:  # span times are nanoseconds in an Int64
            raise forms.ValidationError(
                _("'%(name)s' must be between 1970 and 2262, not %(value)r") % {"name": label, "value": value}
            )
        return instant

    def clean(self):
        data = super().clean() or {}  # Form.clean returns cleaned_data
        if self.errors:
            return data
        start = self._instant("start", "from")
        end = self._instant("end", "to")
        now = timezone.now()
        if start is None and end is None:
            preset = data.get("range") or DEFAULT_RANGE
            data["window"] = Window(now - RANGES[preset], now, preset)
            return data
        if start is None:
            raise forms.ValidationError(_("'from' is required when 'to' is given"))
        end = end or now
        if end <= start:
            raise forms.ValidationError(_("'to' must be after 'from'"))
        if end - start > MAX_WINDOW:
            raise forms.ValidationError(_("the window may span at most %(days)d days") % {"days": MAX_WINDOW.days})
        data["window"] = Window(start, end)
        return data

    def error_text(self) -> str:
        return "; ".join(str(e) for errors in self.errors.values() for e in errors)


STATUSES = {"ok": gettext_lazy("OK only"), "error": gettext_lazy("Errors only")}
_MAX_FILTER_VALUES = 50


def attr_texts(query) -> list[str]:
    """The `attr=` filters of a QueryDict, plus the one the filter bar's three fields spell without
    script (`attr_key`, `attr_op`, `attr_value`: a key typed there is added to the others)."""
    found = list(query.getlist("attr")) if hasattr(query, "getlist") else []
    key = (query.get("attr_key") or "").strip()
    if key:
        op = (query.get("attr_op") or "eq").strip()
        value = query.get("attr_value") or ""
        found.append(f"{key}:{op}" + (f":{value}" if value else ""))
    return found


class FilterForm(WindowForm):
    """The filter bar: the window plus `service`, `model` (repeatable), `status`, `attr=` (repeatable)
    and the cost (USD), tokens and latency (ms) ranges `<measure>_min` / `<measure>_max`."""

    status = forms.ChoiceField(choices=[("", "")] + list(STATUSES.items()), required=False)

    def __init__(self, data, services=(), models=(), tz: str = "UTC", replays: bool = False, attrs=(), ranges=None):
        super().__init__(data, tz=tz)
        self.services = tuple(s for s in services if s)
        self.models = tuple(m for m in models if m)
        self.replays = replays  # count Replay's re-runs too (out of the numbers by default)
        self.attr_texts = tuple(attrs)  # `attr=<key>:<op>[:<value>]`, parsed in clean()
        self.attrs: tuple[AttrCondition, ...] = ()
        self.ranges: tuple[MeasureRange, ...] = ()
        self.range_texts: dict[str, str] = {k: str(v).strip() for k, v in (ranges or {}).items()}  # `cost_min`: "0.5"

    @classmethod
    def from_query(cls, query, tz: str = "UTC") -> FilterForm:
        """`tz`: the zone naive from/to mean (the viewer's zone on pages, `tz=` or UTC in the API)."""
        return cls(
            {
                "range": query.get("range", ""),
                "start": query.get("from", ""),
                "end": query.get("to", ""),
                "status": query.get("status", ""),
            },
            services=query.getlist("service") if hasattr(query, "getlist") else (),
            models=query.getlist("model") if hasattr(query, "getlist") else (),
            tz=tz,
            replays=query.get("replays", "") in ("1", "true", "on"),
            attrs=attr_texts(query),
            ranges={f"{m}_{side}": query.get(f"{m}_{side}") or "" for m in RANGE_MEASURES for side in ("min", "max")},
        )

    def _ranges(self) -> tuple[MeasureRange, ...]:
        found = []
        for measure in RANGE_MEASURES:
            bounds = []
            for side in ("min", "max"):
                name = f"{measure}_{side}"
                text = self.range_texts.get(name, "")
                try:
                    value = float(text) if text else None
                except ValueError:
                    value = -1.0
                if value is not None and not (0 <= value < 1e15):
                    raise forms.ValidationError(
                        _("'%(name)s' must be a number of at least 0, not %(value)r")
                        % {"name": name, "value": text[:50]}
                    )
                bounds.append(value)
            low, high = bounds
            if low is not None and high is not None and low > high:
                raise forms.ValidationError(_("'%(name)s_min' is above '%(name)s_max'") % {"name": measure})
            if low is not None or high is not None:
                found.append(MeasureRange(measure, low, high))
        return tuple(found)

    def clean(self):
        data = super().clean()
        if len(self.services) > _MAX_FILTER_VALUES or len(self.models) > _MAX_FILTER_VALUES:
            raise forms.ValidationError(
                _("at most %(count)d services and models may be chosen") % {"count": _MAX_FILTER_VALUES}
            )
        if any(len(v) > 500 for v in self.services + self.models):
            raise forms.ValidationError(_("a service or model name is too long"))
        try:
            self.attrs = parse_attrs(self.attr_texts)
        except BadQuery as exc:
            raise forms.ValidationError(str(exc)) from None
        self.ranges = self._ranges()
        return data

    def span_filter(self, project, tz: str | None = None) -> SpanFilter:
        """`tz`: an IANA zone name already validated by the caller; default the form's own zone."""
        return SpanFilter(
            str(project.id),
            self.cleaned_data["window"],
            self.services,
            self.models,
            self.cleaned_data.get("status") or "",
            project.agent_names,
            tz or self.tz,
            self.replays,
            self.attrs,
            self.ranges,
        )


class PreferenceForm(forms.Form):
    """Language and time zone; "" means "as my browser says"."""

    language = forms.ChoiceField(required=False)
    time_zone = forms.CharField(required=False, max_length=64)
    # "browser": the zone the page's script read from Intl (never overrides a zone the person chose)
    source = forms.ChoiceField(choices=[("", ""), ("browser", "browser")], required=False)

    def __init__(self, *args, **kwargs):
        from django.conf import settings

        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["language"]).choices = [("", "")] + list(settings.LANGUAGES)

    def clean_time_zone(self) -> str:
        value = (self.cleaned_data.get("time_zone") or "").strip()
        if value and not preferences.valid_zone(value):
            raise forms.ValidationError(_("Unknown time zone %(zone)r.") % {"zone": value})
        return value


class SavedViewError(ValueError):
    """A saved view the caller can fix: `field` names what is wrong (shown as a 400)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def saved_view_fields(data: dict) -> dict:
    """{name, tab, query, shared} of a saved view, checked: a name (at most SavedView.MAX_NAME
    characters), a tab of SavedView.TABS, the page's query string (a leading "?" and any page
    cursor dropped; at most SavedView.MAX_QUERY characters) whose filters parse as the tab would
    parse them. Raises SavedViewError naming the field."""
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SavedViewError("name", _("a view needs a name"))
    if len(name.strip()) > SavedView.MAX_NAME:
        raise SavedViewError("name", _("a view's name is at most %(n)d characters") % {"n": SavedView.MAX_NAME})
    tab = data.get("tab")
    if tab not in SavedView.TABS:
        raise SavedViewError("tab", _("'tab' must be one of %(tabs)s") % {"tabs": ", ".join(SavedView.TABS)})
    query = data.get("query", "")
    if not isinstance(query, str):
        raise SavedViewError("query", _("'query' must be the page's query string"))
    query = query.strip().removeprefix("?")
    if len(query) > SavedView.MAX_QUERY:
        raise SavedViewError("query", _("'query' is at most %(n)d characters") % {"n": SavedView.MAX_QUERY})
    shared = data.get("shared", False)
    if not isinstance(shared, bool):
        raise SavedViewError("shared", _("'shared' must be true or false"))
    parsed = QueryDict(query, mutable=True)
    parsed.pop("cursor", None)
    form = FilterForm.from_query(parsed)
    try:
        if not form.is_valid():
            raise BadQuery(form.error_text())
        scores_q.from_query(parsed)
        if tab == "traces" and parsed.get("kind") == "runs":
            runs_q.RunQuery.from_query(parsed)
        elif tab == "traces":
            spans_q.ListQuery.from_query(parsed, max_limit=spans_q.PAGE_SIZE)
    except BadQuery as exc:
        raise SavedViewError("query", _("a bad filter in the query: %(error)s") % {"error": exc}) from None
    return {"name": name.strip(), "tab": tab, "query": parsed.urlencode(), "shared": shared}
