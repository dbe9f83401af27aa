"""Server certificates for host names, from the test CA that certs.make_certs writes."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

from certs import server_context
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["host_certificate", "host_context"]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def host_certificate(
    ca_dir: Path, dns_name: str, *, self_signed: bool = False
) -> tuple[Path, Path]:
    """Certificate and key files for ``dns_name``, signed by the CA in ``ca_dir``
    (its ca.crt and ca.key) or, with ``self_signed``, by the certificate's own key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
    )
    if self_signed:
        cert = builder.issuer_name(_name(dns_name)).sign(key, hashes.SHA256())
    else:
        ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
        ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise TypeError("the test CA key is expected to be an EC key")
        cert = (
            builder.issuer_name(ca_cert.subject)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
    stem = f"{dns_name}-{'self' if self_signed else 'ca'}"
    cert_path, key_path = ca_dir / f"{stem}.crt", ca_dir / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def host_context(ca_dir: Path, dns_name: str, *, self_signed: bool = False) -> ssl.SSLContext:
    """A TLS server context presenting a certificate for ``dns_name``."""
    return server_context(*host_certificate(ca_dir, dns_name, self_signed=self_signed))
