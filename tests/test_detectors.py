"""PHI detectors (gateway.inspect.detect): each detector, context rules, the PHI rule,
both regex engines, and a timing printout (benchmarks live elsewhere)."""

from __future__ import annotations

import platform
import random
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from faker import Faker

from gateway.config import IdentifierPattern, InspectionConfig
from gateway.inspect.content import Extraction, Place, Segment, StructuredPayload
from gateway.inspect.detect import (
    Backend,
    DetectionError,
    Evidence,
    PatternError,
    detect,
    find_spans,
    is_phi,
    matcher,
    validators,
)
from gateway.inspect.findings import PHI_TYPES
from gateway.settings_loader import load_settings

CONFIG = InspectionConfig()
# Hyperscan is a dependency wherever its wheels exist (pyproject: x86_64); there
# a missing module must fail these tests, not skip them.
HAS_HYPERSCAN = platform.machine() == "x86_64" or matcher.hyperscan is not None
BACKENDS: list[Backend] = ["re2", "hyperscan"] if HAS_HYPERSCAN else ["re2"]


def found(
    text: str,
    config: InspectionConfig = CONFIG,
    known_names: Sequence[str] = (),
    display_names: bool = False,
) -> list[tuple[str, str]]:
    spans = find_spans(text, config, known_names, display_names=display_names)
    return [(s.type, text[s.start : s.end]) for s in spans]


def types(text: str, config: InspectionConfig = CONFIG) -> set[str]:
    return {t for t, _ in found(text, config)}


def message(
    body: str = "",
    subject: str = "",
    display_names: str = "",
    attachment: str = "",
    structured: tuple[StructuredPayload, ...] = (),
) -> Extraction:
    segments = [Segment(Place("subject"), subject)]
    if display_names:
        segments.append(Segment(Place("header", 0), display_names))
    segments.append(Segment(Place("body", 0), body))
    if attachment:
        segments.append(Segment(Place("attachment", 0), attachment))
    return Extraction(segments=segments, structured=list(structured))


# ---------------------------------------------------------------- identifiers


@pytest.mark.parametrize("value", ["078-05-1120", "078 05 1120", "123-45-6789", "899-99-9999"])
def test_ssn_valid(value: str) -> None:
    assert found(f"his number is {value}.") == [("ssn", value)]


@pytest.mark.parametrize(
    "value",
    [
        "000-12-3456",  # area 000
        "666-12-3456",  # area 666
        "900-12-3456",  # area 9xx
        "987-65-4321",
        "078-00-1120",  # group 00
        "078-05-0000",  # serial 0000
        "078-05 1120",  # mixed separators
        "1078-05-1120",  # part of a longer number
    ],
)
def test_ssn_invalid(value: str) -> None:
    assert "ssn" not in types(f"his number is {value}.")


def test_undashed_ssn_needs_context() -> None:
    assert found("SSN: 078051120") == [("ssn", "078051120")]
    assert found("Social Security number 078051120") == [("ssn", "078051120")]
    assert "ssn" not in types("order 078051120 shipped")
    # Too far: the context word must be within context_window characters before.
    far = "SSN" + " filler" * 20 + " 078051120"
    assert "ssn" not in types(far)
    assert "ssn" in types(far, InspectionConfig(context_window=200))


def test_npi_luhn() -> None:
    assert validators.npi("1234567893")
    assert not validators.npi("1234567890")
    assert found("NPI: 1234567893") == [("npi", "1234567893")]
    assert "npi" not in types("NPI: 1234567890")  # bad check digit, context or not
    assert found("ref 1234567893 ok") == [("npi", "1234567893")]  # valid without context
    assert "npi" not in types("ref 3234567893")  # NPIs start with 1 or 2


def test_dea_check_digit() -> None:
    assert found("DEA AB1234563") == [("dea", "AB1234563")]
    assert "dea" not in types("DEA AB1234564")
    assert found("registration FN1234563.") == [("dea", "FN1234563")]
    assert "dea" not in types("ab1234563")  # lower case is no DEA number


@pytest.mark.parametrize("value", ["1EG4-TE5-MK73", "1EG4TE5MK73", "9AA0A00AA00"])
def test_mbi_valid(value: str) -> None:
    assert found(f"Medicare MBI {value}") == [("mbi", value)]


