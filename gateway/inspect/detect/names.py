"""Person names: which words are not names, display names, names known from payloads.

Names are found three ways: names that a clinical payload in the same message
names (PID-5, Patient.name ...), names after a label or in a salutation (the
patterns in `patterns.py`, checked here), and sender/recipient display names
that look like a person rather than an organisation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from gateway.inspect.detect.patterns import lexicon

# Capitalised words that follow "Dear", "Hi", "Patient:" ... but are no name, and
# organisation words that make a display name an organisation's.
_NOT_NAMES_TEXT = """
all everyone everybody there folks guys team teams colleague colleagues friend friends sir sirs
madam madame doctor doc nurse nurses patient patients customer customers member members partner
partners provider providers staff support admin administrator manager managers neighbor
neighbour students student parents parent family families ladies gentlemen valued hiring hello
thanks thank again both world user users client clients subscriber subscribers applicant
candidate reader readers plan health care policy holder policyholder guardian caregiver resident
residents fellow board committee physician physicians practice office clinic hospital not
provided unknown none n/a na tbd pending see attached same above below name date dob mrn age sex
gender male female phone address room bed account id birth insurance policy referring admitted
discharged visit appointment sent from to subject cc re fwd attending primary pcp diagnosis
reason sign signed result results new old your our my his her their this that the and or of for
on in at by with via no reply noreply no-reply do donotreply monday tuesday wednesday thursday
friday saturday sunday january february march july september october november december today
tomorrow yesterday morning afternoon evening night department dept billing center centre
services service inc llc ltd corp corporation company co group groups office admissions records
scheduling notifications notification alerts alert pharmacy lab labs laboratory portal
newsletter info information desk help helpdesk system systems mailer daemon postmaster webmaster
university college school foundation association institute network associates pediatrics
cardiology radiology oncology orthopedics dermatology imaging diagnostics surgery dental vision
benefits hr payroll it security sales marketing news updates update digest daily weekly monthly
calendar reminder reminders bot automated mail email mailbox list listserv community county city
state medical medicine healthcare hospitalist nursing finance legal compliance privacy
operations facilities accounts payable receivable urgent emergency memorial regional unit ward
front general insurance claims claim appeals members-services customer-service
"""
NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())

TITLE_WORDS = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof"})
_CREDENTIALS_TEXT = (
    "md do rn np pa pa-c phd dds dmd pharmd lpn cna mba mph facp jr sr ii iii iv esq"
)
_CREDENTIALS = frozenset(_CREDENTIALS_TEXT.split())
_WORD = re.compile(r"[^\W\d_][\w'’-]*\.?")


@cache
def given_names() -> frozenset[str]:
    return frozenset(lexicon("first_names"))


def is_name_word(word: str, allow_caps: bool = False) -> bool:
    """A capitalised word that could be part of a person's name."""
    if len(word) < 2 or word.lower() in NOT_NAMES or not word[0].isupper():
        return False
    return allow_caps or any(c.islower() for c in word)


@dataclass(frozen=True)
class Person:
    start: int
    end: int
    words: tuple[str, ...]  # without initials
    comma: bool  # written "Family, Given"


def person(
    text: str,
    start: int,
    *,
    min_words: int,
    allow_caps: bool = False,
    allow_comma: bool = True,
) -> Person | None:
    """The name that starts at `start`: up to three capitalised words on the same line,
    middle initials allowed, "Family, Given" when `allow_comma`. None when fewer than
    `min_words` words qualify."""
    limit = min(len(text), start + 80)  # three words and initials
    line_end = text.find("\n", start, limit)
    if line_end >= 0:
        limit = line_end
    words: list[str] = []
    end = position = start
    comma = False
    initial = -1  # end of a middle initial not yet followed by a word
    for m in _WORD.finditer(text, start, limit):
        gap = text[position : m.start()].strip(" \t")
        if m.start() == start:
            pass
        elif gap == "," and allow_comma and len(words) == 1 and not comma:
            comma = True
        elif gap not in ("", "."):
            break
        word = m.group()
        bare = word.rstrip(".")
        if len(bare) == 1 and bare.isupper() and words:
            position = initial = m.end()  # part of the name if a word follows, or after
            continue  # "Family, Given I"
        if not is_name_word(bare, allow_caps):
            break
        words.append(bare)
        end = m.start() + len(bare)
        position = m.end()
        initial = -1
        if len(words) == 3:
            break
    if len(words) < max(min_words, 1):
        return None
    if comma and initial > end:
        end = initial
    return Person(start, end, tuple(words), comma)


