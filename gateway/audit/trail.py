"""The audit trail: metadata-only events, each chained to the one before.

An event holds identifiers, addresses, sizes, codes and short fixed reasons —
never subject, body, attachment names or header values other than Message-ID
(itself a keyed hash when it names a patient: gateway.inspect.header_values).
The chain is extended inside the caller's write transaction, so an event is
durable exactly when the state change it describes is.

Each event's hash is HMAC-SHA256, under the audit key kept outside the
database, of the previous hash and the event (chain version 2). Events
written before the key existed keep their plain SHA-256 hashes (version 1);
they may only precede keyed events. When the first keyed event is appended, a
signed checkpoint records the chain as it stood, and the running server adds
checkpoints periodically (see `checkpoint`), so a trail cut short or
re-chained no longer matches them (gateway.audit.verify).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import Connection, func, insert, select

from gateway.audit import checkpoints, indexer
from gateway.audit.checkpoints import Checkpoint
from gateway.config import AuditConfig
from gateway.logs import event as log_event
from gateway.store import audit_facets as facets
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database, audit_key_of, transaction_cache
from gateway.store.keyring import KeyringError
from gateway.store.prepared import Prepared
from gateway.store.schema import audit_events

log = logging.getLogger("gateway.audit")

GENESIS = "0" * 64
SHA256_CHAIN = 1  # events from before the audit key
KEYED_CHAIN = 2  # HMAC-SHA256 under the audit key
# What a version 1 event's hash covers, as it was then: NULLs included.
_SHA256_FIELDS = (
    "ts", "event", "queue_id", "principal", "client_ip", "sender", "recipients", "size",
    "result", "code", "detail",
)  # fmt: skip
_BOOKKEEPING = frozenset(("id", "prev_hash", "hash", "chain_version"))
# Search keys derived from the hashed fields (gateway.store.audit_facets): left out
# of the hash so they are filled in after the event, off the relay's path
# (gateway.audit.indexer); `audit verify` recomputes them instead.
DERIVED = frozenset(facets.COLUMNS)
_UNHASHED = _BOOKKEEPING | DERIVED
# PostgreSQL: one lock id for "extending the audit chain" (held until COMMIT).
_CHAIN_LOCK_ID = 0x706869676174_01  # "phigat" + 1
# Built once: appending happens for every message (see gateway.store.queue).
_CHAIN_HEAD = (
    select(audit_events.c.id, audit_events.c.hash, audit_events.c.chain_version)
    .order_by(audit_events.c.id.desc())
    .limit(1)
)
# Appending is on the path of every message: its statements go to the driver.
_HEAD_TO_EXTEND = Prepared(_CHAIN_HEAD)
_LOCK_CHAIN = select(func.pg_advisory_xact_lock(_CHAIN_LOCK_ID))


@dataclass(frozen=True)
class AuditEvent:
    event: str  # e.g. auth, accepted, refused, delivered, deferred, bounced
    result: str  # e.g. ok, failed, refused, 250
    queue_id: str | None = None
    principal: str | None = None
    client_ip: str | None = None
    sender: str | None = None
    recipients: Sequence[str] = field(default_factory=tuple)
    size: int | None = None
    code: int | None = None
    detail: str | None = None
    ts: float = field(default_factory=time.time)
    # Who made an admin change: "cli:<OS user>" (gateway.cli.common.cli_actor)
    # or "api:<token name>"; None for what mail and the server do by themselves.
    actor: str | None = None


def _payload(prev_hash: str, row: dict[str, Any]) -> bytes:
    return (prev_hash + json.dumps(row, sort_keys=True, separators=(",", ":"))).encode()


def hashed_fields(version: int, row: Mapping[Any, Any]) -> dict[str, Any]:
    """The fields of an event (a stored row, or one about to be) that its hash covers."""
    if version == SHA256_CHAIN:
        return {name: row[name] for name in _SHA256_FIELDS}
    # Keyed events cover every field they hold: a column added later (NULL in
    # older events) leaves their hashes as they were.
    return {k: v for k, v in row.items() if k not in _UNHASHED and v is not None}


def chain_hash(version: int, key: AuditKey, prev_hash: str, row: Mapping[Any, Any]) -> str:
    """The hash an event of chain `version` with these fields must carry."""
    payload = _payload(prev_hash, hashed_fields(version, row))
    if version == SHA256_CHAIN:
        return hashlib.sha256(payload).hexdigest()
    return key.chain_hash(payload)


# Every field holds a plain value: copied by name, not through dataclasses.asdict,
# which deep-copies each value (about a quarter of the cost of appending an event).
_EVENT_FIELDS = tuple(f.name for f in fields(AuditEvent))
# Only the hashed fields: the search keys are derived later (gateway.audit.indexer).
_INSERT_EVENT = Prepared(
    insert(audit_events), (*_EVENT_FIELDS, "prev_hash", "hash", "chain_version")
)


def _row(event: AuditEvent) -> dict[str, Any]:
    row = {name: getattr(event, name) for name in _EVENT_FIELDS}
    row["recipients"] = json.dumps(list(event.recipients))
    return row


def _key(conn: Connection) -> AuditKey:
    key = audit_key_of(conn)
    if key is None:
        raise KeyringError(
            "no audit key is loaded, so audit events cannot be written: `phigate init` or "
            "`phigate serve` creates keys/audit.key in the data dir, or restore it from a backup"
        )
    return key


def lock_chain(conn: Connection) -> None:
    """Keep other writers from reading the head until this transaction ends.

    SQLite needs nothing here: BEGIN IMMEDIATE already holds the database's
    write lock. On PostgreSQL two transactions would otherwise both extend
    the same head and fork the chain.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_CHAIN)


