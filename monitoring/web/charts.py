"""Rows -> Plotly figures (no SQL, no HTTP). Each function takes what `monitoring.queries` returns
and gives a JSON-ready figure dict for `Plotly.newPlot`, or None when there is nothing to draw, so
the template shows an empty state instead of a blank chart.

One look for all: transparent background, system font, compact margins, the same colour for a model
in every chart, red for errors. Times are in the viewer's zone (the active Django time zone), sent as
naive "YYYY-MM-DD HH:MM" strings because plotly.js does not read time-zone offsets. Every word on a
chart (legends, hover text, axis titles, date formats) is translated with gettext: figures are built
per request, in the viewer's language.
"""

from __future__ import annotations

import functools
import html
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

# Imported for real before plotly is used: plotly's validators peek at sys.modules["numpy"], and
# chdb imports numpy on a connection's first query, so a background job's first query in another
# thread could hand this module a half-initialized numpy (seen: the URLconf's import failing with
# "partially initialized module 'numpy'"). A real import waits for the other thread's to finish.
import numpy  # noqa: F401
import plotly.graph_objects as go
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from plotly.colors import sample_colorscale, unlabel_rgb

from monitoring.web import display

if TYPE_CHECKING:  # the shapes it draws; charts never run a query
    from monitoring.queries.breakdowns import Share
    from monitoring.queries.flow import FlowGraph
    from monitoring.queries.latency import Latency
    from monitoring.queries.quality import Summary
    from monitoring.queries.timeseries import Timeseries

INK, MUTED, GRID, LINE = "#1d2330", "#6b7280", "#eef0f3", "#d5d9e0"
ACCENT, ERROR, OTHER, NO_MODEL = "#3b5bdb", "#e03131", "#adb5bd", "#868e96"
# Ten hues far apart (none red: red means failure here).
PALETTE = ("#4c6ef5", "#f59f00", "#12b886", "#be4bdb", "#15aabf", "#e64980", "#82c91e", "#7950f2", "#a0522d", "#495057")
MAX_SERIES = 8  # models drawn one by one in time series; the rest are stacked as "Other"
# Error rate -> colour: most steps fail rarely, so the scale turns amber early and red by 50 %.
ERROR_SCALE = [[0.0, "#2f9e44"], [0.05, "#94d82d"], [0.15, "#fab005"], [0.5, "#e8590c"], [1.0, "#c92a2a"]]
# Node marks from fonts every system has (emoji are missing on many Linux desktops and servers).
ICONS = {"agent": "◆", "tool": "⚙", "llm": "●", "embed": "■"}
NO_NAME = {
    "model": gettext_lazy("(no model)"),
    "service": gettext_lazy("(no service)"),
    "user": gettext_lazy("(no user)"),
    "label": gettext_lazy("(no label)"),
}

# Figures are made with no template (plotly's default one is large, and copying it into every
# figure cost more than the figure); _figure gives them the house template as plotly.js reads it.
_BARE = go.layout.Template()
_TEMPLATE = go.layout.Template(
    layout={
        "font": {"family": "system-ui, -apple-system, 'Segoe UI', sans-serif", "size": 12, "color": INK},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "margin": {"l": 56, "r": 16, "t": 28, "b": 36},
        "hoverlabel": {"font": {"size": 12}, "bordercolor": LINE},
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom", "font": {"size": 11}},
        "xaxis": {
            "gridcolor": GRID,
            "linecolor": LINE,
            "zeroline": False,
            "automargin": True,
            "tickfont": {"color": MUTED},
        },
        "yaxis": {
            "gridcolor": GRID,
            "linecolor": LINE,
            "zeroline": False,
            "automargin": True,
            "tickfont": {"color": MUTED},
            "rangemode": "tozero",
        },
        "colorway": list(PALETTE),
        "bargap": 0.18,
    }
)


def _trace(kind: str, **props) -> dict:
    """One trace of type `kind` ("bar", "scatter", "sankey"), with plotly's property names."""
    return {"type": kind, **props}


