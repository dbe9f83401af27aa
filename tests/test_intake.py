"""Intake fails closed: if the message cannot be stored, the client gets a 4xx, never a 250.

The intake is the server's own, wired by `gateway.app.build` as `phigate serve`
wires it; failures are real ones (a table gone from the store).
"""

from __future__ import annotations

from pathlib import Path

from harness import free_port, settings_for
from stores import accept

from gateway import app, datadir
from gateway.config import Settings
from gateway.intake import Submission


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
