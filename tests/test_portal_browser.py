"""The portal in a real browser (Debian's Chromium via Playwright) against a running server.

Copies are made in the server's store as delivery makes them; code mail and
replies leave through real delivery to a loopback SMTP sink.
"""

from __future__ import annotations

import email
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import audit_mark, audit_since, wait_until
from playwright import sync_api
from portal_helpers import (
    ATTACHMENT,
    CANARIES,
    SENDER,
    Env,
    code_in,
    copy_of,
    mail_to,
    make_copy,
    original,
    running_portal,
    sign_in,
)

from gateway.portal import passphrase
from gateway.store import portal


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("portal")
    with running_portal(
        tmp, organisation="Example Clinic", code_attempts=3, requests_per_minute=1000
    ) as running:
        yield running


def test_read_download_and_reply_in_a_browser(env: Env) -> None:
    recipient = "patient1@example.net"
    made = make_copy(env.gw, original(), recipient=recipient, sender=SENDER, read_receipt=True)
    mark = audit_mark(env.gw)
    context = env.browser.new_context(accept_downloads=True)
    page = context.new_page()
    sign_in(env, page, made.token, recipient)
    sync_api.expect(page.locator("h1")).to_have_text("Your secure message")
    assert page.url.endswith(f"/portal/m/{made.token}/message")
    sync_api.expect(page.locator(".body b")).to_have_text("CANARY-BODY-9921")
    sync_api.expect(page.locator("dl.headers")).to_contain_text("Lab results CANARY-SUBJ-4411")

    [cookie] = [c for c in context.cookies() if c["name"] == "portal_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/portal/"

    with page.expect_download() as download_info:
        page.get_by_role("link", name="CANARY-NAME-5521.pdf").click()
    download = download_info.value
    assert download.suggested_filename == "CANARY-NAME-5521.pdf"
    assert Path(download.path()).read_bytes() == ATTACHMENT

    page.get_by_role("link", name="Reply").click()
    page.get_by_label("Your reply").fill("Thank you, received.")
    page.get_by_label("Attach files").set_input_files(
        [{"name": "answer.txt", "mimeType": "text/plain", "buffer": b"my answer file"}]
    )
    page.get_by_role("button", name="Send reply").click()
    sync_api.expect(page.locator("h1")).to_have_text("Your reply was sent")
    context.close()

    replies = [email.message_from_bytes(m) for m in mail_to(env.sink, SENDER, 2)]
    [reply] = [m for m in replies if m["In-Reply-To"]]
    assert reply["In-Reply-To"] == "<original-1@clinic.example>"
    assert reply["Subject"] == "Re: Lab results CANARY-SUBJ-4411"
    assert reply["Reply-To"] == recipient
    [part] = [p for p in reply.walk() if p.get_filename() == "answer.txt"]
    assert part.get_payload(decode=True) == b"my answer file"
    [receipt] = [m for m in replies if not m["In-Reply-To"]]  # the read receipt
    assert "CANARY" not in receipt.as_string()

    events = audit_since(env.gw, mark)
    names = [e["event"] for e in events]
    for name in ("portal_link_opened", "portal_code_sent", "portal_viewed"):
        assert name in names
    [downloaded] = [e for e in events if e["event"] == "portal_downloaded"]
    assert downloaded["detail"] == f"attachment 0, {len(ATTACHMENT)} bytes"
    [replied] = [e for e in events if e["event"] == "portal_replied"]
    assert replied["detail"] and replied["recipients"] == f'["{recipient}"]'
    copy = copy_of(env.gw, made.id)
    assert (copy.state, copy.views, copy.downloads) == (portal.REPLIED, 1, 1)
    # Nothing of the message in the log or the audit trail; no token, no code either.
    log = env.gw.log_text()
    recorded = repr(events)
    for canary in (*CANARIES, made.token):
        assert canary not in log and canary not in recorded


def test_phi_sent_over_smtp_is_read_downloaded_and_answered_through_its_notice(
    env: Env,
) -> None:
    """The whole path: an EHR submits PHI for a recipient whose next hop offers no
    verified TLS; the notice at the sink carries none of it; its link, a code
    from the second mail, the message, the attachment's bytes, and a reply with
    an attachment that reaches the sender."""
    secret = env.gw.add_principal("ehr-e2e", "clinic.example")
    recipient = "pat.e2e@home.example"
    raw = original()  # PHI: a lab result with the patient's MRN and birth date
    raw = raw.replace(
        b"Your results: CANARY-BODY-9921",
        b"Your results: CANARY-BODY-9921. Patient MRN: 00482913, DOB 03/14/1962",
        1,
    )
    before = len(mail_to(env.sink, recipient, 0))
    client = env.gw.client("ehr-e2e", secret)
    try:
        assert client.sendmail(SENDER, [recipient], raw) == {}
    finally:
        client.quit()
    notice = mail_to(env.sink, recipient, before + 1)[-1]
    for canary in (*CANARIES, "00482913", "Lab results"):
        assert canary.encode() not in notice
    parsed = email.message_from_bytes(notice)
    assert parsed["Subject"] == "Secure message from Example Clinic"
    plain = next(p for p in parsed.walk() if p.get_content_type() == "text/plain")
    text = plain.get_payload(decode=True)
    assert isinstance(text, bytes)
    found = re.search(rb"/portal/m/([A-Za-z0-9_-]{43})", text)
    assert found is not None
    token = found.group(1).decode()

    context = env.browser.new_context(accept_downloads=True)
    page = context.new_page()
    sign_in(env, page, token, recipient)  # the code comes in the second mail
    sync_api.expect(page.locator("h1")).to_have_text("Your secure message")
    sync_api.expect(page.locator("dl.headers")).to_contain_text("Lab results CANARY-SUBJ-4411")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="CANARY-NAME-5521.pdf").click()
    assert Path(download_info.value.path()).read_bytes() == ATTACHMENT
    page.get_by_role("link", name="Reply").click()
    page.get_by_label("Your reply").fill("Thanks, I will book the follow-up.")
    page.get_by_label("Attach files").set_input_files(
        [{"name": "insurance.txt", "mimeType": "text/plain", "buffer": b"member card scan"}]
    )
    page.get_by_role("button", name="Send reply").click()
    sync_api.expect(page.locator("h1")).to_have_text("Your reply was sent")
    context.close()

    def reply_arrived() -> bool:
        return any(
            b"Thanks, I will book" in m.content and SENDER in m.recipients
            for m in env.sink.messages
        )

    wait_until(reply_arrived, 20, 0.05)
    [delivered] = [m for m in env.sink.messages if b"Thanks, I will book" in m.content]
    # Never a relay: a reply goes to the original sender and nobody else.
    assert delivered.recipients == [SENDER]
    reply = email.message_from_bytes(delivered.content)
    assert reply["In-Reply-To"] == "<original-1@clinic.example>"
    assert reply["Reply-To"] == recipient
    [part] = [p for p in reply.walk() if p.get_filename() == "insurance.txt"]
    assert part.get_payload(decode=True) == b"member card scan"
    states = {c["recipient"]: c["state"] for c in env.gw.json("portal", "ls")}
    assert states[recipient] == "replied"


