"""The Analytics tab (Cost Trend, Token Usage, Agent Flow Graph, breakdowns, latency, scores) and its
time-series and score-summary APIs. Numbers come from `monitoring.queries` (timeseries, flow,
breakdowns, latency, quality), figures from `monitoring.web.charts`."""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from monitoring.quality.models import FEEDBACK, ScoreConfig, pass_marks
from monitoring.queries import breakdowns as breakdowns_q
from monitoring.queries import flow as flow_q
from monitoring.queries import latency as latency_q
from monitoring.queries import parallel
from monitoring.queries import quality as quality_q
from monitoring.queries import timeseries as timeseries_q
from monitoring.queries.filter import iso
from monitoring.web import cache as answers
from monitoring.web import charts, display
from monitoring.web.views.api import api_view, filter_or_400
from monitoring.web.views.dashboard import dashboard_tab, filter_query


@dashboard_tab("analytics")
def analytics(request, flt, membership):
    """The tab answers with the time series; the flow graph and the breakdowns load beside it
    (`analytics_part`), each in its own request, so the tab is on screen while they are drawn."""
    return answers.answer("page.analytics", request, flt, membership, lambda: _analytics(request, flt, membership))


def _analytics(request, flt, membership) -> dict:
    series = timeseries_q.timeseries(flt)
    runs = sum(series.runs)
    if series.empty and not runs:  # nothing to chart: skip the other scans
        return {"analytics_empty": True, "series": series}
    colours = charts.model_colours(series.models)  # a model keeps its colour in every chart
    none = _("No LLM calls in this window.")
    per = {
        "minute": (
            _("USD per minute, by model"),
            _("tokens per minute, by model"),
            _("calls per minute"),
            _("per minute"),
        ),
        "hour": (_("USD per hour, by model"), _("tokens per hour, by model"), _("calls per hour"), _("per hour")),
        "day": (_("USD per day, by model"), _("tokens per day, by model"), _("calls per day"), _("per day")),
    }[series.bucket]
    part_url = reverse("monitoring:analytics-part", args=[membership.project_id, "{part}"]) + filter_query(request)
    unpriced = sum(series.total("unpriced_calls"))
    cost_note = per[0]
    if unpriced:  # not in the bars, and not free either (README, "Cost")
        cost_note += " · " + ngettext(
            "%(count)s call without a price is not in the bars",
            "%(count)s calls without a price are not in the bars",
            unpriced,
        ) % {"count": display.count(unpriced)}
    panels = [  # in the order the grid shows them; a None figure shows its empty text instead
        _panel(
            "cost-trend",
            _("Cost Trend"),
            cost_note,
            charts.cost_trend(series, colours),
            _("No cost in this window."),
            wide=True,
        ),
        _panel(
            "token-usage",
            _("Token Usage"),
            per[1],
            charts.token_usage(series, colours),
            _("No tokens reported in this window."),
        ),
        _panel(
            "calls-errors",
            _("LLM Calls & Errors"),
            per[2],
            charts.calls_and_errors(series),
            none,
        ),
        _panel(
            "input-cache",
            _("Input Cache"),
            _cache_note(series),
            charts.input_cache(series),
            _("No cached input in this window (the provider's prompt cache was not used or not reported)."),
        ),
        _panel(
            "agent-runs",
            _("Agent Runs"),
            per[3],
            charts.agent_runs(series),
            _("No agent runs in this window."),
        ),
        _lazy("agent-flow", _("Agent Flow Graph"), part_url.replace("%7Bpart%7D", "flow"), wide=True),
        _lazy("breakdowns", _("Latency and breakdowns"), part_url.replace("%7Bpart%7D", "breakdowns"), wide=True),
        _lazy("scores", _("Scores"), part_url.replace("%7Bpart%7D", "scores"), wide=True),
    ]
    totals = {m: sum(series.total(m)) for m in timeseries_q.METRICS}
    stats = [
        {"label": _("Cost"), "key": "cost_usd", "text": display.unpriced_usd(totals["cost_usd"], unpriced)},
        {"label": _("LLM calls"), "key": "llm_calls", "text": display.count(totals["llm_calls"])},
        {"label": _("Failed"), "key": "errors", "text": display.count(totals["errors"])},
        {"label": _("Input tokens"), "key": "input_tokens", "text": display.count(totals["input_tokens"])},
        {"label": _("Output tokens"), "key": "output_tokens", "text": display.count(totals["output_tokens"])},
        {"label": _("Agent runs"), "key": "agent_runs", "text": display.count(runs)},
    ]
    saved = sum(series.total("cache_savings_usd"))
    if saved:
        stats.append({"label": _("Saved by cached input"), "key": "cache_savings_usd", "text": display.usd(saved)})
    return {
        "series": series,
        "stats": stats,
        "panels": panels,
        "bucket_note": per[3],
    }