@pytest.mark.parametrize(
    "value",
    [
        "0EG4TE5MK73",  # position 1 is 1-9
        "1SG4TE5MK73",  # S is never used
        "1EG4-TE5MK73",  # one dash only
        "1EGATE5MK73",  # position 4 is a digit
        "1EG4TE5MK7",  # 10 characters
        "1EG4TE5MO73",  # O is never used
    ],
)
def test_mbi_invalid(value: str) -> None:
    assert "mbi" not in types(f"Medicare MBI {value}")


def test_organisation_identifiers_need_their_context() -> None:
    assert found("MRN 12345678") == [("mrn", "12345678")]
    assert found("Medical record: AB1234567") == [("mrn", "AB1234567")]
    assert found("Member number XYZ123456789") == [("member_id", "XYZ123456789")]
    assert found("Acct 987654321 is overdue") == [("account_number", "987654321")]
    assert found("Implant serial AB-12345678") == [("device_id", "AB-12345678")]
    assert found("Order 12345678 shipped") == []  # no context word: nothing
    # The nearest context word decides between patterns that match the same text.
    assert found("member since 2010, account 123456789") == [("account_number", "123456789")]


def test_labelled_identifiers() -> None:
    assert found("MRN: 00-123-456") == [("mrn", "00-123-456")]
    assert found("Patient ID # P-0042-7781") == [("mrn", "P-0042-7781")]
    assert found("Subscriber ID: W2233445566") == [("member_id", "W2233445566")]
    assert found("Account No. 55-66778") == [("account_number", "55-66778")]
    assert found("MRN: pending") == []
    assert found("Member since 2019") == []


def test_custom_identifier_patterns() -> None:
    config = InspectionConfig(
        identifiers=[
            IdentifierPattern(type="mrn", pattern=r"H[0-9]{7}", context=[]),
            IdentifierPattern(type="device_id", pattern=r"PUMP-[0-9]{5}", context=["pump"]),
        ]
    )
    assert found("see H1234567 today", config) == [("mrn", "H1234567")]
    assert found("insulin pump PUMP-12345", config) == [
        ("drug", "insulin"),
        ("device_id", "PUMP-12345"),
    ]
    assert found("unit PUMP-12345", config) == []
    assert found("MRN 12345678", config) == [("mrn", "12345678")]  # labelled form still works


# ---------------------------------------------------------------- contact and dates


def test_phone_and_fax() -> None:
    text = "Phone (555) 234-5678, Fax: 555.234.9999, cell +1 555-234-0000"
    assert found(text) == [
        ("phone", "(555) 234-5678"),
        ("fax", "555.234.9999"),
        ("phone", "+1 555-234-0000"),
    ]
    assert found("Fax 555-234-1111 or phone 555-234-2222") == [
        ("fax", "555-234-1111"),
        ("phone", "555-234-2222"),
    ]
    assert "phone" not in types("invoice 155-234-56789")
    assert "phone" not in types("ref 055-234-5678")  # no area code starts with 0


def test_email_and_street_address() -> None:
    assert found("write to jane.doe+x@mail.example.org now") == [
        ("email", "jane.doe+x@mail.example.org")
    ]
    assert found("lives at 742 Evergreen Terrace, Apt 2B with") == [
        ("street_address", "742 Evergreen Terrace, Apt 2B")
    ]
    assert found("1600 W Pennsylvania Ave.") == [("street_address", "1600 W Pennsylvania Ave.")]
    assert found("PO Box 1234") == [("street_address", "PO Box 1234")]
    assert found("we need 3 Main points") == []


def test_dates_need_context() -> None:
    assert found("DOB: 01/02/1980") == [("date_of_birth", "01/02/1980")]
    assert found("born Jan 2, 1980") == [("date_of_birth", "Jan 2, 1980")]
    assert found("Date of birth 1980-01-02") == [("date_of_birth", "1980-01-02")]
    assert found("Date of service: 03/04/2024") == [("service_date", "03/04/2024")]
    assert found("admitted 2 March 2024") == [("service_date", "2 March 2024")]
    assert found("Your appointment on March 3 at 10am") == [("service_date", "March 3")]
    assert found("Invoice date 03/04/2024") == []
    assert found("release 1.2.80") == []
    # Two dates, two contexts: the nearest context word decides.
    assert found("born 01/02/1980, admitted 03/04/2024") == [
        ("date_of_birth", "01/02/1980"),
        ("service_date", "03/04/2024"),
    ]


# ---------------------------------------------------------------- health terms


