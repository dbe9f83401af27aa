"""Revocation from imported CRLs: a certificate a CRL lists is never encrypted to.

phigate does not fetch CRLs; an admin imports them (`phigate certs import`).
A CRL counts once its signature verifies with the certificate of the CA named
as its issuer (a trust anchor or a CA certificate of the store). Revocations
stay in force after the CRL's nextUpdate (a stale CRL is reported, not ignored).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from gateway.smime.certs.files import crl_fingerprint
from gateway.smime.certs.profile import name_text


@dataclass(frozen=True)
class CrlInfo:
    fingerprint: str
    issuer: str
    last_update: datetime.datetime
    next_update: datetime.datetime | None
    revoked: int
    files: tuple[str, ...]
    # Why it is not used (its issuer is unknown or the signature fails); None: in force.
    problem: str | None

    def stale(self, now: datetime.datetime) -> bool:
        return self.next_update is not None and self.next_update < now

    def as_json(self, now: datetime.datetime) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "issuer": self.issuer,
            "last_update": self.last_update.isoformat(),
            "next_update": self.next_update.isoformat() if self.next_update else None,
            "revoked": self.revoked,
            "stale": self.stale(now),
            "files": list(self.files),
            "status": self.problem or "in force",
        }


class Revocations:
    """The serial numbers revoked by the verified CRLs, by issuer name."""

    def __init__(
        self,
        crls: Iterable[tuple[x509.CertificateRevocationList, tuple[str, ...]]],
        issuers: Iterable[x509.Certificate],
    ) -> None:
        by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        for cert in issuers:
            by_subject.setdefault(cert.subject, []).append(cert)
        self._revoked: dict[tuple[x509.Name, int], datetime.datetime] = {}
        infos = []
        for crl, files in crls:
            problem = _signature_problem(crl, by_subject.get(crl.issuer, []))
            if problem is None:
                for entry in crl:
                    self._revoked[(crl.issuer, entry.serial_number)] = entry.revocation_date_utc
            infos.append(
                CrlInfo(
                    fingerprint=crl_fingerprint(crl),
                    issuer=name_text(crl.issuer),
                    last_update=crl.last_update_utc,
                    next_update=crl.next_update_utc,
                    revoked=len(crl),
                    files=files,
                    problem=problem,
                )
            )
        self.crls = tuple(infos)

    def reason(self, cert: x509.Certificate) -> str | None:
        """Why `cert` is revoked, or None."""
        when = self._revoked.get((cert.issuer, cert.serial_number))
        if when is None:
            return None
        return f"revoked on {when:%Y-%m-%d} (CRL of {name_text(cert.issuer)})"


def _signature_problem(
    crl: x509.CertificateRevocationList, candidates: list[x509.Certificate]
) -> str | None:
    if not candidates:
        return (
            "not used: its issuer is neither trusted nor in the certificate directory "
            "(import the CA certificate that signed it)"
        )
    for issuer in candidates:
        try:
            if crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                return None
        except (TypeError, ValueError):  # a key type CRLs cannot be signed with
            continue
    return "not used: its signature does not verify with its issuer's certificate"