@dashboard_tab("analytics", template="monitoring/analytics/part.html", facets=False)
def analytics_part(request, flt, membership, part: str):
    """One group of Analytics cards, loaded by the tab beside its time series."""
    return answers.answer(f"page.analytics.{part}", request, flt, membership, lambda: _part(flt, membership, part))


def _part(flt, membership, part: str) -> dict:
    if part == "flow":
        flow = flow_q.agent_flow(flt)
        return {
            "panels": [
                _panel(
                    "agent-flow",
                    _("Agent Flow Graph"),
                    _flow_note(flow),
                    charts.agent_flow(flow),
                    _("No agent runs in this window."),
                    wide=True,
                )
                | {"legend": charts.flow_legend(flow)}
            ]
        }
    if part == "breakdowns":
        shares, latency = parallel.gather(flt, lambda: breakdowns_q.breakdowns(flt), lambda: latency_q.latency(flt))
        colours = charts.model_colours([s.name for s in shares["model"]])
        none = _("No LLM calls in this window.")
        both = _("cost and calls")
        return {
            "panels": [
                _panel("latency", _("LLM Latency"), _latency_note(latency), charts.latency_histogram(latency), none),
                _panel("by-model", _("By Model"), both, charts.breakdown(shares["model"], "model", colours), none),
                _panel("by-service", _("By Service"), both, charts.breakdown(shares["service"], "service"), none),
                _panel("by-user", _("By End User"), both, charts.breakdown(shares["user"], "user"), none),
            ]
        }
    if part == "scores":
        return {"panels": _score_panels(flt, membership.project)}
    raise Http404("No such part")


SCORES_SHOWN = 4  # the window's most given scores, each with a trend, a distribution and breakdowns


def _summary(flt, project, name: str) -> quality_q.Summary:
    """One score's summary, read as its config says (FEEDBACK is boolean without one)."""
    config = ScoreConfig.objects.filter(project=project, name=name).first()
    kind = config.data_type if config else ("boolean" if name == FEEDBACK else "")
    bounds = config.bounds if config else ((0.0, 1.0) if name == FEEDBACK else None)
    return quality_q.summary(flt, name, pass_marks(project), bounds=bounds, kind=kind)


def _score_panels(flt, project) -> list[dict]:
    """Per score given in the window (the most given SCORES_SHOWN): its trend, distribution and
    breakdowns by model, agent and service."""
    found = [_summary(flt, project, name) for name in quality_q.names(flt, SCORES_SHOWN)]
    if not found:
        return [
            _panel(
                "scores",
                _("Scores"),
                "",
                None,
                _(
                    "No scores in this window: evaluation events, the scores API, judges and people's feedback show here."
                ),
                wide=True,
            )
        ]
    dims = {"model": (_("Model"), NO_MODEL), "agent": (_("Agent"), NO_AGENT), "service": (_("Service"), NO_SERVICE)}
    panels = []
    for i, summary in enumerate(found):
        note = ngettext("%(count)s score", "%(count)s scores", summary.count) % {"count": display.count(summary.count)}
        if summary.mean is not None:
            note = _("mean %(mean)s") % {"mean": display.score(summary.mean)} + " · " + note
        if summary.failing:
            note += " · " + _("%(count)s failing") % {"count": display.count(summary.failing)}
        key = f"score-{i}"
        panels += [
            _panel(
                f"{key}-trend",
                _("%(name)s: trend") % {"name": summary.name},
                note,
                charts.score_trend(summary),
                _("No scores in this window."),  # a score of the window that the filter bar leaves out
            ),
            _panel(
                f"{key}-distribution",
                _("%(name)s: distribution") % {"name": summary.name},
                _("counts per label") if summary.kind == "labels" else _("counts per value range"),
                charts.score_distribution(summary),
                _("No values to draw."),
            ),
            {
                "id": f"{key}-breakdowns",
                "title": _("%(name)s: by model, agent and service") % {"name": summary.name},
                "score": summary.name,
                "wide": True,
                "breakdowns": [
                    {"dim": dim, "title": dims[dim][0], "none": dims[dim][1], "rows": summary.breakdowns.get(dim, [])}
                    for dim in quality_q.DIMENSIONS
                ],
            },
        ]
    return panels


