"""Send API rate beside SMTP's, on one phigate server (sandbox delivery, one process).

    PYTHONPATH=$PWD .venv/bin/python bench/send_api.py [--messages 300] [--concurrency 10,50]

For each concurrency it sends `--messages` small messages through
`POST /api/v1/messages` from that many httpx clients (one kept-alive
connection each), then as many over SMTP (STARTTLS, AUTH once per session)
from that many sessions, and prints messages per second for both. Each
answer is the stored message's (201, or 250): the figures include intake's
inspection, policy and durable commit. A quick run; on a shared machine
compare runs of one sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx
from harness import Phigate, message
from webgate import base_url, store, web_gate

from gateway.web import tokens

DOMAIN = "bench.example.org"
SENDER = f"ehr@{DOMAIN}"
TEXT = "Your appointment is confirmed. Please arrive ten minutes early.\n" * 12


async def api_rate(gw: Phigate, secret: str, messages: int, clients: int) -> float:
    body = {"from": SENDER, "subject": "Appointment", "text": TEXT}
    headers = {"Authorization": f"Bearer {secret}"}
    counter = iter(range(messages))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url(gw), headers=headers, timeout=60) as http:
            for n in counter:
                sent = {**body, "to": [f"p{n}@x.test"]}
                response = await http.post("/api/v1/messages", json=sent)
                if response.status_code != 201:
                    raise RuntimeError(f"send API answered {response.status_code}: {response.text}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return messages / (time.perf_counter() - started)


def smtp_rate(gw: Phigate, secret: str, messages: int, sessions: int) -> float:
    counter = iter(range(messages))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def session() -> None:
        try:
            client = gw.client("bench", secret)
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    break
                to = f"p{n}@x.test"
                client.sendmail(SENDER, [to], message(SENDER, to, "Appointment", TEXT))
            client.quit()
        except (smtplib.SMTPException, OSError) as exc:
            failures.append(exc)

    threads = [threading.Thread(target=session) for _ in range(sessions)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"SMTP failed: {failures[0]!r}")
    return messages / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300, help="per run (default 300)")
    parser.add_argument(
        "--concurrency", default="10,50", help="clients, comma separated (default 10,50)"
    )
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="phigate-send-bench-") as tmp:
        gw = web_gate(
            Path(tmp),
            limits={"max_connections_per_ip": 500},
            web={"max_connections_per_ip": 500},
        )
        smtp_secret = gw.add_principal("bench", DOMAIN)
        with store(gw) as db, db.transaction() as conn:
            api_secret = tokens.add(conn, "bench", ["send"], time.time(), "cli:bench", "bench")
        with gw:
            asyncio.run(api_rate(gw, api_secret, 20, 2))  # warm up: connections, caches
            print(f"{'clients':>8} {'API msgs/s':>11} {'SMTP msgs/s':>12}")
            for level in levels:
                api = asyncio.run(api_rate(gw, api_secret, args.messages, level))
                smtp = smtp_rate(gw, smtp_secret, args.messages, level)
                print(f"{level:>8} {api:>11.1f} {smtp:>12.1f}", flush=True)
            gw.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
