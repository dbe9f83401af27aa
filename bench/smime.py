"""S/MIME benchmark: encryption (CBC, GCM, signed or not) and certificate lookups.

    .venv/bin/python bench/smime.py            # about 30 s
    .venv/bin/python bench/smime.py --quick    # fewer runs, 2,000 certificates
    .venv/bin/python bench/smime.py --json

Everything is generated in a temporary directory: a root CA and an issuing CA
(EC P-256), recipient certificates with one RSA-2048 key, the organisation's
signing certificate, and the messages. See bench/README.md, "S/MIME".
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smime_pki import Pki, build_pki, key_pem, make_recipient, pem

from gateway.config import SmimeConfig
from gateway.smime import SmimeEncryptor
from gateway.smime.certs.store import CertStore

RECIPIENT = "alice@example.org"


def message(size: int) -> bytes:
    """A letter with an attachment, `size` bytes on the wire (CRLF)."""
    msg = EmailMessage()
    msg["From"] = "EHR <ehr@clinic.example.org>"
    msg["To"] = RECIPIENT
    msg["Subject"] = "Your results"
    msg["Date"] = "Fri, 27 Nov 2026 10:00:00 +0000"
    msg["Message-ID"] = "<bench@clinic.example.org>"
    msg.set_content("Dear Alice,\n\nplease find your results attached.\n")
    overhead = len(msg.as_bytes(policy=SMTP)) + 400
    raw = random.Random(size).randbytes(max(0, (size - overhead) * 3 // 4))
    msg.add_attachment(raw, maintype="application", subtype="pdf", filename="results.pdf")
    return msg.as_bytes(policy=SMTP)


def timings(call: Callable[[], object], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    spent = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        spent.append((time.perf_counter_ns() - start) / 1e6)
    return spent


def summary(name: str, spent: list[float]) -> dict[str, Any]:
    ordered = sorted(spent)
    return {
        "what": name,
        "runs": len(spent),
        "median_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "max_ms": round(ordered[-1], 3),
    }


def check_cbc(pki: Pki, content: bytes) -> None:
    """The benchmark measures working output: decrypt one result."""
    der = base64.b64decode(content.split(b"\r\n\r\n", 1)[1])
    pkcs7.pkcs7_decrypt_der(der, pki.certs["good"], pki.rsa_key, [])


def encryption(pki: Pki, root: Path, quick: bool) -> list[dict[str, Any]]:
    store = CertStore(root / "certs", pki.path("root"))
    store.import_files([pki.path("good"), pki.path("intermediate")])
    org = make_recipient(pki.intermediate, "ehr@clinic.example.org", pki.rsa_key, cn="Clinic")
    (root / "org.pem").write_bytes(pem(org) + pem(pki.intermediate.cert))
    (root / "org.key").write_bytes(key_pem(pki.rsa_key))
    results = []
    sizes = ((5_000, "5 KB", 200 if quick else 2000), (10_000_000, "10 MB", 3 if quick else 10))
    for size, label, runs in sizes:
        data = message(size)
        for algorithm in ("aes256-cbc", "aes256-gcm"):
            for signed in (False, True):
                config = SmimeConfig.model_validate(
                    {
                        "algorithm": algorithm,
                        "sign_cert_file": "org.pem" if signed else None,
                        "sign_key_file": "org.key" if signed else None,
                    }
                )
                smime = SmimeEncryptor(config, store, root)
                result = smime.encrypt_for(data, RECIPIENT)
                assert result is not None and result.algorithm == algorithm
                if algorithm == "aes256-cbc":
                    check_cbc(pki, result.content)
                name = f"{label} {algorithm}{' signed' if signed else ''}"
                spent = timings(partial(smime.encrypt_for, data, RECIPIENT), runs, 2)
                row = summary(name, spent)
                row["message_bytes"] = len(data)
                results.append(row)
    return results


def lookups(pki: Pki, root: Path, count: int) -> dict[str, Any]:
    directory = root / "many"
    directory.mkdir()
    start = time.perf_counter()
    addresses = []
    for number in range(count):
        address = f"patient{number}@example.org"
        cert = make_recipient(pki.intermediate, address, pki.rsa_key)
        name = cert.fingerprint(hashes.SHA256()).hex()
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        addresses.append(address)
    (directory / "issuing-ca.pem").write_bytes(pem(pki.intermediate.cert))
    generated = time.perf_counter() - start

    store = CertStore(directory, pki.path("root"))
    start = time.perf_counter()
    assert store.find(addresses[0]) is not None
    first_scan = time.perf_counter() - start

    sample = random.Random(1).sample(addresses, min(1000, count))
    cold = []
    for address in sample:
        cold.extend(timings(partial(store.find, address), 1, 0))
    warm = [
        spent for address in sample[:200] for spent in timings(partial(store.find, address), 20, 0)
    ]
    missing = timings(partial(store.find, "nobody@example.org"), 2000, 100)

    start = time.perf_counter()
    (directory / "late-arrival.pem").write_bytes(pem(pki.certs["gcm"]))
    assert store.find("modern@example.org") is not None
    rescan = time.perf_counter() - start
    return {
        "certificates": count,
        "generate_s": round(generated, 2),
        "first_scan_s": round(first_scan, 3),
        "rescan_after_one_new_file_s": round(rescan, 3),
        "find": [
            summary("first lookup of an address (chain built)", cold),
            summary("repeated lookup", warm),
            summary("address without certificate", missing),
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, 2,000 certificates")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--certificates", type=int, default=None, help="store size (10000)")
    args = parser.parse_args()
    count = args.certificates or (2000 if args.quick else 10_000)
    with tempfile.TemporaryDirectory(prefix="phigate-smime-bench-") as tmp:
        root = Path(tmp)
        pki = build_pki(root / "pki")
        results: dict[str, Any] = {
            "encryption": encryption(pki, root, args.quick),
            "lookup": lookups(pki, root, count),
            "cpus": os.cpu_count(),
        }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| what | message bytes | runs | median ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in results["encryption"]:
        print(
            f"| {row['what']} | {row['message_bytes']} | {row['runs']} | "
            f"{row['median_ms']} | {row['p99_ms']} | {row['max_ms']} |"
        )
    lookup = results["lookup"]
    print(
        f"\nStore of {lookup['certificates']} certificates (generated in "
        f"{lookup['generate_s']} s): first scan {lookup['first_scan_s']} s, "
        f"rescan after one new file {lookup['rescan_after_one_new_file_s']} s"
    )
    print("| find | runs | median ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for row in lookup["find"]:
        print(
            f"| {row['what']} | {row['runs']} | {row['median_ms']} | "
            f"{row['p99_ms']} | {row['max_ms']} |"
        )


if __name__ == "__main__":
    main()
