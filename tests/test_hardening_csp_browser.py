"""The Content-Security-Policy in a real browser: every tab renders (htmx, Plotly charts, the project
switcher) with no CSP violation reported on the console."""

import pytest
from browser import log_in, new_page
from test_browser import seed

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_no_tab_violates_the_content_security_policy(browser, live_server, client, alice, project, ingest_key):
    seed(client, ingest_key)
    page = new_page(browser, width=1400, viewport={"width": 1400, "height": 1000})
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page, live_server.url)
    page.wait_for_load_state("networkidle")
    for tab in ("overview", "analytics", "traces", "replay"):
        page.goto(f"{live_server.url}/admin/monitoring/{project.id}/{tab}/?range=24h")
        page.wait_for_load_state("networkidle")
        if tab == "analytics":
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=15000)  # Plotly drew under the policy
    assert page.evaluate("() => typeof window.htmx") == "object"
    # The switchers submit on change without an inline handler.
    for language in ("ko", "en"):
        with page.expect_navigation():
            page.select_option("#language-switcher", language)
        page.wait_for_function(f"() => document.documentElement.lang === '{language}'", timeout=15000)
    assert violations == []
