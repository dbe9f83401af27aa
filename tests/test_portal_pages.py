"""The portal's settings, seen in a real browser: logo, reply size, rate limits, notice templates.

One server with all of them set (a logo, a small max_reply_bytes, two codes an
hour, a low request rate, an admin's code.txt), so each costs one start only.
"""

from __future__ import annotations

import email
import http.client
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Phigate, audit_mark, audit_since
from playwright import sync_api
from portal_helpers import (
    SENDER,
    Env,
    ask_for_code,
    code_in,
    copy_of,
    mail_to,
    make_copy,
    original,
    running_portal,
    sign_in,
)

from gateway.store import portal

ORGANISATION = "Harbour Health"
MAX_REPLY = 4096
# Per client address: the browser's pages here (about 70) count against it too.
REQUESTS_PER_MINUTE = 150
CODE_SUBJECT = "Harbour Health: your sign-in code"
CODE_TEMPLATE = (
    f"Subject: {CODE_SUBJECT}\n\n"
    "HARBOUR-TEMPLATE-7731. Type this code on the page within {{ minutes }} minutes:\n\n"
    "    {{ code }}\n"
)


def png(width: int, height: int) -> bytes:
    """A plain teal PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)

    rows = b"".join(b"\x00" + b"\x00\x80\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


LOGO = png(24, 16)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("portal-pages")
    (tmp / "data").mkdir(mode=0o700)
    (tmp / "data" / "logo.png").write_bytes(LOGO)
    notices = tmp / "notices"
    notices.mkdir()
    (notices / "code.txt").write_text(CODE_TEMPLATE)
    with running_portal(
        tmp,
        organisation=ORGANISATION,
        logo_file="logo.png",
        templates_dir=str(notices),
        max_reply_bytes=MAX_REPLY,
        codes_per_hour=2,
        requests_per_minute=REQUESTS_PER_MINUTE,
    ) as running:
        yield running


def test_pages_show_the_logo_without_a_csp_violation(env: Env) -> None:
    made = make_copy(env.gw, original(), recipient="logo@example.net")
    page = env.browser.new_page()
    problems: list[tuple[str, str]] = []
    page.on(
        "console",
        lambda m: problems.append((m.text, m.location["url"])) if m.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append((str(error), "")))
    page.on("requestfailed", lambda request: problems.append(("failed", request.url)))
    for path, status in ((f"/portal/m/{made.token}", 200), ("/portal/m/" + "A" * 43, 404)):
        problems.clear()
        with page.expect_response(lambda r: r.url.endswith("/portal/logo")) as fetched:
            response = page.goto(env.base + path)
        assert response is not None and response.status == status
        logo = page.locator("header img.logo")
        sync_api.expect(logo).to_have_attribute("alt", f"{ORGANISATION} logo")
        sync_api.expect(logo).to_have_attribute("src", "/portal/logo")
        # Decoded and drawn: the browser fetched it and the page's CSP let it in.
        drawn = logo.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
        assert drawn == [True, 24, 16]
        served = fetched.value
        assert served.status == 200 and served.body() == LOGO
        assert served.headers["content-type"] == "image/png"
        assert served.headers["x-content-type-options"] == "nosniff"
        # Chromium reports a page's own error status on its console; nothing else may be there.
        own_status = f"the server responded with a status of {status}"
        assert [p for p in problems if not (p[1] == page.url and own_status in p[0])] == []
    page.close()


@pytest.mark.parametrize(
    ("logo_file", "written", "why"),
    [
        ("logo.gif", b"GIF89a", "is not a .png or .svg file"),
        ("missing.png", None, "cannot be read"),
    ],
)
def test_a_logo_that_cannot_be_shown_stops_start_up(
    tmp_path: Path, logo_file: str, written: bytes | None, why: str
) -> None:
    gw = Phigate(tmp_path, portal={"logo_file": logo_file})
    if written is not None:
        (tmp_path / "data" / logo_file).write_bytes(written)
    result = gw.cli("serve", check=False)
    assert result.returncode != 0
    assert "portal.logo_file" in result.stderr and logo_file in result.stderr
    assert why in result.stderr
    assert "Traceback" not in result.stderr


def test_a_reply_over_the_limit_gets_a_clear_page_and_is_not_sent(env: Env) -> None:
    recipient = "large.reply@example.net"
    made = make_copy(env.gw, original(), recipient=recipient)
    page = env.browser.new_page()
    sign_in(env, page, made.token, recipient)
    sync_api.expect(page.locator("h1")).to_have_text("Your secure message")
    mark = audit_mark(env.gw)
    # Just over the limit, and far over it (refused before the body is read).
    for size in (MAX_REPLY + 1, 200 * 1024):
        page.goto(f"{env.base}/portal/m/{made.token}/reply")
        page.get_by_label("Your reply").fill("Here are my scans.")
        page.get_by_label(re.compile("Attach files")).set_input_files(
            [{"name": "scan.bin", "mimeType": "application/octet-stream", "buffer": b"s" * size}]
        )
        with page.expect_response(lambda r: r.url.endswith("/reply")) as answered:
            page.get_by_role("button", name="Send reply").click()
        assert answered.value.status == 413, size
        sync_api.expect(page.locator("h1")).to_have_text("Your reply is too large")
        sync_api.expect(page.locator("main")).to_contain_text("4 KB at most")
    # The message can still be read.
    page.get_by_role("link", name="Back to the message").click()
    sync_api.expect(page.locator(".body b")).to_have_text("CANARY-BODY-9921")
    page.close()
    events = [(e["event"], e["detail"]) for e in audit_since(env.gw, mark)]
    # No reply was queued, nothing else happened; read again, not picked up again
    # (the first view, at sign-in, was `view=first`: a webhook's portal_opened).
    assert events == [("portal_viewed", "view=again")]
    assert copy_of(env.gw, made.id).state == portal.OPENED
    assert not any(SENDER in m.recipients for m in env.sink.messages)


def _fetch(client_ip: str, port: int, paths: list[str]) -> list[tuple[int, str]]:
    """GET each path over one connection from `client_ip`: another loopback
    address is a client of its own, with its own count."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(client_ip, 0)
    )
    answers = []
    try:
        for path in paths:
            connection.request("GET", path)
            response = connection.getresponse()
            text = response.read().decode()
            if response.status == 429:  # says when to come back
                assert 0 < int(response.getheader("Retry-After", "0")) <= 60
            answers.append((response.status, text))
    finally:
        connection.close()
    return answers


