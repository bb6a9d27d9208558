"""Settings: everything that differs between machines comes from the environment (see .env.example)."""

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
import plotly

from portal.env import (
    env_bool,
    env_choice,
    env_float,
    env_identifier,
    env_int,
    env_list,
    env_networks_and_hosts,
    env_str,
    env_uuid,
)


def env_time_zone(name: str, default: str) -> str:
    """An IANA zone name (Asia/Seoul, UTC) from the environment; start-up fails naming the variable."""
    import zoneinfo

    from django.core.exceptions import ImproperlyConfigured

    value = env_str(name, default)
    if value not in zoneinfo.available_timezones() | {"UTC"}:
        raise ImproperlyConfigured(f"{name} must be an IANA time zone such as Asia/Seoul or UTC, not {value!r}")
    return value


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY, else one generated once and kept in var/ (fine for a single machine)."""
    key = env_str("SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    try:  # exclusive and private from the first byte: concurrent workers agree on one key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "axes",
    "django_prometheus",
    "monitoring",
    "monitoring.monitors",
    "monitoring.quality",
]
# The demo app (demo/: `manage.py demo_setup` and `demo_traces`) only where asked for: bin/demo sets
# PORTAL_DEMO=1, the test settings add it; production leaves it out.
if env_bool("PORTAL_DEMO", False):
    INSTALLED_APPS.append("demo")

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Language from the cookie, else Accept-Language; a signed-in user's saved choice wins (below).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The viewer's saved language and time zone (else the browser's), active for the whole request.
    "monitoring.web.preferences.PreferenceMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "monitoring.web.preferences.context",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=60)
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failures for one user name from one
# address, or from one address whatever the names, logins from there are refused for
# LOGIN_COOLOFF_MINUTES (monitoring.throttling.login_locked_out). Never the user name alone: that let
# anyone lock a person out everywhere (issue 22). Guessing one name from many addresses is slowed
# instead: each failed answer waits longer, up to LOGIN_DELAY_MAX_SECONDS (throttling.delay_failed_login).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]  # the pair, and the address
AXES_RESET_ON_SUCCESS = True  # a person's own login clears her address's failures, not an attacker's
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # every failure kept for staff (admin: Axes > Access failures)
LOGIN_DELAY_MAX_SECONDS = env_int("LOGIN_DELAY_MAX_SECONDS", 10, minimum=0)
AXES_CLIENT_IP_CALLABLE = "monitoring.throttling.axes_client_ip"
AXES_LOCKOUT_CALLABLE = "monitoring.throttling.login_locked_out"
AXES_VERBOSE = False
# Behind nginx (compose) the client address is the last X-Forwarded-For entry, which nginx appends.
PROXY_FORWARDS_CLIENT_IP = env_bool("PROXY_FORWARDS_CLIENT_IP", False)

# Rate limits (django-ratelimit): the read API per token/user, Replay re-runs per user (they spend
# money). The counters live in a file-based cache under var/: shared by every gunicorn worker of a
# host with no extra service. Its increments are not atomic (django_ratelimit.E003/W001, silenced):
# simultaneous requests may be under-counted by a few, fine for stopping bursts and runaway spend.
API_RATE_LIMIT = env_str("API_RATE_LIMIT", "300/m")
RERUN_RATE_LIMIT = env_str("RERUN_RATE_LIMIT", "10/m")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ratelimit": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "cache" / "ratelimit"),
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    },
}
RATELIMIT_USE_CACHE = "ratelimit"
RATELIMIT_VIEW = "monitoring.throttling.too_many_requests"
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

# Content-Security-Policy (django-csp). Scripts only from our own static files (htmx, plotly.js,
# ours): no inline script or handler (the switchers submit through static/monitoring/forms.js).
# Styles: plotly.js sets style attributes and injects a <style> element, hence 'unsafe-inline'
# for styles (never for scripts).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# /metrics (Prometheus, django-prometheus + monitoring.prometheus): only from these networks, or with
# `Authorization: Bearer $METRICS_TOKEN` when that is set. nginx does not pass /metrics on.
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])
METRICS_TOKEN = env_str("METRICS_TOKEN")

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/admin/monitoring/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ko", "한국어")]
LOCALE_PATHS = [BASE_DIR / "monitoring" / "locale"]
USE_I18N = True
USE_TZ = True
# The server's zone (logs, the database). People read times in their own zone: the one they chose,
# else their browser's, else PORTAL_TIME_ZONE (monitoring/web/preferences.py).
TIME_ZONE = "UTC"
PORTAL_TIME_ZONE = env_time_zone("PORTAL_TIME_ZONE", "Asia/Seoul")

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing folder before collectstatic
# plotly.js ships inside the plotly wheel: served from there, never from a CDN.
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", Path(plotly.__file__).parent / "package_data")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the app/package folders too, so a checkout works before collectstatic.
WHITENOISE_USE_FINDERS = True

# The OTLP receiver takes bodies up to 20 MiB (the collector's default); it checks the size itself.
DATA_UPLOAD_MAX_MEMORY_SIZE = 21 * 1024 * 1024

SESSION_COOKIE_HTTPONLY = True
# A new ingest key is shown once through a message: keep messages server-side, not in a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None

# ClickHouse: embedded chdb when CLICKHOUSE_HOST is unset, the native protocol otherwise.
CLICKHOUSE: dict[str, Any] = {
    "HOST": env_str("CLICKHOUSE_HOST"),
    "PORT": env_int("CLICKHOUSE_PORT", 9000, minimum=1, maximum=65535),
    "DATABASE": env_identifier("CLICKHOUSE_DATABASE", "otel_2"),
    "USER": env_str("CLICKHOUSE_USER", "default"),
    "PASSWORD": env_str("CLICKHOUSE_PASSWORD"),
    "SECURE": env_bool("CLICKHOUSE_SECURE", False),
    "DATA_DIR": env_str("CLICKHOUSE_DATA_DIR", str(VAR_DIR / "clickhouse")),
    "TTL_DAYS": env_int("CLICKHOUSE_TTL_DAYS", 30, minimum=0, maximum=36500),
    "CONNECT_TIMEOUT": env_float("CLICKHOUSE_CONNECT_TIMEOUT", 30.0),
    "QUERY_TIMEOUT": env_float("CLICKHOUSE_QUERY_TIMEOUT", 30.0),
}
# OTLP ingest (monitoring/ingest/batcher.py): the exports that arrive within INGEST_BATCH_SECONDS of
# each other go into one insert (a 512-span insert costs ~2.5x the CPU a span of a 4096-span one:
# parts, MVs, merges), by INGEST_WRITERS threads; batches ClickHouse cannot take are kept in a local
# spool (fsync'ed before the 200) and stored when it is back. INGEST_SPOOL_MAX_MB=0 disables the
# spool (then: 503 + Retry-After).
INGEST: dict[str, Any] = {
    "BATCH_SECONDS": env_float("INGEST_BATCH_SECONDS", 0.1),
    "WRITERS": env_int("INGEST_WRITERS", 2, minimum=1),
    "BATCH_MAX_SPANS": env_int("INGEST_BATCH_MAX_SPANS", 20000, minimum=1),
    "MAX_QUEUED_SPANS": env_int("INGEST_MAX_QUEUED_SPANS", 200000, minimum=1),
    # Write-behind (embedded mode, needs the spool): while spans arrive at WRITE_BEHIND_RATE a second
    # or more, batches under MIN_INSERT_SPANS are queued in the spool (fsync'ed before the 200) and
    # inserted together once they hold MIN_INSERT_SPANS or the oldest has waited WRITE_BEHIND_SECONDS
    # (a 4,096-span insert costs ~0.8x the CPU a span of a 2,048 one). 0 turns it off.
    "WRITE_BEHIND_RATE": env_int("INGEST_WRITE_BEHIND_RATE", 2048, minimum=0),
    "WRITE_BEHIND_SECONDS": env_float("INGEST_WRITE_BEHIND_SECONDS", 0.5),
    "MIN_INSERT_SPANS": env_int("INGEST_MIN_INSERT_SPANS", 4096, minimum=1),
    # How long a request waits for its rows to be stored or spooled before answering 503.
    "ACK_TIMEOUT": CLICKHOUSE["CONNECT_TIMEOUT"] + CLICKHOUSE["QUERY_TIMEOUT"] + 5,
    "SPOOL_DIR": env_str("INGEST_SPOOL_DIR", str(VAR_DIR / "spool")),
    "SPOOL_MAX_BYTES": env_int("INGEST_SPOOL_MAX_MB", 1024, minimum=0) * 1024 * 1024,
    "START_ON_LOAD": True,
    # The most attribute entries, events and links one span keeps (its resource's attributes too);
    # past it the span is stored cut and the sender told (partialSuccess). 0: all, as the collector
    # stores them, at the engine's cost of ~350 bytes of memory an entry while it is inserted.
    "MAX_SPAN_ENTRIES": env_int("INGEST_MAX_SPAN_ENTRIES", 10000, minimum=0),
}
DEFAULT_PROJECT_ID = env_uuid("DEFAULT_PROJECT_ID", "8c59e361-3727-418c-bc68-086b69f7598b")

# The OpenAI-compatible gateway that Replay sends re-runs to, and whose /health the health page asks.
LITELLM_BASE_URL = env_str("LITELLM_BASE_URL", "http://localhost:4000")
LITELLM_CONFIGURED = bool(env_str("LITELLM_BASE_URL"))
# The project the gateway's own spans are exported into (its OTEL_RESOURCE_ATTRIBUTES project_id).
LITELLM_PROJECT_ID = env_uuid(
    "LITELLM_PROJECT_ID", DEFAULT_PROJECT_ID
)  # the health page asks the gateway only when told where
LITELLM_API_KEY = env_str("LITELLM_API_KEY")
# LLM judges (monitoring/quality/judges.py) call models through that gateway; off stops every
# project's judges at once, whatever their own switch says (each project also has a daily cost cap).
JUDGES_ENABLED = env_bool("JUDGES_ENABLED", True)

# Periodic jobs in the serving process (monitoring/background.py): "auto" = in embedded mode only
# (there one process owns the data folder; in server mode `manage.py run_monitors --loop` runs them).
BACKGROUND_JOBS = env_choice("BACKGROUND_JOBS", "auto", ("auto", "on", "off"))
# The settler runs in one process per database, the holder of its lease (monitoring/models.py Lease):
# a holder that is killed is replaced after this many seconds; a stopped one gives it up at once.
JOB_LEASE_SECONDS = env_float("JOB_LEASE_SECONDS", 30.0, minimum=2.0)  # > 2 ticks of the job runner
# While the settler's last pass is younger than this, pages read settled facts only (they lag the
# newest span by a pass); older, or 0, and they also compute the spans not settled yet.
SETTLE_FRESH_SECONDS = env_float("SETTLE_FRESH_SECONDS", 10.0)
# Server mode: the projects are split into this many partitions (cityHash64(ProjectId) % N), each
# settled by one `settle --loop` process at a time (its lease `settle/1of2` ...); the running settlers
# share them out. 1 = one settler per database (the lease `settle`). Every settler must use the same
# value. Embedded mode settles in its one process whatever this says.
SETTLE_PARTITIONS = env_int("SETTLE_PARTITIONS", 1, minimum=1, maximum=64)
# Independent statements of one page asked at once (monitoring/queries/parallel.py); 1 = one by one.
QUERY_THREADS = env_int("QUERY_THREADS", 2, minimum=1, maximum=16)
# Where the portal is reached, for links in notifications (Slack, webhook, email).
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://localhost:3009").rstrip("/")

# Slack and webhook channels are server-side requests that a project admin aims: by default they
# reach only addresses on the internet (monitoring/monitors/egress.py). These networks (CIDR) and host
# names are reached too: a self-hosted Slack bridge, a webhook receiver inside (issue 22).
MONITOR_CHANNEL_ALLOWED_NETWORKS = env_networks_and_hosts("MONITOR_CHANNEL_ALLOWED_NETWORKS", [])

# Email notifications of monitors: Django's SMTP backend (or EMAIL_BACKEND, e.g. the console one).
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1, maximum=300)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "monitoring@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"monitoring.store.clickhouse": {"level": env_str("CLICKHOUSE_LOG_LEVEL", "INFO")}},
}
