"""HL7 v2, FHIR (JSON and XML) and C-CDA payloads in text, with their patients'
names and identifiers.

A payload is PHI by construction; its names and identifiers let the detectors find
the same person elsewhere in the message (the Subject, a cover note). Values stay in
memory: nothing here logs or raises with them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Final
from xml.etree.ElementTree import Element, ParseError

from defusedxml.ElementTree import fromstring as xml_fromstring

from gateway.inspect.content import Place, StructuredKind, StructuredPayload

# Bounds on what one text can make us hold or walk.
_MAX_VALUES: Final = 500
_MAX_NODES: Final = 200_000
_MAX_DEPTH: Final = 64
_MAX_JSON_FAILURES: Final = 20

# --- names and identifiers ----------------------------------------------------------


def _clean(value: object) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def name_forms(given: Sequence[str], family: str) -> list[str]:
    """How free text writes a person: "Jane Q Doe", "Jane Doe", "Doe, Jane Q", "Doe"."""
    givens = [g for g in (_clean(g) for g in given) if g]
    family = _clean(family)
    forms: list[str] = []
    if givens and family:
        first = " ".join(givens)
        forms += [f"{first} {family}", f"{givens[0]} {family}", f"{family}, {first}"]
    forms.append(family or " ".join(givens))
    return [form for form in forms if len(form) > 1]


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    cleaned = (_clean(value) for value in values)
    return tuple(dict.fromkeys(value for value in cleaned if value))[:_MAX_VALUES]


def _payload(
    kind: StructuredKind, place: Place, names: Iterable[str], ids: Iterable[str]
) -> StructuredPayload:
    return StructuredPayload(kind, place, _unique(names), _unique(ids))


# --- HL7 v2 ---------------------------------------------------------------------------

# MSH, the field separator, then the encoding characters; MLLP framing may precede it.
# No newlines in the leading class: "^\s*" would rescan every blank line (quadratic).
_MSH: Final = re.compile(r"^[\x0b \t]*MSH([^\w\s])([^\w\s]{1,4})", re.MULTILINE)
# Per segment: fields holding identifiers (CX or ST: the first component) and people
# (XPN: family&...^given^middle).
_HL7_FIELDS: Final[dict[str, tuple[tuple[int, ...], tuple[int, ...]]]] = {
    # PID-2/3/4 patient ids, 7 date of birth, 18 account, 19 SSN, 20 driver's licence;
    # PID-5 name, 6 mother's maiden name, 9 alias.
    "PID": ((2, 3, 4, 7, 18, 19, 20), (5, 6, 9)),
    "NK1": ((), (2,)),  # next of kin
    "GT1": ((2,), (3,)),  # guarantor
    "IN1": ((36,), (16,)),  # policy number; insured
    "MRG": ((1, 2), ()),  # prior patient ids
}


def _hl7(text: str, place: Place) -> StructuredPayload | None:
    """HL7 v2 messages with a patient (PID) or other people in them."""
    starts = list(_MSH.finditer(text))
    if not starts:
        return None
    names: list[str] = []
    ids: list[str] = []
    about_people = False  # an ACK or a master-file update names nobody
    for i, start in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        sep, enc = start.group(1), start.group(2)
        comp = enc[0]
        rep = enc[1] if len(enc) > 1 else "~"
        sub = enc[3] if len(enc) > 3 else "&"
        for line in text[start.start() : end].split("\n"):
            fields = line.strip("\x0b\x1c \t").split(sep)
            if fields[0] not in _HL7_FIELDS:
                continue
            about_people = True
            id_fields, person_fields = _HL7_FIELDS[fields[0]]
            for n in id_fields:
                if n < len(fields) and fields[n]:
                    ids += [value.split(comp)[0] for value in fields[n].split(rep)]
            for n in person_fields:
                if n < len(fields) and fields[n]:
                    for xpn in fields[n].split(rep):
                        parts = xpn.split(comp)
                        names += name_forms(parts[1:3], parts[0].split(sub)[0])
    return _payload("hl7", place, names, ids) if about_people else None


# --- FHIR -----------------------------------------------------------------------------

_FHIR_PEOPLE: Final = frozenset({"Patient", "RelatedPerson", "Person"})
# Resources about a patient's health or care: any of them makes the payload PHI.
_FHIR_CLINICAL: Final = frozenset(
    (
        *("AdverseEvent", "AllergyIntolerance", "Appointment", "CarePlan", "CareTeam"),
        *("Claim", "ClaimResponse", "ClinicalImpression", "Communication", "Composition"),
        *("Condition", "Consent", "Coverage", "DetectedIssue", "DeviceRequest"),
        *("DeviceUseStatement", "DiagnosticReport", "DocumentReference", "Encounter"),
        *("EpisodeOfCare", "ExplanationOfBenefit", "FamilyMemberHistory", "Flag", "Goal"),
        *("ImagingStudy", "Immunization", "List", "MedicationAdministration"),
        *("MedicationDispense", "MedicationRequest", "MedicationStatement", "NutritionOrder"),
        *("Observation", "Procedure", "QuestionnaireResponse", "RiskAssessment"),
        *("ServiceRequest", "Specimen", "VisionPrescription"),
    )
)
_FHIR_SUBJECT_KEYS: Final = ("subject", "patient", "beneficiary")


def _items(value: object) -> list[object]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _first_str(value: object) -> str:
    """A FHIR primitive: a JSON string, or the list of `value` attributes from XML."""
    for item in _items(value):
        if isinstance(item, str):
            return item
    return ""


def _resources(root: object) -> Iterator[dict[str, object]]:
    stack = [root]
    seen = 0
    while stack and seen < _MAX_NODES:
        node = stack.pop()
        seen += 1
        if isinstance(node, dict):
            if isinstance(node.get("resourceType"), str):
                yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _fhir(roots: Iterable[object], place: Place) -> StructuredPayload | None:
    found = False
    names: list[str] = []
    ids: list[str] = []
    for root in roots:
        for resource in _resources(root):
            kind = resource["resourceType"]
            references: list[object] = []
            if kind in _FHIR_PEOPLE:
                references.append(resource)
                ids.append(_first_str(resource.get("birthDate")))
            elif kind in _FHIR_CLINICAL:
                for key in _FHIR_SUBJECT_KEYS:
                    references += _items(resource.get(key))
            else:
                continue
            found = True
            for person in references:
                if not isinstance(person, dict):
                    continue
                for human in _items(person.get("name")):
                    if isinstance(human, dict):
                        given = [g for g in _items(human.get("given")) if isinstance(g, str)]
                        names += name_forms(given, _first_str(human.get("family")))
                        names.append(_first_str(human.get("text")))
                names.append(_first_str(person.get("display")))  # a Reference's display
                for identifier in _items(person.get("identifier")):
                    if isinstance(identifier, dict):
                        ids.append(_first_str(identifier.get("value")))
    return _payload("fhir", place, names, ids) if found else None


def _json_roots(text: str) -> Iterator[object]:
    """The JSON values in a text: the whole text, or objects embedded in prose or NDJSON."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            yield json.loads(stripped)
            return
        except (ValueError, RecursionError):  # not one JSON value: look inside
            pass
    decoder = json.JSONDecoder()
    pos = failures = 0
    while failures < _MAX_JSON_FAILURES:
        start = text.find("{", pos)
        if start < 0 or text.find('"resourceType"', start) < 0:
            return
        try:
            value, pos = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            failures += 1
            pos = start + 1
            continue
        yield value


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _fhir_xml_node(element: Element, depth: int) -> object:
    """FHIR XML in the shape of FHIR JSON: a primitive is its `value` attribute, every
    child a list, a resource (capitalised element) carries its resourceType."""
    value = element.get("value")
    if value is not None:
        return value
    node: dict[str, object] = {}
    name = _local(element.tag)
    if name[:1].isupper():
        node["resourceType"] = name
    if depth < _MAX_DEPTH:
        for child in element:
            children = node.setdefault(_local(child.tag), [])
            assert isinstance(children, list)
            children.append(_fhir_xml_node(child, depth + 1))
    return node


