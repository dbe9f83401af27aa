"""Verified transport end to end: every TLS case against real SMTP servers on
loopback, a loopback DNS server (MX, A, TLSA with the AD flag of a validating
resolver), and a policy with per-domain transport rules.

One message goes to one recipient per case; each case's MX host is its own
loopback address. Nothing may ever reach a server whose TLS was not verified
when the recipient's mode required it.
"""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import ssl
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from certs import issue, make_certs, server_context
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from dns_server import LoopbackDns
from harness import Phigate, SinkHandler, free_port, wait_until
from https_server import HttpsServer, Request, Response

POLICY = """\
version: 1
defaults:
  action: deliver
  via: [tls]
  subject: keep
rules:
  - id: tls-then-standard
    when: {recipient_domain: fallback.test}
    action: deliver
    via: [tls, standard]
  - id: standard-only
    when:
      recipient_domain:
        [plain.test, stsbad.test, ststesting.test, danestd.test, stsverified.test,
         stsverifiedself.test, stsdane.test]
    action: deliver
    via: [standard]
transport:
  - domains: [pinned.test]
    pin_sha256: ["%(pin)s"]
  - domains: [partner.test, stsdane.test]
    require: dane
  - domains: [stsverified.test, stsverifiedself.test]
    require: verified
"""


class LoopbackSink:
    """An SMTP server on one loopback address; STARTTLS when given a context."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.handler = SinkHandler()
        self.controller = Controller(
            self.handler, hostname=host, port=port, server_hostname=host, tls_context=tls
        )

    @property
    def messages(self) -> list[bytes]:
        with self.handler.lock:
            return [m.content for m in self.handler.messages]


@contextmanager
def failing_starttls(host: str, port: int) -> Iterator[None]:
    """A server that offers STARTTLS, says go ahead, then breaks the handshake."""
    listener = socket.create_server((host, port))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.sendall(b"220 broken.test ESMTP\r\n")
                    conn.recv(1024)  # EHLO
                    conn.sendall(b"250-broken.test\r\n250 STARTTLS\r\n")
                    conn.recv(1024)  # STARTTLS
                    conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                    conn.recv(4096)  # ClientHello
                    conn.sendall(b"this is not a TLS record\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        listener.close()


class PolicyServer(HttpsServer):
    """MTA-STS policy hosts of several domains on one HTTPS port, told apart by SNI."""

    def _route(self, request: Request) -> Response:
        super()._route(request)  # counted
        domain = (request.server_name or "").removeprefix("mta-sts.").removesuffix(".test")
        if request.path == "/.well-known/mta-sts.txt" and domain in STS_POLICIES:
            return Response(200, STS_POLICIES[domain].encode())
        return Response(404, b"not found\n")


def server_certificate(case: str, mx: str, certs: Path, other_ca: Path) -> dict[str, Path]:
    """The certificate each case's MX host presents."""
    if case == "wrongname":
        return issue(certs, case, ["elsewhere.test"])
    if case == "expired":
        return issue(certs, case, [mx], valid_days=(-30, -1))
    if case in ("selfsigned", "ststesting", "stsverifiedself"):
        return issue(certs, case, [mx], self_signed=True)
    if case in ("daneee", "pinned"):
        return issue(certs, case, ["wrong.test"], self_signed=True)
    if case == "daneta":
        return issue(other_ca, case, [mx])
    return issue(certs, case, [mx])


def spki_sha256(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def cert_sha256(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def outcomes(db_path: Path) -> dict[str, tuple[str, str]]:
    """First delivery outcome (event, detail) per recipient, from the audit trail."""
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT recipients, event, detail FROM audit_events "
            "WHERE event IN ('delivered', 'deferred', 'bounced') ORDER BY id"
        ).fetchall()
    first: dict[str, tuple[str, str]] = {}
    for recipients, event_name, detail in rows:
        first.setdefault(recipients.strip('[]"'), (event_name, detail or ""))
    return first


def statuses(db_path: Path) -> dict[str, str]:
    """Enhanced status of the first delivery outcome per recipient."""
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT recipients, result FROM audit_events "
            "WHERE event IN ('delivered', 'deferred', 'bounced') ORDER BY id"
        ).fetchall()
    first: dict[str, str] = {}
    for recipients, result in rows:
        first.setdefault(recipients.strip('[]"'), result)
    return first


