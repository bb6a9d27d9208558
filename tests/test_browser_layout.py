"""Every page at 1440x900 and 390x844, in English and Korean, on a week of demo traffic, in a real
browser (Playwright driving Debian's Chromium): measured, and photographed for people to look at.

Measured (issue 21, "Layout at 1440 and 390 px"):
- the Agent runs table fits its frame at 1440 (the preview column is not cut);
- the trace tree's names: the name column widens, a cut name shows whole on focus, and a phone shows
  names, not their first letters;
- the Agent Flow Graph: no two node labels overlap, none is cut at the plot's edge, and on a phone the
  graph scrolls sideways inside its card, by touch;
- phones: no Plotly mode bar (a tap pinned it over the legend), date ticks that do not run together,
  monitor tables whose values and Acknowledge button are inside the card, every tab label whole.

Screenshots: test-artifacts/layout-<lang>-<width>-<page>.png.
"""

from __future__ import annotations

import pytest
from browser import PHONE, log_in, logged_in, new_page, shot
from conftest import api_token
from django.core.management import call_command

from monitoring.monitors import evaluation
from monitoring.monitors.models import Monitor
from monitoring.quality.models import ScoreConfig

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WIDTHS = (1440, PHONE["width"])
TABS = {"en": ["Overview", "Analytics", "Traces", "Replay", "Monitors", "Health"]}


@pytest.fixture
def demo(live_server, alice, project):
    """A week of the demo's traffic (12 runs a day), a monitor firing per end user, a score config and
    an API token: every page has something to show."""
    call_command("demo_traces", project=str(project.id), days=7, runs_per_day=12, no_progress=True)
    monitor = Monitor.objects.create(
        project=project, name="Spend per user", metric="cost_usd", group_by="user", window_minutes=1440, threshold=0
    )
    evaluation.evaluate([monitor])
    assert monitor.open_alerts().count() >= 2
    ScoreConfig.objects.create(project=project, name="relevance", data_type="numeric", min_value=0, max_value=1)
    api_token("alice")
    return {"url": live_server.url, "base": f"{live_server.url}/admin/monitoring/{project.id}", "monitor": monitor}


def page_for(browser, demo, lang, width):
    page = logged_in(browser, demo["url"], lang=lang, width=width, zone="Asia/Seoul")
    if page.get_attribute("html", "lang") != lang:  # the person's saved language wins over the browser's
        page.select_option("#language-switcher", lang)
        page.wait_for_selector(f"html[lang={lang}] #tabs")
    return page