def test_wrong_codes_lock_the_link(env: Env) -> None:
    recipient = "patient2@example.net"
    made = make_copy(env.gw, original(), recipient=recipient)
    mark = audit_mark(env.gw)
    page = env.browser.new_page()
    page.goto(f"{env.base}/portal/m/{made.token}")
    page.get_by_role("button", name="Email me a code").click()
    code = code_in(mail_to(env.sink, recipient)[-1])
    wrong = "00000000" if code != "00000000" else "11111111"
    for _ in range(2):
        page.get_by_label("Code from the email (8 digits)").fill(wrong)
        page.get_by_role("button", name="Open the message").click()
        sync_api.expect(page.get_by_role("alert")).to_contain_text("is not right")
    page.get_by_label("Code from the email (8 digits)").fill(wrong)
    page.get_by_role("button", name="Open the message").click()
    sync_api.expect(page.locator("h1")).to_have_text("Too many wrong attempts")
    # Locked: even the right code does not open it now.
    response = page.goto(f"{env.base}/portal/m/{made.token}")
    assert response is not None and response.status == 429
    assert 0 < int(response.headers["retry-after"]) <= 3600  # the lockout's hour
    assert copy_of(env.gw, made.id).locked_until is not None
    page.close()
    events = [e["event"] for e in audit_since(env.gw, mark)]
    assert events.count("portal_code_failed") == 3 and events.count("portal_locked") == 1
    assert "portal_viewed" not in events


