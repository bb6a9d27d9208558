"""The Traces tab: the span list (sub-tabs, search, keyset pages, export), one trace's page with its
lazy tree and span panel, and the read API (/api/v1/projects/<id>/traces[/<trace_id>]).

Queries live in monitoring/queries/ (spans.py: the lists, trace.py: one trace), chat parsing in monitoring/semantics/messages.py; this module only
turns requests into their questions and answers into pages.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from itertools import chain
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET

from monitoring import access
from monitoring.quality import views as quality_views
from monitoring.queries import runs as runs_q
from monitoring.queries import scores as scores_q
from monitoring.queries import spans as spans_q
from monitoring.queries import trace as trace_q
from monitoring.queries.filter import iso
from monitoring.semantics import messages
from monitoring.store import clickhouse, errors
from monitoring.web import display, score_columns
from monitoring.web.forms import FilterForm
from monitoring.web.views import runs as runs_views
from monitoring.web.views.api import api_view, filter_or_400, zone_or_400
from monitoring.web.views.dashboard import dashboard_tab, filter_query

TEMPLATE = "monitoring/tabs/traces.html"
_MORE_ROWS_TARGET = "trace-more"  # the "Older" row: htmx swaps it for the next page's rows
_MAX_SHOWN_VALUE = 20_000  # characters of one attribute value in the span panel
# A span panel stays small whatever the span holds (a sender may put 1,000,000 attributes or a
# 20 MB value on one): it shows at most so many of each part, and each part's text within a
# character budget shared by its values (each at least `least` characters, at most `most`). The
# rest is a "show all" away, a page at a time (trace_spans ?part=).
_NAME_CHARS = 100_000  # a span's name in the panel (the tree shows NAME_CHARS)
_KEY_CHARS = 500  # an attribute key
_ATTRIBUTES_BUDGET = 400_000  # the span attributes shown (at most trace_q.SPAN_ATTRIBUTES_READ)
_RESOURCE_BUDGET = 50_000
_SHOWN_ITEMS = 50  # events, exceptions and links shown in the panel; each event's attributes
_ITEMS_BUDGET = 100_000  # the events' and exceptions' text
_CHAT_MESSAGES = 200  # of the request, and of the response
_CHAT_BUDGET = 400_000
_TOOLS_SHOWN = 50
_PART_PAGES = {"attributes": 1_000, "resource": 1_000, "events": 100, "links": 200}  # a "show all" page
_PART_BUDGET = 500_000
# What an empty sub-tab says (its label: monitoring/web/views/runs.py SUBTABS).
KIND_EMPTY = {
    "agent": gettext_lazy("No agent spans match in this window."),
    "llm": gettext_lazy("No LLM calls match in this window."),
    "all": gettext_lazy("No spans match in this window."),
}


def replay_path(project_id) -> str:
    return reverse("monitoring:replay", args=[project_id])


def replay_url(project_id, trace_id: str, span_id: str = "") -> str:
    query = {"trace": trace_id, **({"span": span_id} if span_id else {})}
    return f"{replay_path(project_id)}?{urlencode(query)}"


# --- the list -----------------------------------------------------------------------------------


def span_list(request, flt, membership):
    """Traces: the runs list (`kind=runs`, the default sub-tab: monitoring/web/views/runs.py) or a span
    list (`kind=agent|llm|all`)."""
    # A search without a sub-tab (a link from before the runs list was the default) searches steps.
    searched = request.GET.get("q") or request.GET.get("min_ms")
    kind = request.GET.get("kind") or ("agent" if searched else runs_views.DEFAULT_KIND)
    if kind == "runs":
        return runs_views.runs_list(request, flt, membership)
    query = request.GET.copy()
    query.pop("limit", None)  # the page's size is fixed; `limit` is the API's
    query["kind"] = kind
    pid = membership.project_id
    try:
        lq = spans_q.ListQuery.from_query(query)
    except spans_q.BadQuery as exc:
        return {
            "form_error": str(exc),
            "lq": spans_q.ListQuery(),
            "kind_links": runs_views.subtab_links(request, pid),
        }, 400
    # The LLM Call list shows each call's own scores, a column per chosen (else most used) score name.
    columns = score_columns.ScoreColumns((), (), chosen=False)
    if lq.kind == "llm":
        try:
            columns = score_columns.choose(query, scores_q.names(str(pid)))
        except score_columns.BadChoice as exc:
            return {"form_error": str(exc), "lq": lq, "kind_links": runs_views.subtab_links(request, pid)}, 400
    page = spans_q.list_spans(flt, lq)
    base = reverse("monitoring:traces", args=[pid])
    keep = lq.query() | ({score_columns.PARAM: columns.param} if columns.chosen else {})
    if columns.shown:
        spans_q.add_scores(flt.project_id, page.items)
    context = {
        "lq": lq,
        "page": page,
        "score_columns": list(columns.shown),
        "score_names": list(columns.available),
        "score_picker": score_columns.picker(request, columns) if lq.kind == "llm" else None,
        "score_columns_param": columns.param,
        "span_columns": 9 + len(columns.shown),
        "kind_links": runs_views.subtab_links(request, pid, keep),
        "empty_text": KIND_EMPTY.get(lq.kind, KIND_EMPTY["all"]),
        "older_url": base + filter_query(request, **keep, cursor=page.next_cursor) if page.next_cursor else "",
        "newest_url": base + filter_query(request, **keep) if lq.cursor else "",
        "export_csv": reverse("monitoring:traces-export", args=[pid, "csv"]) + filter_query(request, **keep),
        "export_json": reverse("monitoring:traces-export", args=[pid, "json"]) + filter_query(request, **keep),
        "export_max_rows": display.count(spans_q.EXPORT_MAX_ROWS),
        "replay_base": replay_path(pid),
        "trace_base": base,
        "back_query": filter_query(request, **keep),
        "filter_hidden": runs_views.hidden_filter(flt, columns),
    }
    if request.htmx and request.htmx.target == _MORE_ROWS_TARGET:
        return render(request, TEMPLATE + "#rows", {"project": membership.project, **context})
    return context


traces = dashboard_tab("traces")(span_list)


# --- export -------------------------------------------------------------------------------------

# The span lists' export: a row per span, with whose it is and its own input and output text.
_CSV_COLUMNS = (
    "time",
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "span_kind",
    "service",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_source",
    "duration_ms",
    "status",
    "status_message",
    "is_llm_call",
    "end_user",
    "session",
    "input",  # the last user message of its request (spans_q.texts)
    "output",  # its answer
    "scores",  # the span's own scores as JSON: {name: {value, label, count}}
)
# The Agent runs list's export: a row per run, as the list shows it (the read API's run item).
_RUN_CSV_COLUMNS = (
    "start",
    "trace_id",
    "name",
    "status",
    "duration_ms",
    "llm_calls",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "unpriced_calls",
    "spans",
    "service",
    "end_user",
    "session",
    "first_input",  # the list's previews (runs_q.add_previews)
    "last_output",
    "scores",  # the run's scores as JSON: {name: {value, label, count}}
)


class _Line:
    """csv.writer's file: hands back each line instead of storing it."""

    def write(self, value):
        return value


