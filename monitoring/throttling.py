"""Who a request comes from, for login throttling (django-axes) and rate limits (django-ratelimit),
and the answers given when a limit is hit.

Behind nginx (compose) every request reaches Django from nginx's address: with
``PROXY_FORWARDS_CLIENT_IP=true`` the client is the last ``X-Forwarded-For`` entry, the one nginx
appended itself (``$proxy_add_x_forwarded_for``), which a client cannot forge. Otherwise
``REMOTE_ADDR``.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django_ratelimit.core import is_ratelimited


def client_ip(request) -> str:
    if getattr(settings, "PROXY_FORWARDS_CLIENT_IP", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def axes_client_ip(request) -> str:
    """AXES_CLIENT_IP_CALLABLE."""
    return client_ip(request)


def api_client_key(group: str, request) -> str:
    """django-ratelimit key for the read API: the bearer token (hashed), else the session's user,
    else the address — so one token's burst never spends another client's budget."""
    header = request.headers.get("Authorization", "")
    if header:
        return "token:" + hashlib.sha256(header.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return "ip:" + client_ip(request)


def api_rate_limited(request) -> JsonResponse | None:
    """The answer for an API request past `settings.API_RATE_LIMIT` (429, `{"error"}`, Retry-After),
    or None: counted per client (`api_client_key`) in one budget for the whole API, reads and the
    monitors' writes alike. Asked after authentication, so anonymous requests spend nothing."""
    if not is_ratelimited(
        request, group="api", key="monitoring.throttling.api_client_key", rate=settings.API_RATE_LIMIT, increment=True
    ):
        return None
    response = JsonResponse(
        {"error": f"rate limit exceeded ({settings.API_RATE_LIMIT} per client): retry later"}, status=429
    )
    response["Retry-After"] = "60"
    return response


def user_or_ip_key(group: str, request) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return "ip:" + client_ip(request)


def too_many_requests(request, exception=None) -> HttpResponse:
    """RATELIMIT_VIEW: 429 with Retry-After (RFC 6585), JSON for the API, text elsewhere."""
    retry_after = "60"
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {"error": "rate limit exceeded: slow down and retry after the Retry-After seconds"}, status=429
        )
    else:
        response = HttpResponse(
            _("Too many requests: this action is rate limited (re-runs spend money). Try again in a minute."),
            status=429,
            content_type="text/plain; charset=utf-8",
        )
    response["Retry-After"] = retry_after
    return response


def login_locked_out(request, credentials, *args, **kwargs) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the login page again with a clear message (429), not a bare 403."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = _(
        "Too many failed logins for this account or from this address: logins are blocked for "
        "%(minutes)s minutes. An administrator can lift the block at once "
        "(`python manage.py axes_reset_username <user>` or `axes_reset_ip <address>`)."
    ) % {"minutes": minutes}
    response = render(
        request,
        "registration/login.html",
        {"form": AuthenticationForm(request), "locked_out": message, "next": request.POST.get("next", "")},
        status=429,
    )
    response["Retry-After"] = str(minutes * 60)
    return response
