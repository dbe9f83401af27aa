"""Compliance reports on a real store (SQLite, and PostgreSQL when named): each
section's numbers on a seeded trail of known events, each anomaly (and a normal
day that is not one), `phigate report` in every format, and canaries (local
parts, remote replies, login names) never in any output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from report_trail import CANARIES, CANARY_LOCAL, CANARY_REPLY, DAY, REPORT_DAY, seeded
from stores import cli_store

from gateway.audit import indexer, trail
from gateway.audit.aggregates import AdminEvent, Span
from gateway.cli import main
from gateway.config import AnomalyConfig, ConsumerDomainsConfig, VolumeAnomalyConfig
from gateway.reports import anomalies, consumer, render_html, render_json, render_text
from gateway.reports.gather import report
from gateway.reports.model import Anomaly, Report
from gateway.reports.statuses import meaning
from gateway.reports.tables import totals
from gateway.store.database import Database

OPTIONS = AnomalyConfig()
CONSUMER = consumer.load(ConsumerDomainsConfig(), Path("."))


@pytest.fixture
def seeded_db(db: Database) -> Database:
    with db.transaction() as conn:
        trail.append(conn, seeded())
    indexer.catch_up(db)  # as every caller of report() does first
    return db


@pytest.fixture
def made(seeded_db: Database) -> Report:
    with seeded_db.reading() as conn:
        return report(conn, Span(REPORT_DAY, REPORT_DAY + DAY), OPTIONS, CONSUMER, REPORT_DAY + DAY)


def test_volume_by_principal_and_category(made: Report) -> None:
    rows = {v.principal: v for v in made.volume}
    assert made.categories == ["treatment", "payment", "marketing"]
    assert rows["ehr1"].messages == 100 + 2  # the two held are accepted too
    assert rows["ehr1"].recipients_by_category == {"treatment": 105, "payment": 0, "marketing": 0}
    assert rows["billing"].messages == 21
    assert rows["billing"].recipients_by_category["payment"] == 21
    assert rows["crm"].messages == 1 and rows["crm"].recipients_by_category["marketing"] == 3
    assert [d.messages for d in made.daily] == [124]


def test_phi_by_mode_refusals_and_failures(made: Report) -> None:
    by_mode = {m.mode: m for m in made.phi_by_mode}
    assert set(by_mode) == {"tls", "portal"}  # billing's mail had no PHI
    assert (by_mode["tls"].delivered, by_mode["tls"].deferred) == (95, 3)
    assert by_mode["portal"].delivered == 2
    assert [(r.rule, r.action, r.recipients) for r in made.refusals_by_rule] == [
        ("block-consumer", "reject", 3),
        ("hold-large", "hold", 2),
        ("marketing-needs-consent", "reject", 2),
    ]
    assert [(s.stage, s.code, s.count) for s in made.smtp_refusals] == [
        ("rcpt", 550, 3),
        ("protocol", 500, 1),
    ]
    failures = {(f.event, f.status, f.code): (f.count, f.meaning) for f in made.failures}
    assert failures == {
        ("deferred", "4.4.1", 451): (2, "no answer from host"),
        ("deferred", "4.7.5", None): (1, meaning("4.7.5")),
        ("bounced", "5.1.1", 550): (1, "bad destination mailbox address"),
        ("bounced", "5.7.1", 550): (1, "delivery not authorized, message refused"),
    }


def test_tls_by_domain(made: Report) -> None:
    tls = {t.domain: t for t in made.tls}
    assert "gmail.com" not in tls  # portal pickup opens no session to a next hop
    p = tls["partner.example"]
    assert (p.attempts, p.verified, p.dane, p.unverified, p.no_tls, p.failures) == (
        97 + 21,
        95,
        5,
        21,
        2,
        0,
    )
    n = tls["newclinic.example"]
    assert (n.attempts, n.verified, n.no_tls, n.failures) == (1, 0, 1, 1)


def test_consent_suppressions_and_opt_outs(made: Report) -> None:
    c = made.consent
    assert [(x.what, x.count) for x in c.refused_at_intake] == [
        ("refused by policy, consent opted_out", 2)
    ]
    assert (c.stopped_at_delivery, c.waited_at_delivery) == (1, 0)
    assert [(x.what, x.count) for x in c.registry] == [
        ("opted_out marketing via unsubscribe", 3),
        ("granted marketing via ehr", 1),
    ]
    assert [(a.event, a.result, a.actor, a.count) for a in made.changes] == [
        ("policy_reload", "ok", "cli:alice", 1),
        ("principal", "disabled", "cli:bob", 1),
    ]


def _anomalies(made: Report, kind: str) -> dict[str, dict[str, object]]:
    return {a.subject: a.evidence for a in made.anomalies if a.kind == kind}


def test_volume_anomaly_fires_for_a_tenfold_day_not_a_normal_one(made: Report) -> None:
    volume = _anomalies(made, "volume")
    assert set(volume) == {"ehr1"}  # billing's 21 is within its own baseline
    evidence = volume["ehr1"]
    assert evidence["messages"] == 102 and evidence["baseline_median"] == 10
    assert evidence["baseline_active_days"] == 28 and evidence["threshold"] == 3.5
    assert float(str(evidence["robust_z"])) > 50


def test_robust_z_by_hand() -> None:
    baseline = [9, 10, 11] * 9 + [10]
    z, median, mad = anomalies.robust_z(100, baseline)
    assert (median, mad) == (10, 1) and z == pytest.approx(90 / 1.4826)
    assert anomalies.robust_z(12, baseline)[0] < 3.5
    # A baseline that never varies: the spread is at least one message.
    assert anomalies.robust_z(14, [10] * 28) == (4.0, 10, 0)
    options = VolumeAnomalyConfig()
    counts = {"a": {d: 10 for d in range(28)} | {28: 100}, "new": {27: 5, 28: 500}}
    found = anomalies.volume(counts, [28], options)
    assert [a.subject for a in found] == ["a"]  # "new" has too little history to judge


def test_first_seen_and_consumer_domains(made: Report) -> None:
    new = _anomalies(made, "new_domain")
    assert set(new) == {"gmail.com", "newclinic.example"}  # partner.example was seen before
    assert new["gmail.com"]["phi_messages"] == 2 and new["gmail.com"]["principals"] == ["ehr1"]
    # The trail is younger than the 90 days looked back: the evidence says how far it went.
    assert new["gmail.com"]["looked_back_to"] == "2026-11-02T01:00:00Z"
    # yahoo.com is on the list, but its PHI was refused: nothing went there.
    assert set(_anomalies(made, "consumer_domain")) == {"gmail.com"}


def test_auth_burst_counts_logins_without_naming_them(made: Report) -> None:
    bursts = _anomalies(made, "auth_burst")
    assert set(bursts) == {"203.0.113.9"}  # three failures from the other are no burst
    b = bursts["203.0.113.9"]
    assert (b["failures"], b["distinct_logins"], b["lockouts"]) == (12, 4, 1)


def test_policy_change_names_who_made_it(made: Report) -> None:
    changes = [a for a in made.anomalies if a.kind == "policy_change"]
    assert len(changes) == 1
    assert changes[0].subject == "v2"
    assert changes[0].evidence["actor"] == "cli:alice"
    assert changes[0].evidence["previous_version"] == "v1"


def test_renderers_hold_no_canary(made: Report) -> None:
    outputs = [render_text.render(made), render_json.render(made), render_html.render(made)]
    for output in outputs:
        for canary in CANARIES:
            assert canary not in output.lower()
        assert "@" not in output.replace("@media", "").replace("@page", "")
    data = json.loads(outputs[1])
    assert data["since"] == "2026-11-30T00:00:00Z" and len(data["anomalies"]) == 6
    assert "robust z-score" in data["methods"]["volume"]
    assert "ehr1 accepted 102 messages on 2026-11-30" in outputs[0]


def test_key_figures_on_top(made: Report) -> None:
    assert dict(totals(made)) == {
        "messages accepted": "124",
        "PHI recipients delivered": "97",
        "recipients refused by policy": "5",
        "bounces": "2",
        "attempts over verified TLS": "95 of 119 (80%)",
        "anomalies": "6",
    }
    assert "  attempts over verified TLS: 95 of 119 (80%)" in render_text.render(made)


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Iterator[Path]:
    with cli_store(tmp_path, database_url) as (config, _settings, db):
        with db.transaction() as conn:
            trail.append(conn, seeded())
        yield config


def test_cli_writes_each_format(cli: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["report", "-c", str(cli), "--from", "2026-11-30", "--to", "2026-11-30"]
    text = runner.invoke(main, base)
    assert text.exit_code == 0, text.output
    assert "Anomalies (6)" in text.output and "[auth_burst]" in text.output
    out = tmp_path / "r.html"
    html = runner.invoke(main, [*base, "--format", "html", "--output", str(out)])
    assert html.exit_code == 0 and "6 anomalies" in html.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    as_json = runner.invoke(main, [*base, "--json"])
    assert json.loads(as_json.output)["volume"][0]["principal"] == "ehr1"
    for output in (text.output, as_json.output, out.read_text()):
        assert CANARY_LOCAL not in output and CANARY_REPLY not in output


def test_cli_explains_bad_input(cli: Path) -> None:
    runner = CliRunner()
    swapped = runner.invoke(
        main, ["report", "-c", str(cli), "--from", "2026-12-01", "--to", "2026-11-01"]
    )
    assert swapped.exit_code == 2 and "swap them" in swapped.output
    bad = runner.invoke(
        main, ["report", "-c", str(cli), "--from", "yesterday", "--to", "2026-11-01"]
    )
    assert bad.exit_code == 2 and "is not a date or time" in bad.output
    assert "Traceback" not in bad.output + swapped.output


def test_consumer_list_is_editable(tmp_path: Path) -> None:
    assert {"gmail.com", "yahoo.com", "outlook.com", "icloud.com"} <= CONSUMER
    own = tmp_path / "mine.txt"
    own.write_text("# ours\nexample-mail.test  # a comment\n")
    replaced = consumer.load(ConsumerDomainsConfig(file=str(own), add=["Other.Example"]), tmp_path)
    assert replaced == {"example-mail.test", "other.example"}
    own.write_text("ok.example\nnot a domain\n")
    with pytest.raises(consumer.DomainListError, match=r"mine.txt, line 2: 'not a domain'"):
        consumer.load(ConsumerDomainsConfig(file="mine.txt"), tmp_path)


def test_a_range_starting_mid_day_counts_only_its_own_mail(seeded_db: Database) -> None:
    with seeded_db.reading() as conn:
        made = report(conn, Span(REPORT_DAY + 2000, REPORT_DAY + DAY), OPTIONS, CONSUMER)
    rows = {v.principal: v.messages for v in made.volume}
    assert rows == {"ehr1": 2, "billing": 21, "crm": 1}  # ehr1's hundred came before
    assert [d.messages for d in made.daily] == [24]


def test_text_and_html_show_fifty_anomalies_of_a_kind(made: Report) -> None:
    many = [Anomaly("new_domain", f"d{n}.example", f"PHI for d{n}.example", {}) for n in range(60)]
    crowded = replace(made, anomalies=[*made.anomalies, *many])
    for output in (render_text.render(crowded), render_html.render(crowded)):
        assert "d47.example" in output and "d48.example" not in output  # 2 came before
        assert "12 more new_domain (the JSON report lists all)" in output  # 62 in all
    assert "d59.example" in render_json.render(crowded)


def test_policy_change_without_a_reload_and_a_failed_reload() -> None:
    reloads = [AdminEvent(100.0, "policy_reload", "failed", "cli:eve", "version=v3")]
    seen = [anomalies.VersionSeen("v1", 50.0, 3), anomalies.VersionSeen("v2", 200.0, 5)]
    found = anomalies.policy_changes("v1", seen, reloads)
    assert [(a.subject, a.evidence["actor"]) for a in found] == [("v3", "cli:eve"), ("v2", None)]
    assert found[0].evidence["result"] == "failed"
    assert "no reload recorded" in found[1].summary
    assert found[1].evidence["previous_version"] == "v1"