def test_expired_recalled_and_bad_links_get_clear_pages(env: Env) -> None:
    expired = make_copy(env.gw, original(), recipient="p3@example.net", expires_in=-1)
    shredded = make_copy(env.gw, original(), recipient="p4@example.net", state=portal.EXPIRED)
    recalled = make_copy(env.gw, original(), recipient="p5@example.net", state=portal.RECALLED)
    page = env.browser.new_page()
    cases = [
        (expired.token, 410, "This message has expired"),
        (shredded.token, 410, "This message has expired"),
        (recalled.token, 410, "This message was withdrawn"),
        ("A" * 43, 404, "This link does not work"),
        (expired.token[:-2] + "xy", 404, "This link does not work"),
        ("short", 404, "This link does not work"),
    ]
    for token, status, title in cases:
        for suffix in ("", "/message", "/attachments/0"):
            response = page.goto(f"{env.base}/portal/m/{token}{suffix}")
            assert response is not None and response.status == status, (token, suffix)
            sync_api.expect(page.locator("h1")).to_have_text(title)
            assert "CANARY" not in page.content()
    page.close()


def test_hostile_html_neither_runs_nor_loads(env: Env) -> None:
    hits: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    remote = f"http://127.0.0.1:{server.server_address[1]}"
    hostile = (
        f"<p onmouseover=\"console.log('hover')\">Hello CANARY-BODY-9921</p>"
        f"<script>console.log('script ran'); fetch('{remote}/fetch')</script>"
        f'<img src="x" onerror="console.log(\'onerror ran\')">'
        f'<img src="{remote}/pixel.png">'
        f'<link rel="stylesheet" href="{remote}/style.css">'
        f"<style>body {{ background: url('{remote}/bg.png') }}</style>"
        f'<div style="background-image: url({remote}/inline.png)">styled</div>'
        f'<iframe src="{remote}/frame"></iframe>'
        f'<form action="{remote}/form"><input name="q"></form>'
        f'<svg><script>console.log("svg")</script></svg>'
        f"<a href=\"javascript:console.log('js link')\">click</a>"
    )
    recipient = "patient6@example.net"
    made = make_copy(env.gw, original(hostile), recipient=recipient)
    context = env.browser.new_context()
    page = context.new_page()
    console: list[str] = []
    requested: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.on("request", lambda request: requested.append(request.url))
    try:
        sign_in(env, page, made.token, recipient)
        sync_api.expect(page.locator(".body p")).to_have_text("Hello CANARY-BODY-9921")
        page.locator(".body p").hover()
        javascript_link = page.locator(".body a", has_text="click")
        assert javascript_link.get_attribute("href") is None  # dropped: not http(s) or mailto
        javascript_link.click()
        page.wait_for_load_state("networkidle")
        assert page.locator(".body script, .body iframe, .body form, .body style").count() == 0
        assert page.locator("[onerror], [onmouseover], [style]").count() == 0
    finally:
        context.close()
        server.shutdown()
    assert hits == []
    assert [u for u in requested if not u.startswith(env.base)] == []
    assert [m for m in console if "ran" in m or "hover" in m or "js link" in m] == []


