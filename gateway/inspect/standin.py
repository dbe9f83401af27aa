"""STAND-IN PHI inspection, until the real detectors exist.

It walks the MIME tree, records attachment types, reports every part it
cannot read as text as unscannable (so a policy that treats unscannable
content as PHI stays safe), and recognises only a few unmistakable
patterns: dashed SSNs, labelled MRNs and dates of birth, HL7 v2 messages.
"""

from __future__ import annotations

import re
from collections import Counter
from email.message import Message

from gateway.config import InspectionConfig
from gateway.inspect.findings import Findings

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ssn", re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")),
    ("mrn", re.compile(r"\bMRN\s*[:#]?\s*[A-Z0-9-]{5,}\b", re.IGNORECASE)),
    ("date_of_birth", re.compile(r"\b(?:DOB|date of birth)\s*[:#]?\s*\d", re.IGNORECASE)),
    ("hl7", re.compile(r"(?:^|[\r\n])MSH\|\^~\\&")),
)
_STRUCTURED = frozenset({"hl7"})


def _scan(text: str, counts: Counter[str]) -> bool:
    found = False
    for name, pattern in _PATTERNS:
        hits = len(pattern.findall(text))
        if hits:
            counts[name] += hits
            found = True
    return found


def _text_of(part: Message) -> str | None:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def inspect_message(message: Message, config: InspectionConfig | None = None) -> Findings:
    counts: Counter[str] = Counter()
    in_subject = _scan(str(message.get("Subject", "")), counts)
    in_attachment = unscannable = False
    attachment_types: set[str] = set()
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        filename = part.get_filename()
        is_attachment = filename is not None or part.get_content_disposition() == "attachment"
        if is_attachment:
            attachment_types.add(content_type)
            if filename and "." in filename:
                attachment_types.add("." + filename.rsplit(".", 1)[1].lower()[:16])
        text = _text_of(part) if part.get_content_maintype() == "text" else None
        if text is None:
            unscannable = True
            continue
        if _scan(text, counts) and is_attachment:
            in_attachment = True
    structured = not _STRUCTURED.isdisjoint(counts)
    return Findings(
        phi=bool(counts),
        types=dict(counts),
        in_subject=in_subject,
        in_attachment=in_attachment,
        structured=structured,
        unscannable=unscannable,
        attachment_types=frozenset(attachment_types),
    )
