"""Intake fails closed: if the message cannot be stored, the client gets a 4xx, never a 250.

The intake is the server's own, wired by `gateway.app.build` as `phigate serve`
wires it; failures are real ones (a table gone from the store). The Received
header it adds is dated to the message's second and names the client only as
far as the admin allows.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from pathlib import Path

from harness import free_port, settings_for
from stores import accept

from gateway import app, datadir
from gateway.config import ReceivedHeaderConfig, Settings
from gateway.intake import Submission, received_header


def _settings(tmp_path: Path) -> Settings:
    settings = Settings.model_validate(settings_for(tmp_path / "data", free_port()))
    datadir.prepare_data_dir(settings, generate_cert=True)
    return settings


def _submission(headers: bytes = b"") -> Submission:
    return Submission(
        listener="submission",
        principal="ehr1",
        client_ip="127.0.0.1",
        helo="ehr.test",
        tls=True,
        authenticated=True,
        sender="a@clinic.example.org",
        recipients=("b@partner.test",),
        content=headers + b"Subject: s\r\n\r\nbody\r\n",
    )


def test_store_failure_answers_451_and_keeps_nothing(tmp_path: Path) -> None:
    parts = app.build(_settings(tmp_path))
    try:
        assert accept(parts, _submission()).startswith("250 2.0.0 Ok: queued as ")
        with parts.db.transaction() as conn:
            conn.exec_driver_sql("DROP TABLE jobs")  # the next store cannot complete
        reply = accept(parts, _submission())
        assert reply.startswith("451 4.3.0")
        with parts.db.reading() as conn:
            # The message row of the failed attempt was rolled back with its jobs.
            assert conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one() == 1
            events = conn.exec_driver_sql("SELECT count(*) FROM audit_events").scalar_one()
        assert events == 2  # only the first message's policy decision and acceptance
    finally:
        parts.close()


def test_policy_evaluation_failure_answers_451_and_keeps_nothing(tmp_path: Path) -> None:
    # The shipped policy reads consent for marketing: a failing lookup breaks evaluation.
    parts = app.build(_settings(tmp_path))
    try:
        with parts.db.transaction() as conn:
            conn.exec_driver_sql("DROP TABLE consent_records")  # the registry is unreadable
        reply = accept(parts, _submission(b"X-Phigate-Category: marketing\r\n"))
        assert reply.startswith("451 4.3.0")
        with parts.db.reading() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one() == 0
            assert conn.exec_driver_sql("SELECT count(*) FROM jobs").scalar_one() == 0
    finally:
        parts.close()


def _received_at(header: bytes) -> float:
    return parsedate_to_datetime(header.decode().rsplit(";", 1)[1].strip()).timestamp()


def test_each_message_is_dated_to_its_own_second() -> None:
    start = 1_780_000_000.25
    # Two messages in one second, one in the next and one a day later, then the first
    # second again: the date follows the message's time whatever came before it.
    for now in (start, start + 0.5, start + 1.0, start + 86_400.9, start + 0.7):
        header = received_header(_submission(), "Q1", "phigate.test", ReceivedHeaderConfig(), now)
        assert _received_at(header) == int(now)


def test_the_received_header_names_the_client_only_where_the_admin_allows() -> None:
    hidden = received_header(_submission(), "Q1", "phigate.test", ReceivedHeaderConfig(), 0.0)
    assert hidden.startswith(b"Received: by phigate.test (phigate) with ESMTPSA id Q1;\r\n\t")
    assert b"127.0.0.1" not in hidden and b"ehr.test" not in hidden
    shown_config = ReceivedHeaderConfig(include_client_ip=True, include_helo=True)
    shown = received_header(_submission(), "Q1", "phigate.test", shown_config, 0.0)
    assert shown.startswith(b"Received: from ehr.test ([127.0.0.1])\r\n\tby phigate.test ")
