"""Audit events as a SIEM reads them: JSON lines, or RFC 5424 syslog messages.

Both carry what the trail holds and nothing more: the stored metadata
fields, the event's id (to drop repeats: exports are at-least-once) and its
hash (its link in the chain). Never content: the trail has none.

A syslog message puts the fields in one structured-data element whose SD-ID
is `audit.syslog.sd_id` (NAME@PEN, PEN an IANA Private Enterprise Number;
the default's 32473 is the number reserved for documentation, RFC 5612),
with no MSG part:

    <110>1 2026-12-04T09:30:00.123456Z mail.example.org phigate - accepted
      [phigate@32473 id="812" hash="..." event="accepted" result="ok" ...]

Over a stream (the forwarder, RFC 5425) each message is framed by its
length in octets (`octet_counted`).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from gateway.audit.search import Event
from gateway.config import SyslogConfig

NILVALUE = "-"
SEVERITY_NOTICE = 5
SEVERITY_INFO = 6
# Results and kinds a SIEM should see above the everyday flow.
_NOTICE_RESULTS = frozenset(("failed", "refused", "locked"))
_NOTICE_EVENTS = frozenset(("refused", "bounced"))
_PARAM_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "]": "\\]"})
# A line break inside a value would split a line of `audit export --format
# syslog`; control characters are replaced (RFC 5424 allows them, files do not).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPECIAL = re.compile(r'[\x00-\x1f\x7f"\\\]]')
_PRINTUSASCII = re.compile(r"^[\x21-\x7e]+$")


def jsonl_line(event: Event) -> str:
    """One event as one line of JSON (without the newline)."""
    return json.dumps(event.as_json(), separators=(",", ":"))


def param_value(value: str) -> str:
    """An SD-PARAM value, escaped as RFC 5424 section 6.3.3 asks: `"`, `\\` and `]`."""
    if _SPECIAL.search(value) is None:  # most values: one scan, no copies
        return value
    return _CONTROL.sub("\ufffd", value).translate(_PARAM_ESCAPES)


def _header_field(value: str, limit: int) -> str:
    """A header field (HOSTNAME, APP-NAME, MSGID): printable US-ASCII or NILVALUE."""
    return value[:limit] if value and _PRINTUSASCII.match(value) else NILVALUE


def severity(event: Event) -> int:
    if event.result in _NOTICE_RESULTS or event.event in _NOTICE_EVENTS:
        return SEVERITY_NOTICE
    return SEVERITY_INFO


def _timestamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _params(event: Event) -> list[tuple[str, str]]:
    fields: list[tuple[str, object]] = [
        ("id", event.id),
        ("hash", event.hash),
        ("event", event.event),
        ("result", event.result),
        ("queue_id", event.queue_id),
        ("principal", event.principal),
        ("actor", event.actor),
        ("client_ip", event.client_ip),
        ("sender", event.sender),
        # Envelope addresses never hold a comma (gateway.mail.addresses).
        ("recipients", ",".join(event.recipients) or None),
        ("size", event.size),
        ("code", event.code),
        ("detail", event.detail),
    ]
    return [(name, str(value)) for name, value in fields if value is not None]


class SyslogFormat:
    """RFC 5424 messages of audit events, as `audit.syslog` configures them."""

    def __init__(self, config: SyslogConfig, hostname: str) -> None:
        self.facility = config.facility
        self.sd_id = config.sd_id
        self.app_name = _header_field(config.app_name, 48)
        self.hostname = _header_field(hostname, 255)

    def line(self, event: Event) -> str:
        """The SYSLOG-MSG of one event (without framing or newline)."""
        pri = self.facility * 8 + severity(event)
        data = " ".join(f'{name}="{param_value(value)}"' for name, value in _params(event))
        return (
            f"<{pri}>1 {_timestamp(event.ts)} {self.hostname} {self.app_name} {NILVALUE} "
            f"{_header_field(event.event, 32)} [{self.sd_id} {data}]"
        )


def octet_counted(message: str) -> bytes:
    """RFC 5425 / RFC 6587 framing: the length in octets, a space, the message."""
    encoded = message.encode("utf-8")
    return b"%d %s" % (len(encoded), encoded)