# Characters a spreadsheet skips before deciding a cell is a formula (LibreOffice skips NUL too).
_SKIPPED = "".join(chr(c) for c in range(0x20)) + " \x7f"


def _cell(value):
    """A client's text made inert in a spreadsheet (OWASP "CSV Injection": a cell whose first
    character, after any control characters and spaces, is = + - @, or that starts with a tab or
    carriage return, gets a leading quote). A dict (scores) is written as JSON, empty when empty."""
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
    if isinstance(value, str) and (value.lstrip(_SKIPPED)[:1] in ("=", "+", "-", "@") or value[:1] in ("\t", "\r")):
        return "'" + value
    return value


def _row(row: spans_q.SpanRow, zone: str) -> dict:
    """A list row for the API and the exports: its time in ISO 8601 with the offset of `zone`."""
    data = row.as_dict()
    data["time"] = iso(row.time, zone)
    return data


def _export_span(item: tuple[spans_q.SpanRow, tuple[str, str]], zone: str) -> dict:
    row, (asked, said) = item
    return _row(row, zone) | {"input": asked, "output": said}


def _export_run(run: runs_q.RunRow, zone: str) -> dict:
    data = run.as_dict()
    data["start"] = iso(run.start, zone)
    data["status"] = run.status
    return data


def _csv_chunks(rows, columns, to_dict):
    writer = csv.writer(_Line())
    yield writer.writerow(columns)
    batch = []
    for row in rows:
        data = to_dict(row)
        batch.append(writer.writerow([_cell(data[c]) for c in columns]))
        if len(batch) >= 200:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


