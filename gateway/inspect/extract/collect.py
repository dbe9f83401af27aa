"""Adding to an Extraction: normalised text under the whole-message budget, clinical
payloads, unscannable parts. Used by walk(), the extractors and merge() alike."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Final

from gateway.config import InspectionConfig
from gateway.inspect.content import Extraction, Place, Segment, UnscannableReason
from gateway.inspect.extract.clinical import find_structured
from gateway.inspect.extract.jobs import HeavyKind, HeavyResult
from gateway.inspect.extract.kinds import PGP_MESSAGE, Kind
from gateway.inspect.extract.text import decode_text, html_to_text, normalise_text

# HTML parsing is quadratic in nesting depth (64 KB of "<ul><li>" takes 0.3 s): larger
# HTML goes to a worker, under its time budget, smaller stays fast in-process (a
# crafted 32 KB costs under 0.1 s, ordinary mail well under a millisecond).
INLINE_HTML_CHARS: Final = 32_768
_HEAVY: dict[Kind, HeavyKind] = {"pdf": "pdf", "docx": "docx", "xlsx": "xlsx", "zip": "zip"}
_REASONS: dict[Kind, UnscannableReason] = {
    "image": "image",
    "encrypted": "encrypted",
    "binary": "unknown_binary",
}


class Collector:
    """Appends to one Extraction, keeping its text within `max_text_chars`."""

    def __init__(self, extraction: Extraction, max_text_chars: int) -> None:
        self.extraction = extraction
        self.left = max_text_chars - sum(len(s.text) for s in extraction.segments)
        # "over_budget" for text is recorded once; an earlier over_budget (of any
        # cause) already marks the message, so merge() does not add another.
        self._cut = any(reason == "over_budget" for _, reason in extraction.unscannable)

    def unscannable(self, place: Place, reason: UnscannableReason) -> None:
        self.extraction.unscannable.append((place, reason))

    def add(self, segment: Segment, cut: bool = False) -> str:
        """Appends a normalised segment, cut to the budget; returns the text kept.
        `cut`: the caller already cut it."""
        text = segment.text
        if len(text) > self.left:
            text = text[: max(self.left, 0)]
            cut = True
        if cut and not self._cut:
            self._cut = True
            self.unscannable(segment.place, "over_budget")
        if not text or text.isspace():
            return ""
        self.left -= len(text)
        cut_segment = len(text) != len(segment.text)
        self.extraction.segments.append(Segment(segment.place, text) if cut_segment else segment)
        return text

    def text(self, place: Place, text: str, *, structured: bool = True) -> None:
        """Normalises and appends text; finds clinical payloads in it unless told not to."""
        cut = len(text) > self.left
        if cut:  # before normalising, which may expand (NFKC) what cannot fit anyway
            text = text[: max(self.left, 0)]
        kept = self.add(Segment(place, normalise_text(text)), cut)
        if PGP_MESSAGE in kept:  # inline PGP: the readable text is ciphertext
            self.unscannable(place, "encrypted")
        if structured and kept:
            self.extraction.structured.extend(find_structured(kept, place))

    def part(
        self,
        place: Place,
        kind: Kind,
        data: bytes,
        charset: str | None,
        heavy: Callable[[HeavyKind, bytes], None],
    ) -> None:
        """One attachment or archive member of a known kind; `heavy` takes the formats
        that need an extractor (walk() queues a job, a worker extracts it in place)."""
        if not data:
            return
        if kind == "text":
            self.text(place, decode_text(data, charset))
        elif kind == "html":
            html = decode_text(data, charset)
            if len(html) > INLINE_HTML_CHARS:
                heavy("html", html.encode())
            else:
                self.text(place, html_to_text(html))
        elif kind in _HEAVY:
            heavy(_HEAVY[kind], data)
        elif kind in _REASONS:
            self.unscannable(place, _REASONS[kind])
        # "signature": no message content


def merge(
    extraction: Extraction, result: HeavyResult, config: InspectionConfig | None = None
) -> None:
    """Adds an extractor's result to the message's extraction. With `config`, the
    message's text stays within `config.max_text_chars` as a whole; without, each
    result is only within it on its own (the extractor saw to that)."""
    out = Collector(extraction, config.max_text_chars if config is not None else sys.maxsize)
    for segment in result.segments:
        out.add(segment)
    extraction.structured.extend(result.structured)
    extraction.unscannable.extend(result.unscannable)
    extraction.attachment_types |= result.attachment_types
