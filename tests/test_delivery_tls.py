"""Delivery with `tls: required` never falls back to plaintext or an unverified certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from certs import make_certs, server_context
from harness import Phigate, Sink, via_sink, wait_until


def _send_one(tmp_path: Path, sink: Sink, ca: Path) -> Phigate:
    gw = Phigate(
        tmp_path,
        delivery=via_sink(sink, tls="required", ca_file=str(ca)),
    )
    secret = gw.add_principal("ehr1", "clinic.example.org")
    gw.start()
    gw.submit(secret, "a@clinic.example.org", ["b@partner.test"])
    return gw


def test_required_tls_delivers_over_verified_tls(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    with Sink(server_context(certs["good"], certs["good_key"])) as sink:
        gw = _send_one(tmp_path, sink, certs["ca"])
        try:
            got = sink.wait_for(1)
        finally:
            gw.stop()
    assert got[0].tls is True


def _assert_deferred_never_sent(gw: Phigate, sink: Sink) -> None:
    seen: list[dict[str, Any]] = []

    def deferred() -> bool:
        # Read once per check: with fast retries the job may be active again
        # by the time of a second look.
        seen[:] = gw.json("queue", "ls")
        return any(r["attempts"] >= 1 and r["state"] == "queued" for r in seen)

    try:
        wait_until(deferred)
    finally:
        gw.stop()
    assert sink.messages == []
    assert seen[0]["last_status"] == "4.7.5"


def test_required_tls_defers_when_starttls_is_not_offered(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    with Sink() as sink:
        _assert_deferred_never_sent(_send_one(tmp_path, sink, certs["ca"]), sink)


def test_required_tls_defers_on_an_unverifiable_certificate(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    with Sink(server_context(certs["impostor"], certs["impostor_key"])) as sink:
        _assert_deferred_never_sent(_send_one(tmp_path, sink, certs["ca"]), sink)


SMARTHOST_POLICY = """\
version: 1
defaults:
  action: deliver
  via: [standard]
  subject: keep
transport:
  - domains: [partner.test]
    require: verified
"""


def test_transport_rule_requires_a_verified_smarthost(tmp_path: Path) -> None:
    # delivery.tls is opportunistic, but the recipient domain's rule demands a
    # verified server: the smarthost carrying its mail must be one.
    certs = make_certs(tmp_path)
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    (policy_dir / "policy.yaml").write_text(SMARTHOST_POLICY)
    with Sink() as sink:
        gw = Phigate(
            tmp_path,
            policy_dir=str(policy_dir),
            delivery=via_sink(sink, tls="opportunistic", ca_file=str(certs["ca"])),
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        gw.start()
        gw.submit(secret, "a@clinic.example.org", ["b@partner.test"])
        _assert_deferred_never_sent(gw, sink)
