"""A report's sections as titled tables: what the text and HTML renderers both lay out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.reports.model import Report

Cell = str | int | float | None


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: Sequence[Sequence[Cell]]
    limit: int = 25  # rows shown; JSON carries them all


@dataclass(frozen=True)
class Section:
    key: str  # an id for links and tests
    title: str
    tables: list[Table] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # sentences after the tables


def totals(report: Report) -> list[tuple[str, str]]:
    """The key figures of the range, for the top of a report."""
    attempts = sum(t.attempts for t in report.tls)
    verified = sum(t.verified for t in report.tls)
    share = f"{verified} of {attempts} ({verified / attempts:.0%})" if attempts else "no attempts"
    refused = sum(r.recipients for r in report.refusals_by_rule if r.action == "reject")
    return [
        ("messages accepted", str(sum(v.messages for v in report.volume))),
        ("PHI recipients delivered", str(sum(m.delivered for m in report.phi_by_mode))),
        ("recipients refused by policy", str(refused)),
        ("bounces", str(sum(f.count for f in report.failures if f.event == "bounced"))),
        ("attempts over verified TLS", share),
        ("anomalies", str(len(report.anomalies))),
    ]


def sections(report: Report) -> list[Section]:
    """Every section but the anomalies, in the report's order."""
    c = report.consent
    return [
        Section(
            "volume",
            "Volume by principal and category",
            [
                Table(
                    ("principal", "messages", *report.categories),
                    [
                        [
                            v.principal,
                            v.messages,
                            *(v.recipients_by_category[k] for k in report.categories),
                        ]
                        for v in report.volume
                    ],
                )
            ],
            ["messages: accepted; each category: recipients decided (refused ones too)"],
        ),
        Section(
            "daily",
            "Messages accepted per day (UTC)",
            [Table(("day", "messages"), [[d.day, d.messages] for d in report.daily], limit=400)],
        ),
        Section(
            "phi_modes",
            "PHI messages by delivery mode",
            [
                Table(
                    ("mode", "delivered", "deferred", "bounced"),
                    [[m.mode, m.delivered, m.deferred, m.bounced] for m in report.phi_by_mode],
                )
            ],
            ["counted per recipient and attempt: a deferred recipient may be delivered later"],
        ),
        Section(
            "refusals",
            "Refusals by rule",
            [
                Table(
                    ("rule", "action", "recipients"),
                    [[r.rule, r.action, r.recipients] for r in report.refusals_by_rule],
                ),
                Table(
                    ("SMTP stage", "code", "refusals"),
                    [[s.stage, s.code, s.count] for s in report.smtp_refusals],
                ),
            ],
        ),
        Section(
            "failures",
            "Deferrals and bounces by reason",
            [
                Table(
                    ("event", "status", "code", "meaning", "count"),
                    [[f.event, f.status, f.code, f.meaning, f.count] for f in report.failures],
                )
            ],
            ["reasons by enhanced status code (RFC 3463), never the remote server's text"],
        ),
        Section(
            "tls",
            "TLS by recipient domain",
            [
                Table(
                    (
                        "domain",
                        "attempts",
                        "verified",
                        "DANE",
                        "MTA-STS",
                        "unverified",
                        "no TLS",
                        "failures",
                    ),
                    [
                        [
                            t.domain,
                            t.attempts,
                            t.verified,
                            t.dane,
                            t.mta_sts,
                            t.unverified,
                            t.no_tls,
                            t.failures,
                        ]
                        for t in report.tls
                    ],
                )
            ],
            [
                "attempts through a next hop; verified: PKIX, MTA-STS, DANE or a pinned "
                "certificate; failures: required TLS could not be had (4.7.5)"
            ],
        ),
        Section(
            "consent",
            "Consent suppressions and opt-outs",
            [
                Table(
                    ("suppressed", "recipients"), [[x.what, x.count] for x in c.refused_at_intake]
                ),
                Table(("registry change", "count"), [[x.what, x.count] for x in c.registry]),
            ],
            [
                f"marketing not sent, consent withdrawn while queued: {c.stopped_at_delivery}",
                f"marketing waiting, consent could not be read: {c.waited_at_delivery}",
            ],
        ),
        Section(
            "changes",
            "Admin changes by actor",
            [
                Table(
                    ("event", "result", "actor", "count"),
                    [[a.event, a.result, a.actor, a.count] for a in report.changes],
                )
            ],
        ),
    ]
