#!/usr/bin/env python3
"""Write the given-name data files of gateway/inspect/detect/data/:

- first_names.txt: the first names of every Faker locale that writes names in Latin
  script (Faker's lists come from national name statistics: the US, Mexico, Colombia,
  Nigeria, India, Vietnam, Turkey, Romania ...) that the 1990 US census lists (package
  `names`) lack, "Chizoba", "Estiven", "Sağcan", and that are no lower-case entry of
  an English dictionary: Faker's lists hold "Or", "Can", "Colon" and "Said", which
  would start names all over ordinary text. Virtue names ("Blessing", "Honor") are
  added back by hand (VIRTUE_NAMES).
- given_name_words.txt: every given name that is also a lower-case dictionary entry
  ("grant", "hunter", "mark"): a capital at a sentence's start says nothing about
  them.

The dictionary is Debian's wamerican (/usr/share/dict/american-english, SCOWL), which
lists proper nouns capitalised and common words in lower case. The detector reads
the text files; Faker (the `test` extra) and the package are needed only to
regenerate them:
    apt-get install wamerican
    .venv/bin/python scripts/name_lexicon.py
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import unicodedata
from pathlib import Path

import faker.providers.person

from gateway.inspect.detect.names import NOT_NAMES

DICTIONARY = Path("/usr/share/dict/american-english")
DATA = Path(__file__).resolve().parent.parent / "gateway/inspect/detect/data"
# Shorter names start too many words to be searched for ("Al", "Jo": see namedata).
MIN_LENGTH = 3
# A locale counts when this share of its first names is in Latin script (az_AZ, uz_UZ
# mix in a few Cyrillic ones, which are dropped).
LATIN_SHARE = 0.8
# Virtue names of West African and American naming custom, and other word names, that
# are words too: given names all the same, listed in data/name_words.txt as well (they
# need more evidence).
VIRTUE_NAMES = frozenset(
    {"blessing", "comfort", "favour", "favor", "felicity", "honor", "honour", "miracle",
     "purity", "serenity", "treasure",
     # Word names given in the US since the 1990 census (Social Security's baby-name
     # lists): Journey, River, Legend ...
     "haven", "journey", "legend", "lucky", "lyric", "ocean", "rain", "river", "sky", "storm",
     "story"}
)  # fmt: skip
FIRST_NAMES_HEADER = """\
# Given names (lower case) that the 1990 US census lists lack, from the first-name
# lists of every Faker locale (MIT licence) that writes names in Latin script, less
# lower-case English dictionary words.
# Written by scripts/name_lexicon.py; do not edit by hand.
"""
NAME_WORDS_HEADER = """\
# Given names that are also lower-case entries of an English dictionary (Debian's
# wamerican, SCOWL): at a sentence's start their capital says nothing ("Grant reports
# are due ..."). Written by scripts/name_lexicon.py; do not edit by hand.
"""


def _latin(name: str) -> bool:
    return all(unicodedata.name(c, "").startswith("LATIN") for c in name if c not in " '-")


def _locale_first_names(locale: str) -> set[str]:
    provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
    names: set[str] = set()
    for attribute in ("first_names", "first_names_male", "first_names_female"):
        owner = next((k for k in provider.__mro__ if attribute in k.__dict__), None)
        value = owner.__dict__[attribute] if owner is not None else ()
        if isinstance(value, (list, tuple, set, dict)):
            names.update(value)
    return names


def faker_first_names() -> set[str]:
    """Lower-case single-word Latin-script first names of every Latin-script locale."""
    out: set[str] = set()
    for module in pkgutil.iter_modules(faker.providers.person.__path__):
        names = _locale_first_names(module.name)
        latin = {n for n in names if _latin(n)}
        if names and len(latin) >= LATIN_SHARE * len(names):
            # One word each: "Maria Eduarda" gives its two names elsewhere in the list.
            out.update(n.lower() for n in latin if len(n) >= MIN_LENGTH and n.isalpha())
    return out - NOT_NAMES


def main() -> int:
    if not DICTIONARY.exists():
        print(f"{DICTIONARY} is missing: apt-get install wamerican", file=sys.stderr)
        return 1
    # Imported here: name_data() reads first_names.txt, which is rewritten first.
    from gateway.inspect.detect import namedata

    census = {n.lower() for n in namedata.census_given_names()}
    lines = DICTIONARY.read_text(encoding="utf-8").splitlines()
    words = {w for w in lines if w.isalpha() and w.islower()}
    first = sorted({n for n in faker_first_names() - census if n not in words} | VIRTUE_NAMES)
    (DATA / "first_names.txt").write_text(FIRST_NAMES_HEADER + "\n".join(first) + "\n", "utf-8")
    given = {namedata.ascii_key(n).lower() for n in [*first, *census]}
    name_words = sorted(given & words)
    (DATA / "given_name_words.txt").write_text(
        NAME_WORDS_HEADER + "\n".join(name_words) + "\n", "utf-8"
    )
    print(f"{len(first)} first names, {len(name_words)} of all given names are words -> {DATA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
