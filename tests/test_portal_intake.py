"""The portal's side of intake: terms from the policy onto jobs, and the sender's passphrase.

The passphrase header is taken out of every message before it is stored or
delivered; its value lives on only as an argon2id hash on the jobs whose
terms ask for it. Over a real server: smtplib submits, the store and the
sandbox are read back through the keyring.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import pytest
from harness import Phigate, audit_mark, audit_since, message

from gateway.mail.headers import take_fields
from gateway.portal.passphrase import passphrase_of
from gateway.settings_loader import load_settings
from gateway.store import queue
from gateway.store.database import Database
from gateway.store.keyring import Keyring, Sealed
from gateway.store.principals import HASHER

HEADER = "X-Phigate-Portal-Passphrase"

# --- taking the header out: every other byte stays -------------------------------------


@pytest.mark.parametrize(
    ("raw", "kept", "values"),
    [
        (
            b"From: a@b.example\r\nX-Phigate-Portal-Passphrase: one two three\r\n"
            b"Subject: s\r\n\r\nbody\r\n",
            b"From: a@b.example\r\nSubject: s\r\n\r\nbody\r\n",
            (b" one two three",),
        ),
        (  # any case, blanks before the colon, folded over lines: the whole field goes
            b"x-phigate-portal-PASSPHRASE :  first half\r\n\tsecond half\r\nFrom: a\r\n\r\nb\r\n",
            b"From: a\r\n\r\nb\r\n",
            (b"  first half\r\n\tsecond half",),
        ),
        (  # the last field before the body, given twice
            b"From: a\r\nX-Phigate-Portal-Passphrase: p1\r\nTo: c\r\n"
            b"X-Phigate-Portal-Passphrase: p2\r\n\r\n",
            b"From: a\r\nTo: c\r\n\r\n",
            (b" p1", b" p2"),
        ),
        (  # a header without a body, and without a final CRLF
            b"From: a\r\nX-Phigate-Portal-Passphrase: end",
            b"From: a\r\n",
            (b" end",),
        ),
    ],
    ids=["plain", "folded-any-case", "twice", "no-body"],
)
def test_the_field_is_taken_out_and_nothing_else(
    raw: bytes, kept: bytes, values: tuple[bytes, ...]
) -> None:
    assert take_fields(raw, HEADER) == (kept, values)


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a\r\nX-Phigate-Portal-Passphrase-Hint: other field\r\n\r\nbody\r\n",
        b"From: a\r\nSubject: s\r\n X-Phigate-Portal-Passphrase: a continuation\r\n\r\nb\r\n",
        b"From: a\r\n\r\nX-Phigate-Portal-Passphrase: in the body\r\n",
        b"\r\nX-Phigate-Portal-Passphrase: no header at all\r\n",
    ],
    ids=["longer-name", "continuation-line", "in-the-body", "no-header"],
)
def test_lookalikes_are_left_alone_uncopied(raw: bytes) -> None:
    kept, values = take_fields(raw, HEADER)
    assert kept is raw and values == ()


@pytest.mark.parametrize(
    ("values", "passphrase"),
    [
        ((b" correct horse battery ",), b"correct horse battery"),
        ((b" folded over\r\n two lines",), b"folded over two lines"),
        ((b" " + b"x" * 200,), b"x" * 200),
        ((), None),
        ((b"  ",), None),
        ((b" short",), None),
        ((b" " + b"x" * 201,), None),
        ((b" caf\xc3\xa9 au lait",), None),
        ((b" tab\tinside it",), None),
        ((b" the first one", b" the second one"), None),
    ],
)
def test_a_passphrase_is_one_field_of_8_to_200_printable_characters(
    values: tuple[bytes, ...], passphrase: bytes | None
) -> None:
    assert passphrase_of(values) == passphrase


# --- the terms on the job, through the store ---------------------------------------------


def test_portal_terms_survive_the_store_and_the_claim(db: Database, keyring: Keyring) -> None:
    terms = queue.PortalTerms("passphrase", True, 14, True, "$argon2id$v=19$m=19456,t=2,p=1$x$y")
    queue_id = queue.new_queue_id()
    record = queue.NewMessage(
        queue_id, time.time(), "test", "p", "127.0.0.1", "a@b.example", 1, None,
        keyring.seal(b"x", queue_id.encode()),
    )  # fmt: skip
    jobs = [
        queue.NewJob("pat@home.example", ("portal",), portal=terms),
        queue.NewJob("dr@partner.example", ("tls", "portal"), portal=queue.PortalTerms()),
        queue.NewJob("lab@lab.example", ("tls",)),
    ]
    with db.transaction() as conn:
        queue.insert_message(conn, record, jobs)
    with db.transaction() as conn:
        claimed = queue.claim(conn, "w", time.time() + 1, 60, 10)
    assert sorted((j.recipient, j.portal) for j in claimed) == [
        ("dr@partner.example", queue.PortalTerms("code", False, None, False, None)),
        ("lab@lab.example", None),
        ("pat@home.example", terms),
    ]
    assert queue.PortalTerms.from_json(terms.to_json()) == terms


# --- over a real server ----------------------------------------------------------------

POLICY = """\
version: 1
defaults:
  via: [standard]
