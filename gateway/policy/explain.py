"""Explanations of a decision for `phigate policy explain`: text for people, dicts for scripts.

Findings appear as types and counts only; the message itself (subject,
body, header values) never does.
"""

from __future__ import annotations

from typing import Any

from gateway.mail.addresses import domain_of
from gateway.policy.engine import (
    CompiledPolicy,
    Decision,
    RuleTrace,
    TestTrace,
    explain_category,
    explain_recipient,
)
from gateway.policy.evaluate import Evaluation


def explanation(policy: CompiledPolicy, evaluation: Evaluation) -> dict[str, Any]:
    facts = evaluation.facts
    findings = facts.findings
    return {
        "policy": {"version": policy.version, "files": list(policy.files)},
        "findings": {
            "phi": findings.phi,
            "types": dict(sorted(findings.types.items())),
            "count": findings.count,
            "in_subject": findings.in_subject,
            "in_attachment": findings.in_attachment,
            "structured": findings.structured,
            "unscannable": findings.unscannable,
            "attachment_types": sorted(findings.attachment_types),
        },
        "category": {
            "category": evaluation.category,
            "rule": evaluation.category_rule,
            "rules": [t.as_dict() for t in explain_category(policy, facts)],
        },
        "recipients": [
            {
                "recipient": d.recipient,
                "consent": d.consent,
                "decision": _decision(d),
                "transport": _transport(policy, d.recipient),
                "rules": [
                    t.as_dict()
                    for t in explain_recipient(
                        policy, facts, evaluation.category, d.recipient, d.consent
                    )
                ],
            }
            for d in evaluation.decisions
        ],
    }


def _transport(policy: CompiledPolicy, recipient: str) -> str | None:
    """The policy's transport demand for the recipient's domain, in words."""
    rule = policy.transport_for(domain_of(recipient))
    if rule is None:
        return None
    if rule.require == "pin":
        return f"only certificates with SHA-256 {', '.join(sorted(rule.pins))}"
    return {"dane": "DANE-authenticated TLS only", "verified": "CA-verified TLS"}[rule.require]


def _decision(decision: Decision) -> dict[str, Any]:
    out: dict[str, Any] = {"action": decision.action, "rule": decision.rule or "defaults"}
    if decision.reason is not None:
        out["reason"] = decision.reason
    if decision.action != "reject":
        out["via"] = list(decision.via)
        out["subject"] = "neutral" if decision.neutral_subject is not None else "keep"
        if decision.add_headers:
            out["add_headers"] = dict(decision.add_headers)
        if decision.portal is not None:
            out["portal"] = decision.portal.as_dict()
    return out


def _condition_lines(trace: TestTrace, indent: str) -> list[str]:
    mark = "yes" if trace.held else "no "
    if trace.children:
        lines = [f"{indent}[{mark}] {trace.key}: {trace.wanted}"]
        for child in trace.children:
            lines += _condition_lines(child, indent + "      ")
        return lines
    return [f"{indent}[{mark}] {trace.key}: wanted {trace.wanted}, found {trace.actual}"]


def _rule_lines(traces: list[RuleTrace]) -> list[str]:
    lines = []
    for number, trace in enumerate(traces, start=1):
        label = {"matched": "MATCHED", "not matched": "no match", "not reached": "not reached"}
        lines.append(f"    {number}. {trace.rule}: {label[trace.result]}")
        if trace.result != "not reached" and not trace.tests:
            lines.append("         (no conditions: always matches)")
        for test in trace.tests:
            lines += _condition_lines(test, "         ")
    return lines


def explanation_text(policy: CompiledPolicy, evaluation: Evaluation) -> str:
    facts = evaluation.facts
    findings = facts.findings
    types = ", ".join(f"{k}={v}" for k, v in sorted(findings.types.items())) or "none"
    yes = {True: "yes", False: "no"}
    lines = [
        f"Policy:    version {policy.version} ({len(policy.rules)} rules; "
        f"{', '.join(policy.files)})",
        f"Findings:  PHI {yes[findings.phi]}; types: {types}",
        f"           in subject {yes[findings.in_subject]}, in attachment "
        f"{yes[findings.in_attachment]}, structured payload {yes[findings.structured]}, "
        f"unscannable {yes[findings.unscannable]}",
        f"           attachments: {', '.join(sorted(findings.attachment_types)) or 'none'}",
        f"Category:  {evaluation.category} "
        + (
            f"(rule {evaluation.category_rule})"
            if evaluation.category_rule
            else "(no category rule matched)"
        ),
    ]
    lines += _rule_lines(explain_category(policy, facts))
    lines.append(
        "Rules are tried in order; the first whose conditions all hold decides. "
        "None holding: defaults."
    )
    for decision in evaluation.decisions:
        lines.append("")
        lines.append(f"Recipient {decision.recipient} (consent: {decision.consent})")
        lines += _rule_lines(
            explain_recipient(
                policy, facts, evaluation.category, decision.recipient, decision.consent
            )
        )
        lines.append(f"  Decision: {_decision_text(decision)}")
        transport = _transport(policy, decision.recipient)
        if transport is not None:
            lines.append(f"  Transport: {transport} (policy transport rule)")
    return "\n".join(lines)


def _decision_text(decision: Decision) -> str:
    who = f"rule {decision.rule}" if decision.rule else "defaults (no rule matched)"
    if decision.action == "reject":
        return f'reject: "{decision.reason}" ({who})'
    text = f"deliver via {' then '.join(decision.via)}"
    if decision.action == "hold":
        text = f'hold: "{decision.reason}"; once released, {text}'
    if decision.neutral_subject is not None:
        text += f', subject replaced by "{decision.neutral_subject}"'
    if decision.add_headers:
        text += ", adding " + ", ".join(f"{n}: {v}" for n, v in decision.add_headers)
    if decision.portal is not None:
        text += f"; {decision.portal.text()}"
    return f"{text} ({who})"
