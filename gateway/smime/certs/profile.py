"""What a certificate says about itself: addresses, key, usages, S/MIME capabilities.

These facts do not depend on time or on other certificates, so they are worked
out once per certificate; the chain, dates and revocation are the store's job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.mail.addresses import AddressError, normalise_domain
from gateway.smime.certs.files import fingerprint

SMIME_CAPABILITIES = x509.ObjectIdentifier("1.2.840.113549.1.9.15")
MIN_RSA_BITS = 2048

_KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def name_text(name: x509.Name) -> str:
    """A distinguished name as RFC 4514 text, with emailAddress spelled out."""
    return name.rfc4514_string({NameOID.EMAIL_ADDRESS: "emailAddress"})


def address_key(address: str) -> str:
    """The form addresses are compared in: local part as written, domain case-insensitive."""
    local, _, domain = address.strip().rpartition("@")
    if domain.isascii():
        return f"{local}@{domain.rstrip('.').lower()}"
    try:
        domain = normalise_domain(domain)
    except AddressError:
        domain = domain.lower()
    return f"{local}@{domain}"


@dataclass(frozen=True)
class CertificateFacts:
    """One certificate and everything about it that holds at any time."""

    cert: x509.Certificate
    fingerprint: str
    is_ca: bool
    addresses: tuple[str, ...]
    key: str
    key_usage: tuple[str, ...] | None
    extended_key_usage: tuple[str, ...] | None
    capabilities: tuple[str, ...]
    # Why it can never be encrypted to (key, usages, no address); empty when it can.
    problems: tuple[str, ...]

    @property
    def subject(self) -> str:
        return name_text(self.cert.subject)

    @property
    def issuer(self) -> str:
        return name_text(self.cert.issuer)

    @property
    def offers_gcm(self) -> bool:
        return "aes256_gcm" in self.capabilities


def examine(cert: x509.Certificate) -> CertificateFacts:
    try:
        extensions = cert.extensions
    except ValueError as exc:
        return CertificateFacts(
            cert=cert,
            fingerprint=fingerprint(cert),
            is_ca=False,
            addresses=(),
            key=describe_key(cert),
            key_usage=None,
            extended_key_usage=None,
            capabilities=(),
            problems=(f"its extensions cannot be parsed ({exc})",),
        )
    basic = _extension(extensions, x509.BasicConstraints)
    key_usage = _extension(extensions, x509.KeyUsage)
    eku = _extension(extensions, x509.ExtendedKeyUsage)
    facts = CertificateFacts(
        cert=cert,
        fingerprint=fingerprint(cert),
        is_ca=bool(basic and basic.ca),
        addresses=_addresses(cert, extensions),
        key=describe_key(cert),
        key_usage=_usage_names(key_usage) if key_usage else None,
        extended_key_usage=tuple(_eku_name(oid) for oid in eku) if eku else None,
        capabilities=_capabilities(extensions),
        problems=(),
    )
    return replace(facts, problems=_problems(facts))


def describe_key(cert: x509.Certificate) -> str:
    try:
        key = cert.public_key()
    except (ValueError, TypeError):  # unsupported algorithm
        return "unsupported key type"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def _problems(facts: CertificateFacts) -> tuple[str, ...]:
    if facts.is_ca:
        return ("it is a CA certificate (kept to build chains, not a recipient)",)
    problems = []
    if not facts.key.startswith("RSA "):
        problems.append(f"its key is {facts.key}: encryption here needs an RSA key")
    elif int(facts.key.split()[1]) < MIN_RSA_BITS:
        problems.append(f"its {facts.key} key is too small (at least {MIN_RSA_BITS} bits)")
    if facts.key_usage is not None and "key_encipherment" not in facts.key_usage:
        allowed = ", ".join(facts.key_usage) or "nothing"
        problems.append(f"its key usage does not allow key_encipherment (only {allowed})")
    if facts.extended_key_usage is not None and not (
        {"emailProtection", "anyExtendedKeyUsage"} & set(facts.extended_key_usage)
    ):
        listed = ", ".join(facts.extended_key_usage)
        problems.append(f"its extended key usage does not include emailProtection ({listed})")
    if not facts.addresses:
        problems.append(
            "it names no e-mail address (rfc822Name in subjectAltName, or emailAddress "
            "in the subject when there is no subjectAltName)"
        )
    return tuple(problems)


_E = TypeVar("_E", bound=x509.ExtensionType)


def _extension(extensions: x509.Extensions, kind: type[_E]) -> _E | None:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _addresses(cert: x509.Certificate, extensions: x509.Extensions) -> tuple[str, ...]:
    san = _extension(extensions, x509.SubjectAlternativeName)
    if san is not None:
        found = san.get_values_for_type(x509.RFC822Name)
    else:
        found = [
            str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
        ]
    return tuple(dict.fromkeys(address_key(a) for a in found if "@" in a))


def _usage_names(usage: x509.KeyUsage) -> tuple[str, ...]:
    return tuple(name for name in _KEY_USAGES if getattr(usage, name))


def _eku_name(oid: x509.ObjectIdentifier) -> str:
    names = {
        ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
        ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
        ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
        ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
        ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
        ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    }
    return names.get(oid, oid.dotted_string)


def _capabilities(extensions: x509.Extensions) -> tuple[str, ...]:
    """Algorithms the S/MIME capabilities extension (RFC 8551, 2.5.2) lists, in its order."""
    try:
        raw = extensions.get_extension_for_oid(SMIME_CAPABILITIES).value
    except x509.ExtensionNotFound:
        return ()
    if not isinstance(raw, x509.UnrecognizedExtension):
        return ()
    try:
        parsed = cms.SMIMECapabilites.load(raw.value)
        return tuple(str(item["capability_id"].native) for item in parsed)
    except (ValueError, TypeError):  # a malformed extension only loses the preference
        return ()
