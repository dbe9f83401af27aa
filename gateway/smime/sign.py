"""Signing a MIME entity with the organisation's certificate: multipart/signed (RFC 8551, 3.5).

The signature is detached, SHA-256, made by cryptography's PKCS7SignatureBuilder
over the entity exactly as it will be placed in the first body part; the
signing certificate and the intermediates that follow it in its file travel
in the signature, so recipients can build the chain.
"""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from gateway.smime.certs.files import NotCertificateError, read_objects
from gateway.smime.entity import base64_lines
from gateway.smime.errors import SmimeSetupError

_OPTIONS = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]


class Signer:
    """Signs entities with the certificate in `cert_file` and the private key in `key_file`."""

    def __init__(
        self, cert_file: Path, key_file: Path, now: datetime.datetime | None = None
    ) -> None:
        chain = _load_certificates(cert_file)
        key = _load_key(key_file)
        certificate = chain[0]
        if _spki(certificate.public_key()) != _spki(key.public_key()):
            raise SmimeSetupError(
                f"smime.sign_key_file {key_file} does not belong to the certificate in "
                f"smime.sign_cert_file {cert_file} (their public keys differ)"
            )
        now = now or datetime.datetime.now(datetime.UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise SmimeSetupError(
                f"the signing certificate in {cert_file} is valid only from "
                f"{certificate.not_valid_before_utc:%Y-%m-%d} to "
                f"{certificate.not_valid_after_utc:%Y-%m-%d}; renew it"
            )
        self.certificate = certificate
        self._key = key
        self._intermediates = chain[1:]

    def sign(self, entity: bytes) -> bytes:
        """`entity` (CRLF MIME) wrapped in a multipart/signed entity with its signature."""
        builder = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(entity)
            .add_signer(self.certificate, self._key, hashes.SHA256())
        )
        # Last: set_data and add_signer drop certificates added before them.
        for intermediate in self._intermediates:
            builder = builder.add_certificate(intermediate)
        signature = builder.sign(serialization.Encoding.DER, _OPTIONS)
        boundary = _boundary(entity)
        return b"".join(
            (
                b"Content-Type: multipart/signed; "
                b'protocol="application/pkcs7-signature"; micalg=sha-256;\r\n'
                b' boundary="' + boundary + b'"\r\n',
                b"\r\n",
                b"This is a cryptographically signed message in MIME format.\r\n",
                b"\r\n--" + boundary + b"\r\n",
                entity,
                b"\r\n--" + boundary + b"\r\n",
                b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n",
                b"Content-Transfer-Encoding: base64\r\n",
                b"Content-Disposition: attachment; filename=smime.p7s\r\n",
                b"\r\n",
                base64_lines(signature),
                b"\r\n--" + boundary + b"--\r\n",
            )
        )


def _boundary(entity: bytes) -> bytes:
    while True:
        boundary = b"=_signed_" + secrets.token_hex(16).encode()
        if boundary not in entity:
            return boundary


def _spki(key: object) -> bytes:
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        return b""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_certificates(path: Path) -> tuple[x509.Certificate, ...]:
    try:
        contents = read_objects(path.read_bytes())
    except OSError as exc:
        raise SmimeSetupError(f"cannot read smime.sign_cert_file {path}: {exc.strerror}") from None
    except NotCertificateError as exc:
        raise SmimeSetupError(f"smime.sign_cert_file {path}: {exc}") from None
    if not contents.certificates:
        raise SmimeSetupError(f"smime.sign_cert_file {path} holds no certificate")
    return contents.certificates


def _load_key(path: Path) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SmimeSetupError(f"cannot read smime.sign_key_file {path}: {exc.strerror}") from None
    loader = (
        serialization.load_pem_private_key
        if b"-----BEGIN" in data
        else serialization.load_der_private_key
    )
    try:
        key = loader(data, password=None)
    except TypeError:
        raise SmimeSetupError(
            f"smime.sign_key_file {path} is encrypted; phigate needs it unencrypted "
            "(protect it with file permissions: chmod 600, owned by phigate's user)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise SmimeSetupError(
            f"smime.sign_key_file {path} is not a PEM or DER private key"
        ) from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise SmimeSetupError(
            f"smime.sign_key_file {path} holds a {type(key).__name__}; S/MIME signing "
            "here needs an RSA or EC key"
        )
    return key
