"""Sending limits per principal (rate_limits), over real SMTP against running servers:
two pre-forked processes on SQLite, and two nodes on one PostgreSQL, count together;
a message over a limit gets 451 4.7.1 with the seconds to wait and is not stored;
the first breach of an hourly or daily quota is audited once, without an address."""

from __future__ import annotations

import contextlib
import math
import shutil
import smtplib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from databases import POSTGRES, fresh_database, postgres_reachable
from harness import Phigate, audit_mark, audit_since, message, within_one_window
from sqlalchemy import create_engine, func, select

from gateway import metrics
from gateway.config import RateLimitsConfig, RateQuota
from gateway.ratelimit import Breach, RateKey, RateLimiter
from gateway.settings_loader import SettingsError, load_settings
from gateway.store.database import Database
from gateway.store.rate_counts import window_start
from gateway.store.schema import rate_counts

SENDER = "ehr@clinic.example.org"
RECIPIENT = "dr.canary@partner.test"
SUBJECT = "Canary-Subject-7731"
RATE_LIMITS = {
    "defaults": {"messages_per_minute": 3, "recipients_per_message": 10},
    "principals": {
        "bulk": {"messages_per_minute": 5},
        "fanout": {"recipients_per_message": 2},
        "hourly": {"messages_per_minute": 0, "messages_per_hour": 2},
    },
    "networks": {"lab": {"messages_per_minute": 2}},
}
# A legacy system sending without AUTH from loopback counts against its network's limits.
LAB = {"name": "lab", "networks": ["127.0.0.0/8"], "domains": ["lab.example.org"]}


def send(
    gw: Phigate, user: str | None, secret: str | None, recipients: list[str], sender: str = SENDER
) -> tuple[int, str]:
    """One message on a connection of its own (a process of the server's choosing):
    the reply that decided it, and its text."""
    raw = message(sender, recipients[0], SUBJECT, "Canary body 5521")
    client = gw.client(user, secret)
    try:
        refused = client.sendmail(sender, recipients, raw)
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        return exc.smtp_code, exc.smtp_error.decode()
    finally:
        with contextlib.suppress(smtplib.SMTPException):
            client.quit()
    if refused:
        code, text = next(iter(refused.values()))
        return code, text.decode()
    return 250, ""


def stored(gw: Phigate, principal: str) -> int:
    with contextlib.closing(sqlite3.connect(f"{gw.db_path.as_uri()}?mode=ro", uri=True)) as db:
        query = "SELECT count(*) FROM messages WHERE principal = ?"
        return int(db.execute(query, (principal,)).fetchone()[0])


def retry_seconds(text: str) -> int:
    return int(text.rsplit("try again in ", 1)[1].split(" seconds")[0])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Phigate, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("rates")
    listener = {"name": "submission", "tls": "starttls", "allow_networks_without_auth": True}
    gw = Phigate(tmp, processes=2, rate_limits=RATE_LIMITS, relay_networks=[LAB])
    gw.settings["listeners"] = [{**listener, "address": f"127.0.0.1:{gw.port}"}]
    gw.config.write_text(yaml.safe_dump(gw.settings))
    secrets = {
        name: gw.add_principal(name, "clinic.example.org") for name in RATE_LIMITS["principals"]
    }
    secrets["ehr1"] = gw.add_principal("ehr1", "clinic.example.org")
    with gw:
        yield gw, secrets


def test_over_the_minute_limit_the_next_message_waits_and_is_not_stored(
    server: tuple[Phigate, dict[str, str]],
) -> None:
    gw, secrets = server
    within_one_window(60, 8)
    replies = [send(gw, "ehr1", secrets["ehr1"], [RECIPIENT]) for _ in range(6)]
    assert [code for code, _ in replies] == [250, 250, 250, 451, 451, 451]
    for _, text in replies[3:]:
        assert text.startswith("4.7.1 Rate limit reached: at most 3 messages per minute")
        assert 0 < retry_seconds(text) <= 60
    assert stored(gw, "ehr1") == 3
    # Which of the two processes took each connection is the kernel's choice, so both
    # may or may not have counted here; counts summed over writers that surely differ
    # are tested with two nodes (test_two_nodes_on_one_database_share_the_count).
    usage = gw.json("principal", "usage", "ehr1")
    assert usage["limits_from"] == "rate_limits.defaults"
    assert usage["limits"]["messages_per_minute"]["used"] == 3
    assert usage["limits"]["messages_per_minute"]["allowed"] == 3
    assert usage["limits"]["messages_per_hour"]["allowed"] == 5000  # the built-in default