def test_icd10_codes() -> None:
    assert found("Assessment: E11.9, S72.001A, T36.0X1A and U07.1") == [
        ("icd10", "E11.9"),
        ("icd10", "S72.001A"),
        ("icd10", "T36.0X1A"),
        ("icd10", "U07.1"),
    ]
    assert validators.icd10("E11.9") and validators.icd10("E119")
    assert not validators.icd10("E11.99999") and not validators.icd10("Q99.99")
    assert found("codes E11.99999 and Q99.99") == []  # not in the official list
    assert found("Dx: Q99.99") == []  # nor as "Q99" followed by junk
    # Undotted codes only with an ICD context word.
    assert found("Dx: I10, E119") == [("icd10", "I10"), ("icd10", "E119")]
    assert found("ICD-10 code E785") == [("icd10", "E785")]
    assert found("Room I10 and form E119") == []
    assert found("version E11.9b") == []


def test_lexicons_case_and_word_boundaries() -> None:
    assert found("DIABETES, Type 2 diabetes and prediabetes") == [
        ("diagnosis", "DIABETES"),
        ("diagnosis", "Type 2 diabetes"),
        ("diagnosis", "prediabetes"),
    ]
    assert found("diabetesfoo metforminx xmetformin") == []
    assert found("Taking Metformin and LIPITOR, also atorvastatin") == [
        ("drug", "Metformin"),
        ("drug", "LIPITOR"),
        ("drug", "atorvastatin"),
    ]
    assert found("Colonoscopy and an x ray, then X-ray and xray") == [
        ("procedure", "Colonoscopy"),
        ("procedure", "x ray"),
        ("procedure", "X-ray"),
        ("procedure", "xray"),
    ]
    assert found("Crohns disease and Crohn’s disease") == [
        ("diagnosis", "Crohns disease"),
        ("diagnosis", "Crohn’s disease"),
    ]
    assert found("congestive heart\nfailure") == [("diagnosis", "congestive heart\nfailure")]
    assert found("heart\r\nfailure") == [("diagnosis", "heart\r\nfailure")]


def test_lab_results_need_a_value() -> None:
    assert found("HbA1c 7.2% and LDL: 130 mg/dL; TSH was 2.5") == [
        ("lab_result", "HbA1c 7.2"),
        ("lab_result", "LDL: 130"),
        ("lab_result", "TSH was 2.5"),
    ]
    assert found("Glucose (fasting) 105") == [("lab_result", "Glucose (fasting) 105")]
    assert found("We will check your A1C and LDL next time") == []
    assert found("last fast past") == []  # "ast" is a lab only as a word


# ---------------------------------------------------------------- names


def test_known_names_from_payloads() -> None:
    text = "Re: follow-up. jane doe called; Doe, Jane confirmed. janet doe did not."
    assert found(text, known_names=["DOE^JANE^Q"]) == [
        ("name", "jane doe"),
        ("name", "Doe, Jane"),
    ]
    assert found("Jane Q Doe and Jane Q. Doe", known_names=["Jane Q Doe"]) == [
        ("name", "Jane Q Doe"),
        ("name", "Jane Q. Doe"),
    ]
    assert found("DOE alone", known_names=["DOE"]) == []  # one word: too ambiguous


def test_labelled_names_and_salutations() -> None:
    assert found("Patient: Maria Garcia-Lopez\nDOB pending") == [("name", "Maria Garcia-Lopez")]
    assert found("Patient Name: DOE, JANE Q") == [("name", "DOE, JANE Q")]
    assert found("Name: John Smith Date: today") == [("name", "John Smith")]
    assert found("Name: Not Provided") == []
    assert found("Dear Mr. O'Brien,") == [("name", "O'Brien")]
    assert found("Dear Dr. Lee,") == [("name", "Lee")]
    assert found("Dr. Lee will see you") == []  # a provider, not a salutation
    assert found("Dear Anna Kowalski\nthanks") == [("name", "Anna Kowalski")]
    assert found("Hi Priya,") == [("name", "Priya")]
    assert found("Hi Team, Hello Everyone! Dear Valued Customer,") == []
    assert found("Re: John Smith follow-up") == [("name", "John Smith")]
    assert found("RE: Board Meeting") == []  # "Board" is no given name
    assert found("the patient Emily Clark was seen") == [("name", "Emily Clark")]


