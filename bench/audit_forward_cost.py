"""What the audit forwarder spends per event, without mail: read a page of
events from the store, make each an RFC 5424 message, frame it (RFC 5425).

    PYTHONPATH=$PWD .venv/bin/python bench/audit_forward_cost.py [--events 30000]

A relayed message writes three events (policy, accepted, delivered), so
three times this is what forwarding adds to a message's CPU in phigate's
process, TLS encryption aside (AES-GCM, a fraction of a microsecond per
event). See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from audit_fill import fill_delivered  # bench/ is on sys.path

from gateway.audit import search
from gateway.audit.formats import SyslogFormat, octet_counted
from gateway.config import SyslogConfig
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database

BATCH = 500  # audit.forward.batch's default


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=30_000)
    args = parser.parse_args()
    if not 1000 <= args.events <= 1_000_000:
        parser.error("--events must be 1000..1000000")
    syslog = SyslogFormat(SyslogConfig(), "phigate.bench.example.org")
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.db'}"
        db = Database(url, audit_key=AuditKey(os.urandom(32)))
        db.migrate()
        fill_delivered(db, args.events)
        started_cpu, sent, after = time.process_time(), 0, 0
        while True:
            with db.reading() as conn:
                page = search.search(conn, search.Filters(), BATCH, after)
            frames = b"".join(octet_counted(syslog.line(e)) for e in page.events)
            sent += len(page.events)
            if page.next_after is None:
                break
            after = page.next_after
        cpu = time.process_time() - started_cpu
        db.close()
    assert sent == args.events and frames
    per_event = cpu / sent * 1e6
    print(
        f"{sent} events read, formatted and framed in {cpu:.2f} s of CPU: "
        f"{per_event:.1f} µs per event, {3 * per_event:.0f} µs per relayed message (3 events)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
