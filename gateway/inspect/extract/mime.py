"""walk(): the fast, in-process half of extraction.

Every MIME part, nested messages included, becomes text segments, an unscannable
reason, or a HeavyJob for a worker process (PDF, DOCX, XLSX, zip, and HTML too large
to parse in-process safely).
"""

from __future__ import annotations

import base64
import binascii
import re
from email.header import Header, decode_header
from email.message import Message
from typing import Final

import pybase64

from gateway.config import InspectionConfig
from gateway.inspect.content import Extraction, Place
from gateway.inspect.extract.collect import Collector
from gateway.inspect.extract.jobs import HeavyJob, HeavyKind
from gateway.inspect.extract.kinds import classify, file_ext
from gateway.inspect.extract.text import decode_text, unflow
from gateway.mail.address_lists import address_list
from gateway.mail.base64_octets import WHITE_SPACE, plainly_well_formed
from gateway.mail.message import payload_as_parsed

SUBJECT: Final = Place("subject")
DISPLAY_NAMES: Final = Place("header", 0)
FILE_NAMES: Final = Place("header", 1)

_ADDRESS_HEADERS: Final = ("From", "Sender", "Reply-To", "To", "Cc")
# No mail nests this deep; past it a part is reported "too_deep" rather than walked.
_MAX_MIME_DEPTH: Final = 64
_MAX_TYPE_CHARS: Final = 100  # a content type is reported: keep a crafted one short
_NOT_BASE64: Final = re.compile(rb"[^A-Za-z0-9+/]")
_PADDING: Final = b"=" + WHITE_SPACE
_TAIL: Final = 64  # octets at the end where the padding is looked for


def header_text(value: str | Header) -> str:
    """A header value with its RFC 2047 encoded words decoded (raw if they are broken,
    as a mail client would show them)."""
    try:
        chunks = decode_header(value)
    except Exception:  # HeaderParseError and what crafted encoded words raise
        return str(value)
    return "".join(
        decode_text(chunk, charset) if isinstance(chunk, bytes) else chunk
        for chunk, charset in chunks
    )


def _headers_text(message: Message, names: tuple[str, ...]) -> list[str]:
    return [header_text(value) for name in names for value in message.get_all(name) or ()]


def _display_names(message: Message) -> list[str]:
    names = []
    for header in _ADDRESS_HEADERS:
        for value in message.get_all(header) or ():
            # Split addresses before decoding: a decoded "Doe, Jane" would split at its comma.
            raw = value if isinstance(value, str) else header_text(value)
            try:
                parsed = address_list([raw])
            except Exception:  # the address parser has choked on crafted input before
                parsed = [(raw, "")]
            names += [header_text(name) for name, _ in parsed if name]
    return names


def _base64(encoded: bytes) -> tuple[bytes, bool]:
    """Decoded bytes of base64, its white space skipped, and whether the encoding was
    malformed (then decoded leniently, as mail clients do: non-alphabet characters
    dropped)."""
    if plainly_well_formed(encoded):
        try:  # white space is all the decoder skips here: no copy without it first
            data = pybase64.b64decode(encoded, validate=False)
        except binascii.Error:
            pass  # its length: padding left out (harmless) or a character too many
        else:
            if _padding_fits(encoded, len(data)):
                return data, False
    data = encoded.translate(None, WHITE_SPACE)
    try:
        # Missing padding is common and harmless. pybase64 decodes with SIMD: a 2 MB
        # attachment in 0.1 ms where the standard library takes 5.
        return pybase64.b64decode(data + b"=" * (-len(data) % 4), validate=True), False
    except binascii.Error:
        pass
    data = _NOT_BASE64.sub(b"", data)
    data = data[: len(data) - (len(data) % 4 == 1)]  # a lone trailing character is no byte
    return base64.b64decode(data + b"=" * (-len(data) % 4)), True


def _padding_fits(encoded: bytes, decoded: int) -> bool:
    """Whether the "=" that end a plainly well-formed encoding (none is before a
    character) are no more than its characters need: the decoder, lenient, stops at
    the padding a group of four needs and ignores any more. Three octets decode from
    four characters, one from two, two from three: the last group's characters."""
    tail = encoded[-_TAIL:]
    trail = len(tail) - len(tail.rstrip(_PADDING))
    if trail == len(tail) and len(encoded) > _TAIL:
        return False  # an end of padding and white space this long: look closer
    padding = tail[len(tail) - trail :].count(b"=")
    return padding <= (0, 2, 1)[decoded % 3]


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # crafted RFC 2231 continuations make the email package raise
        return None
    if name is None:
        return None
    # RFC 2231 is decoded by get_filename(); RFC 2047 words in a name are common too.
    return header_text(name) if "=?" in name else name


def _is_attachment(part: Message) -> bool:
    return part.get_content_disposition() == "attachment"


def _param(part: Message, name: str) -> str | None:
    """A Content-Type parameter, lower case; None if absent or unreadable."""
    try:
        value = part.get_param(name)
    except Exception:  # as _filename()
        return None
    return value.lower() if isinstance(value, str) else None