def test_display_names() -> None:
    text = (
        'Jane Doe\n"Smith, John"\nDr. Ana María Pérez, MD\nAcme Health Billing\n'
        "No-Reply\nSupport Team\nJANE DOE"
    )
    assert found(text, display_names=True) == [
        ("name", "Jane Doe"),
        ("name", "Smith, John"),
        ("name", "Ana María Pérez"),
    ]


# ---------------------------------------------------------------- offsets, engines


def test_offsets_are_characters() -> None:
    text = "Zoë Müller — café ☕. Patient: Zoë Müller, DOB: 01/02/1980, MRN 12345678"
    result = find_spans(text, CONFIG)
    assert [(s.type, text[s.start : s.end]) for s in result] == [
        ("name", "Zoë Müller"),  # in free text: the census and Faker name lists
        ("name", "Zoë Müller"),  # after the label
        ("date_of_birth", "01/02/1980"),
        ("mrn", "12345678"),
    ]


def test_scanned_rendering_is_ascii_one_character_each() -> None:
    from gateway.inspect.detect.scan import ascii_bytes

    text = "Müller’s “café” – Łódź 東京 \u00a0x\ud800y"
    data = ascii_bytes(text)
    assert len(data) == len(text)
    assert data.decode("ascii") == 'Muller\'s "cafe" - Lodz ??  x?y'
    assert found("DOS 2024–03–04; Crohn’s disease") == [
        ("service_date", "2024–03–04"),
        ("diagnosis", "Crohn’s disease"),
    ]


def _corpus() -> list[str]:
    fake = Faker("en_US")
    Faker.seed(1234)
    rng = random.Random(1234)
    texts = [
        "Re: Re: Fwd: John Smith — labs\nPatient Name: DOE, JANE Q  DOB: 01/02/1980",
        "MRN: 00-123-456 MRN12345678 Member ID # A12345678 Acct No. 55-66778 serial SN-4455667",
        "Dear Mr. O'Brien, Dear Dr. Lee, Hi Priya, Hello Jane Doe! Dear Ana María Pérez",
        "SSN 078-05-1120 078 05 1120 ssn 078051120 NPI 1234567893 DEA AB1234563 MBI 1EG4-TE5-MK73",
        "E11.9 S72.001A Dx: I10 E119 Q99.99 E11.99999 type 2 diabetes mellitus heart failure",
        "HbA1c 7.2% LDL was 130 glucose (fasting) 105 on metformin 500 mg; x-ray, X ray, Crohn’s",
        "Phone (555) 234-5678 Fax: 555.234.9999 +1 555 234 0000 jane.doe+x@mail.example.org",
        "742 Evergreen Terrace, Apt 2B; 1600 W Pennsylvania Ave.; P.O. Box 1234",
        "born Jan 2, 1980; admitted 2 March 2024; appointment on March 3; DOS 2024-05-06",
        "Ünïcødé: Zoë Müller, DOB 01/02/1980 — MRN 12345678 — “Crohn’s disease” — 東京",
        "congestive heart\nfailure; date of\nservice 03/04/2024; social\nsecurity 078051120",
    ]
    for _ in range(40):
        name = fake.name()
        parts = [
            fake.paragraph(nb_sentences=4),
            f"Patient: {name}\nDOB: {fake.date_of_birth().strftime('%m/%d/%Y')}",
            f"MRN: {rng.randint(10**6, 10**9)} Member ID {fake.bothify('??#########').upper()}",
            f"Dear {name}, your appointment on {fake.date_this_year().strftime('%B %d, %Y')}.",
            f"Call {fake.phone_number()} or write to {fake.email()}; {fake.street_address()}",
            f"SSN {fake.ssn()} NPI {fake.numerify('1#########')} HbA1c {rng.randint(5, 12)}.1",
            rng.choice(["E11.9", "I10", "J45.909", "Z00.00", "M54.5", "F32.A"]),
        ]
        rng.shuffle(parts)
        texts.append("\n".join(parts))
    return texts


@pytest.mark.skipif(not HAS_HYPERSCAN, reason="Hyperscan has no wheels for this CPU")
def test_backends_agree() -> None:
    corpus = _corpus()
    total = 0
    for text in corpus:
        for names, display in (((), False), (("Doe^Jane",), False), ((), True)):
            hs = find_spans(text, CONFIG, names, display_names=display, backend="hyperscan")
            r2 = find_spans(text, CONFIG, names, display_names=display, backend="re2")
            assert hs == r2, text
            total += len(hs)
    assert total > 500  # the corpus exercises the detectors


