"""/admin/monitoring/preferences: the viewer's language and time zone.

POST from anyone sets their own cookies (the login page's language switcher, the browser's zone
reported by static/monitoring/preferences.js); a signed-in person's choice is also saved, so it
follows them to another browser. GET (the page with both choices) needs a login.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from monitoring import access
from monitoring.models import UserPreference
from monitoring.web import preferences
from monitoring.web.forms import PreferenceForm


def _next_url(request) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return wanted
    return reverse("monitoring:home")


def _cookie(response, name: str, value: str) -> None:
    if value:
        response.set_cookie(
            name,
            value,
            max_age=preferences.COOKIE_MAX_AGE,
            samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=name != preferences.TZ_COOKIE,  # the page's script reads the zone it reported
        )
    else:
        response.delete_cookie(name, samesite="Lax")


def _save(user, data: dict) -> None:
    pref, _created = UserPreference.objects.get_or_create(user=user)
    fields = []
    if "language" in data:
        pref.language = data["language"]
        fields.append("language")
    from_browser = data["source"] == "browser"
    if "time_zone" in data and not (from_browser and pref.time_zone_chosen):  # a picked zone is kept
        pref.time_zone = data["time_zone"]
        pref.time_zone_chosen = bool(data["time_zone"]) and not from_browser
        fields += ["time_zone", "time_zone_chosen"]
    if fields:
        pref.save(update_fields=fields)


@access.guarded_by("public")  # POST sets only the sender's own preferences; GET needs a login
@require_http_methods(["GET", "POST"])
def preferences_view(request):
    if request.method == "GET":
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        pref = getattr(request, "preference", None)
        return render(
            request,
            "monitoring/preferences.html",
            {
                "form_language": pref.language if pref else "",
                "form_time_zone": pref.time_zone if pref and pref.time_zone_chosen else "",
                "zones": preferences.zone_names(),
                "next": _next_url(request),
            },
        )
    form = PreferenceForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(str(e) for errs in form.errors.values() for e in errs)
        return HttpResponse(_("Bad preference: %(errors)s") % {"errors": errors}, status=400, content_type="text/plain")
    # Only the fields the request sent: the language switcher does not reset the zone, and so on.
    data = {k: form.cleaned_data[k] for k in ("language", "time_zone") if k in request.POST}
    data["source"] = form.cleaned_data["source"]
    if request.user.is_authenticated:
        _save(request.user, data)
    response = HttpResponse(status=204) if data["source"] == "browser" else HttpResponseRedirect(_next_url(request))
    if "language" in data:
        _cookie(response, settings.LANGUAGE_COOKIE_NAME, data["language"])
    if "time_zone" in data:
        _cookie(response, preferences.TZ_COOKIE, data["time_zone"])
    return response
