"""The live audit forwarder against a real collector: Debian's rsyslogd on
loopback, syslog over TLS (RFC 5425) with a client certificate. Mail is
accepted while the collector is down; its events arrive when it is back,
none lost (repeats allowed: at-least-once, by event id); of two server
processes one forwards; the lag shows in /metrics; canary subject and body
appear in no output."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import urllib.request
from collections import Counter
from contextlib import closing
from pathlib import Path

from certs import issue, make_certs
from harness import Phigate, audit_mark, free_port, message, wait_until
from syslog_collector import Rsyslog
from syslog_rfc5424_parser import SyslogMessage

CANARY_SUBJECT = "canary-forward-8j1 Biopsy results for Pat Example"
CANARY_BODY = "canary-forward-8j1 body MRN 00417 SSN 123-45-6789"
SD_ID = "phigate@32473"


def _received(collector: Rsyslog) -> Counter[int]:
    """How many times each event id reached the collector."""
    return Counter(
        int(SyslogMessage.parse(line).as_dict()["sd"][SD_ID]["id"]) for line in collector.lines()
    )


def _stored_hashes(gw: Phigate) -> dict[int, str]:
    with closing(sqlite3.connect(f"{gw.db_path.as_uri()}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT id, hash FROM audit_events"))


def _scrape(gw: Phigate) -> str:
    url = f"http://{gw.settings['metrics']['address']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _lag(gw: Phigate) -> tuple[float, float]:
    """(events, seconds) the forwarder is behind, as /metrics says."""
    values = {
        line.split(" ")[0].removeprefix("phigate_audit_forwarder_lag_"): float(line.split(" ")[1])
        for line in _scrape(gw).splitlines()
        if line.startswith("phigate_audit_forwarder_lag_")
    }
    return values["events"], values["seconds"]


def _all_arrived(gw: Phigate, collector: Rsyslog) -> bool:
    return set(range(1, audit_mark(gw) + 1)) <= set(_received(collector))


def test_forwarder_delivers_over_tls_and_catches_up_after_the_collector_was_down(
    tmp_path: Path,
) -> None:
    certs = make_certs(tmp_path)
    client = issue(tmp_path, "phigate-client", ["phigate.test"])
    collector = Rsyslog(
        tmp_path / "rsyslog", certs["ca"], certs["good"], certs["good_key"], client_certs=True
    )
    gw = Phigate(
        tmp_path,
        audit={
            "forward": {
                "enabled": True,
                "address": f"127.0.0.1:{collector.port}",
                "ca_file": str(certs["ca"]),
                "cert_file": str(client["cert"]),
                "key_file": str(client["key"]),
                "poll_interval": 0.2,
                "confirm_after": 0.3,
                "backoff_min": 0.2,
                "backoff_max": 1.0,
            }
        },
        metrics={"enabled": True, "address": f"127.0.0.1:{free_port()}"},
        processes=2,  # one of them forwards: the one holding the cursor's lease
    )
    secret = gw.add_principal("ehr1", "clinic.example.org")
    sender = "dr@clinic.example.org"
    raw = message(sender, "pat@partner.example", CANARY_SUBJECT, CANARY_BODY)
    with collector, gw:
        assert gw.submit(secret, sender, ["pat@partner.example"], raw) == {}
        wait_until(lambda: _all_arrived(gw, collector), 30)
        wait_until(lambda: _lag(gw)[0] == 0)

        collector.stop()
        # The collector is away: mail is still accepted, its events wait in the database.
        assert gw.submit(secret, sender, ["pat@partner.example"], raw) == {}
        assert gw.submit(secret, sender, ["other@partner.example"], raw) == {}
        waiting = audit_mark(gw)
        wait_until(lambda: _lag(gw)[0] > 0)
        assert not _all_arrived(gw, collector)

        collector.start()
        wait_until(lambda: _all_arrived(gw, collector), 60)
        wait_until(lambda: _lag(gw) == (0, 0))
        scraped = _scrape(gw)
        cli_jsonl = gw.cli("audit", "export").stdout
        cli_syslog = gw.cli("audit", "export", "--format", "syslog").stdout

    received = _received(collector)
    stored = _stored_hashes(gw)
    with closing(sqlite3.connect(f"{gw.db_path.as_uri()}?mode=ro", uri=True)) as db:
        holder, position = db.execute(
            "SELECT holder, event_id FROM audit_export_cursors WHERE name = 'forwarder'"
        ).fetchone()
    assert holder is None  # given up at shutdown: a restarted server need not wait
    assert position >= waiting
    assert set(range(1, waiting + 1)) <= set(received)  # none lost
    assert set(received) <= set(stored)  # none made up
    for line in collector.lines():
        parsed = SyslogMessage.parse(line).as_dict()
        data = parsed["sd"][SD_ID]
        assert parsed["appname"] == "phigate" and parsed["hostname"] == "phigate.test"
        assert data["hash"] == stored[int(data["id"])]
    kinds = Counter(
        SyslogMessage.parse(line).as_dict()["sd"][SD_ID]["event"] for line in collector.lines()
    )
    assert kinds["accepted"] >= 3
    logged = gw.log_events()
    events = [e["event"] for e in logged]
    assert "audit_forward_interrupted" in events and events.count("audit_forward_connected") >= 2
    assert len({e["pid"] for e in logged if e["event"] == "ready"}) == 2
    assert len({e["pid"] for e in logged if e["event"] == "audit_forward_connected"}) == 1
    # Exports by hand, of the same trail: every event, parseable, no content.
    assert len(cli_jsonl.splitlines()) >= waiting
    assert all(json.loads(line)["hash"] for line in cli_jsonl.splitlines())
    for line in cli_syslog.splitlines():
        SyslogMessage.parse(line)
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (scripts/test does)"
    check = subprocess.run(
        [promtool, "check", "metrics"], input=scraped, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "phigate_audit_forwarded_events_total" in scraped
    for text in (collector.output.read_text(), cli_jsonl, cli_syslog, gw.log_text(), scraped):
        assert "canary" not in text and "123-45-6789" not in text


def test_config_check_shows_and_checks_the_forwarder(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    gw = Phigate(
        tmp_path,
        audit={"forward": {"enabled": True, "address": "127.0.0.1:6514", "ca_file": "nope.pem"}},
    )
    missing = gw.cli("config", "check", check=False)
    assert missing.returncode == 2
    assert "audit.forward: cannot load its CA file" in missing.stderr
    assert "Traceback" not in missing.stderr
    gw.config.write_text(
        gw.config.read_text().replace("ca_file: nope.pem", f"ca_file: {certs['ca']}")
    )
    ok = gw.cli("config", "check")
    assert "audit forward: 127.0.0.1:6514 tls cursor=forwarder" in ok.stdout
    remote = gw.config.read_text().replace("127.0.0.1:6514", "192.0.2.1:514")
    gw.config.write_text(remote.replace("enabled: true", "enabled: true\n    tls: false", 1))
    clear = gw.cli("config", "check", check=False)
    assert clear.returncode == 2
    assert "tls: false would send addresses in clear" in clear.stderr


def test_a_collector_whose_certificate_does_not_verify_gets_nothing(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    impostor = Rsyslog(tmp_path / "rsyslog", certs["ca"], certs["impostor"], certs["impostor_key"])
    gw = Phigate(
        tmp_path,
        audit={
            "forward": {
                "enabled": True,
                "address": f"127.0.0.1:{impostor.port}",
                "ca_file": str(certs["ca"]),
                "backoff_min": 0.2,
                "backoff_max": 0.5,
            }
        },
    )
    secret = gw.add_principal("ehr1", "clinic.example.org")
    with impostor, gw:
        sender = "dr@clinic.example.org"
        assert gw.submit(secret, sender, ["pat@partner.example"]) == {}  # mail goes on

        def refused_twice() -> bool:
            failures = [
                e
                for e in gw.log_events()
                if e["event"] == "audit_forward_interrupted"
                and e["error"] == "SSLCertVerificationError"
            ]
            return len(failures) >= 2

        wait_until(refused_twice)
    assert impostor.lines() == []
    assert "audit_forward_connected" not in gw.log_text()