def _json_chunks(rows, max_rows: int, to_dict):
    yield f'{{"max_rows":{max_rows},"items":['
    count = 0
    truncated = False
    for row in rows:
        if count == max_rows:
            truncated = True  # one row past the cap was fetched only to know this
            break
        yield ("," if count else "") + json.dumps(to_dict(row), ensure_ascii=False, separators=(",", ":"))
        count += 1
    yield f'],"count":{count},"truncated":{"true" if truncated else "false"}}}'


_EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


@access.guarded_by("login")
@login_required
@require_GET
def export(request, project_id, fmt):
    """The list as it is filtered, every page of it (up to EXPORT_MAX_ROWS), streamed: the span lists
    (`kind=agent|llm|all`, a row per span) or the Agent runs list (`kind=runs`, a row per run, in
    its sort, narrowed to its session, end user and scores)."""
    if fmt not in _EXPORT_TYPES:
        raise Http404("Export formats: csv, json")
    membership = access.get_membership(request.user, project_id)
    zone = getattr(request, "time_zone", "UTC")  # the viewer's: the file's times are written in it
    form = FilterForm.from_query(request.GET, tz=zone)
    if not form.is_valid():
        return HttpResponseBadRequest(
            _("Bad filter: %(error)s") % {"error": form.error_text()}, content_type="text/plain"
        )
    flt = form.span_filter(membership.project)
    cap = spans_q.EXPORT_MAX_ROWS
    kind = request.GET.get("kind") or spans_q.DEFAULT_KIND
    rows: Iterator[Any]
    columns: tuple[str, ...]
    try:
        if kind == "runs":
            rq = runs_q.RunQuery.from_query(request.GET)
            rows = runs_q.iter_runs(flt, rq, max_rows=cap + (fmt == "json"))
            columns, to_dict = _RUN_CSV_COLUMNS, lambda run: _export_run(run, zone)
        else:
            lq = spans_q.ListQuery.from_query(request.GET)
            lq = spans_q.ListQuery(lq.kind, lq.q, lq.min_ms, scores=lq.scores)  # all pages, from the newest
            rows = spans_q.iter_spans(flt, lq, max_rows=cap + (fmt == "json"))
            columns, to_dict = _CSV_COLUMNS, lambda item: _export_span(item, zone)
    except spans_q.BadQuery as exc:
        return HttpResponseBadRequest(_("Bad parameter: %(error)s") % {"error": exc}, content_type="text/plain")
    try:  # the first chunk before the headers, so ClickHouse trouble is a 503, not a cut-off file
        first = next(rows, None)
    except clickhouse.ClickHouseError as exc:
        return errors.text_response(exc, request.user)
    rows = chain([first], rows) if first is not None else iter(())
    chunks = _csv_chunks(rows, columns, to_dict) if fmt == "csv" else _json_chunks(rows, cap, to_dict)
    response = StreamingHttpResponse(chunks, content_type=_EXPORT_TYPES[fmt])
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    name = f"traces-{slugify(membership.project.name) or 'project'}-{kind}-{stamp}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Export-Max-Rows"] = str(cap)
    return response


# --- one trace ----------------------------------------------------------------------------------


def _trace_id_or_404(trace_id: str) -> str:
    trace_id = trace_id.lower()
    if not spans_q.TRACE_ID.fullmatch(trace_id):
        raise Http404("A trace id is 32 hex digits")
    return trace_id