def test_a_principals_override_applies(server: tuple[Phigate, dict[str, str]]) -> None:
    gw, secrets = server
    within_one_window(60, 8)
    codes = [send(gw, "bulk", secrets["bulk"], [RECIPIENT])[0] for _ in range(6)]
    assert codes == [250] * 5 + [451]
    assert stored(gw, "bulk") == 5


def test_a_relay_network_without_auth_has_its_own_limits(
    server: tuple[Phigate, dict[str, str]],
) -> None:
    gw, _ = server
    within_one_window(60, 8)
    replies = [send(gw, None, None, [RECIPIENT], sender="lis@lab.example.org") for _ in range(3)]
    assert [code for code, _ in replies] == [250, 250, 451]
    assert 'at most 2 messages per minute for network "lab"' in replies[2][1]


def test_recipients_per_message_are_refused_at_rcpt(server: tuple[Phigate, dict[str, str]]) -> None:
    gw, secrets = server
    client = gw.client("fanout", secrets["fanout"])
    try:
        client.mail(SENDER)
        replies = [client.rcpt(f"dr{n}@partner.test") for n in range(3)]
        assert [code for code, _ in replies] == [250, 250, 452]
        assert replies[2][1].decode() == (
            '4.5.3 Too many recipients (at most 2 per message for principal "fanout"); '
            "send the rest in another message"
        )
        assert client.data(message(SENDER, RECIPIENT, SUBJECT, "b"))[0] == 250
    finally:
        client.quit()


def test_an_hourly_breach_is_audited_once_without_addresses(
    server: tuple[Phigate, dict[str, str]],
) -> None:
    gw, secrets = server
    within_one_window(3600, 8)
    mark = audit_mark(gw)
    replies = [send(gw, "hourly", secrets["hourly"], [RECIPIENT]) for _ in range(5)]
    assert [code for code, _ in replies] == [250, 250, 451, 451, 451]
    assert "at most 2 messages per hour" in replies[2][1]
    assert retry_seconds(replies[2][1]) == pytest.approx(3600 - time.time() % 3600, abs=30)
    breaches = [e for e in audit_since(gw, mark) if e["event"] == "rate_limit"]
    assert len(breaches) == 1
    breach = breaches[0]
    assert breach["principal"] == "hourly" and breach["result"] == "exceeded"
    assert breach["detail"].startswith("messages_per_hour=2 hour from ")
    assert breach["sender"] is None and breach["recipients"] in (None, "", "[]")
    # No address, subject or body in the rate-limit events or the server's log.
    rate_events = [e for e in audit_since(gw, mark) if e["event"] in ("rate_limit", "refused")]
    for text in (gw.log_text(), repr(breaches), repr([e["detail"] for e in rate_events])):
        for canary in ("dr.canary", SUBJECT, "Canary body"):
            assert canary not in text