def _figure(traces: list[dict], height: int, **layout) -> dict:
    """The figure of `traces` (from _trace) and `layout` (plotly's layout properties) as plotly.js
    takes it ({"data", "layout"}), with the house template and `height` px.

    Made at once and unvalidated (the traces are checked against plotly's schema in the tests):
    Figure.add_trace re-copies every trace already added and update_xaxes walks the whole layout,
    so the 16 traces of a token chart cost 35 ms that way and 6 ms at once."""
    fig = go.Figure(traces, layout={"template": _BARE, **layout}, _validate=False)
    data = json.loads(fig.to_json())
    data["layout"] |= {"template": _template_json(), "height": height, "autosize": True}
    return data


@functools.cache
def _template_json() -> dict:
    """The template as plotly.js reads it, made once (merging it into each figure cost more than
    drawing the figure)."""
    return json.loads(go.Figure(layout={"template": _TEMPLATE}).to_json())["layout"]["template"]


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _short(text: str, limit: int = 32) -> str:
    return _esc(text if len(text) <= limit else text[: limit - 1] + "…")


def _esc(text: str) -> str:
    """Names come from spans, i.e. from clients; Plotly renders a subset of HTML (links, styles) in
    labels and hover text, so every name is escaped."""
    return html.escape(text, quote=False)


def _counts(largest: float) -> dict:
    """Axis ticks for counts: no "500m" of a call; "12k" for large numbers."""
    if largest >= 1000:
        return {"tickformat": "~s"}
    return {"tickformat": ",d", "dtick": 1} if largest <= 5 else {"tickformat": ",d"}


def _decimals(largest: float, least: int = 0) -> int:
    """Decimals a tick label needs on an axis from 0 to `largest`: plotly puts about ten ticks on
    it, so a twentieth of it must still differ in the last digit shown ($0.00015 and $0.0002 are
    not both "$0.0002"); at most 10. Formats end in "~", so trailing zeros are dropped."""
    if largest <= 0 or not math.isfinite(largest):
        return least
    return min(10, max(least, math.ceil(-math.log10(largest / 20))))


def _usd_axis(largest: float) -> dict:
    """A USD axis from 0 to `largest` whose ticks never repeat a label."""
    return {"tickprefix": "$", "tickformat": f",.{_decimals(largest, 2)}~f"}


def _rate_axis(largest: float) -> dict:
    """A share axis (0..1 as %): 0-100 % in quarters when nothing failed (a flat line on a fixed
    scale, not 0-4.8 %), else up to a little above the largest point, with the digits its ticks need."""
    if not largest:
        return {"range": [0, 1], "tickformat": ".0%", "dtick": 0.25}
    top = min(1.0, max(0.05, largest * 1.15))
    return {"range": [0, top], "tickformat": f".{max(0, _decimals(top) - 2)}~%"}


def model_colours(models) -> dict[str, str]:
    """A model keeps its colour across charts; models are given in the order they are drawn."""
    return {m: (PALETTE[i % len(PALETTE)] if m else NO_MODEL) for i, m in enumerate(models)}


# --- time series ----------------------------------------------------------------------------------


def _x(series: Timeseries | Summary) -> list[str]:
    """Bucket starts as wall-clock times of the viewer's zone."""
    return [timezone.localtime(t).strftime("%Y-%m-%d %H:%M") for t in series.times]


def _zone_name() -> str:
    return timezone.localtime(timezone.now()).tzname() or ""


def _time_axis(series: Timeseries | Summary) -> dict:
    """Bars and points sit on their bucket's start; daily buckets are labelled by date alone. Tick
    formats are d3 time formats, translated (plotly.js would print English month names)."""
    zone = _zone_name()
    if series.bucket == "minute":
        # Translators: a d3 time format for a minute axis tick (hour and minute).
        tick = _("%H:%M")
    elif series.bucket == "hour":
        # Translators: a d3 time format for an hourly axis tick: hour, then the day below it.
        tick = _("%H:%M\n%b %-d")
    else:
        return {
            "type": "date",
            "hoverformat": f"%Y-%m-%d {zone}",
            # Translators: a d3 time format for a daily axis tick (month and day).
            "tickformat": _("%b %-d"),
            "nticks": 10,
            "tickangle": 0,
        }
    return {"type": "date", "hoverformat": f"%Y-%m-%d %H:%M {zone}", "tickformat": tick, "nticks": 8, "tickangle": 0}


