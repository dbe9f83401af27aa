"""A message parsed once for every reader: its header fields, parts and Message-ID."""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesFeedParser

# The parser splits what it is fed into lines at once: fed whole, a 10 MB message
# peaks at about eight times its size; fed in pieces of this size, under three.
_PIECE = 256 * 1024


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None
    message: Message


def parse(content: bytes) -> ParsedMessage:
    parser = BytesFeedParser(policy=email.policy.compat32)
    for start in range(0, len(content), _PIECE):
        parser.feed(content[start : start + _PIECE])
    message = parser.close()
    raw_id = message.get("Message-ID")
    message_id = " ".join(str(raw_id).split())[:998] if raw_id else None
    return ParsedMessage(message_id, message)