def test_settings_errors_name_the_key_and_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "phigate.yaml"
    config.write_text("rate_limits:\n  principals:\n    ehr:\n      messages_per_hour: 100\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(config)
    assert "principals.ehr: messages_per_minute (300) is more than messages_per_hour (100)" in str(
        raised.value
    )
    assert "Fix: raise the longer window's limit" in str(raised.value)
    config.write_text("rate_limits:\n  defaults:\n    messages_per_day: -5\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(config)
    assert "rate_limits.defaults.messages_per_day: must be at least 0" in str(raised.value)
    config.write_text("rate_limits:\n  networks:\n    lab: {messages_per_minute: 10}\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(config)
    assert "no relay network is called 'lab'" in str(raised.value)
    config.write_text("rate_limits:\n  tokens:\n    app:\n      messages_per_hour: 100\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(config)
    assert "tokens.app: messages_per_minute (300) is more than messages_per_hour" in str(
        raised.value
    )
    tokens = RateLimiter(RateLimitsConfig(tokens={"app": RateQuota(messages_per_minute=5)}))
    assert tokens.quota(RateKey("token", "app")).messages_per_minute == 5
    assert tokens.quota(RateKey("token", "other")) == RateQuota()
    # Its name is what the network is counted as: bounded, as the count's key is.
    config.write_text(
        f"relay_networks:\n  - name: {'x' * 101}\n    networks: [10.0.0.0/8]\n"
        "    domains: [lab.example.org]\n"
    )
    with pytest.raises(SettingsError) as raised:
        load_settings(config)
    assert "relay_networks[0].name: is longer than 100 characters" in str(raised.value)
    assert "Fix: shorten it to at most 100 characters" in str(raised.value)


def test_counts_start_again_when_the_window_ends(db: Database) -> None:
    """A clock moved by hand: the minute's limit passes at once when the next minute
    starts, as the refusal said, while the hour's count goes on."""
    quota = RateQuota(
        messages_per_minute=2, messages_per_hour=3, recipients_per_message=2, recipients_per_day=4
    )
    limiter = RateLimiter(RateLimitsConfig(defaults=quota))
    key = RateKey("principal", "ehr1")
    start = 1_800_000_000 + 10.5  # 10.5 s into a minute (and an hour)
    before = metrics.RATE_LIMITED.labels("messages_per_minute")._value.get()

    def charge(now: float, recipients: int = 1) -> Any:
        with db.transaction() as conn:
            charged = limiter.charge(conn, key, recipients, now)
        limiter.learn(charged)
        return charged.breach

    assert charge(start) is None and charge(start + 1) is None
    breach = charge(start + 2)
    assert breach.limit == "messages_per_minute" and breach.retry_after == math.ceil(47.5)
    limiter.clock = lambda: start + 3
    assert limiter.known(key, 0) == Breach(key, breach.limit, 2, breach.window_start, 47)
    assert charge(start + 2 + breach.retry_after) is None  # the next minute
    limiter.clock = lambda: start + 60
    assert limiter.known(key, 0) is not None  # the hour is used up now
    hour = charge(start + 61)
    assert hour.limit == "messages_per_hour" and hour.retry_after == 3600 - 71
    assert charge(start + 3600, recipients=2).limit == "recipients_per_day"
    with db.reading() as conn:
        rows = conn.execute(select(func.count()).select_from(rate_counts)).scalar_one()
    assert rows == 1  # the day's; the ended minutes' and hour's were removed
    assert window_start(start, 60) == 1_800_000_000
    after = metrics.RATE_LIMITED.labels("messages_per_minute")._value.get()
    assert after == before + 1  # `known` only answers; a refusal is counted where it is made


@pytest.fixture
def postgres_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    postgres_reachable()
    monkeypatch.setenv("PHIGATE_TEST_POSTGRES", POSTGRES)
    with fresh_database(tmp_path) as url:
        yield url


def test_two_nodes_on_one_database_share_the_count(tmp_path: Path, postgres_url: str) -> None:
    limits = {"defaults": {"messages_per_minute": 4}}
    nodes: list[Phigate] = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        if nodes:  # the second shares the first's keys, as nodes of one database must
            shutil.copytree(nodes[0].dir / "data" / "keys", tmp_path / name / "data" / "keys")
        nodes.append(
            Phigate(
                tmp_path / name, database_url=postgres_url, node={"name": name}, rate_limits=limits
            )
        )
    first, second = nodes
    secret = first.add_principal("ehr1", "clinic.example.org")
    with first, second:
        within_one_window(60, 8)
        codes = [send(gw, "ehr1", secret, [RECIPIENT])[0] for gw in (first, second) * 2]
        assert codes == [250] * 4
        refused = [send(gw, "ehr1", secret, [RECIPIENT]) for gw in (first, second)]
        assert [code for code, _ in refused] == [451, 451]
        assert all("at most 4 messages per minute" in text for _, text in refused)
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            count = conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one()
    finally:
        engine.dispose()
    assert count == 4


def test_a_batch_sees_its_own_messages_and_writes_them_once(db: Database) -> None:
    """Messages committed together (the writer's group commit) count each other before
    the COMMIT: the one past the limit is refused, the others written in one upsert."""
    limiter = RateLimiter(RateLimitsConfig(defaults=RateQuota(messages_per_minute=2)))
    key = RateKey("network", "lab")
    now = 1_800_000_000 + 5.0
    with db.transaction() as conn:
        breaches = [limiter.charge(conn, key, 2, now).breach for _ in range(3)]
    assert breaches[:2] == [None, None]
    assert breaches[2] is not None and breaches[2].limit == "messages_per_minute"
    assert 'for network "lab"' in breaches[2].text
    with db.reading() as conn:
        used = {u.limit: u.used for u in limiter.usage(conn, key, now)}
        rows = conn.execute(select(func.count()).select_from(rate_counts)).scalar_one()
    assert used["messages_per_minute"] == 2 and used["recipients_per_day"] == 4
    assert rows == 3  # one per window for this process
