"""JSON API for monitors under /api/v1/projects/<project_id>/monitors (views/api.py's conventions).

    GET    …/monitors           list with state            session or bearer token, any member
    POST   …/monitors           create (JSON body)         bearer token of a project admin
    GET    …/monitors/<id>      one, with its open alerts  session or bearer token, any member
    PATCH  …/monitors/<id>      change the fields given    bearer token of a project admin
    DELETE …/monitors/<id>      delete                     bearer token of a project admin

Writes take a token only (no session), so no browser can be made to send them (no CSRF surface).
Answers: 401 without credentials, 404 for a project the user is not in, 403 for a viewer's write
or a session write, 400 with {"error", "fields"} for invalid input, 429 with {"error"} and
Retry-After past API_RATE_LIMIT (one budget per client with the read API: throttling.api_rate_limited).
"""

from __future__ import annotations

import json

from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from monitoring import access
from monitoring.models import Membership
from monitoring.monitors.forms import MonitorForm
from monitoring.monitors.models import Monitor

FIELDS = (
    "name",
    "metric",
    "score_name",
    "group_by",
    "window_minutes",
    "condition",
    "threshold",
    "min_samples",
    "services",
    "models",
    "status",
    "channels",
    "enabled",
)


def _error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def monitor_json(monitor: Monitor, now=None) -> dict:
    now = now or timezone.now()
    alerts = monitor.open_alerts().select_related("acknowledged_by").order_by("group")
    return {
        "id": monitor.pk,
        "name": monitor.name,
        "metric": monitor.metric,
        "score_name": monitor.score_name,
        "group_by": monitor.group_by,
        "window_minutes": monitor.window_minutes,
        "condition": monitor.condition,
        "threshold": monitor.threshold,
        "min_samples": monitor.min_samples,
        "services": list(monitor.services),
        "models": list(monitor.model_names),
        "status": monitor.status,
        "channels": [c.pk for c in monitor.channels.all()],
        "enabled": monitor.enabled,
        "muted_until": monitor.muted_until.isoformat() if monitor.muted_until and monitor.is_muted(now) else None,
        "state": monitor.state(now),
        "last_evaluated_at": monitor.last_evaluated_at.isoformat() if monitor.last_evaluated_at else None,
        "last_value": monitor.last_value,
        "last_sample": monitor.last_sample,
        "last_error": monitor.last_error,
        "firing": [
            {
                "alert_id": a.pk,
                "group": a.group,
                "since": a.opened_at.isoformat(),
                "value": a.value,
                "last_value": a.last_value,
                "acknowledged_by": a.acknowledged_by.get_username() if a.acknowledged_by else None,
                "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
            }
            for a in alerts
        ],
        "url": reverse("monitoring:monitors:detail", args=[monitor.project_id, monitor.pk]),
    }


def _authenticate(request):
    """(user, by_token) or (None, False)."""
    if "Authorization" in request.headers:
        return access.user_from_bearer(request.headers["Authorization"]), True
    return (request.user if request.user.is_authenticated else None), False


def monitor_api(fn):
    def view(request, project_id, *args, **kwargs):
        user, by_token = _authenticate(request)
        membership = access.api_membership(request, user, project_id)
        if isinstance(membership, HttpResponse):
            return membership
        if request.method != "GET":
            if not by_token:
                return _error(403, "changes need an API token (Authorization: Bearer <api token>)")
            if membership.role != Membership.ADMIN:
                return _error(403, "only project admins can change monitors")
        return fn(request, membership, *args, **kwargs)

    view.__name__ = view.__qualname__ = fn.__name__
    view.__doc__ = fn.__doc__
    return access.guarded_by("api")(csrf_exempt(view))


def _body(request) -> tuple[dict | None, JsonResponse | None]:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None, _error(400, "the body must be JSON")
    if not isinstance(data, dict):
        return None, _error(400, "the body must be a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        return None, _error(400, f"unknown fields: {', '.join(unknown)}", fields=list(FIELDS))
    return data, None


# What a new monitor gets for fields the body leaves out (the model's defaults).
DEFAULTS = {
    "condition": "above",
    "min_samples": 1,
    "window_minutes": 60,
    "group_by": "",
    "status": "",
    "score_name": "",
}


def _form_data(data: dict, base: Monitor | None) -> dict:
    current = monitor_json(base) if base else DEFAULTS
    merged = {k: current[k] for k in FIELDS if k in current} | data
    form_data = {k: v for k, v in merged.items() if k not in ("models", "enabled")}
    form_data["model_names"] = merged.get("models") or []
    form_data["services"] = merged.get("services") or []
    form_data["channels"] = merged.get("channels") or []
    if merged.get("enabled", True):  # an unchecked box is absent from a form
        form_data["enabled"] = "on"
    for key in ("group_by", "status", "score_name"):
        form_data.setdefault(key, "")
    return form_data


def _save(membership, data: dict, instance: Monitor | None, status: int, merge: bool = False) -> JsonResponse:
    """Validate with the page's form; PATCH (`merge`) keeps the fields the body leaves out."""
    form = MonitorForm(_form_data(data, instance if merge else None), instance=instance, project=membership.project)
    if not form.is_valid():
        fields = {k: [str(e) for e in v] for k, v in form.errors.items()}
        return _error(400, "invalid monitor", fields=fields)
    monitor = form.save(commit=False)
    if instance is None:
        monitor.created_by = membership.user
    monitor.save()
    form.save_m2m()
    return JsonResponse(monitor_json(monitor), status=status)


@require_http_methods(["GET", "POST"])
def _monitors(request, membership):
    if request.method == "POST":
        data, error = _body(request)
        return error or _save(membership, data or {}, None, 201)
    monitors = Monitor.objects.filter(project=membership.project).prefetch_related("channels")
    now = timezone.now()
    return JsonResponse({"items": [monitor_json(m, now) for m in monitors]})


@require_http_methods(["GET", "PATCH", "PUT", "DELETE"])
def _monitor(request, membership, pk):
    monitor = Monitor.objects.filter(project=membership.project, pk=pk).first()
    if monitor is None:
        return _error(404, "no such monitor")
    if request.method == "DELETE":
        monitor.delete()
        return HttpResponse(status=204)
    if request.method in ("PATCH", "PUT"):
        data, error = _body(request)
        return error or _save(membership, data or {}, monitor, 200, merge=request.method == "PATCH")
    return JsonResponse(monitor_json(monitor))


monitors = monitor_api(_monitors)
monitor = monitor_api(_monitor)
