"""A real browser (Debian's Chromium driven by Playwright) unsubscribes through the pages."""

from __future__ import annotations

import time
from pathlib import Path

from playwright import sync_api
from webgate import base_url, history, links, local_path, state, store, web_gate

from gateway.consent import registry

CHROMIUM = Path("/usr/bin/chromium")  # Debian's, installed by scripts/test


def test_a_browser_sees_the_page_clicks_and_is_unsubscribed(tmp_path: Path) -> None:
    address = "browser.user@example.org"
    gw = web_gate(tmp_path)
    with store(gw) as db, db.transaction() as conn:
        grant = registry.Grant(address, None, "marketing", time.time() - 60, None, "ehr")
        registry.grant(conn, grant, actor="test", now=time.time())
    url, _ = links(gw).links(address, "marketing", time.time())
    requested: list[str] = []
    with gw, sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox needs user namespaces, which containers lack.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto(base_url(gw) + local_path(url))
            sync_api.expect(page.locator("h1")).to_have_text("Unsubscribe?")
            sync_api.expect(page.locator("strong")).to_have_text("b***@example.org")
            assert state(gw, address) == "granted"  # opening the page changed nothing

            page.get_by_role("button", name="Unsubscribe").click()
            sync_api.expect(page.locator("h1")).to_have_text("You are unsubscribed")
        finally:
            browser.close()
        assert state(gw, address) == "opted_out"
        [opt_out] = [r for r in history(gw, address) if r["kind"] == "opt_out"]
        assert opt_out["source"] == "unsubscribe"
    # The page and its form post, nothing else: no assets from anywhere.
    assert [u.split("/unsubscribe/")[0] for u in requested] == [base_url(gw)] * 2
