"""From one text to typed spans: one engine pass, then validators and context rules.

Matched values exist only as slices of the text inside these functions; they
are never logged, stored or put in an exception.
"""

from __future__ import annotations

import codecs
import re
import threading
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import accumulate
from typing import NamedTuple

from gateway.config import InspectionConfig
from gateway.inspect.detect import names, patterns, validators
from gateway.inspect.detect.matcher import (
    Backend,
    DetectionError,
    Engine,
    Matches,
    Pattern,
    build_engine,
    default_backend,
)
from gateway.inspect.detect.namedata import ascii_key, name_data
from gateway.inspect.detect.rule import HEALTH_TYPES


class Span(NamedTuple):
    """A finding's type and its character offsets in the scanned text."""

    type: str
    start: int
    end: int


# Which type wins when candidates cover the same text (after context distance).
_PRIORITY = {
    t: n
    for n, t in enumerate(
        (
            "ssn",
            "mbi",
            "dea",
            "mrn",
            "member_id",
            "account_number",
            "device_id",
            "npi",
            "icd10",
            "date_of_birth",
            "service_date",
            "fax",
            "phone",
            "email",
            "street_address",
            "name",
            "lab_result",
            "drug",
            "diagnosis",
            "procedure",
        )
    )
}
# Health findings that are a person's data even in staff mail: a measured value, a code.
_PERSONAL_HEALTH = frozenset({"lab_result", "icd10"})
# How far along its line a care word still makes a name a patient's (see care_in_line).
LINE_REACH = 240
CONTACT_TYPES = frozenset({"phone", "fax", "email", "street_address"})
_DIGITS_AND_SEPARATORS = frozenset("0123456789/.-")
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_LOWER = frozenset(b"abcdefghijklmnopqrstuvwxyz")
_IN_NAME_AFTER = _WORD | frozenset(b"'")  # "Ann" in "Annual", "Ann'e" (not "Ann's ")
_IN_NAME_BEFORE = _IN_NAME_AFTER | frozenset(b"-")  # "Ann" in "Mary-Ann"
_GREETING_ENDS = (*patterns.GREETINGS, "attn:", "attention:", "to:")
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
# After a lab name: a few linking words, then the value. Python's re, run only at the
# end of a lab name the engine found, so both engines still give the same spans.
_LAB_VALUE = re.compile(
    r"(?:[ \t]*(?::|=|-|\||,|\([A-Za-z ]{1,20}\)|(?:levels?|results?|values?|was|were|is|are|of|at"
    r"|reading|measured|came back|returned|today|now)\b)){0,4}[ \t]*(?:[<>]=?)?[ \t]*"
    r"[0-9]{1,5}(?:\.[0-9]{1,3})?(?![0-9])",
    re.IGNORECASE,
)

_LAB_OUTCOME = re.compile(
    r"[ \t]+(?:results?|pending|(?:is|are|was|were) (?:due|back|abnormal|normal|high|low)"
    r"|came back)\b",
    re.IGNORECASE,
)

# A candidate: (start, -end, rank, type); sorted, the leftmost, longest, best-ranked
# (lower: nearer context, then type priority) comes first.
Candidate = tuple[int, int, int, str]
Handler = Callable[["_Segment", int, int], None]
# Lexicon and medical-ending terms: what a topic head may make part of a name.
_TERM_TYPES = frozenset({"diagnosis", "drug", "procedure"})
# The word after a health term ("Cancer Pavilion", "Alzheimer's Association").
_NEXT_WORD = re.compile(r"(?:'s)?[ \t]+([A-Za-z]+)")
_PHONE_WORD = re.compile(r"\b(?:phone|tel|telephone|cell|mobile|ph|office|main|call)\b", re.I)


@dataclass
class SegmentScan:
    spans: list[Span] = field(default_factory=list)
    # Phone numbers, e-mail and street addresses that belong to a patient (a
    # patient context word before them, or a name next to them).
    patient_contacts: int = 0
    health_context: bool = False  # a health context word ("patient", "claim" ...)
    # Names in free text with no health finding or care word near them: findings,
    # but they do not identify a patient for the PHI rule (counted among `spans`).
    loose_names: int = 0
    care_context: bool = False  # a care word: appointment, refill, your results ...
    # The care-word classes present (data/care_words.txt): the message's verdict
    # weighs them together (a staff topic in the body keeps "Follow-up" in the
    # subject from counting; see care_classes).
    care_words: frozenset[str] = frozenset()
    named_care: bool = False  # care tied to a name whatever the topic (see named_care)


