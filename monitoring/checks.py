"""`python manage.py check --deploy`: the production checklist (README, "Production checklist as code").

Django's own deploy checks (DEBUG, SECRET_KEY, ALLOWED_HOSTS, secure cookies, HSTS) run beside these.
"""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.urls import URLPattern, URLResolver, get_resolver

WEAK_PASSWORDS = {"", "password", "default", "clickhouse", "change-me", "changeme", "admin", "secret"}
MAX_TIMEOUT_SECONDS = 30.0  # the checklist's backend connection and query timeout (README, "Settings")


def _patterns(resolver, prefix=""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


@register(Tags.security, deploy=True)
def clickhouse_password(app_configs, **kwargs):
    ch = settings.CLICKHOUSE
    if ch["HOST"] and ch["PASSWORD"].lower() in WEAK_PASSWORDS:
        return [
            Warning(
                "The ClickHouse password is empty or a well-known default.",
                hint="Set CLICKHOUSE_PASSWORD (and the server's accounts) to a strong secret; never keep default/password.",
                id="monitoring.W001",
            )
        ]
    return []


@register(Tags.database, deploy=True)
def retention(app_configs, **kwargs):
    from monitoring.store import clickhouse, schema

    if settings.CLICKHOUSE["TTL_DAYS"] == 0:
        return [
            Warning(
                "No retention: CLICKHOUSE_TTL_DAYS is 0, so spans are kept forever.",
                hint="Set CLICKHOUSE_TTL_DAYS (30 days is the default) and run `manage.py clickhouse_retention --days 30`.",
                id="monitoring.W002",
            )
        ]
    try:
        ttl = schema.current_ttl()
    except clickhouse.ClickHouseError as exc:
        return [
            Warning(
                f"Could not read the otel_traces TTL from ClickHouse ({exc.kind}): {exc}",
                hint="Run the check where ClickHouse is reachable.",
                id="monitoring.W005",
            )
        ]
    if not ttl:
        return [
            Warning(
                "otel_traces has no TTL: spans are kept forever (a collector may have created the table without one).",
                hint="Run `manage.py clickhouse_retention --days 30`.",
                id="monitoring.W002",
            )
        ]
    return []


@register(Tags.database, deploy=True)
def timeouts(app_configs, **kwargs):
    ch = settings.CLICKHOUSE
    problems = []
    for key, var in (("CONNECT_TIMEOUT", "CLICKHOUSE_CONNECT_TIMEOUT"), ("QUERY_TIMEOUT", "CLICKHOUSE_QUERY_TIMEOUT")):
        if ch[key] > MAX_TIMEOUT_SECONDS:
            problems.append(
                Warning(
                    f"{var} is {ch[key]:g} s; a dashboard request could hang that long on a sick ClickHouse.",
                    hint=f"Set {var} to {MAX_TIMEOUT_SECONDS:g} s or less.",
                    id="monitoring.W003",
                )
            )
    return problems


@register(Tags.security, deploy=True)
def monitoring_endpoints_need_auth(app_configs, **kwargs):
    """Every URL the monitoring app serves must be marked with how it authenticates."""
    open_routes = [
        route for route, view in _patterns(get_resolver("monitoring.urls")) if not getattr(view, "apm_auth", None)
    ]
    return [
        Error(
            f"The monitoring endpoint /{route} is reachable without authentication.",
            hint="Wrap the view in login_required / api_view and mark it with access.guarded_by().",
            id="monitoring.E004",
        )
        for route in open_routes
    ]
