"""Person names: which words are not names, display names, names known from payloads.

Names are found four ways: names that a clinical payload in the same message
names (PID-5, Patient.name ...), names after a label or in a salutation (the
patterns in `patterns.py`, checked here), names in free text that start with
a known given name (`free_person`, with the census lists of `namedata`), and
sender/recipient display names that look like a person rather than an
organisation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from gateway.inspect.detect.namedata import NameData, ascii_key, name_data
from gateway.inspect.detect.patterns import GREETINGS, PARTICLES, STREET_SUFFIXES

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
    " rd rdn cde cdces lcsw lpc lmft psyd od dpm dnp aprn fnp fnp-c crna msn bsn dpt otr"
    " slp rph cnm facs faap facc"
)
_CREDENTIALS = frozenset(_CREDENTIALS_TEXT.split())
_WORD = re.compile(r"[^\W\d_][\w'’-]*\.?")


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
    # Two everyday words ("Bill Wood"): a name only with a health finding or care word
    # near it (the caller checks: see scan._Segment.given).
    needs_context: bool = False
    # In an addressed position (a line's start before ":" or ","): the message is to
    # or about this person, so a care word anywhere in it counts (see scan._Segment).
    addressed: bool = False


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
        if bare in PARTICLES and words:
            position = m.end()
            continue  # "Maria de la Cruz"
        if len(bare) == 1 and bare.isupper() and words:
            position = initial = m.end()  # part of the name if a word follows, or after
            continue  # "Family, Given I"
        if not is_name_word(bare, allow_caps) and not (
            # "John Q. Patient": after a middle initial, a surname that is also a word.
            initial > 0 and bare[:1].isupper() and ascii_key(bare) in name_data().surnames
        ):
            break
        words.append(bare)
        end = m.start() + len(bare)
        position = m.end()
        initial = -1
        if len(words) == 3 or word.endswith("."):
            break  # "... for Daniel Okafor. You are booked": the sentence ended
    if len(words) < max(min_words, 1):
        return None
    if comma and initial > end:
        end = initial
    return Person(start, end, tuple(words), comma)


def given_name_first(found: Person) -> bool:
    """Whether the given name is a known one and no word ("Doe, Jane": the word after
    the comma; not "Re: Grace Period", "for Will Call")."""
    given = found.words[1] if found.comma and len(found.words) > 1 else found.words[0]
    key, data = ascii_key(given), name_data()
    return key in data.given and key not in data.words and key not in data.dictionary_words


def known_surname_last(found: Person) -> bool:
    """Whether the last word is a census surname and no everyday word ("Watanabe", not
    "Patient Portal Team")."""
    last = ascii_key(found.words[-1])
    data = name_data()
    return last in data.surnames and last not in data.words and last.lower() not in NOT_NAMES


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


# ---------------------------------------------------------------- names in free text
# A job or role next to a name makes it a provider's, staff member's or public figure's
# ("Dr. Jane Doe", "referring physician Jane Doe", "Jane Doe, Practice Manager", "our
# dietitian Jane Doe", "Senator Jane Doe").
_ROLES_TEXT = """dr doctor prof professor physician physicians provider surgeon nurse np pa
pharmacist therapist dentist attending clinician practitioner midwife rn md dietitian
nutritionist manager coordinator director author chief editor president ceo founder specialist
educator counselor counsellor assistant receptionist supervisor analyst lead officer
administrator representative technician clerk scheduler secretary intern volunteer liaison
navigator biller coder lpn cna pharmd phd dds dmd mph support staff team desk office department
coach trainer instructor speaker host chair chairman chairwoman vendor senator governor mayor
minister congressman congresswoman councilman councilwoman actor actress singer athlete
novelist journalist reporter columnist comedian cfo coo cto"""
_ROLES = frozenset(_ROLES_TEXT.split())
# A word right before a name that makes it no patient: a role, or "the John Muir Hospital",
# "St. Jude", "written by Jane Doe".
_BEFORE_NOT_PATIENT = _ROLES | {"the", "st", "saint", "by"}
# Verbs before the subject of a question: "why was Matthew charged twice?"
_AUXILIARIES = frozenset(
    {"was", "is", "were", "did", "does", "has", "had", "can", "could", "will", "would", "should"}
)
# A word or two in brackets after a name, and a doctor with one: "Dr. Diaz (oncology)".
_PAREN_AFTER = re.compile(r"[ \t]*\([A-Za-z][A-Za-z /&-]{1,40}\)")
_DOCTOR_WITH_ROLE = re.compile(r"\bDr\.?[ \t]+[A-Z][\w'-]*[ \t]*\([A-Za-z]")
# Words that end a job title after a name: ", Endoscopy with Dr. Kim" names no job.
_ROLE_LINKS = frozenset({"with", "and", "to", "for", "by", "from", "per", "via"})
# After a name: ", Practice Manager", ", a nurse at ...", "\nBilling Supervisor".
_ROLE_AFTER = re.compile(
    r"(?:[ \t]*,[ \t]*|(?:[ \t]*\r?\n)+[ \t]*)((?:[A-Za-z-]+[ \t]+){0,2}[A-Za-z-]+)"
)
# A word right after a name that makes it a place, an organisation, a day or a condition
# ("Rose Street", "Martin Luther King Jr. Day", "Grace Hospital", "Brain Tumor").
_PLACES_TEXT = """day foundation hospital hospitals clinic clinics center centre medical health
healthcare institute university college school memorial award awards fund library hall building
pavilion wing group associates pharmacy inc llc ltd corp corporation company co bank trust
insurance law partners elementary middle high academy church cathedral stadium arena airport
museum theater theatre park county city hotel bridge tower plaza room auditorium lecture prize
scholarship fellowship society club team national regional general community state federal
international specialty specialties care wellness dental vision eye orthopedics pediatrics
cardiology dermatology therapy rehab surgical surgery imaging diagnostics laboratories
laboratory atrium lobby annex courtyard lounge biomedical pharmaceuticals pharma biotech
therapeutics scientific supply supplies logistics industries technologies solutions holdings
enterprises tumor tumour cancer disease syndrome disorder infection fracture injury failure
attack palsy fever virus ulcer deficiency insufficiency lesion nodule cyst"""
_AFTER_NOT_PERSON = frozenset(
    ascii_key(w)
    for w in (
        *STREET_SUFFIXES.replace("?", "").split(),  # "Streets?" -> "Streets"
        *(w[:-2] for w in STREET_SUFFIXES.split() if w.endswith("?")),  # -> "Street"
        *_PLACES_TEXT.split(),
    )
)
_CREDENTIAL_KEYS = frozenset(ascii_key(c) for c in _CREDENTIALS if c not in ("jr", "sr"))
_SUFFIXES = frozenset({"JR", "SR", "II", "III", "IV"})
# "de la Cruz", "Van der Berg", "Di Maggio", "St. John", "Ste Marie".
_PARTICLE_INITIALS = frozenset(p[0] for p in PARTICLES)
_PARTICLES = frozenset([*PARTICLES, *(p.capitalize() for p in PARTICLES), "St", "Ste"])
_SIGN_OFFS = (
    "sincerely",
    "regards",
    "best",
    "thanks",
    "thank you",
    "cheers",
    "respectfully",
    "yours",
    "warmly",
    "take care",
    "best wishes",
)
_TOKEN = re.compile(r"[ \t]+([A-Za-z][A-Za-z'-]*)(\.?)")
_BEFORE_WORD = re.compile(r"([A-Za-z]+)\.?[ \t,]*$")
_APOSTROPHE_NAME = re.compile(r"[A-Za-z]'[A-Z][a-z]")  # O'Neill, Dell'Orto, D'Angelo
_INITIAL = re.compile(r"[ \t][A-Z]\.?[ \t]")
_FAMILY_FIRST = re.compile(r"([A-Z][A-Za-z'-]+)(?:,[ \t]*|\^)$")  # "Doe, Jane", HL7 "Doe^Jane"
_ADDRESSED_AFTER = re.compile(r"[:,]|[ \t]+(?:--?|[\u2013\u2014])[ \t]|[ \t]*(?:\r?\n|$)")
# Before a place's name: "opens at Rose Lane", "turn onto Grace Hill".
_PLACE_BEFORE = frozenset(
    {"at", "on", "near", "off", "onto", "along", "via", "from", "to", "take", "past", "across",
     "outside", "inside", "behind", "beside", "opposite", "into"}
)  # fmt: skip
_HYPHEN_GIVEN = re.compile(r"-([A-Z][a-z]+)\b")
_LINE_LEAD = re.compile(r"[ \t]*(?:[-*>]|[0-9]{1,3}[.)])?[ \t]*$")


def _style(word: str) -> str:
    """ "upper" (SMITH), "title" (Smith, McDonald, O'Brien) or "" (smith, iPhone)."""
    if len(word) > 1 and word.isupper():
        return "upper"
    if word[0].isupper() and any(c.islower() for c in word):
        return "title"
    return ""


def _surname(word: str, data: NameData) -> bool:
    """A known surname; each part of a hyphenated one ("Garcia-Lopez")."""
    parts = [ascii_key(p) for p in word.split("-")]
    return all(p in data.surnames for p in parts if p) and any(parts)


def _signature_line(text: str, line_start: int) -> bool:
    """Whether the line before `line_start` (blank lines aside) is a sign-off: the name
    after "Sincerely," is the sender's."""
    previous = text[max(0, line_start - 120) : line_start].rstrip()
    last_line = previous.rsplit("\n", 1)[-1].strip().rstrip(",").lower()
    return last_line.endswith(_SIGN_OFFS)


def free_person(text: str, start: int, end: int, data: NameData) -> Person | None:
    """A person named in free text, from a known given name at text[start:end] (the
    engines' match, a whole word: see `scan._Segment.given`; `text` is the ASCII
    rendering). "Given [M.] Family", "Family, Given
    [M.]" (either in capitals), or a given name alone at a line's start before ":" or
    ", you...". None for providers ("Dr. Jane Doe", "Jane Doe, MD", a name after
    "Sincerely,"), places and organisations ("Rose Street", "Grace Hospital"), and
    names that are also words ("Will", "Hope") without a known surname."""
    # Cheap shape test first: most capitalised words that are given names ("Will",
    # "Page") are followed by a lower-case word. Next: a capital (or "de", "van"), or
    # "," / ":" (a given name alone), or a family name and comma before it.
    hyphenated = _HYPHEN_GIVEN.match(text, end)  # "Mary-Kate", "Jean-Pierre"
    if hyphenated is not None and ascii_key(hyphenated.group(1)) in data.given:
        end = hyphenated.end()
    possessive = text[end : end + 3] == "'s "
    after = text[end : end + 2]
    # "Session note: Cheryl described better sleep ...", "As discussed, Kimberly will
    # stop ...", "why was Matthew charged twice ...": a given name alone as a clause's
    # subject, or a question's.
    subject = (
        len(after) == 2
        and after[0] == " "
        and after[1].islower()
        and ascii_key(text[start:end]) not in data.dictionary_words
        and (_sentence_start(text, start, clause=True) or _after_auxiliary(text, start))
    )
    if not (
        possessive
        or subject
        or (
            len(after) == 2
            and after[0] in " \t"
            and (after[1].isupper() or after[1] in _PARTICLE_INITIALS)
        )
        or after[:1] in (",", ":")
        or re.match(r"[ \t]+--?(?:[ \t]|\r?\n|$)", text[end : end + 5]) is not None
        or text[max(0, start - 2) : start].lstrip(" \t").startswith(",")
        or text[max(0, start - 1) : start] in (",", "^")
    ):
        return None
    given = text[start:end]
    style = _style(given)
    line_start = text.rfind("\n", 0, start) + 1
    near = max(line_start, start - 60)  # the regexes below read back at most this far
    before = text[near:start]
    word_before = _BEFORE_WORD.search(before)
    if word_before is not None:
        previous = word_before.group(1)
        if previous.lower() in _BEFORE_NOT_PATIENT:
            return None
        if (
            ascii_key(previous) in data.given
            and _style(previous) == style
            and before.endswith((previous + " ", previous + "\t"))
        ):
            return None  # "Martin Luther King": the name began at "Martin"
    if text[max(0, start - 3) : start].strip() == "&":
        return None
    if possessive:
        # "Sent Dickson, Amy's records ...": the family name before the comma.
        found = _family_before(text, before, near, start, end, style, data)
        if found is None:
            return _possessive(text, start, end, data)
        return None if not_a_patient(text, found) else found
    ambiguous = ascii_key(given) in data.words
    line_lead = _LINE_LEAD.fullmatch(text, line_start, start) is not None
    found = _family_after(text, start, end, style, data, line_lead, ambiguous)
    if found is None:
        found = _family_before(text, before, near, start, end, style, data)
    if found is None and _vocative(text, start, end):
        # "Good news, Maria!" (a given name that is also a word: see below).
        found = Person(start, end, (given,), False, addressed=True)
    if found is None and (line_lead or _sentence_start(text, start)):
        # "Jane:", "Jane, your ...", "Jane -- your ...", "Jane -" ending a line, also after
        # a sentence ("... last visit. Nicole, nothing to do unless ...").
        after = text[end : end + 6]
        if re.match(r":|, [a-z]|,[ \t]*(?:\r?\n|$)|[ \t]+--?(?:[ \t]|\r?\n|$)", after):
            found = Person(start, end, (given,), False)
    if found is None and subject:
        # A name only with health information near it ("Denise said the list ran ...").
        found = Person(start, end, (given,), False, needs_context=True)
    if found is None or not_a_patient(text, found):
        return None
    if line_lead and _ADDRESSED_AFTER.match(text, found.end):
        # "Jane Doe: ...", "Jane Doe - ...", or the name as a line of its own (the
        # heading or address block of a letter, a reminder's first line).
        found = replace(found, addressed=True)
    if " ".join(map(ascii_key, found.words[:2])) in data.not_people:
        return None  # "Eli Lilly", "Morgan Stanley"
    if ambiguous and len(found.words) == 1:
        # "Robin, we look forward ...", "Good news, Joy!": a word too, so a name only
        # with health information near it.
        return replace(found, addressed=False, needs_context=True)
    if len(found.words) < 2:
        return found
    # A middle initial or a line's start before ":" or "," says "name" ("Bill K. Green",
    # "Grace King: your refill ...").
    addressed = (line_lead and text[found.end : found.end + 1] in (":", ",")) or (
        _INITIAL.search(text, start, found.end) is not None
    )
    others = [ascii_key(w) for w in found.words if w != given]
    places = [w for w in others if w in _AFTER_NOT_PERSON]
    if not addressed and places:
        # "Rose Street", "on Jackson Street", "Marguerite Chen Wing" are places; "April
        # Green", "Dawn Hill", "Amy Wells", "Jody Law" may be people when health is near
        # (the surname is one of the most common, or usual and not after "on", "at" ...).
        at_place = word_before is not None and word_before.group(1).lower() in _PLACE_BEFORE
        common = all(w in data.common_surnames for w in places)
        usual = len(found.words) == 2 and all(w in data.usual_surnames for w in places)
        if (common and not (ambiguous and at_place)) or (usual and not (ambiguous or at_place)):
            return replace(found, needs_context=True)
        return None
    if ambiguous and not addressed and any(w in data.words for w in others):
        # "Bill Wood": two everyday words, a name only next to health information
        # ("Bill Wood was started on ...").
        return replace(found, needs_context=True)
    return found


def _family_after(
    text: str, start: int, end: int, style: str, data: NameData, line_lead: bool, ambiguous: bool
) -> Person | None:
    """ "Given [M.] [Middle] Family". After a given name that is no everyday word, the
    surname may be one the census lacks: trusted where the name starts a line, else
    only with health information near (`Person.needs_context`)."""
    unknown_ok = line_lead and not ambiguous
    words = [text[start:end]]
    position = name_end = end
    family_end = given_end = -1
    particles = initial = weak = False
    for m in _TOKEN.finditer(text, end, min(len(text), end + 60)):
        if m.start() != position:
            break
        word, dot = m.group(1), m.group(2)
        position = m.end()
        if word.endswith(("'s", "'S")):
            word, dot = word[:-2], "."  # "Jane Walsh's results": the name ends there
        if len(word) == 1 and word.isupper() and len(words) == 1:
            initial = True
            continue  # a middle initial
        if word in _PARTICLES and _particle(text, m.end()):
            particles = True
            continue  # "de la Cruz", "St. John"
        if _style(word) != style:
            break
        if word.lower() in NOT_NAMES:
            key = ascii_key(word)
            ends_name = not text[m.end() : m.end() + 2].lstrip(" \t")[:1].isupper()
            # "Kim Ward": a ward too; "Sally Patient": a census surname ending the name.
            surname_too = key in data.common_surnames or (
                key in data.surnames and not ambiguous and ends_name
            )
            if len(words) != 1 or not surname_too:
                break
            weak = True
        if style == "upper" and ascii_key(word) in _CREDENTIAL_KEYS:
            break  # "HOLLOWAY, PRIYA MD", "CALVIN DO": a credential, not the surname Do
        if ascii_key(word) in _SUFFIXES and family_end > 0:
            name_end = m.start(1) + len(word)
            break
        if _surname(word, data) or particles:
            # A capitalised word after "de los", "Van den" is the surname, known or not.
            family_end = name_end = m.start(1) + len(word)
        elif ascii_key(word) in data.given:
            given_end = m.start(1) + len(word)  # a middle name, or a surname that is one
        elif len(words) == 1 and _unknown_family(text, word, m.end(1), data, unknown_ok, initial):
            family_end = name_end = m.end(1)  # "Priya Raghunathan: ...", "Mark L. Dell'Orto"
        elif (
            len(words) == 1
            and not ambiguous
            and _unknown_family(text, word, m.end(1), data, True, True)
        ):
            family_end = name_end = m.end(1)  # "Nina Petrova tested positive ..."
            weak = True
        else:
            break
        words.append(word)
        if dot or len(words) == 3:
            break
    if family_end < 0 and len(words) == 2 and given_end > 0:
        # "Sagcan Aslan", "Nguyen Van Long": a surname that is a given name elsewhere,
        # trusted only with health information near.
        family_end = name_end = given_end
        weak = True
    if family_end < 0:
        return None
    # A surname the census lacks, or that is also a word, in the middle of a sentence:
    # a name only with health information near it.
    return Person(start, name_end, tuple(words), False, needs_context=weak)


def _sentence_start(text: str, start: int, clause: bool = False) -> bool:
    """Whether text[start] starts a line or a sentence (after ".", "!", "?" or ":"; not
    after a title's or an initial's dot: "Dr. Cheryl", "J. Cheryl"), or with `clause`
    a clause (after a comma too)."""
    i = start
    while i and text[i - 1] in ' \t"(':  # '"Sherry, the ...' quotes the start
        i -= 1
    if i == 0 or text[i - 1] in "\r\n:!?":
        return True
    if clause and text[i - 1] == ",":
        # Not after a sign-off or a greeting: "Thanks, Michael will cover ...".
        lead = text[max(0, i - 20) : i - 1].rsplit("\n", 1)[-1].strip().lower()
        return not lead.endswith(_SIGN_OFFS) and not lead.endswith(GREETINGS)
    if text[i - 1] != ".":
        return False
    word_start = i - 1
    while word_start and text[word_start - 1].isalpha():
        word_start -= 1
    word = text[word_start : i - 1]
    return len(word) > 1 and word.lower() not in TITLE_WORDS


def _after_auxiliary(text: str, start: int) -> bool:
    """Whether a question's auxiliary verb stands right before `start` ("why was Matthew
    charged", "has Priya taken")."""
    before = _BEFORE_WORD.search(text, max(0, start - 12), start)
    return (
        before is not None
        and before.group(1).lower() in _AUXILIARIES
        and text[before.end(1) : start] == " "
    )


def _possessive(text: str, start: int, end: int, data: NameData) -> Person | None:
    """A given name alone before "'s" and a lower-case word ("Aaliyah's well-child
    visit", "Tom's labs are back"): a name only with health information near it, and
    never a given name that is also a word ("Grace's", "Will's"). The caller has ruled
    out titles, roles and companies before it ("Dr. Lee's", "Ben & Jerry's")."""
    given = text[start:end]
    if (
        _style(given) != "title"
        or ascii_key(given) in data.words
        or not text[end + 3 : end + 4].islower()
    ):
        return None
    return Person(start, end, (given,), False, needs_context=True)


def addressed_at_line_start(text: str, start: int, data: NameData) -> Person | None:
    """ "Raj Malhotra, your A1C ...": two capitalised words (a middle initial allowed)
    that start a line before ", you"/": your", the last a census surname and neither a
    word phigate reads as no name ("Good Morning, your ...", "Dear Customer, your").
    Finds people whose given name the lists lack."""
    found = person(text, start, min_words=2, allow_comma=False)
    if found is None or len(found.words) != 2 or not _ADDRESSED_AFTER.match(text, found.end):
        return None
    first, last = found.words
    key = ascii_key(last)
    if (
        key not in data.surnames
        or key in data.words
        or key in _AFTER_NOT_PERSON
        or first.lower() in _BEFORE_NOT_PATIENT
        or first.lower() in TITLE_WORDS
        or first.lower() in GREETINGS
        or ascii_key(first) in data.words
        or not_a_patient(text, found)
    ):
        return None
    return replace(found, addressed=True)


def _vocative(text: str, start: int, end: int) -> bool:
    """A given name alone, called out between a comma and "!" (or a comma or a dash
    before a lower-case word, or the end of a sentence): "Good news, Maria! Your ...",
    "Remember, Maria, your ...", "Good news, Maria - your ...", "Thanks for choosing
    us, Maria. Your ...", "Your visit is confirmed, Maria." at a line's end)."""
    if text[max(0, start - 2) : start] != ", ":
        return False
    if re.match(r"!|,[ \t]+[a-z]|[ \t]+--?[ \t]+[a-z]", text[end : end + 6]) is not None:
        return True  # "Good news, Maria! ...", "Good news, Maria - your INR ..."
    # "Thank you for choosing us, Darius. Your next ...", not "Regards, Darius."
    before = text[max(0, start - 30) : start - 2].rsplit("\n", 1)[-1].strip().lower()
    return re.match(r"\.(?:[ \t]+[A-Z]|[ \t]*\n)", text[end : end + 3]) is not None and not (
        before.endswith(_SIGN_OFFS)
    )


def _particle(text: str, end: int) -> bool:
    """Whether the particle ending at `end` has a capitalised word after it ("Van Buren",
    "de la Cruz"), not "Joan Van" at a line's end or "Maria La," alone."""
    rest = text[end : end + 12].lstrip(" \t")
    following = rest.split(" ", 1)
    return rest[:1].isupper() or (len(following) == 2 and following[0] in PARTICLES)


def _unknown_family(
    text: str, word: str, end: int, data: NameData, line_lead: bool, initial: bool
) -> bool:
    """A surname the census lists lack, trusted where the shape says "name": after a
    middle initial ("Mark L. Dell'Orto"), with an apostrophe before a capital
    ("Dell'Orto"), or at a line's start right before ":" or "," or the line's end;
    never an everyday word."""
    key = ascii_key(word)
    if len(key) < 4 or key in data.words or key in _AFTER_NOT_PERSON:
        return False
    if initial or _APOSTROPHE_NAME.search(word):
        return True
    return line_lead and text[end : end + 1] in (":", ",", "\n", "\r", "")


def _family_before(
    text: str, before: str, offset: int, start: int, end: int, style: str, data: NameData
) -> Person | None:
    m = _FAMILY_FIRST.search(before)
    if m is None:
        return None
    family = m.group(1)
    initial = re.match(r" [A-Z]\.?(?![A-Za-z])", text[end : end + 3])
    # "Ward, Christina M.": a common surname that is also a word, with a middle initial.
    word_ok = initial is not None and ascii_key(family) in data.common_surnames
    if (
        _style(family) != style
        or (family.lower() in NOT_NAMES and not word_ok)
        or not _surname(family, data)
    ):
        return None
    name_end = end + (len(initial.group()) if initial else 0)
    return Person(offset + m.start(1), name_end, (family, text[start:end]), True)


def not_a_patient(text: str, found: Person) -> bool:
    """A provider ("Jane Doe, MD"), a place or organisation ("Rose Street", "King Jr. Day",
    "Jane Doe & Co"), or a signature after a sign-off."""
    line_start = text.rfind("\n", 0, found.start) + 1
    if _place_name(text, found):
        return True
    tail = text[found.end : found.end + 60]
    if _PAREN_AFTER.match(tail):
        # "Dr. Wilson (surgery), Dr. Diaz (oncology), Adam Allen (pathology)": a name with
        # its specialty in a list of doctors with theirs.
        line_end = text.find("\n", found.end)
        if _DOCTOR_WITH_ROLE.search(text, line_start, len(text) if line_end < 0 else line_end):
            return True
    role = _ROLE_AFTER.match(tail)
    role_words = role.group(1).lower().split() if role is not None else []
    # "Jane Doe, Endoscopy with Dr. Kim": the role words after "with" are another person's.
    for i, word in enumerate(role_words):
        if word in _ROLE_LINKS:
            role_words = role_words[:i]
            break
    # "Jane Doe, Dr. Wu reviewed ...", "Jane Doe, the podiatry office will ...": another
    # person or a place after the comma, not this one's job.
    if (
        role_words
        and role_words[0] not in ("dr", "doctor", "the", "your")
        and (not _ROLES.isdisjoint(role_words))
    ):
        # A job title after the name, or on the next line when the name is the whole of
        # its line: a signature or a staff list.
        whole_line = text[line_start : found.start].strip() == ""
        if role is not None and ("," in role.group(0) or whole_line):
            return True
    after = re.match(r"\.?[ \t]*,?[ \t]*(?:(?:Jr|Sr|II|III|IV)\.?,?[ \t]*)?([A-Za-z&]+)", tail)
    if after is not None:
        following = after.group(1)
        key = ascii_key(following)
        if following in ("Dr", "St") and "," in after.group(0):
            pass  # "Jane Doe, Dr. Wu reviewed ...": a title, not "Drive" or "Street"
        elif following == "&" or (
            _style(following) and (key in _CREDENTIAL_KEYS or key in _AFTER_NOT_PERSON)
        ):
            return True
    return text[line_start : found.start].strip() == "" and _signature_line(text, line_start)


def _place_name(text: str, found: Person) -> bool:
    """ "Rosalind Franklin Hall", "the Hattie Delgado Tower": a full name and a place word
    after it name a building or an organisation, when the middle word is no given name
    (so no "Mary Ann Hall") or a word before says "place" ("outside", "at")."""
    if len(found.words) != 3 or ascii_key(found.words[2]) not in _AFTER_NOT_PERSON:
        return False
    if ascii_key(found.words[1]) not in name_data().given:
        return True
    before = _BEFORE_WORD.search(text, max(0, found.start - 20), found.start)
    return before is not None and before.group(1).lower() in _PLACE_BEFORE