def _tree_lines(rows, t0: int, total: int, spans_url: str) -> list[dict]:
    """Tree rows with their waterfall bar geometry (percent of the trace's span of time).

    Attribute values (depth, CSS) are plain strings made here: the template would localize every
    number (a decimal comma breaks CSS) and a trace's rows are its longest loop."""
    total = max(total, 1)
    lines = []
    for row in rows:
        line = {"row": row, "depth": str(row.depth), "indent": f"padding-left:{row.depth * 14}px"}
        if row.span is not None:
            s = row.span
            left = round(min(max((s.ts - t0) / total * 100, 0), 100), 3)
            if s.has_end:
                width = round(max(min(s.duration_ns / total * 100, 100 - left), 0.15), 3)
            else:  # no end time: the bar runs on to the trace's end (drawn hatched), never a 0 ms sliver
                width = round(max(100 - left, 0.15), 3)
            line["bar"] = f"left:{left}%;width:{width}%"
            line["duration"] = display.duration_ms(s.duration_ms) if s.has_end else ""
            if s.child_count:  # a blocktranslate per row cost more than the rest of the row
                line["open"] = "1" if row.open else "0"
                n = s.child_count  # as blocktranslate printed it: no thousands separator
                line["children"] = ngettext("%(n)s child span", "%(n)s child spans", n) % {"n": n}
        else:
            line["more_url"] = (
                f"{spans_url}?{urlencode({'parent': row.more_parent, 'after': row.more_after, 'depth': row.depth, 't0': t0, 'tn': t0 + total})}"
            )
        lines.append(line)
    return lines


def _ticks(total_ns: int) -> list[tuple[float, str]]:
    return [(p, display.duration_ms(total_ns * p / 100 / 1e6)) for p in (0, 25, 50, 75, 100)]


