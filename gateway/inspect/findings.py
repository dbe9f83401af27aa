"""What inspection reports about a message: PHI types, counts and places, never values.

This is the contract between the PHI detectors and the policy engine: the
policy's `phi_*`, `structured_payload`, `unscannable` and `attachment_types`
conditions test exactly these fields. PHI a sender declares (a message
template's PHI variables, `DeclaredPhi`) joins them as findings of type
`declared`, so a rule on PHI holds even when no detector finds any.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

# Every PHI type a detector may report; policy files may name only these.
PHI_TYPES: tuple[str, ...] = (
    "name",
    "ssn",
    "mrn",
    "npi",
    "dea",
    "mbi",
    "member_id",
    "account_number",
    "phone",
    "fax",
    "email",
    "street_address",
    "date_of_birth",
    "service_date",
    "device_id",
    "icd10",
    "diagnosis",
    "drug",
    "lab_result",
    "procedure",
    "hl7",
    "fhir",
    "ccda",
    "declared",  # not detected: the sender's template declares PHI variables (DeclaredPhi)
)

DECLARED = "declared"
DECLARED_PLACE = "template"


@dataclass(frozen=True)
class Findings:
    """The result of inspecting one message.

    `phi` is the detector's verdict under its documented rule (a direct
    identifier in a health context, or a person tied to health information);
    `types` counts every finding, PHI or not, by type.
    """

    phi: bool = False
    types: Mapping[str, int] = field(default_factory=dict)
    in_subject: bool = False  # a finding in the Subject header
    in_attachment: bool = False  # a finding in an attachment
    structured: bool = False  # an HL7 v2, FHIR or C-CDA payload
    unscannable: bool = False  # some part could not be scanned (image, encrypted, over budget)
    # Content types of attachments ("application/pdf") and file-name extensions (".pdf").
    attachment_types: frozenset[str] = frozenset()
    # Where: place label ("subject", "header", "body[0]", "attachment[1]") -> type -> count.
    places: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # Why content could not be scanned: reason ("image", "encrypted", "timeout" ...) -> count.
    unscannable_reasons: Mapping[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(self.types.values())


@dataclass(frozen=True)
class DeclaredPhi:
    """PHI a message carries by its sender's word, whatever the detectors find: the
    names of a message template's PHI variables that were given a value (never
    the values), and whether one of them is in the subject."""

    variables: tuple[str, ...]
    in_subject: bool = False

    def onto(self, findings: Findings) -> Findings:
        """`findings` with these as PHI: one `declared` finding per variable."""
        if not self.variables:
            return findings
        count = len(self.variables)
        place = dict(findings.places.get(DECLARED_PLACE, {}))
        place[DECLARED] = place.get(DECLARED, 0) + count
        return replace(
            findings,
            phi=True,
            types={**findings.types, DECLARED: findings.types.get(DECLARED, 0) + count},
            in_subject=findings.in_subject or self.in_subject,
            places={**findings.places, DECLARED_PLACE: place},
        )