def given_name_first(found: Person) -> bool:
    """Whether the given name is a known one ("Doe, Jane": the word after the comma)."""
    given = found.words[1] if found.comma and len(found.words) > 1 else found.words[0]
    return given.lower() in given_names()


def display_names(text: str) -> Iterator[tuple[int, int]]:
    """Spans of display names (one per line) that look like a person: two or three
    capitalised words, titles and credentials aside, no organisation words."""
    offset = 0
    for line in text.splitlines(keepends=True):
        span = _display_name(line)
        if span is not None:
            yield offset + span[0], offset + span[1]
        offset += len(line)


def _display_name(line: str) -> tuple[int, int] | None:
    words = [
        (m.start(), m.start() + len(m.group().rstrip(".")), m.group().rstrip("."))
        for m in _WORD.finditer(line)
    ]
    words = [w for w in words if w[2].lower() not in _CREDENTIALS]
    while words and words[0][2].lower() in TITLE_WORDS:
        words = words[1:]
    names = [w for w in words if len(w[2]) > 1]
    if not 2 <= len(names) <= 3:
        return None
    if any(not is_name_word(w[2]) or w[2].isupper() for w in names):
        return None
    return words[0][0], words[-1][1]


def _variants(name: str) -> list[str]:
    """How a payload's name may be written in the text: "Given Family", "Family, Given",
    "Given Middle Family". HL7 order (Family^Given^Middle) and "Family, Given" understood."""
    if "^" in name:
        parts = [p.strip() for p in name.split("^")]
        family, given, middle = [*parts, "", "", ""][:3]
    elif "," in name:
        family, _, rest = name.partition(",")
        given, _, middle = rest.strip().partition(" ")
    else:
        words = name.split()
        if len(words) < 2:
            return []
        given, family, middle = words[0], words[-1], " ".join(words[1:-1])
    family, given, middle = family.strip(), given.strip(), middle.strip()
    if len(family) < 2 or len(given) < 2:
        return []
    variants = [f"{given} {family}", f"{family}, {given}", f"{family} {given}"]
    if middle:
        variants += [f"{given} {middle} {family}", f"{given} {middle[0]}. {family}"]
    return variants


@lru_cache(maxsize=256)
def known_names_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    variants = {v for name in names for v in _variants(" ".join(name.split()))}
    if not variants:
        return None
    body = "|".join(
        r"\s+".join(re.escape(w) for w in v.split(" "))
        for v in sorted(variants, key=len, reverse=True)
    )
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


@lru_cache(maxsize=256)
def known_ids_pattern(identifiers: tuple[str, ...]) -> re.Pattern[str] | None:
    ids = sorted(
        {i.strip() for i in identifiers if len(i.strip()) >= 4 and not _date_like(i.strip())},
        key=len,
        reverse=True,
    )
    if not ids:
        return None
    return re.compile(rf"(?<![\w-])(?:{'|'.join(map(re.escape, ids))})(?![\w-])")


def find_known(
    text: str, names: Sequence[str], ids: Sequence[str]
) -> Iterator[tuple[str, int, int]]:
    """(type, start, end) of every payload name ("name") and identifier ("mrn") in text."""
    name_pattern = known_names_pattern(tuple(names)) if names else None
    if name_pattern is not None:
        for m in name_pattern.finditer(text):
            yield "name", m.start(), m.end()
    id_pattern = known_ids_pattern(tuple(ids)) if ids else None
    if id_pattern is not None:
        for m in id_pattern.finditer(text):
            yield "mrn", m.start(), m.end()


def _date_like(value: str) -> bool:
    # PID-7 and the like come along with the identifiers: 19800101 is a date, not an MRN.
    return len(value) == 8 and value.isdigit() and value[:2] in ("19", "20")
