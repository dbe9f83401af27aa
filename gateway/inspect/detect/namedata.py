"""Name data for finding people in free text: given names, surnames, words that are both.

Given names and surnames come from the US Census Bureau's 1990 frequency lists
as shipped by the PyPI package `names` (MIT; `dist.male.first`,
`dist.female.first`, `dist.all.last`: name, frequency %, cumulative %, rank),
read with importlib.resources once per process. The given names are merged
with `data/first_names.txt` (the first names of every Latin-script Faker
locale that are no dictionary word), which adds names the 1990 census lists
lack (Priya, Chizoba, Estiven, Sağcan). `data/name_words.txt` lists names that
are also everyday words (Hope, Will, May, King, Blessing): they need more
evidence than a bare capital letter. `data/given_name_words.txt` lists every
given name that is also a lower-case dictionary word (Grant, Hunter, Mark): a
capital at a sentence's start says nothing about them. scripts/name_lexicon.py
writes both generated files.
`data/not_people.txt` lists companies and public figures whose names read as
a given name and a surname (Eli Lilly, Morgan Stanley).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

from gateway.inspect.detect.patterns import lexicon

# Surnames down to this census rank (of 88,799). Past it the list is one-in-ten-million
# names, several of them words ("Patient" is rank 69,269); a surname is only ever
# looked up after a known given name, or before one in "Family, Given" order.
SURNAME_RANK_LIMIT = 88_799
# The most common surnames: a word that is also a place or a common word ("Hill",
# "Green", "Ward") may still be a surname after a given name, given health nearby.
COMMON_SURNAME_RANK = 1_000
# Usual surnames: "Jody Law", "Joan Street" may be people when health is near, unless the
# words before say "place" ("on Jackson Street").
USUAL_SURNAME_RANK = 2_500
# Given names down to this rank of each census list (1,219 male, 4,275 female): all.
GIVEN_RANK_LIMIT = 4_275
# Given names shorter than this are left to labels and salutations: "Al", "Ed", "Jo"
# start too many words ("Also", "Education") to be searched for as literals.
MIN_GIVEN_LENGTH = 3


@dataclass(frozen=True)
class NameData:
    given: frozenset[str]  # upper case, ASCII letters only
    given_us: frozenset[str]  # the census ones: also searched for in capitals (SMITH, JOHN)
    surnames: frozenset[str]  # upper case, ASCII letters only (O'BRIEN is OBRIEN)
    common_surnames: frozenset[str]  # the COMMON_SURNAME_RANK most frequent
    usual_surnames: frozenset[str]  # the USUAL_SURNAME_RANK most frequent
    words: frozenset[str]  # upper case: names that are also everyday words
    dictionary_words: frozenset[str]  # upper case: given names with a dictionary sense
    # "GIVEN FAMILY" keys of companies and public figures that look like a person.
    not_people: frozenset[str]


def ascii_key(word: str) -> str:
    """The lookup key of a name word: ASCII letters, upper case ("O'Brien" -> "OBRIEN",
    "Zoë" -> "ZOE")."""
    if word.isascii() and word.isalpha():  # nearly every word: no folding to do
        return word.upper()
    folded = unicodedata.normalize("NFKD", word)
    return "".join(c for c in folded if c.isascii() and c.isalpha()).upper()


def _census(filename: str, rank_limit: int) -> list[str]:
    text = resources.files("names").joinpath(filename).read_text(encoding="ascii")
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4 and int(fields[3]) <= rank_limit:
            out.append(fields[0])
    return out


def census_given_names() -> set[str]:
    """The census lists' given names (upper case), down to GIVEN_RANK_LIMIT."""
    return {
        n
        for filename in ("dist.male.first", "dist.female.first")
        for n in _census(filename, GIVEN_RANK_LIMIT)
        if len(n) >= MIN_GIVEN_LENGTH
    }


@cache
def name_data() -> NameData:
    census = census_given_names()
    given = {k for k in map(ascii_key, lexicon("first_names")) if len(k) >= MIN_GIVEN_LENGTH}
    return NameData(
        given=frozenset(given | census),
        given_us=frozenset(census),
        surnames=frozenset(_census("dist.all.last", SURNAME_RANK_LIMIT)),
        common_surnames=frozenset(_census("dist.all.last", COMMON_SURNAME_RANK)),
        usual_surnames=frozenset(_census("dist.all.last", USUAL_SURNAME_RANK)),
        words=frozenset(map(ascii_key, lexicon("name_words"))),
        dictionary_words=frozenset(map(ascii_key, lexicon("given_name_words"))),
        not_people=frozenset(
            " ".join(map(ascii_key, line.split())) for line in lexicon("not_people")
        ),
    )
