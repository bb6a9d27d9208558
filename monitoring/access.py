"""Who may see which project. Cross-project access is a 404: a stranger cannot tell a project exists."""

from __future__ import annotations

import uuid

from django.http import Http404

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


def guarded_by(kind: str):
    """Mark a view with how it authenticates ("login", "api", "ingest_key"). `check --deploy` refuses
    a monitoring URL without a mark, so a new endpoint cannot ship open by accident."""

    def mark(view):
        view.apm_auth = kind
        return view

    return mark
