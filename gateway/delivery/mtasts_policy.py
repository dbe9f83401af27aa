"""MTA-STS records and policies (RFC 8461 §3.1, §3.2, §4.1): parsing and MX matching.

Pure functions, no I/O. Parsing follows the RFC's grammar where a slip by the
publishing domain would not matter for security, and is lenient where strictness
would only turn an enforced policy into none at all (blank lines, surrounding
spaces, a trailing dot on an MX pattern, a max_age above the RFC's maximum).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_AGE_LIMIT",
    "MODES",
    "PolicyError",
    "StsPolicy",
    "is_domain_name",
    "parse_policy",
    "parse_txt_records",
]

MODES = ("enforce", "testing", "none")
# RFC 8461 §3.2: max_age is at most 31557600 seconds (about a year).
MAX_AGE_LIMIT = 31_557_600

_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_MAX_AGE_RE = re.compile(r"[0-9]{1,10}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DOMAIN_MAX = 253
# TXT record (§3.1): "v=STSv1" first, then ";"-separated key=value fields.
_TXT_START_RE = re.compile(r"v=STSv1[ \t]*;")
_TXT_ID_RE = re.compile(r"[A-Za-z0-9]{1,32}")
_TXT_VALUE_RE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")


class PolicyError(ValueError):
    """A record or policy that does not follow RFC 8461; the message says why."""


@dataclass(frozen=True)
class StsPolicy:
    """A domain's MTA-STS policy, fetched under the TXT record ``id``."""

    mode: str  # "enforce", "testing" or "none"
    mx: tuple[str, ...]  # lower-case patterns, "*." for one leftmost label
    max_age: int  # seconds the policy may be cached
    id: str  # the TXT record id it was fetched for
    text: str  # the policy as served, kept for the on-disk cache

    def matches(self, host: str) -> bool:
        """True if the MX host name matches one of the policy's patterns (§4.1)."""
        host = host.strip().rstrip(".").lower()
        if not host:
            return False
        first, _, parent = host.partition(".")
        for pattern in self.mx:
            if pattern.startswith("*."):
                # A wildcard stands for exactly one label: not the bare parent
                # domain, and not two labels.
                if first and parent == pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False


def parse_policy(text: str, policy_id: str) -> StsPolicy:
    """Parse a policy file (§3.2); raises PolicyError saying what is wrong."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r").strip(" \t")
        if not line:
            continue
        key, colon, value = line.partition(":")
        key, value = key.rstrip(" \t"), value.strip(" \t")
        if not colon or not _KEY_RE.fullmatch(key):
            raise PolicyError(f"line {number} is not a 'key: value' field")
        if not value:
            raise PolicyError(f"line {number} ({key}) has no value")
        if key == "mx":
            mx.append(_mx_pattern(value, number))
        else:
            # §3.2: of a repeated field other than mx, the first one counts.
            fields.setdefault(key, value)

    version = fields.get("version")
    if version is None:
        raise PolicyError("the version field is missing")
    if version != "STSv1":
        raise PolicyError(f"version must be STSv1, not {version!a}")
    mode = fields.get("mode")
    if mode is None:
        raise PolicyError("the mode field is missing")
    if mode not in MODES:
        raise PolicyError(f"mode must be enforce, testing or none, not {mode!a}")
    max_age_text = fields.get("max_age")
    if max_age_text is None:
        raise PolicyError("the max_age field is missing")
    if not _MAX_AGE_RE.fullmatch(max_age_text):
        raise PolicyError(f"max_age must be 1 to 10 digits, not {max_age_text!a}")
    if not mx and mode != "none":
        raise PolicyError(f"a policy in mode {mode} needs at least one mx field")
    return StsPolicy(
        mode=mode,
        mx=tuple(dict.fromkeys(mx)),
        # Capped rather than refused: a domain asking for too long a lifetime
        # still wants its policy applied.
        max_age=min(int(max_age_text), MAX_AGE_LIMIT),
        id=policy_id,
        text=text,
    )


def parse_txt_records(records: list[str]) -> str | None:
    """The policy id from a domain's ``_mta-sts`` TXT records (§3.1), or None.

    Records not starting with "v=STSv1;" are someone else's and ignored; with
    none or several of ours, or a malformed one, the domain has no available
    policy record.
    """
    ours = [record for record in records if _TXT_START_RE.match(record)]
    if len(ours) != 1:
        return None
    try:
        return _txt_id(ours[0])
    except PolicyError:
        return None


def _txt_id(record: str) -> str:
    """The id of one "v=STSv1; id=...;" record; raises PolicyError if malformed."""
    policy_id: str | None = None
    _, _, rest = record.partition(";")
    parts = [part.strip(" \t") for part in rest.split(";")]
    if parts and not parts[-1]:
        parts.pop()  # the optional trailing ";"
    for part in parts:
        key, equals, value = part.partition("=")
        if not equals or not _KEY_RE.fullmatch(key) or not _TXT_VALUE_RE.fullmatch(value):
            raise PolicyError(f"malformed field {part!a}")
        if key == "id" and policy_id is None:
            if not _TXT_ID_RE.fullmatch(value):
                raise PolicyError(f"id must be 1 to 32 letters or digits, not {value!a}")
            policy_id = value
    if policy_id is None:
        raise PolicyError("the id field is missing")
    return policy_id


def is_domain_name(name: str) -> bool:
    """True for a lower-case host name of letter-digit-hyphen labels (A-labels for IDNs)."""
    return len(name) <= _DOMAIN_MAX and _DOMAIN_RE.fullmatch(name) is not None


def _mx_pattern(value: str, number: int) -> str:
    pattern = value.lower().rstrip(".")
    if not is_domain_name(pattern.removeprefix("*.")):
        raise PolicyError(f"line {number}: {value!a} is not a host name or *.domain pattern")
    return pattern
