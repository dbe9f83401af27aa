"""Reading certificate files: PEM (any number of blocks) or DER; certificates, CRLs, PKCS#7."""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

_T = TypeVar("_T")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE"}
_CRL_LABELS = {b"X509 CRL"}
_PKCS7_LABELS = {b"PKCS7", b"PKCS #7 SIGNED DATA", b"CMS"}


class NotCertificateError(ValueError):
    """The data holds no certificate, CRL or PKCS#7 bundle we can read (the text says why)."""


@dataclass(frozen=True)
class FileContents:
    certificates: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...]


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lower-case hex: the name a certificate is known by."""
    return cert.fingerprint(hashes.SHA256()).hex()


def crl_fingerprint(crl: x509.CertificateRevocationList) -> str:
    return crl.fingerprint(hashes.SHA256()).hex()


def read_objects(data: bytes) -> FileContents:
    """Certificates and CRLs in `data`, or NotCertificateError saying what the data is instead."""
    # Some CAs in system bundles have non-positive serial numbers; cryptography warns
    # about each of them, which says nothing an admin can act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if b"-----BEGIN " in data:
            return _read_pem(data)
        return _read_der(data)


def _read_pem(data: bytes) -> FileContents:
    certs: list[x509.Certificate] = []
    crls: list[x509.CertificateRevocationList] = []
    skipped: list[str] = []
    for match in _PEM_BLOCK.finditer(data):
        label = match.group(1)
        if b"PRIVATE KEY" in label:
            raise NotCertificateError(
                "it holds a private key; only certificates belong here "
                "(keep private keys out of the certificate directory)"
            )
        try:
            der = base64.b64decode(match.group(2), validate=False)
        except binascii.Error:
            skipped.append(f"{label.decode()} (bad base64)")
            continue
        if label in _CERT_LABELS:
            certs.append(_load(x509.load_der_x509_certificate, der, "certificate"))
        elif label in _CRL_LABELS:
            crls.append(_load(x509.load_der_x509_crl, der, "CRL"))
        elif label in _PKCS7_LABELS:
            certs.extend(_pkcs7_certificates(der))
        else:
            skipped.append(label.decode())
    if not certs and not crls:
        found = f" (found: {', '.join(skipped)})" if skipped else ""
        raise NotCertificateError(f"no PEM certificate, CRL or PKCS#7 block{found}")
    return FileContents(tuple(certs), tuple(crls))


def _read_der(data: bytes) -> FileContents:
    try:
        return FileContents((x509.load_der_x509_certificate(data),), ())
    except ValueError:
        pass
    try:
        return FileContents((), (x509.load_der_x509_crl(data),))
    except ValueError:
        pass
    try:
        return FileContents(_pkcs7_certificates(data), ())
    except NotCertificateError:
        pass
    raise NotCertificateError("not a certificate, CRL or PKCS#7 bundle, in PEM or DER")


def _pkcs7_certificates(der: bytes) -> tuple[x509.Certificate, ...]:
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except ValueError as exc:
        raise NotCertificateError(f"a PKCS#7 block that cannot be read ({exc})") from None
    if not certs:
        raise NotCertificateError("a PKCS#7 bundle without certificates")
    return tuple(certs)


def _load(loader: Callable[[bytes], _T], der: bytes, what: str) -> _T:
    try:
        return loader(der)
    except ValueError as exc:
        raise NotCertificateError(f"a {what} block that cannot be parsed ({exc})") from None


def pem_bytes(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)
