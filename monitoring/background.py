"""Periodic jobs run inside one process: `register(name, every_seconds, fn)`, then `start()`.

Why in-process: in embedded mode one OS process owns the chdb data folder, so jobs that read
ClickHouse (monitors, and whatever else registers here) must run in the serving process itself.
In server mode a separate process runs them (`manage.py run_monitors --loop`, the compose
`monitors` service) and the web workers leave them alone.

Rules:
- `register` only records a job (apps do it in `AppConfig.ready`); nothing runs until `start()`.
- `start()` is called by the serving entry point (`portal/wsgi.py`) and starts ONE daemon thread
  per process, whatever number of threads gunicorn serves with and however often it is called.
  It starts only when `settings.BACKGROUND_JOBS` says so: "auto" (default) = in embedded mode only,
  "on" = always, "off" = never. Tests and management commands never import `portal.wsgi`, so jobs
  never start there unless a test calls `start(force=True)` or `run_pending` itself.
- A job that raises is logged with its traceback and runs again at its next tick; the loop lives on.
- A job runs at most once at a time (a slow run delays its next tick instead of piling up), and
  each run closes Django's database connections of the thread afterwards.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0  # how often the loop looks at the clock


@dataclass
class Job:
    name: str
    every_seconds: float
    fn: Callable[[], object]
    next_run: float = 0.0  # time.monotonic() at which it is due; 0 = at the first tick
    runs: int = 0
    failures: int = 0
    last_error: str = ""


_jobs: dict[str, Job] = {}
_lock = threading.Lock()
_thread: threading.Thread | None = None
_stop = threading.Event()


def register(name: str, every_seconds: float, fn: Callable[[], object]) -> Job:
    """Add (or replace) the job `name`, run every `every_seconds` once the runner is started.

    Raises ValueError for a period under one second."""
    if every_seconds < 1:
        raise ValueError("every_seconds must be at least 1")
    with _lock:
        job = Job(name, float(every_seconds), fn)
        _jobs[name] = job
        return job


def unregister(name: str) -> None:
    with _lock:
        _jobs.pop(name, None)


def jobs() -> list[Job]:
    with _lock:
        return list(_jobs.values())


def _run(job: Job, own_connections: bool = False) -> None:
    """`own_connections`: the calling thread is the runner's (or a command's loop), so it drops its
    stale database connections before and after the job. Never inside a request or a test."""
    from django.db import close_old_connections, connections

    started = time.monotonic()
    try:
        if own_connections:
            close_old_connections()
        job.fn()
        job.last_error = ""
    except Exception as exc:  # a job's failure must never end the loop
        job.failures += 1
        job.last_error = f"{type(exc).__name__}: {exc}"
        log.exception("background job %s failed", job.name)
    finally:
        job.runs += 1
        if own_connections:
            connections.close_all()  # this thread's connections; the next run opens fresh ones
    log.debug("background job %s took %.0f ms", job.name, (time.monotonic() - started) * 1000)


def run_pending(now: float | None = None, names: list[str] | None = None, own_connections: bool = False) -> list[str]:
    """Run every job that is due (in this thread), or only those of `names`; returns the names run."""
    now = time.monotonic() if now is None else now
    ran = []
    for job in jobs():
        if (names is None or job.name in names) and job.next_run <= now:
            _run(job, own_connections)
            job.next_run = max(now, time.monotonic()) + job.every_seconds
            ran.append(job.name)
    return ran


def _loop() -> None:
    log.info("background jobs started: %s", ", ".join(j.name for j in jobs()) or "(none yet)")
    while not _stop.is_set():
        run_pending(own_connections=True)
        _stop.wait(TICK_SECONDS)


def should_start() -> bool:
    from django.conf import settings

    mode = getattr(settings, "BACKGROUND_JOBS", "auto")
    if mode == "on":
        return True
    if mode == "off":
        return False
    from monitoring.store import clickhouse

    return clickhouse.is_embedded()


def start(force: bool = False) -> bool:
    """Start the runner thread of this process if settings allow it (or `force`); idempotent.

    Returns True when the runner is running after the call."""
    global _thread
    with _lock:
        if _thread is not None and _thread.is_alive():
            return True
        if not force and not should_start():
            return False
        _stop.clear()
        _thread = threading.Thread(target=_loop, name="background-jobs", daemon=True)
        _thread.start()
        return True


def stop(timeout: float = 10.0) -> None:
    """Ask the runner to stop after the job it is running, and wait for it."""
    global _thread
    _stop.set()
    thread = _thread
    if thread is not None:
        thread.join(timeout)
    _thread = None


def run_forever(names: list[str] | None = None) -> None:
    """Run jobs in the calling thread until interrupted (a management command's `--loop`).

    `names`: only these jobs (all registered ones when None)."""
    _stop.clear()
    while not _stop.is_set():
        run_pending(names=names, own_connections=True)
        _stop.wait(TICK_SECONDS)
