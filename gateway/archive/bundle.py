"""An export bundle: a ZIP of the messages and a manifest, enveloped to one certificate.

The ZIP holds `<queue id>.eml` (the exact accepted bytes) for each message and
`manifest.json` (metadata only: queue ids, the SHA-256 recorded at intake,
dates, addresses, category, PHI, size, and who exported it, when, why, under
which request). The whole ZIP is the content of a CMS EnvelopedData (RFC 5652)
with AES-256-CBC, its key transported with RSA to the recipient certificate
(gateway.smime.cms), written as DER: `openssl cms -decrypt -inform DER` opens it
with the recipient's private key, and nothing else reads a byte of it.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.archive.search import Found
from gateway.smime import cms

FORMAT = "phigate-archive-export/1"
MANIFEST = "manifest.json"


class CertificateError(ValueError):
    """A recipient certificate the bundle cannot be enveloped to; the message says why."""


@dataclass(frozen=True)
class Provenance:
    """Who took the messages out, when, why and under which request."""

    exported_at: float
    exported_by: str
    reason: str
    request_id: int
    approved_by: str | None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def recipient_certificate(pem: bytes, now: float) -> x509.Certificate:
    """The certificate to envelope to: PEM, RSA (what CMS key transport takes), valid now."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise CertificateError("is not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise CertificateError("has no RSA key: export bundles are enveloped to RSA certificates")
    if not cert.not_valid_before_utc.timestamp() <= now <= cert.not_valid_after_utc.timestamp():
        raise CertificateError(
            f"is not valid now (valid {_iso(cert.not_valid_before_utc.timestamp())} to "
            f"{_iso(cert.not_valid_after_utc.timestamp())})"
        )
    return cert


def fingerprint(cert: x509.Certificate) -> str:
    """The certificate's SHA-256 fingerprint (hex), as the audit event names it."""
    return cert.fingerprint(hashes.SHA256()).hex()


def manifest(messages: Sequence[Found], provenance: Provenance) -> dict[str, object]:
    return {
        "format": FORMAT,
        "exported_at": _iso(provenance.exported_at),
        "exported_by": provenance.exported_by,
        "reason": provenance.reason,
        "request_id": provenance.request_id,
        "approved_by": provenance.approved_by,
        "messages": [
            {
                "queue_id": m.queue_id,
                "file": f"{m.queue_id}.eml",
                "sha256": m.sha256,
                "received_at": _iso(m.received_at),
                "kind": m.kind,
                "sender": m.sender,
                "recipients": list(m.recipients),
                "category": m.category,
                "phi": m.phi,
                "size": m.size,
            }
            for m in messages
        ],
    }


def zipped(messages: Sequence[Found], contents: Sequence[bytes], provenance: Provenance) -> bytes:
    """The ZIP: one .eml per message, byte for byte, and the manifest."""
    stamp = datetime.fromtimestamp(provenance.exported_at, UTC).timetuple()[:6]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for message, data in zip(messages, contents, strict=True):
            archive.writestr(
                zipfile.ZipInfo(f"{message.queue_id}.eml", stamp), data, zipfile.ZIP_DEFLATED
            )
        body = json.dumps(manifest(messages, provenance), indent=2).encode()
        archive.writestr(zipfile.ZipInfo(MANIFEST, stamp), body, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def enveloped(bundle: bytes, recipient: x509.Certificate) -> bytes:
    """The ZIP as CMS EnvelopedData (AES-256) to the recipient, DER."""
    return cms.enveloped_data_aes256_cbc(bundle, recipient)
