"""/admin/monitoring/tokens: a person's own API tokens for the read API (and the scores and monitors
APIs' writes): made here — the secret is shown once, only its digest is kept — listed with when each
was last used, and revoked. `manage.py create_api_token` does the same for an operator."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from monitoring import access
from monitoring.models import ApiToken

NAME_CHARS = 100


@access.guarded_by("login")
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request):
    """GET: the person's tokens; POST (`name`): a new one, its secret on this answer only."""
    secret, error = "", ""
    if request.method == "POST":
        name = (request.POST.get("name") or "").strip()
        if len(name) > NAME_CHARS:
            error = f"{NAME_CHARS}"
        else:
            _token, secret = ApiToken.issue(request.user, name=name)
    mine = ApiToken.objects.filter(user=request.user).order_by("-created")
    response = render(
        request,
        "monitoring/tokens.html",
        {"tokens": mine, "secret": secret, "name_too_long": error, "name_chars": NAME_CHARS},
        status=400 if error else 200,
    )
    response["Cache-Control"] = "no-store"  # a page that shows a secret is never cached
    return response


@access.guarded_by("login")
@login_required
@require_POST
def revoke(request, pk: int):
    """Revoke one of the person's own tokens (another person's is a 404)."""
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if token.revoked is None:
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
    return redirect("monitoring:tokens")
