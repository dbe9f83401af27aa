"""DKIM keys, `phigate dkim` and signing, checked by verifiers we did not write.

Signatures must be byte-identical to dkimpy's (same key, message, header
list and time) and verify with Perl's Mail::DKIM, libopendkim
(opendkim-testmsg) and dkimpy against records served by a loopback DNS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import dkim
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from dkim.canonicalization import Relaxed
from dkim_verifiers import (
    OpendkimTestmsg,
    dkimpy_verify,
    mail_dkim_verify,
    publish,
)
from dns_server import LoopbackDns
from hypothesis import given
from hypothesis import strategies as st

from gateway.cli import main
from gateway.config import DkimConfig
from gateway.dkim.keys import ED25519_SHA256, RSA_SHA256, DkimError, KeyStore
from gateway.dkim.sign import DkimSigner, relaxed_body_hash

DOMAIN = "example.org"  # RSA and Ed25519 keys
RSA_ONLY = "rsa.example.org"
ED_ONLY = "ed.example.org"
T = 1_764_583_200  # the signing time of every comparison with dkimpy

# The domains the senders of these test messages may use (`sign(permitted=)`).
PERMITTED = frozenset(
    {DOMAIN, RSA_ONLY, ED_ONLY, "other.example", "xn--bcher-kva.example", "rotate.example",
     "busy.example", "cli.example"}
)  # fmt: skip

DATE = b"Date: Mon, 1 Dec 2025 10:00:00 +0000\r\n"


def _message(headers: bytes, body: bytes, domain: str = DOMAIN) -> bytes:
    return b"From: Alice Example <alice@" + domain.encode() + b">\r\n" + DATE + headers + body


# (name, message): the shapes canonicalisation has to get right.
MESSAGES = [
    (
        "plain",
        _message(
            b"To: bob@example.net\r\nSubject: Appointment\r\nMessage-ID: <1@example.org>\r\n\r\n",
            b"Your appointment is on Monday.\r\n",
        ),
    ),
    (
        "folded_headers",
        _message(
            b"To: Bob <bob@example.net>,\r\n\tCarol <carol@example.net>\r\n"
            b"Subject: a subject\r\n  folded over\r\n\t three lines\r\n\r\n",
            b"Body.\r\n",
        ),
    ),
    (
        "trailing_whitespace",
        _message(
            b"To:   bob@example.net  \r\nSubject:\tspaced   \t out \t\r\n\r\n",
            b"line with trailing spaces   \r\n\tindented\t\ttabs \r\ninner    spaces\r\n \r\n",
        ),
    ),
    ("empty_body", _message(b"To: bob@example.net\r\nSubject: nothing\r\n\r\n", b"")),
    ("header_only", _message(b"To: bob@example.net\r\nSubject: no blank line\r\n", b"")),
    (
        "no_final_crlf",
        _message(b"To: bob@example.net\r\nSubject: cut\r\n\r\n", b"first\r\nlast line"),
    ),
    (
        "eight_bit",
        _message(
            "To: bob@example.net\r\nSubject: Grüße aus Köln\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n".encode(),
            "Ärztin: Dr. Šimić, 東京 \r\n".encode() + bytes(range(0x80, 0x100)) + b"\r\n",
        ),
    ),
    (
        "long_lines",
        _message(
            b"To: bob@example.net\r\nSubject: " + b"long " * 300 + b"\r\n\r\n",
            b"x" * 20_000 + b"\r\n" + b"word " * 4000 + b"\r\n",
        ),
    ),
    (
        "trailing_empty_lines",
        _message(b"To: bob@example.net\r\nSubject: gaps\r\n\r\n", b"\r\ntext\r\n\r\n \r\n\r\n\r\n"),
    ),
    (
        "repeated_and_unsigned_fields",
        b"Received: from ehr.example.org by relay\r\nX-Mailer: EHR 9\r\n"
        b"FROM: alice@example.org\r\n" + DATE + b"cc: one@example.net\r\nTO: bob@example.net\r\n"
        b"Cc: two@example.net\r\nSUBJECT: cases\r\n"
        b"List-Unsubscribe: <https://example.org/u/1>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n"
        b"Body\r\n",
    ),
    (
        "multipart",
        _message(
            b"To: bob@example.net\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
            b'boundary="b1"\r\nSubject: report\r\n\r\n',
            b"--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
            b"--b1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(os.urandom(3000)).replace(b"\n", b"\r\n")
            + b"--b1--\r\n",
        ),
    ),
    ("whitespace_only_body", _message(b"To: bob@example.net\r\n\r\n", b"  \r\n\t\r\n")),
]


# --- fixtures ---------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    keys = KeyStore(tmp_path_factory.mktemp("data") / "dkim")
    keys.generate(DOMAIN, "r2026", "rsa-sha256", 2048)
    keys.generate(DOMAIN, "e2026", "ed25519-sha256", 0)
    keys.generate(RSA_ONLY, "r2026", "rsa-sha256", 2048)
    keys.generate(ED_ONLY, "e2026", "ed25519-sha256", 0)
    return keys


@pytest.fixture(scope="module")
def signer(store: KeyStore) -> DkimSigner:
    return DkimSigner(DkimConfig(), store.root)


@pytest.fixture(scope="module")
def zone(store: KeyStore) -> Iterator[LoopbackDns]:
    with LoopbackDns() as server:
        for key in store.listing():
            publish(server, store.dns_record(key.domain, key.selector))
        yield server


def _signatures(signed: bytes, original: bytes) -> list[bytes]:
    """The DKIM-Signature fields the signer put in front of the message."""
    prefix = signed[: signed.rindex(original.rstrip(b"\r\n"))]
    return [b"DKIM-Signature:" + part for part in prefix.split(b"DKIM-Signature:")[1:]]


def _tag(field: bytes, name: str) -> str:
    value = re.sub(rb"\r\n[ \t]", b" ", field)
    found = re.search(rb"[;:]\s*" + name.encode() + rb"=([^;]*)", value)
    assert found is not None, field
    return re.sub(r"\s+", "", found.group(1).decode())


# --- byte-identical to dkimpy -----------------------------------------------


@pytest.mark.parametrize("name,message", MESSAGES, ids=[name for name, _ in MESSAGES])
def test_signatures_are_byte_identical_to_dkimpy(
    name: str, message: bytes, store: KeyStore, signer: DkimSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    rsa_field, ed_field = _signatures(signer.sign(message, now=T, permitted=PERMITTED), message)
    assert _tag(rsa_field, "a") == RSA_SHA256 and _tag(ed_field, "a") == ED25519_SHA256
    headers = [h.strip().encode() for h in _tag(rsa_field, "h").split(":")]
    assert headers == [h.strip().encode() for h in _tag(ed_field, "h").split(":")]

    monkeypatch.setattr(dkim, "time", SimpleNamespace(time=lambda: T))
    folder = store.root / DOMAIN
    ed_key = serialization.load_pem_private_key((folder / "e2026.pem").read_bytes(), None)
    seed = base64.b64encode(
        ed_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    )
    relaxed = (b"relaxed", b"relaxed")
    expected_rsa = dkim.sign(
        message, b"r2026", DOMAIN.encode(), (folder / "r2026.pem").read_bytes(),
        canonicalize=relaxed, include_headers=headers,
    )  # fmt: skip
    expected_ed = dkim.sign(
        message, b"e2026", DOMAIN.encode(), seed, signature_algorithm=b"ed25519-sha256",
        canonicalize=relaxed, include_headers=headers,
    )  # fmt: skip
    assert rsa_field == expected_rsa
    assert ed_field == expected_ed


def test_signs_the_present_listed_fields_and_oversigns_those_a_reader_sees(
    signer: DkimSigner,
) -> None:
    message = dict(MESSAGES)["repeated_and_unsigned_fields"]
    field = _signatures(signer.sign(message, now=T, permitted=PERMITTED), message)[0]
    # In message order, each occurrence (Received and X-Mailer are not listed);
    # then each oversigned field once more, so that none can be added.
    assert _tag(field, "h") == (
        "from:date:cc:to:cc:subject:list-unsubscribe:list-unsubscribe-post"
        ":from:date:cc:to:subject:list-unsubscribe:list-unsubscribe-post"
    )
    assert (_tag(field, "d"), _tag(field, "s"), _tag(field, "t")) == (DOMAIN, "r2026", str(T))
    assert "x" not in [tag.split("=")[0].strip() for tag in field.decode().split(";")]


# --- verified by Mail::DKIM, libopendkim and dkimpy --------------------------


def _tampered(signed: bytes) -> dict[str, bytes]:
    return {
        "body": signed.replace(b"\r\n\r\n", b"\r\n\r\nP.S. changed\r\n", 1),
        "subject": re.sub(rb"\r\nSubject:[^\r]*", b"\r\nSubject: changed", signed, count=1),
        "added_from": b"From: mallory@example.org\r\n" + signed,
    }


def test_mail_dkim_verifies_rsa_and_catches_tampering(
    signer: DkimSigner, zone: LoopbackDns
) -> None:
    messages = [message for _, message in MESSAGES]
    odd = [
        b"From: alice@example.org\r\nSubject: bare LF\nTo: bob@example.net\n\nbody\nmore\n",
        b"From: alice@example.org\r\nSubject: trailing\r\n\r\nspaces at the end   ",
        _message(b"Subject: big\r\n\r\n", b"0123456789 abcdef\t \r\n" * 60_000),
    ]
    signed = [signer.sign(m, now=None, permitted=PERMITTED) for m in messages + odd]
    assert all(b"\n" not in s.replace(b"\r\n", b"") and s.endswith(b"\r\n") for s in signed)
    bad = [t for s in signed[:3] for t in _tampered(s).values()]
    results = mail_dkim_verify(zone, signed + bad)
    for result in results[: len(signed)]:
        assert result.result == "pass" and result.of("r2026") == "pass", result
        # This Mail::DKIM (1.20230212) has no Ed25519: it says so instead of failing.
        assert result.signatures["e2026"] == (
            "invalid",
            "invalid (unsupported algorithm ed25519-sha256)",
        )
    for result in results[len(signed) :]:
        assert result.of("r2026") == "fail", result
        assert result.result != "pass"


def test_mail_dkim_fails_a_field_added_above_an_oversigned_one(
    signer: DkimSigner, zone: LoopbackDns
) -> None:
    original = _message(
        b"To: bob@example.net\r\nCc: carol@example.net\r\nReply-To: desk@example.org\r\n"
        b"Subject: Appointment\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
        b"List-Id: <news.example.org>\r\nList-Unsubscribe: <https://example.org/u/1>\r\n\r\n",
        b"Your appointment is on Monday.\r\n",
    )
    signed = signer.sign(original, permitted=PERMITTED)
    # What a reader would be shown instead of the signed field: the topmost one.
    added = [
        b"Subject: Your account is locked\r\n",
        b"Reply-To: mallory@attacker.example\r\n",
        b"To: victim@example.net\r\n",
        b"Cc: victim@example.net\r\n",
        b"Date: Tue, 2 Dec 2025 10:00:00 +0000\r\n",
        b"Content-Type: text/html\r\n",
        b"List-Id: <other.example.org>\r\n",
        b"List-Unsubscribe: <https://attacker.example/u>\r\n",
    ]
    results = mail_dkim_verify(zone, [signed, *(field + signed for field in added)])
    assert results[0].of("r2026") == "pass", results[0]
    for field, result in zip(added, results[1:], strict=True):
        assert result.of("r2026") == "fail" and result.result != "pass", (field, result)


@pytest.fixture(scope="module")
def opendkim(zone: LoopbackDns) -> Iterator[OpendkimTestmsg]:
    reason = OpendkimTestmsg.unavailable()
    if reason:
        pytest.skip(reason)
    with OpendkimTestmsg(zone) as verifier:
        yield verifier


@pytest.mark.parametrize("domain", [RSA_ONLY, ED_ONLY, DOMAIN])
def test_opendkim_testmsg_verifies_each_algorithm_and_catches_tampering(
    domain: str, signer: DkimSigner, opendkim: OpendkimTestmsg
) -> None:
    original = dict(MESSAGES)["folded_headers"].replace(
        b"@" + DOMAIN.encode(), b"@" + domain.encode()
    )
    signed = signer.sign(original, permitted=PERMITTED)
    assert len(_signatures(signed, original)) == (2 if domain == DOMAIN else 1)
    assert opendkim.verify(signed) == (0, "")
    for what, tampered in _tampered(signed).items():
        code, error = opendkim.verify(tampered)
        # libopendkim refuses a second From outright, before any signature.
        expected = "Syntax error" if what == "added_from" else "Bad signature"
        assert code != 0 and expected in error, (what, error)


def test_dkimpy_verifies_both_signatures(signer: DkimSigner, zone: LoopbackDns) -> None:
    for name, message in MESSAGES:
        signed = signer.sign(message, permitted=PERMITTED)
        assert dkimpy_verify(zone, signed) == {"r2026": True, "e2026": True}, name
    for what, tampered in _tampered(signer.sign(MESSAGES[0][1], permitted=PERMITTED)).items():
        assert dkimpy_verify(zone, tampered) == {"r2026": False, "e2026": False}, what


# --- what is signed, and when not --------------------------------------------


def test_unsigned_without_a_key_and_refused_for_a_required_domain(store: KeyStore) -> None:
    message = _message(b"Subject: hi\r\n\r\n", b"hi\r\n", domain="other.example")
    plain = DkimSigner(DkimConfig(), store.root)
    assert plain.sign(message, permitted=PERMITTED) == message
    assert plain.signing_domain(message) is None
    strict = DkimSigner(DkimConfig(required_domains=["Other.Example"]), store.root)
    with pytest.raises(DkimError, match=r"other\.example must be signed"):
        strict.sign(message, permitted=PERMITTED)
    no_from = b"To: bob@example.net\r\nSubject: hi\r\n\r\nhi\r\n"
    assert plain.sign(no_from, permitted=PERMITTED) == no_from


def test_never_signs_as_a_domain_the_sender_may_not_use(signer: DkimSigner) -> None:
    message = dict(MESSAGES)["plain"]  # From: alice@example.org, which has keys
    with pytest.raises(DkimError, match=r"refusing to sign as example\.org"):
        signer.sign(message, permitted={"clinic.example"})
    # A From that cannot be read could name any domain: not signed, not sent unsigned.
    ambiguous = message.replace(b"Alice Example <", b"alice@clinic.example <")
    with pytest.raises(DkimError, match="From: header cannot be read"):
        signer.sign(ambiguous, permitted=PERMITTED)


def test_signs_for_the_from_domain_in_its_ascii_form(signer: DkimSigner, tmp_path: Path) -> None:
    message = dict(MESSAGES)["plain"].replace(b"alice@example.org", b"alice@EXAMPLE.Org")
    assert signer.signing_domain(message) == DOMAIN
    assert _tag(_signatures(signer.sign(message, permitted=PERMITTED), message)[0], "d") == DOMAIN
    keys = KeyStore(tmp_path / "dkim")
    assert (
        keys.generate("Bücher.Example", "s1", "ed25519-sha256", 0).domain == "xn--bcher-kva.example"
    )
    idn = _message(b"Subject: idn\r\n\r\n", b"x\r\n", domain="bücher.example")
    assert DkimSigner(DkimConfig(), keys.root).signing_domain(idn) == "xn--bcher-kva.example"


def test_a_malformed_header_is_an_error_without_content(signer: DkimSigner) -> None:
    canary = b"Jane Canary 1958-04-12"
    message = b"From: alice@example.org\r\n" + canary + b"\r\n\r\nbody\r\n"
    with pytest.raises(DkimError) as caught:
        signer.sign(message, permitted=PERMITTED)
    assert "line 2" in str(caught.value) and "Canary" not in str(caught.value)


def test_missing_required_key(store: KeyStore, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "dkim")
    signer = DkimSigner(
        DkimConfig(required_domains=["Clinic.Example", "bücher.example"]), keys.root
    )
    assert signer.missing_required_key("clinic.example")
    assert signer.missing_required_key("CLINIC.example.")
    assert signer.missing_required_key("bücher.example")
    assert not signer.missing_required_key("elsewhere.example")  # not required
    assert not signer.missing_required_key("")
    keys.generate("clinic.example", "s1", "ed25519-sha256", 0)
    assert not signer.missing_required_key("clinic.example")
    (keys.root / "clinic.example" / "s1.pem").write_text("damaged")
    assert signer.missing_required_key("clinic.example")  # a key that cannot sign is missing


def test_signer_sees_keys_made_and_activated_after_it_started(
    tmp_path: Path, zone: LoopbackDns
) -> None:
    keys = KeyStore(tmp_path / "dkim")
    signer = DkimSigner(DkimConfig(), keys.root)
    message = _message(b"Subject: rotation\r\n\r\n", b"hi\r\n", domain="rotate.example")
    assert signer.sign(message, permitted=PERMITTED) == message
    for selector in ("s1", "s2"):
        keys.generate("rotate.example", selector, "rsa-sha256", 2048)
        publish(zone, keys.dns_record("rotate.example", selector))

    def selector_used() -> str:
        signed = signer.sign(message, permitted=PERMITTED)
        assert dkimpy_verify(zone, signed) != {}
        assert all(dkimpy_verify(zone, signed).values())
        return _tag(_signatures(signed, message)[0], "s")

    assert selector_used() == "s1"  # the first key is active, the second waits
    first = signer.store.active_keys("rotate.example")
    assert signer.store.active_keys("rotate.example") is first  # nothing re-read
    # Back and forth without pauses: changes within one mtime tick are seen too.
    for selector in ("s2", "s1", "s2"):
        keys.activate("rotate.example", selector)
        assert selector_used() == selector
    keys.remove("rotate.example", "s2", force=True)
    assert signer.sign(message, permitted=PERMITTED) == message


def test_concurrent_signing_during_rotation(tmp_path: Path, zone: LoopbackDns) -> None:
    keys = KeyStore(tmp_path / "dkim")
    for selector in ("a1", "a2"):
        keys.generate("busy.example", selector, "rsa-sha256", 2048)
        publish(zone, keys.dns_record("busy.example", selector))
    signer = DkimSigner(DkimConfig(), keys.root)
    message = _message(b"Subject: busy\r\n\r\n", b"text\r\n" * 200, domain="busy.example")
    results: list[bytes] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(25):
                signed = signer.sign(message, permitted=PERMITTED)
                results.append(signed)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for number in range(20):
        keys.activate("busy.example", ("a1", "a2")[number % 2])
    for thread in threads:
        thread.join(30)
    assert not errors and len(results) == 100
    for signed in results:
        assert list(dkimpy_verify(zone, signed).values()) == [True]


# --- the key store ------------------------------------------------------------


def test_key_files_are_private_pkcs8_and_first_key_of_each_algorithm_is_active(
    store: KeyStore,
) -> None:
    folder = store.root / DOMAIN
    assert store.root.stat().st_mode & 0o777 == 0o700
    assert folder.stat().st_mode & 0o777 == 0o700
    for name in ("r2026.pem", "e2026.pem", "active.json"):
        assert (folder / name).stat().st_mode & 0o777 == 0o600, name
    assert (folder / "r2026.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert json.loads((folder / "active.json").read_text()) == {
        "rsa-sha256": "r2026",
        "ed25519-sha256": "e2026",
    }
    listed = {(k.selector, k.algorithm, k.bits, k.active) for k in store.listing(DOMAIN)}
    assert listed == {("r2026", RSA_SHA256, 2048, True), ("e2026", ED25519_SHA256, 256, True)}


def test_dns_records_hold_the_public_keys(store: KeyStore) -> None:
    rsa_record = store.dns_record(DOMAIN, "r2026")
    assert rsa_record.name == "r2026._domainkey.example.org."
    assert [len(s) for s in rsa_record.strings][:-1] == [255]  # 2048-bit: two strings
    assert "".join(rsa_record.strings) == rsa_record.value
    key = serialization.load_pem_private_key((store.root / DOMAIN / "r2026.pem").read_bytes(), None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert rsa_record.value == "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    ed_record = store.dns_record(DOMAIN, "e2026")
    assert re.fullmatch(r"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=", ed_record.value)
    assert ed_record.zone_line == f'e2026._domainkey.example.org. IN TXT "{ed_record.value}"'


# --- phigate dkim ---------------------------------------------------------------


def _cli(*args: str) -> Result:
    umask = os.umask(0o022)  # `phigate` tightens the umask; keep this process as it was
    os.umask(umask)
    try:
        return CliRunner().invoke(main, ["dkim", *args], catch_exceptions=False)
    finally:
        os.umask(umask)


def test_cli_keygen_prints_a_record_that_mail_dkim_accepts(
    tmp_path: Path, zone: LoopbackDns
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    made = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "dkim", "keygen", "CLI.Example", "--selector",
         "2026a", "--data-dir", str(data)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "Active" in made.stdout and "dig +short TXT 2026a._domainkey.cli.example" in made.stdout
    line = next(ln for ln in made.stdout.splitlines() if " IN TXT " in ln)
    name, _, rdata = line.partition(" IN TXT ")
    assert name == "2026a._domainkey.cli.example."
    assert all(len(s) <= 255 for s in re.findall(r'"([^"]*)"', rdata))
    zone.add(name, "TXT", rdata)
    signer = DkimSigner(DkimConfig(), data / "dkim")
    message = _message(b"Subject: from the CLI\r\n\r\n", b"hi\r\n", domain="cli.example")
    [result] = mail_dkim_verify(zone, [signer.sign(message, permitted=PERMITTED)])
    assert result.result == "pass" and result.of("2026a") == "pass"


def test_cli_rotation_listing_and_removal(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert _cli("keygen", "clinic.example", "-s", "2026a", *data).exit_code == 0
    second = _cli("keygen", "clinic.example", "-s", "2026b", *data)
    assert second.exit_code == 0 and "Not active yet" in second.stdout
    assert "phigate dkim activate clinic.example 2026b" in second.stdout
    ed = _cli("keygen", "clinic.example", "-s", "2026e", "-a", "ed25519", "--json", *data)
    assert json.loads(ed.stdout)["active"] is True
    assert json.loads(ed.stdout)["dns"]["value"].startswith("v=DKIM1; k=ed25519; p=")

    def active() -> set[tuple[str, str]]:
        listed = json.loads(_cli("ls", "--json", *data).stdout)
        return {(k["algorithm"], k["selector"]) for k in listed if k["active"]}

    assert active() == {(RSA_SHA256, "2026a"), (ED25519_SHA256, "2026e")}
    switched = _cli("activate", "clinic.example", "2026b", *data)
    assert switched.exit_code == 0 and "Keep 2026a's DNS record" in switched.stdout
    assert active() == {(RSA_SHA256, "2026b"), (ED25519_SHA256, "2026e")}

    refused = _cli("rm", "clinic.example", "2026b", *data)
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert _cli("rm", "clinic.example", "2026a", *data).exit_code == 0
    assert not (tmp_path / "dkim" / "clinic.example" / "2026a.pem").exists()
    assert _cli("rm", "clinic.example", "2026e", "--force", *data).exit_code == 0
    assert active() == {(RSA_SHA256, "2026b")}
    record = _cli("dns", "clinic.example", "2026b", *data)
    assert record.exit_code == 0 and record.stdout.startswith(
        '2026b._domainkey.clinic.example. IN TXT "'
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["keygen", "clinic.example", "-s", "2026a"], "already has a key with selector 2026a"),
        (["keygen", "not a domain", "-s", "x1"], "'not a domain' is not a domain name"),
        (["keygen", "clinic.example", "-s", "bad selector"], "is not a valid selector"),
        (["keygen", "clinic.example", "-s", "-x"], "is not a valid selector"),
        (["keygen", "clinic.example", "-s", "k1", "--bits", "1024"], "2048 to 4096 bits"),
        (
            ["keygen", "clinic.example", "-s", "k1", "-a", "ed25519", "--bits", "2048"],
            "RSA keys only",
        ),
        (["activate", "clinic.example", "nope"], "has no key with selector nope"),
        (["dns", "clinic..example", "2026a"], "is not a domain name"),
    ],
)
def test_cli_refuses_bad_requests_with_exit_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert _cli("keygen", "clinic.example", "-s", "2026a", "-a", "ed25519", *data).exit_code == 0
    before = sorted(p.name for p in (tmp_path / "dkim" / "clinic.example").iterdir())
    result = _cli(*args, *data)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "dkim" / "clinic.example").iterdir()) == before


def test_cli_without_a_data_directory_says_how_to_make_one(tmp_path: Path) -> None:
    result = _cli("ls", "--data-dir", str(tmp_path / "missing"))
    assert result.exit_code == 2 and "phigate init DIR" in result.stderr


BODY_LINES = st.sampled_from(
    [b"", b" ", b"\t", b"  \t ", b"text", b"two  spaces", b"end ", b"QUJDRA==", b"a\tb", b" lead"]
)


@given(st.lists(BODY_LINES, max_size=40), st.integers(1, 40))
def test_the_body_hash_is_dkimpys_whatever_the_pieces(lines: list[bytes], piece: int) -> None:
    body = b"".join(line + b"\r\n" for line in lines)
    expected = hashlib.sha256(Relaxed.canonicalize_body(body)).digest()
    assert relaxed_body_hash(body, piece) == expected
    assert relaxed_body_hash(body) == expected
    # The body where it lies in the message, after its header (nothing copied).
    head = b"Subject: x \r\n\r\n"
    assert relaxed_body_hash(head + body, piece, start=len(head)) == expected