@dataclass(frozen=True)
class Plan:
    """What to do with the matches of one pattern."""

    handler: Handler
    # Context classes of which one must occur in the text, else the pattern's
    # matches cannot count (an undashed SSN needs "SSN" ...): skipped unchecked.
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Compiled:
    """The patterns of one configuration, compiled for one backend."""

    engine: Engine
    plans: tuple[Plan | None, ...]  # by pattern index; None: a context pattern
    context_of: dict[int, str]  # pattern index -> the context class of its phrase
    presence: frozenset[int] = frozenset()  # context patterns that only say they occur
    date_indexes: tuple[int, ...] = ()  # the date patterns' indexes


def _plans(defs: Sequence[patterns.PatternDef], config: InspectionConfig) -> list[Plan | None]:
    plans: list[Plan | None] = []
    for d in defs:
        kind = d.kind
        if kind.startswith("ctx:"):
            plans.append(None)
        elif kind.startswith("label:"):
            plans.append(Plan(_labelled(kind[6:])))
        elif kind.startswith("suffix:"):
            plans.append(Plan(_medical_word(kind[7:])))
        elif kind.startswith("ident:"):
            ident = config.identifiers[int(kind[6:])]
            cls = kind if ident.context else None
            plans.append(Plan(_identifier(ident.type, cls), (kind,) if cls else ()))
        else:
            plans.append(Plan(_HANDLERS[kind], _NEEDS.get(kind, ())))
    return plans


def _pattern(d: patterns.PatternDef) -> Pattern:
    return Pattern(d.regex, d.start_by, d.length, d.words, patterns.from_configuration(d.kind))


_cache: dict[tuple[object, ...], Compiled] = {}
_by_config: dict[int, tuple[InspectionConfig, Backend, Compiled]] = {}
_lock = threading.Lock()


def compiled_for(config: InspectionConfig, backend: Backend | None = None) -> Compiled:
    """Compile once per configuration (only its identifier patterns vary the set)."""
    backend = backend or default_backend()
    hit = _by_config.get(id(config))
    if hit is not None and hit[0] is config and hit[1] == backend:
        return hit[2]
    key = (backend, tuple((i.type, i.pattern, tuple(i.context)) for i in config.identifiers))
    with _lock:
        result = _cache.get(key)
        if result is None:
            data = name_data()
            defs = patterns.build(config, data.given, data.given_us)
            context_of = {n: d.kind[4:] for n, d in enumerate(defs) if d.kind.startswith("ctx:")}
            result = Compiled(
                engine=build_engine([_pattern(d) for d in defs], backend),
                plans=tuple(_plans(defs, config)),
                context_of=context_of,
                presence=frozenset(
                    n for n, cls in context_of.items() if cls in patterns.PRESENCE_CLASSES
                ),
                date_indexes=tuple(
                    n for n, d in enumerate(defs) if d.kind in ("date_num", "date_noyear")
                ),
            )
            if len(_cache) >= 16:
                _cache.clear()
            _cache[key] = result
        if len(_by_config) >= 16:
            _by_config.clear()
        _by_config[id(config)] = (config, backend, result)  # holding config keeps its id unique
    return result


@lru_cache(maxsize=8192)
def _ascii_char(char: str) -> str:
    """One ASCII character standing for `char` in the scanned rendering."""
    if char in _PUNCTUATION:
        return _PUNCTUATION[char]
    if char.isspace():
        return " "
    base = unicodedata.normalize("NFKD", char)[:1]
    if base.isascii() and base.isalpha():
        return base  # é -> e, Ø -> O (NFKD has no decomposition for it: see the table)
    return "?"  # not a word character, not whitespace


_PUNCTUATION = {
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "“": '"', "”": '"', "„": '"',
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-",
    "Ø": "O", "ø": "o", "Æ": "A", "æ": "a", "Œ": "O", "œ": "o", "ß": "s", "Ł": "L", "ł": "l",
    "Đ": "D", "đ": "d", "Ð": "D", "ð": "d", "Þ": "T", "þ": "t", "ı": "i",
}  # fmt: skip


def _to_ascii(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):  # pragma: no cover - only encoding uses it
        raise TypeError("phigate.ascii is an encoding error handler")
    run = error.object[error.start : error.end]
    return "".join(map(_ascii_char, run)), error.end


codecs.register_error("phigate.ascii", _to_ascii)


def ascii_bytes(text: str) -> bytes:
    """The text as the engines scan it: one ASCII byte per character, so match offsets
    are character offsets (no mapping from UTF-8 byte offsets), and "Müller", "Crohn’s"
    and "2024–03–04" match the same patterns as their plain spellings."""
    if not text.isascii():
        # Smart quotes and dashes are most of the non-ASCII in mail; str.replace is
        # C speed, the error handler costs a Python call per run of characters.
        for char in _COMMON:
            if char in text:
                text = text.replace(char, _PUNCTUATION[char])
    return text.encode("ascii", "phigate.ascii")


_COMMON = ("’", "‘", "“", "”", "–", "—")


