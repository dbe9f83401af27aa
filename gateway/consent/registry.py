"""The consent registry: marketing authorizations, revocations and opt-outs.

HIPAA (45 CFR 164.508(a)(3)) requires a patient's written authorization before
their PHI is used for marketing, and lets them revoke it at any time; CAN-SPAM
requires a working opt-out. This module keeps that record and answers, per
address and purpose, one of the states the policy condition `consent:` reads.

Everything is append-only: a change is a new row (and an audit event in the
same transaction), never an update or a delete, so the history of every
address can be shown and exported as it happened.

- `consent_records` holds authorizations ("grant") and revocations ("revoke").
  A record names an address, a patient id, or both. A grant naming both links
  the address to the patient. A grant naming only a patient covers every
  address linked to that patient; a revocation naming a patient covers every
  linked address, whatever else it names. Links are resolved when the state is
  read, so an address linked later is covered too.
- `consent_opt_outs` holds opt-outs ("opt_out") and their cancellations by an
  admin ("opt_in"), per address.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    BindParameter,
    Boolean,
    Column,
    Connection,
    Float,
    RowMapping,
    String,
    Table,
    and_,
    bindparam,
    cast,
    false,
    insert,
    null,
    or_,
    select,
    union_all,
)

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.config import ConsentConfig
from gateway.consent.purpose import MARKETING, SUB_PURPOSE, is_marketing, known_purposes
from gateway.consent.states import ConsentState
from gateway.mail.addresses import AddressError, normalise
from gateway.store.schema import consent_opt_outs, consent_records

GRANT, REVOKE, OPT_OUT, OPT_IN = "grant", "revoke", "opt_out", "opt_in"
KINDS = (GRANT, REVOKE, OPT_OUT, OPT_IN)
SOURCES = ("web_form", "ehr", "import", "api", "admin", "unsubscribe")

MAX_DOCUMENT_REF = 200
MAX_PATIENT_ID = 64
MAX_ACTOR = 128
_PATIENT_ID = re.compile(rf"[!-~]{{1,{MAX_PATIENT_ID}}}")  # printable ASCII, no spaces
_IMPORT_CHUNK = 10_000


class ConsentError(Exception):
    """What is wrong with a consent request, and how to fix it (shown to a person).

    `field` names the field of the request at fault (e.g. "expires_at"), if one is.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Grant:
    """An authorization: `address` and/or `patient_id` agreed to mail for `purpose`."""

    address: str | None
    patient_id: str | None
    purpose: str
    granted_at: float
    expires_at: float | None
    source: str
    document_ref: str | None = None  # where the signed authorization is kept; never the document
    remuneration: bool = False  # the marketing is paid for by a third party
    remuneration_disclosed: bool = False  # ... and the authorization says so


@dataclass(frozen=True)
class Revocation:
    address: str | None
    patient_id: str | None
    purpose: str
    revoked_at: float
    source: str


@dataclass(frozen=True)
class OptChange:
    """An opt-out, or an admin's opt-in that cancels earlier opt-outs for the purpose."""

    kind: str  # OPT_OUT or OPT_IN
    address: str
    purpose: str
    source: str
    reference: str | None = None  # e.g. the unsubscribe link it came from


Change = Grant | Revocation | OptChange


# --- purposes -------------------------------------------------------------------


def validate_purpose(config: ConsentConfig, text: str) -> str:
    """The purpose in its stored form ("marketing" or "marketing/<sub>"), or ConsentError."""
    purpose = text.strip().lower()
    if purpose in known_purposes(config):
        return purpose
    known = ", ".join(known_purposes(config))
    hint = ""
    if purpose.startswith(MARKETING + "/"):
        hint = "; add a sub-purpose under consent.purposes in the settings file"
    raise ConsentError(f"unknown purpose {text!r}: write one of {known}{hint}", "purpose")


def is_remunerated(config: ConsentConfig, purpose: str) -> bool:
    """Whether only authorizations disclosing third-party payment count for `purpose`.

    A sub-purpose that is not configured counts as remunerated (the strict
    reading): only an authorization naming it exactly, with the payment
    disclosed, would do.
    """
    if purpose == MARKETING:
        return False
    sub = config.purposes.get(purpose.removeprefix(MARKETING + "/"))
    return sub is None or sub.remunerated


