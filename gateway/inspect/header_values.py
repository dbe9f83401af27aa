"""Client-chosen header values kept outside the encrypted content: the Message-ID.

The Message-ID is stored in the messages table, audited and quoted in DSNs
(it lets the sender thread a bounce), so it must carry no PHI: it is read
with the message detectors, and one that names a person or an identifier is
kept only as a keyed hash. The same value always gives the same hash, so
messages can still be told apart and matched, but the hash cannot be undone
or guessed from a list of SSNs without the key (kept in the keys directory).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from gateway.config import InspectionConfig
from gateway.inspect.detect import find_spans

KEY_FILE = "header-values.key"
# A msg-id's own punctuation joins the words of whatever was put in it:
# "<jane.doe.123-45-6789@x>" reads as "jane doe 123-45-6789 x".
_ID_PUNCTUATION = re.compile(r"[<>@._+=/]")
# The stored form is still one msg-id token (RFC 5322 3.6.4), so DSNs stay well formed.
_HASHED = "<hmac-sha256.{}@redacted.invalid>"


class HeaderValues:
    """Decides how a client-chosen header value may be recorded."""

    def __init__(self, config: InspectionConfig, key: bytes) -> None:
        self.config = config
        self._key = key

    def names_anyone(self, value: str) -> bool:
        """True when the detectors find an identifier, a name, a date of birth ... in it."""
        return bool(find_spans(_ID_PUNCTUATION.sub(" ", value), self.config))

    def recordable_message_id(self, message_id: str | None) -> str | None:
        """The Message-ID as stored, audited and quoted in DSNs: as sent, or its keyed hash."""
        if message_id is None or not self.names_anyone(message_id):
            return message_id
        digest = hmac.new(self._key, message_id.encode("utf-8", "replace"), hashlib.sha256)
        return _HASHED.format(digest.hexdigest())
