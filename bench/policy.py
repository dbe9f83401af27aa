"""Policy engine benchmark: decision time per recipient with a 100-rule policy.

    .venv/bin/python bench/policy.py               # 20 000 runs per case, about 20 s
    .venv/bin/python bench/policy.py --runs 2000   # a quick look
    .venv/bin/python bench/policy.py --profile     # where decide() spends its time

The policy is built in memory as YAML text and loaded with the real loader:
5 recipient groups of 20 domains, 2 sender groups, 6 category rules and 100
delivery rules mixing every kind of condition. The benchmark message matches
rule 98 of 100, so nearly every rule is evaluated for every recipient. Each
call is timed on its own (perf_counter_ns) and the table shows the median and
the 99th percentile. See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.consent import ConsentSource, NoConsentRecords
from gateway.inspect.findings import Findings
from gateway.policy.engine import CompiledPolicy, categorize, decide
from gateway.policy.evaluate import Considered, Evaluation
from gateway.policy.facts import Envelope, MessageFacts, message_facts
from gateway.policy.loader import load_policy_texts

RULES = 100
MATCHING_RULE = 97  # 0-based: rule-097 is the 98th of 100
GROUPS = 5
DOMAINS_PER_GROUP = 20
TARGET_MEDIAN_US = 50.0  # per recipient (bench/README.md)
# 2026-01-07 15:30 UTC: a Wednesday, 10:30 in New York, inside office hours.
NOW = 1767799800.0


def _group_domains(group: int) -> list[str]:
    # Every fifth domain a wildcard, as real partner lists have a few.
    return [
        f'"*.partner{group}-{n}.example"' if n % 5 == 4 else f"partner{group}-{n}.example"
        for n in range(DOMAINS_PER_GROUP)
    ]


def _rule(index: int) -> str:
    """One delivery rule; none of them matches the benchmark message but MATCHING_RULE."""
    rid = f"rule-{index:03d}"
    if index == MATCHING_RULE:
        return f"""
  - id: {rid}
    when:
      recipient_group: [group-3, group-4]
      category: treatment
      any_of:
        - phi: true
        - structured_payload: true
    action: deliver
    via: [tls, portal]
"""
    kind = index % 10
    other = index % 3  # group-0 .. group-2: the recipients are in group-3
    if kind == 0:
        when = "category: marketing\n      consent: opted_out"
        action = "action: reject\n    reason: Opted out"
    elif kind == 1:
        when = f"recipient_group: group-{other}\n      phi: true"
        action = "action: deliver\n    via: [smime, tls]"
    elif kind == 2:
        domains = ", ".join(f"d{index}-{n}.example" for n in range(20))
        when = f"recipient_domain: [{domains}]\n      phi_types: [ssn, mrn]"
        action = "action: deliver\n    via: [tls]"
    elif kind == 3:
        when = "sender_group: billing\n      phi_count: {at_least: 1}"
        action = "action: deliver\n    via: [portal]"
    elif kind == 4:
        when = (
            f"recipient_group: group-{other}\n      any_of:\n"
            "        - unscannable: true\n        - structured_payload: true"
        )
        action = "action: deliver\n    via: [portal]\n    subject: neutral"
    elif kind == 5:
        when = 'time_of_day: "22:00-06:00"\n      phi: true'
        action = "action: hold\n    reason: Night-time PHI"
    elif kind == 6:
        when = "size: {at_least: 10MB}"
        action = "action: deliver\n    via: [portal]"
    elif kind == 7:
        when = (
            f"weekdays: [sat, sun]\n      not:\n        recipient_domain: partner{other}-1.example"
        )
        action = "action: hold\n    reason: Weekend"
    elif kind == 8:
        addresses = ", ".join(f"user{n}@d{index}.example" for n in range(10))
        when = f"recipient: [{addresses}]\n      consent: granted"
        action = "action: deliver\n    via: [standard]"
    else:
        when = "header_present: [X-Campaign-Id]\n      attachment_types: [.zip, image/*]"
        action = "action: reject\n    reason: Campaign with attachments"
    return f"""
  - id: {rid}
    when:
      {when}
    {action}
"""


def policy_text() -> str:
    groups = "".join(
        f"  group-{g}:\n    domains: [{', '.join(_group_domains(g))}]\n"
        f"    addresses: [desk@clinic{g}.example]\n"
        for g in range(GROUPS)
    )
    billing = ", ".join(f"billing{n}.example" for n in range(20))
    return f"""version: 1
settings:
  timezone: America/New_York
defaults:
  action: deliver
  via: [tls, portal]
recipient_groups:
{groups}sender_groups:
  clinical:
    principals: [ehr, emr, lab]
  billing:
    principals: [billing]
    domains: [{billing}]
categories:
  - id: marked-marketing
    when: {{category_header: marketing}}
    category: marketing
  - id: bulk
    when: {{list_unsubscribe: true}}
    category: marketing
  - id: campaign-tool
    when: {{header_present: [X-Campaign-Id, X-Mailer-Campaign]}}
    category: marketing
  - id: billing
    when: {{sender_group: billing}}
    category: payment
  - id: clinical
    when: {{sender_group: clinical, phi: true}}
    category: treatment
  - id: everything-else
    category: operations