def _stacked(bars: list[dict], series: Timeseries, yaxis: dict, height: int = 300) -> dict:
    """Bars stacked per bucket on the time axis, one hover box per bucket."""
    return _figure(
        bars,
        height,
        barmode="stack",
        hovermode="x unified",
        legend_traceorder="normal",
        xaxis=_time_axis(series),
        yaxis=yaxis,
    )


def _folded(series: Timeseries, metric: str) -> list[tuple[str, list]]:
    """(label, values) per drawn model, at most MAX_SERIES, the rest summed into "Other"."""
    shown = series.models[: MAX_SERIES - 1] if len(series.models) > MAX_SERIES else series.models
    out = [(m, series.values[metric][m]) for m in shown]
    rest = [series.values[metric][m] for m in series.models[len(shown) :]]
    if rest:
        out.append((_("Other"), [sum(col) for col in zip(*rest, strict=False)]))
    return out


def _model_label(model: str) -> str:
    return _esc(model) if model else str(NO_NAME["model"])


def cost_trend(series: Timeseries, colours: dict[str, str]) -> dict | None:
    """Stacked bars: USD per bucket, one colour per model; calls without a price as open marks on
    the zero line, their count in the hover (unpriced, not $0)."""
    if not any(series.total("cost_usd")) and not any(series.extra["unpriced_calls"]):
        return None
    x = _x(series)
    bars = [
        _trace(
            "bar",
            x=x,
            y=[round(v, 10) for v in values],
            name=_model_label(model),
            marker_color=colours.get(model, OTHER),
            customdata=[display.usd(v) for v in values],  # the digits a tiny cost needs, as on the cards
            hovertemplate="%{fullData.name}: %{customdata}<extra></extra>",
        )
        for model, values in _folded(series, "cost_usd")
        if any(values)
    ]
    unpriced = series.extra["unpriced_calls"]
    if any(unpriced):  # calls without a price add nothing to a bar: their count is in the hover
        label = str(display.UNPRICED)
        bars.append(
            _trace(
                "scatter",
                x=x,
                y=[0 if n else None for n in unpriced],
                name=label,
                mode="markers",
                marker={"color": OTHER, "size": 6, "symbol": "circle-open"},
                customdata=[display.unpriced_usd(0, n) for n in unpriced],
                hovertemplate="%{customdata}<extra></extra>",
            )
        )
    totals = series.total("cost_usd")
    return _stacked(bars, series, _usd_axis(max(totals)), height=320)


def token_usage(series: Timeseries, colours: dict[str, str]) -> dict | None:
    """Input (top) and output (bottom) tokens per bucket, stacked by model; one legend entry per model."""
    if not any(series.total("input_tokens")) and not any(series.total("output_tokens")):
        return None
    # Two rows on one time axis, laid out by hand: make_subplots is slow.
    mode = "lines+markers" if len(series.times) <= 3 else "lines"  # one point makes no line
    inputs, outputs = _folded(series, "input_tokens"), _folded(series, "output_tokens")
    x, traces = _x(series), []
    for (model, ins), (_model, outs) in zip(inputs, outputs, strict=False):
        if not any(ins) and not any(outs):
            continue
        colour = colours.get(model, OTHER)
        for yaxis, values in (("y", ins), ("y2", outs)):
            traces.append(
                _trace(
                    "scatter",
                    x=x,
                    y=values,
                    yaxis=yaxis,
                    name=_model_label(model),
                    legendgroup=model or "-",
                    showlegend=yaxis == "y",
                    stackgroup=yaxis,
                    mode=mode,
                    line={"width": 1.5, "color": colour},
                    fillcolor=_rgba(colour, 0.35),
                    hovertemplate="%{fullData.name}: %{y:,d}<extra></extra>",
                )
            )
    quiet = {"size": 11, "color": MUTED}
    return _figure(
        traces,
        360,
        hovermode="x unified",
        legend_traceorder="normal",
        xaxis={"anchor": "y2", **_time_axis(series)},
        yaxis={
            "domain": [0.55, 1],
            "title": {"text": _("input"), "font": quiet},
            **_counts(max(series.total("input_tokens"))),
        },
        yaxis2={
            "domain": [0, 0.45],
            "title": {"text": _("output"), "font": quiet},
            **_counts(max(series.total("output_tokens"))),
        },
    )


