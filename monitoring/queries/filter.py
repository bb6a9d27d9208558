"""The question a page asks, parsed once: one project, one time window, the filter bar's choices.

Pure data (no Django forms, no SQL text): `monitoring.web.forms` builds it from a request, the query
modules turn it into conditions (`monitoring.semantics.facts`). Times are aware UTC datetimes; the
viewer's zone (`tz`) only decides where buckets begin (a day in the Cost Trend is a local day).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from dataclasses import dataclass

from monitoring.models import DEFAULT_AGENT_SPAN_NAMES
from monitoring.store.sql import to_nanos

UTC = dt.UTC


class BadQuery(ValueError):
    """A list parameter the caller can fix (shown as a 400)."""


def iso(value: dt.datetime | str, zone: str | None = None) -> str:
    """An instant as ISO 8601, the API's and the URLs' spelling: `Z` for UTC, else the offset
    (2025-12-05T09:00:00+09:00). With `zone` (an IANA name) it is written in that zone first, and
    only zone "UTC" is spelled `Z`; a string is read as ISO 8601 first."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if zone is not None:
        value = value.astimezone(zoneinfo.ZoneInfo(zone))
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") and zone in (None, "UTC") else text


@dataclass(frozen=True)
class Window:
    """[start, end): aware datetimes. `range` names a preset ("24h"), "" for a custom from-to."""

    start: dt.datetime
    end: dt.datetime
    range: str = ""

    @property
    def length(self) -> dt.timedelta:
        return self.end - self.start

    def previous(self) -> Window:
        """The window of the same length just before this one."""
        return Window(self.start - self.length, self.start)

    def nanos(self) -> dict[str, int]:
        """{"start": ns, "end": ns}: the bound parameters of a time condition."""
        return {"start": to_nanos(self.start), "end": to_nanos(self.end)}


@dataclass(frozen=True)
class SpanFilter:
    """One project, one window, and the filter bar's choices: what every number, chart and list honours.

    `services`/`models`: keep calls (and runs holding a span) of these; `status`: "" | "ok" | "error";
    `include_replays`: count Replay's re-runs too (they are experiments, out of the KPIs by default);
    `agent_names`: the project's span names that are agent steps beside the SDKs' own markers;
    `tz`: the viewer's IANA zone, for bucket boundaries.
    """

    project_id: str
    window: Window
    services: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    status: str = ""
    agent_names: tuple[str, ...] = DEFAULT_AGENT_SPAN_NAMES
    tz: str = "UTC"
    include_replays: bool = False

    def with_window(self, window: Window) -> SpanFilter:
        return dataclasses.replace(self, window=window)

    def unfiltered(self) -> SpanFilter:
        """The same project and window without the bar's narrowing (facets offer every choice)."""
        return dataclasses.replace(self, services=(), models=(), status="")

    @property
    def narrowed(self) -> bool:
        return bool(self.services or self.models or self.status)

    def query(self) -> dict[str, list[str] | str]:
        """The filter as URL query parameters (for links that keep it)."""
        q: dict[str, list[str] | str] = {}
        if self.window.range:
            q["range"] = self.window.range
        else:
            q["from"] = iso(self.window.start)
            q["to"] = iso(self.window.end)
        if self.services:
            q["service"] = list(self.services)
        if self.models:
            q["model"] = list(self.models)
        if self.status:
            q["status"] = self.status
        if self.include_replays:
            q["replays"] = "1"
        return q
