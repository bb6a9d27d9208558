"""Per-project data versions: a number every writer of a project's answers moves on, so a cached
answer (monitoring/web/cache.py) is keyed by the version it was computed under and is never served
once the data behind it changed. Bumped by the settler's pass and a re-settle (settled facts),
score writes and log inserts (scores, also fed by the evaluation events' materialized views).

Kept in Django's default cache: every process that writes or reads must share it (one process with
the embedded engine; several gunicorn workers or a separate settler need a shared backend such as
Redis, Memcached or the file cache). A lost version restarts at the clock, never at an old number.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.core.cache import cache

_PREFIX = "apm:data-version:"


def current(project_id: str) -> int:
    """The project's data version (an opaque int); creates one when there is none."""
    key = _PREFIX + str(project_id)
    version = cache.get(key)
    if version is None:
        cache.add(key, time.time_ns(), timeout=None)
        version = cache.get(key, time.time_ns())
    return int(version)


def bump(project_ids: Iterable[str]) -> None:
    """Move each project's version on: answers cached under the old one are not served again."""
    for project_id in {str(p) for p in project_ids if p}:
        key = _PREFIX + project_id
        try:
            cache.incr(key)
        except ValueError:  # none yet, or evicted: start past any number handed out before
            cache.set(key, time.time_ns(), timeout=None)