def calls_and_errors(series: Timeseries) -> dict | None:
    """Bars of successful and failed LLM calls per bucket, and the error rate on its own axis."""
    calls, errors = series.total("llm_calls"), series.total("errors")
    if not any(calls):
        return None
    x = _x(series)
    ok, failed, rate_name = _("ok"), _("failed"), _("error rate")
    rates = [round(e / c, 6) if c else None for c, e in zip(calls, errors, strict=False)]
    ok_bars = _trace(
        "bar",
        x=x,
        y=[c - e for c, e in zip(calls, errors, strict=False)],
        name=ok,
        marker_color=_rgba(ACCENT, 0.75),
        hovertemplate=f"{ok}: %{{y:,d}}<extra></extra>",
    )
    failed_bars = _trace(
        "bar", x=x, y=errors, name=failed, marker_color=ERROR, hovertemplate=f"{failed}: %{{y:,d}}<extra></extra>"
    )
    rate_line = _trace(
        "scatter",
        x=x,
        y=rates,
        name=rate_name,
        yaxis="y2",
        mode="lines+markers",
        connectgaps=False,
        line={"color": ERROR, "width": 1.5, "dash": "dot"},
        marker={"size": 4},
        customdata=[display.percent(r, 2) if r is not None else "" for r in rates],
        hovertemplate=f"{rate_name}: %{{customdata}}<extra></extra>",
    )
    return _figure(
        [ok_bars, failed_bars, rate_line],
        300,
        barmode="stack",
        hovermode="x unified",
        legend_traceorder="normal",
        xaxis=_time_axis(series),
        yaxis=_counts(max(calls)),
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
            "zeroline": False,
            "tickfont": {"color": MUTED},
            # A rate never exceeds 100 %: the axis stops there, with a little room above a 100 % point.
            **_rate_axis(max(r for r in rates if r is not None)),
        },
    )


def input_cache(series: Timeseries) -> dict | None:
    """Input tokens per bucket, stacked: read from the provider's prompt cache, written to it, and
    the rest (uncached). Input counts include cache reads and writes (monitoring/semantics/facts.py)."""
    read, write = series.total("cache_read_tokens"), series.total("cache_write_tokens")
    if not any(read) and not any(write):
        return None
    inputs = series.total("input_tokens")
    x = _x(series)
    parts = [
        (
            _("uncached input"),
            [max(i - r - w, 0) for i, r, w in zip(inputs, read, write, strict=False)],
            _rgba(ACCENT, 0.35),
        ),
        (_("cache write"), write, "#f59f00"),
        (_("cache read"), read, "#12b886"),
    ]
    bars = [
        _trace("bar", x=x, y=values, name=name, marker_color=colour, hovertemplate=f"{name}: %{{y:,d}}<extra></extra>")
        for name, values, colour in parts
        if any(values)
    ]
    return _stacked(bars, series, _counts(max(inputs)))


def agent_runs(series: Timeseries) -> dict | None:
    """Agent runs per bucket, finished and failed stacked (a failed run: one whose agent step failed)."""
    if not any(series.runs):
        return None
    x = _x(series)
    ok, failed = _("ok"), _("failed")
    bars = [
        _trace(
            "bar",
            x=x,
            y=[r - f for r, f in zip(series.runs, series.failed_runs, strict=False)],
            name=ok,
            marker_color=_rgba("#7950f2", 0.7),
            hovertemplate=f"{ok}: %{{y:,d}}<extra></extra>",
        ),
        _trace(
            "bar",
            x=x,
            y=series.failed_runs,
            name=failed,
            marker_color=ERROR,
            hovertemplate=f"{failed}: %{{y:,d}}<extra></extra>",
        ),
    ]
    return _stacked(bars, series, _counts(max(series.runs)))


