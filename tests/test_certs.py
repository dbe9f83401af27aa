"""The recipient certificate store and `phigate certs`: import, usability rules, ls/show/rm."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import hashes, serialization
from smime_pki import DAY, NOW, Pki, build_pki, make_authority, make_recipient, pem

from gateway.cli.certs import certs_group
from gateway.smime.certs.store import CertStore

UNUSABLE = {
    "expired": ("old@example.org", "expired on"),
    "not_yet_valid": ("early@example.org", "not valid before"),
    "untrusted": ("eve@example.org", "does not chain to a trusted CA"),
    "ec_key": ("curve@example.org", "encryption here needs an RSA key"),
    "no_key_encipherment": ("signer@example.org", "does not allow key_encipherment"),
    "server_auth": ("server@example.org", "does not include emailProtection (serverAuth)"),
    "revoked": ("gone@example.org", "revoked on"),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return build_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def config(tmp_path: Path, pki: Pki) -> Path:
    (tmp_path / "data").mkdir()
    path = tmp_path / "phigate.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\nsmime:\n  trust_file: {pki.path('root')}\n")
    return path


def certs(config: Path, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(certs_group, [*args, "-c", str(config)])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def certs_json(config: Path, *args: str) -> Any:
    return json.loads(certs(config, *args, "--json").stdout)


def by_address(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a: c for c in listing["certificates"] for a in c["addresses"]}


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def test_import_pem_bundle_der_and_p7b_each_stored_once(
    config: Path, pki: Pki, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle.pem"  # several certificates in one PEM file
    bundle.write_bytes(pem(pki.certs["good"]) + pem(pki.intermediate.cert))
    der = tmp_path / "gcm.cer"
    der.write_bytes(pki.certs["gcm"].public_bytes(serialization.Encoding.DER))
    p7b, p7b_der = tmp_path / "chain.p7b", tmp_path / "chain-der.p7c"
    openssl("crl2pkcs7", "-nocrl", "-certfile", str(pki.path("subject_email")), "-out", str(p7b))
    openssl(
        "crl2pkcs7",
        "-nocrl",
        "-certfile",
        str(pki.path("expired")),
        "-outform",
        "DER",
        "-out",
        str(p7b_der),
    )
    report = certs_json(config, "import", str(bundle), str(der), str(p7b), str(p7b_der))
    assert report["errors"] == []
    imported = {item["fingerprint"]: item for item in report["imported"]}
    assert len(imported) == 5 and all(item["new"] for item in imported.values())
    good = next(i for i in imported.values() if i["addresses"] == ["alice@example.org"])
    assert good["status"] == "usable" and good["subject"] == "CN=Alice"
    assert good["not_after"].startswith(str(pki.certs["good"].not_valid_after_utc.date()))
    assert next(i for i in imported.values() if i["kind"] == "ca")["status"].startswith(
        "it is a CA certificate"
    )
    stored = sorted(p.name for p in (tmp_path / "data" / "certs").iterdir())
    assert stored == sorted(f"{fp}.pem" for fp in imported)
    # Importing again stores nothing twice.
    again = certs_json(config, "import", str(bundle), str(der))
    assert [item["new"] for item in again["imported"]] == [False, False, False]
    assert len(list((tmp_path / "data" / "certs").iterdir())) == 5
    listing = by_address(certs_json(config, "ls"))
    assert listing["legacy@example.org"]["status"] == "usable"  # subject emailAddress, PKCS#7
    assert listing["modern@example.org"]["smime_capabilities"] == ["aes256_gcm", "aes256_cbc"]
    assert listing["old@example.org"]["status"].startswith("expired on")
    human = certs(config, "ls").stdout
    assert "alice@example.org  usable" in human
    only = certs_json(config, "ls", "alice@EXAMPLE.org")["certificates"]
    assert [c["addresses"] for c in only] == [["alice@example.org"]]


def test_every_unusable_case_is_reported_and_never_found(
    config: Path, pki: Pki, tmp_path: Path
) -> None:
    files = [str(pki.path(name)) for name in pki.certs]
    certs(config, "import", *files, str(pki.path("intermediate")))
    listing = by_address(certs_json(config, "ls"))
    # Before the CRL is imported, the revoked certificate is still usable.
    assert listing["gone@example.org"]["status"] == "usable"
    imported = certs_json(config, "import", str(pki.directory / "revoked.crl.pem"))
    assert imported["imported"][0]["kind"] == "crl"
    assert imported["imported"][0]["status"] == "in force"
    full = certs_json(config, "ls")
    listing = by_address(full)
    assert [crl["revoked"] for crl in full["crls"]] == [1]
    store = CertStore(tmp_path / "data" / "certs", pki.path("root"))
    for name, (address, reason) in UNUSABLE.items():
        assert reason in listing[address]["status"], (name, listing[address])
        assert store.find(address) is None, name
    for address in ("alice@example.org", "modern@example.org", "legacy@example.org"):
        assert listing[address]["status"] == "usable"
        assert store.find(address) is not None
    found = store.find("alice@example.org")
    assert found is not None and [c.subject.rfc4514_string() for c in found.chain] == [
        "CN=Alice",
        "CN=Test S/MIME Intermediate",
        "CN=Test S/MIME Root",
    ]
    # Dates are checked at the time asked for.
    later = NOW + (pki.certs["good"].not_valid_after_utc - NOW) * 2
    assert store.find("alice@example.org", now=later) is None
    early = pki.certs["not_yet_valid"].not_valid_before_utc
    assert store.find("early@example.org", now=early) is not None


def test_crls_count_only_when_signed_by_their_issuer(pki: Pki, tmp_path: Path) -> None:
    store = CertStore(tmp_path / "certs", pki.path("root"))
    store.import_files([pki.path("good"), pki.path("intermediate")])
    good_serial = pki.certs["good"].serial_number
    impostor = make_authority("Test S/MIME Intermediate")  # same name, another key
    forged = tmp_path / "forged.crl"
    forged.write_bytes(impostor.crl(good_serial).public_bytes(serialization.Encoding.DER))
    (item,) = store.import_files([forged]).items
    assert item.crl is not None and "signature does not verify" in (item.crl.problem or "")
    assert store.find("alice@example.org") is not None
    # The root revokes the intermediate: every certificate under it is unusable.
    revoking = tmp_path / "root.crl"
    root_crl = pki.root.crl(pki.intermediate.cert.serial_number)
    revoking.write_bytes(root_crl.public_bytes(serialization.Encoding.PEM))
    store.import_files([revoking])
    assert store.find("alice@example.org") is None
    (entry,) = store.entries(address="alice@example.org")
    assert entry.status.startswith("revoked on") and "CN=Test S/MIME Root" in entry.status


def test_system_trust_store_does_not_trust_a_private_ca(pki: Pki, tmp_path: Path) -> None:
    store = CertStore(tmp_path / "certs", None)
    store.import_files([pki.path("good"), pki.path("intermediate")])
    assert store.trust_source is not None and store.trust_error is None
    assert store.find("alice@example.org") is None
    (entry,) = store.entries(address="alice@example.org")
    assert "does not chain to a trusted CA" in entry.status


def test_intermediate_from_the_store_completes_the_chain(pki: Pki, tmp_path: Path) -> None:
    store = CertStore(tmp_path / "certs", pki.path("root"))
    store.import_files([pki.path("good")])
    assert store.find("alice@example.org") is None
    store.import_files([pki.path("intermediate")])
    assert store.find("alice@example.org") is not None


def test_dropped_and_deleted_files_are_noticed_without_restart(pki: Pki, tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    directory.mkdir()
    shutil.copy(pki.path("intermediate"), directory / "issuing-ca.crt")
    store = CertStore(directory, pki.path("root"))
    assert store.find("alice@example.org") is None
    dropped = directory / "Alice Smith.cer"  # DER, any name
    dropped.write_bytes(pki.certs["good"].public_bytes(serialization.Encoding.DER))
    assert store.find("alice@example.org") is not None
    dropped.unlink()
    assert store.find("alice@example.org") is None
    (directory / "notes.txt").write_text("not a certificate\n")
    assert store.find("alice@example.org") is None
    (unreadable,) = store.unreadable()
    assert unreadable.path.endswith("notes.txt") and "not a certificate" in unreadable.error


def test_newest_usable_certificate_wins(pki: Pki, tmp_path: Path) -> None:
    store = CertStore(tmp_path / "certs", pki.path("root"))
    longer = make_recipient(
        pki.intermediate, "alice@example.org", pki.rsa_key, not_after=NOW + 700 * DAY
    )
    (tmp_path / "longer.pem").write_bytes(pem(longer))
    store.import_files([pki.path("good"), pki.path("intermediate"), tmp_path / "longer.pem"])
    found = store.find("alice@example.org")
    assert found is not None and found.certificate == longer


def test_show_and_rm(config: Path, pki: Pki, tmp_path: Path) -> None:
    bundle = tmp_path / "two.pem"
    bundle.write_bytes(pem(pki.certs["good"]) + pem(pki.certs["gcm"]))
    certs_dir = tmp_path / "data" / "certs"
    certs_dir.mkdir()
    shutil.copy(bundle, certs_dir / "partner-bundle.pem")  # dropped by an admin
    certs(config, "import", str(pki.path("intermediate")))
    fingerprint = by_address(certs_json(config, "ls"))["alice@example.org"]["fingerprint"]
    (shown,) = certs_json(config, "show", fingerprint[:10])
    assert shown["key"] == "RSA 2048" and shown["status"] == "usable"
    assert shown["chain"][-1] == "CN=Test S/MIME Root"
    assert shown["key_usage"] == ["digital_signature", "key_encipherment"]
    assert shown["extended_key_usage"] == ["emailProtection"]
    text = certs(config, "show", "modern@example.org").stdout
    assert "aes256_gcm" in text and "AES-256-GCM when smime.algorithm is auto" in text
    assert "Chain:       CN=Recipient <- CN=Test S/MIME Intermediate <- CN=Test S/MIME Root" in text

    removed = certs_json(config, "rm", fingerprint[:12])
    assert [r["fingerprint"] for r in removed] == [fingerprint]
    # The bundle was taken apart: the other certificate stays, in a file of its own.
    assert not (certs_dir / "partner-bundle.pem").exists()
    listing = by_address(certs_json(config, "ls"))
    assert "alice@example.org" not in listing
    assert listing["modern@example.org"]["files"] == [
        f"{listing['modern@example.org']['fingerprint']}.pem"
    ]
    assert "Removed" in certs(config, "rm", "modern@example.org").stdout
    assert "modern@example.org" not in by_address(certs_json(config, "ls"))

    missing = certs(config, "rm", fingerprint[:12], code=1)
    assert "no certificate with fingerprint" in missing.stderr
    bad = certs(config, "show", "xyz", code=2)
    assert "neither an e-mail address nor a SHA-256 fingerprint" in bad.stderr


def test_ambiguous_prefix_is_refused(config: Path, pki: Pki, tmp_path: Path) -> None:
    seen: dict[str, Path] = {}
    collision = None
    for number in range(5000):  # about 300 certificates until two share 4 hex digits
        cert = make_recipient(pki.intermediate, f"r{number}@example.org", pki.rsa_key)
        path = tmp_path / f"r{number}.pem"
        path.write_bytes(pem(cert))
        prefix = cert.fingerprint(hashes.SHA256()).hex()[:4]
        if prefix in seen:
            collision = (prefix, seen[prefix], path)
            break
        seen[prefix] = path
    assert collision is not None
    prefix, first, second = collision
    certs(config, "import", str(first), str(second))
    result = certs(config, "rm", prefix, code=2)
    assert f"fingerprint prefix {prefix} matches 2 certificates" in result.stderr
    assert "give more digits" in result.stderr
    assert len(list((tmp_path / "data" / "certs").iterdir())) == 2


def test_import_errors_are_clear(config: Path, pki: Pki, tmp_path: Path) -> None:
    text = tmp_path / "readme.txt"
    text.write_text("hello\n")
    result = certs(
        config,
        "import",
        str(text),
        str(tmp_path / "missing.pem"),
        str(pki.key_path),
        str(pki.path("good")),
        code=1,
    )
    assert f"{text}: not a certificate, CRL or PKCS#7 bundle" in result.stderr
    assert "missing.pem: cannot read it: No such file or directory" in result.stderr
    assert "recipient.key: it holds a private key" in result.stderr
    assert "alice@example.org" in result.stdout  # the good file was still imported


def test_ls_without_a_data_dir_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "phigate.yaml"
    config.write_text(f"data_dir: {tmp_path / 'nowhere'}\n")
    result = certs(config, "ls", code=2)
    assert "no data directory" in result.stderr


def test_phigate_certs_command(config: Path, pki: Pki) -> None:
    command = [sys.executable, "-m", "gateway.cli", "certs", "import", str(pki.path("good"))]
    done = subprocess.run(
        [*command, "--json", "-c", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["imported"][0]["addresses"] == ["alice@example.org"]
