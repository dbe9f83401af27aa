"""A small S/MIME PKI on disk: root CA, intermediate, and recipient certificates of every kind."""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SMIME_CAPABILITIES_OID = x509.ObjectIdentifier("1.2.840.113549.1.9.15")
NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _name(cn: str, email: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if email:
        attributes.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    return x509.Name(attributes)


def _key_usage(**allowed: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    flags.update(allowed)
    return x509.KeyUsage(**flags)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def smime_capabilities(*algorithms: str) -> x509.UnrecognizedExtension:
    """The S/MIME capabilities extension listing asn1crypto algorithm names (e.g. aes256_gcm)."""
    value = cms.SMIMECapabilites([{"capability_id": name} for name in algorithms]).dump()
    return x509.UnrecognizedExtension(SMIME_CAPABILITIES_OID, value)


@dataclass
class Authority:
    cert: x509.Certificate
    key: PrivateKey

    def crl(self, *serials: int) -> x509.CertificateRevocationList:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(NOW - DAY)
            .next_update(NOW + 7 * DAY)
        )
        for serial in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(NOW - DAY)
                .build()
            )
        return builder.sign(self.key, hashes.SHA256())


def make_authority(
    cn: str, parent: Authority | None = None, eku: Sequence[x509.ObjectIdentifier] = ()
) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(parent.cert.subject if parent else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 30 * DAY)
        .not_valid_after(NOW + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if parent:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return Authority(builder.sign(parent.key if parent else key, hashes.SHA256()), key)


def make_recipient(
    issuer: Authority,
    address: str | None,
    key: PrivateKey,
    *,
    cn: str = "Recipient",
    not_before: datetime.datetime = NOW - DAY,
    not_after: datetime.datetime = NOW + 365 * DAY,
    key_usage: x509.KeyUsage | None = None,
    eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.EMAIL_PROTECTION,),
    subject_email: str | None = None,
    extra: Sequence[x509.ExtensionType] = (),
) -> x509.Certificate:
    """A recipient certificate; `address` None leaves out the subjectAltName."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, subject_email))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            key_usage or _key_usage(digital_signature=True, key_encipherment=True), critical=True
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if address:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False
        )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer.key, hashes.SHA256())


@dataclass
class Pki:
    """Everything a test needs, also written to `directory` as PEM files."""

    directory: Path
    root: Authority
    intermediate: Authority
    rsa_key: rsa.RSAPrivateKey
    certs: dict[str, x509.Certificate]

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    @property
    def key_path(self) -> Path:
        return self.directory / "recipient.key"

    def decrypt_der(self, envelope: Path, recipient: str = "good") -> bytes:
        """A DER CMS envelope to `recipient`'s certificate, opened by openssl."""
        return subprocess.run(
            [
                "openssl",
                "cms",
                "-decrypt",
                "-inform",
                "DER",
                "-in",
                str(envelope),
                "-recip",
                str(self.path(recipient)),
                "-inkey",
                str(self.key_path),
            ],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout


def build_pki(directory: Path) -> Pki:
    """Root -> intermediate (EKU emailProtection) -> one recipient certificate per case."""
    directory.mkdir(parents=True, exist_ok=True)
    root = make_authority("Test S/MIME Root")
    intermediate = make_authority(
        "Test S/MIME Intermediate", root, eku=[ExtendedKeyUsageOID.EMAIL_PROTECTION]
    )
    stranger = make_authority("Untrusted Root")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    signing_only = _key_usage(digital_signature=True)
    certs = {
        "good": make_recipient(intermediate, "alice@example.org", rsa_key, cn="Alice"),
        "expired": make_recipient(
            intermediate,
            "old@example.org",
            rsa_key,
            not_before=NOW - 400 * DAY,
            not_after=NOW - DAY,
        ),
        "not_yet_valid": make_recipient(
            intermediate, "early@example.org", rsa_key, not_before=NOW + 10 * DAY
        ),
        "untrusted": make_recipient(stranger, "eve@example.org", rsa_key),
        "ec_key": make_recipient(intermediate, "curve@example.org", ec_key),
        "no_key_encipherment": make_recipient(
            intermediate, "signer@example.org", rsa_key, key_usage=signing_only
        ),
        "server_auth": make_recipient(
            intermediate, "server@example.org", rsa_key, eku=[ExtendedKeyUsageOID.SERVER_AUTH]
        ),
        "revoked": make_recipient(intermediate, "gone@example.org", rsa_key),
        "gcm": make_recipient(
            intermediate,
            "modern@example.org",
            rsa_key,
            extra=[smime_capabilities("aes256_gcm", "aes256_cbc")],
        ),
        "subject_email": make_recipient(
            intermediate, None, rsa_key, subject_email="legacy@Example.ORG"
        ),
    }
    for name, cert in certs.items():
        (directory / f"{name}.pem").write_bytes(pem(cert))
    (directory / "root.pem").write_bytes(pem(root.cert))
    (directory / "intermediate.pem").write_bytes(pem(intermediate.cert))
    (directory / "recipient.key").write_bytes(key_pem(rsa_key))
    (directory / "revoked.crl.pem").write_bytes(
        intermediate.crl(certs["revoked"].serial_number).public_bytes(serialization.Encoding.PEM)
    )
    return Pki(directory, root, intermediate, rsa_key, certs)
