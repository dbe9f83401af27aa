"""The PHI rule: when findings make a message PHI (docs/inspection.md, "The PHI rule").

Findings say what is in a message; this rule says whether it is *protected
health information*: information about a person's health tied to that
person. A diabetes newsletter (health, no person), a staff memo (a person, no
health) and a provider directory (NPIs and phone numbers identify providers,
not patients) are not PHI; an appointment reminder to a named patient is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config import InspectionConfig

# Identify a person. Phone, fax, e-mail and street address count only when they
# are a patient's (see `Evidence.patient_contacts`): every signature has some.
IDENTITY_TYPES = frozenset(
    {
        "name",
        "ssn",
        "mrn",
        "mbi",
        "member_id",
        "account_number",
        "date_of_birth",
        "device_id",
    }
)
CONTACT_TYPES = frozenset({"phone", "fax", "email", "street_address"})
# Identify a patient on their own: in mail through a healthcare relay, these
# are a patient's unless shown otherwise (fail closed).
DIRECT_TYPES = frozenset({"ssn", "mrn", "mbi", "member_id", "date_of_birth"})
# Say something about health care.
HEALTH_TYPES = frozenset({"icd10", "diagnosis", "drug", "lab_result", "procedure", "service_date"})
# NPI and DEA numbers identify providers, never a patient: findings, not PHI.
PROVIDER_TYPES = frozenset({"npi", "dea"})


@dataclass(frozen=True)
class Evidence:
    """What the rule looks at, from the message's text (display names excluded: the
    sender's own name is on every message and tells nothing about a patient)."""

    counts: Mapping[str, int]  # findings by type
    patient_contacts: int = 0  # phone/fax/e-mail/address in a patient context
    health_context: bool = False  # a health context word: patient, clinic, claim ...
    structured: bool = False  # an HL7 v2, FHIR or C-CDA payload
    # A care word (appointment, visit, refill, prescription, your results, your
    # doctor ...): with a patient's name, the message says the person is a patient.
    care_context: bool = False

    @property
    def identity(self) -> int:
        return sum(self.counts.get(t, 0) for t in IDENTITY_TYPES) + self.patient_contacts

    @property
    def direct(self) -> int:
        return sum(self.counts.get(t, 0) for t in DIRECT_TYPES)

    @property
    def health(self) -> int:
        return sum(self.counts.get(t, 0) for t in HEALTH_TYPES)


def is_phi(evidence: Evidence, config: InspectionConfig) -> bool:
    """The PHI verdict.

    PHI when any of:

    1. a structured clinical payload (HL7 v2, FHIR, C-CDA) is present;
    2. an identity finding (name, SSN, MRN, MBI, member id, account number,
       date of birth, device id, or a patient's phone/fax/e-mail/address) and at
       least `min_health_terms` health findings (ICD-10 code, diagnosis, drug,
       lab result, procedure, service date);
    3. a direct identifier (SSN, MRN, MBI, member id, date of birth) on its own;
       with `direct_identifiers_need_health_terms`, only with a health finding
       or a health context word (patient, clinic, claim ...);
    4. a patient's name and a care word (appointment, visit, prescription, refill,
       lab work, your results, your doctor ...), which counts as one more
       health finding towards `min_health_terms`: a reminder to a named person
       discloses that they are a patient. `counts["name"]` holds only names
       that identify a patient: labelled, in a salutation, a payload's, or in free
       text near a health finding or care word; a provider's name ("Dr. Patel",
       "Jane Doe, MD", a signature) is no finding at all.

    Examples (default settings):

    - "Dear Jane Doe, your appointment on 03/04/2025 ..." -> name + service
      date: PHI (2).
    - "MRN: 12345678, please call" -> direct identifier: PHI (3).
    - "Diabetes awareness month: 1 in 10 adults ..." -> health, no person: not PHI.
    - "Lunch with Jane Doe moved to Friday" -> a person, no health: not PHI.
    - "Robert King: your prescription is ready for pickup." -> a name and a care
      word: PHI (4).
    - "The team lunch is on Friday with Dr. Patel" -> a provider only: not PHI.
    - "Dr. Lee, NPI 1234567893, (555) 234-5678" -> provider data: not PHI.
    Unscannable parts do not make PHI here: the policy tests them on their own.
    """
    if evidence.structured:
        return True
    if evidence.identity and evidence.health >= config.min_health_terms:
        return True
    if evidence.counts.get("name", 0) and evidence.health + evidence.care_context >= (
        config.min_health_terms
    ):
        return True
    if evidence.direct:
        if not config.direct_identifiers_need_health_terms:
            return True
        return evidence.health >= 1 or evidence.health_context
    return False