# --- Agent Flow Graph -----------------------------------------------------------------------------


def _error_colour(rate: float) -> str:
    r, g, b = unlabel_rgb(sample_colorscale(ERROR_SCALE, [min(max(rate, 0.0), 1.0)])[0])
    return f"#{round(r):02x}{round(g):02x}{round(b):02x}"


SANKEY_PAD = 18  # px between nodes of a column: more than a 12 px label's line
SANKEY_MAX_HEIGHT = 1000  # 60 nodes in one column still get ~16 px each: the labels do not collide


def _tallest_column(keys: list[str], links: list[tuple[str, str]]) -> int:
    """How many nodes the fullest column of the Sankey holds, as plotly.js lays it out (d3-sankey,
    node.align "left": a node's column is its distance from a source)."""
    outgoing: dict[str, list[str]] = {}
    incoming = {t for _s, t in links}
    for s, t in links:
        outgoing.setdefault(s, []).append(t)
    depth = {k: 0 for k in keys if k not in incoming}
    frontier = list(depth)
    while frontier:  # breadth first: cycles stop at the first visit
        nxt = []
        for k in frontier:
            for t in outgoing.get(k, []):
                if t not in depth:
                    depth[t] = depth[k] + 1
                    nxt.append(t)
        frontier = nxt
    columns: dict[int, int] = {}
    for k in keys:
        column = depth.get(k, 0)
        columns[column] = columns.get(column, 0) + 1
    return max(columns.values(), default=1)


def flow_kinds() -> dict[str, str]:
    """The flow graph's node kinds as people read them (their marks: ICONS)."""
    return {"agent": _("agent step"), "tool": _("tool"), "llm": _("LLM call"), "embed": _("embedding")}


def flow_legend(flow: FlowGraph) -> list[tuple[str, str]]:
    """(mark, kind) of each node kind the graph draws, in a fixed order: the legend under it."""
    present = {n.kind for n in flow.nodes}
    return [(ICONS[k], label) for k, label in flow_kinds().items() if k in present]


