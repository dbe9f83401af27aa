"""Portal benchmark: notices per second through delivery, and page latency.

    .venv/bin/python bench/portal.py            # 1,000 notices, 20 readers of 1 MB
    .venv/bin/python bench/portal.py --quick    # 200 notices, 5 readers

Everything runs on 127.0.0.1: `phigate serve` with a policy that sends every
message to the portal, delivering to an SMTP sink in this process, and its
web app. Two measurements:

1. Notices: N messages (about 5 KB, one recipient each) are submitted over
   SMTP by several sessions; the figure is notices/s from the first
   submission until the sink holds all N notices (intake, portal copy,
   notice queued, notice delivered).
2. Pages: messages with a 1 MB PDF attachment go to the portal; for each, a
   reader opens the notice's link (the landing page), asks for a code,
   reads it from the code mail at the sink, signs in, then reads the message
   page and downloads the attachment (bytes compared). It prints p50/p99 of
   opening, reading and downloading, over every reader and repetition.

Exit status 1 if a notice or an attachment was lost or wrong, 2 if the
benchmark could not be set up. See bench/README.md.
"""

from __future__ import annotations

import argparse
import email
import html
import os
import re
import secrets
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from relay import free_port, percentile, phigate_command, stop_process, wait_for_port

SENDER = "ehr@bench.example.org"
DOMAIN = "bench.example.org"
LINK = re.compile(rb"(http://127\.0\.0\.1:\d+/portal/m/[A-Za-z0-9_-]{43})")
CODE = re.compile(rb"^\s+(\d{6,10})\s*$", re.MULTILINE)
POLICY = """\
version: 1
description: Benchmark - every message waits in the portal.
defaults:
  action: deliver
  via: [portal]
"""


class BenchError(Exception):
    """The benchmark could not be set up or driven (not a result about phigate)."""


class Capture:
    """aiosmtpd handler keeping every delivered message in memory."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), bytes(envelope.original_content or b"")))
            self.arrived.notify_all()
        return "250 2.0.0 stored"

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def wait_count(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.arrived.wait(left)
        return True

    def find(self, rcpt: str, pattern: re.Pattern[bytes], after: int, timeout: float) -> bytes:
        """The first match of `pattern` in a message to `rcpt` arriving after index `after`."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for rcpts, content in self.messages[after:]:
                    if rcpt in rcpts:
                        decoded = _text(content)
                        found = pattern.search(decoded)
                        if found:
                            return found.group(1)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"no matching mail for {rcpt}")
                self.arrived.wait(left)


def _text(content: bytes) -> bytes:
    parsed = email.message_from_bytes(content)
    parts = [p for p in parsed.walk() if p.get_content_type() == "text/plain"]
    payload = parts[0].get_payload(decode=True) if parts else b""
    return payload if isinstance(payload, bytes) else b""


def message(index: int, recipient: str, attachment: bytes | None) -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = recipient
    msg["Subject"] = f"Portal benchmark #{index}"
    msg["Message-ID"] = f"<portal-bench.{index}.{secrets.token_hex(4)}@{DOMAIN}>"
    msg.set_content("The quick brown fox jumps over the lazy dog.\n" * 110)
    if attachment is not None:
        msg.add_attachment(
            attachment, maintype="application", subtype="pdf", filename="results.pdf"
        )
    return msg.as_bytes(policy=SMTP_POLICY)  # CRLF: what an SMTP client sends


class Server:
    """`phigate serve` in a temporary directory, delivering to `sink_port`."""

    def __init__(self, workdir: Path, sink_port: int) -> None:
        self.workdir = workdir
        self.smtp_port = free_port()
        self.web_port = free_port()
        policy_dir = workdir / "policy"
        policy_dir.mkdir()
        (policy_dir / "policy.yaml").write_text(POLICY)
        settings: dict[str, Any] = {
            "data_dir": str(workdir / "data"),
            "hostname": "phigate.bench.example.org",
            "policy_dir": str(policy_dir),
            "listeners": [
                {
                    "name": "plain",
                    "address": f"127.0.0.1:{self.smtp_port}",
                    "tls": "none",
                    "allow_networks_without_auth": True,
                }
            ],
            "relay_networks": [{"name": "bench", "networks": ["127.0.0.0/8"], "domains": [DOMAIN]}],
            "limits": {"max_connections_per_ip": 500, "max_message_size": 20 * 1024 * 1024},
            "delivery": {
                "mode": "smarthost",
                "smarthost": f"127.0.0.1:{sink_port}",
                "tls": "none",
                "poll_interval": 0.2,
            },
            "web": {
                "address": f"127.0.0.1:{self.web_port}",
                "public_url": f"http://127.0.0.1:{self.web_port}",
            },
            "portal": {
                "organisation": "Bench Clinic",
                "requests_per_minute": 100_000,
                "codes_per_hour": 100,
            },
        }
        self.config = workdir / "phigate.yaml"
        self.config.write_text(yaml.safe_dump(settings))
        self.log = workdir / "phigate.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from gateway import datadir
        from gateway.settings_loader import load_settings

        loaded = load_settings(self.config)
        datadir.prepare_data_dir(loaded, generate_cert=True)
        datadir.open_database(loaded).close()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*phigate_command(), "serve", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.smtp_port, 60, self.proc)
        wait_for_port(self.web_port, 60, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 15, 60)


