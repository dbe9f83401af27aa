"""The HTML report in a real browser (Debian's Chromium driven by Playwright):
it renders from the one file alone, its charts are drawn and sized, its text is
visible, and it prints."""

from __future__ import annotations

from pathlib import Path

from playwright import sync_api
from report_trail import DAY, REPORT_DAY, seeded

from gateway.audit import indexer, trail
from gateway.audit.aggregates import Span
from gateway.config import AnomalyConfig, ConsumerDomainsConfig
from gateway.reports import consumer, render_html
from gateway.reports.gather import report
from gateway.store.database import Database

CHROMIUM = Path("/usr/bin/chromium")  # Debian's, installed by scripts/test
CHARTS = ("daily", "volume", "phi_modes", "refusals", "tls")


def test_the_html_report_renders_with_its_charts_and_prints(db: Database, tmp_path: Path) -> None:
    with db.transaction() as conn:
        trail.append(conn, seeded())
    indexer.catch_up(db)  # as every caller of report() does first
    with db.reading() as conn:
        made = report(
            conn,
            Span(REPORT_DAY, REPORT_DAY + DAY),
            AnomalyConfig(),
            consumer.load(ConsumerDomainsConfig(), tmp_path),
            REPORT_DAY + DAY,
        )
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html.render(made), encoding="utf-8")
    requested: list[str] = []
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox needs user namespaces, which containers lack.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            page.on("request", lambda request: requested.append(request.url))
            page.goto(page_file.as_uri())
            sync_api.expect(page.locator("h1")).to_have_text("Compliance report")
            sync_api.expect(page.locator(".totals")).to_contain_text("messages accepted124")
            sync_api.expect(page.locator("#anomalies h2")).to_have_text("Anomalies (6)")
            sync_api.expect(page.locator(".anomaly[data-kind=volume]")).to_contain_text(
                "ehr1 accepted 102 messages"
            )
            for key in CHARTS:
                chart = page.locator(f"#{key} svg.chart")
                sync_api.expect(chart).to_be_visible()
                box = chart.bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 60, key
                assert chart.locator("rect.bar").count() > 0, key
            # The bars are drawn to scale: ehr1's bar is the longest of the principals.
            widths = [
                float(w or 0)
                for w in page.locator("#volume svg rect.bar").evaluate_all(
                    "rects => rects.map(r => r.getAttribute('width'))"
                )
            ]
            assert widths[0] == max(widths) and widths[0] > 3 * widths[-1]
            tls_row = page.locator("#tls tbody tr").first
            sync_api.expect(tls_row).to_contain_text("partner.example")
            shot = page.screenshot(full_page=True)
            assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
            page.emulate_media(media="print")
            sync_api.expect(page.locator("#tls svg.chart")).to_be_visible()
            pdf = page.pdf(format="A4")
            pages = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
            assert pdf.startswith(b"%PDF") and pages >= 2, pages
            (tmp_path / "report.png").write_bytes(shot)
        finally:
            browser.close()
    # One self-contained file: nothing else was fetched.
    assert requested == [page_file.as_uri()]
