"""The embedded-mode web server: waitress, one process, with a task queue that keeps ingest flowing.

    python -m monitoring.serving        (config/serve.sh runs it; settings from the environment)

Why waitress: the chdb data folder opens in ONE process, so embedded mode is one process with
threads. Waitress reads each request — body included — in its event loop, and only a complete
request is queued for a thread: a sender that declares a body and stalls holds a socket (closed
after PORTAL_CHANNEL_TIMEOUT s of silence), never a thread.

Why a queue of our own (:class:`IngestFirstDispatcher`): waitress serves its queue first come,
first served. With 20 people loading dashboard tabs (each 0.2-3 s of ClickHouse work on 2 cores),
an OTLP export waited behind all of them and ingest fell to a few hundred spans/s. Here
- ``POST /v1/traces`` goes to the front of the queue (an export is short and its sender is a
  program with a timeout);
- dashboard pages and the read API ("heavy": they run ClickHouse queries that use every core) run
  at most PORTAL_DASHBOARD_CONCURRENCY at a time (default 3); the others wait in the queue without
  holding a thread, so a thread is always free for ingest, logins and static files.

Environment: BIND (host:port, default 0.0.0.0:$PORT), PORT (3009), PORTAL_THREADS (8),
PORTAL_CHANNEL_TIMEOUT (30 s), PORTAL_CONNECTION_LIMIT (1000), PORTAL_DASHBOARD_CONCURRENCY (3).
"""

from __future__ import annotations

import os
import sys

from waitress.task import ThreadedTaskDispatcher

INGEST_PATH = "/v1/traces"
HEAVY_PREFIXES = ("/admin/monitoring", "/api/")
MAX_REQUEST_BODY_BYTES = 21 * 1024 * 1024  # the OTLP limit (20 MiB) and some headroom


def _path(task) -> str:
    request = getattr(task, "request", None)
    return getattr(request, "path", "") or ""


class IngestFirstDispatcher(ThreadedTaskDispatcher):
    """waitress' ThreadedTaskDispatcher with ingest first and a cap on concurrent dashboard work."""

    def __init__(self, heavy_limit: int):
        super().__init__()
        self.heavy_limit = max(1, heavy_limit)
        self.heavy_active = 0

    @staticmethod
    def is_heavy(task) -> bool:
        return _path(task).startswith(HEAVY_PREFIXES)

    def add_task(self, task):
        with self.lock:
            if _path(task) == INGEST_PATH:
                self.queue.appendleft(task)
            else:
                self.queue.append(task)
            self.queue_cv.notify()

    def _next_task(self):
        """The first task that may run now (lock held), or None."""
        for index, task in enumerate(self.queue):
            if not self.is_heavy(task) or self.heavy_active < self.heavy_limit:
                del self.queue[index]
                return task
        return None

    def handler_thread(self, thread_no):
        # waitress 3.0's loop, picking with _next_task instead of popleft.
        while True:
            with self.lock:
                task = self._next_task()
                while task is None and self.stop_count == 0:
                    self.active_count -= 1
                    self.queue_cv.wait()
                    self.active_count += 1
                    task = self._next_task()
                if self.stop_count > 0:
                    if task is not None:
                        self.queue.appendleft(task)
                    self.active_count -= 1
                    self.stop_count -= 1
                    self.threads.discard(thread_no)
                    self.thread_exit_cv.notify()
                    break
                heavy = self.is_heavy(task)
                if heavy:
                    self.heavy_active += 1
            try:
                task.service()
            except BaseException:
                self.logger.exception("Exception when servicing %r", task)
            finally:
                if heavy:
                    with self.lock:
                        self.heavy_active -= 1
                        self.queue_cv.notify_all()  # a waiting dashboard task may run now


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        sys.exit(f"monitoring.serving: {name} must be an integer, not {raw!r}")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from waitress import create_server

    from portal.wsgi import application

    threads = _env_int("PORTAL_THREADS", 8)
    dispatcher = IngestFirstDispatcher(_env_int("PORTAL_DASHBOARD_CONCURRENCY", 3))
    dispatcher.set_thread_count(threads)  # waitress does this only for a dispatcher of its own
    server = create_server(
        application,
        _dispatcher=dispatcher,
        listen=os.environ.get("BIND") or f"0.0.0.0:{_env_int('PORT', 3009)}",
        threads=threads,
        channel_timeout=_env_int("PORTAL_CHANNEL_TIMEOUT", 30),
        connection_limit=_env_int("PORTAL_CONNECTION_LIMIT", 1000),
        max_request_body_size=MAX_REQUEST_BODY_BYTES,
        asyncore_use_poll=True,
        ident="portal",
    )
    server.print_listen("portal: embedded mode (chdb, one process), waitress on http://{}:{}")
    print(f"portal: {threads} threads, ingest first", flush=True)
    server.run()


if __name__ == "__main__":
    main()