def topic_head(text: str, end: int) -> str | None:
    """The section of data/topic_heads.txt ("thing" or "service") of the word after a
    term ending at `end`, if it is a topic head ("Cancer Pavilion", "diabetes clinic")."""
    following = _NEXT_WORD.match(text, end)
    if following is None:
        return None
    head = following.group(1)
    # A capitalised head belongs to a capitalised name: "transferred from Hall Clinic"
    # is no "hall" of transfers.
    if head[0].isupper() and not _capitalised_before(text, end):
        return None
    return patterns.TOPIC_HEADS.get(head.lower())


def _capitalised_before(text: str, end: int) -> bool:
    """Whether the word ending at `end` starts with a capital."""
    start = end
    while start and (text[start - 1].isalpha() or text[start - 1] == "'"):
        start -= 1
    return text[start : start + 1].isupper()


class _Segment:
    """Working state for one text: matches by pattern, context hits, candidates."""

    def __init__(
        self, text: str, compiled: Compiled, window: int, found: Matches, data: bytes = b""
    ) -> None:
        self.text = text
        self.data = data  # the ASCII rendering the engine scanned
        self.compiled = compiled
        self.window = window
        self.found = found
        self.candidates: list[Candidate] = []
        self.strong_names: list[tuple[int, int]] = []  # labels, salutations, payloads
        self.pending_names: list[tuple[int, int]] = []  # see add_pending_names
        self.lab_mentions: list[int] = []  # lab test names without a value
        self.provider_names: set[int] = set()  # starts of "Dear Dr. Lee": no patient
        # Starts of medical terms before a service's noun ("the diabetes clinic"): see
        # apply_topic_heads.
        self.service_terms: set[int] = set()
        self._ascii = ""
        # Context class -> (starts, ends) of its hits; none for the classes only tested
        # for presence (patterns.PRESENCE_CLASSES).
        self.context: dict[str, tuple[list[int], list[int]]] = {}
        by_class: dict[str, list[tuple[int, int]]] = {}
        context_of = compiled.context_of
        whole = self.whole
        for index in found.keys() & context_of.keys():
            cls = context_of[index]
            if index in compiled.presence:
                self.context[cls] = ([], [])
            else:
                hits = [h for h in found[index] if whole(*h)]
                if cls == "care":
                    # "thanks for covering the Radiation Therapy list": no care given.
                    hits = [h for h in hits if topic_head(text, h[1]) is None]
                by_class.setdefault(cls, []).extend(hits)
        for cls, hits in by_class.items():
            if hits:
                hits.sort()
                self.context[cls] = ([s for s, _ in hits], [e for _, e in hits])
        dates = sorted(hit for i in compiled.date_indexes for hit in found.get(i, ()))
        if dates:
            # A date, like a time slot, makes scheduling words a booking ("we look
            # forward to seeing you on March 3").
            starts, ends = self.context.get("slot", ([], []))
            slots = sorted([*zip(starts, ends, strict=True), *dates])
            self.context["slot"] = ([s for s, _ in slots], [e for _, e in slots])
        # Phrases of a class overlap ("your results", "results for"): each hit's end is
        # made the farthest end of the hits starting at or before it (see `near`).
        for cls, (starts, ends) in self.context.items():
            self.context[cls] = (starts, list(accumulate(ends, max)))
        self.care_classes = care_classes(self.context)

    def whole(self, start: int, end: int) -> bool:
        """Whether data[start:end] is whole words (where it starts or ends with a letter
        or digit): the literals of the longer phrases match inside words too."""
        data = self.data
        return not (
            (start and data[start] in _WORD and data[start - 1] in _WORD)
            or (end < len(data) and data[end - 1] in _WORD and data[end] in _WORD)
        )

    def near(self, cls: str, start: int) -> int | None:
        """Distance from the nearest context word of `cls` that starts before `start`
        and ends at most `window` characters before it; None when there is none."""
        hits = self.context.get(cls)
        if hits is None:
            return None
        i = bisect_left(hits[0], start) - 1
        if i < 0:
            return None
        end = hits[1][i]  # the farthest end of the hits starting before `start`
        if end < start - self.window:
            return None
        return max(0, start - end)

    def add(self, start: int, end: int, type_: str, distance: int = 0) -> None:
        self.candidates.append((start, -end, distance * 32 + _PRIORITY[type_], type_))

    # ------------------------------------------------------------ handlers

    def ssn_sep(self, s: int, e: int) -> None:
        if validators.ssn(self.text[s:e]):
            self.add(s, e, "ssn")

    def ssn_plain(self, s: int, e: int) -> None:
        distance = self.near("ssn", s)
        if distance is not None and validators.ssn(self.text[s:e]):
            self.add(s, e, "ssn", distance)

    def npi(self, s: int, e: int) -> None:
        if validators.npi(self.text[s:e]):
            distance = self.near("npi", s)
            self.add(s, e, "npi", self.window + 1 if distance is None else distance)

    def dea(self, s: int, e: int) -> None:
        if validators.dea(self.text[s:e]):
            self.add(s, e, "dea")

    def mbi(self, s: int, e: int) -> None:
        if validators.mbi(self.text[s:e]):
            self.add(s, e, "mbi")

    def phone(self, s: int, e: int) -> None:
        if not validators.phone_edges(self.text, s, e):
            return
        # A fax number: "fax" before it, and no "phone" between ("Fax: 1, Phone: 2").
        fax = self.near("fax", s)
        is_fax = fax is not None and _PHONE_WORD.search(self.text, s - fax, s) is None
        self.add(s, e, "fax" if is_fax else "phone")

    def email(self, s: int, e: int) -> None:
        self.add(s, e, "email")

    def street(self, s: int, e: int) -> None:
        self.add(s, e, "street_address")

    def date_num(self, s: int, e: int) -> None:
        value = self.text[s:e]
        if _DIGITS_AND_SEPARATORS.issuperset(value) and not validators.numeric_date(value):
            return
        self._date(s, e, self.near("dob", s))

    def date_noyear(self, s: int, e: int) -> None:
        self._date(s, e, None)

    def _date(self, s: int, e: int, dob: int | None) -> None:
        service = self.near("service", s)
        if service is None and "care_staff" not in self.context:
            service = self.near("service_booking", s)
        if service is None and self.care_word_near(s, e):
            service = self.window  # "seen 12/03 at 9:15 for your cleaning"
        if dob is not None and (service is None or dob <= service):
            self.add(s, e, "date_of_birth", dob)
        elif service is not None:
            self.add(s, e, "service_date", service)

    def icd_dot(self, s: int, e: int) -> None:
        if validators.icd10(self.text[s:e]):
            self.add(s, e, "icd10")

    def icd_plain(self, s: int, e: int) -> None:
        text = self.text
        if e < len(text) - 1 and text[e] == "." and text[e + 1].isalnum():
            return  # "Q99.99", "E11.99999": a dotted code, which failed the code list
        distance = self.near("icd", s)
        if distance is not None and validators.icd10(self.text[s:e]):
            self.add(s, e, "icd10", distance)

    def at_word_edges(self, s: int, e: int) -> bool:
        """What `\\b` says at both ends of a lexicon term, in the scanned rendering; long
        terms have no `\\b` in their pattern (see patterns.literal)."""
        data = self.data
        return (s == 0 or data[s - 1] not in _WORD or data[s] not in _WORD) and (
            e == len(data) or data[e] not in _WORD or data[e - 1] not in _WORD
        )

    def apply_topic_heads(self) -> None:
        """A medical term before a topic head (data/topic_heads.txt) is part of a
        place's, event's or organisation's name ("the Whitaker Cancer Pavilion",
        "Diabetes Awareness Month"): no finding, and neither is a term inside it
        ("Parkinson's" in "Parkinson's Disease outreach"). Before a service's or
        programme's noun ("the diabetes clinic") it stays a finding but tells nothing
        of a name near it (see loose_names). Run after every handler."""
        text = self.text
        topics = [
            (c[0], -c[1], head)
            for c in self.candidates
            if c[3] in _TERM_TYPES and (head := topic_head(text, -c[1])) is not None
        ]
        if not topics:
            return
        kept = []
        for candidate in self.candidates:
            start, end = candidate[0], -candidate[1]
            head = None
            if candidate[3] in _TERM_TYPES:
                head = next((h for s, e, h in topics if s <= start and end <= e), None)
            if head == "service":
                self.service_terms.add(start)
            if head != "thing":
                kept.append(candidate)
        self.candidates = kept

    def diagnosis(self, s: int, e: int) -> None:
        if self.at_word_edges(s, e):
            self.add(s, e, "diagnosis")

    def drug(self, s: int, e: int) -> None:
        if self.at_word_edges(s, e):
            self.add(s, e, "drug")

    def procedure(self, s: int, e: int) -> None:
        if self.at_word_edges(s, e):
            self.add(s, e, "procedure")

    def medical_word(self, type_: str, s: int, e: int) -> None:
        # A word with a medical ending ("Pancreatectomy"): see patterns.MEDICAL_SUFFIXES.
        words = self.text[s:e].lower().split()
        if (
            self.at_word_edges(s, e)
            and words[-1] not in patterns.SUFFIX_WORDS
            and words[0] not in patterns.HEAD_NOT_MEDICAL
        ):
            self.add(s, e, type_)

    def lab_unit(self, s: int, e: int) -> None:
        self.add(s, e, "lab_result")

    def lab(self, s: int, e: int) -> None:
        # A lab name is a result only with a value ("HbA1c 7.2", "LDL was 130") or a
        # word that makes it one ("potassium result", "INR pending"): "we will check
        # your A1C" is no result.
        if self.at_word_edges(s, e):
            tail = _LAB_VALUE.match(self.text, e) or _LAB_OUTCOME.match(self.text, e)
            if tail is not None:
                self.add(s, tail.end(), "lab_result")
            else:  # "the INR for Jane Doe": care for her, if a name is near (see care_near)
                self.lab_mentions.append(s)

    def labelled_id(self, type_: str, s: int, e: int) -> None:
        # The match ends at the value's first character; the value runs on from there.
        end = e
        text = self.text
        while end < len(text) and text[end] in _ID_CHARS:
            end += 1
        while text[end - 1] == "-":
            end -= 1
        if end - (e - 1) <= 25 and validators.id_value(text[e - 1 : end]):
            self.add(e - 1, end, type_)

    def identifier(self, type_: str, context: str | None, s: int, e: int) -> None:
        if context is None:  # a pattern without context words: always counts, weakly
            self.add(s, e, type_, self.window + 1)
            return
        distance = self.near(context, s)
        if distance is not None:
            self.add(s, e, type_, distance)

    def add_person(self, found: names.Person | None) -> None:
        if found is not None:
            self.add_name(found.start, found.end)

    def add_name(self, start: int, end: int) -> None:
        """A name that counts for the PHI rule wherever it is (a label, a salutation,
        a payload's patient)."""
        self.strong_names.append((start, end))
        self.add(start, end, "name")

    def given(self, s: int, e: int) -> None:
        # Given names are plain literals (see patterns.given_name_patterns): "Ann" also
        # matches in "Annual". Most matches are such; drop them before any other work.
        data = self.data
        if data[e - 1] not in _LOWER and data[s + 1] in _LOWER:
            e -= 1  # "Pat," from a short name's pattern, which ends after the name
        if (s and data[s - 1] in _IN_NAME_BEFORE) or (
            e < len(data) and data[e] in _IN_NAME_AFTER and data[e : e + 3] != b"'s "
        ):
            return
        if not self._ascii:
            self._ascii = self.data.decode("ascii")
        found = names.free_person(self._ascii, s, e, name_data())
        if found is not None:
            if found.addressed:
                self.add_name(found.start, found.end)
            elif found.needs_context:
                self.pending_names.append((found.start, found.end))
            else:
                self.add(found.start, found.end, "name")

    def add_pending_names(self) -> None:
        """Names of two everyday words ("Bill Wood") count only with a health finding
        or care word within `window` characters; run after every other handler."""
        if not self.pending_names:
            return
        service = self.service_terms
        health = sorted(
            (c[0], -c[1]) for c in self.candidates if c[3] in HEALTH_TYPES and c[0] not in service
        )
        starts = [s for s, _ in health]
        # Of the findings starting before a name's window ends, the farthest-reaching
        # (a bisection per name: large texts have thousands of both).
        reach = list(accumulate((e for _, e in health), max))
        for start, end in self.pending_names:
            last = bisect_right(starts, end + self.window) - 1
            near_health = last >= 0 and reach[last] >= start - self.window
            if near_health or self.care_near(start, end):
                self.add(start, end, "name")

    def care_word_near(self, start: int, end: int) -> bool:
        """A care word within `window` characters of text[start:end], before or after."""
        for cls in self.care_classes:
            care = self.context[cls][0]
            i = bisect_left(care, start - self.window)
            if i < len(care) and care[i] <= end + self.window:
                return True
        return False

    def care_in_line(self, start: int, end: int) -> bool:
        """A care word in the same line (a paragraph, in mail) as text[start:end], at
        most `LINE_REACH` characters away: "Jane Doe called about a charge ... and
        believes insurance should have paid it"."""
        text = self.text
        low = max(text.rfind("\n", 0, start) + 1, start - LINE_REACH)
        high = text.find("\n", end)
        high = min(len(text) if high < 0 else high, end + LINE_REACH)
        for cls in self.care_classes:
            care = self.context[cls][0]
            i = bisect_left(care, low)
            if i < len(care) and care[i] < high:
                return True
        return False

    def care_near(self, start: int, end: int) -> bool:
        """A care word within `window` characters of text[start:end], or a lab test
        named within twice that ("We received the INR for Jane Doe")."""
        if self.care_word_near(start, end):
            return True
        labs = self.lab_mentions  # sorted after all handlers ran (scan_text)
        j = bisect_left(labs, start - 2 * self.window)
        return j < len(labs) and labs[j] <= end + 2 * self.window

    def care_context(self, spans: list[Span]) -> bool:
        """A care word anywhere, or care tied to a name (see named_care)."""
        return bool(self.care_classes) or self.named_care(spans)

    def named_care(self, spans: list[Span]) -> bool:
        """Care tied to a name whatever the message's topic: a lab test named near it,
        or a booking with a provider in its line (see booked_in_line)."""
        named = [s for s in spans if s.type == "name"]
        return (
            bool(self.lab_mentions) and any(self.care_near(s.start, s.end) for s in named)
        ) or any(self.booked_in_line(s.start, s.end) for s in named)

    def name_label(self, s: int, e: int) -> None:
        self.add_person(names.person(self.text, e - 1, min_words=2, allow_caps=True))

    def name_re(self, s: int, e: int) -> None:
        # "reminder for Jane Doe", "RE: DOE, JANE", not "privileges for Jane Doe, MD";
        # a given name alone before ":" ("Message from the pharmacy for Nicholas: ...").
        text = self.text
        found = names.person(text, e - 1, min_words=1, allow_caps=True)
        if (
            found is not None
            and (len(found.words) > 1 or text[found.end : found.end + 1] == ":")
            and names.given_name_first(found)
            and not names.not_a_patient(text, found)
        ):
            self.add_person(found)

    def name_pt(self, s: int, e: int) -> None:
        # "patient Jane Doe", "Patient Kenji Watanabe", "Patient DOE, JANE": a known given
        # name or surname.
        found = names.person(self.text, e - 1, min_words=2, allow_caps=True)
        if found is not None and (
            names.given_name_first(found) or (not found.comma and names.known_surname_last(found))
        ):
            self.add_person(found)

    def name_of(self, s: int, e: int) -> None:
        # "daughter of Jane Doe", "caregiver of Blessing S. Okafor" (a given name that is
        # also a word, before a known surname), not "son of Dr. Lee's partner".
        found = names.person(self.text, e - 1, min_words=2, allow_caps=True)
        if (
            found is not None
            and (
                names.given_name_first(found)
                or (
                    not found.comma
                    and ascii_key(found.words[0]) in name_data().given
                    and names.known_surname_last(found)
                )
            )
            and not names.not_a_patient(self.text, found)
        ):
            self.add_person(found)

    def name_title(self, s: int, e: int) -> None:
        # "Dr. Lee" alone is usually the provider; in a salutation it is the addressee,
        # a person identified (a finding) but a provider, not a patient (see loose_names).
        found = names.person(self.text, e - 1, min_words=1, allow_comma=False)
        if self.text[s : s + 2] in ("Dr", "Pr"):
            before = self.text[max(0, s - 16) : s].rstrip(" \t").lower()
            if not before.endswith(_GREETING_ENDS) or found is None:
                return
            self.provider_names.add(found.start)
            self.add(found.start, found.end, "name")
            return
        self.add_person(found)

    def name_greeting(self, s: int, e: int) -> None:
        found = names.person(self.text, e - 1, min_words=1, allow_comma=False)
        if found is None or found.words[0].lower() in names.TITLE_WORDS:
            return  # "Dear Mr. Doe": the title pattern has it
        text = self.text
        following = text[found.end : found.end + 3].lstrip(" \t.")
        # "Hi Jane," / "Dear Jane Doe" / "Hello, Jane Doe!" / "Hey Jane - " / "Hi Jane &
        # family" - not "Hi Board Members"; "hey Tyrone its the front desk": a known given
        # name after a greeting that opens a line.
        if (
            not following
            or following[0] in ",!:&-\u2013\u2014\r\n"
            or (len(found.words) > 1 and text[s : s + 4].lower() == "dear")
            or (
                text[text.rfind("\n", 0, s) + 1 : s].strip() == "" and names.given_name_first(found)
            )
        ):
            self.add_person(found)

    def name_lead(self, s: int, e: int) -> None:
        text = self.text
        start = s + len(text[s:e]) - len(text[s:e].lstrip())
        found = names.addressed_at_line_start(text, start, name_data())
        if found is not None:
            self.add_name(found.start, found.end)

    # ------------------------------------------------------------ results

    def run(self) -> None:
        plans = self.compiled.plans
        context = self.context
        for index, spans in self.found.items():
            plan = plans[index]
            if plan is None or (plan.needs and not any(c in context for c in plan.needs)):
                continue
            handler = plan.handler
            for s, e in spans:
                handler(self, s, e)

    def resolve(self) -> list[Span]:
        """One finding per stretch of text: the leftmost, longest, best-ranked candidate."""
        self.candidates.sort()
        spans: list[Span] = []
        last_end = -1
        for start, negative_end, _, type_ in self.candidates:
            if start >= last_end:
                last_end = -negative_end
                spans.append(Span(type_, start, last_end))
        return spans

    def loose_names(self, spans: list[Span]) -> int:
        """Names found only in free text with no health finding and no care word within
        `window` characters before or after them, and providers addressed by title
        ("Hi Dr. Nguyen"): they identify somebody, not necessarily a patient (a
        newsletter's author, a colleague)."""
        # In staff mail ("Flu shots for employees: see Tamara Gibbs"), a health term near a
        # name is the topic, not the person's: only a clinical care word is, or a lab value
        # or a diagnosis code, which are somebody's data ("SBAR for the oncoming shift:
        # Jane Doe ... last Sodium 137").
        staff = "care_staff" in self.context
        health = [
            s
            for s in spans
            if s.type in (_PERSONAL_HEALTH if staff else HEALTH_TYPES)
            and s.start not in self.service_terms
        ]
        ends = [s.end for s in health]
        window = self.window
        # A name overlaps a strong one when, of the strong names starting before its
        # end, the farthest-reaching ends after its start (a bisection per name, not
        # a scan of every strong name: large texts have thousands of each).
        strong = sorted(self.strong_names)
        strong_starts = [s for s, _ in strong]
        reach = list(accumulate((e for _, e in strong), max))
        count = 0
        for span in spans:
            if span.type != "name":
                continue
            if span.start in self.provider_names:
                count += 1
                continue
            last = bisect_left(strong_starts, span.end) - 1
            if last >= 0 and reach[last] > span.start:
                continue
            low, high = span.start - window, span.end + window
            i = bisect_left(ends, low)
            near_health = i < len(health) and health[i].start <= high
            if not (
                near_health
                or self.care_near(span.start, span.end)
                or self.care_in_line(span.start, span.end)
                or self.booked_in_line(span.start, span.end)
            ):
                count += 1
        return count

    def booked_in_line(self, start: int, end: int) -> bool:
        """A booking in the name's line with a provider or service near it: "Jane Doe -
        seating evaluation on 3/4 at 9:15 ... the order from Dr. Lee", "For: Jane Doe,
        Oncology with Dr. Lee on 3/4 at 9 AM". It counts even where a staff topic
        elsewhere in the message ("the vendor brings a trial chair", "interpreter
        ticket") keeps encounter words from counting, but not with a staff topic in the
        line itself ("Lunch with Jane Doe and Dr. Lee on Friday at 12:30 PM")."""
        # Without a staff topic the line's booking words are care words already (see
        # care_classes): only a staff topic leaves this to decide.
        if "care_staff" not in self.context or "care_service" not in self.context:
            return False
        text = self.text
        low = max(text.rfind("\n", 0, start) + 1, start - LINE_REACH)
        high = text.find("\n", end)
        high = min(len(text) if high < 0 else high, end + LINE_REACH)
        booked = _TIME_OF_DAY.search(text, low, high) is not None
        for cls in _BOOKING_CLASSES:
            hits = self.context.get(cls)
            if hits is not None:
                i = bisect_left(hits[0], low)
                booked = booked or (i < len(hits[0]) and hits[0][i] < high)
        if not booked or _has_phrase("care_staff", text, low, high):
            return False
        around = (max(0, start - LINE_REACH), min(len(text), end + LINE_REACH))
        return _has_phrase("care_service", text, *around)

    def patient_contacts(self, spans: list[Span]) -> int:
        # `spans` do not overlap and are sorted, so name starts and ends both
        # ascend: the last name starting before a contact's window end has the
        # greatest end of all candidates (a bisection, not a quadratic scan).
        names = [s for s in spans if s.type == "name"]
        starts = [n.start for n in names]
        count = 0
        for span in spans:
            if span.type not in CONTACT_TYPES:
                continue
            last = bisect_right(starts, span.end + self.window) - 1
            near_name = last >= 0 and names[last].end >= span.start - self.window
            if near_name or self.near("patient", span.start) is not None:
                count += 1
        return count


