"""S/MIME encryption of a whole message to one recipient, for the delivery worker.

The message header fields stay outside; the MIME entity (optionally signed
first) is encrypted to the recipient's certificate and sent as
application/pkcs7-mime (RFC 8551, 3.3). No usable certificate: None, and the
policy's next delivery mode applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway import metrics
from gateway.config import SmimeConfig
from gateway.smime.certs.store import CertStore, RecipientCertificate
from gateway.smime.cms import auth_enveloped_data_aes256_gcm, enveloped_data_aes256_cbc
from gateway.smime.entity import pkcs7_mime_message, split_message
from gateway.smime.errors import SmimeSetupError
from gateway.smime.sign import Signer

CBC = "aes256-cbc"
GCM = "aes256-gcm"


@dataclass(frozen=True)
class EncryptedMessage:
    content: bytes  # the complete message to send (CRLF)
    algorithm: str  # "aes256-cbc" | "aes256-gcm"
    cert_sha256: str  # fingerprint of the certificate it was encrypted to
    signed: bool


class SmimeEncryptor:
    """Encrypts (and, when configured, first signs) messages; safe to share between threads."""

    def __init__(self, config: SmimeConfig, certs: CertStore, data_dir: Path) -> None:
        """Raises SmimeSetupError when the signing files or the configured trust file
        cannot be used."""
        if config.trust_file and certs.trust_error:
            raise SmimeSetupError(certs.trust_error)
        self._algorithm = config.algorithm
        self._certs = certs
        self._signer = (
            Signer(data_dir / config.sign_cert_file, data_dir / config.sign_key_file)
            if config.sign_cert_file and config.sign_key_file
            else None
        )

    def encrypt_for(self, message: bytes, recipient: str) -> EncryptedMessage | None:
        """`message` (RFC 5322, CRLF) encrypted to `recipient`'s best usable certificate."""
        found = self._certs.find(recipient)
        if found is None:
            return None
        split = split_message(message)
        entity = split.entity
        if self._signer is not None:
            entity = self._signer.sign(entity)
            metrics.SMIME_OPERATIONS.labels("sign").inc()
        if self._uses_gcm(found):
            der = auth_enveloped_data_aes256_gcm(entity, found.certificate)
            algorithm, smime_type = GCM, "authEnveloped-data"
        else:
            der = enveloped_data_aes256_cbc(entity, found.certificate)
            algorithm, smime_type = CBC, "enveloped-data"
        metrics.SMIME_OPERATIONS.labels(f"encrypt-{algorithm}").inc()
        return EncryptedMessage(
            content=pkcs7_mime_message(split.outer_headers, smime_type, der),
            algorithm=algorithm,
            cert_sha256=found.fingerprint,
            signed=self._signer is not None,
        )

    def _uses_gcm(self, found: RecipientCertificate) -> bool:
        if self._algorithm == "auto":
            return found.offers_gcm
        return self._algorithm == GCM
