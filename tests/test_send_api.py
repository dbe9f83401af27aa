"""The send API over real HTTP to a running phigate that relays to a sink: 201 only
once the message is stored, policy and consent as for SMTP, idempotent retries,
scoped tokens, limits, sending limits, problem+json errors, the
published OpenAPI document and the docs' example; no canary outside the sealed
content."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import smtplib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import (
    Phigate,
    Sink,
    audit_mark,
    audit_since,
    message,
    via_sink,
    wait_until,
    within_one_window,
)
from openapi_spec_validator import validate
from residue import residue
from sqlalchemy.exc import IntegrityError
from webgate import base_url, store, web_gate

from gateway.message_templates import parse
from gateway.message_templates import store as templates
from gateway.store import idempotency
from gateway.store.database import Database
from gateway.web import tokens

SENDS = "/api/v1/messages"
DOMAIN = "clinic.example.org"
SENDER = f"ehr@{DOMAIN}"
CANARIES = ("Canary-Subject-q8Zr2WxPmt", "Canary-Body-h3Jd9KcLvsYe", "Canary-Attachment-u5Tn7BqXa")
MAX_SIZE = 200_000
DOCS = Path(__file__).parents[1] / "docs" / "send-api.md"


@dataclass
class Api:
    gw: Phigate
    sink: Sink
    client: httpx.Client
    tokens: dict[str, str]

    def post(
        self, body: dict[str, Any], token: str | None = "ehr", **kwargs: Any
    ) -> httpx.Response:
        return self.client.post(SENDS, json=body, headers=self.auth(token), **kwargs)

    def auth(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}

    def rows(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        uri = f"{self.gw.db_path.as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            return list(db.execute(query, args))


def mail(to: list[str], **fields: Any) -> dict[str, Any]:
    return {"from": SENDER, "to": to, "subject": "Appointment", "text": "See you soon.", **fields}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("urn:phigate:problem:")
    return body


def fields_of(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body["errors"]]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("send-api")
    with Sink() as sink:
        gw = web_gate(
            tmp,
            delivery=via_sink(sink),
            limits={"max_message_size": MAX_SIZE, "max_recipients": 5},
            send_api={"max_attachments": 2},
            rate_limits={"tokens": {"limited": {"messages_per_minute": 2}}},
        )
        gw.add_principal("ehr", DOMAIN)
        smtp_secret = gw.add_principal("ehr1", DOMAIN)
        gw.add_principal("other", "other.example.org")
        now = time.time()
        with store(gw) as db, db.transaction() as conn:
            secrets = {
                name: tokens.add(conn, name, ["send"], now, "cli:test", principal)
                for name, principal in (
                    ("ehr", "ehr"),
                    ("ehr2", "ehr"),
                    ("limited", "ehr"),
                    ("other", "other"),
                )
            }
            secrets["crm"] = tokens.add(conn, "crm", ["consent"], now, "cli:test")
        secrets["smtp"] = smtp_secret
        with gw, httpx.Client(base_url=base_url(gw), timeout=20) as client:
            yield Api(gw, sink, client, secrets)
            assert gw.stop() == 0


def test_201_comes_once_the_message_is_stored_and_it_is_delivered(api: Api) -> None:
    report = base64.b64encode(b"a,b\r\n1,2\r\n").decode()
    response = api.post(
        mail(
            ["pat@home.example"],
            cc=["dr@partner.example"],
            bcc=["audit@partner.example"],
            html="<p>See you soon.</p>",
            attachments=[{"filename": "slots.csv", "content_type": "text/csv", "content": report}],
            headers={"Reply-To": f"desk@{DOMAIN}"},
        )
    )
    assert response.status_code == 201, response.text
    body = response.json()
    queue_id = body["queue_id"]
    assert [(r["address"], r["status"]) for r in body["recipients"]] == [
        ("pat@home.example", "accepted"),
        ("dr@partner.example", "accepted"),
        ("audit@partner.example", "accepted"),
    ]
    # The promise of a 250: by the time the answer is read, the message is in the store.
    assert api.rows("SELECT listener, principal FROM messages WHERE queue_id = ?", queue_id) == [
        ("api", "ehr")
    ]
    delivered = next(m for m in api.sink.wait_for(1) if queue_id.encode() in m.content)
    assert sorted(delivered.recipients) == [
        "audit@partner.example",
        "dr@partner.example",
        "pat@home.example",
    ]
    header = delivered.content.split(b"\r\n\r\n", 1)[0]
    assert b"audit@partner.example" not in header  # Bcc is the envelope's alone
    assert f"Reply-To: desk@{DOMAIN}".encode() in header
    assert b'filename="slots.csv"' in delivered.content

    def delivered_to_all() -> bool:
        status = api.client.get(f"{SENDS}/{queue_id}", headers=api.auth("ehr")).json()
        return {r["status"] for r in status["recipients"]} == {"delivered"}

    wait_until(delivered_to_all)


def test_the_raw_form_takes_the_envelope_from_the_header_and_only_its_sender_sees_it(
    api: Api,
) -> None:
    raw = (
        f"From: Front desk <{SENDER}>\nTo: pat@home.example\nBcc: audit@partner.example\n"
        "Subject: Raw\nMessage-ID: <raw-1@clinic.example.org>\n\nWritten with LF line ends.\n"
    ).encode()
    headers = {**api.auth("ehr"), "Content-Type": "message/rfc822"}
    before = len(api.sink.messages)  # whatever the module's other tests sent, wherever run
    response = api.client.post(f"{SENDS}/raw", content=raw, headers=headers)
    assert response.status_code == 201, response.text
    queue_id = response.json()["queue_id"]
    arrived = api.sink.wait_for(before + 1)
    delivered = next(m for m in arrived if b"<raw-1@clinic.example.org>" in m.content)
    assert sorted(delivered.recipients) == ["audit@partner.example", "pat@home.example"]
    assert b"Bcc" not in delivered.content and b"LF line ends.\r\n" in delivered.content
    theirs = api.client.get(f"{SENDS}/{queue_id}", headers=api.auth("other"))
    assert "principal 'other'" in problem(theirs, 404)["detail"]
    mine = api.client.get(f"{SENDS}/{queue_id}", headers=api.auth("ehr"))
    assert mine.status_code == 200 and len(mine.json()["recipients"]) == 2
    spoofed = raw.replace(f"<{SENDER}>".encode(), b"<ceo@other.example.org>")
    refused = api.client.post(f"{SENDS}/raw", content=spoofed, headers=headers)
    assert fields_of(problem(refused, 422)) == ["message"]


def test_policy_and_consent_apply_as_for_smtp(api: Api) -> None:
    crm = api.auth("crm")
    granted, opted_out = "granted@home.example", "gone@home.example"
    grant = {"address": granted, "purpose": "marketing"}
    assert api.client.post("/api/v1/consent/grants", json=grant, headers=crm).status_code == 201
    opt_out = {"address": opted_out, "purpose": "marketing"}
    assert api.client.post("/api/v1/consent/opt-outs", json=opt_out, headers=crm).status_code == 200

    refused = problem(api.post(mail([opted_out], category="marketing")), 422)
    assert refused["rule"] == "marketing-opted-out"
    assert refused["type"] == "urn:phigate:problem:refused-by-policy"
    # The same message over SMTP AUTH is refused by the same rule.
    raw = message(SENDER, opted_out, "Offer", "Flu shots this week.")
    raw = b"X-Phigate-Category: marketing\r\n" + raw
    with pytest.raises(smtplib.SMTPDataError) as smtp_refusal:
        api.gw.submit(api.tokens["smtp"], SENDER, [opted_out], raw)
    smtp_error = smtp_refusal.value.smtp_error
    assert isinstance(smtp_error, bytes) and refused["detail"] in smtp_error.decode()
    assert b"(policy rule marketing-opted-out)" in smtp_error

    both = api.post(mail([granted, opted_out], category="marketing"))
    assert both.status_code == 201, both.text
    statuses = {r["address"]: (r["status"], r.get("rule")) for r in both.json()["recipients"]}
    assert statuses == {
        granted: ("accepted", None),
        opted_out: ("refused", "marketing-opted-out"),
    }
    later = api.client.get(f"{SENDS}/{both.json()['queue_id']}", headers=api.auth("ehr")).json()
    assert {r["address"]: r["status"] for r in later["recipients"]}[opted_out] == "refused"


def test_a_retry_with_the_same_key_gets_the_first_answer_and_stores_one_message(api: Api) -> None:
    body = mail(["pat@home.example"], idempotency_key="visit-2026-12-05-0001")
    first = api.post(body)
    assert first.status_code == 201, first.text
    again = api.post(body)
    assert again.status_code == 200 and again.json()["queue_id"] == first.json()["queue_id"]
    stored = api.rows("SELECT count(*) FROM api_idempotency WHERE key = ?", body["idempotency_key"])
    assert stored == [(1,)]
    assert api.rows("SELECT count(*) FROM messages WHERE queue_id = ?", first.json()["queue_id"])
    changed = api.post({**body, "subject": "Another"})
    assert fields_of(problem(changed, 422)) == ["idempotency_key"]
    # Another token's key of the same name is its own.
    assert api.post(body, token="ehr2").status_code == 201


def test_tokens_scopes_and_sender_domains(api: Api) -> None:
    anonymous = problem(api.post(mail(["pat@home.example"]), token=None), 401)
    assert "--scope send" in anonymous["detail"]
    consent_only = problem(api.post(mail(["pat@home.example"]), token="crm"), 403)
    assert "lacks scope send" in consent_only["detail"]
    mark = audit_mark(api.gw)
    elsewhere = api.post({**mail(["pat@home.example"]), "from": "ehr@other.example.org"})
    body = problem(elsewhere, 422)
    assert fields_of(body) == ["from"] and DOMAIN in body["detail"]
    # Audited as the listener audits a refusal: who, what code, why.
    # (Deliveries of earlier messages may be audited meanwhile.)
    refusals = [e for e in audit_since(api.gw, mark) if e["event"] == "refused"]
    assert [(e["result"], e["principal"], e["code"], e["sender"]) for e in refusals] == [
        ("api", "ehr", 422, "ehr@other.example.org")
    ]
    sender_field = api.post(mail(["pat@home.example"], headers={"Sender": "x@other.example.org"}))
    assert fields_of(problem(sender_field, 422)) == ["headers.Sender"]


def test_limits_and_bad_input_name_the_field(api: Api) -> None:
    files = [{"filename": f"{n}.txt", "content": "aGk="} for n in range(3)]
    assert fields_of(problem(api.post(mail(["a@home.example"], attachments=files)), 422)) == [
        "attachments"
    ]
    for size, where in ((MAX_SIZE, "attachments"), (2 * MAX_SIZE, "body")):
        big = {"filename": "x", "content": base64.b64encode(b"x" * size).decode()}
        large = api.post(mail(["a@home.example"], attachments=[big]))
        assert fields_of(problem(large, 413)) == [where]  # the message; the request
    many = [f"p{n}@home.example" for n in range(6)]
    assert fields_of(problem(api.post(mail(many)), 422)) == ["to"]
    invalid = problem(api.post(mail(["not an address"], text=None)), 422)
    assert "to[0]" in fields_of(invalid)
    assert fields_of(problem(api.post(mail(["a@home.example"], text=None)), 422)) == ["text"]
    assert "not an address" not in json.dumps(invalid)  # never the input back
    garbled = api.client.post(
        SENDS, content=b'{"from": ', headers={**api.auth("ehr"), "Content-Type": "application/json"}
    )
    assert fields_of(problem(garbled, 422)) == ["body"]
    unknown = mail(["a@home.example"], category="marketing", purpose="no-such-campaign")
    assert fields_of(problem(api.post(unknown), 422)) == ["purpose"]


def test_no_canary_outside_the_sealed_content(api: Api) -> None:
    mark = audit_mark(api.gw)
    subject, text, attached = CANARIES
    file = {"filename": "notes.txt", "content": base64.b64encode(attached.encode()).decode()}
    sent = api.post(mail(["pat@home.example"], subject=subject, text=text, attachments=[file]))
    assert sent.status_code == 201, sent.text
    refused = api.post(
        mail(["nobody@home.example"], subject=subject, text=text, category="marketing")
    )
    assert refused.status_code == 422 and not any(c in refused.text for c in CANARIES)
    events = json.dumps(audit_since(api.gw, mark))
    log = api.gw.log_text()
    for canary in CANARIES:
        assert canary not in events and canary not in log
    assert residue(api.gw.db_path, *(c.encode() for c in CANARIES)) == []


def test_over_a_sending_limit_429_with_retry_after_until_the_windows_end(api: Api) -> None:
    # A minute that does not end during the sends. The count starting again when it
    # ends is tested with a clock moved by hand, without waiting for it
    # (tests/test_rate_limits.py::test_counts_start_again_when_the_window_ends).
    within_one_window(60, 5)
    answers = [api.post(mail(["pat@home.example"]), token="limited") for _ in range(3)]
    refused_at = time.time()
    assert [a.status_code for a in answers[:2]] == [201, 201]
    over = problem(answers[2], 429)
    wait = int(answers[2].headers["retry-after"])
    assert wait == pytest.approx(60 - refused_at % 60, abs=1.5)  # when the minute ends
    limit = f'at most 2 messages per minute for token "limited"; try again in {wait} seconds'
    assert limit in over["detail"]
    # Another token of the same principal has limits of its own.
    assert api.post(mail(["pat@home.example"]), token="ehr2").status_code == 201


def test_the_openapi_document_is_valid_and_the_docs_example_works(api: Api) -> None:
    document = api.client.get("/api/openapi.json").json()
    validate(document)
    send = document["paths"][SENDS]["post"]
    assert "application/problem+json" in send["responses"]["422"]["content"]
    assert {"/api/v1/messages/raw", "/api/v1/messages/{queue_id}"} <= set(document["paths"])
    example = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert example is not None
    namespace: dict[str, Any] = {}
    code = example.group(1).replace("https://phigate.example.org", base_url(api.gw))
    code = code.replace("os.environ['PHIGATE_TOKEN']", repr(api.tokens["ehr"]))
    exec(compile(code, str(DOCS), "exec"), namespace)  # the docs' own example, run as written
    assert re.fullmatch(r"[0-9A-F]{21}", namespace["queue_id"])


TEMPLATE = """\
version: 1
name: results-ready
principals: [ehr]
subject: Your results from {{ clinic }}
text: |
  Your results are ready at {{ clinic }}. {{ note }}