rules:
  - id: patients-passphrase
    when: {recipient_domain: patient.test}
    action: deliver
    via: [portal]
    portal: {access: passphrase, show_sender: true, expiry_days: 14}
  - id: partners-code
    when: {recipient_domain: partner.test}
    action: deliver
    via: [tls, portal]
    portal: {read_receipt: true}
  - id: tls-only
    when: {recipient_domain: tls.test}
    action: deliver
    via: [tls]
  - id: review
    when: {recipient_domain: review.test}
    action: hold
    reason: Waits for review
"""
SENDER = "ehr@clinic.example.org"
CANARY = "CANARY-PASSPHRASE-83517 horse"


def _raw(recipient: str, passphrase_field: bytes = b"") -> bytes:
    """A message with `passphrase_field` (a whole field, CRLF included) after From:."""
    raw = message(SENDER, recipient, "Results", "Potassium 4.1")
    head, _, rest = raw.partition(b"\r\n")
    return head + b"\r\n" + passphrase_field + rest


def _send(gw: Phigate, secret: str, recipients: list[str], raw: bytes) -> tuple[int, str]:
    client = gw.client("ehr1", secret)
    try:
        client.mail(SENDER)
        for recipient in recipients:
            assert client.rcpt(recipient)[0] == 250
        code, reply = client.data(raw)
        return code, reply.decode()
    finally:
        client.quit()


def _read(gw: Phigate, query: str, queue_id: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(f"{gw.db_path.as_uri()}?mode=ro", uri=True)) as db:
        return db.execute(query, (queue_id,)).fetchall()


def _stored(gw: Phigate, queue_id: str) -> bytes:
    """The message as sealed in the store, opened with the master key."""
    settings = load_settings(gw.config)
    keyring = Keyring(settings.path(settings.keys_dir))
    query = "SELECT key_id, wrapped_key, content FROM messages WHERE queue_id = ?"
    ((key_id, wrapped, content),) = _read(gw, query, queue_id)
    return keyring.open(Sealed(str(key_id), bytes(wrapped), bytes(content)), queue_id.encode())


def _terms(gw: Phigate, queue_id: str) -> dict[object, object]:
    """Each job's portal terms as stored."""
    return dict(_read(gw, "SELECT recipient, portal FROM jobs WHERE queue_id = ?", queue_id))


