"""DKIM and S/MIME through the running relay, checked by tools we did not write.

The relay signs what actually leaves (after the policy's subject change and
after S/MIME encryption): Perl's Mail::DKIM verifies the delivered bytes
against the records `phigate dkim dns` printed; `openssl cms -decrypt` opens
what was encrypted to the certificate imported with `phigate certs import`.
"""

from __future__ import annotations

import email
import email.policy
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dkim_verifiers import mail_dkim_verify
from dns_server import LoopbackDns
from harness import Phigate, Sink, message, via_sink, wait_until
from smime_pki import build_pki

POLICY = """\
version: 1
defaults:
  action: deliver
  via: [standard]
  subject: neutral
rules:
  - id: encrypt-for-partners
    when: {recipient_domain: example.org}
    action: deliver
    via: [smime, standard]
"""
CANARY = "Canary-Diagnosis-7Q4"


def zone_text(record: dict[str, object]) -> str:
    strings = record["strings"]
    assert isinstance(strings, list)
    return " ".join(f'"{part}"' for part in strings)


@pytest.fixture(scope="module")
def relayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("signing")
    pki = build_pki(tmp / "pki")
    policy_dir = tmp / "policy"
    policy_dir.mkdir()
    (policy_dir / "policy.yaml").write_text(POLICY)
    with Sink() as sink, LoopbackDns() as dns:
        gw = Phigate(
            tmp,
            policy_dir=str(policy_dir),
            delivery=via_sink(sink),
            smime={"trust_file": str(pki.path("root"))},
            dkim={"required_domains": ["clinic.example.org", "unsigned.example.org"]},
        )
        secret = gw.add_principal("ehr1", "clinic.example.org", "unsigned.example.org")
        gw.cli("dkim", "keygen", "clinic.example.org", "--selector", "rsa1")
        gw.cli(
            "dkim", "keygen", "clinic.example.org", "--selector", "ed1", "--algorithm", "ed25519"
        )
        for selector in ("rsa1", "ed1"):
            record = gw.json("dkim", "dns", "clinic.example.org", selector)
            dns.add(f"{selector}._domainkey.clinic.example.org", "TXT", zone_text(record))
        gw.cli("certs", "import", str(pki.path("good")), str(pki.path("intermediate")))
        with gw:
            gw.submit(
                secret,
                "a@clinic.example.org",
                ["alice@example.org", "nocert@example.org", "dr@partner.test"],
                message(
                    "a@clinic.example.org", "alice@example.org", f"About {CANARY}", f"{CANARY}\n"
                ),
            )
            with pytest.raises(smtplib.SMTPDataError) as refused:
                gw.submit(
                    secret,
                    "a@unsigned.example.org",
                    ["dr@partner.test"],
                    message("a@unsigned.example.org", "dr@partner.test", "s", "b"),
                )
            received = sink.wait_for(3)
        by_rcpt = {m.recipients[0]: m.content for m in received if len(m.recipients) == 1}
        yield {
            "by_rcpt": by_rcpt,
            "received": received,
            "dns": dns,
            "pki": pki,
            "refused": refused.value,
            "tmp": tmp,
        }


def test_delivered_mail_is_signed_rsa_and_ed25519_after_the_subject_change(
    relayed: dict[str, object],
) -> None:
    by_rcpt = relayed["by_rcpt"]
    assert isinstance(by_rcpt, dict)
    plain = by_rcpt["dr@partner.test"]
    parsed = email.message_from_bytes(plain, policy=email.policy.default)
    assert parsed["Subject"] == "Secure message"  # neutralised, then signed
    signatures = parsed.get_all("DKIM-Signature")
    assert signatures is not None and len(signatures) == 2
    assert {"a=rsa-sha256", "a=ed25519-sha256"} <= {
        tag.strip() for s in signatures for tag in str(s).split(";")
    }
    dns = relayed["dns"]
    assert isinstance(dns, LoopbackDns)
    tampered = plain.replace(b"Secure message", b"Changed message")
    verdict, after_tamper = mail_dkim_verify(dns, [plain, tampered])
    # Mail::DKIM 1.2023 knows no Ed25519; RSA must pass and a change must fail it.
    assert verdict.of("rsa1") == "pass"
    assert after_tamper.of("rsa1") == "fail"


def test_smime_recipient_gets_mail_openssl_decrypts_to_the_original(
    relayed: dict[str, object],
) -> None:
    by_rcpt, pki, tmp = relayed["by_rcpt"], relayed["pki"], relayed["tmp"]
    assert isinstance(by_rcpt, dict) and isinstance(tmp, Path)
    encrypted = by_rcpt["alice@example.org"]
    assert CANARY.encode() not in encrypted
    outer = email.message_from_bytes(encrypted, policy=email.policy.default)
    assert outer.get_content_type() == "application/pkcs7-mime"
    assert outer["DKIM-Signature"] is not None  # signed after encryption
    dns = relayed["dns"]
    assert isinstance(dns, LoopbackDns)
    assert mail_dkim_verify(dns, [encrypted])[0].of("rsa1") == "pass"
    source = tmp / "smime.eml"
    source.write_bytes(encrypted)
    opened = subprocess.run(
        [
            "openssl",
            "cms",
            "-decrypt",
            "-in",
            str(source),
            "-recip",
            str(pki.path("good")),
            "-inkey",
            str(pki.key_path),  # type: ignore[attr-defined]
        ],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    inner = email.message_from_bytes(opened, policy=email.policy.default)
    assert CANARY in inner.get_content()


def test_recipient_without_certificate_gets_the_next_mode(relayed: dict[str, object]) -> None:
    by_rcpt = relayed["by_rcpt"]
    assert isinstance(by_rcpt, dict)
    fallback = by_rcpt["nocert@example.org"]
    assert email.message_from_bytes(fallback).get_content_type() == "text/plain"


def test_required_domain_without_key_is_refused_at_data_with_451(
    relayed: dict[str, object],
) -> None:
    refused = relayed["refused"]
    assert isinstance(refused, smtplib.SMTPDataError)
    assert refused.smtp_code == 451
    assert b"DKIM" in refused.smtp_error
    received = relayed["received"]
    assert isinstance(received, list)
    assert all(m.sender != "a@unsigned.example.org" for m in received)


def test_unusable_signing_certificate_stops_start_up_with_the_reason(tmp_path: Path) -> None:
    gw = Phigate(
        tmp_path,
        smime={
            "sign_cert_file": str(tmp_path / "missing.crt"),
            "sign_key_file": str(tmp_path / "missing.key"),
        },
    )
    with pytest.raises(RuntimeError) as stopped:
        gw.start()
    text = str(stopped.value)
    assert "S/MIME settings are not usable" in text and "missing.crt" in text
    assert "Traceback" not in text


def test_a_broken_dkim_key_defers_rather_than_sending_unsigned(tmp_path: Path) -> None:
    with Sink() as sink:
        gw = Phigate(tmp_path, delivery=via_sink(sink))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        gw.cli("dkim", "keygen", "clinic.example.org", "--selector", "rsa1")
        key = Path(gw.settings["data_dir"]) / "dkim" / "clinic.example.org" / "rsa1.pem"
        key.write_text("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
        with gw:
            gw.submit(
                secret,
                "a@clinic.example.org",
                ["dr@partner.test"],
                message("a@clinic.example.org", "dr@partner.test", "s", "b"),
            )

            def deferred() -> bool:
                rows = gw.json("queue", "ls")
                return bool(rows) and rows[0]["last_status"] == "4.3.0"

            wait_until(deferred)
        assert sink.messages == []