# What books a visit in a name's line (see _Segment.booked_in_line): a time of day
# ("at 9:15", not a date alone: "covers the night of 3/4"), an encounter
# ("evaluation", "appointment") or scheduling words ("confirmed").
_TIME_OF_DAY = re.compile(patterns.SLOT)
_BOOKING_CLASSES = ("care_encounter", "care_scheduling")


_TOKEN = re.compile(r"[a-z0-9]+(?:['/-][a-z0-9]+)*")


class _Phrases(NamedTuple):
    """One class's context words as tokens (see _has_phrase): the one-word ones, and
    the longer ones by their first word."""

    words: frozenset[str]
    by_first_word: dict[str, tuple[tuple[str, ...], ...]]


@cache
def _context_phrases(cls: str) -> _Phrases:
    """One class's context words as tokens, for the few lines where their place
    matters but the engine only reports their presence."""
    phrases = {tuple(_TOKEN.findall(w.lower())) for w in patterns.CONTEXT_WORDS[cls]} - {()}
    by_first_word: dict[str, list[tuple[str, ...]]] = {}
    for phrase in phrases:
        if len(phrase) > 1:
            by_first_word.setdefault(phrase[0], []).append(phrase)
    return _Phrases(
        frozenset(p[0] for p in phrases if len(p) == 1),
        {first: tuple(longer) for first, longer in by_first_word.items()},
    )


