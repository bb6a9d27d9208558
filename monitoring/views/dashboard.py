"""/admin/monitoring: the dashboard pages. The same URL serves the full page, or to htmx the panel."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from monitoring import access, clickhouse, queries
from monitoring.forms import RANGES, WindowForm

CLICKHOUSE_HINTS = {
    clickhouse.UNAVAILABLE: (
        "ClickHouse is not reachable. Check it: `docker compose ps monitoring-clickhouse` and "
        "`curl http://localhost:8124/ping`; restart it with `docker compose restart monitoring-clickhouse`; "
        "check the table exists: `SHOW TABLES FROM otel_2`."
    ),
    clickhouse.TIMEOUT: (
        "ClickHouse did not answer within the query timeout (CLICKHOUSE_QUERY_TIMEOUT). "
        "Try a shorter time window, or check the server's load."
    ),
    clickhouse.QUERY: (
        "ClickHouse rejected the query. If the table is missing or old, run `python manage.py clickhouse_init`; "
        "check it with `SHOW TABLES FROM otel_2`."
    ),
}


def _window_query(request) -> str:
    keep = {k: request.GET[k] for k in ("range", "from", "to") if request.GET.get(k)}
    return ("?" + urlencode(keep)) if keep else ""


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
    return redirect(reverse("monitoring:overview", args=[project.id]) + _window_query(request))


def _render_tab(request, membership, tab: str, context: dict, status: int = 200):
    template = "monitoring/dashboard.html"
    if request.htmx and request.htmx.target == "panel":
        template += f"#{tab}-panel"
    context = {
        "project": membership.project,
        "membership": membership,
        "projects": access.projects_for(request.user),
        "tab": tab,
        "ranges": list(RANGES),
        "window_query": _window_query(request),
        **context,
    }
    return render(request, template, context, status=status)


@access.guarded_by("login")
@login_required
@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def overview(request, project_id):
    membership = access.get_membership(request.user, project_id)
    form = WindowForm.from_query(request.GET)
    if not form.is_valid():
        return _render_tab(request, membership, "overview", {"form_error": form.error_text()}, status=400)
    window = form.cleaned_data["window"]
    try:
        current = queries.overview(membership.project_id, window)
        previous = queries.overview(membership.project_id, window.previous())
    except clickhouse.ClickHouseError as exc:
        return _render_tab(
            request, membership, "overview",
            {"window": window, "clickhouse_error": exc, "hint": CLICKHOUSE_HINTS[exc.kind]}, status=503,
        )  # fmt: skip
    kpis = [
        ("Total Cost", f"${current.total_cost_usd:,.4f}", queries.change(current.total_cost_usd, previous.total_cost_usd), "up-bad"),
        ("LLM Calls", f"{current.llm_calls:,}", queries.change(current.llm_calls, previous.llm_calls), "neutral"),
        ("Agent Calls", f"{current.agent_calls:,}", queries.change(current.agent_calls, previous.agent_calls), "neutral"),
        ("Avg Latency", f"{current.avg_latency_ms:,.0f} ms", queries.change(current.avg_latency_ms, previous.avg_latency_ms), "up-bad"),
        ("Fail Rate", f"{current.fail_rate:.2%}", queries.change(current.fail_rate, previous.fail_rate), "up-bad"),
    ]  # fmt: skip
    kpis = [(label, value, None if delta is None else delta * 100, sense) for label, value, delta, sense in kpis]
    return _render_tab(request, membership, "overview", {"window": window, "overview": current, "kpis": kpis})
