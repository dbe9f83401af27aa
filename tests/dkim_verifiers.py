"""DKIM verifiers we did not write, pointed at a `LoopbackDns` zone.

- Perl's Mail::DKIM, whose resolver can be given a nameserver and port;
- opendkim-testmsg (libopendkim), which reads /etc/resolv.conf and nothing
  else: it runs in a private mount namespace whose resolv.conf names a
  port-53 forwarder on a loopback address (root only; tests skip otherwise);
- dkimpy, with a TXT lookup through dnspython.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import socketserver
import struct
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import dkim
import dns.message
import dns.query
import dns.rdatatype
from dns_server import LoopbackDns

from gateway.dkim.keys import DnsRecord

_TIMEOUT = 30.0


def publish(zone: LoopbackDns, record: DnsRecord) -> None:
    """Serve a key record exactly as `phigate dkim` prints it (255-byte strings)."""
    zone.add(record.name, "TXT", " ".join(f'"{part}"' for part in record.strings))


# --- Mail::DKIM -------------------------------------------------------------

_MAIL_DKIM = r"""
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;

my $port = shift @ARGV;
my $resolver = Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $port, recurse => 0,
    retry => 2, udp_timeout => 5, tcp_timeout => 5,
);
Mail::DKIM::DNS::resolver($resolver);
for my $file (@ARGV) {
    open(my $fh, '<:raw', $file) or die "$file: $!";
    my $verifier = Mail::DKIM::Verifier->new();
    $verifier->load($fh);
    close($fh);
    my @signatures = map {
        join('|', $_->algorithm, $_->selector, $_->result, $_->result_detail // '')
    } $verifier->signatures;
    print join("\t", $file, $verifier->result, @signatures), "\n";
}
"""


@dataclass(frozen=True)
class MailDkimResult:
    result: str  # the message's overall result: pass, fail, invalid, none
    signatures: dict[str, tuple[str, str]]  # selector -> (result, detail)

    def of(self, selector: str) -> str:
        return self.signatures[selector][0]


def mail_dkim_verify(zone: LoopbackDns, messages: list[bytes]) -> list[MailDkimResult]:
    """Verify several messages with one Perl process (loading Mail::DKIM takes a while)."""
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for number, message in enumerate(messages):
            path = Path(folder) / f"{number}.eml"
            path.write_bytes(message)
            files.append(str(path))
        done = subprocess.run(
            ["perl", "-e", _MAIL_DKIM, str(zone.port), *files],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=True,
        )
    results = []
    for line in done.stdout.splitlines():
        _file, overall, *signatures = line.split("\t")
        parsed = {}
        for signature in signatures:
            _algorithm, selector, result, detail = signature.split("|", 3)
            parsed[selector] = (result, detail)
        results.append(MailDkimResult(overall, parsed))
    assert len(results) == len(messages), done.stderr
    return results


# --- opendkim-testmsg -------------------------------------------------------


class _Forwarder(socketserver.BaseRequestHandler):
    server: _UdpPort53 | _TcpPort53

    def handle(self) -> None:
        if isinstance(self.request, tuple):
            data, sock = self.request
            reply = self.server.zone.answer(data, "udp")
            if reply is not None:
                sock.sendto(reply, self.client_address)
            return
        conn: socket.socket = self.request
        conn.settimeout(2.0)
        with conn.makefile("rb") as stream:
            header = stream.read(2)
            if len(header) == 2:
                reply = self.server.zone.answer(stream.read(struct.unpack("!H", header)[0]), "tcp")
                if reply is not None:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)


class _UdpPort53(socketserver.UDPServer):
    def __init__(self, zone: LoopbackDns, address: str) -> None:
        self.zone = zone
        super().__init__((address, 53), _Forwarder)


class _TcpPort53(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, zone: LoopbackDns, address: str) -> None:
        self.zone = zone
        super().__init__((address, 53), _Forwarder)


class OpendkimTestmsg:
    """Runs `opendkim-testmsg` (verify mode) with its DNS answered by a LoopbackDns zone."""

    def __init__(self, zone: LoopbackDns) -> None:
        self.zone = zone
        # A loopback address of our own, so port 53 is free whatever else runs here.
        self.address = f"127.53.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
        self._servers: list[socketserver.BaseServer] = []
        self._folder = tempfile.TemporaryDirectory()
        self.resolv_conf = Path(self._folder.name) / "resolv.conf"

    @staticmethod
    def unavailable() -> str | None:
        """Why it cannot run here, or None."""
        if shutil.which("opendkim-testmsg") is None:
            return "opendkim-testmsg (opendkim-tools) is not installed"
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            return (
                "opendkim-testmsg reads only /etc/resolv.conf (port 53); pointing it at the "
                "test DNS needs root for a private mount namespace and port 53"
            )
        probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=10)
        if probe.returncode != 0:
            return "no private mount namespaces here (unshare --mount failed)"
        return None

    def __enter__(self) -> OpendkimTestmsg:
        self._servers = [_UdpPort53(self.zone, self.address), _TcpPort53(self.zone, self.address)]
        for server in self._servers:
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()
        self.resolv_conf.write_text(
            f"nameserver {self.address}\noptions edns0 attempts:2 timeout:2\n"
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._folder.cleanup()

    def verify(self, message: bytes) -> tuple[int, str]:
        """(0, "") when every signature verified; otherwise the exit code and the error."""
        script = 'mount --bind "$0" /etc/resolv.conf && exec opendkim-testmsg'
        done = subprocess.run(
            ["unshare", "--mount", "sh", "-c", script, str(self.resolv_conf)],
            input=message,
            capture_output=True,
            timeout=_TIMEOUT,
        )
        return done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace").strip()


# --- dkimpy -----------------------------------------------------------------


def dkimpy_verify(zone: LoopbackDns, message: bytes) -> dict[str, bool]:
    """Each DKIM-Signature's selector and whether dkimpy verifies it."""

    def txt(name: bytes, timeout: float = 5) -> bytes:
        query = dns.message.make_query(name.decode("ascii"), dns.rdatatype.TXT)
        reply = dns.query.tcp(query, "127.0.0.1", port=zone.port, timeout=timeout)
        return b"".join(b"".join(rdata.strings) for rrset in reply.answer for rdata in rrset)

    verifier = dkim.DKIM(message)
    results = {}
    for index in range(sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")):
        try:
            ok = bool(verifier.verify(idx=index, dnsfunc=txt))
        except dkim.DKIMException:  # a body hash mismatch is raised, not returned
            ok = False
        results[verifier.selector.decode("ascii")] = ok
    return results