def agent_flow(flow: FlowGraph) -> dict | None:
    """A Sankey of agent steps and LLM calls: link width = how often a step led to the next, node colour
    = error rate, hover = count, errors and average latency. A "start" node feeds each run's entry
    step, so every step is visible even when it has no parent node."""
    if flow.empty:
        return None
    many = len(flow.nodes) > 20
    keys = ["start"] + [n.key for n in flow.nodes]
    runs = ngettext("%(count)s run", "%(count)s runs", flow.runs) % {"count": display.count(flow.runs)}
    labels = [f"▶ {runs}"]
    colours = [OTHER]
    start = _("start")  # not inside the f-string: xgettext does not read f-strings
    hovers = [f"<b>{start}</b><br>{runs}"]
    kinds = flow_kinds()
    for n in flow.nodes:
        labels.append(f"{ICONS.get(n.kind, '')} {_short(n.label, 24 if many else 32)}")
        colours.append(_error_colour(n.error_rate))
        hover = f"<b>{_esc(n.label)}</b> ({kinds.get(n.kind, n.kind)})<br>" + _(
            "%(calls)s calls · %(failed)s failed (%(rate)s)<br>avg %(latency)s"
        ) % {
            "calls": display.count(n.count),
            "failed": display.count(n.errors),
            "rate": display.percent(n.error_rate),
            "latency": display.duration_ms(n.avg_latency_ms),
        }
        if n.self_calls:
            hover += "<br>" + _("called itself %(count)s×") % {"count": display.count(n.self_calls)}
        hovers.append(hover)
    if flow.hidden_edges:
        keys.append("other")
        labels.append("… " + _("%(count)s more steps") % {"count": display.count(flow.hidden_nodes)})
        colours.append(OTHER)
        hovers.append(
            "<b>"
            + _("%(count)s less frequent steps") % {"count": display.count(flow.hidden_nodes)}
            + "</b><br>"
            + _("hidden to keep the graph readable")
        )
    index = {k: i for i, k in enumerate(keys)}
    by_key = {n.key: n for n in flow.nodes}
    links = [("start", n.key, n.roots) for n in flow.nodes if n.roots]
    links += [(p, c, count) for (p, c), count in sorted(flow.edges.items(), key=lambda e: -e[1])]
    links += [("other", c, count) for c, count in flow.hidden_edges.items()]

    def name(key):
        return _esc(by_key[key].label if key in by_key else key)

    sankey = _trace(
        "sankey",
        arrangement="snap",
        valueformat=",d",
        domain={"x": [0, 0.94], "y": [0, 1]},  # room on the right for the colour scale
        node={
            # A step that leads nowhere stays beside its caller ("justify" would stack every such step
            # in the last column, whose labels plotly.js puts on their left, over the column before).
            "align": "left",
            "label": labels,
            "color": colours,
            # At least a label's line height between nodes, so labels of thin neighbours never collide.
            "pad": SANKEY_PAD,
            "thickness": 12 if many else 16,
            "line": {"color": "rgba(0,0,0,0.25)", "width": 0.5},
            "customdata": hovers,
            "hovertemplate": "%{customdata}<extra></extra>",
        },
        link={
            "source": [index[s] for s, _, _ in links],
            "target": [index[t] for _, t, _ in links],
            "value": [v for _, _, v in links],
            "color": [_rgba(colours[index[t]], 0.35) if s != "start" else _rgba(OTHER, 0.3) for s, t, _v in links],
            "customdata": [f"{name(s)} → {name(t)}: {v:,}×" for s, t, v in links],
            "hovertemplate": "%{customdata}<extra></extra>",
        },
        textfont={"size": 11 if many else 12, "color": INK},
    )
    # An invisible marker trace only to draw the colour scale beside the graph.
    scale = _trace(
        "scatter",
        x=[None],
        y=[None],
        mode="markers",
        hoverinfo="skip",
        showlegend=False,
        marker={
            "colorscale": ERROR_SCALE,
            "cmin": 0,
            "cmax": 1,
            "color": [0],
            "showscale": True,
            "colorbar": {
                "title": {"text": _("errors"), "side": "right", "font": {"size": 11}},
                "tickformat": ".0%",
                "thickness": 8,
                "len": 0.6,
                "x": 1.0,
                "xpad": 4,
                "tickfont": {"size": 10, "color": MUTED},
                "outlinewidth": 0,
            },
        },
    )
    tallest = _tallest_column(keys, [(s, t) for s, t, _v in links])
    return _figure(
        [sankey, scale],
        min(SANKEY_MAX_HEIGHT, max(320, 40 + tallest * (SANKEY_PAD + 14))),
        xaxis={"visible": False},
        yaxis={"visible": False},
        margin={"l": 8, "r": 56, "t": 8, "b": 8},
    )


# --- breakdowns and latency -----------------------------------------------------------------------


def _share_label(share: Share, dim: str) -> str:
    if share.folded:
        return _("Other (%(count)s)") % {"count": display.count(share.folded)}
    return _esc(share.name) if share.name else str(NO_NAME[dim])


