"""The consent registry: the state rule, patient linking, append-only records and
their audit events, on a real SQLite store."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select

from gateway.audit.verify import verify
from gateway.config import ConsentConfig, PurposeConfig
from gateway.consent import registry
from gateway.consent.registry import (
    ConsentError,
    Grant,
    OptChange,
    OptEvent,
    Revocation,
    consent_state,
)
from gateway.consent.source import RegistryConsent
from gateway.store.database import Database
from gateway.store.schema import audit_events, consent_opt_outs, consent_records

NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC
DAY = 86400.0
FLU = "marketing/flu-clinic"
PAID = "marketing/sponsored-trial"
CONFIG = ConsentConfig(
    purposes={
        "flu-clinic": PurposeConfig(description="Flu clinic"),
        "sponsored-trial": PurposeConfig(description="Paid by a sponsor", remunerated=True),
    }
)
# Canaries: none of these may reach an audit event.
DOC_CANARY = "CANARY-DOC-7qz Jane Roe signed form"
PATIENT_CANARY = "MRN-CANARY-7qz"


# --- the state rule, as a pure function -------------------------------------------


@dataclass(frozen=True)
class Rec:
    kind: str
    purpose: str
    effective_at: float
    expires_at: float | None = None
    remuneration: bool = False
    remuneration_disclosed: bool = False
    id: int = 0


def g(purpose: str, at: float, until: float | None = None, rid: int = 0, paid: bool = False) -> Rec:
    return Rec("grant", purpose, at, until, paid, paid, rid)


def r(purpose: str, at: float, rid: int = 0) -> Rec:
    return Rec("revoke", purpose, at, id=rid)


def out(purpose: str, rid: int) -> OptEvent:
    return OptEvent(rid, "opt_out", purpose)


def back(purpose: str, rid: int) -> OptEvent:
    return OptEvent(rid, "opt_in", purpose)


M = "marketing"
RULE_CASES: list[tuple[str, list[Rec], list[OptEvent], str, str]] = [
    ("no record", [], [], M, "none"),
    ("a grant", [g(M, NOW - DAY, rid=1)], [], M, "granted"),
    ("a grant with a future expiry", [g(M, NOW - DAY, NOW + DAY, 1)], [], M, "granted"),
    ("an expired grant", [g(M, NOW - 2 * DAY, NOW - DAY, 1)], [], M, "expired"),
    ("a grant expiring now", [g(M, NOW - DAY, NOW, 1)], [], M, "expired"),
    ("a future grant does not count yet", [g(M, NOW + DAY, rid=1)], [], M, "none"),
    (
        "a future grant leaves the older one in force",
        [g(M, NOW - DAY, rid=1), r(M, NOW - DAY / 2, 2), g(M, NOW + DAY, rid=3)],
        [],
        M,
        "revoked",
    ),
    ("grant then revoke", [g(M, NOW - 2 * DAY, rid=1), r(M, NOW - DAY, 2)], [], M, "revoked"),
    (
        "re-grant after a revoke",
        [g(M, NOW - 3 * DAY, rid=1), r(M, NOW - 2 * DAY, 2), g(M, NOW - DAY, rid=3)],
        [],
        M,
        "granted",
    ),
    (
        "effective time decides, not recording order",
        [g(M, NOW - DAY, rid=2), r(M, NOW - 2 * DAY, 1)],
        [],
        M,
        "granted",
    ),
    (
        "a revoke recorded later but dated earlier loses",
        [g(M, NOW - DAY, rid=1), r(M, NOW - 2 * DAY, 2)],
        [],
        M,
        "granted",
    ),
    ("same time: recorded last wins (revoke)", [g(M, NOW, rid=1), r(M, NOW, 2)], [], M, "revoked"),
    ("same time: recorded last wins (grant)", [r(M, NOW, 1), g(M, NOW, rid=2)], [], M, "granted"),
    (
        "the newest grant is in force even when it expired",
        [g(M, NOW - 3 * DAY, rid=1), g(M, NOW - 2 * DAY, NOW - DAY, 2)],
        [],
        M,
        "expired",
    ),
    (
        "a future-dated revoke counts at once",
        [g(M, NOW - DAY, rid=1), r(M, NOW + DAY, 2)],
        [],
        M,
        "revoked",
    ),
    ("a marketing grant covers a sub-purpose", [g(M, NOW - DAY, rid=1)], [], FLU, "granted"),
    ("a sub-purpose grant does not cover marketing", [g(FLU, NOW - DAY, rid=1)], [], M, "none"),
    (
        "a sub-purpose grant does not cover another",
        [g(FLU, NOW - DAY, rid=1)],
        [],
        "marketing/other",
        "none",
    ),
    (
        "a marketing revoke covers a sub-purpose",
        [g(FLU, NOW - 2 * DAY, rid=1), r(M, NOW - DAY, 2)],
        [],
        FLU,
        "revoked",
    ),
    (
        "a sub-purpose revoke leaves marketing",
        [g(M, NOW - 2 * DAY, rid=1), r(FLU, NOW - DAY, 2)],
        [],
        M,
        "granted",
    ),
    (
        "a sub-purpose revoke covers its sub-purpose",
        [g(M, NOW - 2 * DAY, rid=1), r(FLU, NOW - DAY, 2)],
        [],
        FLU,
        "revoked",
    ),
    ("remunerated: a marketing grant is ignored", [g(M, NOW - DAY, rid=1)], [], PAID, "none"),
    (
        "remunerated: a disclosed marketing grant is ignored too",
        [g(M, NOW - DAY, rid=1, paid=True)],
        [],
        PAID,
        "none",
    ),
    ("remunerated: an undisclosed grant is ignored", [g(PAID, NOW - DAY, rid=1)], [], PAID, "none"),
    (
        "remunerated: remuneration without disclosure is ignored",
        [Rec("grant", PAID, NOW - DAY, None, True, False, 1)],
        [],
        PAID,
        "none",
    ),
    (
        "remunerated: a disclosed grant counts",
        [g(PAID, NOW - DAY, rid=1, paid=True)],
        [],
        PAID,
        "granted",
    ),
    (
        "remunerated: an ignored grant does not hide a revoke",
        [
            g(PAID, NOW - 3 * DAY, rid=1, paid=True),
            r(M, NOW - 2 * DAY, 2),
            g(PAID, NOW - DAY, rid=3),
        ],
        [],
        PAID,
        "revoked",
    ),
    (
        "remunerated: a future grant does not count yet",
        [g(PAID, NOW + DAY, rid=1, paid=True)],
        [],
        PAID,
        "none",
    ),
    ("an opt-out without any grant", [], [out(M, 1)], M, "opted_out"),
    ("an opt-out wins over a grant", [g(M, NOW - DAY, rid=1)], [out(M, 1)], M, "opted_out"),
    (
        "a marketing opt-out covers sub-purposes",
        [g(FLU, NOW - DAY, rid=1)],
        [out(M, 1)],
        FLU,
        "opted_out",
    ),
    ("a sub-purpose opt-out covers it", [g(M, NOW - DAY, rid=1)], [out(FLU, 1)], FLU, "opted_out"),
    (
        "a sub-purpose opt-out leaves marketing",
        [g(M, NOW - DAY, rid=1)],
        [out(FLU, 1)],
        M,
        "granted",
    ),
    (
        "an opt-in cancels the opt-out",
        [g(M, NOW - DAY, rid=1)],
        [out(M, 1), back(M, 2)],
        M,
        "granted",
    ),
    ("an opt-in authorizes nothing", [], [out(M, 1), back(M, 2)], M, "none"),
    (
        "an opt-out after an opt-in",
        [g(M, NOW - DAY, rid=1)],
        [back(M, 1), out(M, 2)],
        M,
        "opted_out",
    ),
    (
        "a sub-purpose opt-in leaves the marketing opt-out",
        [g(M, NOW - DAY, rid=1)],
        [out(M, 1), back(FLU, 2)],
        FLU,
        "opted_out",
    ),
    (
        "a marketing opt-in leaves a sub-purpose opt-out",
        [g(M, NOW - DAY, rid=1)],
        [out(FLU, 1), out(M, 2), back(M, 3)],
        FLU,
        "opted_out",
    ),
    (
        "opt-outs are ordered by recording, not by list order",
        [g(M, NOW - DAY, rid=1)],
        [back(M, 2), out(M, 1)],
        M,
        "granted",
    ),
    (
        "a record given twice counts once",
        [g(M, NOW - 2 * DAY, rid=1), r(M, NOW - DAY, 2), r(M, NOW - DAY, 2)],
        [out(FLU, 1), out(FLU, 1)],
        M,
        "revoked",
    ),
]


@pytest.mark.parametrize(
    ("records", "opts", "purpose", "expected"),
    [case[1:] for case in RULE_CASES],
    ids=[case[0] for case in RULE_CASES],
)
def test_state_rule(records: list[Rec], opts: list[OptEvent], purpose: str, expected: str) -> None:
    remunerated = registry.is_remunerated(CONFIG, purpose)
    assert consent_state(records, opts, purpose, NOW, remunerated) == expected
    # The order the records come in never matters.
    assert consent_state(records[::-1], opts[::-1], purpose, NOW, remunerated) == expected


# Every combination of up to three authorization events and up to two opt events
# from a small universe, checked against properties the rule must have.
_UNIVERSE = [
    g(M, NOW - 2 * DAY),
    g(M, NOW - DAY, NOW - DAY / 2),
    g(FLU, NOW + DAY),
    g(PAID, NOW - DAY, paid=True),
    r(M, NOW - DAY),
    r(FLU, NOW - 2 * DAY),
]
_OPT_UNIVERSE = [("opt_out", M), ("opt_out", FLU), ("opt_in", M), ("opt_in", FLU)]


def _numbered(events: tuple[Rec, ...]) -> list[Rec]:
    return [Rec(**{**e.__dict__, "id": n}) for n, e in enumerate(events, 1)]


def test_state_rule_properties_over_all_small_histories() -> None:
    checked = 0
    for size in range(4):
        for combo in itertools.permutations(_UNIVERSE, size):
            records = _numbered(combo)
            for opt_size in range(3):
                for opt_combo in itertools.permutations(_OPT_UNIVERSE, opt_size):
                    opts = [OptEvent(n, kind, p) for n, (kind, p) in enumerate(opt_combo, 1)]
                    for purpose in (M, FLU, PAID):
                        paid = registry.is_remunerated(CONFIG, purpose)
                        state = consent_state(records, opts, purpose, NOW, paid)
                        assert state in registry.STATES
                        # Opt-outs win, whatever the authorizations say.
                        assert (state == "opted_out") == registry.opted_out(opts, purpose)
                        if state == "opted_out":
                            continue
                        # A covering revoke later than everything: revoked.
                        last = Rec("revoke", M, NOW, id=len(records) + 1)
                        assert (
                            consent_state([*records, last], opts, purpose, NOW, paid) == "revoked"
                        )
                        # A valid grant for exactly the purpose, later than everything: granted.
                        fresh = Rec("grant", purpose, NOW, NOW + DAY, True, True, len(records) + 1)
                        assert (
                            consent_state([*records, fresh], opts, purpose, NOW, paid) == "granted"
                        )
                        checked += 1
    assert checked > 4000


# --- purposes ----------------------------------------------------------------------


def test_validate_purpose_normalises_and_names_the_known_purposes() -> None:
    assert registry.validate_purpose(CONFIG, "  Marketing/Flu-Clinic ") == FLU
    assert registry.validate_purpose(CONFIG, "MARKETING") == "marketing"
    for wrong in ("treatment", "marketing/unknown", "marketing/", "flu-clinic", ""):
        with pytest.raises(ConsentError) as caught:
            registry.validate_purpose(CONFIG, wrong)
        assert "marketing, marketing/flu-clinic, marketing/sponsored-trial" in str(caught.value)
        assert caught.value.field == "purpose"


def test_an_unconfigured_sub_purpose_counts_as_remunerated() -> None:
    assert not registry.is_remunerated(CONFIG, "marketing")
    assert not registry.is_remunerated(CONFIG, FLU)
    assert registry.is_remunerated(CONFIG, PAID)
    assert registry.is_remunerated(CONFIG, "marketing/forgotten")


def _grant(address: str | None = "pat@clinic.example", **changes: Any) -> Grant:
    values: dict[str, Any] = {
        "address": address,
        "patient_id": None,
        "purpose": "marketing",
        "granted_at": NOW - DAY,
        "expires_at": None,
        "source": "ehr",
    }
    values.update(changes)
    return Grant(**values)


@pytest.mark.parametrize(
    ("grant", "field", "words"),
    [
        (_grant("not an address"), "address", "local-part@domain"),
        (_grant(None), "address", "address, a patient id"),
        (_grant(patient_id="has space"), "patient_id", "without spaces"),
        (_grant(purpose="newsletter"), "purpose", "marketing/<sub-purpose>"),
        (_grant(expires_at=NOW - 2 * DAY), "expires_at", "expire before"),
        (_grant(source="fax"), "source", "web_form"),
        (_grant(document_ref="x" * 201), "document_ref", "never the document"),
        (_grant(document_ref="line\nbreak"), "document_ref", "one line"),
        (_grant(remuneration_disclosed=True), "remuneration", "needs remuneration"),
        (_grant(granted_at=float("nan")), "granted_at", "not a valid time"),
    ],
)
def test_a_wrong_grant_is_refused_naming_the_field(grant: Grant, field: str, words: str) -> None:
    with pytest.raises(ConsentError) as caught:
        registry.checked_grant(grant)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_a_grant_for_a_remunerated_purpose_must_disclose_it() -> None:
    with pytest.raises(ConsentError) as caught:
        registry.check_grant_for(CONFIG, _grant(purpose=PAID))
    assert caught.value.field == "remuneration_disclosed"
    paid = _grant(purpose=PAID, remuneration=True, remuneration_disclosed=True)
    assert registry.check_grant_for(CONFIG, paid).purpose == PAID


# --- the store ------------------------------------------------------------------------


def _states(
    db: Database, addresses: list[str], purpose: str = M, now: float = NOW
) -> dict[str, str]:
    with db.reading() as conn:
        return registry.states(conn, addresses, purpose, now, CONFIG)


def _count(conn: Connection, table: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_grant_and_states_normalise_the_domain_only(db: Database) -> None:
    with db.transaction() as conn:
        registry.grant(conn, _grant("Pat@Clinic.EXAMPLE"), actor="t", now=NOW)
    states = _states(db, ["Pat@clinic.example", "Pat@CLINIC.example.", "pat@clinic.example", "bad"])
    assert states == {
        "Pat@clinic.example": "granted",
        "Pat@CLINIC.example.": "granted",
        "pat@clinic.example": "none",  # the local part is kept as written
        "bad": "none",
    }


def test_patient_ids_link_addresses(db: Database) -> None:
    a, b, c, d, e = (f"{n}@clinic.example" for n in "abcde")
    with db.transaction() as conn:
        registry.grant(conn, _grant(a, patient_id="P1"), actor="t", now=NOW)
        registry.grant(conn, _grant(b, patient_id="P1", purpose=FLU), actor="t", now=NOW)
        registry.grant(conn, _grant(d, patient_id="P2"), actor="t", now=NOW)
        registry.grant(conn, _grant(e), actor="t", now=NOW)
    # A grant for b (naming the patient) is b's only: a has no flu grant of its own,
    # but its marketing grant covers flu.
    assert _states(db, [a, b], FLU) == {a: "granted", b: "granted"}
    assert _states(db, [b], M) == {b: "none"}
    with db.transaction() as conn:
        written = registry.revoke(
            conn,
            address=None,
            patient_id="P1",
            purpose=M,
            revoked_at=NOW - DAY / 2,
            source="ehr",
            actor="t",
            now=NOW,
        )
    assert written == 1
    assert _states(db, [a, b, d, e], FLU) == {
        a: "revoked",
        b: "revoked",
        d: "granted",
        e: "granted",
    }
    with db.transaction() as conn:
        # c is linked later, with a grant older than the revocation: revoked too.
        registry.grant(conn, _grant(c, patient_id="P1", granted_at=NOW - DAY), actor="t", now=NOW)
    assert _states(db, [c]) == {c: "revoked"}
    with db.transaction() as conn:
        registry.grant(conn, _grant(c, granted_at=NOW - DAY / 4), actor="t", now=NOW)
    assert _states(db, [c]) == {c: "granted"}  # a re-grant after the revocation
    with db.transaction() as conn:
        # A grant naming only the patient covers every linked address.
        registry.grant(
            conn, _grant(None, patient_id="P1", granted_at=NOW - DAY / 8), actor="t", now=NOW
        )
    assert _states(db, [a, b, c, d]) == {a: "granted", b: "granted", c: "granted", d: "granted"}
    with db.transaction() as conn:
        # A revoke naming an address and a patient covers the patient's other addresses.
        registry.revoke(
            conn,
            address=d,
            patient_id="P1",
            purpose=M,
            revoked_at=NOW - DAY / 16,
            source="admin",
            actor="t",
            now=NOW,
        )
    assert _states(db, [a, d, e]) == {a: "revoked", d: "revoked", e: "granted"}


def test_one_query_per_call_and_none_for_other_purposes(db: Database) -> None:
    with db.transaction() as conn:
        for n in range(10):
            registry.grant(
                conn, _grant(f"p{n}@clinic.example", patient_id=f"P{n % 3}"), actor="t", now=NOW
            )
        registry.opt_out(
            conn, address="p1@clinic.example", purpose=M, source="api", actor="t", now=NOW
        )
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.read_engine, "before_cursor_execute", seen)
    try:
        addresses = [f"p{n}@clinic.example" for n in range(12)]
        states = _states(db, addresses)
        assert [s for s in statements if s.lstrip().upper().startswith("SELECT")] == [
            statements[-1]
        ]
        assert states["p1@clinic.example"] == "opted_out"
        assert states["p0@clinic.example"] == "granted" and states["p11@clinic.example"] == "none"
        statements.clear()
        assert _states(db, addresses, "treatment") == dict.fromkeys(addresses, "none")
        assert not any("SELECT" in s.upper() for s in statements)
    finally:
        event.remove(db.read_engine, "before_cursor_execute", seen)


def test_records_are_append_only(db: Database) -> None:
    address = "pat@clinic.example"
    with db.transaction() as conn:
        first = registry.grant(conn, _grant(address), actor="t", now=NOW)
    with db.reading() as conn:
        before = dict(conn.execute(select(consent_records)).mappings().one())
    counts: list[int] = []
    steps: list[Callable[[Connection], object]] = [
        lambda conn: registry.revoke(
            conn,
            address=address,
            patient_id=None,
            purpose=M,
            revoked_at=NOW,
            source="api",
            actor="t",
            now=NOW,
        ),
        lambda conn: registry.grant(conn, _grant(address, granted_at=NOW), actor="t", now=NOW + 1),
        lambda conn: registry.opt_out(
            conn, address=address, purpose=M, source="api", actor="t", now=NOW + 2
        ),
        lambda conn: registry.opt_in(
            conn, address=address, purpose=M, source="admin", actor="t", now=NOW + 3
        ),
    ]
    for step in steps:
        with db.transaction() as conn:
            step(conn)
        with db.reading() as conn:
            counts.append(_count(conn, consent_records) + _count(conn, consent_opt_outs))
            first_row = conn.execute(select(consent_records).where(consent_records.c.id == first))
            assert dict(first_row.mappings().one()) == before  # never changed
    assert counts == [2, 3, 4, 5]
    with db.reading() as conn:
        kinds = [h["kind"] for h in registry.history(conn, address=address)]
    assert kinds == ["grant", "revoke", "grant", "opt_out", "opt_in"]


def test_opt_out_and_opt_in_write_only_when_they_change_something(db: Database) -> None:
    address = "pat@clinic.example"

    def opt(kind: str, purpose: str) -> bool:
        action = registry.opt_out if kind == "out" else registry.opt_in
        with db.transaction() as conn:
            return action(
                conn, address=address, purpose=purpose, source="admin", actor="t", now=NOW
            )

    assert opt("in", M) is False  # nothing to cancel
    assert opt("out", M) is True
    assert opt("out", M) is False  # already opted out
    assert opt("out", FLU) is False  # the marketing opt-out covers it
    assert opt("in", FLU) is False  # no opt-out for exactly that purpose
    assert _states(db, [address], FLU) == {address: "opted_out"}
    assert opt("in", M) is True
    assert _states(db, [address], FLU) == {address: "none"}
    with db.reading() as conn:
        assert _count(conn, consent_opt_outs) == 2


def _events(conn: Connection, name: str) -> list[dict[str, Any]]:
    query = select(audit_events).where(audit_events.c.event == name).order_by(audit_events.c.id)
    return [dict(row) for row in conn.execute(query).mappings()]


def test_every_change_is_audited_with_metadata_only(db: Database) -> None:
    a, b = "a@clinic.example", "b@clinic.example"
    with db.transaction() as conn:
        granted = registry.grant(
            conn,
            _grant(a, patient_id=PATIENT_CANARY, document_ref=DOC_CANARY),
            actor="ehr-sync",
            now=NOW,
        )
        registry.grant(conn, _grant(b, patient_id=PATIENT_CANARY), actor="ehr-sync", now=NOW)
        registry.revoke(
            conn,
            address=None,
            patient_id=PATIENT_CANARY,
            purpose=FLU,
            revoked_at=NOW,
            source="web_form",
            actor="portal",
            now=NOW,
        )
        registry.opt_out(
            conn,
            address=a,
            purpose=M,
            source="unsubscribe",
            actor="link",
            now=NOW,
            reference=DOC_CANARY,
        )
        registry.opt_in(conn, address=a, purpose=M, source="admin", actor="cli:root", now=NOW)
        registry.import_changes(
            conn,
            [
                _grant("c@clinic.example", document_ref=DOC_CANARY),
                Revocation("c@clinic.example", None, M, NOW, "import"),
                OptChange("opt_out", "d@clinic.example", FLU, "import", DOC_CANARY),
            ],
            actor="cli:root",
            now=NOW,
        )
    with db.reading() as conn:
        first = _events(conn, "consent_granted")[0]
        assert json.loads(first["recipients"]) == [a]
        assert first["detail"] == f"purpose=marketing source=ehr actor=ehr-sync record={granted}"
        revoked = _events(conn, "consent_revoked")
        assert len(revoked) == 1 and json.loads(revoked[0]["recipients"]) == [a, b]
        assert "purpose=marketing/flu-clinic source=web_form actor=portal" in revoked[0]["detail"]
        assert len(_events(conn, "consent_opted_out")) == 1
        assert _events(conn, "consent_opted_in")[0]["detail"].startswith(
            "purpose=marketing source=admin"
        )
        imported = _events(conn, "consent_imported")
        assert len(imported) == 1
        assert imported[0]["detail"] == "grant=1 revoke=1 opt_out=1 opt_in=0 actor=cli:root"
        everything = repr(conn.execute(select(audit_events)).all())
        assert "7qz" not in everything  # no document reference, no patient id
        assert db.audit_key is not None
        report = verify(conn, db.audit_key)
        assert (report.events, report.problems) == (6, [])


def test_a_refused_change_writes_nothing(db: Database) -> None:
    with pytest.raises(ConsentError), db.transaction() as conn:
        registry.grant(conn, _grant("pat@clinic.example"), actor="t", now=NOW)
        registry.grant(conn, _grant("pat@clinic.example", source="fax"), actor="t", now=NOW)
    with db.reading() as conn:
        assert _count(conn, consent_records) == 0
        assert _count(conn, audit_events) == 0


def test_history_of_an_address_and_of_a_patient(db: Database) -> None:
    a, b, c = "a@clinic.example", "b@clinic.example", "c@clinic.example"
    with db.transaction() as conn:
        registry.grant(conn, _grant(a, patient_id="P1"), actor="t", now=NOW)
        registry.grant(
            conn, _grant(b, patient_id="P1", document_ref="form 7"), actor="t", now=NOW + 1
        )
        registry.grant(conn, _grant(c), actor="t", now=NOW + 2)
        registry.revoke(
            conn,
            address=None,
            patient_id="P1",
            purpose=M,
            revoked_at=NOW,
            source="ehr",
            actor="t",
            now=NOW + 3,
        )
        registry.opt_out(conn, address=b, purpose=FLU, source="api", actor="t", now=NOW + 4)
    with db.reading() as conn:
        of_a = registry.history(conn, address=a)
        of_patient = registry.history(conn, patient_id="P1")
        with pytest.raises(ConsentError):
            registry.history(conn)
    # a: its grant and the patient's revocation, not b's grant or opt-out.
    assert [(h["kind"], h["address"]) for h in of_a] == [("grant", a), ("revoke", None)]
    assert [(h["kind"], h["address"]) for h in of_patient] == [
        ("grant", a),
        ("grant", b),
        ("revoke", None),
        ("opt_out", b),
    ]
    assert of_patient[1]["document_ref"] == "form 7"


def test_registry_consent_against_a_real_store(db: Database) -> None:
    with db.transaction() as conn:
        registry.grant(
            conn, _grant("a@clinic.example", granted_at=time.time() - DAY), actor="t", now=NOW
        )
        registry.grant(
            conn,
            _grant(
                "b@clinic.example", granted_at=time.time() - 2 * DAY, expires_at=time.time() - DAY
            ),
            actor="t",
            now=NOW,
        )

    async def ask() -> tuple[dict[str, str], dict[str, str], int]:
        db.start()  # the server's writer: an opt-out arrives while intake reads
        try:
            source = RegistryConsent(db, CONFIG)
            recipients = ["a@clinic.example", "b@clinic.example", "c@clinic.example"]
            before = dict(await source.states(recipients, FLU))
            opted = await db.write(
                lambda conn: registry.opt_out(
                    conn,
                    address="a@clinic.example",
                    purpose=FLU,
                    source="unsubscribe",
                    actor="link",
                    now=time.time(),
                )
            )
            after = dict(await source.states(recipients, FLU))
            other = await source.states(recipients, "treatment")
            assert other == dict.fromkeys(recipients, "none")
            return before, after, int(opted)
        finally:
            db.stop()

    before, after, opted = asyncio.run(asyncio.wait_for(ask(), 10))
    assert before == {
        "a@clinic.example": "granted",
        "b@clinic.example": "expired",
        "c@clinic.example": "none",
    }
    assert opted == 1
    assert after["a@clinic.example"] == "opted_out"