NO_MODEL = gettext_lazy("(no model)")
NO_AGENT = gettext_lazy("(no agent run)")
NO_SERVICE = gettext_lazy("(not settled yet, or a session)")


def _lazy(key: str, title: str, url: str, wide: bool = False) -> dict:
    return {"id": key, "title": title, "lazy_url": url, "wide": wide}


def _panel(key: str, title: str, note: str, figure: dict | None, empty: str, wide: bool = False) -> dict:
    """One chart card; `fig_id` names both the chart's div (data-chart) and its figure's json_script."""
    return {
        "id": key,
        "fig_id": f"fig-{key}",
        "title": title,
        "note": note,
        "figure": figure,
        "empty": empty,
        "wide": wide,
    }


def _cache_note(series) -> str:
    """What the Input Cache card's bars are, and what the cache did: "tokens per hour · 62% of input
    from cache · $1.20 saved"."""
    inputs = sum(series.total("input_tokens"))
    read = sum(series.total("cache_read_tokens"))
    saved = sum(series.total("cache_savings_usd"))
    parts = [
        {"minute": _("tokens per minute"), "hour": _("tokens per hour"), "day": _("tokens per day")}[series.bucket]
    ]
    if inputs and read:
        parts.append(_("%(share)s of input from cache") % {"share": display.percent(read / inputs, 0)})
    if saved:
        parts.append(_("%(saved)s saved") % {"saved": display.usd(saved)})
    return " · ".join(parts)


def _flow_note(flow: flow_q.FlowGraph) -> str:
    parts = [
        ngettext("%(count)s agent run", "%(count)s agent runs", flow.runs) % {"count": display.count(flow.runs)},
        _("colour = error rate"),
    ]
    if flow.sampled_every > 1:
        parts.append(_("drawn from 1 in %(every)s runs, counts scaled") % {"every": display.count(flow.sampled_every)})
    if flow.hidden_nodes:
        parts.append(
            _("top %(shown)s of %(all)s steps")
            % {"shown": display.count(len(flow.nodes)), "all": display.count(len(flow.nodes) + flow.hidden_nodes)}
        )
    return " · ".join(parts)


def _latency_note(latency: latency_q.Latency) -> str:
    if not latency.calls:
        return ""
    return _("p50 %(p50)s · p95 %(p95)s · p99 %(p99)s") % {
        "p50": display.duration_ms(latency.p50_ms),
        "p95": display.duration_ms(latency.p95_ms),
        "p99": display.duration_ms(latency.p99_ms),
    }


@api_view
def api_timeseries(request, membership):
    """Per bucket (timeseries.bucket_for: minute under 3 h, hour under 3 days, else day): cost (USD,
    without the bucket's `unpriced_calls`), tokens, LLM calls and failed calls."""
    flt, error = filter_or_400(request, membership)
    if error:
        return error
    return JsonResponse(answers.answer("api.timeseries", request, flt, membership, lambda: _timeseries(flt)))


def _timeseries(flt) -> dict:
    series = timeseries_q.timeseries(flt)
    points = series.points()
    for point in points:  # bucket starts with the offset of the asked zone (`tz=`, default UTC)
        point["t"] = iso(point["t"], flt.tz)
    return {
        "bucket": series.bucket,
        "tz": flt.tz,
        "from": iso(flt.window.start, flt.tz),
        "to": iso(flt.window.end, flt.tz),
        "points": points,
    }


@api_view
def api_score_summary(request, membership):
    """One score over the window: `GET …/scores/summary?name=<score>&from=&to=|range=` (and the
    filter bar's service, model, status, tz) answers {"name", "bucket", "tz", "from", "to", "count",
    "mean", "failing", "trend": [{"t", "mean", "count"}], "distribution": {"kind": "histogram" |
    "labels", "bins": [{"low", "high", "count"}], "labels": [{"label", "count"}]}, "breakdowns":
    {"model" | "agent" | "service": [{"key", "count", "mean", "failing"}]}} (monitoring/queries/quality.py
    says which scores a window holds and when one fails)."""
    name = request.GET.get("name", "").strip()
    if not name:
        return JsonResponse({"error": _("'name' is required: the score's name, e.g. name=relevance")}, status=400)
    flt, error = filter_or_400(request, membership)
    if error:
        return error
    data = _summary(flt, membership.project, name).as_dict(flt.tz)
    data |= {"tz": flt.tz, "from": iso(flt.window.start, flt.tz), "to": iso(flt.window.end, flt.tz)}
    return JsonResponse(data)