def submit(port: int, items: Sequence[tuple[str, bytes]]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for rcpt, content in items:
            client.sendmail(SENDER, [rcpt], content)


def notices(server: Server, capture: Capture, count: int, sessions: int) -> float:
    """Notices per second, first submission to the last notice at the sink."""
    base = capture.count()
    items = [
        (f"n{i}@home.bench-patients.org", message(i, f"n{i}@home.bench-patients.org", None))
        for i in range(count)
    ]
    shares = [items[k::sessions] for k in range(sessions)]
    started = time.monotonic()
    with ThreadPoolExecutor(sessions) as pool:
        list(pool.map(lambda share: submit(server.smtp_port, share), shares))
    if not capture.wait_count(base + count, 300):
        raise BenchError(f"only {capture.count() - base} of {count} notices arrived")
    return count / (time.monotonic() - started)


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"')


def form(page: str, action_part: str) -> tuple[str, dict[str, str]]:
    """The form whose action contains `action_part`: its action and hidden fields."""
    for action, body in _FORM.findall(page):
        if action_part in action:
            fields = {name: html.unescape(value) for name, value in _HIDDEN.findall(body)}
            return html.unescape(action), fields
    raise BenchError(f"no form for {action_part} on the page")


def read_one(
    link: str, rcpt: str, capture: Capture, attachment: bytes, repeats: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"open": [], "read": [], "download": []}
    with httpx.Client(timeout=60, follow_redirects=False) as web:
        for _ in range(repeats):
            started = time.perf_counter()
            landing = web.get(link)
            times["open"].append(time.perf_counter() - started)
            if landing.status_code != 200:
                raise BenchError(f"landing page answered {landing.status_code}")
        mark = capture.count()
        action, fields = form(landing.text, "/code")
        asked = web.post(httpx.URL(link).join(action), data=fields)
        if asked.status_code not in (200, 303):
            raise BenchError(f"asking for a code answered {asked.status_code}")
        code = capture.find(rcpt, CODE, mark, 60).decode()
        page = asked.text if asked.status_code == 200 else web.get(asked.headers["location"]).text
        action, fields = form(page, "/verify")
        signed_in = web.post(httpx.URL(link).join(action), data={**fields, "code": code})
        if signed_in.status_code != 303:
            raise BenchError(f"the code was not accepted ({signed_in.status_code})")
        reading = str(httpx.URL(link).join(signed_in.headers["location"]))
        for _ in range(repeats):
            started = time.perf_counter()
            shown = web.get(reading)
            times["read"].append(time.perf_counter() - started)
            if shown.status_code != 200:
                raise BenchError(f"the message page answered {shown.status_code}")
            found = re.search(r'href="([^"]*/attachments/[^"]+)"', shown.text)
            if found is None:
                raise BenchError("the message page lists no attachment")
            started = time.perf_counter()
            got = web.get(httpx.URL(reading).join(html.unescape(found.group(1))))
            times["download"].append(time.perf_counter() - started)
            if got.content != attachment:
                raise BenchError("the downloaded attachment differs from the one sent")
    return times


def pages(server: Server, capture: Capture, readers: int, repeats: int) -> dict[str, list[float]]:
    attachment = b"%PDF-1.4\n" + os.urandom(1024 * 1024 - 9)
    base = capture.count()
    rcpts = [f"r{i}@home.bench-patients.org" for i in range(readers)]
    submit(server.smtp_port, [(r, message(i, r, attachment)) for i, r in enumerate(rcpts)])
    links = {r: capture.find(r, LINK, base, 120).decode() for r in rcpts}
    totals: dict[str, list[float]] = {"open": [], "read": [], "download": []}
    for rcpt in rcpts:  # one reader at a time: latency, not throughput
        for name, values in read_one(links[rcpt], rcpt, capture, attachment, repeats).items():
            totals[name] += values
    return totals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (under a minute)")
    parser.add_argument("--notices", type=int, help="messages for the notice rate")
    parser.add_argument("--sessions", type=int, default=10, help="SMTP sessions sending them")
    parser.add_argument("--readers", type=int, help="messages with a 1 MB attachment read")
    parser.add_argument("--repeats", type=int, default=5, help="page loads per reader")
    args = parser.parse_args(argv)
    count = args.notices or (200 if args.quick else 1000)
    readers = args.readers or (5 if args.quick else 20)
    capture = Capture()
    sink = Controller(capture, hostname="127.0.0.1", port=free_port(), data_size_limit=0)
    sink.start()
    with tempfile.TemporaryDirectory(prefix="phigate-portal-bench-") as tmp:
        server = Server(Path(tmp), sink.port)
        try:
            server.start()
            rate = notices(server, capture, count, args.sessions)
            print(f"notices: {count} messages, {args.sessions} sessions: {rate:.0f} notices/s")
            times = pages(server, capture, readers, args.repeats)
        except BenchError as exc:
            print(f"portal benchmark failed: {exc}", file=sys.stderr)
            return 2
        finally:
            server.stop()
            sink.stop()
    for name, values in times.items():
        ms = [v * 1000 for v in values]
        print(
            f"{name:9} {len(ms):4} requests  p50 {percentile(ms, 50):7.1f} ms  "
            f"p99 {percentile(ms, 99):7.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