def fits_page(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def first_run(page, demo) -> str:
    page.goto(f"{demo['base']}/traces/?kind=runs&range=7d")
    page.wait_for_selector("tr.run-item")
    return page.get_attribute("tr.run-item >> nth=0", "data-run")


# --- measurements ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_runs_table_fits_its_frame_at_1440(browser, demo, lang):
    page = page_for(browser, demo, lang, 1440)
    first_run(page, demo)
    table, frame = page.evaluate(
        "[document.querySelector('.runs-table').getBoundingClientRect().width,"
        " document.querySelector('.runs .table-wrap').clientWidth]"
    )
    assert table <= frame + 1, (table, frame)
    preview = page.locator("tr.run-item td.preview").first.bounding_box()
    assert preview["width"] >= 200 and preview["x"] + preview["width"] <= 1440
    # A long preview is cut with an ellipsis inside its own cell, its whole text in the title.
    cell = page.locator("tr.run-item [data-preview=input]").first
    assert cell.evaluate("e => e.scrollWidth >= e.clientWidth && getComputedStyle(e).textOverflow === 'ellipsis'")
    assert cell.get_attribute("title")
    assert not page.errors, page.errors


@pytest.mark.parametrize("width", WIDTHS)
def test_trace_tree_names_widen_and_show_whole_on_focus(browser, demo, width):
    page = page_for(browser, demo, "en", width)
    trace = first_run(page, demo)
    page.goto(f"{demo['base']}/traces/{trace}/")
    page.wait_for_selector(".wf-rows .span-row .span-link")
    links = page.locator(".wf-rows .span-row .span-link")
    # Every name shows at least 9 characters' worth (or all of it): a phone used to show 1-7.
    widths = links.evaluate_all("ls => ls.map(l => [l.textContent, l.clientWidth, l.scrollWidth])")
    for name, shown, full in widths:
        assert shown >= min(full, 80), (width, name, shown, full)
    # The longest name, focused from the keyboard, shows whole, and says it in its title.
    longest = max(range(len(widths)), key=lambda i: widths[i][2])
    link = links.nth(longest)
    assert link.get_attribute("title") == widths[longest][0].strip()
    link.focus()
    assert link.evaluate("l => l.getBoundingClientRect().width >= l.scrollWidth - 1"), widths[longest]
    # The name column widens by dragging its handle.
    name = page.locator(".wf-head .wf-name")
    # Focusing a deep row can scroll the header out of the viewport, where the mouse cannot reach it.
    page.locator("[data-wf-resize]").scroll_into_view_if_needed()
    before = name.bounding_box()["width"]
    handle = page.locator("[data-wf-resize]").bounding_box()
    page.mouse.move(handle["x"] + 4, handle["y"] + 10)
    page.mouse.down()
    page.mouse.move(handle["x"] + 64, handle["y"] + 10, steps=4)
    page.mouse.up()
    assert name.bounding_box()["width"] > before + 30
    assert fits_page(page)
    assert not page.errors, page.errors


FLOW_LABELS = """el => {
  const svg = el.querySelector('.main-svg').getBoundingClientRect();
  return [...el.querySelectorAll('.sankey-node .node-label')].filter(t => t.textContent)
    .map(t => { const b = t.getBoundingClientRect();
                return {text: t.textContent, left: b.left, right: b.right, top: b.top, bottom: b.bottom,
                        inside: b.left >= svg.left - 1 && b.right <= svg.right + 1}; });
}"""


def overlapping(labels: list[dict]) -> list[tuple[str, str]]:
    return [
        (a["text"], b["text"])
        for i, a in enumerate(labels)
        for b in labels[i + 1 :]
        if min(a["right"], b["right"]) - max(a["left"], b["left"]) > 1
        and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > 1
    ]


def swipe(page, x: float, y: float, dx: float) -> None:
    """A finger dragged sideways (Chromium's touch input, as a phone sends it)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for i in range(1, 11):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x + dx * i / 10, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_agent_flow_graph_labels_never_overlap_and_a_phone_scrolls_it(browser, demo, lang):
    for width in WIDTHS:
        page = page_for(browser, demo, lang, width)
        if width == PHONE["width"]:  # a phone's own touch input, for the swipe
            page.context.close()
            page = new_page(browser, lang=lang, width=width, zone="Asia/Seoul", has_touch=True, is_mobile=True)
            log_in(page, demo["url"])
        page.goto(f"{demo['base']}/analytics/?range=7d")
        chart = page.wait_for_selector("[data-panel=agent-flow] .chart[data-fitted]", timeout=60_000)
        labels = chart.evaluate(FLOW_LABELS)
        assert len(labels) >= 10
        assert overlapping(labels) == [], (lang, width)
        assert [x["text"] for x in labels if not x["inside"]] == [], (lang, width)
        assert fits_page(page)
        scroller = page.locator("[data-panel=agent-flow] .chart-scroll")
        if width == PHONE["width"]:
            assert scroller.evaluate("e => e.scrollWidth > e.clientWidth")
            scroller.scroll_into_view_if_needed()
            box = scroller.bounding_box()
            swipe(page, box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2, -220)
            page.wait_for_function(
                "() => document.querySelector('[data-panel=agent-flow] .chart-scroll').scrollLeft > 100"
            )
        # The legend and the title stay put: only the plot scrolls.
        title = page.locator("[data-panel=agent-flow] header h3").bounding_box()
        assert title["x"] >= 0
        assert not page.errors, page.errors
        page.context.close()


def test_a_phone_gets_charts_without_a_mode_bar_and_with_day_labels_apart(browser, demo):
    page = page_for(browser, demo, "en", PHONE["width"])
    page.goto(f"{demo['base']}/analytics/?range=7d")
    page.wait_for_selector("[data-panel=cost-trend] .main-svg", timeout=60_000)
    page.hover("[data-panel=cost-trend] .chart")
    assert page.locator("[data-panel=cost-trend] .modebar").count() == 0
    for panel in ("cost-trend", "calls-errors", "agent-runs"):
        ticks = page.locator(f"[data-panel={panel}] .xtick text").evaluate_all(
            "ts => ts.map(t => { const b = t.getBoundingClientRect(); return [t.textContent, b.left, b.right]; })"
        )
        assert len(ticks) >= 2, panel
        for (a, _al, ar), (b, bl, _br) in zip(ticks, ticks[1:], strict=False):
            assert bl - ar >= 4, (panel, a, b)  # "Nov 30Dec 1" ran together
    # A desktop keeps its mode bar on hover.
    desktop = page_for(browser, demo, "en", 1440)
    desktop.goto(f"{demo['base']}/analytics/?range=7d")
    desktop.wait_for_selector("[data-panel=cost-trend] .main-svg", timeout=60_000)
    desktop.hover("[data-panel=cost-trend] .chart")
    assert desktop.locator("[data-panel=cost-trend] .modebar").count() == 1
    assert not page.errors and not desktop.errors, (page.errors, desktop.errors)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_phone_shows_every_tab_whole_and_the_monitor_tables_inside_their_cards(browser, demo, lang):
    page = page_for(browser, demo, lang, PHONE["width"])
    page.goto(f"{demo['base']}/monitors/{demo['monitor'].pk}/")
    page.wait_for_selector("[data-alert]")
    tabs = page.locator("#tabs a").evaluate_all(
        "as => as.map(a => { const b = a.getBoundingClientRect(), bar = a.parentElement.getBoundingClientRect();"
        " return [a.textContent.trim(), b.left >= bar.left - 1 && b.right <= bar.right + 1 && a.scrollWidth <= a.clientWidth + 1]; })"
    )
    assert all(whole for _label, whole in tabs), tabs
    if lang in TABS:
        assert [label for label, _whole in tabs] == TABS[lang]
    for table in page.locator(".monitors .table-wrap").all():
        assert table.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), table.inner_text()[:200]
    ack = page.locator("[data-ack]").first.bounding_box()
    assert ack["x"] >= 0 and ack["x"] + ack["width"] <= PHONE["width"]
    for row in page.locator("[data-alert] td.num").all():  # the values, whole
        assert row.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    assert fits_page(page)
    page.goto(f"{demo['base']}/monitors/")
    page.wait_for_selector("[data-monitor]")
    assert page.locator(".monitors .table-wrap").evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    assert not page.errors, page.errors


# --- screenshots -----------------------------------------------------------------------------------

PAGES = [
    ("overview", "{base}/overview/?range=7d", ".kpis"),
    ("analytics", "{base}/analytics/?range=7d", "[data-panel=agent-flow] .chart[data-fitted]"),
    ("traces-runs", "{base}/traces/?kind=runs&range=7d", "tr.run-item"),
    ("traces-llm", "{base}/traces/?kind=llm&range=7d", "tr.span-item"),
    ("traces-all", "{base}/traces/?kind=all&range=7d", "tr.span-item"),
    ("trace", "{base}/traces/{trace}/", "#span-panel article"),
    ("sessions", "{base}/traces/sessions/?range=7d", "tr.group-item"),
    ("users", "{base}/traces/users/?range=7d", "tr.group-item"),
    ("replay", "{base}/replay/", "[data-compare-picker]"),
    ("replay-step", "{base}/replay/?trace={trace}&step=2", "[data-step='2']"),
    ("monitors", "{base}/monitors/", "[data-monitor]"),
    ("monitor", "{base}/monitors/{monitor}/", "[data-alert]"),
    ("health", "{url}/admin/monitoring/health", "main"),
    ("preferences", "{url}/admin/monitoring/preferences", "main form"),
    ("tokens", "{url}/admin/monitoring/tokens", "main"),
    ("score-configs", "{base}/scores/configs/", "main"),
]


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_screenshots_of_every_page(browser, demo, lang):
    """Every page at 1440 and 390 px in test-artifacts/, for people to look at: each loads, draws,
    and fits the width (wide tables and the flow graph scroll inside their cards)."""
    for width in WIDTHS:
        page = page_for(browser, demo, lang, width)
        trace = first_run(page, demo)
        for name, path, ready in PAGES:
            page.goto(path.format(url=demo["url"], base=demo["base"], trace=trace, monitor=demo["monitor"].pk))
            page.wait_for_selector(ready, timeout=60_000)
            page.wait_for_load_state("networkidle")
            assert fits_page(page), (lang, width, name, page.evaluate("document.documentElement.scrollWidth"))
            if name == "tokens":  # "<token>" is text, not a tag that swallowed the word
                assert "Bearer <" in page.inner_text("main")
            shot(page, f"layout-{lang}-{width}-{name}")
        assert not page.errors, page.errors
        page.context.close()
