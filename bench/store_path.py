"""CPU per message on the store's path alone: accept, claim, outcome, shredding.

    .venv/bin/python bench/store_path.py                   # 2000 messages, one at a time
    .venv/bin/python bench/store_path.py --together 10     # ten in flight, as with sessions
    .venv/bin/python bench/store_path.py --rate-limits     # sending limits counted too
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python bench/store_path.py --messages 300 --warm-up 50

Each message goes through the statements the server runs for it, through
the group-committing writer as the server does: the accept (message, job
and audit events, durable; with --rate-limits the sender's sending limits
checked and counted first; the job leased to a free delivery worker, as
intake hands it over), and the outcome (finish the job, audit it, shred the
content). With `--claimed`, the accept leaves the job queued and a claim
(lease and load the message) takes it, as when every worker is busy. No SMTP, sealing or
signing: what is left is the store's Python, SQLAlchemy's and SQLite's. It
prints the process's CPU time (all threads) per message; under callgrind,
compare instruction counts (`callgrind_annotate`), which do not depend on
how busy the machine is. `--warm-up` messages run first and are not counted
(statement caches, the first checkpoint of the audit chain).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Connection, func, select

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.config import RATE_LIMIT_NAMES, LimitsConfig, RateLimitsConfig, RateQuota
from gateway.ratelimit import RateKey, RateLimiter
from gateway.store import queue
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database
from gateway.store.keyring import Sealed
from gateway.store.schema import jobs, messages

OWNER = "bench:1"
SENDER = RateKey("principal", "bench")
INLINE_SIZE = LimitsConfig().large_message_size  # what the server loads with a claim


def accept(
    queue_id: str, now: float, sealed: Sealed
) -> tuple[queue.NewMessage, list[queue.NewJob], list[AuditEvent]]:
    """What intake stores for a message to one recipient: its decision and acceptance."""
    size = len(sealed.ciphertext)
    record = queue.NewMessage(
        queue_id,
        now,
        "submission",
        "bench",
        "127.0.0.1",
        "ehr@bench.example.org",
        size,
        f"<{queue_id}@bench.example.org>",
        sealed,
    )
    job = queue.NewJob("dr@partner.example", ("tls",), rule="tls-default", policy="v1")
    events = [
        AuditEvent(
            "policy",
            "deliver",
            queue_id,
            "bench",
            "127.0.0.1",
            "ehr@bench.example.org",
            ("dr@partner.example",),
            detail="policy=v1 category=clinical rule=tls-default consent=n/a via=tls phi=no",
            ts=now,
        ),
        AuditEvent(
            "accepted",
            "queued",
            queue_id,
            "bench",
            "127.0.0.1",
            "ehr@bench.example.org",
            ("dr@partner.example",),
            size,
            250,
            f"message-id=<{queue_id}@bench>",
            ts=now,
        ),
    ]
    return record, [job], events


async def one_message(
    db: Database, rates: RateLimiter | None, now: float, handed: bool, sealed: Sealed
) -> None:
    queue_id = queue.new_queue_id(now)
    record, jobs, events = accept(queue_id, now, sealed)
    large = record.size > INLINE_SIZE  # claimed at its turn, its content read then
    contents = db.contents if large else None
    if contents is not None:  # in a file of its own, as intake keeps it (store/contents.py)
        await asyncio.to_thread(contents.write, queue_id, (sealed.ciphertext,))
        record = dataclasses.replace(record, content_in_file=True)
    lease = queue.Lease(OWNER, now + 300.0) if handed and not large else None

    def store(conn: Connection) -> queue.Leased | None:
        if rates is not None and rates.charge(conn, SENDER, len(jobs), now).breach is not None:
            raise RuntimeError("a sending limit was reached: raise --rate-limit")
        leased = queue.insert_message(conn, record, jobs, lease)
        trail.append(conn, events)
        return leased

    leased = await db.write(store)

    def claim(conn: Connection) -> list[queue.ClaimedJob]:
        claimed = queue.claim(conn, OWNER, now, 300.0, 4)
        queue.load_messages(conn, [job.queue_id for job in claimed], INLINE_SIZE)
        return claimed

    claimed = leased.jobs if leased is not None else await db.write(claim, durable=False)
    for job in claimed:
        if large:
            found = await db.read(lambda conn: queue.load_sealed(conn, queue_id, contents))
            if found is None:
                raise RuntimeError("a large message's content was not found")

        def outcome(conn: Connection, job: queue.ClaimedJob = job) -> None:
            if queue.finish_job(
                conn,
                job.id,
                OWNER,
                state=queue.DELIVERED,
                now=now,
                attempts_done=1,
                code=250,
                status="2.0.0",
                reply="250 2.0.0 Ok: queued",
                remote_host="sink",
            ):
                trail.append(
                    conn,
                    [
                        AuditEvent(
                            "delivered",
                            "250",
                            job.queue_id,
                            recipients=(job.recipient,),
                            code=250,
                            detail="mode=tls host=sink",
                            ts=now,
                        )
                    ],
                )
            queue.drop_finished_content(conn, job.queue_id)

        await db.write(outcome, durable=False)


async def run(
    db: Database,
    rates: RateLimiter | None,
    messages: int,
    together: int,
    handed: bool,
    sealed: Sealed,
) -> None:
    for start in range(0, messages, together):
        now = time.time()
        batch = min(together, messages - start)
        await asyncio.gather(*(one_message(db, rates, now, handed, sealed) for _ in range(batch)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--together", type=int, default=1, help="messages in flight at once")
    parser.add_argument("--warm-up", type=int, default=200)
    parser.add_argument(
        "--claimed",
        action="store_true",
        help="every message claimed by the dispatcher, as when no delivery worker is free "
        "(default: stored leased to a free worker, as the server hands it over)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=5 * 1024,
        help="Octets of each message's sealed content (default 5120). Past "
        "limits.large_message_size a message is claimed and its content read at its turn, "
        "as the server does.",
    )
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument(
        "--rate-limits",
        action="store_true",
        help="Check and count each message against sending limits it never reaches.",
    )
    args = parser.parse_args()
    if not 1 <= args.size <= 100 * 1024 * 1024:
        parser.error("--size must be 1..104857600 octets")
    sealed = Sealed("k1", os.urandom(60), os.urandom(args.size))  # as intake seals it
    quota = RateQuota(**dict.fromkeys(RATE_LIMIT_NAMES, 1_000_000_000))
    rates = RateLimiter(RateLimitsConfig(defaults=quota)) if args.rate_limits else None
    workdir = Path(tempfile.mkdtemp(prefix="phigate-store-path-"))
    db = Database(
        args.database_url or f"sqlite:///{workdir / 'phigate.db'}",
        audit_key=AuditKey(os.urandom(32)),
    )
    try:
        db.migrate()
        db.start()
        asyncio.run(run(db, rates, args.warm_up, args.together, not args.claimed, sealed))
        commits, cpu, wall = db.batches, time.process_time(), time.perf_counter()
        asyncio.run(run(db, rates, args.messages, args.together, not args.claimed, sealed))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        commits = db.batches - commits
        with db.reading() as conn:
            done = conn.execute(
                select(func.count()).where(jobs.c.state == queue.DELIVERED)
            ).scalar_one()
            kept = conn.execute(
                select(func.count()).where(messages.c.wrapped_key.is_not(None))
            ).scalar_one()
        if done != args.warm_up + args.messages or kept:
            print(f"bench: {done} jobs delivered, {kept} messages not shredded", file=sys.stderr)
            return 1
    finally:
        db.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"{args.messages} messages, {args.together} at a time"
        f"{', sending limits counted' if rates else ''}: "
        f"{1000 * cpu / args.messages:.3f} ms CPU per message "
        f"({1000 * wall / args.messages:.2f} ms wall; {commits} commits)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
