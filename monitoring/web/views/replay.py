"""The Replay tab: step through a recorded run, re-run an LLM call through the gateway, compare runs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseForbidden
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_ratelimit.decorators import ratelimit

from monitoring import access
from monitoring.queries import facets as facets_q
from monitoring.queries import runs as runs_q
from monitoring.queries.filter import BadQuery
from monitoring.replay import compare as compare_runs
from monitoring.replay import forms as rerun_forms
from monitoring.replay import rerun as reruns
from monitoring.replay import steps as runs
from monitoring.store import clickhouse, errors
from monitoring.web.views.dashboard import dashboard_tab, filter_query

SPEEDS = [("0.5", "0.5×"), ("1", "1×"), ("2", "2×"), ("4", "4×")]


PICKER_PAGE = 20  # runs a page of the picker shows


def _picker(request, flt, membership, chosen=(), bar: bool = True) -> dict:
    """The runs of the window as the filter bar narrows them, searched (`q=`: the start of a trace
    id, or a part of a span's name, service, session or end user), a page at a time (`cursor=`),
    each with a Replay link and a checkbox; two ticked ones are compared. With `bar`, the filter
    bar's choices too (asked here, not by `dashboard_tab`: a run being played shows no bar)."""
    pid = membership.project_id
    base = reverse("monitoring:replay", args=[pid])
    q = request.GET.get("q", "").strip()
    context = {
        "q": q,
        "chosen": list(chosen),
        "compare_url": reverse("monitoring:replay-compare", args=[pid]),
        "replay_url": base,
        "filter_hidden": [
            (k, v) for k, values in flt.query().items() for v in ([values] if isinstance(values, str) else values)
        ],
    }
    try:
        if len(q) > 500:
            raise BadQuery(_("A search is at most 500 characters."))
        cursor = runs_q.RunCursor.decode(request.GET["cursor"]) if request.GET.get("cursor") else None
    except BadQuery as exc:
        return context | {"form_error": str(exc), "recent": []}
    page = runs.recent_runs(flt, PICKER_PAGE, q=q, cursor=cursor)
    if bar:
        context["facets"] = facets_q.facets(flt)
    return context | {
        "recent": page.items,
        "older_url": base + filter_query(request, q=q, cursor=page.next_cursor) if page.next_cursor else "",
        "first_page_url": base + filter_query(request, q=q) if cursor else "",
        "clear_search_url": base + filter_query(request) if q else "",
    }


def _with_status(context: dict, status: int = 200) -> tuple[dict, int]:
    """The page and its status: a 400 when the picker's own parameters were wrong."""
    return context, 400 if "form_error" in context and status == 200 else status


def _step_url(request, trace_id: str, index: int) -> str:
    query = {"trace": trace_id, "step": index}
    if request.GET.get("all") == "1":
        query["all"] = "1"
    if request.GET.get("range"):
        query["range"] = request.GET["range"]
    return f"{request.path}?{urlencode(query)}"


@dashboard_tab("replay", facets=False)  # the picker asks for the bar's choices; a run shows no bar
def replay(request, flt, membership):
    """A run played step by step (`trace=`: its id, or the start of it), else the run picker."""
    typed = request.GET.get("trace", "").strip()
    if not typed:
        return _with_status(_picker(request, flt, membership))
    found = runs.find_trace(membership.project, typed)
    if found.error:
        return _with_status(_picker(request, flt, membership) | _lookup_failed(request, found), found.status)
    trace_id = found.trace_id
    every_span = request.GET.get("all") == "1"
    run = runs.load_run(membership.project, trace_id, every_span=every_span)
    if run is None:
        error = _("No trace %(trace)s in this project.") % {"trace": trace_id}
        return _picker(request, flt, membership) | {"lookup_error": error, "trace_id": trace_id}, 404
    span_id = request.GET.get("span", "")
    if span_id and "step" not in request.GET:
        # A link from Traces names the span: start there (showing every span if it is plumbing).
        index = next((s.index for s in run.steps if s.span.span_id == span_id), 0)
        if not index and not every_span:
            run = runs.load_run(membership.project, trace_id, every_span=True) or run
            index = next((s.index for s in run.steps if s.span.span_id == span_id), 1)
        index = index or 1
    else:
        try:
            index = min(max(int(request.GET.get("step", "1")), 1), len(run.steps))
        except ValueError:
            index = 1
    step = run.steps[index - 1]
    return {
        "run": run,
        "step": step,
        "trace_id": trace_id,
        "step_links": [(s, _step_url(request, trace_id, s.index)) for s in run.steps],
        "prev_url": _step_url(request, trace_id, index - 1) if index > 1 else "",
        "next_url": _step_url(request, trace_id, index + 1) if index < len(run.steps) else "",
        "all_url": f"{request.path}?{urlencode({'trace': trace_id, 'all': '0' if request.GET.get('all') == '1' else '1'})}",
        "editor": rerun_forms.initial(step) if step.rerunnable else None,
        "can_rerun": membership.role == membership.ADMIN,
        "speeds": SPEEDS,
        "rerun_url": reverse("monitoring:replay-rerun", args=[membership.project_id]),
    }


def _lookup_failed(request, found: runs.Lookup) -> dict:
    """What the page says of a trace id it could not take, with a link per candidate."""
    links = [(t, f"{request.path}?{urlencode({'trace': t})}") for t in found.candidates]
    return {"lookup_error": found.error, "trace_id": request.GET.get("trace", "").strip()[:100], "candidates": links}


@dashboard_tab("replay", template="monitoring/tabs/replay_compare.html", facets=False)
def compare(request, flt, membership):
    """Two runs side by side: ticked in the list (`run`, twice), or named as `a` and `b` (links)."""
    picked = [t.strip().lower() for t in request.GET.getlist("run") if t.strip()]
    if picked:
        a, b = (picked + ["", ""])[:2]
    else:
        a, b = request.GET.get("a", "").strip().lower(), request.GET.get("b", "").strip().lower()
    context = _picker(request, flt, membership, chosen=[t for t in (a, b) if t], bar=False) | {"a": a, "b": b}
    if picked and (len(picked) != 2 or a == b):
        return context | {"lookup_error": _("Tick two different runs to compare them.")}, 400
    if not a or not b:
        return _with_status(context)
    named = []
    for typed in (a, b):  # a short id (the start of one) names its run
        found = runs.find_trace(membership.project, typed)
        if found.error:
            return context | {"lookup_error": found.error}, found.status
        named.append(found.trace_id)
    a, b = named
    context |= {"a": a, "b": b, "chosen": named}
    run_a, run_b = runs.load_run(membership.project, a), runs.load_run(membership.project, b)
    if run_a is None or run_b is None:
        missing = [t for t, r in ((a, run_a), (b, run_b)) if r is None]
        error = _("No trace %(trace)s in this project.") % {"trace": _(" or ").join(missing)}
        return context | {"lookup_error": error}, 404
    return context | {"run_a": run_a, "run_b": run_b, "pairs": compare_runs.compare(run_a, run_b)}


@access.guarded_by("login")
@login_required
@require_POST
@ratelimit(
    group="replay.rerun", key="monitoring.throttling.user_or_ip_key", rate=lambda g, r: settings.RERUN_RATE_LIMIT
)
def rerun(request, project_id):
    """Re-run one recorded LLM call with the editor's request. Admins only: it spends money."""
    membership = access.get_membership(request.user, project_id)
    if membership.role != membership.ADMIN:
        return HttpResponseForbidden(_("Only project admins may re-run LLM calls (a re-run spends money)."))
    context: dict[str, Any] = {"project": membership.project}
    status = 200
    try:
        step = runs.load_step(membership.project, request.POST.get("trace", ""), request.POST.get("span", ""))
        form = rerun_forms.RerunForm(request.POST)
        if step is None or not step.rerunnable:
            context["error"] = (
                _("Pick an LLM call of a trace in this project to re-run.")
                if step is None or step.role != runs.LLM
                else _("An embedding call is not re-run: its answer is a vector that the trace does not hold.")
            )
            status = 404 if step is None else 400
        elif not form.is_valid():
            context["error"], status = form.error_text(), 400
        else:
            payload = form.payload()
            context |= {
                "step": step,
                "payload": payload,
                "result": reruns.rerun(membership.project, step, payload, request.user.get_username()),
            }
    except clickhouse.ClickHouseError as exc:
        trouble = errors.trouble(exc, request.user)
        context["error"], status = trouble.text, trouble.status
    return render(request, "monitoring/replay/_rerun_result.html", context, status=status)
