"""What every browser test shares: Debian's Chromium driven by Playwright (the ``browser`` fixture of
conftest.py launches it through ``launched``), a logged-in page, and where screenshots go.

The login waits for the dashboard's own content (its tab bar), not for an address: a busy machine can
take long to answer the first page (a 30 s wait for ``**/overview/**`` timed out in CI), and when it
never comes the failure says which page the browser was on instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import require

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
LOGIN_TIMEOUT_MS = 120_000
LOGIN_ATTEMPTS = 2  # the first page after login renders the Overview: slow on a busy machine
PASSWORD = {"alice": "alice-pass-123", "bob": "bob-pass-123", "charlie": "charlie-pass-123"}
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


def launched(monkeypatch):
    """A headless Chromium for one test (skipped without one, failing under CI); a generator for a fixture."""
    require(
        bool(shutil.which(CHROMIUM)) or os.path.exists(CHROMIUM),
        f"no Chromium at {CHROMIUM} (apt-get install chromium)",
    )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the fixtures' ORM calls stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield b
        b.close()


def viewport(width: int) -> dict:
    """The test viewport of a width: 390 is a phone (390x844), anything else a 900 px high desktop."""
    return dict(PHONE) if width == PHONE["width"] else {"width": width, "height": DESKTOP["height"]}


def new_page(browser, *, lang: str = "en", width: int = 1440, zone: str | None = None, **context):
    """A page in a fresh context asking for `lang` ("en"/"ko"); ``page.errors`` collects script errors."""
    options = {"viewport": viewport(width), "locale": "ko-KR" if lang == "ko" else "en-US", **context}
    if zone:
        options["timezone_id"] = zone
    page = browser.new_context(**options).new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


def log_in(page, base_url: str, username: str = "alice", *, ready: str = "#tabs") -> None:
    """Log `username` in through the login form and wait for `ready` on the page it lands on (the
    dashboard's tab bar by default) with a generous timeout; on failure, say where the browser is."""
    for attempt in range(LOGIN_ATTEMPTS):
        page.goto(f"{base_url}/accounts/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD[username])
        page.click("form[action*='login'] button[type=submit]")
        try:
            page.wait_for_selector(ready, timeout=LOGIN_TIMEOUT_MS // LOGIN_ATTEMPTS)
            return
        except Exception as exc:  # Playwright's TimeoutError, or a closed page
            try:
                where = f"{page.url} (title {page.title()!r}, errors {page.locator('.errorlist, .error').all_inner_texts()!r})"
            except Exception:  # the page itself is gone
                where = "a closed page"
            # Seen once on a loaded machine: the form answered with the login page again and no
            # error; a second try from a fresh form logs in. Both failing is a failure, saying where.
            if attempt == LOGIN_ATTEMPTS - 1:
                raise AssertionError(
                    f"after logging in as {username}, {ready!r} never showed; the browser is at {where}"
                ) from exc


def logged_in(browser, base_url: str, *, lang: str = "en", width: int = 1440, zone: str | None = None, **context):
    """A new page, logged in as alice, on the dashboard (see log_in)."""
    page = new_page(browser, lang=lang, width=width, zone=zone, **context)
    log_in(page, base_url)
    return page


def shot(page, name: str) -> Path:
    """A full-page screenshot in test-artifacts/<name>.png."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
