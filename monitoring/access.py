"""Who may see which project. Cross-project access is a 404: a stranger cannot tell a project exists."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpResponse, JsonResponse

from monitoring.models import ApiToken, Membership, Project


def projects_for(user):
    return Project.objects.filter(memberships__user=user).order_by("name")


def get_membership(user, project_id) -> Membership:
    """The user's membership of the project, or 404 (also for a malformed id)."""
    try:
        pid = uuid.UUID(str(project_id))
    except ValueError:
        raise Http404("No such project") from None
    if not user.is_authenticated:
        raise Http404("No such project")
    membership = Membership.objects.select_related("project").filter(project_id=pid, user=user).first()
    if membership is None:
        raise Http404("No such project")
    return membership


def token_from_bearer(header: str) -> ApiToken | None:
    """The active personal token of `Authorization: Bearer <personal token>`, or None."""
    scheme, _, secret = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    token = ApiToken.find(secret.strip())
    if token is None or not token.user.is_active:
        return None
    token.touch()
    return token


def user_from_bearer(header: str):
    """The active user behind `Authorization: Bearer <personal token>`, or None."""
    token = token_from_bearer(header)
    return token.user if token else None


def api_membership(request, user, project_id) -> Membership | HttpResponse:
    """The JSON APIs' gate for a request by `user` (a session's or a bearer token's; None: neither),
    in this order: 401 with `WWW-Authenticate: Bearer` without a user, the API's rate budget
    (monitoring/throttling.py: 429), 404 when `user` is not a member (another project's id is not
    told apart from none); else their Membership."""
    from monitoring import throttling

    if user is None:
        response = JsonResponse(
            {"error": "authentication required: log in, or send Authorization: Bearer <api token>"}, status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    limited = throttling.api_rate_limited(request)  # one budget for the whole API
    if limited:
        return limited
    try:
        return get_membership(user, project_id)
    except Http404:
        return JsonResponse({"error": "no such project"}, status=404)


def guarded_by(kind: str):
    """Mark a view with how it authenticates ("login", "api", "ingest_key"). `check --deploy` refuses
    a monitoring URL without a mark, so a new endpoint cannot ship open by accident."""

    def mark(view):
        view.apm_auth = kind
        return view

    return mark
