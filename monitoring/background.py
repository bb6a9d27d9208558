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
- A job registered with a `lease` (the settler's jobs) runs only in the one process that holds that
  lease in Django's database (`models.Lease`; in server mode: in embedded mode the one process that
  may open the data folder is the holder), whatever number of processes run it: the others
  stand by and take over once the holder stops renewing it (killed: after JOB_LEASE_SECONDS; stopped
  with SIGTERM or Ctrl-C: at once, as it gives its leases up). A thread renews the lease while a
  long run lasts.
- Jobs registered with `among` (the settler's partitions: `settle/1of2`, `settle/2of2`) share those
  leases out between the processes that run them: each process announces itself with a lease of
  its own (`members/...`) and holds at most its share, ceil(leases / live processes). A process
  holding more (it started first) gives the extras up between runs, so one that starts later gets
  work within a tick or two; a dead process's leases are taken by the others once they run out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import math
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
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
    lease: str = ""  # runs only in the process holding this lease ("" = in every process that runs jobs)
    among: tuple[str, ...] = ()  # the leases `lease` is shared out with (claim)


_jobs: dict[str, Job] = {}
_lock = threading.Lock()
_thread: threading.Thread | None = None
_stop = threading.Event()
# The leases this process believes it holds (True), knows another holds (False); for the log only.
_held: dict[str, bool] = {}
_renewed: dict[str, float] = {}  # time.monotonic() when this process last took or renewed a lease
_holder: tuple[int, str] = (0, "")
_members_seen: dict[str, tuple[float, int]] = {}  # group -> (monotonic s, live processes sharing it)


def register(
    name: str, every_seconds: float, fn: Callable[[], object], lease: str = "", among: tuple[str, ...] = ()
) -> Job:
    """Add (or replace) the job `name`, run every `every_seconds` once the runner is started; with
    `lease`, only in the process that holds that lease (jobs may share one); with `among` (leases
    that include `lease`), only while this process's share of them includes it (`claim`).

    Raises ValueError for a period under one second, or `among` without `lease`."""
    if every_seconds < 1:
        raise ValueError("every_seconds must be at least 1")
    if among and lease not in among:
        raise ValueError("among must include the job's lease")
    with _lock:
        job = Job(name, float(every_seconds), fn, lease=lease, among=tuple(among))
        _jobs[name] = job
        return job


def unregister(name: str) -> None:
    with _lock:
        _jobs.pop(name, None)


def jobs() -> list[Job]:
    with _lock:
        return list(_jobs.values())


def holder() -> str:
    """This process's name as a lease holder: host:pid:random. Worked out per pid, so processes
    forked after import (gunicorn's workers) are told apart."""
    global _holder
    pid = os.getpid()
    if _holder[0] != pid:
        _holder = (pid, f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}")
    return _holder[1]


def hold(lease: str) -> bool:
    """Take or renew `lease` for this process (for settings.JOB_LEASE_SECONDS); True when held.
    Server mode only: in embedded mode the process that opened the data folder holds every lease.
    A lease renewed less than a third of its length ago is not renewed again (a job every second
    would otherwise write every second). Logs when this process takes it, loses it, or first finds
    it held elsewhere."""
    from django.conf import settings

    from monitoring.models import Lease

    if not settings.CLICKHOUSE["HOST"]:
        # Embedded: the engine's data folder opens in one process only (ClickHouse locks
        # <folder>/status), which is lease enough, and a restarted portal settles at once.
        return True
    seconds = settings.JOB_LEASE_SECONDS
    with _lock:
        if _held.get(lease) and time.monotonic() - _renewed.get(lease, -math.inf) < seconds / 3:
            return True
    asked = time.monotonic()
    held = Lease.take(lease, holder(), seconds)
    with _lock:
        before = _held.get(lease)
        _held[lease] = held
        if held:
            _renewed[lease] = asked
    if held and before is not True:
        log.info("took the lease %r as %s", lease, holder())
    elif not held and before is True:
        log.warning("lost the lease %r to another process: standing by", lease)
    elif not held and before is None:
        other = Lease.objects.filter(name=lease).values_list("holder", flat=True).first()
        log.info("the lease %r is held by %s: standing by", lease, other)
    return held


def _group(among: tuple[str, ...]) -> str:
    return hashlib.sha1("\n".join(sorted(among)).encode()).hexdigest()[:12]


def members(among: tuple[str, ...]) -> int:
    """Announce this process as one sharing `among` (its lease `members/<group>/<holder>`, renewed
    like any other) and count the live processes that do, itself included (re-counted at most
    once a TICK_SECONDS). Rows of processes long gone are deleted on the way."""
    from django.conf import settings
    from django.db.models import Q
    from django.db.models.functions import Now

    from monitoring.models import Lease

    group = _group(among)
    seen = _members_seen.get(group)
    if seen and time.monotonic() - seen[0] < TICK_SECONDS:
        return seen[1]
    prefix = f"members/{group}/"
    name = prefix + hashlib.sha1(holder().encode()).hexdigest()[:16]
    if hold(name):
        gone = dt.timedelta(seconds=settings.JOB_LEASE_SECONDS * 10)
        Lease.objects.filter(
            Q(expires_at__isnull=True) | Q(expires_at__lte=Now() - gone), name__startswith=prefix
        ).exclude(name=name).delete()
    count = max(1, Lease.objects.filter(name__startswith=prefix, expires_at__gt=Now()).count())
    _members_seen[group] = (time.monotonic(), count)
    return count


def claim(lease: str, among: tuple[str, ...]) -> bool:
    """Take or keep `lease`, one of `among`, within this process's share: at most
    ceil(len(among) / members(among)) of them. One held beyond the share is given up (those later
    in `among` first) so that a process started later takes it; True when this process holds
    `lease` afterwards. Without `among`: `hold(lease)`. Embedded mode: True (the data folder is
    the lease)."""
    from django.conf import settings

    from monitoring.models import Lease

    if not among or not settings.CLICKHOUSE["HOST"]:
        return hold(lease)
    processes = members(among)
    share = math.ceil(len(among) / processes)
    with _lock:
        mine = [name for name in among if _held.get(name)]
    if lease in mine:
        if mine.index(lease) < share:
            return hold(lease)
        Lease.release(holder(), lease)
        with _lock:
            _held[lease] = False
        log.info("gave up the lease %r: %d processes share %d leases", lease, processes, len(among))
        return False
    return len(mine) < share and hold(lease)


def release() -> int:
    """Give up this process's leases at once (a clean stop), so another process takes over at its
    next tick instead of after the lease runs out; how many were held."""
    from monitoring.models import Lease

    with _lock:
        _held.clear()
        _renewed.clear()
    return Lease.release(holder())


@contextlib.contextmanager
def _renewing(lease: str) -> Iterator[None]:
    """Renew `lease` from a thread of its own while the body runs (a settler's backfill may take
    minutes); the thread's database connection is closed when it ends."""
    from django.conf import settings
    from django.db import connections

    done = threading.Event()

    def renew() -> None:
        try:
            while not done.wait(settings.JOB_LEASE_SECONDS / 3):
                try:
                    if not hold(lease):
                        return
                except Exception:  # the database away for a moment: try again, the lease has time
                    log.exception("renewing the lease %r failed", lease)
        finally:
            connections.close_all()

    thread = threading.Thread(target=renew, name=f"lease-{lease}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _run(job: Job, own_connections: bool = False) -> bool:
    """`own_connections`: the calling thread is the runner's (or a command's loop), so it drops its
    stale database connections before and after the job. Never inside a request or a test.
    False when another process holds the job's lease (the job did not run)."""
    from django.db import close_old_connections, connections

    started = time.monotonic()
    ran = True
    try:
        if own_connections:
            close_old_connections()
        if job.lease and not claim(job.lease, job.among):
            ran = False
        else:
            with _renewing(job.lease) if job.lease else contextlib.nullcontext():
                job.fn()
            job.runs += 1
            job.last_error = ""
    except Exception as exc:  # a job's failure must never end the loop
        job.runs += 1
        job.failures += 1
        job.last_error = f"{type(exc).__name__}: {exc}"
        log.exception("background job %s failed", job.name)
    finally:
        if own_connections:
            connections.close_all()  # this thread's connections; the next run opens fresh ones
    if ran:
        log.debug("background job %s took %.0f ms", job.name, (time.monotonic() - started) * 1000)
    return ran


def run_pending(now: float | None = None, names: list[str] | None = None, own_connections: bool = False) -> list[str]:
    """Run every job that is due (in this thread), or only those of `names`; returns the names run
    (a job whose lease another process holds is not run, and asks again at its next tick)."""
    now = time.monotonic() if now is None else now
    ran = []
    for job in jobs():
        if (names is None or job.name in names) and job.next_run <= now:
            if _run(job, own_connections):
                ran.append(job.name)
            job.next_run = max(now, time.monotonic()) + job.every_seconds
    return ran


def _loop() -> None:
    log.info("background jobs started: %s", ", ".join(j.name for j in jobs()) or "(none yet)")
    try:
        while not _stop.is_set():
            run_pending(own_connections=True)
            _stop.wait(TICK_SECONDS)
    finally:
        _give_up_leases()


def _give_up_leases() -> None:
    from django.db import connections

    with _lock:
        if not any(_held.values()):
            return
    try:
        release()
    except Exception:  # the database is gone: the leases run out by themselves
        log.exception("giving up the leases failed")
    finally:
        connections.close_all()


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
    """Run jobs in the calling thread until interrupted (a management command's `--loop`): Ctrl-C,
    or SIGTERM (`docker stop`), which lets the running job finish. Either way this process's leases
    are given up on the way out.

    `names`: only these jobs (all registered ones when None)."""
    _stop.clear()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: _stop.set()) if in_main else None
    try:
        while not _stop.is_set():
            run_pending(names=names, own_connections=True)
            _stop.wait(TICK_SECONDS)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        _give_up_leases()