@pytest.mark.skipif(not HAS_HYPERSCAN, reason="Hyperscan has no wheels for this CPU")
def test_engines_report_the_same_raw_matches() -> None:
    """Below the detectors: every pattern's spans are the same from both engines."""
    from gateway.inspect.detect.scan import ascii_bytes, compiled_for

    hs, r2 = compiled_for(CONFIG, "hyperscan").engine, compiled_for(CONFIG, "re2").engine
    for text in _corpus():
        data = ascii_bytes(text)
        assert hs.scan(data) == r2.scan(data), text


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_type_is_a_phi_type(backend: Backend) -> None:
    reported = set()
    for text in _corpus():
        reported |= {s.type for s in find_spans(text, CONFIG, backend=backend)}
    assert reported <= set(PHI_TYPES)
    assert {"ssn", "npi", "dea", "mbi", "mrn", "icd10", "name", "lab_result"} <= reported


TOO_LARGE_TO_TRACK = r"[A-Z0-9]{1,300}-[0-9]{1,300}"  # valid, but Hyperscan refuses its start


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pattern_hyperscan_rejects_falls_back_to_re2(backend: Backend) -> None:
    # Valid for both, but too large for Hyperscan's start-of-match tracking: the
    # Hyperscan engine runs this one pattern with RE2 instead.
    pattern = TOO_LARGE_TO_TRACK
    config = InspectionConfig(identifiers=[IdentifierPattern(type="mrn", pattern=pattern)])
    spans = find_spans("id AB12-345678 here", config, backend=backend)
    assert [(s.type, s.start, s.end) for s in spans] == [("mrn", 3, 14)]


