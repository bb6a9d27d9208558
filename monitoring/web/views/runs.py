"""Traces > Agent runs, Sessions and Users: one row per agent run, per session and per end user, a
page per session (its runs in order, the conversation as one chat) and per end user, and the read
API's runs list (`/api/v1/projects/<id>/traces?kind=runs`), sessions and users (`…/sessions`, `…/users`).

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
from monitoring.queries import spans as spans_q
from monitoring.queries.filter import BadQuery, iso
from monitoring.web import charts, display, score_columns
from monitoring.web.views.api import api_view, filter_or_400
from monitoring.web.views.dashboard import dashboard_tab, filter_query

TEMPLATE = "monitoring/tabs/runs.html"
PEOPLE_TEMPLATE = "monitoring/tabs/people.html"
_MORE_ROWS_TARGET = "run-more"  # the "Older" row: htmx swaps it for the next page's rows
_MORE_GROUPS_TARGET = "group-more"  # the Sessions and Users lists' "More" row, likewise
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
    try:
        columns = score_columns.choose(query, scores_q.names(str(pid)))
    except score_columns.BadChoice as exc:
        return context | {"form_error": str(exc), "rq": rq}, 400
    page = runs_q.list_runs(flt, rq)
    runs_q.add_previews(flt.project_id, page.items, flt.agent_names)
    keep = {
        "kind": "runs",
        "sort": rq.sort if rq.sort != "time" else "",
        "session": rq.session,
        "user": rq.user,
        score_columns.PARAM: columns.param,
    }
    context |= {
        "rq": rq,
        "runs": page.items,
        **_columns_context(request, columns),
        "score_sort_urls": {
            name: base + filter_query(request, **{**keep, "sort": f"score:{name}"}) for name in columns.shown
        },
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
        # Every page of the list as it is sorted and narrowed (monitoring/web/views/traces.py export).
        "export_csv": reverse("monitoring:traces-export", args=[pid, "csv"]) + filter_query(request, **keep),
        "export_json": reverse("monitoring:traces-export", args=[pid, "json"]) + filter_query(request, **keep),
        "export_max_rows": display.count(spans_q.EXPORT_MAX_ROWS),
        "trace_base": base,
        "back_query": filter_query(request, **keep),
        "filter_hidden": hidden_filter(flt, columns),
        **people_urls(request, pid),
    }
    if request.htmx and request.htmx.target == _MORE_ROWS_TARGET:
        return render(request, TEMPLATE + "#runs-rows", {"project": membership.project, **context})
    return context


def hidden_filter(flt, columns: score_columns.ScoreColumns) -> list[tuple[str, str]]:
    """The filter bar (and a chosen set of score columns) as hidden fields of a list's own forms."""
    pairs = [(k, v) for k, values in flt.query().items() for v in ([values] if isinstance(values, str) else values)]
    return pairs + ([(score_columns.PARAM, columns.param)] if columns.chosen else [])


def _columns_context(request, columns: score_columns.ScoreColumns, base_columns: int = 11) -> dict:
    """What a runs table needs of its score columns, and the picker choosing them."""
    return {
        "score_columns": list(columns.shown),
        "score_names": list(columns.available),
        "score_picker": score_columns.picker(request, columns),
        "score_columns_param": columns.param,
        "run_columns": base_columns + len(columns.shown),
    }


def api_runs(request, flt) -> JsonResponse:
    """`GET …/traces?kind=runs&sort=&session=&user=&cursor=&limit=`: `{"items": [run…], "next_cursor"}`."""
    try:
        rq = runs_q.RunQuery.from_query(request.GET)
    except BadQuery as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    page = runs_q.list_runs(flt, rq)
    runs_q.add_previews(flt.project_id, page.items, flt.agent_names)
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


def _score_columns(request, project_id) -> dict:
    """A session's and a user's runs tables show the chosen (else the most used) scores too, not
    sortable there. Raises score_columns.BadChoice."""
    columns = score_columns.choose(request.GET, scores_q.names(str(project_id)))
    return _columns_context(request, columns) | {"score_sort_urls": dict.fromkeys(columns.shown, "")}


def _search_url(request, project_id, key: str) -> str:
    """Every span whose name, attributes or events hold the key (a session or user id is an attribute)."""
    return reverse("monitoring:traces", args=[project_id]) + filter_query(request, kind="all", q=key[:500])


# The Sessions and Users lists' columns, each a sort (monitoring/queries/sessions.py SORTS).
GROUP_COLUMNS = (
    ("key", gettext_lazy("End user")),
    ("runs", gettext_lazy("Runs")),
    ("calls", gettext_lazy("LLM calls")),
    ("errors", gettext_lazy("Errors")),
    ("tokens", gettext_lazy("Tokens")),
    ("cost", gettext_lazy("Cost")),
    ("first", gettext_lazy("First seen")),
    ("last", gettext_lazy("Last seen")),
)