def _has_phrase(cls: str, text: str, low: int, high: int) -> bool:
    """Whether text[low:high] has one of a class's context words, whole words and
    case-insensitive: a set lookup for the words, then the longer phrases only where
    their first word is, not a regex of hundreds of alternatives tried at each
    character."""
    phrases = _context_phrases(cls)
    words = _TOKEN.findall(text[low:high].lower())
    if not phrases.words.isdisjoint(words):
        return True
    by_first_word = phrases.by_first_word
    return any(
        tuple(words[i : i + len(phrase)]) == phrase
        for i, word in enumerate(words)
        for phrase in by_first_word.get(word, ())
    )


def care_classes(context: Mapping[str, object]) -> tuple[str, ...]:
    """The care-word classes (data/care_words.txt) that count as care in a text with
    these context hits: clinical words always; encounter words ("appointment",
    "visit") unless a staff or business topic is there ("budget", "laptop", "team
    lunch"); scheduling words ("scheduled", "see you", "pick up") only with a provider
    or service ("Dr.", "cardiology", "clinic") or a date or booked time ("on 3/14",
    "at 9:15"), and no staff topic; a date or booked time itself with a provider or
    service and no staff topic."""
    staff = "care_staff" in context
    service = "care_service" in context
    booked = "slot" in context
    wanted = (
        ("care", True),
        ("care_encounter", not staff),
        ("care_scheduling", not staff and (service or booked)),
        # A date or time with a provider or service: "Tuesday 3/14 at 9:00, Dr. Patel".
        ("slot", not staff and service and booked),
    )
    return tuple(cls for cls, ok in wanted if ok and cls in context)


