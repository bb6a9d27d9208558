#!/bin/sh
# Start the portal's web server as its mode needs (used by bin/demo, the image's entrypoint and the
# tests' live servers, so all run the same thing):
#
# * embedded (CLICKHOUSE_HOST unset): waitress, ONE process with PORTAL_THREADS threads (default 8):
#   the chdb data folder opens in one process only. Waitress reads every request, body included,
#   in its event loop and only then hands it to a thread, so slow or stalled senders (a declared
#   Content-Length never sent) hold a socket, never a thread; PORTAL_CHANNEL_TIMEOUT closes them,
#   a request's deadline (PORTAL_HEADER_TIMEOUT, PORTAL_BODY_TIMEOUT) ends them however they
#   trickle, and one address holds at most PORTAL_CONNECTIONS_PER_ADDRESS sockets.
#   OTLP exports jump the queue, and dashboard pages run at most PORTAL_DASHBOARD_CONCURRENCY (3)
#   at a time, so ingest keeps its pace while people look at the dashboard (monitoring/serving.py).
# * server (CLICKHOUSE_HOST set): gunicorn with config/gunicorn.conf.py (several worker processes),
#   behind nginx (config/nginx.conf), which buffers whole request bodies before passing them on.
#
# Environment: BIND (host:port, default 0.0.0.0:$PORT), PORT (3009), PORTAL_THREADS,
# PORTAL_CHANNEL_TIMEOUT (s of silence before a connection is closed, default 30),
# PORTAL_CONNECTION_LIMIT (open connections, default 1000), PORTAL_DASHBOARD_CONCURRENCY (3),
# PORTAL_CONNECTIONS_PER_ADDRESS (100; 0: none), PORTAL_HEADER_TIMEOUT (20 s), PORTAL_BODY_TIMEOUT
# (20 s) and PORTAL_BODY_MIN_RATE (65536 bytes/s: a body's deadline grows a second per this many),
# PORTAL_PYTHON (default: python),
# PORTAL_SERVER=gunicorn to run gunicorn in embedded mode too (one worker; bench/ compares them).
set -eu
cd "$(dirname "$0")/.."
PY=${PORTAL_PYTHON:-python}

if [ -z "${CLICKHOUSE_HOST:-}" ] && [ "${PORTAL_SERVER:-waitress}" = waitress ]; then
    # waitress with an ingest-first queue and at most PORTAL_DASHBOARD_CONCURRENCY dashboard
    # requests at once: see monitoring/serving.py.
    exec "$PY" -m monitoring.serving
fi
exec "$PY" -m gunicorn -c config/gunicorn.conf.py ${BIND:+--bind "$BIND"} portal.wsgi:application
