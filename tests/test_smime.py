"""S/MIME encryption and signing, checked by openssl and Python's email parser."""

from __future__ import annotations

import base64
import email
import email.policy
import os
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from smime_pki import Pki, build_pki, key_pem, make_recipient, pem

from gateway.config import SmimeConfig
from gateway.smime import EncryptedMessage, SmimeEncryptor, SmimeSetupError
from gateway.smime.certs.store import CertStore
from gateway.smime.entity import split_message

CANARY = "Patient Jane Canary, MRN 88412203, diagnosis E11.9"
ATTACHMENT = os.urandom(300_000)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return build_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def store(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> CertStore:
    certs = CertStore(tmp_path_factory.mktemp("data") / "certs", pki.path("root"))
    report = certs.import_files(
        [
            *(pki.path(name) for name in pki.certs),
            pki.path("intermediate"),
            pki.directory / "revoked.crl.pem",
        ]
    )
    assert not report.errors
    return certs


def encryptor(store: CertStore, data_dir: Path, **config: str) -> SmimeEncryptor:
    return SmimeEncryptor(SmimeConfig.model_validate(config), store, data_dir)


def clinical_message() -> bytes:
    msg = EmailMessage()
    msg["From"] = "EHR <ehr@clinic.example.org>"
    msg["To"] = "Alice <alice@example.org>"
    msg["Cc"] = "records@clinic.example.org"
    msg["Reply-To"] = "desk@clinic.example.org"
    msg["Subject"] = "Your results"
    msg["Date"] = "Fri, 27 Nov 2026 10:00:00 +0000"
    msg["Message-ID"] = "<results-1@clinic.example.org>"
    msg["X-Clinic-Ref"] = "batch 7"
    msg.set_content(f"Dear Alice,\n\n{CANARY}\n\nRegards\n")
    msg.add_alternative(f"<p>Dear Alice,</p><p>{CANARY}</p>", subtype="html")
    msg.add_attachment(
        ATTACHMENT, maintype="application", subtype="octet-stream", filename="labs.bin"
    )
    return msg.as_bytes(policy=email.policy.SMTP)


def parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def assert_same_content(decrypted: bytes, original: bytes) -> None:
    """The decrypted entity carries the original body, alternatives and attachment bytes."""
    got, want = parse(decrypted), parse(original)
    assert got.get_content_type() == want.get_content_type()
    got_parts = [(p.get_content_type(), p.get_payload(decode=True)) for p in got.walk()]
    want_parts = [(p.get_content_type(), p.get_payload(decode=True)) for p in want.walk()]
    assert got_parts == want_parts
    attachments = [p for p in got.walk() if p.get_filename() == "labs.bin"]
    assert [p.get_payload(decode=True) for p in attachments] == [ATTACHMENT]


def fingerprint_for(store: CertStore, address: str) -> str:
    found = store.find(address)
    assert found is not None
    return found.fingerprint


def openssl(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=30)


def decrypt(result: EncryptedMessage, pki: Pki, tool: str = "cms") -> bytes:
    done = openssl(
        tool,
        "-decrypt",
        "-binary",
        "-inkey",
        str(pki.key_path),
        "-recip",
        str(pki.path("good")),
        stdin=result.content,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def cms_dump(result: EncryptedMessage) -> str:
    done = openssl("cms", "-cmsout", "-print", stdin=result.content)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def assert_outer(result: EncryptedMessage, smime_type: str) -> None:
    outer = parse(result.content)
    assert outer["Subject"] == "Your results"
    assert outer["From"] == "EHR <ehr@clinic.example.org>"
    assert outer["To"] == "Alice <alice@example.org>"
    assert outer["Cc"] == "records@clinic.example.org"
    assert outer["Reply-To"] == "desk@clinic.example.org"
    assert outer["Message-ID"] == "<results-1@clinic.example.org>"
    assert outer["X-Clinic-Ref"] == "batch 7"
    assert outer.get_all("MIME-Version") == ["1.0"]
    assert outer.get_content_type() == "application/pkcs7-mime"
    assert outer.get_param("smime-type") == smime_type
    assert outer.get_param("name") == "smime.p7m"
    assert outer.get_filename() == "smime.p7m"
    assert outer["Content-Transfer-Encoding"] == "base64"
    assert len(outer.get_all("Content-Type") or []) == 1
    assert b"\r\n" in result.content and b"\n" not in result.content.replace(b"\r\n", b"")
    assert CANARY.encode() not in result.content and b"labs.bin" not in result.content
    lines = result.content.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in lines) <= 76


def test_cbc_is_read_by_openssl_cms_and_smime(store: CertStore, pki: Pki, tmp_path: Path) -> None:
    original = clinical_message()
    result = encryptor(store, tmp_path).encrypt_for(original, "alice@example.org")
    assert result is not None
    assert (result.algorithm, result.signed) == ("aes256-cbc", False)
    assert result.cert_sha256 == fingerprint_for(store, "alice@example.org")
    assert_outer(result, "enveloped-data")
    dump = cms_dump(result)
    assert "pkcs7-envelopedData" in dump and "aes-256-cbc" in dump
    assert "rsaEncryption" in dump
    entity = split_message(original).entity
    for tool in ("cms", "smime"):
        decrypted = decrypt(result, pki, tool)
        assert decrypted == entity
        assert_same_content(decrypted, original)


def test_gcm_auth_enveloped_data_is_read_by_openssl(
    store: CertStore, pki: Pki, tmp_path: Path
) -> None:
    original = clinical_message()
    result = encryptor(store, tmp_path, algorithm="aes256-gcm").encrypt_for(
        original, "alice@example.org"
    )
    assert result is not None and result.algorithm == "aes256-gcm"
    assert_outer(result, "authEnveloped-data")
    dump = cms_dump(result)
    assert "id-smime-ct-authEnvelopedData" in dump and "aes-256-gcm" in dump
    assert "rsaesOaep" in dump and "sha256" in dump and "mgf1" in dump
    assert_same_content(decrypt(result, pki), original)


def test_gcm_detects_tampering(store: CertStore, pki: Pki, tmp_path: Path) -> None:
    result = encryptor(store, tmp_path, algorithm="aes256-gcm").encrypt_for(
        clinical_message(), "alice@example.org"
    )
    assert result is not None
    head, body = result.content.split(b"\r\n\r\n", 1)
    der = bytearray(base64.b64decode(body))
    der[-200] ^= 0x01  # inside the ciphertext, before the tag
    forged = head + b"\r\n\r\n" + base64.encodebytes(bytes(der)).replace(b"\n", b"\r\n")
    done = openssl(
        "cms",
        "-decrypt",
        "-inkey",
        str(pki.key_path),
        "-recip",
        str(pki.path("good")),
        stdin=forged,
    )
    # openssl streams the plaintext before it checks the tag; the exit status tells.
    assert done.returncode != 0
    assert b"Error decrypting" in done.stderr


def test_auto_uses_gcm_only_for_certificates_that_list_it(
    store: CertStore, pki: Pki, tmp_path: Path
) -> None:
    auto = encryptor(store, tmp_path, algorithm="auto")
    message = clinical_message()
    modern = auto.encrypt_for(message, "modern@example.org")
    plain = auto.encrypt_for(message, "alice@example.org")
    assert modern is not None and modern.algorithm == "aes256-gcm"
    assert plain is not None and plain.algorithm == "aes256-cbc"
    assert modern.cert_sha256 == fingerprint_for(store, "modern@example.org")


@pytest.mark.parametrize(
    "address",
    [
        "old@example.org",  # expired
        "early@example.org",  # not yet valid
        "eve@example.org",  # untrusted CA
        "curve@example.org",  # EC key
        "signer@example.org",  # keyUsage without keyEncipherment
        "server@example.org",  # EKU serverAuth only
        "gone@example.org",  # revoked by the CRL
        "nobody@example.org",  # no certificate at all
        "Alice@example.org",  # the local part is compared as written
    ],
)
def test_no_usable_certificate_means_none(store: CertStore, address: str, tmp_path: Path) -> None:
    assert encryptor(store, tmp_path).encrypt_for(clinical_message(), address) is None


def test_subject_email_and_domain_case(store: CertStore, tmp_path: Path) -> None:
    smime = encryptor(store, tmp_path)
    assert smime.encrypt_for(clinical_message(), "legacy@example.org") is not None
    assert smime.encrypt_for(clinical_message(), "alice@EXAMPLE.org") is not None


@pytest.fixture(scope="module")
def signing(pki: Pki) -> Iterator[tuple[Path, Path]]:
    """The organisation's signing certificate (intermediate appended) and key."""
    org = make_recipient(pki.intermediate, "ehr@clinic.example.org", pki.rsa_key, cn="Clinic")
    cert_file, key_file = pki.directory / "org.pem", pki.directory / "org.key"
    cert_file.write_bytes(pem(org) + pem(pki.intermediate.cert))
    key_file.write_bytes(key_pem(pki.rsa_key))
    yield cert_file, key_file


@pytest.mark.parametrize("algorithm", ["aes256-cbc", "aes256-gcm"])
def test_signed_then_encrypted_verifies_with_openssl(
    store: CertStore, pki: Pki, signing: tuple[Path, Path], tmp_path: Path, algorithm: str
) -> None:
    cert_file, key_file = signing
    (tmp_path / cert_file.name).write_bytes(cert_file.read_bytes())
    smime = encryptor(
        store,
        tmp_path,
        algorithm=algorithm,
        sign_cert_file=cert_file.name,  # relative: under the data dir
        sign_key_file=str(key_file),
    )
    original = clinical_message()
    result = smime.encrypt_for(original, "alice@example.org")
    assert result is not None and result.signed and result.algorithm == algorithm
    inner = decrypt(result, pki)
    signed = parse(inner)
    assert signed.get_content_type() == "multipart/signed"
    assert signed.get_param("protocol") == "application/pkcs7-signature"
    assert signed.get_param("micalg") == "sha-256"
    root = str(pki.path("root"))
    verified = openssl("cms", "-verify", "-CAfile", root, stdin=inner)
    assert verified.returncode == 0, verified.stderr.decode()
    assert b"Verification successful" in verified.stderr
    assert verified.stdout == split_message(original).entity
    assert_same_content(verified.stdout, original)
    # One changed byte in the signed part, and the signature no longer verifies.
    tampered = inner.replace(b"multipart/alternative", b"multipart/Alternative", 1)
    assert tampered != inner
    refused = openssl("cms", "-verify", "-CAfile", root, stdin=tampered)
    assert refused.returncode != 0


def test_signing_setup_errors_say_what_to_fix(
    store: CertStore, pki: Pki, signing: tuple[Path, Path], tmp_path: Path
) -> None:
    cert_file, key_file = signing
    other_key = tmp_path / "other.key"
    other_key.write_bytes(key_pem(pki.intermediate.key))
    encrypted_key = tmp_path / "locked.key"
    encrypted_key.write_bytes(
        pki.rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    cases = {
        "does not belong": (cert_file, other_key),
        "cannot read smime.sign_key_file": (cert_file, tmp_path / "missing.key"),
        "is encrypted": (cert_file, encrypted_key),
        "holds a private key": (key_file, key_file),
        "is not a PEM or DER private key": (cert_file, cert_file),
    }
    for expected, (cert, key) in cases.items():
        with pytest.raises(SmimeSetupError, match=expected):
            encryptor(store, tmp_path, sign_cert_file=str(cert), sign_key_file=str(key))


def test_unreadable_trust_file_is_a_setup_error(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.pem"
    with pytest.raises(SmimeSetupError, match=r"cannot read smime\.trust_file"):
        SmimeEncryptor(
            SmimeConfig(trust_file=str(missing)), CertStore(tmp_path / "certs", missing), tmp_path
        )


def test_message_without_mime_headers(store: CertStore, pki: Pki, tmp_path: Path) -> None:
    original = (
        b"From: ehr@clinic.example.org\r\nTo: alice@example.org\r\nSubject: note\r\n"
        b"X-Folded: one\r\n two\r\n\r\n" + CANARY.encode() + b"\r\n"
    )
    result = encryptor(store, tmp_path).encrypt_for(original, "alice@example.org")
    assert result is not None
    outer = parse(result.content)
    assert outer["X-Folded"] == "one two" and outer["Subject"] == "note"
    inner = parse(decrypt(result, pki))
    assert inner.get_content_type() == "text/plain"
    assert CANARY in inner.get_content()


def test_concurrent_use_from_threads(store: CertStore, pki: Pki, tmp_path: Path) -> None:
    smime = encryptor(store, tmp_path)
    bodies = [f"message {n} {CANARY}".encode() for n in range(24)]
    messages = [b"From: a@clinic.example.org\r\nSubject: s\r\n\r\n" + body for body in bodies]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda m: smime.encrypt_for(m, "alice@example.org"), messages))
    for body, result in zip(bodies, results, strict=True):
        assert result is not None
        der = base64.b64decode(result.content.split(b"\r\n\r\n", 1)[1])
        plain = pkcs7.pkcs7_decrypt_der(der, pki.certs["good"], pki.rsa_key, [])
        assert re.sub(rb"^.*?\r\n\r\n", b"", plain, count=1, flags=re.DOTALL) == body
