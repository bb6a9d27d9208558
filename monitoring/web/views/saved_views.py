"""Saved views: a tab with its filters, window, columns and sort, named; personal or shared with the
project; a person's default view per tab (the tab opens on it when its URL names nothing).

    GET    /api/v1/projects/<id>/views         session or bearer token -> {"items": [view, ...]}
                                                (the caller's own views and the project's shared ones)
    POST   /api/v1/projects/<id>/views         bearer token; {"name", "tab", "query", "shared",
                                                "default"?} -> 201 with the view and its `id`
    DELETE /api/v1/projects/<id>/views/<vid>    bearer token of its owner or a project admin -> 204

A view is {"id", "name", "tab", "query", "shared", "owner", "mine", "default", "url", "created"}.
Answers: 401 without credentials; 404 for a project the caller is not in, or a view they cannot see
(another member's personal view); 403 for a session write, or deleting a shared view of another
member without being a project admin; 400 {"error", "field"} for an unknown tab, a query too long,
a bad filter in the query (monitoring/web/forms.py `saved_view_fields`).

The filter bar's buttons post to the `save`, `delete` and `make_default` pages (session + CSRF).
"""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from monitoring import access
from monitoring.models import DefaultView, Membership, SavedView
from monitoring.queries.filter import iso
from monitoring.web.forms import SavedViewError, saved_view_fields
from monitoring.web.views.api import token_api


def visible(membership: Membership, tab: str | None = None):
    """The views `membership`'s person may see: their own and the project's shared ones."""
    views = SavedView.objects.filter(project_id=membership.project_id).filter(
        Q(owner_id=membership.user_id) | Q(shared=True)
    )
    return views.filter(tab=tab) if tab else views


def default_ids(membership: Membership) -> set[int]:
    return set(
        DefaultView.objects.filter(user_id=membership.user_id, project_id=membership.project_id).values_list(
            "view_id", flat=True
        )
    )


def url_of(view: SavedView) -> str:
    """The tab's page with the view's query."""
    return reverse(f"monitoring:{view.tab}", args=[view.project_id]) + (f"?{view.query}" if view.query else "")


def as_dict(view: SavedView, membership: Membership, defaults: set[int]) -> dict:
    return {
        "id": view.id,
        "name": view.name,
        "tab": view.tab,
        "query": view.query,
        "shared": view.shared,
        "owner": view.owner.get_username(),
        "mine": view.owner_id == membership.user_id,
        "default": view.id in defaults,
        "url": url_of(view),
        "created": iso(view.created),
    }


def may_delete(view: SavedView, membership: Membership) -> bool:
    return view.owner_id == membership.user_id or membership.role == Membership.ADMIN


def set_default(view: SavedView, membership: Membership) -> None:
    DefaultView.objects.update_or_create(
        user_id=membership.user_id, project_id=membership.project_id, tab=view.tab, defaults={"view": view}
    )


def default_url(membership: Membership, tab: str) -> str:
    """The URL of the person's default view of `tab` ('' when none, or when it names no query)."""
    found = (
        DefaultView.objects.filter(user_id=membership.user_id, project_id=membership.project_id, tab=tab)
        .select_related("view")
        .first()
    )
    return url_of(found.view) if found and found.view.query else ""


def for_bar(membership: Membership, tab: str) -> list[dict]:
    """The views the filter bar lists for `tab`, each as `as_dict` gives it."""
    defaults = default_ids(membership)
    return [as_dict(v, membership, defaults) for v in visible(membership, tab).select_related("owner")]


# --- the API ----------------------------------------------------------------------------------------


def _error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


@token_api
def api_views(request, membership, _token):
    """GET: the caller's views and the project's shared ones; POST: a new view (the module's note)."""
    if request.method == "GET":
        defaults = default_ids(membership)
        views = visible(membership).select_related("owner").order_by("tab", "name", "id")
        return JsonResponse({"items": [as_dict(v, membership, defaults) for v in views]})
    if request.method != "POST":
        return _error(405, "use GET or POST")
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body must be a JSON object", field="")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object", field="")
    try:
        fields = saved_view_fields(body)
    except SavedViewError as exc:
        return _error(400, str(exc), field=exc.field)
    if not isinstance(body.get("default", False), bool):
        return _error(400, "'default' must be true or false", field="default")
    view = SavedView.objects.create(project_id=membership.project_id, owner_id=membership.user_id, **fields)
    if body.get("default"):
        set_default(view, membership)
    return JsonResponse(as_dict(view, membership, default_ids(membership)), status=201)


@token_api
def api_view(request, membership, _token, view_id):
    """DELETE one view: by its owner or a project admin (the module's note)."""
    if request.method != "DELETE":
        return _error(405, "use DELETE")
    view = visible(membership).filter(id=view_id).first()
    if view is None:
        return _error(404, "no such view (or it is another member's personal view)")
    if not may_delete(view, membership):
        return _error(403, "only the view's owner or a project admin may delete a shared view")
    view.delete()
    return HttpResponse(status=204)


# --- the filter bar's buttons -------------------------------------------------------------------------


@access.guarded_by("login")
@login_required
@require_POST
def save(request, project_id):
    """Save the page the bar is on (`tab`, `query`), named, personal or shared, maybe as the default;
    back to the view, or to the page with the error."""
    membership = access.get_membership(request.user, project_id)
    data = {
        "name": request.POST.get("name", ""),
        "tab": request.POST.get("tab", ""),
        "query": request.POST.get("query", ""),
        "shared": request.POST.get("shared") == "1",
    }
    try:
        fields = saved_view_fields(data)
    except SavedViewError as exc:
        text = _("The view was not saved: %(error)s") % {"error": exc}
        return HttpResponse(text, status=400, content_type="text/plain; charset=utf-8")  # it quotes the input
    view = SavedView.objects.create(project_id=membership.project_id, owner_id=membership.user_id, **fields)
    if request.POST.get("default") == "1":
        set_default(view, membership)
    return redirect(url_of(view))


@access.guarded_by("login")
@login_required
@require_POST
def delete(request, project_id, view_id):
    membership = access.get_membership(request.user, project_id)
    view = get_object_or_404(visible(membership), id=view_id)
    if not may_delete(view, membership):
        text = _("Only the view's owner or a project admin may delete it.")
        return HttpResponse(text, status=403, content_type="text/plain; charset=utf-8")
    tab = view.tab
    view.delete()
    return redirect(reverse(f"monitoring:{tab}", args=[membership.project_id]) + "?range=24h")


@access.guarded_by("login")
@login_required
@require_POST
def make_default(request, project_id, view_id):
    """The view becomes the person's default of its tab; again on their default: no default."""
    membership = access.get_membership(request.user, project_id)
    view = get_object_or_404(visible(membership), id=view_id)
    if view.id in default_ids(membership):
        DefaultView.objects.filter(user_id=membership.user_id, project_id=membership.project_id, tab=view.tab).delete()
    else:
        set_default(view, membership)
    return redirect(url_of(view))