class _Walk:
    def __init__(self, config: InspectionConfig) -> None:
        self.config = config
        self.extraction = Extraction()
        self.out = Collector(self.extraction, config.max_text_chars)
        self.jobs: list[HeavyJob] = []
        self.bodies = 0
        self.attachments = 0
        self.file_names: list[str] = []

    def next_attachment(self) -> Place:
        self.attachments += 1
        return Place("attachment", self.attachments - 1)

    def headers(self, message: Message, place: Place) -> None:
        """A nested message's Subject and display names: content of its attachment."""
        lines = _headers_text(message, ("Subject",)) + _display_names(message)
        self.out.text(place, "\n".join(lines), structured=False)

    def run(self, message: Message) -> None:
        self.out.text(SUBJECT, "\n".join(_headers_text(message, ("Subject",))), structured=False)
        self.out.text(DISPLAY_NAMES, "\n".join(_display_names(message)), structured=False)
        # Depth-first in MIME order, without recursion (nesting is the sender's choice).
        # Each entry: part, depth, and the attachment place it belongs to, if any.
        stack: list[tuple[Message, int, Place | None]] = [(message, 0, None)]
        while stack:
            part, depth, within = stack.pop()
            if depth > _MAX_MIME_DEPTH:
                self.out.unscannable(within or self.next_attachment(), "too_deep")
                continue
            children = part.get_payload() if part.is_multipart() else None
            if not isinstance(children, list):
                try:
                    self.leaf(part, within)
                except Exception:  # a part the email package cannot read: never the message
                    self.out.unscannable(within or self.next_attachment(), "malformed")
                continue
            if part.get_content_maintype() == "message" and depth > 0:
                # A nested message is an attachment (forwarded as one, or inline): all
                # of it, its Subject and names too, shares one attachment index.
                if within is None:
                    within = self.next_attachment()
                    self.add_types(part, _filename(part))
                for inner in children:
                    if isinstance(inner, Message):
                        self.headers(inner, within)
            stack.extend(
                (child, depth + 1, within)
                for child in reversed(children)
                if isinstance(child, Message)
            )
        self.out.text(FILE_NAMES, "\n".join(self.file_names), structured=False)

    def add_types(self, part: Message, name: str | None) -> None:
        self.extraction.attachment_types.add(part.get_content_type()[:_MAX_TYPE_CHARS])
        if name is not None:
            self.file_names.append(name)
            ext = file_ext(name)
            if ext is not None:
                self.extraction.attachment_types.add(ext)

    def leaf(self, part: Message, within: Place | None) -> None:
        maintype = part.get_content_maintype()
        name = _filename(part)
        # A part a mail client shows as the message text: text, and the odd multipart
        # or message part that failed to parse (shown raw). Inside an attached message
        # it is part of that attachment, but no attachment of its own (no type).
        shown = (
            maintype in ("text", "multipart", "message")
            and name is None
            and not _is_attachment(part)
        )
        body = shown and within is None
        if body:
            place = Place("body", self.bodies)
            self.bodies += 1
        else:
            place = within or self.next_attachment()
            if not shown:
                self.add_types(part, name)
        # One character per octet: its length is the octets', and in base64 an 8-bit
        # octet becomes "?" below, dropped as malformed.
        payload = payload_as_parsed(part)
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        budget = self.config.max_attachment_bytes
        if encoding == "base64":
            encoded = payload.encode("ascii", "replace")
            # At most three octets per four characters, known without decoding. White
            # space counted as characters gives a bound at once; only past the budget
            # is it left out, to count the characters alone.
            decoded_size = len(encoded) * 3 // 4
            if decoded_size > budget:
                decoded_size = len(encoded.translate(None, WHITE_SPACE)) * 3 // 4
        else:
            decoded_size = len(payload)
        if decoded_size > budget:
            self.out.unscannable(place, "over_budget")
            return
        if encoding == "base64":
            # Decoded here, not by get_payload(), to know when it was malformed.
            data, malformed = _base64(encoded)
        else:
            # The 8-bit bytes as sent; quoted-printable soft breaks ("=\r\n") removed,
            # so "123-4=\r\n5-6789" is whole.
            decoded = part.get_payload(decode=True)
            data = decoded if isinstance(decoded, bytes) else b""
            malformed = maintype == "multipart"  # a multipart without its boundaries
        if malformed:
            self.out.unscannable(place, "malformed")
        charset = _param(part, "charset")

        def queue(kind: HeavyKind, data: bytes) -> None:
            self.jobs.append(HeavyJob(place, kind, data))

        if body and part.get_content_subtype() == "html":
            self.out.part(place, "html", data, charset, queue)
        elif body:
            text = decode_text(data, charset)
            if _param(part, "format") == "flowed":
                text = unflow(text, _param(part, "delsp") == "yes")
            self.out.text(place, text)
        else:
            kind = classify(part.get_content_type(), name, data)
            # Bytes decoded leniently are no file an extractor could read.
            if not malformed or kind in ("text", "html"):
                self.out.part(place, kind, data, charset, queue)


def walk(message: Message, config: InspectionConfig) -> tuple[Extraction, list[HeavyJob]]:
    """Everything in a message that can be read in-process, fast, and the jobs for the
    rest (to run with extract_heavy(), then merge()).

    Places: the Subject; header 0, display names; header 1, attachment file names;
    body N, the Nth text part; attachment N, the Nth attachment (everything in an
    archive or a nested message/rfc822 shares its index).
    """
    state = _Walk(config)
    state.run(message)
    return state.extraction, state.jobs
