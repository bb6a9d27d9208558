"""Independent questions of one page asked at once.

A page's statements spend most of their time in the engine (planning and reading), which releases
the GIL, and each thread has its own ClickHouse session (monitoring/store/clickhouse.py): on two cores a
page of four statements answers in about the time of two. Only while the settler keeps up: a live
part (monitoring/queries/live.py) materializes temporary tables in its thread's session, and every
worker would compute the unsettled traces again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from django.conf import settings

from monitoring.queries import live
from monitoring.queries.filter import SpanFilter

_PREFIX = "apm-query"
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=settings.QUERY_THREADS, thread_name_prefix=_PREFIX)
    return _pool


def gather(flt: SpanFilter, *calls: Callable[[], Any]) -> list[Any]:
    """The results of `calls`, in order, asked at once (QUERY_THREADS at a time) while the settler
    keeps up for the filter's project, else one after the other; asked at once, every call reads
    settled facts only (live.settled_only), as the page found them. The first exception raised is
    raised here (ClickHouseError as from any question)."""
    # Decided once, here in the request's thread (a scope, not the live facts: only a question with
    # a live part needs those made), and kept by every call whatever the settler does meanwhile.
    if not live.keeps_up(flt):
        return [call() for call in calls]
    return concurrently(*(live.settled_only(call) for call in calls))


def concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """The results of `calls`, in order, asked at once (QUERY_THREADS at a time): for questions
    that share nothing in a session (a trace's own reads; a live part's temporary tables are made
    and dropped inside the one call). The first call runs in this thread; the others in the pool,
    so they must not use the Django ORM (a pool thread's connection is never closed or renewed).
    The first exception raised is raised here."""
    # A worker never waits for other workers (requests sharing the pool could deadlock it): a
    # question asked from a worker asks its own parts one after the other.
    in_worker = threading.current_thread().name.startswith(_PREFIX)
    if len(calls) < 2 or settings.QUERY_THREADS < 2 or in_worker:
        return [call() for call in calls]
    futures = [_executor().submit(call) for call in calls[1:]]
    try:
        found = [calls[0]()]
        found += [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        wait(futures)  # nothing of this page still runs when its error is shown
        raise
    return found
