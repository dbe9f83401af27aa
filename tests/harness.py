"""Real parts for end-to-end tests: a phigate server process and an SMTP sink.

The server runs as `phigate serve -c FILE` in a subprocess (so it can be
killed with SIGKILL); the sink is an aiosmtpd server on loopback whose
replies a test can script per recipient.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from databases import server_database

from gateway.config import RATE_LIMIT_NAMES

PHIGATE = [sys.executable, "-m", "gateway.cli"]
BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench_json(script: str, *args: str) -> Any:
    """What bench/`script` prints on stdout with --json and `args`; it must succeed."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout)


_handed_out: set[int] = set()
_EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A loopback port free now, never handed out before in this process, and one that no
    other worker of this run (pytest -n) can be handed. A port is named long before the
    server that binds it starts, so it is taken below the kernel's ephemeral range:
    there, no outgoing connection (to a sink, PostgreSQL, ...) can take it meanwhile."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    ephemeral = int(_EPHEMERAL_PORTS.read_text().split()[0]) if _EPHEMERAL_PORTS.exists() else 32768
    for _ in range(10_000):
        port = random.randrange(ephemeral // 2, ephemeral)
        if port % workers != worker or port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port from {ephemeral // 2} to {ephemeral - 1}")


def run_without_settings(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`phigate ARGS` with no settings file, run where its default data_dir (./phigate-data)
    has the run's detector cache as cache/: a command that inspects loads the pattern
    database there rather than compile it (seconds of CPU) every time."""
    workdir = None
    shared_cache = os.environ.get("PHIGATE_TEST_CACHE_DIR")  # set by conftest.detector_cache
    if shared_cache:
        workdir = Path(shared_cache).parent / "no-settings"
        (workdir / "phigate-data").mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # made by another worker of the run
            (workdir / "phigate-data" / "cache").symlink_to(shared_cache)
    return subprocess.run(
        [*PHIGATE, *args], capture_output=True, text=True, timeout=timeout, cwd=workdir
    )


@dataclass
class Received:
    sender: str
    recipients: list[str]
    content: bytes
    tls: bool = False


@dataclass
class SinkHandler:
    """Records what arrives; `script(rcpt)` may return a reply to refuse a recipient."""

    messages: list[Received] = field(default_factory=list)
    script: Callable[[str], str | None] = lambda _rcpt: None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.script(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.messages.append(
                Received(
                    str(envelope.mail_from).replace("<>", ""),  # aiosmtpd keeps "<>"
                    list(envelope.rcpt_tos),
                    bytes(envelope.original_content or b""),
                    session.ssl is not None,
                )
            )
        return "250 2.0.0 stored"


class Sink:
    """An SMTP sink on loopback; with `tls_context` it offers STARTTLS."""

    def __init__(
        self, tls_context: ssl.SSLContext | None = None, handler: SinkHandler | None = None
    ) -> None:
        self.handler = handler or SinkHandler()
        self.port = free_port()
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="sink.test",
            tls_context=tls_context,
        )

    def __enter__(self) -> Sink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.05)
        raise TimeoutError(f"sink got {len(self.messages)} of {count} messages")


def via_sink(sink: Sink, tls: str = "opportunistic", **extra: Any) -> dict[str, Any]:
    """Delivery settings that relay everything to `sink`."""
    return {"mode": "smarthost", "smarthost": f"127.0.0.1:{sink.port}", "tls": tls, **extra}


def settings_for(data_dir: Path, port: int, **sections: Any) -> dict[str, Any]:
    """A settings dict for tests: one STARTTLS listener on `port`, fast retries."""
    base: dict[str, Any] = {
        "data_dir": str(data_dir),
        "hostname": "phigate.test",
        "listeners": [{"name": "submission", "address": f"127.0.0.1:{port}", "tls": "starttls"}],
        "delivery": {
            "mode": "sandbox",
            "poll_interval": 0.2,
            "retry_schedule": [0.5],
            "retry_jitter": 0.0,
        },
        "limits": {"auth_backoff_base": 0.0, "auth_backoff_max": 0.0},
        "web": {"address": f"127.0.0.1:{free_port()}"},
        # Tests put load on a principal in seconds, as no clinic does: sending limits
        # off, except where a test sets them (tests/test_rate_limits.py).
        "rate_limits": {"defaults": dict.fromkeys(RATE_LIMIT_NAMES, 0)},
    }
    shared_cache = os.environ.get("PHIGATE_TEST_CACHE_DIR")  # set by conftest.detector_cache
    if shared_cache:
        base["cache_dir"] = shared_cache
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


class Phigate:
    """A phigate server process with its own data dir."""

    def __init__(self, tmp: Path, **sections: Any) -> None:
        self.dir = tmp
        self.port = free_port()
        if "database_url" not in sections:
            on_postgres = server_database()  # None: the data directory's SQLite file
            if on_postgres is not None:
                sections["database_url"] = on_postgres
        self.settings = settings_for(tmp / "data", self.port, **sections)
        self.config = tmp / "phigate.yaml"
        self.config.write_text(yaml.safe_dump(self.settings))
        self.log = tmp / "phigate.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._prepare()

    def _prepare(self) -> None:
        """Keys, certificate and schema, as `phigate init` makes them."""
        from gateway import datadir
        from gateway.settings_loader import load_settings

        settings = load_settings(self.config)
        datadir.prepare_data_dir(settings, generate_cert=True)
        datadir.open_database(settings).close()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*PHIGATE, *args, "-c", str(self.config)], capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(f"phigate {' '.join(args)} failed: {result.stderr}")
        return result

    def add_principal(self, name: str, *domains: str) -> str:
        args = ["principal", "add", name, "--json"]
        for domain in domains:
            args += ["--domain", domain]
        return str(json.loads(self.cli(*args).stdout)["secret"])

    def start(self, *serve_args: str) -> Phigate:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [*PHIGATE, "serve", "-c", str(self.config), *serve_args],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        # Wait for the "ready" event (written once every listener is bound);
        # probing the port would itself be a client session. The first server of a
        # run compiles the pattern database (later ones load it from the shared
        # cache): on a busy 2-core machine that alone can take half a minute.
        proc = self.proc
        wait_until(
            lambda: proc.poll() is not None or '"event":"ready"' in self.log_text(), 90, 0.05
        )
        if proc.poll() is not None:
            raise RuntimeError(f"phigate exited with {proc.returncode}: {self.log_text()[-2000:]}")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> Phigate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.stop()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_text().splitlines() if line.startswith("{")]

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    @property
    def db_path(self) -> Path:
        return Path(self.settings["data_dir"]) / "phigate.db"

    def submit(
        self,
        secret: str,
        sender: str,
        recipients: list[str],
        raw: bytes | None = None,
        user: str = "ehr1",
    ) -> dict[str, tuple[int, bytes]]:
        """Log in, send one message (a small default one if `raw` is None), quit."""
        client = self.client(user, secret)
        try:
            content = raw if raw is not None else message(sender, recipients[0], "s", "b")
            return client.sendmail(sender, recipients, content)
        finally:
            client.quit()

    def client(self, user: str | None = None, secret: str | None = None) -> smtplib.SMTP:
        """A logged-in smtplib client over STARTTLS (what a hospital system would use)."""
        smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=15)
        smtp.starttls(context=insecure_context())
        if user is not None and secret is not None:
            smtp.login(user, secret)
        return smtp


def insecure_context() -> ssl.SSLContext:
    # The test server presents a self-signed certificate.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def message(
    sender: str,
    recipient: str,
    subject: str,
    body: str,
    attachment: str | None = None,
    message_id: str = "<test@example.org>",
) -> bytes:
    """A MIME message with CRLF line endings, optionally with an attachment."""
    from email.message import EmailMessage
    from email.policy import SMTP as SMTP_POLICY

    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content(body)
    if attachment is not None:
        msg.add_attachment(
            attachment.encode(), maintype="text", subtype="csv", filename=f"{attachment[:12]}.csv"
        )
    return msg.as_bytes(policy=SMTP_POLICY)


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError("condition not reached")


def within_one_window(seconds: int, needed: float) -> None:
    """Wait, if need be, for a sending-limit window (UTC-aligned, gateway.ratelimit)
    that will not end in the next `needed` seconds."""
    left = seconds - time.time() % seconds
    if left < needed:
        time.sleep(left + 0.05)


# What a test reads back: the audit trail of a running server, as a client sees SMTP.

AUDIT_COLUMNS = (
    "id",
    "event",
    "result",
    "principal",
    "client_ip",
    "sender",
    "recipients",
    "code",
    "detail",
)


def audit_mark(gw: Phigate) -> int:
    """The id of the newest audit event (events written later have larger ids)."""
    with contextlib.closing(sqlite3.connect(f"{gw.db_path.as_uri()}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT coalesce(max(id), 0) FROM audit_events").fetchone()[0])


def audit_since(gw: Phigate, mark: int) -> list[dict[str, Any]]:
    query = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events WHERE id > ? ORDER BY id"
    with contextlib.closing(sqlite3.connect(f"{gw.db_path.as_uri()}?mode=ro", uri=True)) as db:
        return [dict(zip(AUDIT_COLUMNS, row, strict=True)) for row in db.execute(query, (mark,))]


def connect(port: int, source: str = "127.0.0.1") -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(source, 0))


def tls_client(port: int, source: str = "127.0.0.1") -> smtplib.SMTP:
    smtp = connect(port, source)
    smtp.starttls(context=insecure_context())
    smtp.ehlo()
    return smtp


class RawClient:
    """An SMTP client on a plain socket: sends exactly the bytes given, reads replies."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=10, source_address=(source, 0)
        )
        self.replies = self.sock.makefile("rb")

    def reply(self) -> bytes:
        """One whole reply (the last line of a multi-line one); b"" once the server closed."""
        while True:
            try:
                line = self.replies.readline()
            except ConnectionResetError:
                return b""
            if line[3:4] != b"-":
                return line

    def command(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        return self.reply() == b""

    def close(self) -> None:
        self.replies.close()
        self.sock.close()