def _tried_alone(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The patterns the Hyperscan engine compiles one at a time, from now on."""
    tried: list[str] = []
    compile_all = matcher.HyperscanEngine._compile

    def compile(patterns: Sequence[tuple[int, matcher.Pattern]], *, cached: bool) -> object:
        if not cached:
            tried.extend(p.regex for _, p in patterns)
        return compile_all(patterns, cached=cached)

    monkeypatch.setattr(matcher.HyperscanEngine, "_compile", staticmethod(compile))
    return tried


@pytest.mark.skipif(not HAS_HYPERSCAN, reason="Hyperscan has no wheels for this CPU")
def test_an_organisations_pattern_hyperscan_rejects_is_found_without_trying_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tried = _tried_alone(monkeypatch)
    shipped = [matcher.Pattern(r"\d{3}-\d{2}-\d{4}"), matcher.Pattern(r"\bMRN\b")]
    own = matcher.Pattern(TOO_LARGE_TO_TRACK, own=True)
    engine = matcher.build_engine([*shipped, own], "hyperscan")
    assert tried == [TOO_LARGE_TO_TRACK]  # the shipped patterns were not compiled alone
    text = b"SSN 123-45-6789, MRN AB12-345678"
    assert engine.scan(text) == matcher.build_engine([*shipped, own], "re2").scan(text)
    assert engine.scan(text)[2] == [(4, 10), (21, 32)]


@pytest.mark.skipif(not HAS_HYPERSCAN, reason="Hyperscan has no wheels for this CPU")
def test_a_shipped_pattern_hyperscan_rejects_still_falls_back_to_re2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tried = _tried_alone(monkeypatch)
    patterns = [matcher.Pattern(r"\d{3}-\d{2}-\d{4}"), matcher.Pattern(TOO_LARGE_TO_TRACK)]
    engine = matcher.build_engine(patterns, "hyperscan")
    assert TOO_LARGE_TO_TRACK in tried
    text = b"SSN 123-45-6789, MRN AB12-345678"
    assert engine.scan(text) == matcher.build_engine(patterns, "re2").scan(text)
    assert engine.scan(text) == {0: [(4, 15)], 1: [(4, 10), (21, 32)]}


def test_an_invalid_pattern_is_an_error() -> None:
    config = InspectionConfig(identifiers=[IdentifierPattern(type="mrn", pattern=r"(a")])
    for backend in BACKENDS:
        with pytest.raises(PatternError):
            find_spans("a", config, backend=backend)


def test_errors_never_carry_text(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(value: str) -> bool:
        raise ValueError(f"bad value {value}")

    monkeypatch.setattr(validators, "ssn", explode)
    with pytest.raises(DetectionError) as info:
        find_spans("SSN 078-05-1120", CONFIG)
    assert "078" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


# ---------------------------------------------------------------- findings and the rule


def test_detect_fills_findings() -> None:
    payload = StructuredPayload("hl7", Place("attachment", 1), names=("DOE^JANE",))
    extraction = Extraction(
        segments=[
            Segment(Place("subject"), "Labs for Jane Doe"),
            Segment(Place("header", 0), "Jane Doe\nAcme Clinic Scheduling"),
            Segment(Place("header", 1), "labs_jane_doe_E11.9.pdf"),
            Segment(Place("body", 0), "Dear Jane Doe, HbA1c 7.2%. NPI 1234567893"),
            Segment(Place("attachment", 0), "Patient: Jane Doe\nDx: E11.9 type 2 diabetes"),
        ],
        structured=[payload],
        unscannable=[(Place("attachment", 2), "image"), (Place("attachment", 3), "image")],
        attachment_types={"application/pdf", ".pdf", "image/png"},
    )
    findings = detect(extraction, CONFIG)
    assert findings.phi and findings.structured and findings.unscannable
    assert findings.in_subject and findings.in_attachment
    assert findings.places == {
        "subject": {"name": 1},
        "header": {"name": 2, "icd10": 1},
        "body[0]": {"name": 1, "lab_result": 1, "npi": 1},
        "attachment[0]": {"name": 1, "icd10": 1, "diagnosis": 1},
        "attachment[1]": {"hl7": 1},
    }
    assert findings.types == {
        "name": 5,
        "icd10": 2,
        "lab_result": 1,
        "npi": 1,
        "diagnosis": 1,
        "hl7": 1,
    }
    assert findings.count == 11
    assert findings.unscannable_reasons == {"image": 2}
    assert findings.attachment_types == frozenset({"application/pdf", ".pdf", "image/png"})


def test_empty_extraction() -> None:
    findings = detect(Extraction(), CONFIG)
    assert not findings.phi and findings.types == {} and findings.places == {}
    assert not findings.unscannable and not findings.in_subject


# Hard negatives: health without a person, a person without health, providers.
NEGATIVES = {
    "newsletter": message(
        subject="November is Diabetes Awareness Month",
        display_names="Acme Health Newsletter",
        body=(
            "Type 2 diabetes affects 1 in 10 adults. Metformin and insulin help; ask about "
            "an HbA1c test at your next visit. Learn about hypertension and COPD too.\n"
            "Acme Clinic, 12 Main St, (555) 234-5678, news@acme-health.example"
        ),
    ),
    "aggregate statistics": message(
        subject="Q3 quality report",
        body=(
            "Encounters by diagnosis: E11.9 (412), I10 (388), J45.909 (120), F32.A (75).\n"
            "Median HbA1c 7.4 across the panel; 18% on atorvastatin."
        ),
    ),
    "provider directory": message(
        subject="Updated referral directory",
        body=(
            "Cardiology: Dr. Alan Lee, NPI 1234567893, phone (555) 234-5678, "
            "fax 555-234-9999.\nDermatology: Dr. Kim, NPI 1245319599, (555) 234-1111.\n"
            "DEA AB1234563 on file."
        ),
    ),
    "staff mail": message(
        subject="Lunch on Friday",
        display_names="Jane Doe\nJohn Smith",
        body="Hi Priya,\nLunch with Jane Doe moved to Friday. Call me at 555-234-5678.\nJohn",
    ),
}
HR_SSN = message(subject="W-4 update", body="Hi Priya, please confirm SSN 078-05-1120 for payroll.")
POSITIVES = {
    "appointment reminder": message(
        subject="Appointment reminder",
        body="Dear Maria Garcia,\nyour appointment on March 3, 2025 at 10:00 is confirmed.",
    ),
    "lab result": message(
        subject="Your results", body="Hi Priya,\nyour HbA1c was 7.9% - please call us."
    ),
    "hl7 payload": Extraction(
        segments=[Segment(Place("attachment", 0), "MSH|^~\\&|EPIC|...")],
        structured=[StructuredPayload("hl7", Place("attachment", 0))],
    ),
    "mrn in a clinic mail": message(body="Please pull the chart for MRN 12345678 at the clinic."),
    "ssn with a diagnosis": message(body="SSN 078-05-1120, diagnosed with asthma."),
    "patient phone and a drug": message(
        body="Patient home phone 555-234-5678; refill of lisinopril requested."
    ),
}


@pytest.mark.parametrize("name", NEGATIVES)
def test_phi_rule_negatives(name: str) -> None:
    findings = detect(NEGATIVES[name], CONFIG)
    assert not findings.phi, findings
    assert not findings.in_subject and not findings.in_attachment


def test_in_subject_and_in_attachment() -> None:
    # Identifying data in the subject counts even when the message is not PHI ...
    hr = detect(message(subject="SSN 078-05-1120 for payroll"), CONFIG)
    assert hr.phi and hr.in_subject
    lenient = InspectionConfig(direct_identifiers_need_health_terms=True)
    hr = detect(message(subject="SSN 078-05-1120 for payroll"), lenient)
    assert not hr.phi and hr.in_subject
    # ... health terms there only when it is.
    newsletter = detect(message(subject="Diabetes and metformin"), CONFIG)
    assert not newsletter.in_subject
    results = detect(
        message(
            subject="HbA1c 7.9",
            body="Dear Jane Doe, see the attachment.",
            attachment="Type 2 diabetes",
        ),
        CONFIG,
    )
    assert results.phi and results.in_subject and results.in_attachment
    directory = detect(message(body="Dear Jane Doe,", attachment="NPI 1234567893"), CONFIG)
    assert not directory.in_attachment


@pytest.mark.parametrize("name", POSITIVES)
def test_phi_rule_positives(name: str) -> None:
    assert detect(POSITIVES[name], CONFIG).phi


def test_phi_rule_knobs() -> None:
    three_terms = InspectionConfig(min_health_terms=3)
    reminder = POSITIVES["appointment reminder"]  # a name and one service date
    assert detect(reminder, CONFIG).phi
    assert not detect(reminder, three_terms).phi
    clinic = POSITIVES["mrn in a clinic mail"]  # direct identifier + context word only
    assert detect(clinic, three_terms).phi
    lenient = InspectionConfig(direct_identifiers_need_health_terms=True)
    assert detect(clinic, lenient).phi  # the context word still ties it to health care
    # A direct identifier is PHI on its own by default (fail closed) ...
    assert detect(HR_SSN, CONFIG).phi
    # ... and needs health context when the admin says so.
    assert not detect(HR_SSN, lenient).phi


def test_phi_rule_function() -> None:
    assert is_phi(Evidence(counts={}, structured=True), CONFIG)
    assert is_phi(Evidence(counts={"name": 1, "drug": 1}), CONFIG)
    assert not is_phi(Evidence(counts={"name": 3}), CONFIG)
    assert not is_phi(Evidence(counts={"drug": 3, "npi": 2, "dea": 1, "phone": 2}), CONFIG)
    assert is_phi(Evidence(counts={"drug": 1}, patient_contacts=1), CONFIG)
    assert is_phi(Evidence(counts={"mrn": 1}), CONFIG)
    assert is_phi(Evidence(counts={"date_of_birth": 1}), CONFIG)
    lenient = InspectionConfig(direct_identifiers_need_health_terms=True)
    assert is_phi(Evidence(counts={"mrn": 1}, health_context=True), lenient)
    assert not is_phi(Evidence(counts={"mrn": 1}), lenient)
    assert not is_phi(Evidence(counts={"npi": 1, "diagnosis": 1}, health_context=True), CONFIG)


def test_display_names_alone_do_not_make_phi() -> None:
    # Every personal mail has a sender's name; it does not tie the health terms to a patient.
    findings = detect(NEGATIVES["newsletter"], CONFIG)
    assert findings.types.get("name") is None
    with_sender = message(display_names="Jane Doe", body="Metformin and insulin 101: a primer.")
    findings = detect(with_sender, CONFIG)
    assert findings.places == {"header": {"name": 1}, "body[0]": {"drug": 2}}
    assert not findings.phi


# ---------------------------------------------------------------- the documentation

DOC = Path(__file__).resolve().parent.parent / "docs" / "inspection.md"


def test_inspection_doc_examples_are_valid_settings(tmp_path: Path) -> None:
    blocks = re.findall(r"^```yaml[ \t]*\n(.*?)^```", DOC.read_text("utf-8"), re.M | re.S)
    assert len(blocks) >= 4
    for number, block in enumerate(blocks):
        path = tmp_path / f"phigate-{number}.yaml"
        path.write_text(block, encoding="utf-8")
        assert load_settings(path).inspection == InspectionConfig.model_validate(
            yaml.safe_load(block)["inspection"]
        )
    # The documented defaults are the defaults.
    defaults = yaml.safe_load(blocks[0])["inspection"]["identifiers"]
    assert [i.model_dump() for i in CONFIG.identifiers] == defaults


def test_inspection_doc_rule_examples() -> None:
    """Every quoted message in the PHI rule's example table gets the verdict it shows."""
    rows = re.findall(r'^\| "(.+?)" \| .*? \| (yes|no)\b', DOC.read_text("utf-8"), re.M)
    assert len(rows) >= 8
    for text, verdict in rows:
        assert detect(message(body=text), CONFIG).phi == (verdict == "yes"), text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Home address: 50682 Angela Junctions Apt. 582", "50682 Angela Junctions Apt. 582"),
        ("Address on file: 577 Harvey Spring, East Bradley", "577 Harvey Spring"),
        ("Guarantor: 13256 Matthew Common, Jonesford", "13256 Matthew Common"),
    ],
)
def test_every_usps_street_suffix_makes_an_address(text: str, expected: str) -> None:
    assert found(text) == [("street_address", expected)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Appointment reminder for James T. Murillo", "James T. Murillo"),
        ("Referral: Gross, Deanna", "Gross, Deanna"),
        ("Dr. Haley, I am referring Gross, Deanna today.", "Gross, Deanna"),
    ],
)
def test_names_after_for_referral_and_referring(text: str, expected: str) -> None:
    assert ("name", expected) in found(text)


