"""SIGHUP loads a renewed TLS certificate for new handshakes (SMTP STARTTLS and HTTPS),
without a restart; a pair that does not load leaves the one in use."""

from __future__ import annotations

import hashlib
import signal
import socket
import ssl
import time
from pathlib import Path

from harness import Phigate, insecure_context, tls_client, wait_until

from gateway.mail.tls import generate_self_signed


def _smtp_certificate(gw: Phigate) -> bytes:
    with tls_client(gw.port) as client:
        sock = client.sock
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def _web_certificate(gw: Phigate) -> bytes:
    host, port = gw.settings["web"]["address"].rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        insecure_context().wrap_socket(raw, server_hostname=host) as sock,
    ):
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def _reloads(gw: Phigate, event: str) -> int:
    return sum(1 for e in gw.log_events() if e.get("event") == event)


def test_sighup_serves_a_renewed_certificate_and_keeps_it_when_a_bad_pair_follows(
    tmp_path: Path,
) -> None:
    gw = Phigate(tmp_path, processes=2, web={"tls": True})
    data = Path(gw.settings["data_dir"])
    with gw:
        cert, key = data / "tls" / "server.crt", data / "tls" / "server.key"
        assert cert.exists() and key.exists()
        first = _smtp_certificate(gw)
        assert _web_certificate(gw) == first
        # Renewed in place, as certbot or an admin would, then SIGHUP.
        cert.unlink()
        key.unlink()
        generate_self_signed(cert, key, "renewed.phigate.test")
        renewed = cert.read_bytes()
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _reloads(gw, "tls_reloaded") == 2, timeout=20)  # each process
        second = _smtp_certificate(gw)
        assert second != first
        assert ssl.DER_cert_to_PEM_cert(second).encode().strip() == renewed.strip()
        for _ in range(4):  # whichever process answers
            assert _smtp_certificate(gw) == second
            assert _web_certificate(gw) == second
        # A key that does not match: reported, and the renewed pair stays in use.
        other = tmp_path / "other"
        other.mkdir()
        generate_self_signed(other / "cert.pem", other / "key.pem", "mismatch.test")
        key.write_bytes((other / "key.pem").read_bytes())
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _reloads(gw, "tls_reload_failed") == 2, timeout=20)
        time.sleep(0.2)
        for _ in range(4):
            assert _smtp_certificate(gw) == second
            assert _web_certificate(gw) == second
    failed = [e for e in gw.log_events() if e.get("event") == "tls_reload_failed"]
    assert {e["problem"] for e in failed} <= {"SSLError", "OSError", "ValueError"}
    assert hashlib.sha256(key.read_bytes()).hexdigest() not in gw.log_text()
