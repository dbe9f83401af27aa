"""Server-side TLS: a strict context, and a self-signed certificate for development."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# The TLS 1.2 suites every listener offers: ECDHE key exchange (forward secrecy) with an
# AEAD cipher. No CBC suites, even with SHA-2 (their MAC-then-encrypt padding is where
# Lucky13 and POODLE-style oracles live); every TLS 1.2 client has AES-GCM. TLS 1.3's
# suites (OpenSSL's defaults) are all forward secret and AEAD.
SERVER_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The one context of every TLS listener (SMTP STARTTLS, SMTP implicit TLS, HTTPS):
    TLS 1.2+ with forward-secret AEAD ciphers only, no compression, no renegotiation.
    tests/test_tls_scan.py scans the running listeners for exactly this."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(SERVER_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    # OpenSSL 3 refuses client-initiated renegotiation by default, 1.1.1 does not: say it
    # here, whichever one Python is linked against (TLS 1.2 renegotiation is a CPU DoS).
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def reload_certificate(contexts: Sequence[ssl.SSLContext], cert_file: Path, key_file: Path) -> None:
    """Load a renewed certificate into live server contexts: new handshakes use it,
    connections already up keep theirs. The pair is tried on a fresh context first,
    so one that does not load (a key that does not match, a half-written file)
    leaves the live contexts as they were."""
    server_context(cert_file, key_file)
    for ctx in contexts:
        ctx.load_cert_chain(cert_file, key_file)


def generate_self_signed(cert_file: Path, key_file: Path, hostname: str) -> None:
    """Write a one-year ECDSA P-256 certificate for `hostname`, localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(hostname),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_bytes)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
