"""JSON read API under /api/v1/projects/<project_id>/: session login or a personal bearer token.

Times are ISO 8601 with their offset. `tz=<IANA zone>` (default UTC) says which zone the answer's
times are written in, which zone a `from`/`to` without an offset means, and which zone's days the
buckets follow; an unknown zone is a 400.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import wraps

from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from monitoring import access
from monitoring.quality.models import pass_marks
from monitoring.queries import attributes as attributes_q
from monitoring.queries import overview as overview_q
from monitoring.queries import parallel
from monitoring.queries import quality as quality_q
from monitoring.queries.filter import iso
from monitoring.store import clickhouse, errors
from monitoring.web import cache as answers
from monitoring.web import preferences
from monitoring.web.forms import FilterForm


def _error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def token_api(fn):
    """For the API's writes (scores, saved views): authenticate (session or bearer token; a change
    needs a token, so no CSRF surface), check membership (404), rate limit in the read API's budget,
    and turn ClickHouse trouble into its JSON answer. Calls fn(request, membership, token, ...)."""

    def view(request, project_id, *args, **kwargs):
        token = None
        if "Authorization" in request.headers:
            token = access.token_from_bearer(request.headers["Authorization"])
            user = token.user if token else None
        else:
            user = request.user if request.user.is_authenticated else None
        membership = access.api_membership(request, user, project_id)
        if isinstance(membership, HttpResponse):
            return membership
        if request.method != "GET" and token is None:
            return _error(403, "changes need an API token (Authorization: Bearer <api token>)")
        try:
            return fn(request, membership, token, *args, **kwargs)
        except clickhouse.ClickHouseError as exc:
            return errors.json_response(exc, user)

    view.__name__ = view.__qualname__ = fn.__name__
    view.__doc__ = fn.__doc__
    return access.guarded_by("api")(csrf_exempt(view))


def api_view(fn):
    """Authenticate (session or bearer token), check membership (404), and turn failures into JSON."""

    @wraps(fn)
    def wrapper(request, project_id, *args, **kwargs):
        user = request.user if request.user.is_authenticated else None
        if "Authorization" in request.headers:
            user = access.user_from_bearer(request.headers["Authorization"])
        membership = access.api_membership(request, user, project_id)
        if isinstance(membership, HttpResponse):
            return membership
        try:
            return fn(request, membership, *args, **kwargs)
        except clickhouse.ClickHouseError as exc:
            return errors.json_response(exc, user)

    return access.guarded_by("api")(require_GET(wrapper))


def zone_or_400(request):
    """The `tz=` parameter (default UTC), or a 400 answer for a zone the tz database does not know."""
    asked = request.GET.get("tz", "").strip()
    if not asked:
        return "UTC", None
    zone = preferences.valid_zone(asked)
    if zone is None:
        return None, _error(400, _("unknown time zone %(zone)r: use an IANA name such as Asia/Seoul") % {"zone": asked})
    return zone, None


def filter_or_400(request, membership):
    """The filter bar's parameters (from, to, range, service, model, status, tz), or a 400 answer."""
    zone, error = zone_or_400(request)
    if error:
        return None, error
    form = FilterForm.from_query(request.GET, tz=zone)
    if not form.is_valid():
        return None, _error(400, form.error_text())
    return form.span_filter(membership.project), None


@api_view
def overview(request, membership):
    flt, error = filter_or_400(request, membership)
    if error:
        return error
    return JsonResponse(answers.answer("api.overview", request, flt, membership, lambda: _overview(flt, membership)))


def _overview(flt, membership) -> dict:
    marks = pass_marks(membership.project)  # here: the pool threads may not use the ORM
    found, (quality_now, quality_before) = parallel.gather(
        flt,
        lambda: overview_q.overview(flt),
        lambda: quality_q.quality(flt, marks, (flt.window, flt.window.previous())),
    )
    data = found.as_dict()
    # Added beside the existing fields: the quality card's numbers, and the previous window's.
    data["quality"] = quality_now.as_dict() | {"previous": quality_before.as_dict()}
    data["from"] = iso(flt.window.start, flt.tz)
    data["to"] = iso(flt.window.end, flt.tz)
    data["tz"] = flt.tz
    return data


@api_view
def attributes(request, membership):
    """The key picker: {"items": [{"key", "spans", "resource", "values"}]}, the project's span and
    resource attribute keys over the window's days, commonest first (monitoring/queries/attributes.py)."""
    flt, error = filter_or_400(request, membership)
    if error:
        return error
    return JsonResponse({"items": [asdict(k) for k in attributes_q.picker(flt)]})
