"""/admin/monitoring: the dashboard's tabs. The same URL serves the full page, or to htmx the panel.

`dashboard_tab` does what every tab needs: login, membership (404 for strangers), the filter bar
(400 for a bad filter) read in the viewer's time zone, ClickHouse trouble as a banner with its
hint (503/504, monitoring/store/errors.py), and rendering. A tab function only answers its question and returns its context.
"""

from __future__ import annotations

from functools import cache, wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from monitoring import access
from monitoring.models import SavedView
from monitoring.quality.models import pass_marks
from monitoring.queries import attributes as attributes_q
from monitoring.queries import facets as facets_q
from monitoring.queries import overview as overview_q
from monitoring.queries import parallel
from monitoring.queries import quality as quality_q
from monitoring.store import clickhouse, errors
from monitoring.web import cache as answers
from monitoring.web import kpis, preferences
from monitoring.web.forms import RANGES, STATUSES, FilterForm, attr_texts
from monitoring.web.views import saved_views

TABS = [("overview", _("Overview")), ("analytics", _("Analytics")), ("traces", _("Traces")), ("replay", _("Replay"))]
RANGE_LABELS = {"1h": _("1h"), "24h": _("24h"), "7d": _("7d"), "30d": _("30d")}
# The filter bar's keys, kept by every link; `scores` (the lists' chosen score columns,
# monitoring/web/score_columns.py) rides along so a choice survives a visit to another tab.
_FILTER_KEYS = (
    "range", "from", "to", "service", "model", "status", "replays", "score", "attr", "scores",
    "cost_min", "cost_max", "tokens_min", "tokens_max", "latency_min", "latency_max",
)  # fmt: skip


# The operators of `attr=` as the bar offers them.
ATTR_OP_LABELS = {
    "eq": "=",
    "ne": "≠",
    "contains": _("contains"),
    "exists": _("exists"),
    "missing": _("missing"),
    "gt": ">",
    "lt": "<",
}
RANGE_FIELDS = (
    ("cost", _("Cost (USD)"), _("A call's cost, or a run's")),
    ("tokens", _("Tokens"), _("Input plus output tokens of a call, or of a run")),
    ("latency", _("Latency (ms)"), _("A call's duration, or a run's from start to end")),
)
_PAGE_KEYS = ("kind", "sort", "q", "min_ms", "session", "user")  # a list's own keys, saved with a view


def _page_keys(request) -> dict:
    return {k: request.GET.get(k, "") for k in _PAGE_KEYS if request.GET.get(k)}


def filter_query(request, **changes) -> str:
    """The request's filter bar as a query string (with `changes`), for links that keep it."""
    pairs = [
        (k, v)
        for k in _FILTER_KEYS
        if k not in changes
        # the bar's three attribute fields travel on as one `attr=`
        for v in (attr_texts(request.GET) if k == "attr" else request.GET.getlist(k))
        if v
    ]
    pairs += [(k, x) for k, v in changes.items() if v for x in (v if isinstance(v, list) else [v])]
    return ("?" + urlencode(pairs)) if pairs else ""


@access.guarded_by("login")
@login_required
@require_GET
def home(request):
    """Pick the project: the one asked for, else the default one, else the user's first."""
    projects = list(access.projects_for(request.user))
    if not projects:
        return render(request, "monitoring/no_projects.html", status=200)
    wanted = request.GET.get("project") or settings.DEFAULT_PROJECT_ID
    project = next((p for p in projects if str(p.id) == wanted), projects[0])
    tab = request.GET.get("tab") if request.GET.get("tab") in dict(TABS) else "overview"
    query = request.GET.copy()
    for key in ("project", "tab"):
        query.pop(key, None)
    return redirect(reverse(f"monitoring:{tab}", args=[project.id]) + (f"?{query.urlencode()}" if query else ""))


@cache
def _has_panel(template: str) -> bool:
    """Whether a template has the `panel` partial htmx asks tabs for (fragments have none)."""
    try:
        get_template(template + "#panel")
    except TemplateDoesNotExist:
        return False
    return True


