"""PHI detectors: typed spans in text, and `Findings` for a whole message.

`find_spans` gives character spans (kept in memory, for tests and the
accuracy scorer); `detect` runs it over every segment of an `Extraction` and
reports types, counts and places only. How each detector validates, and the
PHI rule, are described in docs/inspection.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from gateway.config import InspectionConfig
from gateway.inspect.content import Extraction, Segment
from gateway.inspect.detect import validators
from gateway.inspect.detect.matcher import Backend, DetectionError, PatternError, default_backend
from gateway.inspect.detect.namedata import name_data
from gateway.inspect.detect.rule import IDENTITY_TYPES, PROVIDER_TYPES, Evidence, is_phi
from gateway.inspect.detect.scan import SegmentScan, Span, care_classes, compiled_for, scan_text
from gateway.inspect.findings import Findings

__all__ = [
    "Backend",
    "DetectionError",
    "Evidence",
    "PatternError",
    "Span",
    "default_backend",
    "detect",
    "find_spans",
    "is_phi",
    "prepare",
]


def prepare(config: InspectionConfig, backend: Backend | None = None) -> None:
    """Compile the patterns and read the code lists now (about half a second with
    Hyperscan) rather than on the first message."""
    compiled_for(config, backend)
    validators.ICD10.codes()
    name_data()


def find_spans(
    text: str,
    config: InspectionConfig,
    known_names: Sequence[str] = (),
    *,
    known_ids: Sequence[str] = (),
    display_names: bool = False,
    backend: Backend | None = None,
) -> list[Span]:
    """Typed spans (character offsets) of everything found in `text`, in text order.

    `known_names` / `known_ids`: names and identifiers of the message's clinical
    payloads, found wherever they appear. `display_names`: the text is display
    names, one per line (the "header" place). `backend`: "hyperscan" or "re2"
    (default: Hyperscan where installed); both give the same spans.
    """
    return scan_text(
        text, config, known_names, known_ids, display_names=display_names, backend=backend
    ).spans


def _scan_segment(
    segment: Segment,
    config: InspectionConfig,
    known_names: Sequence[str],
    known_ids: Sequence[str],
    backend: Backend | None,
) -> SegmentScan:
    place = segment.place
    if place.kind == "header" and place.index == 0:
        return scan_text(
            segment.text, config, known_names, known_ids, display_names=True, backend=backend
        )
    text = segment.text
    if place.kind == "header":
        # Attachment file names: "lab_results_jane_doe.pdf" has its words apart.
        text = text.replace("_", " ")
    return scan_text(text, config, known_names, known_ids, backend=backend)


def detect(
    extraction: Extraction, config: InspectionConfig, *, backend: Backend | None = None
) -> Findings:
    """Inspect one message's extraction: findings by type and place, and the PHI verdict."""
    known_names = tuple(dict.fromkeys(n for p in extraction.structured for n in p.names if n))
    known_ids = tuple(dict.fromkeys(i for p in extraction.structured for i in p.identifiers if i))
    types: Counter[str] = Counter()
    places: dict[str, Counter[str]] = {}
    evidence_counts: Counter[str] = Counter()  # content only: display names excluded
    patient_contacts = 0
    health_context = False
    care_words: set[str] = set()
    named_care = False
    loose: Counter[str] = Counter()  # place -> names that identify nobody in particular
    for segment in extraction.segments:
        if not segment.text:
            continue
        result = _scan_segment(segment, config, known_names, known_ids, backend)
        if not result.spans and not result.health_context and not result.care_words:
            continue
        found = Counter(span.type for span in result.spans)
        if found:
            types.update(found)
            places.setdefault(segment.place.label, Counter()).update(found)
        if not (segment.place.kind == "header" and segment.place.index == 0):
            evidence_counts.update(found)
            evidence_counts["name"] -= result.loose_names
            loose[segment.place.label] += result.loose_names
            patient_contacts += result.patient_contacts
            health_context = health_context or result.health_context
            care_words |= result.care_words
            named_care = named_care or result.named_care
    for payload in extraction.structured:
        types[payload.kind] += 1
        places.setdefault(payload.place.label, Counter())[payload.kind] += 1

    phi = is_phi(
        Evidence(
            counts=evidence_counts,
            patient_contacts=patient_contacts,
            health_context=health_context,
            structured=bool(extraction.structured),
            # Care words weighed over the whole message, staff topics included.
            care_context=named_care or bool(care_classes(dict.fromkeys(care_words))),
        ),
        config,
    )

    def sensitive_in(label_kind: str) -> bool:
        # "PHI in the subject/attachment": something identifying a person there (an
        # SSN in a subject is sensitive even in an HR mail), or, in a PHI message,
        # any finding about a patient there (NPI and DEA numbers are providers').
        # A name in free text far from anything medical counts only in a PHI message.
        return any(
            not IDENTITY_TYPES.isdisjoint(
                t for t, n in counts.items() if t != "name" or n > loose[label]
            )
            or (phi and not PROVIDER_TYPES.issuperset(counts))
            for label, counts in places.items()
            if label.startswith(label_kind)
        )

    reasons: Counter[str] = Counter(reason for _, reason in extraction.unscannable)
    return Findings(
        phi=phi,
        types=dict(types),
        in_subject=sensitive_in("subject"),
        in_attachment=sensitive_in("attachment"),
        structured=bool(extraction.structured),
        unscannable=bool(extraction.unscannable),
        attachment_types=frozenset(extraction.attachment_types),
        places={label: dict(counts) for label, counts in places.items()},
        unscannable_reasons=dict(reasons),
    )
