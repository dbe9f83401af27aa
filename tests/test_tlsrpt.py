"""SMTP TLS reporting (RFC 8460): counters, discovery, the report, sending it once.

Real parts: a SQLite store, an authoritative DNS server and an HTTPS receiver
on 127.0.0.1 with a certificate from a test CA; reports are checked with
gzip, json, jsonschema and Python's email parser.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import gzip
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from certs import make_certs, server_context
from dns_server import LoopbackDns
from sqlalchemy import select

from gateway.app import tls_reporter
from gateway.audit.verify import verify
from gateway.config import Settings
from gateway.delivery.tlsrpt import DAY, TlsSession, record_sessions
from gateway.delivery.tlsrpt_send import (
    GIVE_UP_AFTER,
    KEEP_DAYS,
    REPORT_DELAY,
    RETRY_AFTER,
    Destination,
    DiscoveryError,
    TlsReporter,
    TlsRptLookup,
    parse_record,
)
from gateway.store import queue
from gateway.store.database import Database
from gateway.store.keyring import Keyring, Sealed
from gateway.store.schema import (
    audit_events,
    jobs,
    messages,
    tls_policies,
    tls_reports,
    tls_session_counts,
)

DAY0 = 1714521600  # 2024-05-01T00:00:00Z
DURING = DAY0 + 10 * 3600
REPORT_AT = DAY0 + DAY + REPORT_DELAY
DOMAIN = "example.test"
STS = (
    "version: STSv1",
    "mode: enforce",
    "mx: mx1.example.test",
    "mx: *.example.test",
    "max_age: 86400",
)
TLSA = ("3 1 1 0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6",)
CONTACT = "tls-admin@phigate.test"

# The report format of RFC 8460 §4.4, as a JSON schema: every field name the RFC
# defines, which are required, and nothing else.
_COUNT = {"type": "integer", "minimum": 0}
REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["organization-name", "date-range", "contact-info", "report-id", "policies"],
    "properties": {
        "organization-name": {"type": "string", "minLength": 1},
        "date-range": {
            "type": "object",
            "additionalProperties": False,
            "required": ["start-datetime", "end-datetime"],
            "properties": {
                "start-datetime": {"type": "string", "format": "date-time"},
                "end-datetime": {"type": "string", "format": "date-time"},
            },
        },
        "contact-info": {"type": "string", "minLength": 1},
        "report-id": {"type": "string", "minLength": 1},
        "policies": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["policy", "summary"],
                "properties": {
                    "policy": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["policy-type", "policy-domain"],
                        "properties": {
                            "policy-type": {"enum": ["tlsa", "sts", "no-policy-found"]},
                            "policy-string": {"type": "array", "items": {"type": "string"}},
                            "policy-domain": {"type": "string"},
                            "mx-host": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                    "summary": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": [
                            "total-successful-session-count",
                            "total-failure-session-count",
                        ],
                        "properties": {
                            "total-successful-session-count": _COUNT,
                            "total-failure-session-count": _COUNT,
                        },
                    },
                    "failure-details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["result-type", "failed-session-count"],
                            "properties": {
                                "result-type": {
                                    "enum": [
                                        "starttls-not-supported",
                                        "certificate-host-mismatch",
                                        "certificate-expired",
                                        "certificate-not-trusted",
                                        "validation-failure",
                                        "tlsa-invalid",
                                        "dnssec-invalid",
                                        "dane-required",
                                        "sts-policy-fetch-error",
                                        "sts-policy-invalid",
                                        "sts-webpki-invalid",
                                    ]
                                },
                                "sending-mta-ip": {"type": "string"},
                                "receiving-mx-hostname": {"type": "string"},
                                "receiving-mx-helo": {"type": "string"},
                                "receiving-ip": {"type": "string"},
                                "failed-session-count": _COUNT,
                                "additional-information": {"type": "string"},
                                "failure-reason-code": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def check_report(report: dict[str, Any], day: int = DAY0) -> None:
    jsonschema.validate(report, REPORT_SCHEMA)
    # RFC 3339, UTC, the whole day (jsonschema checks date-time only with extras)
    date = time.strftime("%Y-%m-%d", time.gmtime(day))
    assert report["date-range"] == {
        "start-datetime": f"{date}T00:00:00Z",
        "end-datetime": f"{date}T23:59:59Z",
    }


# --- parts -----------------------------------------------------------------------


class Receiver:
    """An HTTPS server on 127.0.0.1 that keeps what is POSTed to it."""

    def __init__(self, cert: Path, key: Path, status: int = 200) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.status = status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.posts.append((self.path, dict(self.headers), body))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = server_context(cert, key).wrap_socket(
            self.server.socket, server_side=True
        )
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/tlsrpt"

    def reports(self) -> list[dict[str, Any]]:
        return [json.loads(gzip.decompress(body)) for _, _, body in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(2)


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    directory = tmp_path / "certs"
    directory.mkdir()
    return make_certs(directory)


@pytest.fixture
def receiver(certs: dict[str, Path]) -> Iterator[Receiver]:
    server = Receiver(certs["good"], certs["good_key"])
    yield server
    server.close()


@pytest.fixture
def dns() -> Iterator[LoopbackDns]:
    with LoopbackDns() as server:
        yield server


def make_settings(
    tmp_path: Path, dns: LoopbackDns, certs: dict[str, Path], enabled: bool = True
) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "hostname": "phigate.test",
            "delivery": {
                "mode": "mx",
                "nameservers": [dns.nameserver],
                "ca_file": str(certs["ca"]),
            },
            "tls_reports": {
                "enabled": enabled,
                "organization": "Example Health",
                "contact": CONTACT,
            },
        }
    )


@pytest.fixture
def settings(tmp_path: Path, dns: LoopbackDns, certs: dict[str, Path]) -> Settings:
    return make_settings(tmp_path, dns, certs)


def session(
    failure: str | None = None,
    *,
    domain: str = DOMAIN,
    policy: str = "sts",
    mx_host: str = "mx1.example.test",
    receiving_ip: str | None = "192.0.2.10",
) -> TlsSession:
    strings = {"sts": STS, "tlsa": TLSA, "no-policy-found": ()}[policy]
    return TlsSession(
        policy_domain=domain,
        policy_type=policy,  # type: ignore[arg-type]
        policy_strings=strings,
        mx_host=mx_host,
        receiving_ip=receiving_ip,
        failure=failure,
    )


def record(db: Database, sessions: list[TlsSession], now: float = DURING) -> None:
    with db.transaction() as conn:
        record_sessions(conn, sessions, now)


def a_day_of_sessions(db: Database, domain: str = DOMAIN) -> None:
    """5 good and 2 expired-certificate sessions under STS, 3 good under DANE."""
    record(db, [session(domain=domain)] * 3)
    record(db, [session("certificate-expired", domain=domain)] * 2 + [session(domain=domain)] * 2)
    record(db, [session(domain=domain, policy="tlsa", mx_host="mx2.example.test")] * 3)


def count_rows(db: Database, table: Any) -> int:
    with db.reading() as conn:
        return len(conn.execute(select(table)).all())


def report_state(db: Database, domain: str = DOMAIN) -> dict[str, Any]:
    with db.reading() as conn:
        row = conn.execute(select(tls_reports).where(tls_reports.c.policy_domain == domain)).one()
    return dict(row._mapping)


def tlsrpt_events(db: Database) -> list[dict[str, Any]]:
    with db.reading() as conn:
        rows = conn.execute(
            select(audit_events).where(audit_events.c.event == "tlsrpt").order_by(audit_events.c.id)
        ).all()
    return [dict(r._mapping) for r in rows]


def queued_reports(db: Database, keyring: Keyring) -> list[tuple[dict[str, Any], bytes]]:
    with db.reading() as conn:
        rows = conn.execute(
            select(messages, jobs.c.recipient, jobs.c.state, jobs.c.route).join(
                jobs, jobs.c.queue_id == messages.c.queue_id
            )
        ).all()
    found = []
    for row in rows:
        info = dict(row._mapping)
        sealed = Sealed(info["key_id"], info["wrapped_key"], info["content"])
        found.append((info, keyring.open(sealed, info["queue_id"].encode())))
    return found


def run(reporter: TlsReporter, now: float) -> int:
    return asyncio.run(reporter.run_once(now))


# --- counting ----------------------------------------------------------------------


def test_counters_add_up_per_day_domain_policy_host_ip_and_result(db: Database) -> None:
    rng = random.Random(8460)
    expected: Counter[tuple[int, str, str, tuple[str, ...], str, str, str]] = Counter()
    results = [None, None, None, "certificate-expired", "starttls-not-supported", "made-up"]
    for _ in range(400):
        batch = []
        when = DAY0 + rng.randrange(2 * DAY)
        for _ in range(rng.randint(1, 8)):
            item = session(
                rng.choice(results),
                domain=rng.choice(["example.test", "Other.TEST."]),
                policy=rng.choice(["sts", "tlsa", "no-policy-found"]),
                mx_host=rng.choice(["mx1.example.test", "MX2.example.test"]),
                receiving_ip=rng.choice(["192.0.2.10", "2001:db8::0:1", None, "not an ip"]),
            )
            batch.append(item)
            canonical_ip = {"2001:db8::0:1": "2001:db8::1", "192.0.2.10": "192.0.2.10"}
            expected[
                (
                    when // DAY * DAY,
                    item.policy_domain.lower().rstrip("."),
                    item.policy_type,
                    item.policy_strings,
                    item.mx_host.lower(),
                    canonical_ip.get(item.receiving_ip or "", ""),
                    # unknown result types count as the general failure
                    "validation-failure"
                    if item.failure == "made-up"
                    else item.failure or "success",
                )
            ] += 1
        record(db, batch, when)
    with db.reading() as conn:
        rows = conn.execute(
            select(
                tls_session_counts, tls_policies.c.policy_type, tls_policies.c.policy_strings
            ).join(tls_policies, tls_policies.c.policy_hash == tls_session_counts.c.policy_hash)
        ).all()
        policies = conn.execute(select(tls_policies)).all()
    stored = Counter(
        {
            (
                r.day,
                r.policy_domain,
                r.policy_type,
                tuple(json.loads(r.policy_strings)),
                r.mx_host,
                r.receiving_ip,
                r.result,
            ): r.sessions
            for r in rows
        }
    )
    assert stored == expected
    assert sum(stored.values()) > 1000
    assert len(rows) == len(expected)  # one row per distinct key
    assert len(policies) == 3  # each policy's strings kept once


def test_nothing_recorded_for_no_sessions(db: Database) -> None:
    record(db, [])
    assert count_rows(db, tls_session_counts) == 0


# --- discovery ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "uris"),
    [
        ("v=TLSRPTv1; rua=mailto:a@b.test", ("mailto:a@b.test",)),
        ("v=TLSRPTv1;rua=mailto:a@b.test;", ("mailto:a@b.test",)),
        (
            "v=TLSRPTv1 ; rua=mailto:a@b.test , https://r.test/x ; ext=1",
            ("mailto:a@b.test", "https://r.test/x"),
        ),
        ("v=TLSRPTv1; rua=mailto:a@b.test,", ("mailto:a@b.test",)),
        ("v=TLSRPTv1;", None),  # no rua
        ("v=TLSRPTv1; ext=1", None),
        ("v=TLSRPTv1; rua=mailto:a@b.test; rua=mailto:c@d.test", None),
        ("v=TLSRPTv1; rua=", None),
        ("v=TLSRPTv1; rua=mailto:a@b.test; bad field", None),
        ("v=TLSRPTv2; rua=mailto:a@b.test", None),
        ("v=tlsrptv1; rua=mailto:a@b.test", None),
    ],
)
def test_record_syntax(text: str, uris: tuple[str, ...] | None) -> None:
    assert parse_record(text) == uris


def test_lookup_follows_rfc_8460_discovery(dns: LoopbackDns) -> None:
    lookup = TlsRptLookup([dns.nameserver], timeout=1.0)
    # a record in several strings is one record; other TXT records are ignored
    dns.add("_smtp._tls.split.test", "TXT", '"v=TLSRPTv1; rua=mailto:r" "eports@split.test"')
    dns.add("_smtp._tls.split.test", "TXT", '"some-other=record"')
    # only mailto and https are used; a bad address is skipped
    dns.add(
        "_smtp._tls.mixed.test",
        "TXT",
        '"v=TLSRPTv1; rua=ftp://x.test/r,mailto:no-domain,https://r.test/v1,mailto:Ops@R.TEST"',
    )
    dns.add("_smtp._tls.two.test", "TXT", '"v=TLSRPTv1; rua=mailto:a@two.test"')
    dns.add("_smtp._tls.two.test", "TXT", '"v=TLSRPTv1; rua=mailto:b@two.test"')
    dns.fail("_smtp._tls.broken.test")

    async def lookups() -> list[list[Destination]]:
        return [
            await lookup.destinations(domain)
            for domain in ("split.test", "mixed.test", "two.test", "none.test")
        ]

    split, mixed, two, none = asyncio.run(lookups())
    assert split == [Destination("mailto", "reports@split.test")]
    assert mixed == [Destination("https", "https://r.test/v1"), Destination("mailto", "Ops@r.test")]
    assert two == []  # more than one TLSRPT record: no reports (RFC 8460 §3)
    assert none == []
    with pytest.raises(DiscoveryError):
        asyncio.run(lookup.destinations("broken.test"))


# --- sending -------------------------------------------------------------------------


def test_https_report_is_posted_as_gzip_json_per_rfc(
    settings: Settings, db: Database, keyring: Keyring, dns: LoopbackDns, receiver: Receiver
) -> None:
    dns.add(f"_smtp._tls.{DOMAIN}", "TXT", f'"v=TLSRPTv1; rua={receiver.url}"')
    a_day_of_sessions(db)
    reporter = tls_reporter(settings, db, keyring)
    assert run(reporter, REPORT_AT) == 1

    [(path, headers, _body)] = receiver.posts
    assert path == "/tlsrpt"
    assert headers["Content-Type"] == "application/tlsrpt+gzip"
    [report] = receiver.reports()
    check_report(report)
    assert report["organization-name"] == "Example Health"
    assert report["contact-info"] == CONTACT
    assert report["policies"] == [
        {
            "policy": {
                "policy-type": "sts",
                "policy-string": list(STS),
                "policy-domain": DOMAIN,
                "mx-host": ["mx1.example.test", "*.example.test"],
            },
            "summary": {"total-successful-session-count": 5, "total-failure-session-count": 2},
            "failure-details": [
                {
                    "result-type": "certificate-expired",
                    "receiving-mx-hostname": "mx1.example.test",
                    "receiving-ip": "192.0.2.10",
                    "failed-session-count": 2,
                }
            ],
        },
        {
            "policy": {
                "policy-type": "tlsa",
                "policy-string": list(TLSA),
                "policy-domain": DOMAIN,
                "mx-host": ["mx2.example.test"],
            },
            "summary": {"total-successful-session-count": 3, "total-failure-session-count": 0},
        },
    ]
    [audit] = tlsrpt_events(db)
    assert audit["result"] == "sent"
    assert audit["detail"] == f"domain={DOMAIN} day=2024-05-01 successful=8 failed=2 rua=https"
    assert "@" not in audit["detail"] and audit["recipients"] == "[]"
    assert report_state(db)["state"] == "sent"
    assert count_rows(db, tls_session_counts) == 0  # reported counters are deleted
    with db.reading() as conn:
        assert verify(conn, db.audit_key).problems == []


def test_mailto_report_is_queued_as_an_rfc_8460_message(
    settings: Settings, db: Database, keyring: Keyring, dns: LoopbackDns, receiver: Receiver
) -> None:
    dns.add(
        f"_smtp._tls.{DOMAIN}",
        "TXT",
        f'"v=TLSRPTv1; rua=mailto:tls-reports@reports.test,{receiver.url}"',
    )
    a_day_of_sessions(db)
    woken: list[bool] = []
    reporter = tls_reporter(settings, db, keyring, notify=lambda: woken.append(True))
    assert run(reporter, REPORT_AT) == 1
    assert woken == [True]

    [(info, content)] = queued_reports(db, keyring)
    # queued like a DSN: null sender, never bounced, the configured delivery
    assert info["sender"] == "" and info["is_dsn"] is True
    assert (info["recipient"], info["state"], info["route"]) == (
        "tls-reports@reports.test",
        queue.QUEUED,
        "standard",  # the route column: the default via, as stored
    )
    assert b"\n" not in content.replace(b"\r\n", b"")  # CRLF only, ready for SMTP
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    subject = re.fullmatch(
        r"Report Domain: example\.test Submitter: phigate\.test"
        r" Report-ID: <([^<>\s]+@phigate\.test)>",
        str(parsed["Subject"]),
    )
    assert subject is not None
    assert parsed["TLS-Report-Domain"] == DOMAIN
    assert parsed["TLS-Report-Submitter"] == "phigate.test"
    assert parsed["From"] == "postmaster@phigate.test"
    assert parsed["To"] == "tls-reports@reports.test"
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "tlsrpt"
    text, attachment = parsed.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert attachment.get_content_type() == "application/tlsrpt+gzip"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == f"phigate.test!{DOMAIN}!{DAY0}!{DAY0 + DAY - 1}.json.gz"
    report = json.loads(gzip.decompress(attachment.get_payload(decode=True)))
    check_report(report)
    assert report["report-id"] == subject.group(1)
    # the HTTPS destination got the same report
    assert receiver.reports() == [report]

    events = tlsrpt_events(db)
    assert [(e["result"], e["detail"].rsplit(" ", 1)[1]) for e in events] == [
        ("queued", "rua=mailto"),
        ("sent", "rua=https"),
    ]
    assert events[0]["queue_id"] == info["queue_id"]


def test_one_report_per_domain_and_day_even_when_run_twice_or_by_two_processes(
    settings: Settings,
    db: Database,
    keyring: Keyring,
    dns: LoopbackDns,
    receiver: Receiver,
) -> None:
    dns.add(f"_smtp._tls.{DOMAIN}", "TXT", f'"v=TLSRPTv1; rua={receiver.url}"')
    dns.add("_smtp._tls.other.test", "TXT", f'"v=TLSRPTv1; rua={receiver.url}"')
    a_day_of_sessions(db)
    a_day_of_sessions(db, "other.test")
    second_db = Database(db.url, audit_key=db.audit_key)  # another process on the same store
    second_db.start()
    try:
        first = tls_reporter(settings, db, keyring)
        second = tls_reporter(settings, second_db, keyring)

        async def both() -> list[int]:
            return list(await asyncio.gather(first.run_once(REPORT_AT), second.run_once(REPORT_AT)))

        assert sum(asyncio.run(both())) == 2
        # sessions recorded late for the day already reported start no second report
        record(db, [session()], DAY0 + DAY - 1)
        assert run(first, REPORT_AT + 60) == 0
        assert run(second, REPORT_AT + 2 * RETRY_AFTER) == 0
    finally:
        second_db.close()
    domains = sorted(r["policies"][0]["policy"]["policy-domain"] for r in receiver.reports())
    assert domains == ["example.test", "other.test"]
    looked_up = [q for q in dns.queries if q[0].startswith("_smtp._tls.")]
    assert len(looked_up) == 2


@pytest.mark.parametrize(
    "records",
    [
        [],
        ['"v=spf1 -all"'],
        ['"v=TLSRPTv1; rua={url}"', '"v=TLSRPTv1; rua={url}/2"'],
        ['"v=TLSRPTv1; ruf={url}"'],
        ['"v=TLSRPTv1; rua=ftp://127.0.0.1/r"'],
        ['"v=TLSRPTv1; rua=http://127.0.0.1/r"'],
    ],
    ids=["none", "unrelated", "two", "no-rua", "ftp", "plain-http"],
)
def test_no_report_without_one_valid_tlsrpt_record(
    records: list[str],
    settings: Settings,
    db: Database,
    keyring: Keyring,
    dns: LoopbackDns,
    receiver: Receiver,
) -> None:
    for text in records:
        dns.add(f"_smtp._tls.{DOMAIN}", "TXT", text.format(url=receiver.url))
    a_day_of_sessions(db)
    assert run(tls_reporter(settings, db, keyring), REPORT_AT) == 0
    assert receiver.posts == []
    assert queued_reports(db, keyring) == []
    assert tlsrpt_events(db) == []
    assert report_state(db)["state"] == "skipped"
    assert count_rows(db, tls_session_counts) == 0
    assert any(q[0] == f"_smtp._tls.{DOMAIN}" for q in dns.queries)


@pytest.mark.parametrize("certificate", ["impostor", "refusing"])
def test_failed_https_delivery_is_retried_then_given_up(
    certificate: str,
    settings: Settings,
    db: Database,
    keyring: Keyring,
    dns: LoopbackDns,
    certs: dict[str, Path],
) -> None:
    # impostor: a certificate our CA did not sign (must not get the report);
    # refusing: a trusted server that answers 500
    if certificate == "impostor":
        server = Receiver(certs["impostor"], certs["impostor_key"])
    else:
        server = Receiver(certs["good"], certs["good_key"], status=500)
    try:
        dns.add(f"_smtp._tls.{DOMAIN}", "TXT", f'"v=TLSRPTv1; rua={server.url}"')
        a_day_of_sessions(db)
        reporter = tls_reporter(settings, db, keyring)
        assert run(reporter, REPORT_AT) == 0
        assert report_state(db)["state"] == "retry"
        assert run(reporter, REPORT_AT + RETRY_AFTER / 2) == 0  # not due yet
        assert report_state(db)["attempts"] == 1
        assert run(reporter, REPORT_AT + RETRY_AFTER) == 0
        assert report_state(db)["attempts"] == 2
        assert count_rows(db, tls_session_counts) > 0
        assert run(reporter, REPORT_AT + GIVE_UP_AFTER) == 0
        attempts = 0 if certificate == "impostor" else 3
        assert len(server.posts) == attempts
    finally:
        server.close()
    state = report_state(db)
    assert (state["state"], state["attempts"]) == ("abandoned", 3)
    assert count_rows(db, tls_session_counts) == 0
    [audit] = tlsrpt_events(db)
    assert audit["result"] == "abandoned"
    assert audit["detail"] == f"domain={DOMAIN} day=2024-05-01 successful=8 failed=2"


def test_dns_trouble_is_retried(
    settings: Settings, db: Database, keyring: Keyring, dns: LoopbackDns, receiver: Receiver
) -> None:
    dns.fail(f"_smtp._tls.{DOMAIN}")
    a_day_of_sessions(db)
    reporter = tls_reporter(settings, db, keyring)
    assert run(reporter, REPORT_AT) == 0
    assert report_state(db)["state"] == "retry"
    dns.servfail.clear()
    dns.add(f"_smtp._tls.{DOMAIN}", "TXT", f'"v=TLSRPTv1; rua={receiver.url}"')
    assert run(reporter, REPORT_AT + RETRY_AFTER) == 1
    assert len(receiver.posts) == 1


def test_report_holds_no_addresses_or_message_ids(
    settings: Settings, db: Database, keyring: Keyring, dns: LoopbackDns, receiver: Receiver
) -> None:
    canaries = [
        "canary-7vq9xk@clinic.example.org",
        "patient-7vq9xk@example.test",
        "<msg-7vq9xk@ehr.local>",
    ]
    with db.transaction() as conn:  # the message whose delivery made the sessions
        queue_id = queue.new_queue_id(DURING)
        queue.insert_message(
            conn,
            queue.NewMessage(
                queue_id,
                DURING,
                "submission",
                "ehr1",
                "10.0.0.5",
                canaries[0],
                10,
                canaries[2],
                keyring.seal(b"Subject: x\r\n\r\nbody\r\n", queue_id.encode()),
            ),
            [queue.NewJob(canaries[1], queue.DEFAULT_ROUTE)],
        )
    dns.add(
        f"_smtp._tls.{DOMAIN}",
        "TXT",
        f'"v=TLSRPTv1; rua={receiver.url},mailto:tls-reports@reports.test"',
    )
    a_day_of_sessions(db)
    assert run(tls_reporter(settings, db, keyring), REPORT_AT) == 1

    [report] = receiver.reports()
    [mail] = [content for info, content in queued_reports(db, keyring) if info["sender"] == ""]
    parsed = email.message_from_bytes(mail, policy=email.policy.default)
    decoded = [
        gzip.decompress(part.get_payload(decode=True)).decode()
        if part.get_content_type() == "application/tlsrpt+gzip"
        else part.get_content()
        for part in parsed.walk()
        if not part.is_multipart()
    ]
    everything = [json.dumps(report), mail.decode(), *decoded]
    for canary in ("7vq9xk", *canaries):
        assert not any(canary in text for text in everything)

    def strings(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)
        elif isinstance(value, str):
            yield value

    # the only addresses in a report: whom to contact, and the report's own id
    assert {s for s in strings(report) if "@" in s} == {CONTACT, report["report-id"]}


def test_nothing_is_reported_before_the_day_is_over(
    settings: Settings, db: Database, keyring: Keyring, dns: LoopbackDns, receiver: Receiver
) -> None:
    dns.add(f"_smtp._tls.{DOMAIN}", "TXT", f'"v=TLSRPTv1; rua={receiver.url}"')
    a_day_of_sessions(db)
    reporter = tls_reporter(settings, db, keyring)
    assert run(reporter, DAY0 + DAY - 1) == 0
    assert run(reporter, REPORT_AT - 1) == 0
    assert dns.queries == [] and receiver.posts == []
    assert run(reporter, REPORT_AT) == 1


def test_counters_never_reported_are_deleted_after_some_days(
    settings: Settings, db: Database, keyring: Keyring, dns: LoopbackDns, receiver: Receiver
) -> None:
    dns.add(f"_smtp._tls.{DOMAIN}", "TXT", f'"v=TLSRPTv1; rua={receiver.url}"')
    a_day_of_sessions(db)
    assert run(tls_reporter(settings, db, keyring), DAY0 + (KEEP_DAYS + 1) * DAY) == 0
    assert count_rows(db, tls_session_counts) == 0
    assert count_rows(db, tls_policies) == 0
    assert dns.queries == [] and receiver.posts == []


def test_run_forever_reports_and_stops(
    tmp_path: Path,
    db: Database,
    keyring: Keyring,
    dns: LoopbackDns,
    certs: dict[str, Path],
    receiver: Receiver,
) -> None:
    dns.add(f"_smtp._tls.{DOMAIN}", "TXT", f'"v=TLSRPTv1; rua={receiver.url}"')
    record(db, [session()], time.time() - 2 * DAY)
    disabled = tls_reporter(make_settings(tmp_path, dns, certs, enabled=False), db, keyring)
    enabled = tls_reporter(make_settings(tmp_path, dns, certs), db, keyring)

    async def scenario() -> None:
        stop = asyncio.Event()
        await asyncio.wait_for(disabled.run_forever(stop), 1)  # returns at once
        assert receiver.posts == []
        task = asyncio.create_task(enabled.run_forever(stop))
        for _ in range(100):
            if receiver.posts:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 2)

    asyncio.run(scenario())
    assert len(receiver.posts) == 1


# --- the documentation ----------------------------------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "tls-reports.md"


def test_documented_settings_and_report_are_valid() -> None:
    text = DOC.read_text()
    settings_block = re.search(r"```yaml\n(.*?)```", text, re.S)
    report_block = re.search(r"```json\n(.*?)```", text, re.S)
    assert settings_block is not None and report_block is not None
    settings = Settings.model_validate(yaml.safe_load(settings_block.group(1)))
    assert settings.tls_reports.enabled
    report = json.loads(report_block.group(1))
    check_report(report, day=DAY0)
