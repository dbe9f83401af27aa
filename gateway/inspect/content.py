"""What extraction hands to the detectors: text by place, clinical payloads, what was unreadable.

Values here (text, names, identifiers) live only in memory during one
inspection. Nothing in this module is ever logged, stored or printed;
only `Findings` (types, counts, places) leaves inspection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PlaceKind = Literal["subject", "header", "body", "attachment"]
StructuredKind = Literal["hl7", "fhir", "ccda"]
# Why something could not be scanned; reported as counts per reason.
UnscannableReason = Literal[
    "image", "encrypted", "over_budget", "timeout", "unknown_binary", "malformed", "too_deep"
]


@dataclass(frozen=True)
class Place:
    """Where in the message: the Subject, another header (display names, attachment
    file names), body part N (text parts in MIME order), or attachment N."""

    kind: PlaceKind
    index: int = 0

    @property
    def label(self) -> str:
        return self.kind if self.kind in ("subject", "header") else f"{self.kind}[{self.index}]"


@dataclass(frozen=True)
class Segment:
    """Plain text from one place, decoded and normalised (NFKC, no zero-width characters)."""

    place: Place
    text: str


@dataclass(frozen=True)
class StructuredPayload:
    """An HL7 v2, FHIR or C-CDA payload: PHI by construction.

    `names` and `identifiers` come from its labelled fields (PID-5, Patient.name,
    recordTarget ...) so the detectors can find them anywhere else in the message.
    """

    kind: StructuredKind
    place: Place
    names: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()


@dataclass
class Extraction:
    segments: list[Segment] = field(default_factory=list)
    structured: list[StructuredPayload] = field(default_factory=list)
    unscannable: list[tuple[Place, UnscannableReason]] = field(default_factory=list)
    # Content types ("application/pdf") and file-name extensions (".pdf") of attachments.
    attachment_types: set[str] = field(default_factory=set)