def test_a_session_opens_only_its_own_copy(env: Env) -> None:
    first = make_copy(env.gw, original("<p>copy A CANARY-BODY-9921</p>"), recipient="a@example.net")
    second = make_copy(env.gw, original("<p>copy B</p>"), recipient="b@example.net")
    context = env.browser.new_context()
    page = context.new_page()
    sign_in(env, page, second.token, "b@example.net")
    sync_api.expect(page.locator(".body p")).to_have_text("copy B")
    for path in ("message", "attachments/0", "reply"):
        page.goto(f"{env.base}/portal/m/{first.token}/{path}")
        sync_api.expect(page.locator("h1")).to_have_text("You have a secure message")
        assert "CANARY-BODY-9921" not in page.content()
    context.close()
    assert copy_of(env.gw, first.id).views == 0


def test_posts_without_csrf_are_refused_and_headers_are_set(env: Env) -> None:
    made = make_copy(env.gw, original(), recipient="patient7@example.net")
    context = env.browser.new_context()
    page = context.new_page()
    response = page.goto(f"{env.base}/portal/m/{made.token}")
    assert response is not None and response.status == 200
    headers = response.headers
    assert headers["content-security-policy"] == (
        "default-src 'none'; img-src 'self' data:; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    for path in ("code", "verify"):
        url = f"{env.base}/portal/m/{made.token}/{path}"
        without = context.request.post(url, form={"code": "12345678"})
        assert without.status == 403, path  # the CSRF cookie is there, the field is not
        forged = context.request.post(url, form={"csrf": "0" * 64, "code": "12345678"})
        assert forged.status == 403, path
        assert "This form has expired" in forged.text()
    context.close()
    copy = copy_of(env.gw, made.id)
    assert (copy.codes_sent, copy.failed_codes) == (0, 0)


def test_a_passphrase_opens_the_message_and_wrong_ones_lock_the_link(env: Env) -> None:
    secret = "Blue-Heron 1962"
    hashed = passphrase.hash_passphrase(secret.encode())
    made = make_copy(env.gw, original(), recipient="pp1@example.net", passphrase_hash=hashed)
    locked = make_copy(env.gw, original(), recipient="pp2@example.net", passphrase_hash=hashed)
    mark = audit_mark(env.gw)
    context = env.browser.new_context()
    page = context.new_page()
    page.goto(f"{env.base}/portal/m/{made.token}")
    sync_api.expect(page.get_by_label("Passphrase")).to_be_visible()
    assert page.get_by_role("button", name=re.compile("code")).count() == 0
    assert page.get_by_label(re.compile("Code from the email")).count() == 0
    # No code can be had for it, not even by a form made by hand.
    csrf = page.locator("input[name=csrf]").get_attribute("value")
    assert csrf is not None
    asked = context.request.post(f"{env.base}/portal/m/{made.token}/code", form={"csrf": csrf})
    assert asked.status == 400 and "opens with a passphrase" in asked.text()

    page.get_by_label("Passphrase").fill("blue-heron 1962")
    with page.expect_response(lambda r: r.url.endswith("/verify")) as wrong:
        page.get_by_role("button", name="Open the message").click()
    assert wrong.value.status == 400
    sync_api.expect(page.get_by_role("alert")).to_contain_text("That passphrase is not right")
    assert copy_of(env.gw, made.id).failed_codes == 1
    page.get_by_label("Passphrase").fill(f"  {secret} ")
    page.get_by_role("button", name="Open the message").click()
    sync_api.expect(page.locator("h1")).to_have_text("Your secure message")
    sync_api.expect(page.locator(".body b")).to_have_text("CANARY-BODY-9921")
    copy = copy_of(env.gw, made.id)
    assert (copy.state, copy.failed_codes) == (portal.OPENED, 0)

    page.goto(f"{env.base}/portal/m/{locked.token}")
    for attempt in range(1, 4):
        page.get_by_label("Passphrase").fill(f"not it {attempt}")
        page.get_by_role("button", name="Open the message").click()
        if attempt < 3:
            sync_api.expect(page.get_by_role("alert")).to_contain_text("is not right")
    sync_api.expect(page.locator("h1")).to_have_text("Too many wrong attempts")
    # Locked: the right passphrase does not open it now.
    response = page.goto(f"{env.base}/portal/m/{locked.token}")
    assert response is not None and response.status == 429
    sync_api.expect(page.locator("h1")).to_have_text("Too many wrong attempts")
    assert page.get_by_label("Passphrase").count() == 0
    forced = context.request.post(
        f"{env.base}/portal/m/{locked.token}/verify", form={"csrf": csrf, "passphrase": secret}
    )
    assert forced.status == 429
    context.close()
    assert copy_of(env.gw, locked.id).locked_until is not None
    assert copy_of(env.gw, locked.id).views == 0

    events = audit_since(env.gw, mark)
    failed = [(e["recipients"], e["detail"]) for e in events if e["event"] == "portal_code_failed"]
    assert failed == [
        ('["pp1@example.net"]', "attempt 1"),
        *[('["pp2@example.net"]', f"attempt {n}") for n in (1, 2, 3)],
    ]
    assert [e["recipients"] for e in events if e["event"] == "portal_locked"] == [
        '["pp2@example.net"]'
    ]
    assert [e["recipients"] for e in events if e["event"] == "portal_viewed"] == [
        '["pp1@example.net"]'
    ]
    assert "portal_code_sent" not in [e["event"] for e in events]
    for text in (repr(events), env.gw.log_text()):
        assert "Heron" not in text and "heron" not in text and "not it" not in text


def _no_sideways_scrolling(page: sync_api.Page) -> None:
    # After a form's submission the new page's elements can be found before its
    # stylesheet has arrived; a reader sees the page laid out with it.
    page.wait_for_load_state("load")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, page.url


def _accessible(page: sync_api.Page) -> None:
    """The language is declared and every field has a label; fits a phone's width."""
    assert page.locator("html").get_attribute("lang") == "en"
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('input:not([type=hidden]), textarea, select')]"
        ".filter(e => e.labels.length === 0).map(e => e.outerHTML)"
    )
    assert unlabelled == [], page.url
    _no_sideways_scrolling(page)


