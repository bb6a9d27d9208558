"""ClickHouse trouble as people see it: one place that turns a ClickHouseError into what a page, a
banner or the API says, and its HTTP status.

ClickHouse's own words (`Code: 457 …`, `Connection refused (127.0.0.1:19000)`) name hosts, ports,
tables and queries: they go to the portal's log under a short error id, and only staff see them on
the page. Everyone gets what went wrong in plain words, a hint for it (README, "Troubleshooting"),
and the id to quote to an administrator.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from monitoring.store import clickhouse

log = logging.getLogger(__name__)

HINTS = {
    clickhouse.UNAVAILABLE: gettext_lazy(
        "ClickHouse is not reachable. Check it: `docker compose ps monitoring-clickhouse` and "
        "`curl http://localhost:8124/ping`; restart it with `docker compose restart monitoring-clickhouse`; "
        "check the table exists: `SHOW TABLES FROM otel_2`."
    ),
    clickhouse.TIMEOUT: gettext_lazy(
        "ClickHouse did not answer within the query timeout (CLICKHOUSE_QUERY_TIMEOUT). "
        "Try a shorter time window, or check the server's load."
    ),
    clickhouse.QUERY: gettext_lazy(
        "ClickHouse rejected the query. If the table is missing or old, run `python manage.py clickhouse_init`; "
        "check it with `SHOW TABLES FROM otel_2`."
    ),
}
TITLES = {
    clickhouse.UNAVAILABLE: gettext_lazy("ClickHouse is unavailable"),
    clickhouse.TIMEOUT: gettext_lazy("ClickHouse timed out"),
    clickhouse.QUERY: gettext_lazy("ClickHouse rejected the query"),
}


@dataclass(frozen=True)
class Trouble:
    """What to say about one ClickHouse error. `detail` is ClickHouse's own message for staff, else
    a sentence with the error id (the log has the message under it)."""

    kind: str  # clickhouse.UNAVAILABLE, TIMEOUT or QUERY
    status: int  # 504 for a timeout, else 503
    title: str
    hint: str
    error_id: str
    detail: str

    @property
    def text(self) -> str:
        """One line: title, detail and hint."""
        return f"{self.title}: {self.detail} {self.hint}"


def trouble(exc: clickhouse.ClickHouseError, user=None) -> Trouble:
    """Log `exc` under a new error id and describe it for `user` (staff see ClickHouse's message)."""
    error_id = secrets.token_hex(4)
    log.warning("clickhouse error %s tag=%s kind=%s code=%s: %s", error_id, exc.tag, exc.kind, exc.code, exc)
    staff = bool(getattr(user, "is_staff", False))
    if staff:
        detail = _("%(message)s (error id %(id)s)") % {"message": exc, "id": error_id}
    else:
        detail = _("error id %(id)s; an administrator finds the details in the portal's log.") % {"id": error_id}
    return Trouble(
        kind=exc.kind,
        status=504 if exc.kind == clickhouse.TIMEOUT else 503,
        title=str(TITLES.get(exc.kind, TITLES[clickhouse.QUERY])),
        hint=str(HINTS.get(exc.kind, HINTS[clickhouse.QUERY])),
        error_id=error_id,
        detail=detail,
    )


def json_response(exc: clickhouse.ClickHouseError, user=None) -> JsonResponse:
    """The API's answer: {"error", "kind", "error_id", "hint"} with 503/504 and Retry-After."""
    t = trouble(exc, user)
    response = JsonResponse(
        {"error": f"{t.title}: {t.detail}", "kind": t.kind, "error_id": t.error_id, "hint": t.hint}, status=t.status
    )
    response["Retry-After"] = "5"
    return response


def text_response(exc: clickhouse.ClickHouseError, user=None) -> HttpResponse:
    """A fragment's or a download's answer (htmx shows it as it is): one line of text, 503/504."""
    t = trouble(exc, user)
    return HttpResponse(t.text, status=t.status, content_type="text/plain")
