"""Checks a candidate must pass after the pattern matched: checksums, code lists, formats.

Every function here takes the matched text and returns a bool; none raises
on odd input (an exception message could carry the value).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

from gateway.inspect.detect.matcher import DetectionError

_DIGITS = frozenset("0123456789")


def ssn(value: str) -> bool:
    """AAA-GG-SSSS (dashes, spaces or none): area not 000, 666 or 9xx, group not 00,
    serial not 0000 (the SSA's never-issued ranges)."""
    if len(value) == 11:
        if value[3] != value[6] or value[3] not in "- ":
            return False  # mixed separators: "123-45 6789" is not an SSN
        value = value[:3] + value[4:6] + value[7:]
    if len(value) != 9 or not _DIGITS.issuperset(value):
        return False
    area, group, serial = value[:3], value[3:5], value[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def luhn(digits: str) -> bool:
    if not digits or not _DIGITS.issuperset(digits):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def npi(value: str) -> bool:
    """10 digits starting 1 or 2, Luhn check digit over the ISO prefix 80840 + NPI."""
    return len(value) == 10 and value[0] in "12" and luhn("80840" + value)


def dea(value: str) -> bool:
    """Two letters and seven digits: (d1+d3+d5) + 2*(d2+d4+d6) ends in d7."""
    if len(value) != 9 or not value[:2].isascii() or not _DIGITS.issuperset(value[2:]):
        return False
    d = [ord(c) - 48 for c in value[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


def mbi(value: str) -> bool:
    """The pattern checks each position; here only that dashes are both there or both not."""
    if len(value) == 11:
        return "-" not in value
    return len(value) == 13 and value[4] == "-" and value[8] == "-"


def phone_edges(text: str, start: int, end: int) -> bool:
    """Not a piece of a longer number or word ("x(555) 234-5678", "555-234-5678-9")."""
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "+-./"):
        return False
    return not (end < len(text) and text[end] in "-./" and text[end + 1 : end + 2].isdigit())


def numeric_date(value: str) -> bool:
    """01/02/1980 style: the same separator twice; dots only with a four-digit year."""
    separators = [c for c in value if c in "/.-"]
    if len(separators) != 2 or separators[0] != separators[1]:
        return False
    return separators[0] != "." or len(value.rsplit(".", 1)[1]) == 4


def id_value(value: str) -> bool:
    """A labelled identifier's value: at least five digits, not just a year or date."""
    digits = sum(c in _DIGITS for c in value)
    return digits >= 5 and not (len(value) <= 7 and value[:2] in ("19", "20") and "-" in value)


# ---------------------------------------------------------------- ICD-10-CM


class _IcdCodes:
    """The ICD-10-CM code list shipped by simple-icd-10-cm, read once on first use.

    Only its data file is read (importing the package would parse a 40 MB XML).
    Lines are chapter numbers, block ranges ("A00-A09") and codes without the dot.
    """

    def __init__(self) -> None:
        self._codes: frozenset[str] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def data_file() -> Path | None:
        spec = importlib.util.find_spec("simple_icd_10_cm")  # locates, does not import
        if spec is None or not spec.submodule_search_locations:
            return None
        for location in spec.submodule_search_locations:
            files = sorted(Path(location, "data").glob("code-list-*.txt"))
            if files:
                return files[-1]
        return None

    def codes(self) -> frozenset[str]:
        if self._codes is None:
            with self._lock:
                if self._codes is None:
                    self._codes = self._load()
        return self._codes

    def _load(self) -> frozenset[str]:
        path = self.data_file()
        if path is None:
            raise DetectionError(
                "the ICD-10-CM code list is missing: install simple-icd-10-cm (a dependency)"
            )
        codes = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            code = line.strip()
            if 3 <= len(code) <= 7 and code[0].isalpha() and code[1].isdigit():
                codes.add(code)
        return frozenset(codes)


ICD10 = _IcdCodes()


def icd10(value: str) -> bool:
    """A code of the official ICD-10-CM list, with or without its dot."""
    code = value.replace(".", "", 1)
    return code in ICD10.codes()
