"""The search index of the audit trail, kept up behind the chain.

Appending an event (gateway.audit.trail) writes its hashed fields and nothing
else, so the relay's path to 250 does not derive search keys. The search keys and
recipient rows that searches read (gateway.store.audit_facets) are derived
here afterwards, for the events past a durable high-water mark
(`audit_index_mark`), a batch at a time:

- by the server, every `audit.index_every_seconds` (`Indexer.run_forever`),
  put off while mail is being written (up to `audit.index_max_delay_seconds`)
  so that a burst of mail keeps the CPU for itself;
- by every search first (`catch_up`, `Indexer.run_once`), so a search finds
  an event the moment the 250 for it was sent.

The mark moves in the same transaction as the rows of its batch: a crash
between appending and indexing loses nothing, the next pass starts after the
last batch that committed. Two indexers (the server and a CLI search) take
turns on the mark's row, so each event is indexed once.

`audit verify` recomputes the index of every event up to the mark (`holds`);
the events past it are pending, not damaged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from gateway.logs import event as log_event
from gateway.store import audit_facets as facets
from gateway.store.database import Database
from gateway.store.schema import audit_events, audit_index_mark, audit_recipients

log = logging.getLogger("gateway.audit")

# Events indexed per transaction: it shares the writer with intake, so a batch
# is kept to a few milliseconds of the writer's time.
BATCH = 250
# Mail is flowing if the trail grew within this many seconds (every message,
# decision and delivery appends an event; an idle worker's polls do not).
QUIET = 0.5

_e = audit_events.c
_r = audit_recipients.c
_MARK = select(audit_index_mark.c.event_id).where(audit_index_mark.c.id == 1)
_MOVE_MARK = update(audit_index_mark).where(audit_index_mark.c.id == 1)
_SET_KEYS = (
    update(audit_events)
    .where(_e.id == bindparam("event_id"))
    .values({name: bindparam(f"new_{name}") for name in facets.COLUMNS})
)
_INSERT_RECIPIENTS = insert(audit_recipients)


def indexed_through(conn: Connection) -> int:
    """The mark: every event with an id up to it is indexed."""
    return int(conn.execute(_MARK).scalar_one())


def newest_event(conn: Connection) -> int:
    """The id of the newest event (0 with none)."""
    return int(conn.execute(select(func.coalesce(func.max(_e.id), 0))).scalar_one())


def index_batch(conn: Connection, limit: int = BATCH) -> int:
    """Index up to `limit` events past the mark, in this write transaction; how many."""
    # FOR UPDATE (PostgreSQL): a second indexer waits here, then starts after this batch.
    # Appends hold the chain lock until COMMIT and take ids under it, so no event
    # with an id below one already visible can still appear behind the mark.
    mark = int(conn.execute(_MARK.with_for_update()).scalar_one())
    rows = conn.execute(
        select(_e.id, _e.event, _e.detail, _e.recipients)
        .where(_e.id > mark)
        .order_by(_e.id)
        .limit(limit)
    ).all()
    if not rows:
        return 0
    last = int(rows[-1].id)
    keys: list[dict[str, Any]] = []
    listed: list[dict[str, object]] = []
    for row in rows:
        columns = facets.facets(row.event, row.detail).columns()
        # Events without search keys keep their NULLs: fewer updates, and a key
        # written into one ahead of the indexer is what `audit verify` reports.
        if any(value is not None for value in columns.values()):
            keys.append({"event_id": row.id, **{f"new_{k}": v for k, v in columns.items()}})
        listed.extend(facets.recipient_rows(row.id, facets.listed_recipients(row.recipients)))
    if keys:
        conn.execute(_SET_KEYS, keys)
    # Rows put in ahead of the indexer would make the insert fail and stop
    # indexing for good: what the events say replaces them.
    conn.execute(delete(audit_recipients).where(_r.event_id > mark, _r.event_id <= last))
    if listed:
        conn.execute(_INSERT_RECIPIENTS, listed)
    conn.execute(_MOVE_MARK.values(event_id=last))
    return len(rows)


def catch_up(db: Database, batch: int = BATCH) -> int:
    """Index every pending event now, a batch per transaction (the CLI, before a search)."""
    total = 0
    while True:
        with db.transaction(behind_writers=True) as conn:
            done = index_batch(conn, batch)
        total += done
        if done < batch:
            return total


class Indexer:
    """The server's indexer: a pass every `interval` seconds when mail is not being
    written, at the latest every `max_delay` seconds; and on demand (`run_once`)."""

    def __init__(self, db: Database, interval: float, max_delay: float, batch: int = BATCH) -> None:
        self.db = db
        self.interval = interval
        self.max_delay = max_delay
        self.batch = batch

    async def run_forever(self, stop: asyncio.Event) -> None:
        waited = 0.0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if stop.is_set():
                return  # what is left waits for the next start, or a search: shutdown stays quick
            waited += self.interval
            if waited < self.max_delay and await self._mail_flowing():
                continue  # the work only waits: a search indexes what is left first
            waited = 0.0
            try:
                await self.run_once()
            except Exception as exc:  # the next pass (or a search) indexes what is left
                log_event(log, "audit_index_failed", logging.ERROR, error=type(exc).__name__)

    async def _mail_flowing(self) -> bool:
        before = await self.db.read(newest_event)
        await asyncio.sleep(QUIET)
        return await self.db.read(newest_event) != before

    async def run_once(self) -> int:
        """Index every pending event now; how many."""
        return await index_pending(self.db, self.batch)


async def index_pending(db: Database, batch: int = BATCH) -> int:
    """Index every pending event, a batch per write; how many (the server's passes, and
    the reviewer's pages before they search or report)."""
    total = 0
    while True:
        done = await db.write(partial(index_batch, limit=batch))
        total += done
        if done < batch:
            return total


# --- checking the index (`audit verify`) ------------------------------------------------


def recipient_index(conn: Connection, through: int) -> Iterator[tuple[int, set[tuple[str, str]]]]:
    """The recipient rows of the indexed events (up to `through`), grouped by event id in
    id order."""
    query = (
        select(_r.event_id, _r.recipient, _r.domain)
        .where(_r.event_id <= through)
        .order_by(_r.event_id, _r.recipient)
        .execution_options(yield_per=1000)
    )
    current: int | None = None
    group: set[tuple[str, str]] = set()
    for row in conn.execute(query):
        if row.event_id != current:
            if current is not None:
                yield current, group
            current, group = int(row.event_id), set()
        group.add((row.recipient, row.domain))
    if current is not None:
        yield current, group


def holds(row: Mapping[Any, Any], indexed: set[tuple[str, str]]) -> bool:
    """Whether a stored event's search keys and recipient rows (`indexed`) are the ones
    its fields give."""
    derived = {
        (str(entry["recipient"]), str(entry["domain"]))
        for entry in facets.recipient_rows(0, facets.listed_recipients(row["recipients"]))
    }
    return indexed == derived and all(
        row[name] == value
        for name, value in facets.facets(row["event"], row["detail"]).columns().items()
    )