def _purpose(text: str) -> str:
    purpose = text.strip().lower()
    prefix, slash, sub = purpose.partition("/")
    if prefix != MARKETING or (slash and not SUB_PURPOSE.fullmatch(sub)):
        raise ConsentError(
            f"purpose {text!r} is not marketing or marketing/<sub-purpose> "
            "(lower-case letters, digits and hyphens)",
            "purpose",
        )
    return purpose


# --- the state rule -------------------------------------------------------------


class AuthorizationRecord(Protocol):
    """A grant or revocation as the state rule reads it (a row of the states query)."""

    @property
    def id(self) -> int: ...  # recording order
    @property
    def kind(self) -> str: ...  # GRANT or REVOKE
    @property
    def purpose(self) -> str: ...
    @property
    def effective_at(self) -> float: ...
    @property
    def expires_at(self) -> float | None: ...
    @property
    def remuneration(self) -> bool: ...
    @property
    def remuneration_disclosed(self) -> bool: ...


class OptRecord(Protocol):
    """An opt-out or opt-in as the state rule reads it."""

    @property
    def id(self) -> int: ...  # recording order
    @property
    def kind(self) -> str: ...  # OPT_OUT or OPT_IN
    @property
    def purpose(self) -> str: ...


@dataclass(frozen=True)
class OptEvent:
    id: int
    kind: str
    purpose: str


def _covers(record_purpose: str, purpose: str) -> bool:
    return record_purpose in (purpose, MARKETING)


def opted_out(events: Iterable[OptRecord], purpose: str) -> bool:
    """Whether an opt-out covers `purpose`: one for it or for all of marketing, with no
    later opt-in for the opt-out's own purpose."""
    latest: dict[str, OptRecord] = {}
    for event in sorted(events, key=lambda e: e.id):
        latest[event.purpose] = event
    return any(e.kind == OPT_OUT and _covers(p, purpose) for p, e in latest.items())


def consent_state(
    authorizations: Iterable[AuthorizationRecord],
    opt_events: Iterable[OptRecord],
    purpose: str,
    now: float,
    remunerated: bool,
) -> ConsentState:
    """The consent state of one address for `purpose` at `now`, from the records that
    apply to the address (its own, and its patients' as described in the module).

    1. **opted_out** if an opt-out covers the purpose: an opt-out for "marketing"
       covers every marketing sub-purpose, one for "marketing/x" only x. An
       opt-in cancels the earlier opt-outs for its own purpose only. Opt-outs win
       over any authorization.
    2. Otherwise the latest (by effective time, then by recording order) of the
       grants and revocations that cover the purpose decides:
       - a revocation covers its own purpose and, when it is for "marketing",
         every sub-purpose: its result is **revoked**; it counts from the
         moment it is recorded, even if dated later (fail closed);
       - a grant covers its own purpose and, when it is for "marketing", every
         sub-purpose that is not `remunerated`. For a remunerated purpose only
         grants for exactly that purpose that record the remuneration *and* its
         disclosure count; others are ignored. A grant effective after `now`
         does not count yet. Its result is **granted**, or **expired** once
         `expires_at` has passed (a later grant that expired hides an earlier
         one that has not: the newest authorization is the one in force).
    3. **none** when nothing covers the purpose.

    A record given twice counts once.
    """
    if opted_out(opt_events, purpose):
        return "opted_out"
    deciding: AuthorizationRecord | None = None
    for event in authorizations:
        if event.kind == REVOKE:
            counts = _covers(event.purpose, purpose)
        elif remunerated:
            counts = (
                event.purpose == purpose
                and event.remuneration
                and event.remuneration_disclosed
                and event.effective_at <= now
            )
        else:
            counts = _covers(event.purpose, purpose) and event.effective_at <= now
        if counts and (
            deciding is None
            or (event.effective_at, event.id) > (deciding.effective_at, deciding.id)
        ):
            deciding = event
    if deciding is None:
        return "none"
    if deciding.kind == REVOKE:
        return "revoked"
    if deciding.expires_at is not None and deciding.expires_at <= now:
        return "expired"
    return "granted"


# --- checking what is written ------------------------------------------------------


def check_address(text: str) -> str:
    """The address as stored (domain lower-cased), or ConsentError."""
    try:
        return normalise(text.strip())
    except AddressError as exc:
        raise ConsentError(
            f"address {text!r}: {exc} (write it as local-part@domain, e.g. pat@example.org)",
            "address",
        ) from None


def check_patient_id(text: str) -> str:
    value = text.strip()
    if not _PATIENT_ID.fullmatch(value):
        raise ConsentError(
            f"a patient id is 1 to {MAX_PATIENT_ID} printable ASCII characters without "
            "spaces, as the EHR shows it",
            "patient_id",
        )
    return value


