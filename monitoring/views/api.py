"""JSON read API under /api/v1/projects/<project_id>/: session login or a personal bearer token."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.http import Http404, JsonResponse
from django.views.decorators.http import require_GET
from django_ratelimit.core import is_ratelimited

from monitoring import access, clickhouse, queries
from monitoring.forms import FilterForm


def _error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def api_view(fn):
    """Authenticate (session or bearer token), check membership (404), and turn failures into JSON."""

    @wraps(fn)
    def wrapper(request, project_id, *args, **kwargs):
        user = request.user if request.user.is_authenticated else None
        if "Authorization" in request.headers:
            user = access.user_from_bearer(request.headers["Authorization"])
        if user is None:
            response = _error(401, "authentication required: log in, or send Authorization: Bearer <api token>")
            response["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
        if is_ratelimited(
            request,
            group="api",
            key="monitoring.throttling.api_client_key",
            rate=settings.API_RATE_LIMIT,
            increment=True,
        ):
            response = _error(429, f"rate limit exceeded ({settings.API_RATE_LIMIT} per client): retry later")
            response["Retry-After"] = "60"
            return response
        try:
            membership = access.get_membership(user, project_id)
        except Http404:
            return _error(404, "no such project")
        try:
            return fn(request, membership, *args, **kwargs)
        except clickhouse.ClickHouseError as exc:
            status = 504 if exc.kind == clickhouse.TIMEOUT else 503
            response = _error(status, f"ClickHouse {exc.kind}: {exc}", kind=exc.kind)
            response["Retry-After"] = "5"
            return response

    return access.guarded_by("api")(require_GET(wrapper))


def filter_or_400(request, membership):
    """The filter bar's parameters (from, to, range, service, model, status), or a 400 answer."""
    form = FilterForm.from_query(request.GET)
    if not form.is_valid():
        return None, _error(400, form.error_text())
    return form.span_filter(membership.project), None


@api_view
def overview(request, membership):
    flt, error = filter_or_400(request, membership)
    if error:
        return error
    data = queries.overview(flt).as_dict()
    data["from"] = flt.window.start.isoformat()
    data["to"] = flt.window.end.isoformat()
    return JsonResponse(data)
