"""Gunicorn settings for the portal (`gunicorn -c config/gunicorn.conf.py portal.wsgi:application`).

config/serve.sh starts gunicorn in server mode only; embedded mode is served by waitress there
(it reads request bodies before a thread takes them). This file still runs embedded mode safely
(PORTAL_SERVER=gunicorn, e.g. bench/slow_clients.py --also-gunicorn):

* embedded (CLICKHOUSE_HOST unset): the ClickHouse engine runs inside the portal (chdb) on a data
  folder that ONE OS process may open (a second one fails with "Cannot lock file .../status").
  So: one worker process, several threads (chdb releases the GIL, threads query in parallel).
  GUNICORN_WORKERS is ignored here on purpose.
* server (CLICKHOUSE_HOST set): a real ClickHouse over the network; workers = GUNICORN_WORKERS, or
  2 x CPUs + 1, each with 4 threads.

Environment: PORT (default 3009, the dashboard's port when run without compose; compose sets 8000
behind nginx), GUNICORN_WORKERS, GUNICORN_THREADS, GUNICORN_TIMEOUT (s, default 60),
FORWARDED_ALLOW_IPS (proxies whose X-Forwarded-* headers are trusted; compose sets "*", the
backend is reachable only through the compose network).
"""

from __future__ import annotations

import os
import sys


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"gunicorn.conf.py: {name} must be an integer, not {raw!r}")
    if value < minimum:
        sys.exit(f"gunicorn.conf.py: {name} must be at least {minimum}, not {value}")
    return value


def available_cpus() -> int:
    """CPUs this container may use: the CPU affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:  # "max 100000" or "150000 100000"
            quota, period = fh.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))  # ceil(quota / period)
    except (OSError, ValueError):
        pass
    return max(1, cpus)


EMBEDDED = not os.environ.get("CLICKHOUSE_HOST", "").strip()

bind = f"0.0.0.0:{_env_int('PORT', 3009)}"
worker_class = "gthread"

if EMBEDDED:
    workers = 1  # one process may hold the chdb data folder; never more
    threads = _env_int("GUNICORN_THREADS", 8)
    # A worker recycled by max_requests would reopen the data folder for nothing.
    max_requests = 0
else:
    workers = _env_int("GUNICORN_WORKERS", 2 * available_cpus() + 1)
    threads = _env_int("GUNICORN_THREADS", 4)
    # Recycle workers now and then (guards against slow leaks); jitter avoids all at once.
    max_requests = 2000
    max_requests_jitter = 200

# Never import the app in the master: in embedded mode that would open the engine in the master
# before forking. Each worker loads the app itself.
preload_app = False

timeout = _env_int("GUNICORN_TIMEOUT", 60)
graceful_timeout = 30
keepalive = 5  # behind nginx, which keeps upstream connections alive

# Heartbeat files on tmpfs, so a slow disk never makes the master kill a healthy worker.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# gunicorn >= 27 opens a runtime control socket under $HOME or $XDG_RUNTIME_DIR; the container
# needs no management interface (and its user cannot write $HOME). Older releases ignore this.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Peer address, then the client as nginx saw it (X-Forwarded-For), then the request.
access_log_format = '%(h)s %({x-forwarded-for}i)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
capture_output = True


# Prometheus (django-prometheus + monitoring.prometheus) across worker processes: prometheus-client's
# multiprocess mode, each worker writing its samples under PROMETHEUS_MULTIPROC_DIR (tmpfs in compose);
# set in on_starting, in the master before any worker starts (never at import: tests load this file).
PROMETHEUS_DIR_DEFAULT = "/tmp/portal-prometheus"


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_starting(server):
    if not EMBEDDED:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", f"{PROMETHEUS_DIR_DEFAULT}-{os.getpid()}")
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if metrics_dir:  # samples of a previous run would be added to this one's
        import shutil

        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.makedirs(metrics_dir, exist_ok=True)
    mode = "embedded (chdb, one process)" if EMBEDDED else "server (CLICKHOUSE_HOST)"
    server.log.info("portal: %s mode, %d worker(s) x %d thread(s) on %s", mode, workers, threads, bind)
    if EMBEDDED and os.environ.get("GUNICORN_WORKERS", "").strip() not in ("", "1"):
        server.log.warning(
            "portal: GUNICORN_WORKERS ignored in embedded mode (the chdb data folder allows one process)"
        )