_FHIR_NS: Final = re.compile(r"""xmlns(?::[\w.-]+)?\s*=\s*["']http://hl7\.org/fhir["']""")
_ROOT_TAG: Final = re.compile(r"<([\w.:-]+)")


def _xml_root(text: str, at: int) -> Element | None:
    """The XML element whose start tag is the last one opened before index `at`, cut
    out of whatever prose surrounds it."""
    start = text.rfind("<", 0, at + 1)
    tag = _ROOT_TAG.match(text, start) if start >= 0 else None
    if tag is None:
        return None
    close = text.rfind(f"</{tag.group(1)}>")
    end = close + len(tag.group(1)) + 3 if close > start else len(text)
    try:
        root: Element = xml_fromstring(text[start:end], forbid_dtd=True)
    except (ParseError, ValueError):  # defusedxml's refusals are ValueErrors
        return None
    return root


def _children(element: Element, name: str) -> Iterator[Element]:
    return (child for child in element if _local(child.tag) == name)


# --- C-CDA ----------------------------------------------------------------------------

_CDA_ROOT: Final = re.compile(r"<(?:[\w.-]+:)?ClinicalDocument[\s>]")


def _ccda(text: str, place: Place) -> StructuredPayload | None:
    match = _CDA_ROOT.search(text)
    root = _xml_root(text, match.start()) if match else None
    if root is None or _local(root.tag) != "ClinicalDocument":
        return None
    names: list[str] = []
    ids: list[str] = []
    for target in _children(root, "recordTarget"):
        for role in _children(target, "patientRole"):
            ids += [i.get("extension", "") for i in _children(role, "id")]
            for patient in _children(role, "patient"):
                for birth in _children(patient, "birthTime"):
                    ids.append(birth.get("value", ""))
                people = [patient] + [
                    person
                    for guardian in _children(patient, "guardian")
                    for person in _children(guardian, "guardianPerson")
                ]
                for person in people:
                    for name in _children(person, "name"):
                        given = [g.text or "" for g in _children(name, "given")]
                        family = next((f.text or "" for f in _children(name, "family")), "")
                        names += name_forms(given, family) if given or family else [name.text or ""]
    return _payload("ccda", place, names, ids)


# --- all of them ----------------------------------------------------------------------


def find_structured(text: str, place: Place) -> list[StructuredPayload]:
    """The clinical payloads in one normalised text (at most one of each kind)."""
    found: list[StructuredPayload | None] = []
    # Substring tests first: most text holds none of these and must stay fast.
    if "MSH" in text:
        found.append(_hl7(text, place))
    if '"resourceType"' in text:
        found.append(_fhir(_json_roots(text), place))
    if "<" in text:
        fhir_ns = _FHIR_NS.search(text) if "hl7.org/fhir" in text else None
        if fhir_ns is not None:
            root = _xml_root(text, fhir_ns.start())
            found.append(_fhir([_fhir_xml_node(root, 0)], place) if root is not None else None)
        if "ClinicalDocument" in text:
            found.append(_ccda(text, place))
    return [payload for payload in found if payload is not None]