def test_the_passphrase_is_removed_hashed_onto_its_jobs_and_required(tmp_path: Path) -> None:
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    (policy_dir / "policy.yaml").write_text(POLICY)
    gw = Phigate(tmp_path, policy_dir=str(policy_dir))
    secret = gw.add_principal("ehr1", "clinic.example.org")
    # The held recipient keeps the content stored while the others are delivered.
    recipients = ["pat@patient.test", "dr@partner.test", "lab@tls.test", "desk@review.test"]
    # Folded, as a mail library may write a long field.
    field = f"{HEADER}: CANARY-PASSPHRASE-83517\r\n horse\r\n".encode()
    raw = _raw(recipients[0], field)
    with gw:
        mark = audit_mark(gw)
        code, reply = _send(gw, secret, recipients, raw)
        assert code == 250, reply
        queue_id = reply.rsplit(" ", 1)[1]
        stored, jobs = _stored(gw, queue_id), _terms(gw, queue_id)

        # Missing, malformed or given twice: the whole message is refused, saying how to fix it.
        short = f"{HEADER}: short\r\n".encode()
        refusals = [
            _send(gw, secret, recipients, _raw(recipients[0])),
            _send(gw, secret, recipients[:1], _raw(recipients[0], short)),
            _send(gw, secret, recipients[:1], _raw(recipients[0], field + field)),
        ]
        # Not asked for by any rule: still taken out, nothing hashed.
        code, reply = _send(gw, secret, ["lab@tls.test"], _raw("lab@tls.test", field))
        assert code == 250
        unused_jobs = _terms(gw, reply.rsplit(" ", 1)[1])

        # The tls recipients' copies are delivered (the sandbox captures them).
        def captured() -> list[dict[str, object]]:
            return [c for c in gw.json("sandbox", "ls") if c["recipients"] == ["lab@tls.test"]]

        deadline = time.monotonic() + 20
        while len(captured()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        shown = [gw.cli("sandbox", "show", str(c["id"])).stdout for c in captured()]
        events = audit_since(gw, mark)

    # Stored: the submitted bytes without the field (folded line too), after the trace header.
    assert stored.endswith(_raw(recipients[0]))
    # The trace header's two lines stand where the field's two lines were.
    assert stored.startswith(b"Received: ") and stored.count(b"\r\n") == raw.count(b"\r\n")
    assert HEADER.lower().encode() not in stored.lower() and b"83517" not in stored
    # Delivered: the first message and the one no rule wanted a passphrase for.
    assert len(shown) == 2
    for delivered in shown:
        assert HEADER.lower() not in delivered.lower() and "83517" not in delivered
        assert "Potassium 4.1" in delivered

    # The passphrase job holds its hash; the code job and the tls job none.
    pat = queue.PortalTerms.from_json(str(jobs["pat@patient.test"]))
    assert (pat.access, pat.show_sender, pat.expiry_days, pat.read_receipt) == (
        "passphrase",
        True,
        14,
        False,
    )
    assert pat.passphrase_hash is not None and pat.passphrase_hash.startswith("$argon2id$")
    assert HASHER.verify(pat.passphrase_hash, CANARY.encode())  # unfolded, as sent
    assert queue.PortalTerms.from_json(str(jobs["dr@partner.test"])) == queue.PortalTerms(
        read_receipt=True
    )
    assert jobs["lab@tls.test"] is None
    assert unused_jobs == {"lab@tls.test": None}

    for code, reply in refusals:
        assert code == 550
        assert reply == (
            "5.7.1 Policy rule patients-passphrase needs a portal passphrase: set the "
            f"{HEADER} header to the one shared with the recipient (8 to 200 printable "
            "ASCII characters on one line)"
        )
    # Audited as policy refusals are: the decisions, and the reply the client got.
    refused = [e for e in events if e["event"] == "refused"]
    assert [(e["code"], e["detail"]) for e in refused] == [(550, r[:196]) for _, r in refusals]
    decided = [e for e in events if e["event"] == "policy" and "patient.test" in e["recipients"]]
    assert len(decided) == 4  # the accepted message and the three refused ones

    # The passphrase is in no log line, no audit event and no database file.
    assert "83517" not in gw.log_text()
    assert not [e for e in events if "83517" in repr(e)]
    for path in Path(gw.settings["data_dir"]).glob("phigate.db*"):
        assert b"83517" not in path.read_bytes()