def breakdown(shares: list[Share], dim: str, colours: dict[str, str] | None = None) -> dict | None:
    """Horizontal bars, biggest first: cost (left) and calls with their failures (right)."""
    if not shares or not any(s.calls for s in shares):
        return None
    labels, seen = [], set()
    for s in shares:
        label = _short(_share_label(s, dim), 28)
        while label in seen:  # two long names cut to the same text must stay two bars
            label += " "
        seen.add(label)
        labels.append(label)
    hover = [
        f"<b>{_share_label(s, dim)}</b><br>"
        + _("%(cost)s · %(calls)s calls · %(failed)s failed<br>%(input)s in / %(output)s out tokens · avg %(latency)s")
        % {
            "cost": display.unpriced_usd(s.cost_usd, s.unpriced),
            "calls": display.count(s.calls),
            "failed": display.count(s.errors),
            "input": display.count(s.input_tokens),
            "output": display.count(s.output_tokens),
            "latency": display.duration_ms(s.avg_latency_ms),
        }
        for s in shares
    ]
    bar_colours = [(OTHER if s.folded else (colours or {}).get(s.name, ACCENT)) for s in shares]
    # Two panels side by side on one category axis, laid out by hand (make_subplots is slow).
    cost_bars = _trace(
        "bar",
        y=labels,
        x=[round(s.cost_usd, 10) for s in shares],
        orientation="h",
        marker_color=bar_colours,
        customdata=hover,
        hovertemplate="%{customdata}<extra></extra>",
        showlegend=False,
        # The label says what the bar cannot: a tiny cost's digits, calls without a price (not $0).
        text=[display.unpriced_usd(s.cost_usd, s.unpriced) for s in shares],
        texttemplate="%{text}",
        textposition="outside",
        cliponaxis=False,
        textfont={"size": 10},
    )
    ok_bars = _trace(
        "bar",
        y=labels,
        x=[s.calls - s.errors for s in shares],
        xaxis="x2",
        orientation="h",
        name=_("ok"),
        marker_color=_rgba(ACCENT, 0.75),
        customdata=hover,
        hovertemplate="%{customdata}<extra></extra>",
    )
    failed_bars = _trace(
        "bar",
        y=labels,
        x=[s.errors for s in shares],
        xaxis="x2",
        orientation="h",
        name=_("failed"),
        marker_color=ERROR,
        customdata=hover,
        hovertemplate="%{customdata}<extra></extra>",
    )
    quiet = {"size": 11, "color": MUTED}
    return _figure(
        [cost_bars, ok_bars, failed_bars],
        max(180, 70 + 26 * len(shares)),
        barmode="stack",
        showlegend=False,
        margin={"t": 24},
        # Room right of the longest cost bar for its label.
        xaxis={
            "domain": [0, 0.47],
            **_usd_axis(max(s.cost_usd for s in shares)),
            "range": [0, max(s.cost_usd for s in shares) * 1.4 or 1],
        },
        xaxis2={"domain": [0.53, 1], "anchor": "y", "rangemode": "tozero", **_counts(max(s.calls for s in shares))},
        yaxis={"autorange": "reversed", "showgrid": False},
        annotations=[
            {
                "text": _("Cost (USD)"),
                "x": 0,
                "xref": "paper",
                "xanchor": "left",
                "y": 1,
                "yref": "paper",
                "yanchor": "bottom",
                "showarrow": False,
                "font": quiet,
            },
            {
                "text": _("LLM calls"),
                "x": 0.53,
                "xref": "paper",
                "xanchor": "left",
                "y": 1,
                "yref": "paper",
                "yanchor": "bottom",
                "showarrow": False,
                "font": quiet,
            },
        ],
    )


def latency_histogram(latency: Latency) -> dict | None:
    """LLM calls per latency bin (log-spaced), successful and failed stacked."""
    if not latency.calls:
        return None
    x = [b.label for b in latency.bins]
    ok, failed = _("ok"), _("failed")
    bars = [
        _trace(
            "bar",
            x=x,
            y=[b.calls - b.errors for b in latency.bins],
            name=ok,
            marker_color=_rgba(ACCENT, 0.75),
            hovertemplate=f"%{{x}}: %{{y:,d}} {ok}<extra></extra>",
        ),
        _trace(
            "bar",
            x=x,
            y=[b.errors for b in latency.bins],
            name=failed,
            marker_color=ERROR,
            hovertemplate=f"%{{x}}: %{{y:,d}} {failed}<extra></extra>",
        ),
    ]
    return _figure(
        bars,
        280,
        barmode="stack",
        bargap=0.08,
        legend_traceorder="normal",
        xaxis={"type": "category", "tickfont": {"size": 10}},  # Plotly tilts the labels when they would overlap
        yaxis=_counts(max(b.calls for b in latency.bins)),
    )


