# syntax=docker/dockerfile:1
# The Agent Portal Monitoring web app (Django + gunicorn).
#
#   docker build -t agent-portal-monitoring .
#   docker run -p 3009:3009 agent-portal-monitoring          # embedded mode: chdb + SQLite in /app/var
#   docker compose up -d backend webui                       # server mode: see docker-compose.yml
#
# The entrypoint (config/portal-entrypoint.sh) runs migrate, clickhouse_init and collectstatic,
# then execs gunicorn with config/gunicorn.conf.py. Mount a volume at /app/var to keep embedded
# data (chdb folder, SQLite, generated SECRET_KEY) across containers.
FROM python:3.11.17-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=3009

WORKDIR /app

# An unprivileged account; the code stays owned by root and read-only for it.
RUN groupadd --system --gid 10001 portal \
 && useradd --system --uid 10001 --gid portal --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin portal

# Dependencies first: this layer is rebuilt only when requirements.txt or constraints.txt change.
COPY requirements.txt constraints.txt ./
RUN pip install --no-compile -r requirements.txt -c constraints.txt

COPY . .

# var/ is the only place the app writes: collected static files (STATIC_ROOT = var/static), and in
# embedded mode the chdb data folder, the SQLite database and a generated SECRET_KEY.
RUN mkdir -p /app/var \
 && chown portal:portal /app/var \
 && chmod 0750 /app/var \
 && chmod 0755 /app/config/portal-entrypoint.sh

USER portal:portal

EXPOSE 3009 8000

HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/app/config/portal-entrypoint.sh", "healthcheck"]

ENTRYPOINT ["/app/config/portal-entrypoint.sh"]
