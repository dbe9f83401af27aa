"""What counting sending limits costs: `bench/relay.py` with rate limits off and on, interleaved.

    .venv/bin/python bench/rate_limit_overhead.py              # 3 rounds, about 5 minutes
    .venv/bin/python bench/rate_limit_overhead.py --rounds 5 --concurrent
    .venv/bin/python bench/rate_limit_overhead.py --rounds 0 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/DB   # the check alone

Each round runs `bench/relay.py --sessions 10 --listeners plain --json` once
without and once with `--rate-limits` (every message checked and counted
against limits it never reaches; see bench/overhead.py for how the rounds go),
then prints the medians of accepted/s, delivered/s and phigate's CPU per message
and the overhead on each. It also times, without any mail, the check and count
alone as the accept's transaction runs them (the sum of the sender's windows and
the upsert of this process's rows), ten messages per transaction as the
group-committing writer batches them (rolled back: the accept commits anyway),
on SQLite or on `--database-url`.
See bench/README.md.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from overhead import compare, parser

from gateway.config import RATE_LIMIT_NAMES, RateLimitsConfig, RateQuota
from gateway.ratelimit import RateKey, RateLimiter
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database, run_before_commit

MICRO_MESSAGES = 5_000
PER_TRANSACTION = 10
SENDERS = (1, 10)  # principals whose messages a transaction mixes: one EHR; the worst case


def charge_us(url: str, senders: int) -> tuple[float, float]:
    """Microseconds per message to check and count it, PER_TRANSACTION messages of
    `senders` principals per transaction, as before its COMMIT; the transactions are
    then rolled back, so that their commits (which the accept pays anyway) do not count.
    Wall time (what the writer waits, the database server's work included) and this
    process's CPU time."""
    db = Database(url, audit_key=AuditKey(os.urandom(32)))
    quota = RateQuota(**dict.fromkeys(RATE_LIMIT_NAMES, 1_000_000_000))
    limiter = RateLimiter(RateLimitsConfig(defaults=quota))
    keys = [RateKey("principal", f"bench{n}") for n in range(senders)]
    try:
        db.migrate()
        with db.write_engine.connect() as conn:
            timings = []
            for counted in (False, True, False, True):
                started, cpu = time.perf_counter(), time.process_time()
                for batch in range(MICRO_MESSAGES // PER_TRANSACTION):
                    transaction = conn.begin()
                    for n in range(PER_TRANSACTION if counted else 0):
                        limiter.charge(conn, keys[(batch + n) % senders], 1, time.time())
                    run_before_commit(conn)
                    transaction.rollback()
                spent = (time.perf_counter() - started, time.process_time() - cpu)
                timings.append([value / MICRO_MESSAGES * 1e6 for value in spent])
    finally:
        db.close()
    wall, cpu = (
        (on1 + on2 - off1 - off2) / 2 for off1, on1, off2, on2 in zip(*timings, strict=True)
    )
    return wall, cpu


def main(argv: Sequence[str] | None = None) -> int:
    options = parser(__doc__.split("\n")[0])
    options.add_argument("--database-url", help="for the check alone; default: SQLite")
    args = options.parse_args(argv)
    if args.rounds:
        compare("--rate-limits", args.rounds, args.concurrent, args.out)
    with tempfile.TemporaryDirectory() as directory:
        url = args.database_url or f"sqlite:///{Path(directory) / 'phigate.db'}"
        print(f"\nThe check and count alone ({url.split(':')[0]}, no mail):")
        for senders in SENDERS:
            wall, cpu = charge_us(url, senders)
            print(
                f"  {PER_TRANSACTION} messages of {senders} sender(s) per transaction: "
                f"{wall:.1f} µs per message, {cpu:.1f} µs of CPU"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