def dashboard_tab(tab: str, template: str | None = None, facets: bool = True):
    """Turn `fn(request, flt, membership, **kwargs) -> dict | HttpResponse` into a tab view.

    `facets=False` for fragments that show no filter bar (its choices cost a query).
    """
    template = template or f"monitoring/tabs/{tab}.html"

    def decorate(fn):
        @access.guarded_by("login")
        @login_required
        @require_GET
        @vary_on_headers("HX-Request", "HX-Target")
        @wraps(fn)
        def view(request, project_id, **kwargs):
            membership = access.get_membership(request.user, project_id)
            if tab in SavedView.TABS and not request.GET and not request.htmx:
                default = saved_views.default_url(membership, tab)  # the person's default view
                if default:
                    return redirect(default)
            zone = getattr(request, "time_zone", "UTC")  # preferences.PreferenceMiddleware
            form = FilterForm.from_query(request.GET, tz=zone)
            context = {
                "project": membership.project,
                "membership": membership,
                "projects": access.projects_for(request.user),
                "tab": tab,
                "tab_links": [
                    {
                        "key": key,
                        "label": label,
                        "url": reverse(f"monitoring:{key}", args=[membership.project_id]) + filter_query(request),
                    }
                    for key, label in TABS
                ],
                "range_links": [
                    {
                        "range": r,
                        "label": RANGE_LABELS[r],
                        "url": filter_query(request, range=r, **{"from": "", "to": ""}),
                    }
                    for r in RANGES
                ],
                "statuses": STATUSES,
                "filter_query": filter_query(request),
                "path": request.path,
                "attr_ops": ATTR_OP_LABELS,
                "range_fields": [
                    {
                        "measure": m,
                        "label": label,
                        "title": title,
                        "min": request.GET.get(f"{m}_min", ""),
                        "max": request.GET.get(f"{m}_max", ""),
                    }
                    for m, label, title in RANGE_FIELDS
                ],
                "attr_chips": [
                    {"text": text, "remove_url": filter_query(request, attr=[t for t in attrs if t != text])}
                    for attrs in [attr_texts(request.GET)]
                    for text in attrs
                ],
                # Score filters (score=<name>:<op>[:<value>]) ride along when the bar is applied, as attr chips do.
                "score_filters": [s for s in request.GET.getlist("score") if s],
                "zone_label": preferences.zone_label(zone),
            }
            if tab in SavedView.TABS:  # the bar's saved views, and what "Save view" saves
                context["saved_views"] = saved_views.for_bar(membership, tab)
                context["view_query"] = filter_query(request, **_page_keys(request))[1:]
            status = 200
            template_name = template
            if not form.is_valid():
                context["form_error"] = form.error_text()
                status = 400
            else:
                flt = form.span_filter(membership.project)
                context |= {"flt": flt, "window": flt.window}
                try:
                    if facets:  # the filter bar's choices, asked beside the tab's own questions
                        result, context["facets"] = parallel.gather(
                            flt, lambda: fn(request, flt, membership, **kwargs), lambda: facets_q.facets(flt)
                        )
                    else:
                        result = fn(request, flt, membership, **kwargs)
                    if isinstance(result, HttpResponse):
                        return result
                    if isinstance(result, tuple):  # (context, status)
                        result, status = result
                    template_name = result.pop("tab_template", template_name)  # a sub-tab with its own page
                    context |= result
                except clickhouse.ClickHouseError as exc:
                    context["trouble"] = errors.trouble(exc, request.user)
                    status = context["trouble"].status
            if request.htmx and request.htmx.target == "panel" and _has_panel(template):
                # The panel, plus the tab bar out of band so the active tab follows.
                response = render(request, template_name + "#panel", context, status=status)
                response.content += render_to_string("monitoring/_tabs.html", context | {"oob": True}, request).encode()
                return response
            return render(request, template_name, context, status=status)

        return view

    return decorate


@dashboard_tab("overview")
def overview(request, flt, membership):
    return answers.answer("page.overview", request, flt, membership, lambda: _overview(flt, membership))


def _overview(flt, membership) -> dict:
    # The cards' trend lines come with the numbers (and are dropped when the window is empty).
    marks = pass_marks(membership.project)  # here: the pool threads may not use the ORM
    (current, previous, series), (quality_now, quality_before) = parallel.gather(
        flt,
        lambda: overview_q.overview_page(flt, flt.window.previous()),
        lambda: quality_q.quality(flt, marks, (flt.window, flt.window.previous())),
    )
    cards = kpis.overview_cards(current, previous, flt.window.range, series if current.sample else None)
    quality_card = kpis.quality_card(quality_now, quality_before, flt.window.range)
    return {
        "overview": current,
        "kpis": [*cards, quality_card] if quality_card else cards,
        "top_models": current.models[:5],
        "top_services": overview_q.top_services(current),
    }


@dashboard_tab("attributes", template="monitoring/_attribute_options.html", facets=False)
def attribute_options(request, flt, membership):
    """The key picker's choices (the bar loads them when its key field is first focused): the
    project's attribute keys over the window's days with their common values."""
    keys = attributes_q.picker(flt)
    values = list(dict.fromkeys((k.key, v) for k in keys for v in k.values))
    return {"attribute_keys": keys, "attribute_values": values}
