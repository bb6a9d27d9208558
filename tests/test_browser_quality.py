"""The Analytics scores part and the Overview's quality card in a real browser (Debian's Chromium),
at 1440 and 390 px: drawn, nothing wider than the screen; screenshots in test-artifacts/."""

from __future__ import annotations

import pytest
from browser import ARTIFACTS, logged_in
from test_quality_decisions import scored  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [1440, 390])
def test_the_scores_part_and_the_quality_card_read_at_desktop_and_phone_widths(
    browser,
    live_server,
    scored,  # noqa: F811
    project,
    width,
):
    page = logged_in(browser, live_server.url, width=width)
    errors: list[str] = page.errors
    page.goto(f"{live_server.url}/admin/monitoring/{project.id}/overview/?range=24h")
    card = page.wait_for_selector('[data-kpi="quality"]')
    assert "33.3%" in card.inner_text() and "25.0%" in card.inner_text()
    card.screenshot(path=str(ARTIFACTS / f"quality-card-{width}.png"))
    page.screenshot(path=str(ARTIFACTS / f"overview-quality-{width}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.goto(f"{live_server.url}/admin/monitoring/{project.id}/analytics/?range=24h")
    page.wait_for_selector('[data-panel="score-2-breakdowns"]', timeout=60_000)
    page.wait_for_selector('[data-chart="fig-score-0-trend"] .main-svg', timeout=60_000)
    page.wait_for_selector('[data-chart="fig-score-1-distribution"] .main-svg', timeout=60_000)
    for panel in ("score-1-trend", "score-1-distribution", "score-1-breakdowns", "score-2-trend"):
        card = page.query_selector(f'[data-panel="{panel}"]')
        assert card is not None and card.bounding_box()["width"] <= width
        card.scroll_into_view_if_needed()
        card.screenshot(path=str(ARTIFACTS / f"analytics-{panel}-{width}.png"))
    page.screenshot(path=str(ARTIFACTS / f"analytics-scores-{width}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert not errors, errors


@pytest.mark.parametrize("width", [1440, 390])
def test_scores_on_the_runs_list_and_the_trace_page_and_feedback_from_it(
    browser,
    live_server,
    scored,  # noqa: F811
    project,
    width,
):
    """The runs list's score columns and filter, the trace page's scores block, and a thumbs-down given
    from it, at a desktop's and a phone's width: nothing wider than the screen."""
    page = logged_in(browser, live_server.url, width=width)
    errors: list[str] = page.errors
    page.goto(f"{live_server.url}/admin/monitoring/{project.id}/traces/?kind=runs&range=24h")
    page.wait_for_selector('[data-score-column="relevance"]')
    page.screenshot(path=str(ARTIFACTS / f"runs-scores-{width}.png"), full_page=True)
    # The score column picker: only "verdict" ticked, the list shows that column alone.
    page.click("[data-score-picker] summary")
    for box in page.locator("[data-score-choice]").all():
        box.set_checked(box.get_attribute("data-score-choice") == "verdict")
    page.screenshot(path=str(ARTIFACTS / f"runs-score-picker-{width}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # the open picker fits
    page.click('[data-score-picker] button[type="submit"]')
    page.wait_for_url("**scores=*")
    assert page.eval_on_selector_all("[data-score-column]", "els => els.map(e => e.dataset.scoreColumn)") == ["verdict"]
    page.fill('[data-score-filter] input[name="score"]', "verdict:eq:fail")
    page.click('[data-score-filter] button[type="submit"]')
    page.wait_for_selector("[data-score-narrowed]")
    assert page.locator(".run-item").count() == 1
    assert page.locator("[data-score-column]").count() == 1  # the filter keeps the chosen columns
    page.click(".run-item [data-trace-link]")
    block = page.wait_for_selector("[data-feedback]")
    block.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"trace-scores-{width}.png"), full_page=True)
    page.fill("[data-feedback] input[name=comment]", "wrong invoice")
    page.click('[data-feedback] button[value="down"]')
    page.wait_for_selector('[data-feedback] button[value="down"][aria-pressed="true"]')
    assert "wrong invoice" in page.inner_text("[data-scores]")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert not errors, errors