def append(conn: Connection, events: Iterable[AuditEvent]) -> None:
    """Append events to the chain within the current transaction."""
    rows = [_row(e) for e in events]
    if not rows:
        return
    key = _key(conn)
    # The chain head is read once per transaction, under the lock.
    cache = transaction_cache(conn)
    prev = cache.get("audit_head")
    if prev is None:
        lock_chain(conn)
        head = _HEAD_TO_EXTEND.run(conn, {}).fetchone()  # (id, hash, chain_version)
        if head is None or head[2] != KEYED_CHAIN:
            # The keyed chain starts here: sign what came before it.
            checkpoints.store(conn, _checkpoint_of_head(conn, key, None, time.time()))
        prev = head[1] if head is not None else GENESIS
    for row in rows:
        digest = chain_hash(KEYED_CHAIN, key, prev, row)
        row.update(prev_hash=prev, hash=digest, chain_version=KEYED_CHAIN)
        prev = digest
    _INSERT_EVENT.run_many(conn, rows)
    cache["audit_head"] = prev


def _count(conn: Connection, after_id: int = 0) -> int:
    query = select(func.count()).select_from(audit_events).where(audit_events.c.id > after_id)
    return int(conn.execute(query).scalar_one())


def _checkpoint_of_head(
    conn: Connection, key: AuditKey, last: Checkpoint | None, now: float
) -> Checkpoint:
    """A signed checkpoint of the current head (call with the chain locked).

    Counting starts from the last authentic checkpoint, so the count stays
    cheap on a long trail and keeps counting events that were removed since.
    """
    head = conn.execute(_CHAIN_HEAD).first()
    head_id, head_hash = (int(head.id), str(head.hash)) if head is not None else (0, GENESIS)
    if last is not None and last.authentic(key) and last.event_id <= head_id:
        count = last.count + _count(conn, last.event_id)
    else:
        count = _count(conn)
    return checkpoints.sign(key, head_id, head_hash, count, now)


def checkpoint(
    conn: Connection, now: float, config: AuditConfig | None = None
) -> Checkpoint | None:
    """Record a signed checkpoint of the chain's head and return it.

    With `config` (the server's periodic call), only when one is due: after
    `checkpoint_every_events` new events, or `checkpoint_every_seconds` after
    the last checkpoint if any event came since. Returns None when not due.
    """
    key = _key(conn)
    lock_chain(conn)
    last = checkpoints.newest(conn)
    candidate = _checkpoint_of_head(conn, key, last, now)
    if config is not None and last is not None:
        moved = candidate.event_id != last.event_id
        due = moved and (
            candidate.count - last.count >= config.checkpoint_every_events
            or now - last.created_at >= config.checkpoint_every_seconds
        )
        if not due:
            return None
    return checkpoints.store(conn, candidate)


async def checkpoint_periodically(db: Database, config: AuditConfig, stop: asyncio.Event) -> None:
    """The server's checkpoints while it runs, when due (see `checkpoint`)."""
    tick = min(config.checkpoint_every_seconds, 5.0)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)
        await _checkpoint_quietly(db, config)


async def final_checkpoint(db: Database) -> None:
    """Anchor the head at shutdown, after the last events were written (if any came)."""
    await _checkpoint_quietly(db, AuditConfig(checkpoint_every_events=1))


async def _checkpoint_quietly(db: Database, config: AuditConfig) -> None:
    # A checkpoint is worth retrying at the next tick, not worth stopping mail for.
    try:
        made = await db.write(lambda conn: checkpoint(conn, time.time(), config))
    except Exception as exc:
        log_event(log, "audit_checkpoint_failed", logging.ERROR, error=type(exc).__name__)
        return
    if made is not None:
        log_event(log, "audit_checkpoint", event_id=made.event_id, count=made.count)


@dataclass(frozen=True)
class ChainedEvent:
    """One stored event and whether its hash and link hold."""

    id: int
    hash: str
    chain_version: int
    link_ok: bool
    hash_ok: bool
    # Its search keys and recipient rows are the ones its fields give; None: not
    # indexed yet (past the indexer's mark), nothing to hold against.
    facets_ok: bool | None


def walk(
    conn: Connection, key: AuditKey, prev: str = GENESIS, until: int | None = None
) -> Iterator[ChainedEvent]:
    """Recompute the chain in id order, event by event, and each indexed event's search keys.

    `prev`: the hash the first stored event must link to (a pruned trail's anchor,
    gateway.audit.pruning); `until`: the last event id to walk.
    """
    through = indexer.indexed_through(conn)
    query = select(audit_events).order_by(audit_events.c.id).execution_options(yield_per=1000)
    if until is not None:
        query = query.where(audit_events.c.id <= until)
    # Index rows of ids no event has are never found by a search: only each
    # event's own rows are compared.
    indexed = indexer.recipient_index(conn, through)
    ahead = next(indexed, None)
    for row in conn.execute(query).mappings():
        event_id = int(row["id"])
        facets_ok: bool | None = None
        if event_id <= through:
            while ahead is not None and ahead[0] < event_id:
                ahead = next(indexed, None)
            listed = ahead[1] if ahead is not None and ahead[0] == event_id else set()
            facets_ok = indexer.holds(row, listed)
        version = int(row["chain_version"])
        expected = chain_hash(version, key, row["prev_hash"], row)
        yield ChainedEvent(
            event_id,
            str(row["hash"]),
            version,
            link_ok=row["prev_hash"] == prev,
            hash_ok=version in (SHA256_CHAIN, KEYED_CHAIN) and expected == row["hash"],
            facets_ok=facets_ok,
        )
        prev = row["hash"]
