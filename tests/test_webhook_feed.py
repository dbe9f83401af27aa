"""Which audit events become which webhooks, for whom, and that each is queued once
(the feed behind its cursor, on the run's database: SQLite, or PostgreSQL too)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from harness import free_port, settings_for
from sqlalchemy import insert, select
from stores import accept

from gateway import app, datadir
from gateway.audit import indexer, trail
from gateway.audit.trail import AuditEvent
from gateway.config import Settings, WebhooksConfig
from gateway.intake import Submission
from gateway.store import audit_facets, principals, rotation
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.store.schema import (
    audit_events,
    portal_messages,
    webhook_deliveries,
    webhook_subscriptions,
)
from gateway.web import tokens
from gateway.webhooks import events, outbox, subscriptions
from gateway.webhooks.outbox import NewDelivery, Outcome
from gateway.webhooks.sender import Sender, client_context
from gateway.webhooks.service import Webhooks

CONFIG = WebhooksConfig()


def _webhooks(db: Database, keyring: Keyring, holder: str) -> Webhooks:
    hooks = Webhooks(db, keyring, CONFIG, Sender(CONFIG, client_context(CONFIG, None)))
    hooks.holder = holder
    return hooks


def _story(now: float) -> list[AuditEvent]:
    """One of each source, all of principal ehr1 unless said otherwise."""
    return [
        AuditEvent("accepted", "queued", "Q1", "ehr1", recipients=("a@x.example", "b@x.example"),
                   code=250, ts=now),
        AuditEvent("delivered", "2.0.0", "Q1", "ehr1", recipients=("a@x.example",), code=250,
                   detail="mode=tls verify=pkix: 250 ok", ts=now),
        AuditEvent("deferred", "4.4.1", "Q1", "ehr1", recipients=("b@x.example",), code=None,
                   detail="mode=tls: connection refused", ts=now),
        AuditEvent("bounced", "5.1.1", "Q2", "ehr1", recipients=("c@x.example",), code=550,
                   detail="mode=standard: 550 no such user", ts=now),
        AuditEvent("bounced", "5.7.1", "Q3", "ehr1", recipients=("d@x.example",), code=550,
                   detail="mode=consent: not sent: consent revoked while queued", ts=now),
        AuditEvent("policy", "reject", "Q4", "ehr1", recipients=("e@x.example",),
                   detail="policy=1 category=marketing rule=m consent=opted_out phi=no", ts=now),
        AuditEvent("policy", "deliver", "Q4", "ehr1", recipients=("f@x.example",),
                   detail="policy=1 category=treatment rule=t consent=none phi=no", ts=now),
        AuditEvent("portal_viewed", "ok", "Q5", "ehr1", recipients=("g@x.example",),
                   detail="view=first", ts=now),
        AuditEvent("portal_expired", "ok", "Q5", None, recipients=("g@x.example",),
                   detail="by=expiry", ts=now),
        AuditEvent("consent_opted_out", "ok", recipients=("a@x.example",),
                   detail="purpose=marketing source=unsubscribe actor=recipient record=1", ts=now),
        AuditEvent("consent_opted_out", "ok", recipients=("a@x.example",),
                   detail="purpose=marketing source=admin actor=cli:root record=2", ts=now),
        AuditEvent("delivered", "2.0.0", "Q6", "ehr2", recipients=("a@x.example",), code=250,
                   detail="mode=tls: 250 ok", ts=now),
        AuditEvent("delivered", "2.0.0", "Q7", "ehr1", recipients=("h@x.example",), code=250,
                   detail="mode=tls: 250 ok", ts=now - 3600),  # before the subscription
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("event", "result", "detail", "kind"),
    [
        ("accepted", "queued", None, "accepted"),
        ("bounced", "5.1.1", "mode=standard: 550", "bounced"),
        ("bounced", "5.7.1", "mode=consent: not sent", "consent_suppressed"),
        ("policy", "reject", "consent=revoked", "consent_suppressed"),
        ("policy", "reject", "consent=none", None),  # refused for another reason
        ("portal_viewed", "ok", "view=first", "portal_opened"),
        ("portal_viewed", "ok", "view=again", None),  # opened once, read again
        ("portal_viewed", "ok", None, "portal_opened"),  # recorded before views were told apart
        ("portal_link_opened", "ok", None, None),
        ("consent_opted_out", "ok", "source=api", None),
        ("auth", "ok", None, None),
    ],
)
def test_kinds(event: str, result: str, detail: str | None, kind: str | None) -> None:
    assert events.kind_of(event, result, detail) == kind


def test_the_feed_queues_each_wanted_event_once_for_its_principal(
    db: Database, keyring: Keyring
) -> None:
    now = time.time()
    with db.transaction() as conn:
        principals.add(conn, "ehr1", ["ehr1.example"])
        principals.add(conn, "ehr2", ["ehr2.example"])
        trail.append(conn, [AuditEvent("accepted", "queued", "Q0", "ehr1",
                                       recipients=("z@x.example",), ts=now)])  # fmt: skip
    first = _webhooks(db, keyring, "node-a:1")
    assert first.feed(now) == 0  # no subscription: nothing is read
    with db.transaction() as conn:
        sub, _secret = subscriptions.add(
            conn, keyring, name="all", principal="ehr1", url="https://hooks.example/x",
            kinds=subscriptions.parse_kinds("all"), actor="cli:test", now=now - 60,
            cursor=CONFIG.cursor,
        )  # fmt: skip
    assert first.feed(now) == 0  # the first subscription started the cursor after Q0
    with db.transaction() as conn:
        conn.execute(
            insert(portal_messages).values(
                queue_id="Q5", recipient="g@x.example", sender="s@ehr1.example",
                principal="ehr1", verifier="v" * 64, state="expired", access="code",
                created_at=now, expires_at=now,
            )
        )  # fmt: skip
        trail.append(conn, _story(now))
    indexer.catch_up(db)  # the unsubscribe finds its senders through the recipient index
    # Another process does not feed while the first holds the cursor.
    assert _webhooks(db, keyring, "node-b:2").feed(now) == 0
    assert first.feed(now) == len(_story(now))
    assert first.feed(now) == 0
    with db.reading() as conn:
        rows = conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id)).all()
    got = sorted((r.kind, json.loads(r.payload)["data"]["recipient"]) for r in rows)
    assert got == sorted(
        [
            ("accepted", "a@x.example"),
            ("accepted", "b@x.example"),
            ("delivered", "a@x.example"),
            ("deferred", "b@x.example"),
            ("bounced", "c@x.example"),
            ("consent_suppressed", "d@x.example"),
            ("consent_suppressed", "e@x.example"),
            ("portal_opened", "g@x.example"),
            ("portal_expired", "g@x.example"),
            ("unsubscribed", "a@x.example"),  # ehr1 delivered to a@
        ]
    )
    assert {r.subscription_id for r in rows} == {sub.id}
    assert len({r.webhook_id for r in rows}) == len(rows)
    body = json.loads(rows[0].payload)
    assert body["type"] == "message.accepted"
    assert body["data"] == {
        "queue_id": "Q1", "recipient": "a@x.example", "status": "queued", "code": 250,
    }  # fmt: skip


def test_a_secret_is_sealed_and_follows_key_rotation(db: Database, keyring: Keyring) -> None:
    with db.transaction() as conn:
        principals.add(conn, "ehr1", ["ehr1.example"])
        _sub, secret = subscriptions.add(
            conn, keyring, name="s", principal="ehr1", url="https://hooks.example/x",
            kinds=("delivered",), actor="cli:test", now=time.time(), cursor=CONFIG.cursor,
        )  # fmt: skip
    with db.reading() as conn:
        stored = conn.execute(select(webhook_subscriptions)).one()
    assert secret not in b"".join(v for v in stored if isinstance(v, bytes))
    old = keyring.current_key_id
    keyring.rotate()
    assert rotation.rewrap_all(db, keyring) == 1
    keyring.remove(old)
    with db.reading() as conn:
        assert subscriptions.named(conn, "s").secret(keyring) == secret
        assert rotation.rows_per_key(conn) == {keyring.current_key_id: 1}


def test_retries_back_off_then_dead_letter_and_410_at_once(db: Database, keyring: Keyring) -> None:
    config = WebhooksConfig(retry_initial=10, retry_max_interval=40, retry_jitter=0, retry_for=100)
    now = 1_000_000.0
    with db.transaction() as conn:
        principals.add(conn, "ehr1", ["ehr1.example"])
        sub, _secret = subscriptions.add(
            conn, keyring, name="s", principal="ehr1", url="https://hooks.example/x",
            kinds=("delivered",), actor="cli:test", now=now, cursor=CONFIG.cursor,
        )  # fmt: skip
        outbox.add(
            conn,
            [NewDelivery(sub.id, f"msg_{n}", "delivered", "{}") for n in ("a", "b")],
            now,
        )

    def attempt(at: float, status: int, claimed: int = 2) -> dict[str, str]:
        with db.transaction() as conn:
            taken = outbox.claim(conn, at, 10, lease=40)
            assert len(taken) == claimed
            # Claimed rows are leased: another claim now takes nothing.
            assert outbox.claim(conn, at, 10, lease=40) == []
            answers = {"msg_a": Outcome(status), "msg_b": Outcome(status if status != 410 else 500)}
            settled = outbox.settle(conn, [(c, answers[c.webhook_id]) for c in taken], config, at)
        return {c.webhook_id: state for c, state in settled}

    def due(conn_at: float) -> list[float]:
        with db.reading() as conn:
            rows = conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id))
            return [r.next_attempt_at - conn_at for r in rows if r.state == outbox.PENDING]

    assert attempt(now, 500) == {"msg_a": "pending", "msg_b": "pending"}
    assert due(now) == [10, 10]  # the first retry after retry_initial
    assert attempt(now + 10, 500) == {"msg_a": "pending", "msg_b": "pending"}
    assert due(now + 10) == [20, 20]  # doubled
    assert attempt(now + 30, 410) == {"msg_a": "failed", "msg_b": "pending"}  # gone: at once
    assert due(now + 30) == [40]  # doubled, up to retry_max_interval
    assert attempt(now + 70, 500, claimed=1) == {"msg_b": "failed"}  # 70 + 40 > retry_for
    with db.reading() as conn:
        dead = outbox.listing(conn, outbox.FAILED)
    assert sorted((d.webhook_id, d.last_status, d.attempts) for d in dead) == [
        ("msg_a", 410, 3),
        ("msg_b", 500, 4),
    ]


def _submitted(parts: app.Parts, token: str | None) -> str:
    submission = Submission(
        listener="api",
        principal="ehr1",
        client_ip="127.0.0.1",
        helo=None,
        tls=True,
        authenticated=True,
        sender="billing@ehr1.example",
        recipients=("a@x.example",),
        content=b"From: billing@ehr1.example\r\nMessage-ID: <m1@ehr1.example>\r\n"
        b"Subject: s\r\n\r\nbody\r\n",
        token=token,
    )
    reply = accept(parts, submission)
    assert reply.startswith("250 "), reply
    return reply.rsplit(" ", 1)[1]


def test_a_token_subscription_gets_the_events_of_that_tokens_mail_only(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings.model_validate(
        settings_for(tmp_path / "data", free_port(), database_url=database_url)
    )
    datadir.prepare_data_dir(settings, generate_cert=True)
    parts = app.build(settings)
    try:
        db, now = parts.db, time.time()
        with db.transaction() as conn:
            principals.add(conn, "ehr1", ["ehr1.example"])
            tokens.add(conn, "billing-api", ["consent:read"], now - 60, "cli:test")
            tokens.add(conn, "other-api", ["consent:read"], now - 60, "cli:test")
            made = {
                name: subscriptions.add(
                    conn, parts.keyring, name=name, url="https://hooks.example/x",
                    kinds=subscriptions.parse_kinds("all"), actor="cli:test", now=now - 60,
                    cursor=CONFIG.cursor, **scope,
                )[0].id
                for name, scope in (
                    ("by-token", {"principal": None, "token": "billing-api"}),
                    ("by-principal", {"principal": "ehr1"}),
                )
            }  # fmt: skip
            with pytest.raises(subscriptions.SubscriptionError, match="one of them"):
                subscriptions.add(
                    conn, parts.keyring, name="both", principal="ehr1", token="billing-api",
                    url="https://hooks.example/x", kinds=("delivered",), actor="cli:test",
                    now=now, cursor=CONFIG.cursor,
                )  # fmt: skip
            with pytest.raises(subscriptions.SubscriptionError, match="no API token 'nope'"):
                subscriptions.add(
                    conn, parts.keyring, name="none", principal=None, token="nope",
                    url="https://hooks.example/x", kinds=("delivered",), actor="cli:test",
                    now=now, cursor=CONFIG.cursor,
                )  # fmt: skip
        with_token = _submitted(parts, "billing-api")
        over_smtp = _submitted(parts, None)
        with_other = _submitted(parts, "other-api")
        with db.transaction() as conn:
            trail.append(conn, [
                AuditEvent("delivered", "2.0.0", q, "ehr1", recipients=("a@x.example",),
                           code=250, detail="mode=standard: 250 ok", ts=time.time())
                for q in (with_token, over_smtp, with_other)
            ])  # fmt: skip
        assert _webhooks(db, parts.keyring, "node-a:1").feed(time.time()) > 0
        with db.reading() as conn:
            rows = conn.execute(select(webhook_deliveries)).all()
            accepted = conn.execute(
                select(audit_events.c.detail).where(
                    audit_events.c.event == "accepted", audit_events.c.queue_id == with_token
                )
            ).scalar_one()
    finally:
        parts.close()
    got = {
        (sub, r.kind, json.loads(r.payload)["data"]["queue_id"])
        for r in rows
        for sub, sub_id in made.items()
        if r.subscription_id == sub_id
    }
    assert {(k, q) for s, k, q in got if s == "by-token"} == {
        ("accepted", with_token), ("delivered", with_token)
    }  # fmt: skip
    assert {(k, q) for s, k, q in got if s == "by-principal"} == {
        (kind, q) for kind in ("accepted", "delivered") for q in (with_token, over_smtp, with_other)
    }  # fmt: skip
    # The token is metadata on the accepted event; its Message-ID is still searchable.
    assert accepted == "token=billing-api message-id=<m1@ehr1.example>"
    assert audit_facets.facets("accepted", accepted).message_id == "<m1@ehr1.example>"
