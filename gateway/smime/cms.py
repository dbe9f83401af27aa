"""CMS structures that encrypt one MIME entity to one recipient certificate (DER out).

- EnvelopedData, AES-256-CBC, RSA PKCS#1 v1.5 key transport: what every mail
  client reads; built by cryptography's PKCS7EnvelopeBuilder.
- AuthEnvelopedData (RFC 5083), AES-256-GCM (RFC 5084) with a 16-byte tag,
  RSA-OAEP with SHA-256 and MGF1-SHA-256 key transport (RFC 8017, RFC 4055):
  cryptography does not build it, so it is assembled with asn1crypto.
"""

from __future__ import annotations

import os
from typing import ClassVar

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import pkcs7

_GCM_NONCE_BYTES = 12  # RFC 5084 recommends 12
_GCM_TAG_BYTES = 16
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class _GcmParameters(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type hints
    """GCMParameters (RFC 5084, 3.2); asn1crypto knows the OID but not its parameters."""

    _fields: ClassVar[list[tuple[object, ...]]] = [
        ("aes_nonce", core.OctetString),
        ("aes_icvlen", core.Integer, {"default": 12}),
    ]


_RSAES_OAEP_SHA256 = cms.KeyEncryptionAlgorithm(
    {
        "algorithm": "rsaes_oaep",
        "parameters": algos.RSAESOAEPParams(
            {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            }
        ),
    }
).dump()


def enveloped_data_aes256_cbc(content: bytes, recipient: x509.Certificate) -> bytes:
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(content)
        .add_recipient(recipient)
        .set_content_encryption_algorithm(algorithms.AES256)
        # Binary: `content` is already canonical CRLF MIME, to be taken byte for byte.
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def auth_enveloped_data_aes256_gcm(content: bytes, recipient: x509.Certificate) -> bytes:
    public_key = recipient.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise TypeError("only RSA recipient keys are supported")
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(_GCM_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, content, None)
    ciphertext, tag = sealed[:-_GCM_TAG_BYTES], sealed[-_GCM_TAG_BYTES:]
    # asn1crypto re-encodes nested values it is handed as Python values (about
    # 0.6 ms for the OAEP parameters alone), so the parts go in already encoded.
    recipient_info = cms.KeyTransRecipientInfo(
        {
            "version": "v0",
            "rid": cms.RecipientIdentifier(
                name="issuer_and_serial_number",
                value=cms.IssuerAndSerialNumber(
                    {
                        "issuer": asn1_x509.Name.load(recipient.issuer.public_bytes()),
                        "serial_number": recipient.serial_number,
                    }
                ),
            ),
            "key_encryption_algorithm": cms.KeyEncryptionAlgorithm.load(_RSAES_OAEP_SHA256),
            "encrypted_key": public_key.encrypt(key, _OAEP),
        }
    )
    gcm_parameters = _GcmParameters({"aes_nonce": nonce, "aes_icvlen": _GCM_TAG_BYTES})
    content_info = cms.EncryptedContentInfo(
        {
            "content_type": "data",
            "content_encryption_algorithm": algos.EncryptionAlgorithm(
                {"algorithm": "aes256_gcm", "parameters": core.Any.load(gcm_parameters.dump())}
            ),
            "encrypted_content": ciphertext,
        }
    )
    enveloped = cms.AuthEnvelopedData(
        {
            "version": "v0",
            "recipient_infos": cms.RecipientInfos(
                [cms.RecipientInfo(name="ktri", value=recipient_info)]
            ),
            "auth_encrypted_content_info": content_info,
            "mac": tag,
        }
    )
    info = cms.ContentInfo({"content_type": "authenticated_enveloped_data", "content": enveloped})
    der: bytes = info.dump()
    return der
