"""Traces > Agent runs, Sessions and Users: one row per agent run, per session and per end user, a
page per session (its runs in order, the conversation as one chat) and per end user, and the read
API's runs list (`/api/v1/projects/<id>/traces?kind=runs`).

The questions live in monitoring/queries/runs.py and monitoring/queries/sessions.py; this module
turns requests into them and answers into pages. A session or user is named in the query string
(`?session=`, `?user=`), never in the path: their ids are whatever clients sent ("a/b", "..").
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from monitoring.quality import views as quality_views
from monitoring.queries import runs as runs_q
from monitoring.queries import scores as scores_q
from monitoring.queries import sessions as sessions_q
from monitoring.queries.filter import BadQuery, iso
from monitoring.web import charts, display
from monitoring.web.views.dashboard import dashboard_tab, filter_query

TEMPLATE = "monitoring/tabs/runs.html"
PEOPLE_TEMPLATE = "monitoring/tabs/people.html"
_MORE_ROWS_TARGET = "run-more"  # the "Older" row: htmx swaps it for the next page's rows
USER_RUNS_SHOWN = 50  # a user's page lists this many runs; the runs list has them all
USER_RUNS_READ = 500  # runs read for a user's sessions and cost line

DEFAULT_KIND = "runs"  # Traces opens on the runs list (the API's default `kind` stays `agent`)
# The Traces tab's sub-tabs: what each list holds. `kind` values of the span lists are
# monitoring/queries/spans.py KINDS; "runs" is the runs list (this module).
SUBTABS = (
    ("runs", gettext_lazy("Agent runs")),
    ("agent", gettext_lazy("Agent steps")),
    ("llm", gettext_lazy("LLM Call")),
    ("all", gettext_lazy("All")),
)
PEOPLE = (("sessions", gettext_lazy("Sessions")), ("users", gettext_lazy("Users")))


def subtab_links(request, project_id, keep: dict | None = None) -> list[dict]:
    """The sub-tabs of Traces, each keeping the filter bar (and `keep`, the span lists' search)."""
    base = reverse("monitoring:traces", args=[project_id])
    links = []
    for key, label in SUBTABS:
        extra = {} if key == "runs" else (keep or {})
        links.append({"key": key, "label": label, "url": base + filter_query(request, **{**extra, "kind": key})})
    for key, label in PEOPLE:
        links.append(
            {"key": key, "label": label, "url": reverse(f"monitoring:{key}", args=[project_id]) + filter_query(request)}
        )
    return links


def people_urls(request, project_id) -> dict:
    """Where a session or an end user opens: the template appends the key (`|urlencode:""`)."""
    keep = filter_query(request)
    sep = "&" if keep else "?"
    return {
        "session_url": reverse("monitoring:sessions", args=[project_id]) + keep + sep + "session=",
        "user_url": reverse("monitoring:users", args=[project_id]) + keep + sep + "user=",
    }


SCORE_COLUMNS = 4  # the most used score names get a column in the runs list

# --- Traces > Agent runs ---------------------------------------------------------------------------


def runs_list(request, flt, membership) -> dict | tuple | HttpResponse:
    """One row per agent run of the window, sorted by start, duration or cost (`sort=`), narrowed to a
    session or an end user (`session=`, `user=`), paged by keyset (`cursor=`)."""
    pid = membership.project_id
    query = request.GET.copy()
    query.pop("limit", None)  # the page's size is fixed; `limit` is the API's
    base = reverse("monitoring:traces", args=[pid])
    context: dict[str, Any] = {"kind": "runs", "kind_links": subtab_links(request, pid), "tab_template": TEMPLATE}
    try:
        rq = runs_q.RunQuery.from_query(query)
    except BadQuery as exc:
        return context | {"form_error": str(exc), "rq": runs_q.RunQuery()}, 400
    page = runs_q.list_runs(flt, rq)
    runs_q.add_previews(flt.project_id, page.items)
    runs_q.add_scores(flt.project_id, page.items)
    score_columns = scores_q.names(str(pid))[:SCORE_COLUMNS]
    keep = {"kind": "runs", "sort": rq.sort if rq.sort != "time" else "", "session": rq.session, "user": rq.user}
    context |= {
        "rq": rq,
        "runs": page.items,
        "score_columns": score_columns,
        "score_sort_urls": {
            name: base + filter_query(request, **{**keep, "sort": f"score:{name}"}) for name in score_columns
        },
        "run_columns": 11 + len(score_columns),
        "score_text_value": rq.scores[-1].query_value() if rq.scores else "",
        "thumbs_down_query": filter_query(request, **keep, score="feedback:eq:down")[1:],
        "clear_scores_url": base + filter_query(request, **keep, score=""),
        # Sorting starts over at the first page (a cursor belongs to its order).
        "sort_urls": {
            key: base + filter_query(request, **{**keep, "sort": key if key != "time" else ""}) for key in runs_q.SORTS
        },
        "older_url": base + filter_query(request, **keep, cursor=page.next_cursor) if page.next_cursor else "",
        "newest_url": base + filter_query(request, **keep) if rq.cursor else "",
        "clear_url": base + filter_query(request, kind="runs", sort=keep["sort"]),
        "trace_base": base,
        "back_query": filter_query(request, **keep),
        "filter_hidden": [
            (k, v) for k, values in flt.query().items() for v in ([values] if isinstance(values, str) else values)
        ],
        **people_urls(request, pid),
    }
    if request.htmx and request.htmx.target == _MORE_ROWS_TARGET:
        return render(request, TEMPLATE + "#runs-rows", {"project": membership.project, **context})
    return context


def api_runs(request, flt) -> JsonResponse:
    """`GET …/traces?kind=runs&sort=&session=&user=&cursor=&limit=`: `{"items": [run…], "next_cursor"}`."""
    try:
        rq = runs_q.RunQuery.from_query(request.GET)
    except BadQuery as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    page = runs_q.list_runs(flt, rq)
    runs_q.add_previews(flt.project_id, page.items)
    runs_q.add_scores(flt.project_id, page.items)
    items = []
    for run in page.items:
        data = run.as_dict()
        data["start"] = iso(run.start, flt.tz)
        data["status"] = run.status
        items.append(data)
    return JsonResponse({"items": items, "next_cursor": page.next_cursor})


# --- sessions and users ----------------------------------------------------------------------------


def _group_links(request, project_id, which: str) -> dict:
    return {
        "kind": which,
        "kind_links": subtab_links(request, project_id),
        "tab_template": PEOPLE_TEMPLATE,
        "trace_base": reverse("monitoring:traces", args=[project_id]),
        "back_query": filter_query(request, kind="runs"),
        **people_urls(request, project_id),
    }


def _score_columns(project_id) -> dict:
    """A session's and a user's runs tables show the most used scores too (not sortable there)."""
    names = scores_q.names(str(project_id))[:SCORE_COLUMNS]
    return {"score_columns": names, "score_sort_urls": dict.fromkeys(names, ""), "run_columns": 11 + len(names)}


def _search_url(request, project_id, key: str) -> str:
    """Every span whose name, attributes or events hold the key (a session or user id is an attribute)."""
    return reverse("monitoring:traces", args=[project_id]) + filter_query(request, kind="all", q=key[:500])


@dashboard_tab("traces", template=PEOPLE_TEMPLATE)
def sessions(request, flt, membership):
    """Traces > Sessions: every session of the window (`session.id`, `gen_ai.conversation.id` and the
    SDKs' spellings), most recently active first; `?session=<id>` opens one."""
    pid = membership.project_id
    context = _group_links(request, pid, "sessions") | _score_columns(pid)
    key = (request.GET.get("session") or "").strip()
    if not key:
        return context | {"groups": sessions_q.sessions(flt), "group_kind": "session"}
    if len(key) > 500:
        return context | {"form_error": _("A session id is at most 500 characters.")}, 400
    runs = runs_q.add_scores(flt.project_id, sessions_q.session_runs(flt, key))
    group = sessions_q.session(flt, key)
    users = sorted({r.end_user for r in runs if r.end_user})
    return context | {
        "session": key,
        "group": group,
        "session_runs": runs,
        "conversation": [
            {"run": r, "number": i, "input": r.first_input, "output": r.last_output} for i, r in enumerate(runs, 1)
        ],
        "session_users": users,
        "session_scores": quality_views.scores_block(
            membership, scores_q.for_session(str(pid), key), session_id=key, next_url=request.get_full_path()
        ),
        "list_url": reverse("monitoring:sessions", args=[pid]) + filter_query(request),
        "search_url": _search_url(request, pid, key),
        "runs_url": reverse("monitoring:traces", args=[pid]) + filter_query(request, kind="runs", session=key),
    }


@dashboard_tab("traces", template=PEOPLE_TEMPLATE)
def users(request, flt, membership):
    """Traces > Users: every end user of the window (`user.id`, `enduser.id`, LiteLLM's end user),
    most recently active first; `?user=<id>` opens one: their numbers, sessions and runs."""
    pid = membership.project_id
    context = _group_links(request, pid, "users") | _score_columns(pid)
    key = (request.GET.get("user") or "").strip()
    if not key:
        return context | {"groups": sessions_q.users(flt), "group_kind": "user"}
    if len(key) > 500:
        return context | {"form_error": _("A user id is at most 500 characters.")}, 400
    page = runs_q.list_runs(flt, runs_q.RunQuery(user=key, limit=USER_RUNS_READ))
    runs = page.items
    group = sessions_q.user(flt, key)
    shown = runs_q.add_scores(flt.project_id, runs_q.add_previews(flt.project_id, runs[:USER_RUNS_SHOWN]))
    return context | {
        "end_user": key,
        "group": group,
        "user_runs": shown,
        "more_runs": len(runs) > len(shown) or page.next_cursor is not None,
        "user_sessions": _sessions_of(runs),
        "cost_line": _cost_line(flt, key, group),
        "list_url": reverse("monitoring:users", args=[pid]) + filter_query(request),
        "search_url": _search_url(request, pid, key),
        "runs_url": reverse("monitoring:traces", args=[pid]) + filter_query(request, kind="runs", user=key),
    }


def _sessions_of(runs: list[runs_q.RunRow]) -> list[dict]:
    """A user's sessions from their runs: runs, LLM calls, cost, first and last start, newest first."""
    found: OrderedDict[str, dict] = OrderedDict()
    for r in runs:
        if not r.session:
            continue
        s = found.setdefault(
            r.session,
            {
                "key": r.session,
                "runs": 0,
                "calls": 0,
                "cost_usd": 0.0,
                "unpriced": 0,
                "failed": 0,
                "first": r.start,
                "last": r.start,
            },
        )
        s["runs"] += 1
        s["calls"] += r.llm_calls
        s["cost_usd"] += r.cost_usd
        s["unpriced"] += r.unpriced_calls
        s["failed"] += r.failed
        s["first"], s["last"] = min(s["first"], r.start), max(s["last"], r.start)
    return sorted(found.values(), key=lambda s: s["last"], reverse=True)


def _cost_line(flt, key: str, group) -> dict | None:
    """The cost of an end user's calls per bucket of the window (the Analytics buckets of the
    viewer's zone), as a sparkline with its bucket name; None without calls. The same calls as the
    summary's Cost (sessions_q.user), so its total is that number, unpriced calls counted beside it."""
    if group is None or not (group.calls or group.runs):
        return None
    bucket, costs, _unpriced = sessions_q.user_cost(flt, key)
    if len(costs) < 2:
        return None
    notes = {"minute": _("per minute"), "hour": _("per hour"), "day": _("per day")}
    return {
        "trend": charts.sparkline(costs, width=240, height=40),
        "note": notes[bucket],
        "total": display.unpriced_usd(group.cost_usd, group.unpriced),
        "peak": display.usd(max(costs)),
    }