def _labelled(type_: str) -> Handler:
    return lambda segment, s, e: segment.labelled_id(type_, s, e)


def _medical_word(type_: str) -> Handler:
    return lambda segment, s, e: segment.medical_word(type_, s, e)


def _identifier(type_: str, context: str | None) -> Handler:
    return lambda segment, s, e: segment.identifier(type_, context, s, e)


# What can make a date a service date (see _Segment._date).
_SERVICE_CONTEXT = ("service", "service_booking", "care", "care_encounter", "care_scheduling")
# Patterns whose matches count only near one of these context classes.
_NEEDS = {
    "ssn_plain": ("ssn",),
    "icd_plain": ("icd",),
    "date_num": ("dob", *_SERVICE_CONTEXT),
    "date_noyear": _SERVICE_CONTEXT,
}
_HANDLERS: dict[str, Handler] = {
    name: getattr(_Segment, name)
    for name in (
        "ssn_sep",
        "ssn_plain",
        "npi",
        "dea",
        "mbi",
        "phone",
        "email",
        "street",
        "date_num",
        "date_noyear",
        "icd_dot",
        "icd_plain",
        "diagnosis",
        "drug",
        "procedure",
        "lab",
        "lab_unit",
        "name_label",
        "name_re",
        "name_pt",
        "name_of",
        "name_title",
        "name_greeting",
        "name_lead",
        "given",
    )
}


