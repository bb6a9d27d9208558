"""Parse a request once into the question it asks: which project, which time window."""

from __future__ import annotations

import datetime as dt
import re

from django import forms
from django.utils import timezone

from monitoring.queries.filter import SpanFilter, Window

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


def _parse_instant(value: str) -> dt.datetime:
    text = value.strip()
    # An unencoded "+" of an offset arrives from a query string as a space: "...T09:00:00 09:00".
    if re.fullmatch(r".+T\S+ \d{2}:?\d{2}", text):
        head, _, offset = text.rpartition(" ")
        text = f"{head}+{offset}"
    parsed = dt.datetime.fromisoformat(text)
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


class WindowForm(forms.Form):
    """`?range=24h`, or `?from=<ISO 8601>&to=<ISO 8601>` (naive times are UTC); default last 24 h."""

    range = forms.ChoiceField(choices=[(k, k) for k in RANGES], required=False)
    # "from" is a keyword, so the form field has another name; see `from_query`.
    start = forms.CharField(required=False)
    end = forms.CharField(required=False)

    def _instant(self, name: str, label: str) -> dt.datetime | None:
        value = self.cleaned_data.get(name) or ""
        if not value:
            return None
        try:
            instant = _parse_instant(value)
        except (ValueError, OverflowError):
            raise forms.ValidationError(f"'{label}' must be an ISO 8601 time like 2025-12-05T09:00:00Z, not {value!r}")
        if not EARLIEST <= instant <= LATEST:  # span times are nanoseconds in an Int64
            raise forms.ValidationError(f"'{label}' must be between 1970 and 2262, not {value!r}")
        return instant

    def clean(self):
        data = super().clean()
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
            raise forms.ValidationError("'from' is required when 'to' is given")
        end = end or now
        if end <= start:
            raise forms.ValidationError("'to' must be after 'from'")
        if end - start > MAX_WINDOW:
            raise forms.ValidationError(f"the window may span at most {MAX_WINDOW.days} days")
        data["window"] = Window(start, end)
        return data

    def error_text(self) -> str:
        return "; ".join(str(e) for errors in self.errors.values() for e in errors)


STATUSES = {"ok": "Ok only", "error": "Errors only"}
_MAX_FILTER_VALUES = 50


class FilterForm(WindowForm):
    """The filter bar: the window plus `service`, `model` (repeatable) and `status`."""

    status = forms.ChoiceField(choices=[("", "")] + list(STATUSES.items()), required=False)

    def __init__(self, data, services=(), models=()):
        super().__init__(data)
        self.services = tuple(s for s in services if s)
        self.models = tuple(m for m in models if m)

    @classmethod
    def from_query(cls, query) -> FilterForm:
        return cls(
            {
                "range": query.get("range", ""),
                "start": query.get("from", ""),
                "end": query.get("to", ""),
                "status": query.get("status", ""),
            },
            services=query.getlist("service") if hasattr(query, "getlist") else (),
            models=query.getlist("model") if hasattr(query, "getlist") else (),
        )

    def clean(self):
        data = super().clean()
        if len(self.services) > _MAX_FILTER_VALUES or len(self.models) > _MAX_FILTER_VALUES:
            raise forms.ValidationError(f"at most {_MAX_FILTER_VALUES} services and models may be chosen")
        if any(len(v) > 500 for v in self.services + self.models):
            raise forms.ValidationError("a service or model name is too long")
        return data

    def span_filter(self, project, tz: str = "UTC") -> SpanFilter:
        """`tz`: an IANA zone name already validated by the caller (the user's or the request's zone)."""
        return SpanFilter(
            str(project.id),
            self.cleaned_data["window"],
            self.services,
            self.models,
            self.cleaned_data.get("status") or "",
            project.agent_names,
            tz,
        )
