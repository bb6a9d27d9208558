"""The question a page asks, parsed once: one project, one time window, the filter bar's choices.

Pure data (no Django forms, no SQL text): `monitoring.web.forms` builds it from a request, the query
modules turn it into conditions (`monitoring.semantics.facts`). Times are aware UTC datetimes; the
viewer's zone (`tz`) only decides where buckets begin (a day in the Cost Trend is a local day).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import zoneinfo
from dataclasses import dataclass

from django.utils.translation import gettext as _

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


ATTR_OPS = ("eq", "ne", "contains", "exists", "missing", "gt", "lt")
ATTR_VALUELESS = ("exists", "missing")
ATTR_KEY_CHARS = 200
ATTR_VALUE_CHARS = 500
MAX_ATTR_CONDITIONS = 10


def finite_number(text: str) -> float | None:
    """The text as a finite float, else None (the `gt`/`lt` value of an attr= or score= filter)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class AttrCondition:
    """One `attr=<key>:<op>[:<value>]` filter on span and resource attributes alike (issue 24): split
    at the first two colons (a key holds none; a value may), `op` one of ATTR_OPS; `exists` and
    `missing` take no value, `gt`/`lt` a number. monitoring/queries/attributes.py says how each
    matches."""

    key: str
    op: str
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> AttrCondition:
        """Raises BadQuery naming what is wrong (translated: the filter bar shows it)."""
        key, sep, rest = text.partition(":")
        op, _sep, value = rest.partition(":")
        key, op = key.strip(), op.strip().lower()
        if not sep or not key:
            raise BadQuery(
                _("'attr' must be <key>:<op>[:<value>], e.g. attr=tenant:eq:acme, not %(text)r") % {"text": text[:100]}
            )
        if len(key) > ATTR_KEY_CHARS:
            raise BadQuery(_("'attr' keys are at most %(n)d characters") % {"n": ATTR_KEY_CHARS})
        if op not in ATTR_OPS:
            raise BadQuery(
                _("'attr' operator must be one of %(ops)s, not %(op)r") % {"ops": ", ".join(ATTR_OPS), "op": op}
            )
        if op in ATTR_VALUELESS:
            if value:
                raise BadQuery(_("'attr' operator %(op)s takes no value (%(key)s:%(op)s)") % {"op": op, "key": key})
            return cls(key, op)
        if not value:
            raise BadQuery(_("'attr' operator %(op)s needs a value: %(key)s:%(op)s:<value>") % {"op": op, "key": key})
        if len(value) > ATTR_VALUE_CHARS:
            raise BadQuery(_("'attr' values are at most %(n)d characters") % {"n": ATTR_VALUE_CHARS})
        if op in ("gt", "lt") and finite_number(value) is None:
            raise BadQuery(
                _("'attr' operator %(op)s compares numbers: %(value)r is not one") % {"op": op, "value": value}
            )
        return cls(key, op, value)

    def query_value(self) -> str:
        """As the URL spells it."""
        return ":".join([self.key, self.op, *([self.value] if self.op not in ATTR_VALUELESS else [])])

    @property
    def number(self) -> float:
        """The value as a number (0.0 unless `gt`/`lt`)."""
        found = finite_number(self.value) if self.op in ("gt", "lt") else None
        return found if found is not None else 0.0


def parse_attrs(values) -> tuple[AttrCondition, ...]:
    """Every `attr=` of a request (repeatable; all must hold), blanks skipped. Raises BadQuery."""
    found = [v for v in values if v and v.strip()]
    if len(found) > MAX_ATTR_CONDITIONS:
        raise BadQuery(_("at most %(n)d 'attr' filters") % {"n": MAX_ATTR_CONDITIONS})
    return tuple(AttrCondition.parse(v) for v in found)


# The filter bar's ranges: `<measure>_min` / `<measure>_max` (inclusive); cost in USD, tokens input
# plus output, latency in ms (monitoring/queries/ranges.py says what each row's measure is).
RANGE_MEASURES = ("cost", "tokens", "latency")


@dataclass(frozen=True)
class MeasureRange:
    """`low <= measure <= high` (None: unbounded on that side)."""

    measure: str
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class SpanFilter:
    """One project, one window, and the filter bar's choices: what every number, chart and list honours.

    `services`/`models`: keep calls (and runs holding a span) of these; `status`: "" | "ok" | "error";
    `include_replays`: count Replay's re-runs too (they are experiments, out of the KPIs by default);
    `agent_names`: the project's span names that are agent steps beside the SDKs' own markers;
    `tz`: the viewer's IANA zone, for bucket boundaries; `attrs`: `attr=` conditions, all must hold
    (a call on its own span's attributes, a run on any of its spans'); `ranges`: cost, tokens and
    latency ranges (a call on its own numbers, a run on its own).
    """

    project_id: str
    window: Window
    services: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    status: str = ""
    agent_names: tuple[str, ...] = DEFAULT_AGENT_SPAN_NAMES
    tz: str = "UTC"
    include_replays: bool = False
    attrs: tuple[AttrCondition, ...] = ()
    ranges: tuple[MeasureRange, ...] = ()

    def with_window(self, window: Window) -> SpanFilter:
        return dataclasses.replace(self, window=window)

    def unfiltered(self) -> SpanFilter:
        """The same project and window without the bar's narrowing (facets offer every choice)."""
        return dataclasses.replace(self, services=(), models=(), status="", attrs=(), ranges=())

    @property
    def narrowed(self) -> bool:
        return bool(self.services or self.models or self.status or self.attrs or self.ranges)

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
        if self.attrs:
            q["attr"] = [a.query_value() for a in self.attrs]
        for r in self.ranges:
            for side, bound in (("min", r.low), ("max", r.high)):
                if bound is not None:
                    q[f"{r.measure}_{side}"] = f"{bound:g}"
        return q