def _tab_to(page: sync_api.Page, name: str) -> None:
    """Press Tab until the focused element is the one named `name`."""
    for _ in range(12):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.textContent.trim()")
        if focused == name:
            return
    raise AssertionError(f"Tab never reaches {name!r} on {page.url}")


def test_pages_are_accessible_by_keyboard_and_fit_a_phone(env: Env) -> None:
    recipient = "phone.user@example.net"
    wide = (
        "<p>Reference: " + "X" * 300 + "</p>"
        "<table><tr>" + "".join(f"<td>column-{n}-value</td>" for n in range(12)) + "</tr></table>"
        "<pre>" + "wide preformatted line " * 20 + "</pre>"
    )
    made = make_copy(env.gw, original(wide), recipient=recipient)
    context = env.browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{env.base}/portal/m/{made.token}")
    _accessible(page)
    already = sum(recipient in m.recipients for m in env.sink.messages)
    _tab_to(page, "Email me a code")
    page.keyboard.press("Enter")
    sync_api.expect(page.get_by_role("status")).to_contain_text("We have emailed a code")
    _accessible(page)
    code = code_in(mail_to(env.sink, recipient, already + 1)[-1])
    page.get_by_label("Code from the email (8 digits)").focus()
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("h1")).to_have_text("Your secure message")
    _accessible(page)
    _tab_to(page, "Reply")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("h1")).to_have_text("Reply")
    _accessible(page)
    sync_api.expect(page.get_by_label("Your reply")).to_be_visible()
    sync_api.expect(page.get_by_label(re.compile("Attach files"))).to_be_attached()
    context.close()