def test_a_client_over_the_request_rate_gets_a_clear_page(env: Env) -> None:
    port = int(env.base.rsplit(":", 1)[1])
    bad_link = "/portal/m/" + "A" * 43
    answers = _fetch("127.0.0.2", port, ["/portal/style.css"] * REQUESTS_PER_MINUTE + [bad_link])
    assert [status for status, _ in answers] == [200] * REQUESTS_PER_MINUTE + [429]
    text = answers[-1][1]
    assert "<h1>Too many requests</h1>" in text
    assert "Wait a minute, then try again." in text
    assert [status for status, _ in _fetch("127.0.0.2", port, ["/portal/style.css"])] == [429]
    # Counted per client: another address, and the browser, are still served.
    assert [status for status, _ in _fetch("127.0.0.3", port, [bad_link])] == [404]
    page = env.browser.new_page()
    response = page.goto(env.base + bad_link)
    assert response is not None and response.status == 404
    page.close()


def test_codes_per_hour_are_limited_and_no_more_are_mailed(env: Env) -> None:
    recipient = "many.codes@example.net"
    made = make_copy(env.gw, original(), recipient=recipient)
    mark = audit_mark(env.gw)
    page = env.browser.new_page()
    page.goto(f"{env.base}/portal/m/{made.token}")
    first = ask_for_code(env, page, recipient, "Email me a code")
    newest = ask_for_code(env, page, recipient, "Email me a new code")
    with page.expect_response(lambda r: r.url.endswith("/code")) as refused:
        page.get_by_role("button", name="Email me a new code").click()
    assert refused.value.status == 429
    assert 0 < int(refused.value.headers["retry-after"]) <= 3600
    sync_api.expect(page.locator("h1")).to_have_text("Too many codes asked for")
    sync_api.expect(page.locator("main")).to_contain_text("Use the newest one, or ask for a new")
    events = audit_since(env.gw, mark)
    assert [e["event"] for e in events].count("portal_code_sent") == 2
    assert [e["detail"] for e in events if e["event"] == "portal_mail"] == [
        f"code for {made.queue_id}"
    ] * 2
    assert len(mail_to(env.sink, recipient, 2)) == 2
    assert copy_of(env.gw, made.id).codes_sent == 2
    # The newest code still opens the message; the one before it no longer does.
    page.goto(f"{env.base}/portal/m/{made.token}")
    if first != newest:
        page.get_by_label("Code from the email (8 digits)").fill(first)
        page.get_by_role("button", name="Open the message").click()
        sync_api.expect(page.get_by_role("alert")).to_contain_text("is not right")
    page.get_by_label("Code from the email (8 digits)").fill(newest)
    page.get_by_role("button", name="Open the message").click()
    sync_api.expect(page.locator("h1")).to_have_text("Your secure message")
    page.close()


def test_the_code_mail_uses_the_admins_template(env: Env) -> None:
    recipient = "template@example.net"
    made = make_copy(env.gw, original(), recipient=recipient)
    page = env.browser.new_page()
    sign_in(env, page, made.token, recipient)  # the code read from the admin's text works
    sync_api.expect(page.locator("h1")).to_have_text("Your secure message")
    page.close()
    [mail] = mail_to(env.sink, recipient)
    parsed = email.message_from_bytes(mail)
    assert parsed["Subject"] == CODE_SUBJECT
    text = parsed.get_payload(decode=True)
    assert isinstance(text, bytes)
    assert b"HARBOUR-TEMPLATE-7731. Type this code on the page within 15 minutes:" in text
    assert code_in(mail).encode() in text
    assert b"Nobody from" not in text  # the built-in text is not used