def tls_sessions(db_path: Path) -> dict[str, tuple[str, str, int]]:
    """Counted TLS sessions per recipient domain: (policy type, result, sessions)."""
    return {domain: counted[:3] for domain, counted in tls_session_rows(db_path).items()}


def tls_session_rows(db_path: Path) -> dict[str, tuple[str, str, int, str, str]]:
    """(policy type, result, sessions, sending IP, receiving IP) per recipient domain."""
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT c.policy_domain, p.policy_type, c.result, c.sessions, c.sending_ip, "
            "c.receiving_ip FROM tls_session_counts c JOIN tls_policies p USING (policy_hash)"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


CASES = [
    "valid",  # CA-verified certificate for the MX name
    "wrongname",  # CA-signed, for another name
    "expired",
    "selfsigned",
    "nostarttls",
    "brokentls",  # STARTTLS offered, then the handshake fails
    "daneee",  # DANE-EE: self-signed, wrong name, matched by its key
    "daneta",  # DANE-TA: chain to a CA published in TLSA (not in the trust store)
    "danebad",  # TLSA present but matching nothing: DANE decides, CA validity is not enough
    "pinned",  # policy pins the certificate: self-signed is fine
    "pinnedbad",  # ... and a CA-valid certificate that is not the pinned one fails
    "partner",  # policy requires DANE; no TLSA: no delivery
    "fallback",  # via [tls, standard]: no STARTTLS, so the next mode delivers
    "plain",  # via [standard], delivery.tls opportunistic: plaintext allowed
    "danestd",  # mode standard, TLSA matching nothing: DANE applies in every mode
    "sts",  # MTA-STS enforce, MX listed, CA-verified
    "stsbad",  # MTA-STS enforce, MX not listed: not used even in mode standard
    "ststesting",  # MTA-STS testing, self-signed: reported, delivered opportunistically
    # MTA-STS testing never lowers what the policy or the mode requires:
    "stsverified",  # no STARTTLS, transport rule `require: verified`, mode standard
    "stsverifiedself",  # self-signed certificate, `require: verified`, mode standard
    "stsdane",  # no STARTTLS, `require: dane`, mode standard
    "ststls",  # no STARTTLS, mode tls
]

