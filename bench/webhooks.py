"""Webhook delivery rate: audit events -> outbox -> signed POSTs to a loopback
HTTPS receiver, in one phigate process (the server's code path, without mail).

    PYTHONPATH=$PWD .venv/bin/python bench/webhooks.py [--events 3000] [--concurrency 8]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/DB]

It fills a fresh store with `--events` delivered events of one principal that
has one subscription, then times the two stages separately: feeding (reading
the trail behind the cursor and writing outbox rows) and sending (claiming,
signing, POSTing over verified TLS with kept-alive connections, settling).
The receiver is a small asyncio HTTPS server in its own process answering 204.
Figures are events per second; on a shared machine compare runs of one sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from audit_fill import fill_delivered  # bench/ is on sys.path
from certs import make_certs, server_context
from sqlalchemy import func, select

from gateway.config import WebhooksConfig
from gateway.store import principals
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.store.schema import webhook_deliveries
from gateway.webhooks import subscriptions
from gateway.webhooks.sender import Sender, client_context
from gateway.webhooks.service import Webhooks

_ANSWER = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            writer.write(_ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def _serve(cert: str, key: str) -> None:
    server = await asyncio.start_server(
        _answer, "127.0.0.1", 0, ssl=server_context(Path(cert), Path(key))
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def _sent(db: Database) -> int:
    with db.reading() as conn:
        query = select(func.count()).where(webhook_deliveries.c.state == "sent")
        return int(conn.execute(query).scalar_one())


async def _run(args: argparse.Namespace, work: Path) -> None:
    certs = make_certs(work)
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(certs["good"]), str(certs["good_key"])],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path[:2])},
    )
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        url = args.database_url or f"sqlite:///{work / 'bench.db'}"
        db = Database(url, audit_key=AuditKey(os.urandom(32)))
        db.migrate()
        keyring = Keyring.create(work / "keys")
        config = WebhooksConfig(
            allowed_networks=["127.0.0.0/8"], concurrency=args.concurrency, batch=args.batch
        )
        with db.transaction() as conn:
            principals.add(conn, "bench", ["bench.example.org"])
            subscriptions.add(
                conn, keyring, name="bench", principal="bench",
                url=f"https://127.0.0.1:{port}/hooks", kinds=("delivered",), actor="bench",
                now=time.time() - 1, cursor=config.cursor,
            )  # fmt: skip
        hooks = Webhooks(db, keyring, config, Sender(config, client_context(config, certs["ca"])))
        fill_delivered(db, args.events)

        started = time.perf_counter()
        while await asyncio.to_thread(hooks.feed, time.time()):
            pass
        fed = time.perf_counter() - started

        started = time.perf_counter()
        while await hooks.send_due():
            pass
        sent_in = time.perf_counter() - started
        sent = _sent(db)
        await hooks.sender.close()
        db.close()
    finally:
        receiver.terminate()
        receiver.wait(10)
    print(f"events: {args.events}, database: {db.dialect}, concurrency: {args.concurrency}")
    print(f"feed (trail -> outbox): {args.events / fed:8.0f} events/s ({fed:.2f} s)")
    print(f"send (outbox -> HTTPS): {sent / sent_in:8.0f} events/s ({sent_in:.2f} s, {sent} sent)")
    if sent != args.events:
        raise SystemExit(f"only {sent} of {args.events} were sent")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--serve", nargs=2, metavar=("CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(*args.serve))
        return 0
    if not 100 <= args.events <= 1_000_000:
        parser.error("--events must be 100..1000000")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
