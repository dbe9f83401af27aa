"""MX delivery end to end: a loopback DNS server names the sink as the domain's MX."""

from __future__ import annotations

from pathlib import Path

from dns_server import LoopbackDns
from harness import Phigate, Sink, wait_until


def test_mx_delivery_falls_back_to_the_next_preference(tmp_path: Path) -> None:
    with Sink() as sink, LoopbackDns() as dns:
        # The preferred MX has an address where nothing listens: the next one must be used.
        dns.add("partner.test", "MX", "5 dead.partner.test.")
        dns.add("partner.test", "MX", "10 mx1.partner.test.")
        dns.add("dead.partner.test", "A", "127.0.0.2")
        dns.add("mx1.partner.test", "A", "127.0.0.1")
        dns.add("clinic.example.org", "MX", "10 mx1.partner.test.")  # where the DSN goes
        gw = Phigate(
            tmp_path,
            delivery={
                "mode": "mx",
                "nameservers": [dns.nameserver],
                "mx_port": sink.port,
                "tls": "opportunistic",
                "connect_timeout": 2.0,
            },
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            gw.submit(secret, "a@clinic.example.org", ["dr@partner.test", "nobody@nx.test"])
            got = sink.wait_for(2)  # the message, and the DSN for the NXDOMAIN recipient
            wait_until(lambda: gw.json("queue", "ls") == [])
            jobs = {r["recipient"]: r for r in gw.json("queue", "ls", "--all")}
        assert [m.recipients for m in got if m.sender] == [["dr@partner.test"]]
        assert jobs["dr@partner.test"]["state"] == "delivered"
        assert jobs["nobody@nx.test"]["state"] == "bounced"
        assert jobs["nobody@nx.test"]["last_status"] == "5.1.2"
