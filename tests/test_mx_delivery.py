"""MX delivery end to end: a loopback DNS server names the sink as the domain's MX."""

from __future__ import annotations

from pathlib import Path

from dns_server import LoopbackDns
from harness import Phigate, Sink, wait_until


def _mx_phigate(
    tmp_path: Path, sink: Sink, dns: LoopbackDns, **delivery: object
) -> tuple[Phigate, str]:
    """phigate in mode mx, asking `dns` and delivering to `sink` as every domain's MX."""
    gw = Phigate(
        tmp_path,
        delivery={
            "mode": "mx",
            "nameservers": [dns.nameserver],
            "mx_port": sink.port,
            "connect_timeout": 2.0,
            **delivery,
        },
    )
    return gw, gw.add_principal("ehr1", "clinic.example.org")


def test_mx_delivery_falls_back_to_the_next_preference(tmp_path: Path) -> None:
    with Sink() as sink, LoopbackDns() as dns:
        # The preferred MX has an address where nothing listens: the next one must be used.
        dns.add("partner.test", "MX", "5 dead.partner.test.")
        dns.add("partner.test", "MX", "10 mx1.partner.test.")
        dns.add("dead.partner.test", "A", "127.0.0.2")
        dns.add("mx1.partner.test", "A", "127.0.0.1")
        dns.add("clinic.example.org", "MX", "10 mx1.partner.test.")  # where the DSN goes
        gw, secret = _mx_phigate(tmp_path, sink, dns, tls="opportunistic")
        with gw:
            gw.submit(secret, "a@clinic.example.org", ["dr@partner.test", "nobody@nx.test"])
            got = sink.wait_for(2)  # the message, and the DSN for the NXDOMAIN recipient
            wait_until(lambda: gw.json("queue", "ls") == [])
            jobs = {r["recipient"]: r for r in gw.json("queue", "ls", "--all")}
        assert [m.recipients for m in got if m.sender] == [["dr@partner.test"]]
        assert jobs["dr@partner.test"]["state"] == "delivered"
        assert jobs["nobody@nx.test"]["state"] == "bounced"
        assert jobs["nobody@nx.test"]["last_status"] == "5.1.2"


def test_a_burst_asks_dns_once_and_a_retry_sees_a_dns_fix_at_once(tmp_path: Path) -> None:
    with Sink() as sink, LoopbackDns() as dns:
        dns.add("partner.test", "MX", "10 mx1.partner.test.")
        dns.add("mx1.partner.test", "A", "127.0.0.1")
        dns.add("broken.test", "MX", "10 mx1.broken.test.")
        dns.add("mx1.broken.test", "A", "127.0.0.2")  # nothing listens there
        gw, secret = _mx_phigate(tmp_path, sink, dns, tls="none", mta_sts=False)
        with gw:
            for _ in range(5):
                gw.submit(secret, "a@clinic.example.org", ["dr@partner.test"])
            sink.wait_for(5)
            asked = [(name, rdtype) for name, rdtype, _ in dns.queries]
            assert sorted(set(asked)) == sorted(asked)  # each question asked once

            gw.submit(secret, "a@clinic.example.org", ["dr@broken.test"])
            wait_until(lambda: gw.json("queue", "ls")[0]["attempts"] >= 1)
            # The admin fixes the record; the answer it replaces is within its TTL.
            dns.remove("mx1.broken.test", "A")
            dns.add("mx1.broken.test", "A", "127.0.0.1")
            got = sink.wait_for(6)
        assert got[-1].recipients == ["dr@broken.test"]
