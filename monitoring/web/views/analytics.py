"""The Analytics tab (Cost Trend, Token Usage, Agent Flow Graph, breakdowns, latency) and its
time-series API. Numbers come from `monitoring.queries` (timeseries, flow, breakdowns, latency), figures from `monitoring.web.charts`."""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from monitoring.queries import breakdowns as breakdowns_q
from monitoring.queries import flow as flow_q
from monitoring.queries import latency as latency_q
from monitoring.queries import parallel
from monitoring.queries import timeseries as timeseries_q
from monitoring.queries.filter import iso
from monitoring.web import charts, display
from monitoring.web.views.api import api_view, filter_or_400
from monitoring.web.views.dashboard import dashboard_tab, filter_query


@dashboard_tab("analytics")
def analytics(request, flt, membership):
    """The tab answers with the time series; the flow graph and the breakdowns load beside it
    (`analytics_part`), each in its own request, so the tab is on screen while they are drawn."""
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
    panels = [  # in the order the grid shows them; a None figure shows its empty text instead
        _panel(
            "cost-trend",
            _("Cost Trend"),
            per[0],
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
    ]
    totals = {m: sum(series.total(m)) for m in timeseries_q.METRICS}
    stats = [
        {"label": _("Cost"), "key": "cost_usd", "text": display.usd(totals["cost_usd"])},
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
    raise Http404("No such part")


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
    """Per bucket (hour up to 48 h, else day): cost, tokens, LLM calls and failed calls."""
    flt, error = filter_or_400(request, membership)
    if error:
        return error
    series = timeseries_q.timeseries(flt)
    points = series.points()
    for point in points:  # bucket starts with the offset of the asked zone (`tz=`, default UTC)
        point["t"] = iso(point["t"], flt.tz)
    return JsonResponse(
        {
            "bucket": series.bucket,
            "tz": flt.tz,
            "from": iso(flt.window.start, flt.tz),
            "to": iso(flt.window.end, flt.tz),
            "points": points,
        }
    )
