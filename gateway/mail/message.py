"""A message parsed once for every reader: its header fields, parts and Message-ID."""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser

_PARSER = BytesParser(policy=email.policy.compat32)


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None
    message: Message


def parse(content: bytes) -> ParsedMessage:
    message = _PARSER.parsebytes(content)
    raw_id = message.get("Message-ID")
    message_id = " ".join(str(raw_id).split())[:998] if raw_id else None
    return ParsedMessage(message_id, message)
