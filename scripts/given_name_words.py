#!/usr/bin/env python3
"""Write gateway/inspect/detect/data/given_name_words.txt: given names that are also
lower-case entries of an English dictionary ("grant", "hunter", "mark").

The dictionary is Debian's wamerican (/usr/share/dict/american-english, SCOWL), which
lists proper nouns capitalised and common words in lower case, so a given name found
there in lower case has an everyday sense too. The detector reads the text file; the
package is needed only to regenerate it:
    apt-get install wamerican
    .venv/bin/python scripts/given_name_words.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.inspect.detect.namedata import name_data

DICTIONARY = Path("/usr/share/dict/american-english")
OUT = Path(__file__).resolve().parent.parent / "gateway/inspect/detect/data/given_name_words.txt"
HEADER = """\
# Given names that are also lower-case entries of an English dictionary (Debian's
# wamerican, SCOWL): at a sentence's start their capital says nothing ("Grant reports
# are due ..."). Written by scripts/given_name_words.py; do not edit by hand.
"""


def main() -> int:
    if not DICTIONARY.exists():
        print(f"{DICTIONARY} is missing: apt-get install wamerican", file=sys.stderr)
        return 1
    lines = DICTIONARY.read_text(encoding="utf-8").splitlines()
    words = {w for w in lines if w.isalpha() and w.islower()}
    given = sorted(g.lower() for g in name_data().given if g.lower() in words)
    OUT.write_text(HEADER + "\n".join(given) + "\n", encoding="utf-8")
    print(f"{len(given)} given names that are words -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