def _group_list(request, flt, membership, context: dict, which: str) -> dict | tuple | HttpResponse:
    """Traces > Sessions or Users as a list: a page of `sessions_q.PAGE_SIZE` rows sorted by any
    column (`sort=`), narrowed by a part of the id (`q=`), continued by keyset (`cursor=`)."""
    pid = membership.project_id
    query = request.GET.copy()
    query.pop("limit", None)  # the page's size is fixed; `limit` is the API's
    group_kind = "session" if which == "sessions" else "user"
    context |= {"group_kind": group_kind, "gq": sessions_q.GroupQuery()}
    try:
        gq = sessions_q.GroupQuery.from_query(query)
    except BadQuery as exc:
        return context | {"form_error": str(exc)}, 400
    page = (sessions_q.sessions if which == "sessions" else sessions_q.users)(flt, gq)
    base = reverse(f"monitoring:{which}", args=[pid])
    sort = gq.sort if gq.sort != sessions_q.DEFAULT_SORT else ""
    context |= {
        "gq": gq,
        "groups": page.items,
        # Sorting starts over at the first page (a cursor belongs to its order) and keeps the search.
        "group_columns": [
            {
                "key": key,
                "label": _("Session") if key == "key" and which == "sessions" else label,
                "num": key not in ("key", "first", "last"),
                "sorted": key == gq.sort,
                "url": base + filter_query(request, q=gq.q, sort=key if key != sessions_q.DEFAULT_SORT else ""),
            }
            for key, label in GROUP_COLUMNS
        ],
        "more_url": base + filter_query(request, q=gq.q, sort=sort, cursor=page.next_cursor)
        if page.next_cursor
        else "",
        "first_page_url": base + filter_query(request, q=gq.q, sort=sort) if gq.cursor else "",
        "clear_search_url": base + filter_query(request, sort=sort) if gq.q else "",
        "filter_hidden": [
            (k, v) for k, values in flt.query().items() for v in ([values] if isinstance(values, str) else values)
        ],
        "sort_hidden": sort,
    }
    if request.htmx and request.htmx.target == _MORE_GROUPS_TARGET:
        return render(request, PEOPLE_TEMPLATE + "#group-rows", {"project": membership.project, **context})
    return context


def api_groups(request, flt, which: str) -> JsonResponse:
    """`GET /api/v1/projects/<id>/sessions|users?sort=&q=&cursor=&limit=` + the filter bar's parameters:
    `{"items": [{key, calls, errors, cost_usd, input_tokens, output_tokens, runs, failed_runs,
    unpriced, first_seen, last_seen}…], "next_cursor"}` (times ISO 8601 in `tz`; cost USD)."""
    try:
        gq = sessions_q.GroupQuery.from_query(request.GET)
    except BadQuery as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    page = (sessions_q.sessions if which == "sessions" else sessions_q.users)(flt, gq)
    return JsonResponse({"items": [g.as_dict(flt.tz) for g in page.items], "next_cursor": page.next_cursor})


@api_view
def api_sessions(request, membership):
    """GET /api/v1/projects/<id>/sessions: the Sessions list, paged as the runs list is (`api_groups`)."""
    flt, error = filter_or_400(request, membership)
    return error or api_groups(request, flt, "sessions")


@api_view
def api_users(request, membership):
    """GET /api/v1/projects/<id>/users: the Users list, paged as the runs list is (`api_groups`)."""
    flt, error = filter_or_400(request, membership)
    return error or api_groups(request, flt, "users")


@dashboard_tab("traces", template=PEOPLE_TEMPLATE)
def sessions(request, flt, membership):
    """Traces > Sessions: every session of the window (`session.id`, `gen_ai.conversation.id` and the
    SDKs' spellings), most recently active first; `?session=<id>` opens one."""
    pid = membership.project_id
    context = _group_links(request, pid, "sessions")
    key = (request.GET.get("session") or "").strip()
    if not key:
        return _group_list(request, flt, membership, context, "sessions")
    if len(key) > sessions_q.KEY_CHARS:
        return context | {"form_error": _("A session id is at most 500 characters.")}, 400
    try:
        context |= _score_columns(request, pid)
    except score_columns.BadChoice as exc:
        return context | {"form_error": str(exc)}, 400
    runs = sessions_q.session_runs(flt, key)
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
    context = _group_links(request, pid, "users")
    key = (request.GET.get("user") or "").strip()
    if not key:
        return _group_list(request, flt, membership, context, "users")
    if len(key) > sessions_q.KEY_CHARS:
        return context | {"form_error": _("A user id is at most 500 characters.")}, 400
    try:
        context |= _score_columns(request, pid)
    except score_columns.BadChoice as exc:
        return context | {"form_error": str(exc)}, 400
    page = runs_q.list_runs(flt, runs_q.RunQuery(user=key, limit=USER_RUNS_READ))
    runs = page.items
    group = sessions_q.user(flt, key)
    shown = runs_q.add_previews(flt.project_id, runs[:USER_RUNS_SHOWN], flt.agent_names)
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