def _who(address: str | None, patient_id: str | None) -> tuple[str | None, str | None]:
    if address is None and patient_id is None:
        raise ConsentError("name an address, a patient id, or both", "address")
    return (
        None if address is None else check_address(address),
        None if patient_id is None else check_patient_id(patient_id),
    )


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ConsentError(f"source {source!r} is not one of {', '.join(SOURCES)}", "source")
    return source


def check_reference(text: str | None, field: str) -> str | None:
    """A reference to a document kept elsewhere (free text, one line); None if blank."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    if len(value) > MAX_DOCUMENT_REF or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ConsentError(
            f"{field} is at most {MAX_DOCUMENT_REF} characters on one line: a reference to "
            "where the document is kept (e.g. its id in the EHR), never the document",
            field,
        )
    return value


def _time(value: float, field: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise ConsentError(f"{field} is not a valid time", field)
    return float(value)


def _actor(actor: str) -> str:
    if not actor or len(actor) > MAX_ACTOR or any(ord(ch) < 32 for ch in actor):
        raise ConsentError(f"actor must be 1 to {MAX_ACTOR} characters on one line", "actor")
    return actor


def checked_grant(g: Grant) -> Grant:
    """The grant with its address and purpose normalised, or ConsentError."""
    address, patient_id = _who(g.address, g.patient_id)
    granted_at = _time(g.granted_at, "granted_at")
    expires_at = None if g.expires_at is None else _time(g.expires_at, "expires_at")
    if expires_at is not None and expires_at <= granted_at:
        raise ConsentError(
            "the authorization would expire before it is granted: check the dates", "expires_at"
        )
    if g.remuneration_disclosed and not g.remuneration:
        raise ConsentError(
            "a disclosure of remuneration needs remuneration (a third party pays)", "remuneration"
        )
    return Grant(
        address,
        patient_id,
        _purpose(g.purpose),
        granted_at,
        expires_at,
        check_source(g.source),
        check_reference(g.document_ref, "document_ref"),
        g.remuneration,
        g.remuneration_disclosed,
    )


def checked_revocation(r: Revocation) -> Revocation:
    address, patient_id = _who(r.address, r.patient_id)
    revoked_at = _time(r.revoked_at, "revoked_at")
    return Revocation(address, patient_id, _purpose(r.purpose), revoked_at, check_source(r.source))


def checked_opt_change(o: OptChange) -> OptChange:
    if o.kind not in (OPT_OUT, OPT_IN):
        raise ConsentError(f"kind {o.kind!r} is not {OPT_OUT} or {OPT_IN}", "kind")
    return OptChange(
        o.kind,
        check_address(o.address),
        _purpose(o.purpose),
        check_source(o.source),
        check_reference(o.reference, "reference"),
    )


def checked(change: Change) -> Change:
    """The change in its stored form (see the checked_* functions), or ConsentError."""
    if isinstance(change, Grant):
        return checked_grant(change)
    if isinstance(change, Revocation):
        return checked_revocation(change)
    return checked_opt_change(change)


def check_grant_for(config: ConsentConfig, g: Grant) -> Grant:
    """`checked_grant`, and the purpose must be configured; an authorization for a
    remunerated purpose must record the remuneration and its disclosure, or it would
    never count."""
    g = checked_grant(g)
    validate_purpose(config, g.purpose)
    if is_remunerated(config, g.purpose) and not (g.remuneration and g.remuneration_disclosed):
        raise ConsentError(
            f"{g.purpose} is paid for by a third party: an authorization counts for it "
            "only when it discloses that (record remuneration and its disclosure)",
            "remuneration_disclosed",
        )
    return g


def check_for(config: ConsentConfig, change: Change) -> Change:
    """`checked`, with the purpose checked against the settings (see `check_grant_for`)."""
    if isinstance(change, Grant):
        return check_grant_for(config, change)
    change = checked(change)
    validate_purpose(config, change.purpose)
    return change


# --- writing -------------------------------------------------------------------------


def _grant_row(g: Grant, actor: str, now: float) -> dict[str, Any]:
    return {
        "kind": GRANT,
        "address": g.address,
        "patient_id": g.patient_id,
        "purpose": g.purpose,
        "effective_at": g.granted_at,
        "expires_at": g.expires_at,
        "source": g.source,
        "document_ref": g.document_ref,
        "remuneration": g.remuneration,
        "remuneration_disclosed": g.remuneration_disclosed,
        "actor": actor,
        "recorded_at": now,
    }


def _revocation_row(r: Revocation, actor: str, now: float) -> dict[str, Any]:
    return {
        "kind": REVOKE,
        "address": r.address,
        "patient_id": r.patient_id,
        "purpose": r.purpose,
        "effective_at": r.revoked_at,
        "expires_at": None,
        "source": r.source,
        "document_ref": None,
        "remuneration": False,
        "remuneration_disclosed": False,
        "actor": actor,
        "recorded_at": now,
    }


def _opt_row(o: OptChange, actor: str, now: float) -> dict[str, Any]:
    return {
        "kind": o.kind,
        "address": o.address,
        "purpose": o.purpose,
        "source": o.source,
        "reference": o.reference,
        "actor": actor,
        "recorded_at": now,
    }


def _audit(
    conn: Connection,
    event: str,
    recipients: Sequence[str],
    detail: Mapping[str, object],
    now: float,
) -> None:
    """One audit event: metadata only (never a document reference or patient id).

    `detail` names the actor; it is the event's actor too, so searches find it.
    """
    text = " ".join(f"{key}={value}" for key, value in detail.items())
    event_ = AuditEvent(
        event,
        "ok",
        recipients=tuple(recipients),
        detail=text[:255],
        ts=now,
        actor=str(detail["actor"]),
    )
    trail.append(conn, [event_])


def _linked(conn: Connection, wanted: Column[Any], by: Column[Any], value: str) -> list[str]:
    """The `wanted` values of grants whose `by` column is `value` (a patient link)."""
    query = (
        select(wanted)
        .where(by == value, consent_records.c.kind == GRANT, wanted.is_not(None))
        .distinct()
        .order_by(wanted)
    )
    return list(conn.execute(query).scalars())


def linked_addresses(conn: Connection, patient_id: str) -> list[str]:
    """Addresses a grant has linked to the patient."""
    c = consent_records.c
    return _linked(conn, c.address, c.patient_id, patient_id)


def linked_patients(conn: Connection, address: str) -> list[str]:
    """Patient ids a grant has linked to the address."""
    c = consent_records.c
    return _linked(conn, c.patient_id, c.address, address)


def _covered_addresses(conn: Connection, address: str | None, patient_id: str | None) -> list[str]:
    covered = set() if patient_id is None else set(linked_addresses(conn, patient_id))
    if address is not None:
        covered.add(address)
    return sorted(covered)


def _insert(conn: Connection, table: Table, row: dict[str, Any]) -> int:
    """Insert one row; returns its id."""
    key = conn.execute(insert(table).values(row)).inserted_primary_key
    assert key is not None
    return int(key[0])


def grant(conn: Connection, g: Grant, *, actor: str, now: float) -> int:
    """Record an authorization; returns its record id.

    Only the form is checked here; check the purpose against the settings
    first with `check_grant_for` (callers that have them).
    """
    g = checked_grant(g)
    record = _insert(conn, consent_records, _grant_row(g, _actor(actor), now))
    _audit(
        conn,
        "consent_granted",
        _covered_addresses(conn, g.address, g.patient_id if g.address is None else None),
        {"purpose": g.purpose, "source": g.source, "actor": actor, "record": record},
        now,
    )
    return record


def revoke(
    conn: Connection,
    *,
    address: str | None,
    patient_id: str | None,
    purpose: str,
    revoked_at: float,
    source: str,
    actor: str,
    now: float,
) -> int:
    """Record a revocation; returns the number of records written (one: a revocation by
    patient id is a single record covering every address linked to the patient, now
    and later)."""
    r = checked_revocation(Revocation(address, patient_id, purpose, revoked_at, source))
    record = _insert(conn, consent_records, _revocation_row(r, _actor(actor), now))
    _audit(
        conn,
        "consent_revoked",
        _covered_addresses(conn, r.address, r.patient_id),
        {"purpose": r.purpose, "source": r.source, "actor": actor, "record": record},
        now,
    )
    return 1


def _opt_events(conn: Connection, addresses: Sequence[str]) -> dict[str, list[OptEvent]]:
    o = consent_opt_outs.c
    query = select(o.id, o.kind, o.address, o.purpose).where(o.address.in_(addresses))
    found: dict[str, list[OptEvent]] = {}
    for row in conn.execute(query):
        found.setdefault(row.address, []).append(OptEvent(row.id, row.kind, row.purpose))
    return found


def _record_opt_change(conn: Connection, change: OptChange, actor: str, now: float) -> None:
    record = _insert(conn, consent_opt_outs, _opt_row(change, actor, now))
    _audit(
        conn,
        "consent_opted_out" if change.kind == OPT_OUT else "consent_opted_in",
        (change.address,),
        {
            "purpose": change.purpose,
            "source": change.source,
            "actor": actor,
            "record": record,
        },
        now,
    )


def opt_out(
    conn: Connection,
    *,
    address: str,
    purpose: str,
    source: str,
    actor: str,
    now: float,
    reference: str | None = None,
) -> bool:
    """Record an opt-out; False (nothing written) if one already covers the purpose."""
    change = checked_opt_change(OptChange(OPT_OUT, address, purpose, source, reference))
    actor = _actor(actor)
    if opted_out(_opt_events(conn, [change.address]).get(change.address, []), change.purpose):
        return False
    _record_opt_change(conn, change, actor, now)
    return True


def opt_in(
    conn: Connection, *, address: str, purpose: str, source: str, actor: str, now: float
) -> bool:
    """Cancel the opt-outs for exactly this address and purpose (an admin's decision);
    False (nothing written) if there is none. An opt-out for "marketing" still covers
    "marketing/x" after an opt-in for "marketing/x"."""
    change = checked_opt_change(OptChange(OPT_IN, address, purpose, source))
    actor = _actor(actor)
    events = [
        e
        for e in _opt_events(conn, [change.address]).get(change.address, [])
        if e.purpose == change.purpose
    ]
    if not opted_out(events, change.purpose):
        return False
    _record_opt_change(conn, change, actor, now)
    return True


def import_changes(
    conn: Connection, changes: Iterable[Change], *, actor: str, now: float
) -> dict[str, int]:
    """Record many changes in the caller's transaction, in order; one audit event
    (`consent_imported`, with the counts) for all of them. Returns the counts per kind."""
    actor = _actor(actor)
    counts = dict.fromkeys(KINDS, 0)
    records: list[dict[str, Any]] = []
    opts: list[dict[str, Any]] = []

    def flush() -> None:
        if records:
            conn.execute(insert(consent_records), records)
            records.clear()
        if opts:
            conn.execute(insert(consent_opt_outs), opts)
            opts.clear()

    for change in changes:
        change = checked(change)
        if isinstance(change, Grant):
            records.append(_grant_row(change, actor, now))
            counts[GRANT] += 1
        elif isinstance(change, Revocation):
            records.append(_revocation_row(change, actor, now))
            counts[REVOKE] += 1
        else:
            opts.append(_opt_row(change, actor, now))
            counts[change.kind] += 1
        if len(records) + len(opts) >= _IMPORT_CHUNK:
            flush()
    flush()
    _audit(conn, "consent_imported", (), {**counts, "actor": actor}, now)
    return counts


# --- reading -------------------------------------------------------------------------

_r = consent_records.c
_o = consent_opt_outs.c
_ADDRESSES: BindParameter[Any] = bindparam("addresses", expanding=True)
_RULE_COLUMNS = (
    _r.id,
    _r.kind,
    _r.address,
    _r.patient_id,
    _r.purpose,
    _r.effective_at,
    _r.expires_at,
    _r.remuneration,
    _r.remuneration_disclosed,
)
# One statement for any number of addresses, each part on an index: the
# addresses' own records, their patients' records, their opt-outs.
STATES_QUERY = union_all(
    select(*_RULE_COLUMNS).where(_r.address.in_(_ADDRESSES)),
    select(*_RULE_COLUMNS).where(
        _r.patient_id.in_(
            select(_r.patient_id)
            .where(_r.address.in_(_ADDRESSES), _r.kind == GRANT, _r.patient_id.is_not(None))
            .scalar_subquery()
        )
    ),
    select(
        _o.id,
        _o.kind,
        _o.address,
        cast(null(), String(64)),
        _o.purpose,
        _o.recorded_at,
        cast(null(), Float),
        cast(false(), Boolean),
        cast(false(), Boolean),
    ).where(_o.address.in_(_ADDRESSES)),
)


def _lookup_form(address: str) -> str:
    """The address as stored, for looking it up: the domain lower-cased (IDNs to ASCII).

    Not a validation: an invalid address matches no stored (validated) one.
    """
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return f"{local}@{domain.rstrip('.').lower()}"
    try:
        return normalise(address)
    except AddressError:
        return address


def states(
    conn: Connection,
    addresses: Sequence[str],
    purpose: str,
    now: float,
    config: ConsentConfig,
) -> dict[str, str]:
    """The state of every address for `purpose` (see `consent_state`), in one query.

    Purposes other than marketing have no records: every address is "none"
    and nothing is read.
    """
    result = dict.fromkeys(addresses, "none")
    if not addresses or not is_marketing(purpose):
        return result
    stored = {address: _lookup_form(address) for address in addresses}
    rows = conn.execute(STATES_QUERY, {"addresses": sorted(set(stored.values()))}).all()
    if not rows:
        return result
    own: dict[str, list[Any]] = {}  # an address's records and opt-outs
    reach: dict[str, list[Any]] = {}  # a patient's records that reach its linked addresses
    for row in rows:
        if row.address is not None:
            own.setdefault(row.address, []).append(row)
        if row.patient_id is not None and (row.address is None or row.kind == REVOKE):
            reach.setdefault(row.patient_id, []).append(row)
    remunerated = is_remunerated(config, purpose)
    for address, key in stored.items():
        records = own.get(key)
        if not records:
            continue
        authorizations = [r for r in records if r.kind in (GRANT, REVOKE)]
        opt_events = [r for r in records if r.kind in (OPT_OUT, OPT_IN)]
        for patient_id in {r.patient_id for r in authorizations if r.kind == GRANT}:
            authorizations.extend(reach.get(patient_id, ()))
        result[address] = consent_state(authorizations, opt_events, purpose, now, remunerated)
    return result


# A record as history and export give it (and CSV import reads it back).
RECORD_COLUMNS = (
    "kind",
    "address",
    "patient_id",
    "purpose",
    "effective_at",
    "expires_at",
    "source",
    "document_ref",
    "remuneration",
    "remuneration_disclosed",
    "actor",
    "recorded_at",
)


def _record_dict(row: RowMapping) -> dict[str, Any]:
    return {"id": row["id"], **{name: row[name] for name in RECORD_COLUMNS}}


def _opt_dict(row: RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "address": row["address"],
        "patient_id": None,
        "purpose": row["purpose"],
        "effective_at": row["recorded_at"],  # an opt-out takes effect when recorded
        "expires_at": None,
        "source": row["source"],
        "document_ref": row["reference"],
        "remuneration": False,
        "remuneration_disclosed": False,
        "actor": row["actor"],
        "recorded_at": row["recorded_at"],
    }


def _in_recording_order(record: dict[str, Any]) -> tuple[float, int, int]:
    return (record["recorded_at"], record["kind"] in (OPT_OUT, OPT_IN), record["id"])


def history(
    conn: Connection, *, address: str | None = None, patient_id: str | None = None
) -> list[dict[str, Any]]:
    """Records in recording order, each a dict with `id` (grants and revocations share
    one sequence, opt-outs and opt-ins another) and the columns of `export_records`.

    With an address: every record its state depends on (its own records and
    opt-outs, and its patients' records that reach it). With a patient id:
    every record naming the patient, and the records and opt-outs of each
    address linked to it. With both: all of these.
    """
    address, patient_id = _who(address, patient_id)
    addresses: set[str] = set()
    reaching: set[str] = set()  # patients whose records reach `address`
    if address is not None:
        addresses.add(address)
        reaching.update(linked_patients(conn, address))
    if patient_id is not None:
        addresses.update(linked_addresses(conn, patient_id))
    named = [] if patient_id is None else [patient_id]
    records = conn.execute(
        select(consent_records).where(
            or_(
                _r.address.in_(sorted(addresses)),
                _r.patient_id.in_(named),
                and_(
                    _r.patient_id.in_(sorted(reaching)),
                    or_(_r.address.is_(None), _r.kind == REVOKE),
                ),
            )
        )
    ).mappings()
    opts = conn.execute(
        select(consent_opt_outs).where(_o.address.in_(sorted(addresses)))
    ).mappings()
    found = [_record_dict(row) for row in records] + [_opt_dict(row) for row in opts]
    return sorted(found, key=_in_recording_order)


def export_records(conn: Connection) -> Iterator[dict[str, Any]]:
    """Every record of the registry, in recording order (as `history` shapes them),
    streamed: both tables are read in order and merged."""
    records = conn.execute(select(consent_records).order_by(_r.recorded_at, _r.id)).mappings()
    opts = conn.execute(select(consent_opt_outs).order_by(_o.recorded_at, _o.id)).mappings()
    yield from heapq.merge(
        map(_record_dict, records), map(_opt_dict, opts), key=_in_recording_order
    )