def scan_text(
    text: str,
    config: InspectionConfig,
    known_names: Sequence[str] = (),
    known_ids: Sequence[str] = (),
    *,
    display_names: bool = False,
    backend: Backend | None = None,
) -> SegmentScan:
    """All findings in one text. `display_names`: the text is display names, one per
    line; only names are looked for."""
    compiled = compiled_for(config, backend)
    kind = "names"
    try:
        if display_names:
            segment = _Segment(text, compiled, config.context_window, {})
            for start, end in names.display_names(text):
                segment.add(start, end, "name")
        else:
            kind = "engine"
            data = ascii_bytes(text)
            found = compiled.engine.scan(data)
            segment = _Segment(text, compiled, config.context_window, found, data)
            kind = "validators"
            segment.run()
            segment.apply_topic_heads()
            segment.lab_mentions.sort()
            segment.add_pending_names()
        kind = "known names"
        for type_, start, end in names.find_known(text, known_names, known_ids):
            if type_ == "name":
                segment.add_name(start, end)
            else:
                segment.add(start, end, type_)
        kind = "resolve"
        spans = segment.resolve()
        return SegmentScan(
            spans=spans,
            patient_contacts=segment.patient_contacts(spans),
            health_context="health" in segment.context,
            care_context=segment.care_context(spans),
            care_words=frozenset(c for c in segment.context if c.startswith("care") or c == "slot"),
            named_care=segment.named_care(spans),
            loose_names=segment.loose_names(spans),
        )
    except DetectionError:
        raise  # ours: never carries text
    except Exception as exc:  # the message could quote matched text: report the stage only
        raise DetectionError(f"PHI detection failed in {kind}: {type(exc).__name__}") from None
