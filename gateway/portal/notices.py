"""The mail phigate writes for the portal: notices, access codes, read receipts.

Their texts are Jinja2 templates an admin may replace (portal.templates_dir;
the built-in ones are in gateway/templates/portal). Each text template starts
with a `Subject:` line and a blank line. Templates see only what is passed
here, never the message: a notice names the organisation, the link, the
expiry and, where the policy allows, the sender's address. They are loaded
and test-rendered once at start-up, so a broken template stops the server
with the file and line, not a delivery.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from importlib import resources
from pathlib import Path

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
)
from jinja2.sandbox import SandboxedEnvironment

from gateway.mail.addresses import domain_of

# Each template, and sample values it is test-rendered with at start-up.
_SAMPLES: dict[str, Mapping[str, object]] = {
    "notice.txt": {
        "organisation": "Example Clinic",
        "sender": "clinic@example.org",
        "link": "https://portal.example.org/portal/m/" + "A" * 43,
        "expires": "1 January 2030, 00:00 UTC",
        "passphrase": True,
    },
    "code.txt": {"organisation": "Example Clinic", "code": "12345678", "minutes": 15},
    "receipt.txt": {
        "organisation": "Example Clinic",
        "queue_id": "0123456789AABCDEF0123",
        "recipient": "patient@example.net",
        "opened": "1 January 2030, 00:00 UTC",
    },
}
_SAMPLES["notice.html"] = _SAMPLES["notice.txt"]
_SUBJECT = re.compile(r"Subject: ([ -~]{1,200})\r?\n\r?\n")


class NoticeTemplateError(Exception):
    """A notice template that cannot be used; the message names the file and line."""


def when(ts: float) -> str:
    """A time as recipients read it: "4 December 2026, 16:10 UTC"."""
    moment = datetime.fromtimestamp(ts, UTC)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


class Notices:
    def __init__(
        self,
        organisation: str,
        from_address: str,
        hostname: str,
        templates_dir: Path | None = None,
    ) -> None:
        """Load and check the templates (admin's first, then the built-in ones)."""
        builtin = Path(str(resources.files("gateway") / "templates" / "portal"))
        loaders = [FileSystemLoader(str(builtin))]
        if templates_dir is not None:
            if not templates_dir.is_dir():
                raise NoticeTemplateError(
                    f"portal.templates_dir {templates_dir} is not a directory: create it "
                    "with the templates to replace (notice.txt, notice.html, code.txt, "
                    "receipt.txt), or remove the setting"
                )
            loaders.insert(0, FileSystemLoader(str(templates_dir)))
        self.organisation = organisation
        self.from_address = from_address
        self.hostname = hostname
        self._env = SandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html")),
            keep_trailing_newline=True,
        )
        for name, sample in _SAMPLES.items():
            self._render(name, sample)  # raises NoticeTemplateError, located

    def _render(self, name: str, values: Mapping[str, object]) -> str:
        try:
            template = self._env.get_template(name)
            text = template.render(values)
        except TemplateSyntaxError as exc:
            raise NoticeTemplateError(
                f"{exc.filename or name}, line {exc.lineno}: {exc.message}"
            ) from None
        except TemplateNotFound:
            raise NoticeTemplateError(f"portal template {name} is missing") from None
        except TemplateError as exc:
            source = self._env.get_template(name).filename or name
            raise NoticeTemplateError(
                f"{source}: {exc.message or type(exc).__name__} (templates may use only "
                f"{', '.join(sorted(_SAMPLES[name]))})"
            ) from None
        if name.endswith(".txt") and not _SUBJECT.match(text):
            source = self._env.get_template(name).filename or name
            raise NoticeTemplateError(
                f"{source}, line 1: start with one line `Subject: ...` (printable ASCII, at "
                "most 200 characters) and a blank line"
            )
        return text

    def _compose(self, to: str, text_template: str, values: Mapping[str, object]) -> EmailMessage:
        rendered = self._render(text_template, values)
        found = _SUBJECT.match(rendered)
        assert found is not None  # checked by _render
        message = EmailMessage()
        message["From"] = Address(self.organisation, addr_spec=self.from_address)
        message["To"] = to
        message["Subject"] = found.group(1)
        message["Date"] = formatdate(time.time(), localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=domain_of(self.from_address) or self.hostname)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
        message.set_content(rendered[found.end() :])
        return message

    def notice(
        self, *, recipient: str, link: str, expires_at: float, sender: str | None, passphrase: bool
    ) -> bytes:
        """The notice of a waiting message: no subject, body or name from the message."""
        values = {
            "organisation": self.organisation,
            "sender": sender or "",
            "link": link,
            "expires": when(expires_at),
            "passphrase": passphrase,
        }
        message = self._compose(recipient, "notice.txt", values)
        message.add_alternative(self._render("notice.html", values), subtype="html")
        return message.as_bytes()

    def code(self, *, recipient: str, code: str, minutes: int) -> bytes:
        values = {"organisation": self.organisation, "code": code, "minutes": minutes}
        return self._compose(recipient, "code.txt", values).as_bytes()

    def receipt(self, *, sender: str, recipient: str, queue_id: str, opened_at: float) -> bytes:
        values = {
            "organisation": self.organisation,
            "queue_id": queue_id,
            "recipient": recipient,
            "opened": when(opened_at),
        }
        return self._compose(sender, "receipt.txt", values).as_bytes()
