"""Handed case-05 in a real browser: the trace page and Replay show the message's images (the inline
PNG as an <img> that loads under the Content-Security-Policy, the JPEG address as a link) and the
reasoning apart from the answer, with no CSP violation. Screenshots land in test-artifacts/."""

import pytest
from otlp import post_recorded, recorded
from test_browser import ARTIFACTS, browser  # noqa: F401 - the Chromium fixture

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TRACE, SPAN = "c05b0000000000000000000000000001", "c05b000000000001"


def test_case_05_images_and_reasoning_show_under_the_csp(browser, live_server, client, alice, project, ingest_key):  # noqa: F811
    assert post_recorded(client, ingest_key, recorded("cases/case-05-genai-parts-multimodal")).status_code == 200
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "alice-pass-123")
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    for path, shot in (
        (f"traces/{TRACE}/?range=24h&span={SPAN}", "case05-trace"),
        (f"replay/?trace={TRACE}&span={SPAN}", "case05-replay"),
    ):
        page.goto(f"{live_server.url}/admin/monitoring/{project.id}/{path}")
        page.wait_for_load_state("networkidle")
        image = page.locator("img.msg-image[data-media=inline]").first
        image.wait_for(timeout=15000)
        assert page.evaluate("(img) => img.complete && img.naturalWidth", image.element_handle()) == 1  # the 1x1 PNG
        link = page.locator("a.msg-link[data-media=link]").first
        assert link.get_attribute("href") == "https://example.org/starry-night.jpg"
        assert "noopener" in link.get_attribute("rel")
        assert page.locator("[data-reasoning] summary").first.is_visible()
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    assert violations == []
