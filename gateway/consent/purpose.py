"""The purposes consent is given for: marketing, and its admin-defined sub-purposes
("marketing/<sub>"); and the purpose a message's consent is checked for, named by
the sending system in the purpose header."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from gateway.config import ConsentConfig

MARKETING = "marketing"
# A sub-purpose's name, as configured under consent.purposes and written after "marketing/".
SUB_PURPOSE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


class UnknownPurpose(ValueError):
    """The purpose header names no configured sub-purpose; phrased for an SMTP reply."""


def is_marketing(purpose: str) -> bool:
    return purpose == MARKETING or purpose.startswith(MARKETING + "/")


def known_purposes(config: ConsentConfig) -> list[str]:
    """The purposes a record may name: marketing, and marketing/<sub> for every
    configured sub-purpose."""
    subs = sorted(name for name in config.purposes if SUB_PURPOSE.fullmatch(name))
    return [MARKETING, *(f"{MARKETING}/{name}" for name in subs)]


@dataclass(frozen=True)
class PurposeHeader:
    """The header a sending system names a marketing sub-purpose in, and the purposes
    it may name (the configured ones)."""

    name: str
    configured: Collection[str]

    @classmethod
    def of(cls, config: ConsentConfig) -> PurposeHeader:
        return cls(config.purpose_header, known_purposes(config))

    def purpose(self, category: str, value: str | None) -> str:
        """`marketing/<sub>` when a marketing message names a configured sub-purpose
        in the header (`value`), else the category.

        Any other value is refused (UnknownPurpose), and never kept: the header is
        the client's free text, and could carry anything.
        """
        if category != MARKETING or value is None or not value.strip():
            return category
        purpose = f"{MARKETING}/{' '.join(value.split()).lower()}"
        if purpose in self.configured:
            return purpose
        subs = sorted(p.removeprefix(MARKETING + "/") for p in self.configured if p != MARKETING)
        raise UnknownPurpose(
            f"{self.name} names a marketing purpose that is not configured; configured: "
            f"{', '.join(subs) or 'none'} (consent.purposes in phigate.yaml)"
        )
