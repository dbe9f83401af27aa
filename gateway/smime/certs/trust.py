"""Trust anchors and chain building for recipient certificates.

Chains are built and checked by `cryptography.x509.verification` (signatures,
CA constraints, validity of every certificate, name constraints). Its client
profile asks for clientAuth, so both extension policies are adjusted to
S/MIME: the recipient's own usages are checked in `gateway.smime.certs.profile`
with readable reasons, and an intermediate that restricts its extended key
usage must allow emailProtection.
"""

from __future__ import annotations

import datetime
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.smime.certs.files import NotCertificateError, read_objects
from gateway.smime.certs.profile import name_text

_EMAIL_EKUS = {ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}


def system_ca_file() -> Path | None:
    """The system's CA bundle (what OpenSSL uses; SSL_CERT_FILE overrides it)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@dataclass(frozen=True)
class TrustAnchors:
    """The CAs recipient certificates must chain to, or why there are none."""

    source: Path | None
    certificates: tuple[x509.Certificate, ...]
    error: str | None

    @classmethod
    def load(cls, source: Path | None, configured: bool) -> TrustAnchors:
        """Read `source`: the configured trust_file, else the system bundle (None: none found)."""
        if source is None:
            return cls(None, (), "no system CA bundle found; set smime.trust_file")
        setting = "smime.trust_file" if configured else "the system CA bundle"
        try:
            contents = read_objects(source.read_bytes())
        except OSError as exc:
            return cls(source, (), f"cannot read {setting} {source}: {exc.strerror}")
        except NotCertificateError as exc:
            return cls(source, (), f"{setting} {source} holds no CA certificates: {exc}")
        if not contents.certificates:
            return cls(source, (), f"{setting} {source} holds no CA certificates")
        return cls(source, contents.certificates, None)


@dataclass(frozen=True)
class ChainResult:
    """The outcome of building one certificate's chain at `checked_at`.

    A chain found holds at any time inside every certificate's validity
    (`valid_from`..`valid_until`): signatures do not change with time.
    """

    chain: tuple[x509.Certificate, ...]
    error: str | None
    checked_at: datetime.datetime
    valid_from: datetime.datetime
    valid_until: datetime.datetime

    def holds_at(self, now: datetime.datetime) -> bool:
        if self.error is None:
            return self.valid_from <= now <= self.valid_until
        # A failure is retried after an hour: a CA certificate may have become valid.
        return abs(now - self.checked_at) < datetime.timedelta(hours=1)


def _intermediate_eku(
    _policy: verification.Policy,
    _cert: x509.Certificate,
    eku: x509.ExtendedKeyUsage | None,
) -> None:
    if eku is not None and not _EMAIL_EKUS & set(eku):
        raise ValueError("a CA in its chain is restricted to other uses than e-mail protection")


def _policies() -> tuple[verification.ExtensionPolicy, verification.ExtensionPolicy]:
    agnostic = verification.Criticality.AGNOSTIC
    ca_policy = verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, agnostic, _intermediate_eku
    )
    ee_policy = (
        verification.ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.ExtendedKeyUsage, agnostic, None)
        .may_be_present(x509.KeyUsage, agnostic, None)
        .may_be_present(x509.SubjectAlternativeName, agnostic, None)
    )
    return ca_policy, ee_policy


_CA_POLICY, _EE_POLICY = _policies()
_ENCOUNTERED = re.compile(r"\s*\(encountered processing <Certificate.*$", re.DOTALL)


class ChainBuilder:
    """Builds chains to `anchors` through the CA certificates of the store."""

    def __init__(self, anchors: TrustAnchors, intermediates: list[x509.Certificate]) -> None:
        self._anchors = anchors
        self._store = verification.Store(list(anchors.certificates)) if not anchors.error else None
        self._intermediates = intermediates

    def build(self, cert: x509.Certificate, now: datetime.datetime) -> ChainResult:
        if self._store is None:
            return ChainResult((), self._anchors.error, now, now, now)
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(now)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        try:
            chain = tuple(verifier.verify(cert, self._intermediates).chain)
        except verification.VerificationError as exc:
            return ChainResult((), _reason(cert, str(exc)), now, now, now)
        return ChainResult(
            chain,
            None,
            now,
            max(c.not_valid_before_utc for c in chain),
            min(c.not_valid_after_utc for c in chain),
        )


def _reason(cert: x509.Certificate, message: str) -> str:
    text = _ENCOUNTERED.sub("", message).removeprefix("validation failed: ")
    if "all candidates exhausted with no interior errors" in text:
        return (
            f"it does not chain to a trusted CA (its issuer {name_text(cert.issuer)} "
            "is not trusted, and no CA certificate in the certificate directory leads to one)"
        )
    if "not valid at validation time" in text:
        return "a CA certificate in its chain is expired or not yet valid"
    _, _, validator_error = text.partition("Python extension validator failed: ValueError: ")
    return validator_error or f"its chain is not valid: {text}"
