"""Every pattern the detectors search for, in the common subset of Hyperscan and RE2.

The engines scan an ASCII rendering of the text, one byte per character
(`scan.ascii_bytes`: "é" -> "e", "’" -> "'", other characters -> "?"), so
match offsets are character offsets and every pattern is ASCII. Rules that
keep both engines giving the same spans (tests/test_detectors.py checks
it): no look-around or back-references; whitespace spelt out (RE2's `\\s`
has no vertical tab, Hyperscan's has); case-insensitivity spelt out
(`caseless`). Candidates
are checked afterwards in Python (checksums, code lists, context words).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Literal

from gateway.config import InspectionConfig

WS = r"[ \t]"  # within a line
SP = r"[ \t\r\n]"  # any whitespace
_ONE_SPACE = r"(?:[ \t\r\n]|\r\n)"  # a line break counts as one, CRLF too
_SPECIAL = frozenset("\\.^$|?*+()[]{}#")


StartBy = Literal["som", "lookback", "any"]


@dataclass(frozen=True)
class PatternDef:
    """One search pattern: `kind` says which handler validates its matches.

    `start_by`: how Hyperscan learns where a match starts. Its start-of-match
    tracking ("som") is cheap for most patterns, but for a few it slows the
    whole scan (by ~0.07 ms per 20 KB each); those run without it and RE2
    finds the leftmost start of each match Hyperscan reports ("lookback"), at
    most `length` bytes before its end (0: the match has no whitespace, it
    starts after the last one; with `words`, a match spans at most that many
    words, whatever whitespace lies between). "any": only whether it occurs at
    all matters.
    """

    kind: str
    regex: str
    start_by: StartBy = "som"
    length: int = 0
    words: int = 0


def _escape(char: str) -> str:
    return "\\" + char if char in _SPECIAL else char


def caseless(term: str, space: str = SP + "+") -> str:
    """A literal in either case, ASCII letters spelt out as [Aa] (RE2's (?i) would also
    fold "k" to the Kelvin sign, Hyperscan's does not)."""
    out = []
    for char in term:
        if char == " ":
            out.append(space)
        elif char.isascii() and char.isalpha():
            out.append(f"[{char.upper()}{char.lower()}]")
        else:
            out.append(_escape(char))
    return "".join(out)


def phrases(terms: Iterable[str], space: str = SP + "+") -> str:
    """Case-insensitive alternation of terms (`space` between words), each on word
    boundaries where it has them."""
    alternatives = []
    # Longest first: not needed for leftmost-longest matching, but it keeps patterns stable.
    for term in sorted(set(terms), key=lambda t: (-len(t), t.lower())):
        body = caseless(term, space)
        if term[0].isalnum():
            body = r"\b" + body
        if term[-1].isalnum():
            body += r"\b"
        alternatives.append(body)
    return "(?:" + "|".join(alternatives) + ")"


def _variants(term: str) -> set[str]:
    """Spellings of a term: "X-ray" -> X-ray, X ray, Xray; "Crohn's" -> Crohn's, Crohns;
    "C. diff" -> C. diff, C diff. (Curly quotes and dashes are ASCII by then: see
    scan.ascii_bytes.)"""
    variants = {term}
    for mark, replacements in (("-", ("-", " ", "")), ("'", ("'", "")), (".", (".", ""))):
        variants = {v.replace(mark, r) if mark in v else v for v in variants for r in replacements}
    return {" ".join(v.split()) for v in variants if v.strip()}


def literal(term: str) -> str:
    """A lexicon term as a pattern: ASCII letters in either case (spelt out, so RE2 does
    not fold "k" to the Kelvin sign), one whitespace character or CRLF per space. Only short
    terms get `\\b` ("ast" is in "last"): it makes Hyperscan's start-of-match tracking
    compile ten times slower; longer terms have their word edges checked afterwards."""
    short = len(term) <= 5
    before = r"\b" if short and term[0].isalnum() else ""
    after = r"\b" if short and term[-1].isalnum() else ""
    return before + caseless(term, _ONE_SPACE) + after


def lexicon_patterns(kind: str, terms: Iterable[str]) -> list[PatternDef]:
    spellings = sorted({v for term in terms for v in _variants(term)})
    return [PatternDef(kind, literal(v)) for v in spellings]


@cache
def lexicon(name: str) -> tuple[str, ...]:
    """Terms of a shipped data file (gateway/inspect/detect/data/NAME.txt)."""
    text = (
        resources.files("gateway.inspect.detect")
        .joinpath("data", f"{name}.txt")
        .read_text(encoding="utf-8")
    )
    terms = (line.strip() for line in text.splitlines())
    return tuple(t for t in terms if t and not t.startswith("#"))


# ---------------------------------------------------------------- context words
# Each class is one pattern; a candidate looks for the nearest hit of a class that
# starts before it and ends at most inspection.context_window characters before it
# ("health": whether the text has one at all).
CONTEXT_WORDS: dict[str, tuple[str, ...]] = {
    "ssn": ("ssn", "ss#", "ss no", "soc sec", "social security", "social security number"),
    "npi": ("npi", "national provider identifier", "provider", "prescriber", "physician"),
    "dob": ("dob", "d.o.b", "date of birth", "birth date", "birthdate", "born", "birthday"),
    "service": (
        "date of service",
        "dates of service",
        "dos",
        "service date",
        "admitted",
        "admission",
        "admit date",
        "discharged",
        "discharge",
        "seen on",
        "encounter",
        "surgery date",
        "procedure date",
        # Where care happens, and when specimens and prescriptions are dated.
        "health center",
        "medical center",
        "clinic on",
        "hospital on",
        "collected",
        "specimen date",
        "date written",
        "date of visit",
        "exam date",
        "test date",
        "result date",
        "results available",
    ),
    # Also before a service date, but words that staff and business mail use too: they
    # count only in mail without a staff topic (see scan._Segment._date).
    "service_booking": ("appointment", "appt", "visit", "scheduled for"),
    "fax": ("fax", "facsimile"),
    "icd": ("icd", "icd-10", "icd-10-cm", "icd10", "dx", "diagnosis", "diagnoses", "diag"),
    # Makes a phone number, e-mail or street address a patient's (identity), not the
    # sender organisation's, which is in nearly every signature.
    "patient": (
        "patient",
        "pt",
        "member",
        "beneficiary",
        "guardian",
        "resident",
        "emergency contact",
        "home address",
        "home phone",
        "home number",
        "lives at",
        "resides at",
    ),
    # Health context: with these, a direct identifier (SSN, MRN, MBI, member id) is PHI.
    "health": (
        "patient",
        "patients",
        "appointment",
        "clinic",
        "diagnosis",
        "diagnosed",
        "prescription",
        "prescribed",
        "rx",
        "lab",
        "labs",
        "laboratory",
        "insurance",
        "claim",
        "medical",
        "medication",
        "treatment",
        "hospital",
        "physician",
        "referral",
        "symptoms",
        "therapy",
        "surgery",
        "test results",
        "chart",
        "health plan",
        "prior authorization",
        "discharge",
        "admitted",
    ),
}


def sections(name: str) -> dict[str, tuple[str, ...]]:
    """The sections of a shipped data file whose lines "[section]" start a section."""
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for term in lexicon(name):
        if term.startswith("[") and term.endswith("]"):
            current = out.setdefault(term[1:-1], [])
        else:
            current.append(term)
    return {k: tuple(v) for k, v in out.items()}


# Care words (data/care_words.txt; docs/inspection.md, "The PHI rule"): what makes a
# named person's message a patient communication. Classes "care" (health care by
# itself), "care_encounter", "care_scheduling", "care_service" and "care_staff" (a
# staff or business topic, which keeps encounter and scheduling words from counting).
CARE_CLASSES = {"clinical": "care", "encounter": "care_encounter"} | {
    s: f"care_{s}" for s in ("scheduling", "service", "staff")
}
CONTEXT_WORDS.update({CARE_CLASSES[s]: words for s, words in sections("care_words").items()})

# Nouns after a health term that make it part of a name ("the Whitaker Cancer
# Pavilion": "thing") or of a service's or programme's ("the diabetes clinic":
# "service"); data/topic_heads.txt.
TOPIC_HEADS: dict[str, str] = {
    word.lower(): section for section, words in sections("topic_heads").items() for word in words
}

# Context classes whose hits are only tested for presence, never for where they are:
# "health" (SegmentScan.health_context) and the staff and service topics (see
# scan.care_classes).
PRESENCE_CLASSES = frozenset({"health", "care_staff", "care_service"})

# A booked time: "at 9:15", "@ 3pm", "at noon" (not office hours, "8am-5pm"). With
# scheduling words it makes a reminder, as a provider or service word does.
SLOT = (
    rf"(?:\b[Aa][Tt]|@){WS}{{1,3}}(?:(?:[01]?[0-9]|2[0-3]):[0-5][0-9]\b"
    rf"|(?:1[0-2]|0?[1-9]){WS}?[AaPp]\.?[Mm]\b|[Nn]oon\b)"
)

# Labelled identifiers ("MRN: 12345678"): the label is the context; the value is
# any token with digits after it, whatever the organisation's format.
# Each label may be followed by "number", "no", "id" or "#". No label is the end of
# another ("medical record" / "record"): that would make start tracking costly.
ID_LABELS: dict[str, tuple[str, ...]] = {
    "mrn": ("mrn", "record", "med rec", "chart", "patient id", "pt id"),
    "member_id": ("member", "subscriber", "policy", "insurance", "medicaid", "medicare"),
    "account_number": ("account", "acct"),
    "device_id": ("serial", "s/n", "udi", "device", "lot"),
}
# Only the value's first character: the handler reads the rest (cheaper to compile).
_ID_VALUE = r"\b[A-Za-z0-9]"

# ---------------------------------------------------------------- names
# A name pattern ends at the name's first capital letter; `names.person` reads the
# words from there (Python, the same for both engines, and far cheaper to compile).
_U = "[A-Z]"  # "Élodie" is "Elodie" in the scanned rendering
# "Patient Name:", "Full name:" end in "name:"; the rest name whom a nursing home, a
# payer, a therapist, a school nurse or a billing office writes about.
NAME_LABELS = (
    "patient", "pt", "name", "resident", "member", "client", "student", "child", "subscriber",
    "insured", "beneficiary", "enrollee", "participant", "guarantor",
)  # fmt: skip
# Words before a person cared for or whose account a message is about: "daughter of
# Jane Doe", "on behalf of Jane Doe", "for account of Jane Doe".
NAME_RELATIONS = (
    "on behalf of", "account of", "caregiver of", "daughter of", "son of", "mother of",
    "father of", "wife of", "husband of", "parent of", "guardian of",
)  # fmt: skip
TITLES = ("Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof")
# Lower-case parts of surnames ("de la Cruz", "van der Berg").
PARTICLES = (
    "de", "del", "della", "da", "di", "du", "do", "dos", "das", "van", "von", "der", "den",
    "la", "le", "los", "las", "ter", "ten", "zu", "af", "bin", "ibn", "al", "el",
)  # fmt: skip
GREETINGS = (
    "dear", "hi", "hello", "hey", "hiya", "howdy", "greetings", "good morning", "good afternoon",
    "good evening", "good day", "morning", "afternoon", "evening", "hi there", "hello there",
    "hey there", "hello again", "hi again", "dearest", "welcome back",
    # Patients write and are written to in their languages too.
    "hola", "buenos dias", "buenas tardes", "estimado", "estimada", "querido", "querida",
    "bom dia", "ola", "oi", "prezado", "prezada", "prezado(a)", "bonjour", "cher", "chere",
    "salut", "chao",
)  # fmt: skip

# ---------------------------------------------------------------- fixed patterns
_MONTHS = (
    "(?:"
    + "|".join(
        caseless(m[:3]) + "".join(f"(?:{caseless(m[3:])})?" if len(m) > 3 else "")
        for m in (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        )
    )
    + f"|{caseless('sept')})"
)
_DAY = "(?:0?[1-9]|[12][0-9]|3[01])"
_MONTH = "(?:0?[1-9]|1[0-2])"
_YEAR = "(?:19|20)[0-9]{2}"
_LETTER_MBI = "[AC-HJKMNP-RT-Y]"  # A-Z without S, L, O, I, B, Z
_ALNUM_MBI = "[0-9AC-HJKMNP-RT-Y]"
# USPS street suffixes (Publication 28, appendix C1): the common abbreviations
# and every primary name, so "Angela Junctions" and "Harvey Spring" are streets.
STREET_SUFFIXES = (
    "St Ave Av Rd Blvd Ln Dr Ct Pl Ter Cir Pkwy Hwy Sq Trl Expy Fwy Jct Mt Pt Rte Tpke Xing"
    " Alley Annex Arcade Avenue Bayou Beach Bend Bluffs? Bottom Boulevard Branch Bridge"
    " Brooks? Burgs? Bypass Camp Canyon Cape Causeway Centers? Circles? Cliffs? Club Commons?"
    " Corners? Course Courts? Coves? Creek Crescent Crest Crossing Crossroads? Curve Dale Dam"
    " Divide Drives? Estates? Expressway Extensions? Falls? Ferry Fields? Flats? Fords? Forest"
    " Forges? Forks? Fort Freeway Gardens? Gateway Glens? Greens? Groves? Harbors? Haven"
    " Heights Highway Hills? Hollow Inlet Islands? Isle Junctions? Keys? Knolls? Lakes? Land"
    " Landing Lane Lights? Loaf Locks? Lodge Loop Mall Manors? Meadows? Mews Mills? Mission"
    " Motorway Mount Mountains? Neck Orchard Oval Overpass Parks? Parkways? Pass Passage Path"
    " Pike Pines? Place Plains? Plaza Points? Ports? Prairie Radial Ramp Ranch Rapids? Rest"
    " Ridges? River Roads? Route Row Rue Run Shoals? Shores? Skyway Springs? Spurs? Squares?"
    " Station Stravenue Stream Streets? Summit Terrace Throughway Trace Track Trafficway Trail"
    " Trailer Tunnel Turnpike Underpass Unions? Valleys? Viaduct Views? Villages? Ville Vista"
    " Walks? Wall Ways? Wells?"
)
# Units that only lab values have (not "mg", a dose; not "%", a discount).
_LAB_UNITS = (
    "mmol/L", "mg/dL", "g/dL", "mEq/L", "U/L", "IU/L", "mIU/L", "mIU/mL", "uIU/mL", "ng/mL",
    "pg/mL", "ng/dL", "ug/dL", "mcg/dL", "umol/L", "nmol/L", "pmol/L", "g/L", "x10^9/L",
    "x10^12/L", "K/uL", "M/uL", "cells/uL", "cells/mm3", "mL/min/1.73m^2", "mL/min/1.73m2",
    "mL/min", "mm/hr", "mOsm/kg",
)  # fmt: skip
_LAB_UNIT = (
    "(?:"
    + "|".join(
        "".join(_escape(c) for c in unit) for unit in sorted(_LAB_UNITS, key=len, reverse=True)
    )
    + ")"
)
_STREET_SUFFIX = "(?:" + "|".join(STREET_SUFFIXES.split()) + ")"
_STREET_WORD = "(?:[A-Z][a-z]{1,24}|[0-9]{1,3}(?:st|nd|rd|th))"
_DIRECTION = r"(?:[NSEW]\.?|North|South|East|West|[NS][EW]\.?)"
_UNIT = (
    rf"(?:,?{WS}{{0,3}}(?:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|Rm|Room|#)\.?{WS}{{0,3}}#?"
    rf"{WS}{{0,3}}[A-Za-z0-9-]{{1,6}}\b)"
)
FIXED: tuple[PatternDef, ...] = (
    PatternDef("ssn_sep", r"\b[0-9]{3}[ -][0-9]{2}[ -][0-9]{4}\b"),
    PatternDef("ssn_plain", r"\b[0-9]{9}\b"),
    PatternDef("npi", r"\b[12][0-9]{9}\b"),
    PatternDef("dea", r"\b[ABCDEFGHJKLMPRSTUX][A-Z9][0-9]{7}\b"),
    PatternDef(
        "mbi",
        rf"\b[1-9]{_LETTER_MBI}{_ALNUM_MBI}[0-9]-?{_LETTER_MBI}{_ALNUM_MBI}[0-9]-?"
        rf"{_LETTER_MBI}{{2}}[0-9]{{2}}\b",
    ),
    PatternDef(
        "phone",
        rf"(?:(?:\+|\b)1{WS}?[.-]?{WS}?)?(?:\([2-9][0-9]{{2}}\){WS}?|\b[2-9][0-9]{{2}}{WS}?[.-]?{WS}?)"
        rf"[2-9][0-9]{{2}}{WS}?[.-]{WS}?[0-9]{{4}}\b",
    ),
    PatternDef(
        "email",
        r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b",
        "lookback",
        0,  # no whitespace in an address
    ),
    PatternDef(
        "street",
        rf"\b[0-9]{{1,6}}[A-Za-z]?{WS}{{1,3}}(?:{_DIRECTION}{WS}{{1,3}})?"
        rf"(?:{_STREET_WORD}{WS}{{1,3}}){{1,3}}{_STREET_SUFFIX}\b\.?{_UNIT}?",
        "lookback",
        160,  # longer than any match of this pattern
    ),
    PatternDef("street", rf"\b[Pp]\.?{WS}?[Oo]\.?{WS}*{caseless('box')}{WS}*[0-9]{{1,6}}\b"),
    PatternDef("date_num", rf"\b{_MONTH}[/.-]{_DAY}[/.-](?:19|20)?[0-9]{{2}}\b"),
    PatternDef("date_num", rf"\b{_YEAR}[/-](?:0[1-9]|1[0-2])[/-](?:0[1-9]|[12][0-9]|3[01])\b"),
    PatternDef("date_num", rf"\b{_MONTHS}\.?{WS}+{_DAY}(?:st|nd|rd|th)?,?{WS}+{_YEAR}\b"),
    PatternDef("date_num", rf"\b{_DAY}[ \t-]{_MONTHS}\.?,?[ \t-]{_YEAR}\b"),
    # Month and day without a year: only a service date ("appointment on March 3",
    # "seen 12/03 at 9:15").
    PatternDef("date_noyear", rf"\b{_MONTHS}\.?{WS}+{_DAY}(?:st|nd|rd|th)?\b"),
    PatternDef("date_noyear", rf"\b{_MONTH}/{_DAY}\b"),
    # A measured value with a clinical unit ("Urea: 6.2 mmol/L", "eGFR 112 mL/min"):
    # a lab result whatever the test is called.
    PatternDef("lab_unit", rf"\b[0-9]{{1,5}}(?:\.[0-9]{{1,3}})?{WS}?{_LAB_UNIT}\b"),
    PatternDef("icd_dot", r"\b[A-Z][0-9][0-9AB]\.[0-9A-Z]{1,4}\b"),
    PatternDef("icd_plain", r"\b[A-Z][0-9][0-9AB][0-9A-Z]{0,4}\b"),
    # Names: a strong label ("Patient: Jane Doe", "Name: DOE, JANE").
    PatternDef("name_label", rf"{phrases(NAME_LABELS)}{WS}*:{WS}*{_U}"),
    # "Re: Jane Doe", "For: Doe, Jane": the first name must be a known given name.
    PatternDef(
        "name_re",
        rf"{phrases(('re', 'fw', 'fwd', 'regarding', 'referral', 'for'))}{WS}*:{WS}*{_U}",
    ),
    # "reminder for Jane Doe", "I am referring Doe, Jane": checked like "Re:".
    PatternDef("name_re", rf"{phrases(('for', 'referring', 'regarding'))}{WS}+{_U}"),
    # "caregiver of Blessing Okafor": also a given name that is a word, before a surname.
    PatternDef("name_of", rf"{phrases(NAME_RELATIONS)}{WS}+{_U}"),
    # "patient Jane Doe was seen": also checked against the given names.
    PatternDef("name_pt", rf"{phrases(('patient', 'pt', 'paciente'))}\.?{WS}+{_U}"),
    # "Mrs. Doe", "Dear Dr. Lee" (the handler looks for the greeting).
    # "Ms. de la Cruz": the name found from its first capital word.
    PatternDef(
        "name_title",
        rf"\b(?:{'|'.join(TITLES)})\.?{WS}+(?:(?:{'|'.join(PARTICLES)}){WS}+){{0,2}}{_U}",
    ),
    # "Dear Jane Doe", "Hi Jane,". Start tracking would cost a sixth of the whole scan
    # (one-word greetings ending two-word ones, with any whitespace between): found from
    # the end instead, in the last three words ("Good morning, J").
    PatternDef("name_greeting", rf"{phrases(GREETINGS)},?{WS}+{_U}", "lookback", words=3),
    # A line that starts by addressing somebody: "Raj Malhotra, your A1C ...", "Li Wei:
    # you are ..." (the handler wants a census surname: given names the lists lack).
    PatternDef(
        "name_lead",
        r"(?:^|\n)[ \t]*[A-Z][a-z]+(?:[ \t][A-Z]\.?)?[ \t][A-Z][A-Za-z'-]+[ \t]*[,:][ \t]*"
        r"(?:you|your)\b",
    ),
)


# Terms not in the lists, known by their endings: the stems of surgical and
# diagnostic terms and of the USAN/INN drug names ("Pancreatectomy", "Esophagitis",
# "Vismodegib"). At least three letters before the ending; everyday words with the
# same endings ("diploma", "empathy", "April") are in `SUFFIX_WORDS`.
MEDICAL_SUFFIXES: dict[str, tuple[str, ...]] = {
    "procedure": (
        "ectomy", "ectomies", "otomy", "ostomy", "plasty", "scopy", "centesis", "tripsy",
        "rrhaphy", "pexy", "pheresis", "dermabrasion", "therapy",
    ),
    "diagnosis": (
        "itis", "osis", "emia", "aemia", "oma", "omas", "pathy", "algia", "plegia", "penia",
        "uria", "rrhea", "rrhoea", "ectasis", "megaly", "sclerosis", "trophy",
    ),
    "drug": (
        "mycin", "cillin", "prazole", "statin", "pril", "sartan", "olol", "dipine", "mab",
        "tinib", "degib", "ciclib", "vir", "azole", "cycline", "floxacin", "gliptin",
        "gliflozin", "glutide", "parin", "oxetine", "azepam", "zolam", "afil", "triptan",
        "lukast", "tidine", "dronate", "semide", "thiazide", "profen", "caine", "setron",
        "tropium", "terol", "sonide", "olone", "asone", "lamide",
    ),
}  # fmt: skip
_SUFFIX_WORDS_TEXT = """diploma aroma oklahoma tacoma sonoma paloma academia bohemia empathy
sympathy telepathy nostalgia dichotomy hypnosis osmosis symbiosis apotheosis metamorphosis
diagnosis prognosis manchuria liguria"""
SUFFIX_WORDS = frozenset(_SUFFIX_WORDS_TEXT.split())


# "Thyroid Cancer", "Liver Resection", "CAR T-Cell Therapy": a word and a medical head
# noun. Only heads that name nothing outside medicine ("Failure", "Injection", "Repair"
# and "Procedure" also name IT and building work).
MEDICAL_HEADS: dict[str, tuple[str, ...]] = {
    "diagnosis": ("disease", "cancer", "syndrome", "disorder", "infarction", "carcinoma"),
    "procedure": ("resection", "transplant", "therapy", "surgery", "ablation", "injection"),
}
# Words before a head noun that make it no medical term ("SQL Injection").
HEAD_NOT_MEDICAL = frozenset(
    {"sql", "code", "command", "script", "dependency", "fault", "fuel", "ldap", "header",
     "html", "xml", "prompt", "retail", "market", "capital", "cash", "liquidity", "funds"}
)  # fmt: skip


def _head_pattern(heads: Sequence[str]) -> str:
    # Either case of the head's first letter ("Thyroid Cancer", "thyroid cancer").
    body = "|".join(f"[{h[0].upper()}{h[0]}]{h[1:]}" for h in heads)
    return rf"[A-Za-z'-]{{3,}}[ \t]+(?:{body})"


def _suffix_pattern(endings: Sequence[str]) -> str:
    # Lower-case endings ("Omeprazole", "omeprazole"; not "OMEPRAZOLE"): spelling out
    # both cases doubles the compile time. Word edges: checked by the handler.
    # Longest first; ties in text order, so every process builds the same pattern (dbcache).
    body = "|".join(sorted(set(endings), key=lambda e: (-len(e), e)))
    return rf"[A-Za-z]{{3,}}(?:{body})"


def _label_pattern(labels: Sequence[str]) -> PatternDef:
    # "MRN: 123", "Member ID # A123", "Acct No. 12-34", "MRN-1234"; the value
    # starts on a word boundary so "MRN12345" is left to the organisation pattern.
    suffix = phrases(("number", "no", "num", "id", "#"))
    regex = (
        rf"{phrases(labels, SP + '{1,3}')}(?:{WS}{{1,3}}{suffix})?\.?{WS}{{0,3}}"
        rf"[:#=-]?{WS}{{0,3}}{_ID_VALUE}"
    )
    # Start tracking costs this pattern nothing measurable (bench/detect_starts.py);
    # looking back from each end took a regular expression search per match, and
    # "record", "chart" or "lot" followed by a word is common in clinical prose.
    return PatternDef("", regex)


# Given names up to this length are matched with the character after them: see
# given_name_patterns (a trailing class on every name would make compiling ten times
# slower; on these it costs about 0.5 s and removes most matches inside words).
SHORT_GIVEN = 4


def given_name_patterns(given: Iterable[str], in_capitals: Iterable[str]) -> list[PatternDef]:
    """Given names in free text ("JAMES" -> "James"; those `in_capitals` also "JAMES"):
    plain literals, the one shape Hyperscan compiles fast for thousands of words (with
    word edges it takes minutes); `names.free_person` checks the edges and reads the
    rest of the name."""
    title: list[PatternDef] = []
    for name in sorted(given):
        word = name.capitalize()
        if len(word) <= SHORT_GIVEN:
            # Short names start many words ("Pat" in "Patient", "Eve" in "Every"): most
            # of their matches would be inside words. Matched with the character after
            # them, not a lower-case letter (the handler leaves it out), or at the end.
            title += [PatternDef("given", f"{word}[^a-z]"), PatternDef("given", f"{word}$")]
        else:
            title.append(PatternDef("given", word))
    return title + [PatternDef("given", name) for name in sorted(in_capitals)]


def from_configuration(kind: str) -> bool:
    """Whether a pattern of this kind is built from the organisation's configuration
    (its identifier patterns and their context phrases), not shipped with phigate."""
    return kind.startswith(("ident:", "ctx:ident:"))


def build(
    config: InspectionConfig, given: Iterable[str] = (), given_in_capitals: Iterable[str] = ()
) -> list[PatternDef]:
    """All patterns for one configuration: fixed ones, lexicons, given names, context
    classes and the organisation's identifier patterns (kind "ident:N" =
    config.identifiers[N])."""
    defs = list(FIXED)
    defs += given_name_patterns(given, given_in_capitals)
    defs += lexicon_patterns("diagnosis", lexicon("diagnoses"))
    defs += lexicon_patterns("drug", {*lexicon("drugs"), *lexicon("drugs_reference")})
    defs += lexicon_patterns("procedure", lexicon("procedures"))
    defs += lexicon_patterns("lab", lexicon("labs"))  # a lab result when a number follows
    for type_, endings in MEDICAL_SUFFIXES.items():
        # No start tracking: the handler finds the word's start (a pattern with a
        # letter run before the ending is slow to track).
        defs.append(PatternDef(f"suffix:{type_}", _suffix_pattern(endings), "lookback", 0))
    for type_, heads in MEDICAL_HEADS.items():
        defs.append(PatternDef(f"suffix:{type_}", _head_pattern(heads), "lookback", 40))
    for kind, labels in ID_LABELS.items():
        defs.append(replace(_label_pattern(labels), kind=f"label:{kind}"))
    for cls, words in CONTEXT_WORDS.items():
        if cls in PRESENCE_CLASSES:
            # Word edges in the pattern and each phrase reported once: without start
            # tracking that compiles fast, and a text's dozens of "team" or "clinic"
            # cost one match, not one each. (One alternation per class scans no faster
            # and takes twice as long to compile.)
            terms = sorted(set(words))
            defs += [PatternDef(f"ctx:{cls}", phrases([t], _ONE_SPACE), "any") for t in terms]
            continue
        # A literal per phrase, as the lexicons: one alternation of a class's phrases
        # with word edges and start tracking compiles slowly (and past a few hundred
        # exceeds Hyperscan's pattern length limit). Word edges of the longer ones are
        # checked after the scan (scan._Segment).
        defs += [PatternDef(f"ctx:{cls}", literal(term)) for term in sorted(set(words))]
    defs.append(PatternDef("ctx:slot", SLOT, "som"))
    for index, ident in enumerate(config.identifiers):
        defs.append(PatternDef(f"ident:{index}", rf"\b(?:{ident.pattern})\b"))
        if ident.context:
            defs.append(PatternDef(f"ctx:ident:{index}", phrases(ident.context)))
    return defs