rules:{"".join(_rule(i) for i in range(RULES))}"""


def load_bench_policy() -> CompiledPolicy:
    policy = load_policy_texts([("bench-policy.yaml", policy_text())])
    assert len(policy.rules) == RULES and len(policy.recipient_groups) == GROUPS
    return policy


def recipients(count: int) -> tuple[str, ...]:
    # In group-3 (by exact domain or by a wildcard), so group-0..2 rules fail per recipient.
    domains = _group_domains(3)
    out = []
    for n in range(count):
        domain = domains[n % DOMAINS_PER_GROUP].strip('"')
        domain = domain.replace("*", f"mail{n}")
        out.append(f"dr{n}@{domain}")
    return tuple(out)


def bench_facts(policy: CompiledPolicy, envelope: Envelope) -> MessageFacts:
    findings = Findings(phi=True, types={"ssn": 1, "mrn": 2, "name": 1})
    headers = frozenset({"from", "to", "subject", "date", "message-id", "mime-version"})
    return message_facts(envelope, "", headers, None, 40_000, findings, NOW, policy.timezone)


@dataclass
class Result:
    what: str
    recipients: int
    runs: int
    median_us: float  # per call
    p99_us: float  # per call

    @property
    def per_recipient(self) -> tuple[float, float]:
        return self.median_us / self.recipients, self.p99_us / self.recipients


def measure(what: str, count: int, runs: int, call: Callable[[], object]) -> Result:
    for _ in range(min(1000, runs)):  # warm up caches and the allocator
        call()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        start = clock()
        call()
        samples.append(clock() - start)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return Result(what, count, runs, statistics.median(samples) / 1000, p99 / 1000)


def categorize_and_decide(
    policy: CompiledPolicy, envelope: Envelope, facts: MessageFacts, consent: ConsentSource
) -> Evaluation:
    """The pipeline's steps on ready facts: categorize, fetch consent, decide."""
    category, category_rule = categorize(policy, facts)
    considered = Considered(policy, envelope, facts, category, category_rule, category)
    return considered.decide_from(consent)


def run(runs: int) -> list[Result]:
    policy = load_bench_policy()
    consent = NoConsentRecords()
    results = []
    for count in (1, 10):
        envelope = Envelope("results@hospital.example", recipients(count), "ehr", True, True)
        facts = bench_facts(policy, envelope)
        category, category_rule = categorize(policy, facts)
        assert (category, category_rule) == ("treatment", "clinical"), category
        decisions = decide(policy, facts, category, {}, envelope.recipients)
        # The benchmark means something only if the late rule decides for everyone.
        assert all(d.rule == f"rule-{MATCHING_RULE:03d}" for d in decisions), decisions
        no_records: dict[str, str] = {}
        results.append(
            measure(
                "decide",
                count,
                runs,
                partial(decide, policy, facts, category, no_records, envelope.recipients),
            )
        )
        results.append(
            measure(
                "evaluate (categorize + decide)",
                count,
                runs,
                partial(categorize_and_decide, policy, envelope, facts, consent),
            )
        )
    return results


def table(results: Sequence[Result]) -> str:
    lines = [
        "| what | recipients | runs | median µs/call | p99 µs/call "
        "| median µs/recipient | p99 µs/recipient |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        median, p99 = r.per_recipient
        lines.append(
            f"| {r.what} | {r.recipients} | {r.runs} | {r.median_us:.1f} | {r.p99_us:.1f} "
            f"| {median:.1f} | {p99:.1f} |"
        )
    return "\n".join(lines)


def profile(runs: int) -> None:
    policy = load_bench_policy()
    envelope = Envelope("results@hospital.example", recipients(1), "ehr", True, True)
    facts = bench_facts(policy, envelope)
    category, _ = categorize(policy, facts)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        decide(policy, facts, category, {}, envelope.recipients)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000, help="timed calls per case")
    parser.add_argument("--profile", action="store_true", help="cProfile decide() instead")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 10_000_000:
        parser.error("--runs must be between 1 and 10000000")
    if args.profile:
        profile(args.runs)
        return 0
    policy = load_bench_policy()
    print(
        f"Policy: {RULES} delivery rules, {len(policy.category_rules)} category rules, "
        f"{GROUPS} recipient groups of {DOMAINS_PER_GROUP} domains; "
        f"rule {MATCHING_RULE + 1} of {RULES} decides. Python {sys.version.split()[0]}."
    )
    gc.collect()
    results = run(args.runs)
    print(table(results))
    worst = max(r.per_recipient[0] for r in results if r.what == "decide")
    verdict = "met" if worst < TARGET_MEDIAN_US else "NOT met"
    print(
        f"Target: decide() median under {TARGET_MEDIAN_US:.0f} µs per recipient: {verdict} "
        f"(worst {worst:.1f} µs)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
