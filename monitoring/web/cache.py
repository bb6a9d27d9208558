"""Repeat views from Django's cache: an answer asked again while its data has not changed.

The key holds everything that shapes an answer: the question's name, the project (with its settings
and the version of its prices and re-settling, read from the Project row the view already loaded), the
project's data version (monitoring/store/versions.py: moved on by the settler's passes, re-settling,
score writes and log inserts), the user, language, time zone and every query parameter (filters, the
Replay toggle). A relative window ("range=24h") ends at now: it is keyed by its preset and the bucket
it falls in (timeseries.bucket_for: minute, hour or day), so a repeat within the bucket hits; a custom
from/to is keyed by its exact bounds. The version is read before computing, so an answer computed
while a pass lands is stored under the old version and never served.

Only while the settler keeps up (queries/live.settler_keeps_up): when pages compute unsettled traces
live, their answer moves with every insert and is not cached. Several processes (gunicorn workers, a
separate settler) need a CACHES["default"] they share: Redis, Memcached or the file cache; with the
per-process locmem cache and a ClickHouse server, nothing is cached (a bump would not reach them).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.utils import translation

from monitoring.queries import live, timeseries
from monitoring.queries.filter import SpanFilter
from monitoring.store import clickhouse, versions

T = TypeVar("T")
TIMEOUT_S = 3600  # an answer nobody asks again leaves the cache (versions make it stale, not time)
_BUCKET_S = {"minute": 60, "hour": 3600, "day": 86400}


def _key(name: str, request, flt: SpanFilter, membership, version: int) -> str:
    project = membership.project
    window = (
        (flt.window.range, int(time.time()) // _BUCKET_S[timeseries.bucket_for(flt)])
        if flt.window.range
        else (flt.window.start.isoformat(), flt.window.end.isoformat())
    )
    parts = (
        name,
        str(project.pk),
        project.name,
        project.agent_span_names,
        project.facts_version,
        project.facts_settled,
        project.facts_prices,
        version,
        membership.user_id,
        getattr(membership, "role", ""),
        translation.get_language(),
        flt.tz,
        window,
        sorted((k, tuple(request.GET.getlist(k))) for k in request.GET if k not in ("from", "to", "range", "tz")),
    )
    return "apm:answer:" + hashlib.sha256(repr(parts).encode()).hexdigest()


def _versions_shared() -> bool:
    """Whether a version moved on in another process reaches this one: the embedded engine is one
    process (web, settler, ingest), else CACHES["default"] must be shared (not the per-process locmem)."""
    return clickhouse.is_embedded() or not isinstance(caches["default"], LocMemCache)


def answer(name: str, request, flt: SpanFilter, membership, compute: Callable[[], T]) -> T:
    """`compute()`'s value for this question, from the cache when the same one was answered under
    the project's current data version; computed (and kept, when picklable data) otherwise.
    `name` tells questions of one request apart ("api.overview"); `membership` is the asker's, checked
    by the view already. Raises what `compute` raises (a failure is not cached)."""
    if not _versions_shared() or not live.settler_keeps_up():
        return compute()
    key = _key(name, request, flt, membership, versions.current(flt.project_id))
    found = cache.get(key)
    if found is not None:
        return found
    value = compute()
    cache.set(key, value, TIMEOUT_S)
    return value
