"""Intake fails closed: if the message cannot be stored, the client gets a 4xx, never a 250."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from gateway.bounce import BounceMaker
from gateway.config import ConsentConfig, InspectionConfig, ReceivedHeaderConfig
from gateway.consent.source import RegistryConsent
from gateway.inspect.header_values import HeaderValues
from gateway.inspect.inspector import Inspector
from gateway.intake import AsyncConsentSource, Intake, Submission
from gateway.policy.loader import load_policy, shipped_policy_dir
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database
from gateway.store.keyring import Keyring


def _submission() -> Submission:
    return Submission(
        listener="submission",
        principal="ehr1",
        client_ip="127.0.0.1",
        helo="ehr.test",
        tls=True,
        authenticated=True,
        sender="a@clinic.example.org",
        recipients=("b@partner.test",),
        content=b"Subject: s\r\n\r\nbody\r\n",
    )


class BrokenConsent:
    """A consent source whose lookup fails, as a database outage would."""

    async def states(self, recipients: Sequence[str], purpose: str) -> Mapping[str, str]:
        raise RuntimeError("consent store unreachable")


def _accept(db: Database, keyring: Keyring, consent: AsyncConsentSource | None = None) -> str:
    async def go() -> str:
        db.start()
        try:
            policy = load_policy(shipped_policy_dir())
            inspector = Inspector(InspectionConfig())
            intake = Intake(
                db,
                keyring,
                "phigate.test",
                ReceivedHeaderConfig(),
                inspector=inspector,
                policy=lambda: policy,
                consent=consent or RegistryConsent(db, ConsentConfig()),
                bounces=BounceMaker(keyring, "phigate.test", "postmaster@phigate.test"),
                header_values=HeaderValues(InspectionConfig(), bytes(32)),
            )
            return str(await intake.accept(_submission()))
        finally:
            inspector.close()
            db.stop()

    return asyncio.run(go())


def test_store_failure_answers_451_and_keeps_nothing(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'phigate.db'}", audit_key=AuditKey(os.urandom(32)))
    db.migrate()
    keyring = Keyring.create(tmp_path / "keys")
    assert _accept(db, keyring).startswith("250 2.0.0 Ok: queued as ")
    with db.transaction() as conn:
        conn.exec_driver_sql("DROP TABLE jobs")  # the next store cannot complete
    reply = _accept(db, keyring)
    assert reply.startswith("451 4.3.0")
    with db.reading() as conn:
        # The message row of the failed attempt was rolled back with its jobs.
        assert conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one() == 1
        events = conn.exec_driver_sql("SELECT count(*) FROM audit_events").scalar_one()
    assert events == 2  # only the first message's policy decision and acceptance
    db.close()


def test_policy_evaluation_failure_answers_451_and_keeps_nothing(tmp_path: Path) -> None:
    # The shipped policy tests consent, so a failing lookup breaks evaluation.
    db = Database(f"sqlite:///{tmp_path / 'phigate.db'}", audit_key=AuditKey(os.urandom(32)))
    db.migrate()
    keyring = Keyring.create(tmp_path / "keys")
    reply = _accept(db, keyring, BrokenConsent())
    assert reply.startswith("451 4.3.0")
    with db.reading() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM jobs").scalar_one() == 0
    db.close()