STS_POLICIES = {
    "sts": "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n",
    "stsbad": "version: STSv1\r\nmode: enforce\r\nmx: other.stsbad.test\r\nmax_age: 86400\r\n",
    "ststesting": "version: STSv1\r\nmode: testing\r\nmx: mx.ststesting.test\r\nmax_age: 86400\r\n",
    **{
        case: f"version: STSv1\r\nmode: testing\r\nmx: mx.{case}.test\r\nmax_age: 86400\r\n"
        for case in ("stsverified", "stsverifiedself", "stsdane", "ststls")
    },
}


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("security")
    certs = tmp / "certs"
    certs.mkdir()
    paths = make_certs(certs)
    other_ca = tmp / "other-ca"
    other_ca.mkdir()
    make_certs(other_ca)  # a CA phigate does not trust, published only in TLSA
    port = free_port()
    sinks: dict[str, LoopbackSink] = {}
    with ExitStack() as stack:
        dns = stack.enter_context(LoopbackDns())
        dns.authenticated = True  # as a validating resolver answers for signed zones
        for n, case in enumerate(CASES, start=2):
            host, domain = f"127.0.0.{n}", f"{case}.test"
            mx = f"mx.{domain}"
            dns.add(domain, "MX", f"10 {mx}.")
            dns.add(mx, "A", host)
            if case in ("nostarttls", "fallback", "plain", "stsverified", "stsdane", "ststls"):
                tls = None
            elif case == "brokentls":
                stack.enter_context(failing_starttls(host, port))
                continue
            else:
                issued = server_certificate(case, mx, certs, other_ca)
                tls = server_context(issued["chain"], issued["key"])
                if case == "daneee":
                    dns.add(f"_{port}._tcp.{mx}", "TLSA", f"3 1 1 {spki_sha256(issued['cert'])}")
                if case == "daneta":
                    ta = cert_sha256(other_ca / "ca.crt")
                    dns.add(f"_{port}._tcp.{mx}", "TLSA", f"2 0 1 {ta}")
                if case in ("danebad", "danestd"):
                    dns.add(f"_{port}._tcp.{mx}", "TLSA", f"3 1 1 {'ab' * 32}")
                if case == "pinned":
                    pin = cert_sha256(issued["cert"])
            sink = LoopbackSink(host, port, tls)
            sink.controller.start()
            stack.callback(sink.controller.stop)
            sinks[case] = sink
        dns.add("clinic.example.org", "MX", "10 mx.valid.test.")  # where DSNs would go
        web_cert = issue(certs, "mta-sts", [f"mta-sts.{d}.test" for d in STS_POLICIES])
        web = stack.enter_context(PolicyServer(server_context(web_cert["cert"], web_cert["key"])))
        for case in STS_POLICIES:
            dns.add(f"_mta-sts.{case}.test", "TXT", '"v=STSv1; id=2026112801;"')
            dns.add(f"mta-sts.{case}.test", "A", "127.0.0.1")
        policy_dir = tmp / "policy"
        policy_dir.mkdir()
        pinned_bad = "pinnedbad"
        (policy_dir / "policy.yaml").write_text(
            POLICY.replace("[pinned.test]", f"[pinned.test, {pinned_bad}.test]") % {"pin": pin}
        )
        gw = Phigate(
            tmp,
            policy_dir=str(policy_dir),
            delivery={
                "mode": "mx",
                "nameservers": [dns.nameserver],
                "dane_resolvers": [dns.nameserver],
                "mta_sts_https_port": web.port,
                "mx_port": port,
                "ca_file": str(paths["ca"]),
                "connect_timeout": 3.0,
                "command_timeout": 5.0,
                "retry_schedule": [30],
            },
            tls_reports={"enabled": True, "organization": "Test Clinic"},
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        recipients = [f"dr@{case}.test" for case in CASES]
        with gw:
            gw.submit(secret, "a@clinic.example.org", recipients)
            wait_until(lambda: len(outcomes(gw.db_path)) == len(CASES), 60)
            yield {
                "outcomes": outcomes(gw.db_path),
                "sinks": sinks,
                "pin": pin,
                "sessions": tls_sessions(gw.db_path),
                "session_rows": tls_session_rows(gw.db_path),
                "statuses": statuses(gw.db_path),
            }


def _outcome(delivered: dict[str, object], case: str) -> tuple[str, str]:
    found = delivered["outcomes"]
    assert isinstance(found, dict)
    result: tuple[str, str] = found[f"dr@{case}.test"]
    return result


def _received(delivered: dict[str, object], case: str) -> list[bytes]:
    sinks = delivered["sinks"]
    assert isinstance(sinks, dict)
    return sinks[case].messages if case in sinks else []


@pytest.mark.parametrize(
    ("case", "verified"),
    [
        ("valid", "pkix"),
        ("daneee", "dane-ee"),
        ("daneta", "dane-ta"),
        ("pinned", "pin"),
        ("sts", "mta-sts"),
    ],
)
def test_verified_delivery_records_tls_evidence(
    delivered: dict[str, object], case: str, verified: str
) -> None:
    event_name, detail = _outcome(delivered, case)
    assert event_name == "delivered", detail
    assert len(_received(delivered, case)) == 1
    assert f"verify={verified}" in detail
    assert "tls=TLSv1.3" in detail or "tls=TLSv1.2" in detail
    assert "cipher=" in detail and f"mx=mx.{case}.test" in detail
    fingerprint = detail.split("cert=sha256:")[1].split()[0]
    assert len(fingerprint) == 64


def test_pinned_evidence_is_the_pinned_fingerprint(delivered: dict[str, object]) -> None:
    _event, detail = _outcome(delivered, "pinned")
    assert f"cert=sha256:{delivered['pin']}" in detail


@pytest.mark.parametrize(
    "case",
    [
        "wrongname",
        "expired",
        "selfsigned",
        "nostarttls",
        "brokentls",
        "danebad",
        "pinnedbad",
        "partner",
        "stsbad",
        "danestd",
    ],
)
def test_no_verified_tls_means_no_delivery(delivered: dict[str, object], case: str) -> None:
    event_name, detail = _outcome(delivered, case)
    assert event_name == "deferred", detail
    assert _received(delivered, case) == []  # never plaintext, never an unverified peer


def test_failure_reasons_say_what_went_wrong(delivered: dict[str, object]) -> None:
    reasons = {case: _outcome(delivered, case)[1] for case in CASES}
    assert "certificate-host-mismatch" in reasons["wrongname"]
    assert "certificate-expired" in reasons["expired"]
    assert "certificate-not-trusted" in reasons["selfsigned"]
    assert "does not offer STARTTLS" in reasons["nostarttls"]
    assert "DANE authentication" in reasons["danebad"]
    assert "pinned fingerprint" in reasons["pinnedbad"]
    assert "requires DANE" in reasons["partner"]
    assert "not an MX host in the MTA-STS policy" in reasons["stsbad"]


def test_next_mode_runs_when_verified_tls_is_impossible(delivered: dict[str, object]) -> None:
    event_name, detail = _outcome(delivered, "fallback")
    assert event_name == "delivered"
    assert detail.startswith("mode=standard")
    assert len(_received(delivered, "fallback")) == 1


def test_standard_mode_may_deliver_without_tls(delivered: dict[str, object]) -> None:
    event_name, detail = _outcome(delivered, "plain")
    assert event_name == "delivered" and "tls=" not in detail


def test_mta_sts_testing_failure_still_delivers_as_the_mode_allows(
    delivered: dict[str, object],
) -> None:
    event_name, detail = _outcome(delivered, "ststesting")
    assert event_name == "delivered"
    assert "verify=no" in detail  # the verified attempt failed; opportunistic TLS followed
    assert len(_received(delivered, "ststesting")) == 1


def test_tls_sessions_are_counted_for_tls_reports(delivered: dict[str, object]) -> None:
    sessions = delivered["sessions"]
    assert isinstance(sessions, dict)
    assert sessions["valid.test"] == ("no-policy-found", "success", 1)
    assert sessions["daneee.test"] == ("tlsa", "success", 1)
    assert sessions["danebad.test"] == ("tlsa", "validation-failure", 1)
    assert sessions["sts.test"] == ("sts", "success", 1)
    assert sessions["ststesting.test"] == ("sts", "certificate-not-trusted", 1)
    assert sessions["wrongname.test"] == ("no-policy-found", "certificate-host-mismatch", 1)
    assert sessions["nostarttls.test"] == ("no-policy-found", "starttls-not-supported", 1)
    assert "plain.test" not in sessions  # no TLS at all: nothing to report
    rows = delivered["session_rows"]
    assert isinstance(rows, dict)
    # Both ends of the session, for the report's sending-mta-ip and receiving-ip.
    assert rows["valid.test"][3:] == ("127.0.0.1", f"127.0.0.{2 + CASES.index('valid')}")
    assert rows["wrongname.test"][3] == "127.0.0.1"


@pytest.mark.parametrize(
    ("case", "reason", "session"),
    [
        ("stsverified", "does not offer STARTTLS", ("sts", "starttls-not-supported", 1)),
        ("stsverifiedself", "certificate-not-trusted", ("sts", "certificate-not-trusted", 1)),
        ("stsdane", "requires DANE", None),  # refused before any session
        ("ststls", "does not offer STARTTLS", ("sts", "starttls-not-supported", 1)),
    ],
)
def test_mta_sts_testing_never_lowers_what_is_required(
    delivered: dict[str, object], case: str, reason: str, session: tuple[str, str, int] | None
) -> None:
    event_name, detail = _outcome(delivered, case)
    assert event_name == "deferred", detail
    assert reason in detail
    assert _received(delivered, case) == []  # a STARTTLS-stripping attacker gets nothing
    found = delivered["statuses"]
    assert isinstance(found, dict)
    assert found[f"dr@{case}.test"] == "4.7.5"
    sessions = delivered["sessions"]
    assert isinstance(sessions, dict)
    assert sessions.get(f"{case}.test") == session  # testing mode still reports the failure