# --- scores ---------------------------------------------------------------------------------------


def score_trend(summary: Summary) -> dict | None:
    """A score's mean per bucket (a line; buckets without a number leave a gap) over the bars of
    how many scores each bucket holds (right axis)."""
    if not summary.count:
        return None
    x = _x(summary)
    mean_name, count_name = _("mean"), _("scores")
    if all(m is None for m in summary.trend):  # labels only (a categorical score): its counts alone
        bars = _trace(
            "bar",
            x=x,
            y=summary.counts,
            name=count_name,
            marker_color=_rgba(ACCENT, 0.6),
            hovertemplate=f"{count_name}: %{{y:,d}}<extra></extra>",
        )
        return _figure(
            [bars],
            240,
            hovermode="x unified",
            showlegend=False,
            xaxis=_time_axis(summary),
            yaxis=_counts(max(summary.counts)),
        )
    bars = _trace(
        "bar",
        x=x,
        y=summary.counts,
        name=count_name,
        yaxis="y2",
        marker_color=_rgba(ACCENT, 0.18),
        hovertemplate=f"{count_name}: %{{y:,d}}<extra></extra>",
    )
    line = _trace(
        "scatter",
        x=x,
        y=summary.trend,
        name=mean_name,
        mode="lines+markers",
        connectgaps=False,
        line={"color": ACCENT, "width": 2},
        marker={"size": 5},
        hovertemplate=f"{mean_name}: %{{y:.3~f}}<extra></extra>",
    )
    return _figure(
        [bars, line],
        240,
        hovermode="x unified",
        legend_traceorder="normal",
        xaxis=_time_axis(summary),
        yaxis={"tickformat": ".2~f", "zeroline": False},
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "zeroline": False,
            "tickfont": {"color": MUTED},
            **_counts(max(summary.counts)),
        },
    )


def score_distribution(summary: Summary) -> dict | None:
    """A numeric score's histogram (bins labelled low–high), or the count of each label."""
    if summary.labels:
        x = [_short(label or str(NO_NAME["label"])) for label, _n in summary.labels]
        y = [n for _label, n in summary.labels]
    elif summary.histogram:
        x = [f"{display.score(b.low)}–{display.score(b.high)}" for b in summary.histogram]
        y = [b.count for b in summary.histogram]
    else:
        return None
    count_name = _("scores")
    bar = _trace(
        "bar",
        x=x,
        y=y,
        name=count_name,
        marker_color=_rgba(ACCENT, 0.75),
        hovertemplate=f"%{{x}}: %{{y:,d}} {count_name}<extra></extra>",
    )
    return _figure(
        [bar],
        240,
        bargap=0.08,
        showlegend=False,
        xaxis={"type": "category", "tickfont": {"size": 10}},
        yaxis=_counts(max(y)),
    )


# --- sparklines -----------------------------------------------------------------------------------


def sparkline(values: Sequence[float | None], width: int = 120, height: int = 28) -> dict | None:
    """A KPI's values per bucket as an inline SVG line (no axes: the card shows the number), or None
    for fewer than two buckets or no value at all. `line` and `area` are SVG `points` lists in a
    width x height box. A None value (a bucket with nothing to average) is left out and the line
    joins its neighbours; a lone value is a `dot` (x, y) where its bucket is."""
    if len(values) < 2:
        return None
    known = [(i, float(v)) for i, v in enumerate(values) if v is not None]
    if not known:
        return None
    low, top = min(0.0, min(v for _i, v in known)), max(v for _i, v in known)
    span = (top - low) or 1.0
    step = width / (len(values) - 1)
    pts = [(round(i * step, 1), round(height - 2 - (v - low) / span * (height - 4), 1)) for i, v in known]
    if len(pts) == 1:
        return {"width": width, "height": height, "line": "", "area": "", "dot": pts[0]}
    line = " ".join(f"{x:g},{y:g}" for x, y in pts)
    first, last = pts[0][0], pts[-1][0]
    return {"width": width, "height": height, "line": line, "area": f"{first:g},{height} {line} {last:g},{height}"}
