"""Who a request comes from, for login throttling (django-axes) and rate limits (django-ratelimit),
the answers given when a limit is hit, and the delay of failed logins.

Behind nginx (compose) every request reaches Django from nginx's address: with
``PROXY_FORWARDS_CLIENT_IP=true`` the client is the last ``X-Forwarded-For`` entry, the one nginx
appended itself (``$proxy_add_x_forwarded_for``), which a client cannot forge. Otherwise
``REMOTE_ADDR``.
"""

from __future__ import annotations

import hashlib
import threading
import time

from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Sum
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
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
    """AXES_LOCKOUT_CALLABLE: the login page again with a clear message (429), not a bare 403.
    A lock is on an address (for one user name, or for all): never on a user everywhere."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = _(
        "Too many failed logins from this address: logins from here are blocked for %(minutes)s "
        "minutes. An administrator can lift the block at once (`python manage.py axes_reset_ip "
        "<address>`)."
    ) % {"minutes": minutes}
    response = render(
        request,
        "registration/login.html",
        {"form": AuthenticationForm(request), "locked_out": message, "next": request.POST.get("next", "")},
        status=429,
    )
    response["Retry-After"] = str(minutes * 60)
    return response


# At most this many failed logins of a process wait at once, so the delay can never take the server's
# threads (the embedded server has 8): past them a failure is answered at once, and guessing is bounded
# by the per-address locks and the password hash's own cost.
DELAY_SLOT_COUNT = 2
DELAY_SLOTS = threading.BoundedSemaphore(DELAY_SLOT_COUNT)
FIRST_DELAY_SECONDS = 0.5


def failed_login_delay(failures: int) -> float:
    """Seconds a failed login waits before it is answered, given ``failures``: the user name's failed
    logins in the last LOGIN_COOLOFF_MINUTES from every address, this one included. None below
    LOGIN_FAILURE_LIMIT (a person's own typos lock her address before they are ever slowed), then
    0.5 s doubling with each failure, at most LOGIN_DELAY_MAX_SECONDS (0: no delay). Progressive
    delays against guessing spread over many addresses: OWASP's Authentication Cheat Sheet
    ("Login Throttling"); a delay, unlike a lock, never keeps out the person with the right password."""
    limit, most = settings.AXES_FAILURE_LIMIT, settings.LOGIN_DELAY_MAX_SECONDS
    if failures < limit or most <= 0:
        return 0.0
    return min(float(most), FIRST_DELAY_SECONDS * 2 ** min(failures - limit, 32))


def recent_failures(username: str) -> int:
    """The user name's failed logins in the last LOGIN_COOLOFF_MINUTES, from every address
    (django-axes' attempts: one row per address and user agent, with its count)."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    rows = AccessAttempt.objects.filter(username=username, attempt_time__gte=since)
    return rows.aggregate(n=Sum("failures_since_start"))["n"] or 0


def delay_failed_login(sender, credentials, request=None, **kwargs) -> None:
    """``user_login_failed`` receiver (connected after django-axes' own, which records the failure):
    waits :func:`failed_login_delay` before the failure is answered. Not for an attempt refused by a
    lock (already answered 429 at once), nor when every delay slot is taken."""
    if request is None or getattr(request, "axes_locked_out", False):
        return
    username = get_client_username(request, credentials)
    if not username:
        return
    delay = failed_login_delay(recent_failures(username))
    if delay <= 0 or not DELAY_SLOTS.acquire(blocking=False):
        return
    try:
        time.sleep(delay)
    finally:
        DELAY_SLOTS.release()
