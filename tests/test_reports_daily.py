"""The daily report: due after its time, queued once however many processes try,
and, from a running phigate, delivered to a real SMTP sink with no local part,
subject or body in it. Also `phigate report` over real mail sent through the
server: its canaries never reach any format."""

from __future__ import annotations

import asyncio
import email
import json
import time
from email.message import Message
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from harness import Phigate, Sink, message, via_sink
from report_trail import CANARIES, DAY, REPORT_DAY, seeded

from gateway import datadir
from gateway.audit import trail
from gateway.audit.search import Filters, search
from gateway.cli import main
from gateway.config import ReportsConfig
from gateway.reports import consumer
from gateway.reports.daily import MAILED, DailyReports, due_day
from gateway.settings_loader import SettingsError, load_settings
from gateway.store.database import Database
from gateway.store.keyring import Keyring

CANARY_SUBJECT = "canary-subject-d41 Lab results for Pat Example"
CANARY_BODY = "canary-body-d41 MRN 00123456"
CANARY_RCPT = "canary-rcpt-d41"
TO = ["compliance@reports.test", "ciso@reports.test"]


def test_due_after_its_time_for_the_day_before() -> None:
    six = 6 * 60
    assert due_day(REPORT_DAY + 5 * 3600, six) is None
    assert due_day(REPORT_DAY + 6 * 3600, six) == int(REPORT_DAY // DAY) - 1
    assert due_day(REPORT_DAY + DAY - 1, six) == int(REPORT_DAY // DAY) - 1


def _config() -> ReportsConfig:
    return ReportsConfig.model_validate(
        {"daily": {"enabled": True, "to": TO, "format": "html", "at": "06:00"}}
    )


def test_queued_once_however_many_try(db: Database, keyring: Keyring, tmp_path: Path) -> None:
    with db.transaction() as conn:
        trail.append(conn, seeded())
    domains = consumer.load(_config().consumer_domains, tmp_path)
    makers = [
        DailyReports(db, keyring, _config(), domains, "postmaster@phigate.test", "phigate.test")
        for _ in range(3)
    ]
    now = REPORT_DAY + DAY + 7 * 3600  # 07:00 the day after

    async def all_at_once() -> list[str | None]:
        return await asyncio.gather(*(m.run_once(now) for m in makers))

    queued = [q for q in asyncio.run(all_at_once()) if q is not None]
    assert len(queued) == 1
    assert asyncio.run(makers[0].run_once(now + 3600)) is None  # later the same day: done
    with db.reading() as conn:
        [mailed] = search(conn, Filters(events=(MAILED,))).events
    assert mailed.queue_id == queued[0] and list(mailed.recipients) == TO
    assert mailed.detail == "daily day=2026-11-30 format=html anomalies=6"


def test_settings_are_checked() -> None:
    for bad, words in (
        ({"daily": {"enabled": True}}, "needs `to:`"),
        ({"daily": {"at": "6am"}}, "HH:MM"),
        ({"daily": {"to": ["not an address"]}}, "not an address"),
        ({"consumer_domains": {"add": ["bad domain"]}}, "bare domains"),
        ({"anomalies": {"volume": {"min_active_days": 40}}}, "cannot exceed"),
    ):
        with pytest.raises(ValueError, match=words):
            ReportsConfig.model_validate(bad)


def test_config_check_names_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "phigate.yaml"
    config.write_text(yaml.safe_dump({"reports": {"daily": {"enabled": True, "at": "25:00"}}}))
    with pytest.raises(SettingsError, match=r"reports.daily.at"):
        load_settings(config)


def _parts(mail: Message) -> dict[str, str]:
    found = {}
    for part in mail.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found[part.get_content_type()] = payload.decode()
    return found


def test_a_running_server_mails_the_report_and_reports_hold_no_content(tmp_path: Path) -> None:
    yesterday = (time.time() // DAY - 1) * DAY
    with Sink() as sink:
        gw = Phigate(tmp_path, delivery=via_sink(sink))
        # Due at once: yesterday's report. Quoted, as a time must be in phigate.yaml.
        daily = {"enabled": True, "to": TO, "format": "html", "at": "00:00"}
        with gw.config.open("a") as config:
            config.write(f"reports: {json.dumps({'daily': daily})}\n")  # JSON is YAML
        settings = load_settings(gw.config)
        db = datadir.open_database(settings)
        try:
            with db.transaction() as conn:
                trail.append(conn, seeded(yesterday))
        finally:
            db.close()
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            [report] = sink.wait_for(1)
            sender = "dr@clinic.example.org"
            raw = message(sender, f"{CANARY_RCPT}@partner.test", CANARY_SUBJECT, CANARY_BODY)
            gw.submit(secret, sender, [f"{CANARY_RCPT}@partner.test"], raw)
            sink.wait_for(2)
        # Today's report, from the trail of real mail, in every format.
        today = time.strftime("%Y-%m-%d", time.gmtime())
        outputs = [
            gw.cli("report", "--from", today, "--to", today, "--format", fmt).stdout
            for fmt in ("text", "json", "html")
        ]
    assert report.sender == "" and sorted(report.recipients) == sorted(TO)
    mail = email.message_from_bytes(report.content)
    day = time.strftime("%Y-%m-%d", time.gmtime(yesterday))
    assert mail["Subject"] == f"phigate compliance report {day}: 6 anomalies"
    assert mail["Auto-Submitted"] == "auto-generated"
    parts = _parts(mail)
    assert set(parts) == {"text/plain", "text/html"}
    assert f"ehr1 accepted 102 messages on {day}" in parts["text/plain"]
    assert "<svg" in parts["text/html"] and "Anomalies (6)" in parts["text/html"]
    for text in parts.values():
        assert "@" not in text.replace("@media", "").replace("@page", "")
    assert json.loads(outputs[1])["volume"][0]["principal"] == "ehr1"
    for text in [report.content.decode(errors="replace"), *outputs]:
        for canary in (*CANARIES, CANARY_SUBJECT, CANARY_BODY, CANARY_RCPT, "Pat Example"):
            assert canary.lower() not in text.lower()


def test_config_check_reads_the_domain_list(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("gmail.com\nnot a domain\n")
    config = tmp_path / "phigate.yaml"
    config.write_text(
        yaml.safe_dump(
            {"data_dir": str(tmp_path), "reports": {"consumer_domains": {"file": "mine.txt"}}}
        )
    )
    checked = CliRunner().invoke(main, ["config", "check", "-c", str(config)])
    assert checked.exit_code == 2
    assert "mine.txt, line 2: 'not a domain'" in checked.output
