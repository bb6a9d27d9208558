#!/bin/sh
# Start the portal's web server as its mode needs (used by bin/demo, the image's entrypoint and the
# tests' live servers, so all run the same thing):
#
# * embedded (CLICKHOUSE_HOST unset): waitress, ONE process with PORTAL_THREADS threads (default 8):
#   the chdb data folder opens in one process only. Waitress reads every request, body included,
#   in its event loop and only then hands it to a thread, so slow or stalled senders (a declared
#   Content-Length never sent) hold a socket, never a thread; --channel-timeout closes them.
# * server (CLICKHOUSE_HOST set): gunicorn with config/gunicorn.conf.py (several worker processes),
#   behind nginx (config/nginx.conf), which buffers whole request bodies before passing them on.
#
# Environment: BIND (host:port, default 0.0.0.0:$PORT), PORT (3009), PORTAL_THREADS,
# PORTAL_CHANNEL_TIMEOUT (s of silence before a connection is closed, default 30),
# PORTAL_CONNECTION_LIMIT (open connections, default 1000), PORTAL_PYTHON (default: python),
# PORTAL_SERVER=gunicorn to run gunicorn in embedded mode too (one worker; bench/ compares them).
set -eu
cd "$(dirname "$0")/.."
PY=${PORTAL_PYTHON:-python}

if [ -z "${CLICKHOUSE_HOST:-}" ] && [ "${PORTAL_SERVER:-waitress}" = waitress ]; then
    exec "$PY" -m waitress \
        --listen="${BIND:-0.0.0.0:${PORT:-3009}}" \
        --threads="${PORTAL_THREADS:-8}" \
        --channel-timeout="${PORTAL_CHANNEL_TIMEOUT:-30}" \
        --connection-limit="${PORTAL_CONNECTION_LIMIT:-1000}" \
        --max-request-body-size=22020096 \
        --asyncore-use-poll \
        --ident=portal \
        portal.wsgi:application
fi
exec "$PY" -m gunicorn -c config/gunicorn.conf.py ${BIND:+--bind "$BIND"} portal.wsgi:application
