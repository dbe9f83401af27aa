"""What enhanced status codes stand for (RFC 3463), to name a deferral's or bounce's reason.

A report names reasons by code, never by the remote server's reply text,
which may quote the recipient's address.
"""

from __future__ import annotations

_CLASSES = {"2": "success", "4": "temporary", "5": "permanent"}
_SUBJECTS = {
    "0": "other",
    "1": "addressing",
    "2": "mailbox",
    "3": "mail system",
    "4": "network or routing",
    "5": "mail delivery protocol",
    "6": "message content or media",
    "7": "security or policy",
}
_DETAILS = {
    "1.1": "bad destination mailbox address",
    "1.2": "bad destination system address",
    "1.3": "bad destination mailbox address syntax",
    "1.10": "recipient address has null MX",
    "2.1": "mailbox disabled",
    "2.2": "mailbox full",
    "2.3": "message length exceeds administrative limit",
    "3.0": "other mail system problem",
    "3.4": "message too big for system",
    "4.1": "no answer from host",
    "4.2": "bad connection",
    "4.3": "directory server failure (DNS)",
    "4.4": "unable to route",
    "4.7": "delivery time expired",
    "5.0": "other protocol status",
    "7.0": "other security or policy status",
    "7.1": "delivery not authorized, message refused",
    "7.5": "cryptographic failure (required TLS or encryption could not be had)",
    "7.26": "multiple authentication checks failed",
}


def meaning(status: str) -> str:
    """Words for an enhanced status code such as 4.4.1; the class and subject when
    the detail is not one listed here."""
    klass, _, rest = status.partition(".")
    subject = rest.partition(".")[0]
    known = _DETAILS.get(rest)
    if known is not None:
        return known
    if klass in _CLASSES and subject in _SUBJECTS:
        return f"{_CLASSES[klass]}: {_SUBJECTS[subject]}"
    return "not an enhanced status code"
