"""A running portal for browser tests, and copies made directly in its store as delivery would."""

from __future__ import annotations

import email
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import portal_copies
from harness import Phigate, Sink, free_port, via_sink, wait_until
from playwright import sync_api
from portal_copies import Made
from webgate import settings_of, store, web_gate

from gateway.store import portal
from gateway.store.keyring import Keyring

CHROMIUM = Path("/usr/bin/chromium")
SENDER = "doctor@clinic.example"
CANARIES = ("CANARY-SUBJ-4411", "CANARY-BODY-9921", "CANARY-NAME-5521", "CANARY-FILE-7710")
ATTACHMENT = b"%PDF-1.4 CANARY-FILE-7710 " + bytes(range(256)) * 40


@dataclass
class Env:
    gw: Phigate
    sink: Sink
    base: str
    browser: sync_api.Browser


@contextmanager
def running_portal(tmp: Path, **portal_settings: Any) -> Iterator[Env]:
    """A server whose portal mails through a loopback sink, and Chromium to browse it."""
    address = f"127.0.0.1:{free_port()}"
    with Sink() as sink:
        gw = web_gate(
            tmp,
            web={"address": address, "public_url": f"http://{address}"},
            delivery={**via_sink(sink), "poll_interval": 0.2, "retry_schedule": [0.5]},
            portal=portal_settings,
        )
        with gw, sync_api.sync_playwright() as playwright:
            # --no-sandbox: Chromium's sandbox needs user namespaces, which containers lack.
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox"]
            )
            try:
                yield Env(gw, sink, f"http://{address}", browser)
            finally:
                browser.close()


def original(html: str | None = None) -> bytes:
    """A lab result with a canary in its subject, body, attachment name and bytes."""
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = "patient@example.net"
    message["Subject"] = "Lab results CANARY-SUBJ-4411"
    message["Message-ID"] = "<original-1@clinic.example>"
    message.set_content("Your results: CANARY-BODY-9921")
    message.add_alternative(html or "<p>Your results: <b>CANARY-BODY-9921</b></p>", subtype="html")
    message.add_attachment(
        ATTACHMENT, maintype="application", subtype="pdf", filename="CANARY-NAME-5521.pdf"
    )
    return message.as_bytes(policy=SMTP)


def mail_to(sink: Sink, address: str, count: int = 1) -> list[bytes]:
    """The mail `address` got, once there are at least `count`."""
    wait_until(lambda: sum(address in m.recipients for m in sink.messages) >= count, 20, 0.05)
    return [m.content for m in sink.messages if address in m.recipients]


def ask_for_code(env: Env, page: sync_api.Page, recipient: str, button: str) -> str:
    """Press the button that mails a code; the code from the new mail at the sink."""
    already = sum(recipient in m.recipients for m in env.sink.messages)
    page.get_by_role("button", name=button).click()
    sync_api.expect(page.get_by_role("status")).to_contain_text("We have emailed a code")
    return code_in(mail_to(env.sink, recipient, already + 1)[-1])


def sign_in(env: Env, page: sync_api.Page, token: str, recipient: str) -> None:
    """Open the link, ask for a code, type the newest one from the sink."""
    page.goto(f"{env.base}/portal/m/{token}")
    code = ask_for_code(env, page, recipient, "Email me a code")
    page.get_by_label("Code from the email (8 digits)").fill(code)
    page.get_by_role("button", name="Open the message").click()


def make_copy(
    gw: Phigate,
    content: bytes,
    *,
    recipient: str,
    sender: str = "doctor@clinic.example",
    passphrase_hash: str | None = None,
    read_receipt: bool = False,
    expires_in: float = 86400.0,
    state: str = portal.WAITING,
) -> Made:
    """A copy for `recipient` in the running server's store, and its link."""
    settings = settings_of(gw)
    keyring = Keyring(settings.path(settings.keys_dir))
    with store(gw) as db, db.transaction() as conn:
        return portal_copies.make_copy(
            conn,
            keyring,
            recipient,
            content,
            now=time.time(),
            expires_in=expires_in,
            passphrase_hash=passphrase_hash,
            sender=sender,
            read_receipt=read_receipt,
            state=state,
        )


def copy_of(gw: Phigate, copy_id: int) -> portal.Copy:
    with store(gw) as db, db.reading() as conn:
        found = portal.by_id(conn, copy_id)
    assert found is not None
    return found


def code_in(mail: bytes) -> str:
    """The access code in a code mail's text."""
    parsed = email.message_from_bytes(mail)
    payload = parsed.get_payload(decode=True)
    assert isinstance(payload, bytes)
    found = re.search(r"^\s+(\d{8})\s*$", payload.decode(), re.MULTILINE)
    assert found is not None, "no code in the mail"
    return found.group(1)
