#!/bin/sh
# Entrypoint of the portal image (Dockerfile).
#
#   portal-entrypoint.sh               prepare, then serve: migrate, clickhouse_init, collectstatic,
#                                      exec config/serve.sh (waitress when embedded, else gunicorn)
#   portal-entrypoint.sh healthcheck   exit 0 if the web server answers (Docker/compose health check)
#   portal-entrypoint.sh CMD [ARG...]  run anything else, e.g. `python manage.py clickhouse_init`
#
# Steps can be switched off with PORTAL_MIGRATE=0, PORTAL_CLICKHOUSE_INIT=0 or
# PORTAL_COLLECTSTATIC=0. docker-compose.yml sets PORTAL_CLICKHOUSE_INIT=0 for the web server: its
# ClickHouse account may only SELECT, the schema is made by the one-shot `clickhouse-init` service
# with the portal_migrator account.
set -eu

cd "$(dirname "$0")/.."

enabled() {
    case "${1:-1}" in
        0 | false | False | FALSE | no | off) return 1 ;;
        *) return 0 ;;
    esac
}

healthcheck() {
    # Any HTTP answer below 500 means Django is serving. Host is the first ALLOWED_HOSTS entry so
    # the probe is never rejected as DisallowedHost. Nothing here needs ClickHouse or a login.
    exec python - <<'PY'
import http.client
import os
import sys

hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost").split(",") if h.strip()]
host = next((h.lstrip(".") for h in hosts if h != "*"), "localhost")
port = int(os.environ.get("PORT", "3009"))
path = os.environ.get("HEALTHCHECK_PATH", "/admin/login/")
try:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers={"Host": host, "User-Agent": "portal-healthcheck"})
    status = conn.getresponse().status
except OSError as exc:
    sys.exit(f"healthcheck: {exc}")
sys.exit(0 if status < 500 else f"healthcheck: HTTP {status} for {path}")
PY
}

if [ "$#" -gt 0 ]; then
    if [ "$1" = "healthcheck" ]; then
        healthcheck
    fi
    exec "$@"
fi

if enabled "${PORTAL_MIGRATE:-1}"; then
    python manage.py migrate --noinput
fi
if enabled "${PORTAL_CLICKHOUSE_INIT:-1}"; then
    # Idempotent. In embedded mode this process opens the data folder and exits before the web server
    # opens it, so the one-process rule holds.
    python manage.py clickhouse_init
fi
if enabled "${PORTAL_COLLECTSTATIC:-1}"; then
    python manage.py collectstatic --noinput --verbosity 0
fi

exec config/serve.sh