def _share(count: int, budget: int, most: int = _MAX_SHOWN_VALUE, least: int = 200) -> int:
    """Characters shown of each of `count` texts that share `budget`."""
    return max(least, min(most, budget // max(count, 1)))


def _cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and how many more there are."""
    if len(text) <= limit:
        return text
    rest = display.count(len(text) - limit)
    return text[:limit] + "\n… " + _("(%(count)s more characters)") % {"count": rest}


def _pretty(value: str, limit: int = _MAX_SHOWN_VALUE) -> tuple[str, bool]:
    """(text to show, whether it is JSON): JSON indented, long values cut at `limit` characters."""
    text = value
    stripped = value.strip()
    is_json = False
    if stripped[:1] in ("{", "[") and len(stripped) < 200_000:
        try:
            text = json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)
            is_json = True
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
            pass
    return _cut(text, limit), is_json


def _chat(items: list[messages.Message]) -> dict:
    """The first _CHAT_MESSAGES messages as the panel shows them, and how many more there are."""
    shown = items[:_CHAT_MESSAGES]
    limit = _share(len(shown), _CHAT_BUDGET // 2, most=_MAX_SHOWN_VALUE * 5, least=1_000)
    out = []
    for m in shown:
        calls = [
            {
                "name": _cut(c.name, _KEY_CHARS),
                "id": _cut(c.id, _KEY_CHARS),
                "arguments": _pretty(c.arguments, limit)[0],
            }
            for c in m.tool_calls[:_SHOWN_ITEMS]
        ]
        out.append(
            {
                "role": m.role,
                "content": _pretty(m.content, limit)[0] if m.role == "tool" else _cut(m.content, limit),
                "tool_calls": calls,
                "tool_call_id": _cut(m.tool_call_id, _KEY_CHARS),
                "name": _cut(m.name, _KEY_CHARS),
                "finish_reason": _cut(m.finish_reason, _KEY_CHARS),
                "reasoning": _cut(m.reasoning, limit),
                "media": m.media[:_SHOWN_ITEMS],  # an inline image over its cap shows as its type only
            }
        )
    return {"messages": out, "more": len(items) - len(shown)}


def _pairs(items, budget: int, most: int = _MAX_SHOWN_VALUE) -> list[tuple[str, str, bool]]:
    """(key, value to show, whether it is a block) of attributes sharing `budget` characters."""
    limit = _share(len(items), budget, most=most)
    return [
        (_cut(k, _KEY_CHARS), text, is_json or "\n" in text)
        for k, (text, is_json) in ((k, _pretty(v, limit)) for k, v in items)
    ]


def _events(events: list[trace_q.Event], span_ts: int, budget: int) -> list[dict]:
    """Events as the panel shows them, each with its first _SHOWN_ITEMS attributes."""
    values = sum(min(len(e.attributes), _SHOWN_ITEMS) for e in events)
    limit = _share(values, budget, most=2_000, least=100)
    return [
        {
            "name": _cut(e.name, _KEY_CHARS),
            "offset_ms": round((e.ts - span_ts) / 1e6, 3),
            "attributes": [
                (_cut(k, _KEY_CHARS), _cut(v, limit)) for k, v in sorted(e.attributes.items())[:_SHOWN_ITEMS]
            ],
            "attribute_count": e.attribute_count,
        }
        for e in events
    ]


def _part_link(project, span: trace_q.FullSpan, part: str) -> str:
    """The "show all" of a capped part of the span: its first page (trace_spans ?part=)."""
    url = reverse("monitoring:trace-spans", args=[project.id, span.trace_id])
    return f"{url}?{urlencode({'span': span.span_id, 'part': part, 'offset': 0})}"


def _span_panel(project, span: trace_q.FullSpan, t0: int) -> dict:
    attrs = span.attributes
    caught = span.exceptions[:_SHOWN_ITEMS]
    trace_limit = _share(len(caught) + 1, _ITEMS_BUDGET, least=1_000)
    exceptions = [
        {
            "type": _cut(e.attributes.get("exception.type", ""), _KEY_CHARS),
            "message": _cut(e.attributes.get("exception.message", ""), trace_limit),
            "stacktrace": _cut(e.attributes.get("exception.stacktrace", ""), trace_limit),
            "offset_ms": round((e.ts - span.ts) / 1e6, 3),
        }
        for e in caught
    ]
    if not any(e["stacktrace"] for e in exceptions) and attrs.get("error.stack_trace"):
        # LiteLLM puts the trace on the span too (and on some spans only there).
        exceptions.append(
            {
                "type": _cut(attrs.get("error.type", ""), _KEY_CHARS),
                "message": _cut(attrs.get("error.message", ""), trace_limit),
                "stacktrace": _cut(attrs["error.stack_trace"], trace_limit),
                "offset_ms": None,
            }
        )
    params = messages.request_params(attrs)
    cost, cost_source = span.cost_usd, span.cost_source  # the invocation's, counted once (0 for a wrapper)
    span_events = [(e.name, e.attributes) for e in span.events]
    others = [e for e in span.events if not e.is_exception]
    tools = params.tools[:_TOOLS_SHOWN]
    tool_limit = _share(len(tools), _ITEMS_BUDGET, least=1_000)
    request, response = (
        _chat(messages.request_messages(attrs, span_events)),
        _chat(messages.response_messages(attrs, span_events)),
    )
    return {
        "span": span,
        "name": _cut(span.name, _NAME_CHARS),
        "status_message": _cut(span.status_message, _MAX_SHOWN_VALUE),
        "offset_ms": round((span.ts - t0) / 1e6, 3),
        "cost": cost,
        "cost_source": cost_source,
        "request": request["messages"],
        "request_more": request["more"],
        "response": response["messages"],
        "response_more": response["more"],
        "params": params,
        "tools": [
            {
                "name": _cut(t.name, _KEY_CHARS),
                "description": _cut(t.description, tool_limit),
                "parameters": _pretty(json.dumps(t.parameters), tool_limit)[0] if t.parameters else "",
            }
            for t in tools
        ],
        "tools_more": len(params.tools) - len(tools),
        "exceptions": exceptions,
        "events": _events(others[:_SHOWN_ITEMS], span.ts, _ITEMS_BUDGET),
        "links": span.links[:_SHOWN_ITEMS],
        "attributes": _pairs(sorted(attrs.items()), _ATTRIBUTES_BUDGET),
        "resource": _pairs(sorted(span.resource.items()), _RESOURCE_BUDGET, most=2_000),
        "show_all": {
            part: _part_link(project, span, part)
            for part, cut in (
                ("attributes", span.attributes_truncated),
                ("resource", span.resource_truncated),
                # span.event_count also counts the events past those read.
                ("events", span.event_count > min(len(others), _SHOWN_ITEMS) + len(caught)),
                ("links", span.link_count > _SHOWN_ITEMS),
            )
            if cut
        },
        "replay_url": replay_url(project.id, span.trace_id, span.span_id) if span.is_llm_call else "",
    }


def _part_page(project, trace_id: str, found: trace_q.SpanPart, span_id: str) -> dict:
    """A "show all" page of a span part as trace_spans renders it (#span-part), values shared
    within _PART_BUDGET, and the link to the next page."""
    url = reverse("monitoring:trace-spans", args=[project.id, trace_id])
    context: dict = {"project": project, "part": found.part, "total": found.total, "first": found.offset + 1}
    context["last"] = found.offset + len(found.items)
    if found.next_offset is not None:
        context["next_url"] = f"{url}?{urlencode({'span': span_id, 'part': found.part, 'offset': found.next_offset})}"
    if found.part in ("attributes", "resource"):
        context["pairs"] = _pairs(found.items, _PART_BUDGET, most=2_000)
    elif found.part == "events":
        context["events"] = _events(found.items, found.span_ts, _PART_BUDGET)
    else:
        context["links"] = [
            {**link, "attributes": [(_cut(k, _KEY_CHARS), _cut(v, 200)) for k, v in sorted(link["attributes"].items())]}
            for link in found.items
        ]
    return context


def _default_span(spans: list[trace_q.TreeSpan], root_id: str) -> str:
    """What the panel opens on: the first LLM call (its chat is what people come for), else the root."""
    calls = [s for s in spans if s.invocation]
    return calls[0].span_id if calls else root_id


@dashboard_tab("traces", facets=False)  # a trace's page shows no filter bar
def trace_detail(request, flt, membership, trace_id):
    trace_id = _trace_id_or_404(trace_id)
    project = membership.project
    ref = trace_q.locate(str(project.id), trace_id)
    wanted = (request.GET.get("span") or "").lower()
    wanted = wanted if spans_q.SPAN_ID.fullmatch(wanted) else ""
    spans, calls, whole = trace_q.page_reads(ref, wanted, project.agent_names)
    if not spans:
        raise Http404("No such trace in this project")
    summary = trace_q.summarize(ref, spans, calls)
    total = max(summary.end_ns - summary.start_ns, 1)
    spans_url = reverse("monitoring:trace-spans", args=[project.id, trace_id])
    known = {s.span_id for s in spans}
    selected = wanted if wanted in known else _default_span(spans, summary.root_span_id)
    span = whole.get(selected) or trace_q.full_span(ref, selected, project.agent_names, calls)
    list_query = filter_query(request, **{k: request.GET.get(k, "") for k in ("kind", "q", "min_ms")})
    return {
        "trace": summary,
        "in_progress": any(not s.has_end for s in spans),  # its duration is a lower bound
        "lines": _tree_lines(trace_q.visible_rows(spans), summary.start_ns, total, spans_url),
        "ticks": _ticks(total),
        "spans_url": spans_url,
        "detail_url": reverse("monitoring:trace", args=[project.id, trace_id]),
        "back_url": reverse("monitoring:traces", args=[project.id]) + list_query,
        "api_url": reverse("monitoring:api-trace", args=[project.id, trace_id]),
        "trace_replay_url": replay_url(project.id, trace_id),
        "selected": selected,
        "panel": _span_panel(project, span, summary.start_ns) if span else None,
        **_trace_scores(request, membership, trace_id, span),
    }


def _trace_scores(request, membership, trace_id: str, span) -> dict:
    """The run's scores block, and the selected LLM call's (monitoring/quality/views.py)."""
    found = scores_q.for_traces(str(membership.project_id), [trace_id])
    here = request.get_full_path()
    run_scores = [s for s in found if not s.span_id]
    return {
        "run_scores": quality_views.scores_block(membership, run_scores, trace_id=trace_id, next_url=here),
        "span_scores": _span_scores(membership, found, span, here) if span else None,
    }


def _span_scores(membership, found, span, next_url: str) -> dict | None:
    """An LLM call's own scores and feedback form (other spans show their scores without one)."""
    own = [s for s in found if s.span_id == span.span_id]
    if not (own or span.is_llm_call):
        return None
    return quality_views.scores_block(membership, own, trace_id=span.trace_id, span_id=span.span_id, next_url=next_url)


def _int_param(request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.GET.get(name, default))
    except ValueError:
        raise spans_q.BadQuery(f"'{name}' must be a whole number") from None
    if not low <= value <= high:
        raise spans_q.BadQuery(f"'{name}' is out of range")
    return value


@access.guarded_by("login")
@login_required
@require_GET
def trace_spans(request, project_id, trace_id):
    """htmx fragments of a trace page: `?span=<id>` the span panel, `?span=<id>&part=<part>&offset=N`
    a "show all" page of that span's attributes, resource, events or links (from the N-th, 0-based),
    `?parent=<id>` (or empty for the roots) a page of that span's children as tree rows (`after`,
    `depth`, `t0`, `tn` from the page)."""
    membership = access.get_membership(request.user, project_id)
    trace_id = _trace_id_or_404(trace_id)
    project = membership.project
    try:
        if "span" in request.GET:
            span_id = request.GET["span"].lower()
            if not spans_q.SPAN_ID.fullmatch(span_id):
                raise spans_q.BadQuery("'span' must be 16 hex digits")
            ref = trace_q.locate(str(project.id), trace_id)
            if "part" in request.GET:
                part = request.GET["part"]
                if part not in trace_q.SPAN_PARTS:
                    raise spans_q.BadQuery(f"'part' is one of {', '.join(trace_q.SPAN_PARTS)}")
                offset = _int_param(request, "offset", 0, 0, 2**31)
                page = trace_q.span_part(ref, span_id, part, offset, _PART_PAGES[part])
                if page is None:
                    raise Http404("No such span in this project")
                return render(request, TEMPLATE + "#span-part", _part_page(project, trace_id, page, span_id))
            span = trace_q.full_span(ref, span_id, project.agent_names)
            if span is None:
                raise Http404("No such span in this project")
            t0 = _int_param(request, "t0", span.ts, 0, 2**63 - 1)
            back = reverse("monitoring:trace", args=[project.id, trace_id]) + f"?span={span_id}"
            context = {"project": project, "panel": _span_panel(project, span, t0)}
            context["span_scores"] = _span_scores(
                membership, scores_q.for_traces(str(project.id), [trace_id]), span, back
            )
            return render(request, TEMPLATE + "#span-panel", context)
        if "parent" not in request.GET:
            raise spans_q.BadQuery("ask for ?span=<span id> or ?parent=<span id>")
        parent = request.GET["parent"].lower()
        if parent and not spans_q.SPAN_ID.fullmatch(parent):
            raise spans_q.BadQuery("'parent' must be 16 hex digits")
        after = trace_q.parse_after(request.GET["after"]) if request.GET.get("after") else (0, "")
        depth = _int_param(request, "depth", 0, 0, 100_000)
        t0 = _int_param(request, "t0", 0, 0, 2**63 - 1)
        tn = _int_param(request, "tn", t0 + 1, t0, 2**63 - 1)
        ref = trace_q.locate(str(project.id), trace_id)
        found = trace_q.children(ref, parent, after, agent_names=project.agent_names)
        if found is None:
            raise Http404("No such span in this project")
        kids, more = found
        rows = [trace_q.TreeRow(k, depth) for k in kids]
        if more:
            rows.append(trace_q.TreeRow(None, depth, more_parent=parent, more_after=trace_q.after_token(kids[-1])))
        spans_url = reverse("monitoring:trace-spans", args=[project.id, trace_id])
        context = {
            "project": project,
            "lines": _tree_lines(rows, t0, tn - t0, spans_url),
            "spans_url": spans_url,
            "detail_url": reverse("monitoring:trace", args=[project.id, trace_id]),
        }
        return render(request, TEMPLATE + "#tree-rows", context)
    except spans_q.BadQuery as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    except clickhouse.ClickHouseError as exc:
        return errors.text_response(exc, request.user)


# --- read API -----------------------------------------------------------------------------------


@api_view
def api_traces(request, membership):
    """GET /api/v1/projects/<id>/traces?kind=&q=&min_ms=&cursor=&limit= + the filter bar's parameters.

    `kind=agent` (the default: agent steps, one row per step span), `llm`, `all`: span rows;
    `kind=runs`: one row per agent run (monitoring/web/views/runs.py `api_runs`)."""
    flt, error = filter_or_400(request, membership)
    if error:
        return error
    if request.GET.get("kind") == "runs":
        return runs_views.api_runs(request, flt)
    try:
        lq = spans_q.ListQuery.from_query(request.GET, max_limit=spans_q.MAX_LIMIT)
    except spans_q.BadQuery as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    page = spans_q.list_spans(flt, lq)
    spans_q.add_scores(flt.project_id, page.items)
    return JsonResponse({"items": [_row(item, flt.tz) for item in page.items], "next_cursor": page.next_cursor})


@api_view
def api_trace(request, membership, trace_id):
    """GET /api/v1/projects/<id>/traces/<trace_id>: every span with attributes, events and links.

    Each span's attributes, resource, events and links are its first SPAN_ATTRIBUTES_READ /
    SPAN_EVENTS_READ (each event's and link's attributes its first ITEM_ATTRIBUTES_READ; see
    monitoring/queries/trace.py), in the order sent: `<part>_truncated` says whether any was left
    out, and then `<count>` how many it holds (`attribute_count`, `resource_count`, `event_count`,
    `link_count`); the rest is at api_span_part."""
    zone, error = zone_or_400(request)
    if error:
        return error
    trace_id = trace_id.lower()
    if not spans_q.TRACE_ID.fullmatch(trace_id):
        return JsonResponse({"error": "a trace id is 32 hex digits"}, status=400)
    spans = trace_q.full_spans(trace_q.locate(membership.project_id, trace_id))
    if not spans:
        return JsonResponse({"error": "no such trace"}, status=404)
    items = []
    for s in spans:
        data = s.as_dict()
        data["start"] = iso(data["start"], zone)
        items.append(data)
    return JsonResponse({"trace_id": trace_id, "spans": items, "truncated": len(spans) >= trace_q.MAX_TRACE_SPANS})


@api_view
def api_span_part(request, membership, trace_id, span_id, part):
    """GET /api/v1/projects/<id>/traces/<trace_id>/spans/<span_id>/<part>?offset=&limit=: all of a
    span's `attributes`, `resource`, `events` or `links`, a page at a time (limit at most
    trace_q.PART_PAGE, 1,000), in the order sent: {"total", "offset", "items", "next_offset"};
    attributes and resource as an object, events and links as in the trace (their own
    attributes capped and flagged the same way); `next_offset` null on the last page."""
    trace_id, span_id = trace_id.lower(), span_id.lower()
    if not spans_q.TRACE_ID.fullmatch(trace_id) or not spans_q.SPAN_ID.fullmatch(span_id):
        return JsonResponse({"error": "a trace id is 32 hex digits, a span id 16"}, status=400)
    if part not in trace_q.SPAN_PARTS:
        return JsonResponse({"error": f"a span part is one of {', '.join(trace_q.SPAN_PARTS)}"}, status=400)
    try:
        offset = _int_param(request, "offset", 0, 0, 2**31)
        limit = _int_param(request, "limit", trace_q.PART_PAGE, 1, trace_q.PART_PAGE)
    except spans_q.BadQuery as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    found = trace_q.span_part(trace_q.locate(membership.project_id, trace_id), span_id, part, offset, limit)
    if found is None:
        return JsonResponse({"error": "no such span"}, status=404)
    if part in ("attributes", "resource"):
        items: dict | list = dict(found.items)
    elif part == "events":
        items = [e.as_dict() for e in found.items]
    else:
        items = found.items
    return JsonResponse(
        {
            "trace_id": trace_id,
            "span_id": span_id,
            "part": part,
            "total": found.total,
            "offset": found.offset,
            "items": items,
            "next_offset": found.next_offset,
        }
    )
