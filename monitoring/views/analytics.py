"""The Analytics tab (Cost Trend, Token Usage, Agent Flow Graph, breakdowns, latency) and its
time-series API. Numbers come from `monitoring.analytics`, figures from `monitoring.charts`."""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.urls import reverse

from monitoring import analytics as questions
from monitoring import charts
from monitoring.views.api import api_view, filter_or_400
from monitoring.views.dashboard import dashboard_tab, filter_query


@dashboard_tab("analytics")
def analytics(request, flt, membership):
    """The tab answers with the time series; the flow graph and the breakdowns load beside it
    (`analytics_part`), each in its own request, so the tab is on screen while they are drawn."""
    series = questions.timeseries(flt)
    runs = sum(series.runs)
    if series.empty and not runs:  # nothing to chart: skip the other scans
        return {"analytics_empty": True, "series": series}
    colours = charts.model_colours(series.models)  # a model keeps its colour in every chart
    none = "No LLM calls in this window."
    part_url = reverse("monitoring:analytics-part", args=[membership.project_id, "{part}"]) + filter_query(request)
    panels = [  # in the order the grid shows them; a None figure shows its empty text instead
        _panel(
            "cost-trend",
            "Cost Trend",
            f"USD per {series.bucket}, by model",
            charts.cost_trend(series, colours),
            "No cost in this window.",
            wide=True,
        ),
        _panel(
            "token-usage",
            "Token Usage",
            f"tokens per {series.bucket}, by model",
            charts.token_usage(series, colours),
            "No tokens reported in this window.",
        ),
        _panel(
            "calls-errors", "LLM Calls & Errors", f"calls per {series.bucket}", charts.calls_and_errors(series), none
        ),
        _lazy("agent-flow", "Agent Flow Graph", part_url.replace("%7Bpart%7D", "flow"), wide=True),
        _lazy("breakdowns", "Latency and breakdowns", part_url.replace("%7Bpart%7D", "breakdowns"), wide=True),
    ]
    totals = {m: sum(series.total(m)) for m in questions.METRICS}
    stats = [
        ("Cost", "cost_usd", f"${totals['cost_usd']:,.4f}"),
        ("LLM calls", "llm_calls", f"{totals['llm_calls']:,}"),
        ("Failed", "errors", f"{totals['errors']:,}"),
        ("Input tokens", "input_tokens", f"{totals['input_tokens']:,}"),
        ("Output tokens", "output_tokens", f"{totals['output_tokens']:,}"),
        ("Agent runs", "agent_runs", f"{runs:,}"),
    ]
    return {"series": series, "stats": stats, "panels": panels}


@dashboard_tab("analytics", template="monitoring/analytics/part.html", facets=False)
def analytics_part(request, flt, membership, part: str):
    """One group of Analytics cards, loaded by the tab beside its time series."""
    if part == "flow":
        flow = questions.agent_flow(flt)
        return {
            "panels": [
                _panel(
                    "agent-flow",
                    "Agent Flow Graph",
                    _flow_note(flow),
                    charts.agent_flow(flow),
                    "No agent runs in this window.",
                    wide=True,
                )
            ]
        }
    if part == "breakdowns":
        shares = questions.breakdowns(flt)
        latency = questions.latency(flt)
        colours = charts.model_colours([s.name for s in shares["model"]])
        none = "No LLM calls in this window."
        return {
            "panels": [
                _panel("latency", "LLM Latency", _latency_note(latency), charts.latency_histogram(latency), none),
                _panel(
                    "by-model", "By Model", "cost and calls", charts.breakdown(shares["model"], "model", colours), none
                ),
                _panel(
                    "by-service", "By Service", "cost and calls", charts.breakdown(shares["service"], "service"), none
                ),
                _panel("by-user", "By End User", "cost and calls", charts.breakdown(shares["user"], "user"), none),
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


def _flow_note(flow: questions.FlowGraph) -> str:
    note = f"{flow.runs:,} agent run{'' if flow.runs == 1 else 's'} · colour = error rate"
    if flow.sampled_every > 1:
        note += f" · drawn from 1 in {flow.sampled_every} runs, counts scaled"
    if flow.hidden_nodes:
        note += f" · top {len(flow.nodes)} of {len(flow.nodes) + flow.hidden_nodes} steps"
    return note


def _latency_note(latency: questions.Latency) -> str:
    if not latency.calls:
        return ""
    return f"p50 {latency.p50_ms:,.0f} · p95 {latency.p95_ms:,.0f} · p99 {latency.p99_ms:,.0f} ms"


@api_view
def api_timeseries(request, membership):
    """Per bucket (hour up to 48 h, else day): cost, tokens, LLM calls and failed calls."""
    flt, error = filter_or_400(request, membership)
    if error:
        return error
    series = questions.timeseries(flt)
    return JsonResponse(
        {
            "bucket": series.bucket,
            "from": flt.window.start.isoformat(),
            "to": flt.window.end.isoformat(),
            "points": series.points(),
        }
    )