def test_for_and_referring_need_a_known_given_name() -> None:
    assert found("Thanks for Board Meeting notes") == []
    assert found("We are referring Quality Assurance to the board") == []


@pytest.mark.parametrize(
    "text",
    [
        "See Dr. Adams at Saunders Health Center on 12/03/2026 at 11:45 AM.",
        "Collected: 11/29/2026",
        "Date written: 2026-12-12",
    ],
)
def test_dates_where_care_happens_are_service_dates(text: str) -> None:
    assert "service_date" in types(text)


def test_a_date_without_care_context_is_not_a_service_date() -> None:
    assert "service_date" not in types("The parking garage reopens on 12/03/2026.")


@pytest.mark.parametrize("backend", BACKENDS)
def test_topic_words_count_as_whole_words_only(backend: Backend) -> None:
    """The staff, service and health classes are only tested for presence (one
    word-bounded pattern each): a word inside a longer one is no hit, a whole word
    anywhere is, however often the longer word came first."""
    from gateway.inspect.detect.scan import scan_text

    inside = "Budgeting tips from the partyline, a clinician, our meetinghouse. " * 3
    assert scan_text(inside, CONFIG, backend=backend).care_words == frozenset()
    assert not scan_text(inside, CONFIG, backend=backend).health_context
    found = scan_text(inside + "The budget meeting at the clinic.", CONFIG, backend=backend)
    assert found.care_words >= {"care_staff"}
    assert found.health_context
    service = scan_text(inside + "Call our medical practice.", CONFIG, backend=backend)
    assert "care_service" in service.care_words