variables:
  note: {type: string, phi: true, required: false}
  clinic: {type: string, default: Main Street Clinic}
"""


def test_a_template_renders_the_message_and_its_phi_variables_make_it_phi(api: Api) -> None:
    with store(api.gw) as db, db.transaction() as conn:
        templates.put(
            conn, parse(TEMPLATE, "t.yaml"), TEMPLATE, replace=False, actor="cli:t", now=time.time()
        )
    mark = audit_mark(api.gw)
    # Nothing a detector calls PHI: the template says it is.
    sent = api.post(
        {"from": SENDER, "to": ["pat@home.example"], "template": "results-ready",
         "variables": {"note": "Bring the blue folder."}},
    )  # fmt: skip
    assert sent.status_code == 201, sent.text
    events = audit_since(api.gw, mark)
    decision = next(e for e in events if e["event"] == "policy")
    assert "rule=phi-verified-tls-or-portal" in decision["detail"]
    assert "phi=yes declared=1" in decision["detail"] and "blue folder" not in json.dumps(events)
    accepted = next(e for e in events if e["event"] == "accepted")
    assert accepted["detail"].startswith("token=ehr ")  # for webhooks scoped to the token
    # Without a value for the PHI variable the message is decided on what it says.
    plain = api.post(
        {"from": SENDER, "to": ["pat@home.example"], "template": "results-ready",
         "variables": {"clinic": "Elm Street Clinic"}},
    )  # fmt: skip
    assert plain.status_code == 201, plain.text
    queue_id = plain.json()["queue_id"].encode()
    wait_until(lambda: any(queue_id in m.content for m in api.sink.messages))
    delivered = next(m for m in api.sink.messages if queue_id in m.content)
    assert b"Subject: Your results from Elm Street Clinic" in delivered.content
    assert b"Your results are ready at Elm Street Clinic." in delivered.content

    def refused(body: dict[str, Any], token: str = "ehr") -> dict[str, Any]:
        base = {"from": SENDER, "to": ["pat@home.example"], "template": "results-ready"}
        return problem(api.post({**base, **body}, token=token), 422)

    wrong = refused({"variables": {"note": 7, "clinic": CANARIES[0]}})
    assert "note" in wrong["detail"] and CANARIES[0] not in json.dumps(wrong)
    assert fields_of(refused({"subject": "Mine", "variables": {"note": "R"}})) == ["subject"]
    assert fields_of(refused({"template": "nonesuch"})) == ["template"]
    other = {"from": "desk@other.example.org", "variables": {"note": "R"}}
    assert "not for principal other" in refused(other, token="other")["detail"]
    assert fields_of(problem(api.post(mail(["p@home.example"], variables={"a": 1})), 422)) == [
        "variables"
    ]


def test_a_send_token_needs_a_principal(api: Api) -> None:
    refused = api.gw.cli("token", "add", "crm2", "--scope", "send", check=False)
    assert refused.returncode != 0 and "--principal NAME" in refused.stderr
    made = api.gw.json("token", "add", "crm2", "--scope", "send", "--principal", "ehr")
    assert made["scopes"] == ["send"] and made["principal"] == "ehr"


def test_idempotency_keys_in_the_store(db: Database) -> None:
    """On SQLite and on PostgreSQL: a live key is kept once, an expired one is
    replaced, and pruning removes the expired."""
    with db.transaction() as conn:
        idempotency.record(conn, "ehr", "k1", "hash-1", "Q1", now=1000.0, since=0.0)
        idempotency.record(conn, "ehr2", "k1", "hash-2", "Q2", now=1000.0, since=0.0)
    with db.reading() as conn:
        assert idempotency.find(conn, "ehr", "k1", since=900.0) == idempotency.Stored(
            "hash-1", "Q1"
        )
        assert idempotency.find(conn, "ehr", "k1", since=1001.0) is None  # expired
    with pytest.raises(IntegrityError), db.transaction() as conn:  # a live key: once
        idempotency.record(conn, "ehr", "k1", "hash-3", "Q3", now=1100.0, since=900.0)
    with db.transaction() as conn:
        idempotency.record(conn, "ehr", "k1", "hash-3", "Q3", now=1100.0, since=1050.0)
        assert idempotency.prune(conn, since=1050.0) == 1  # ehr2's
    with db.reading() as conn:
        assert idempotency.find(conn, "ehr", "k1", since=1050.0) == idempotency.Stored(
            "hash-3", "Q3"
        )
        assert idempotency.find(conn, "ehr2", "k1", since=0.0) is None
