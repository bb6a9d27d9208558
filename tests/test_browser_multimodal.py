"""Handed case-05 in a real browser: the trace page and Replay show the message's images (the inline
PNG as an <img> that loads under the Content-Security-Policy, the JPEG address as a link) and the
reasoning apart from the answer, with no CSP violation. Screenshots land in test-artifacts/."""

import pytest
from browser import ARTIFACTS, log_in, new_page
from otlp import post_recorded, recorded

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TRACE, SPAN = "c05b0000000000000000000000000001", "c05b000000000001"


def test_case_05_images_and_reasoning_show_under_the_csp(browser, live_server, client, alice, project, ingest_key):
    assert post_recorded(client, ingest_key, recorded("cases/case-05-genai-parts-multimodal")).status_code == 200
    page = new_page(browser, width=1440)
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page, live_server.url)
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
