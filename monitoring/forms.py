"""Parse a request once into the question it asks: which project, which time window."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django import forms
from django.utils import timezone

RANGES = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}
DEFAULT_RANGE = "24h"
MAX_WINDOW = dt.timedelta(days=400)


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime
    range: str = ""  # "24h" etc. when the window is a preset, "" for a custom from-to

    @property
    def length(self) -> dt.timedelta:
        return self.end - self.start

    def previous(self) -> "Window":
        return Window(self.start - self.length, self.start)

    def nanos(self) -> dict[str, int]:
        """The bound parameters every span query takes."""
        return {"start": _nanos(self.start), "end": _nanos(self.end)}


def _nanos(value: dt.datetime) -> int:
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _parse_instant(value: str) -> dt.datetime:
    text = value.strip()
    # An unencoded "+" of an offset arrives from a query string as a space: "...T09:00:00 09:00".
    if re.fullmatch(r".+T\S+ \d{2}:?\d{2}", text):
        head, _, offset = text.rpartition(" ")
        text = f"{head}+{offset}"
    parsed = dt.datetime.fromisoformat(text)
    return parsed.replace(tzinfo=dt.timezone.utc) if parsed.tzinfo is None else parsed.astimezone(dt.timezone.utc)


class WindowForm(forms.Form):
    """`?range=24h`, or `?from=<ISO 8601>&to=<ISO 8601>` (naive times are UTC); default last 24 h."""

    range = forms.ChoiceField(choices=[(k, k) for k in RANGES], required=False)
    # "from" is a keyword, so the form field has another name; see `from_query`.
    start = forms.CharField(required=False)
    end = forms.CharField(required=False)

    @classmethod
    def from_query(cls, query) -> "WindowForm":
        return cls({"range": query.get("range", ""), "start": query.get("from", ""), "end": query.get("to", "")})

    def _instant(self, name: str, label: str) -> dt.datetime | None:
        value = self.cleaned_data.get(name) or ""
        if not value:
            return None
        try:
            return _parse_instant(value)
        except ValueError:
            raise forms.ValidationError(f"'{label}' must be an ISO 8601 time like 2025-12-05T09:00:00Z, not {value!r}")

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