@pytest.mark.skipif(not HAS_HYPERSCAN, reason="Hyperscan has no wheels for this CPU")
def test_greetings_found_from_their_end_start_where_re2_says() -> None:
    """Greetings are matched without start tracking and their start found from the end
    (the last three words): however much whitespace lies inside, both engines report
    the same matches, and the name after the greeting is found."""
    from gateway.inspect.detect.scan import ascii_bytes, compiled_for

    hs, r2 = compiled_for(CONFIG, "hyperscan").engine, compiled_for(CONFIG, "re2").engine
    gap = " \t" * 3000
    texts = [
        f"Good{gap}\n\nmorning,{gap}Jane Walsh, your results are back.",
        f"Thanks.Dear{gap}Jane Walsh: your refill is ready.",
        f"{gap}Hello there{gap}Jane Walsh, Hi Hey Dear Maria Lopez, your visit is today.",
        "x" * 5000 + f" Hi,{gap}Jane Walsh, hi there Maria Lopez!",
    ]
    for text in texts:
        data = ascii_bytes(text)
        assert hs.scan(data) == r2.scan(data)
        spans = find_spans(text, CONFIG, backend="hyperscan")
        assert spans == find_spans(text, CONFIG, backend="re2")
        assert any(text[s.start : s.end] == "Jane Walsh" for s in spans if s.type == "name")
