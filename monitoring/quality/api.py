"""JSON API for scores under /api/v1/projects/<project_id>/scores (views/api.py's conventions).

    GET    …/scores?trace_id=…|session_id=…|name=…&from=…&to=…   session or bearer token, any member
    POST   …/scores        {trace_id, span_id?, session_id?, name, value?, label?, comment?, id?}
                           bearer token of any member -> 201 with the score
    DELETE …/scores/<id>   bearer token that wrote it, or a project admin's -> 204

With a `trace_id` or `session_id`, GET answers every score of it whatever its time (`from`/`to`
narrow it when given); with only a `name`, the last 30 days unless `from`/`to` say otherwise.
Writes take a token only (no session), so no browser can be made to send them (no CSRF surface).
Answers: 401 without credentials, 404 for a project the user is not in (or a score not in it), 403
for a session write or another token's score, 400 {"error", "field"} naming the field that is wrong,
429 past the read API's rate limit.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo

from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from monitoring.models import Membership
from monitoring.quality import scores as writes
from monitoring.queries import scores as scores_q
from monitoring.queries.filter import iso
from monitoring.store.sql import to_nanos
from monitoring.web import preferences
from monitoring.web.views.api import token_api

FIELDS = ("trace_id", "span_id", "session_id", "name", "value", "label", "comment", "id")
NAME_ONLY_DAYS = 30
MAX_ITEMS = 1000
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def _error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _instant(request, key: str, zone: str) -> tuple[dt.datetime | None, JsonResponse | None]:
    raw = request.GET.get(key, "").strip()
    if not raw:
        return None, None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None, _error(400, f"'{key}' must be an ISO 8601 time", field=key)
    if value.tzinfo is None:  # a time without an offset is in the `tz` zone (views/api.py's rule)
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return value, None


def _list(request, membership):
    zone = preferences.valid_zone(request.GET.get("tz", "").strip() or "UTC")
    if zone is None:
        return _error(400, "unknown time zone: use an IANA name such as Asia/Seoul", field="tz")
    trace_id = request.GET.get("trace_id", "").strip().lower()
    session_id = request.GET.get("session_id", "").strip()
    name = request.GET.get("name", "").strip()
    if trace_id and not re.fullmatch(r"[0-9a-f]{32}", trace_id):
        return _error(400, "'trace_id' must be 32 hex digits", field="trace_id")
    if not (trace_id or session_id or name):
        return _error(400, "give a 'trace_id', a 'session_id' or a 'name'", field="trace_id")
    start, error = _instant(request, "from", zone)
    if error:
        return error
    end, error = _instant(request, "to", zone)
    if error:
        return error
    if not (trace_id or session_id) and start is None:
        start = (end or timezone.now()) - dt.timedelta(days=NAME_ONLY_DAYS)
    found = scores_q.listing(
        str(membership.project_id),
        trace_id=trace_id,
        session_id=session_id,
        name=name,
        start_ns=to_nanos(start) if start else None,
        end_ns=to_nanos(end) if end else None,
        limit=MAX_ITEMS,
    )
    data: dict[str, object] = {"items": [s.as_dict(zone) for s in found]}
    if start is not None:
        data["from"] = iso(start, zone)
    if end is not None:
        data["to"] = iso(end, zone)
    return JsonResponse(data)


def _create(request, membership, token):
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body must be JSON", field="body")
    if not isinstance(data, dict):
        return _error(400, "the body must be a JSON object", field="body")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        return _error(400, f"unknown fields: {', '.join(unknown)}", field=unknown[0], fields=list(FIELDS))
    for key in ("trace_id", "span_id", "session_id", "name", "label", "comment", "id"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            return _error(400, f"{key}: must be a string", field=key)
    client_id = (data.get("id") or "").strip()
    if client_id and not _CLIENT_ID.fullmatch(client_id):
        return _error(400, "id: 1-100 letters, digits or ._:-", field="id")
    target = writes.Target(
        (data.get("trace_id") or "").strip().lower(),
        (data.get("span_id") or "").strip().lower(),
        (data.get("session_id") or "").strip(),
    )
    project_id = str(membership.project_id)
    try:
        score = writes.record(
            membership.project,
            target,
            data.get("name") or "",
            value=data.get("value"),
            label=data.get("label") or "",
            comment=data.get("comment") or "",
            source=writes.API,
            author=f"token:{token.pk}",
            score_id=writes._id("api", project_id, client_id) if client_id else "",
        )
    except ValueError as exc:
        field, _, _rest = str(exc).partition(":")
        return _error(400, str(exc), field=field if field in FIELDS else "body")
    return JsonResponse(score.as_dict(), status=201)


@require_http_methods(["GET", "POST"])
def _scores(request, membership, token):
    if request.method == "POST":
        return _create(request, membership, token)
    return _list(request, membership)


@require_http_methods(["DELETE"])
def _score(request, membership, token, score_id):
    score = scores_q.get(str(membership.project_id), score_id) if re.fullmatch(r"[0-9a-f]{32}", score_id) else None
    if score is None:
        return _error(404, "no such score")
    if score.author != f"token:{token.pk}" and membership.role != Membership.ADMIN:
        return _error(403, "a token may delete only the scores it wrote (or a project admin's token any)")
    writes.delete(str(membership.project_id), score)
    return HttpResponse(status=204)


scores = token_api(_scores)
score = token_api(_score)
