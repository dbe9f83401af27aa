"""bench/dkim_signing.py runs: phigate's first signature of each algorithm is byte for
byte dkimpy's for the same fields (oversigned ones included), and every case is timed."""

from __future__ import annotations

from harness import bench_json


def test_signatures_match_dkimpy_and_every_case_is_timed() -> None:
    # The script exits non-zero, failing bench_json, if a signature differs from dkimpy's.
    figures = bench_json("dkim_signing.py", "--seconds", "0.05")
    assert set(figures["per_second"]) == {
        "phigate rsa-sha256",
        "phigate ed25519-sha256",
        "phigate dual (rsa + ed25519)",
        "dkimpy rsa-sha256",
        "dkimpy ed25519-sha256 (PyNaCl)",
    }
    assert all(rate > 0 for rate in figures["per_second"].values())
    assert figures["dual_10mb_seconds"] > 0
