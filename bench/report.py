"""Report benchmark: how long `phigate report` takes over a month of 1,000,000 audit events.

    .venv/bin/python bench/report.py                        # 1,000,000 events, 3 runs each
    .venv/bin/python bench/report.py --events 100000 --runs 2   # a quick look

It builds the synthetic trail of bench/audit_search.py (30 days; its
generator and bulk loader, reused) in a fresh SQLite store, then times the
report the way `phigate report` makes it (gateway.reports.gather.report:
every aggregate query, then the pure build with its anomalies) over the
whole month, and over one day (what the daily mail reads), and the three
renderers on the month's report. It prints the median and the slowest run
of each, and the time of each aggregate query once, so a slow one is seen.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from audit_search import DAYS, START, build

from gateway.audit import aggregates as agg
from gateway.config import AnomalyConfig, ConsumerDomainsConfig
from gateway.reports import consumer
from gateway.reports.formats import RENDERERS
from gateway.reports.gather import read, report
from gateway.store.database import Database

DAY = 86400.0


def _timed(fn: Callable[[], object], runs: int) -> tuple[float, float, object]:
    times = []
    result: object = None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times), result


def _queries(db: Database, span: agg.Span, options: AnomalyConfig) -> None:
    """Each aggregate of the month once: which query costs what."""
    baseline = agg.Span(span.since - options.volume.baseline_days * DAY, span.since)
    lookback = span.since - options.new_domain_lookback_days * DAY
    with db.reading() as conn:
        domains = sorted({row.domain for row in agg.phi_domains(conn, span)})
        for name, fn in (
            ("decision groups", lambda: agg.decision_groups(conn, span)),
            ("accepted per day", lambda: agg.accepted_per_day(conn, span)),
            ("... baseline before", lambda: agg.accepted_per_day(conn, baseline)),
            ("attempts (+ PHI)", lambda: agg.attempts(conn, span)),
            ("TLS by domain", lambda: agg.tls_by_domain(conn, span)),
            ("PHI domains", lambda: agg.phi_domains(conn, span)),
            ("AUTH failures", lambda: agg.auth_failures(conn, span)),
            ("SMTP refusals", lambda: agg.smtp_refusals(conn, span)),
            (
                "PHI domains seen before",
                lambda: list(agg.domains_seen(conn, domains, lookback, span.since)),
            ),
            ("changes by actor", lambda: agg.changes_by_actor(conn, span, "consent_")),
        ):
            took, _, rows = _timed(fn, 1)
            count = len(rows) if isinstance(rows, list) else 0
            print(f"  {name:<20} {took * 1000:>8.0f} ms  {count:>7} rows")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each report")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    options = AnomalyConfig()
    domains = consumer.load(ConsumerDomainsConfig(), Path("."))
    month = agg.Span(START, START + DAYS * DAY)
    last_day = agg.Span(START + (DAYS - 1) * DAY, START + DAYS * DAY)
    with tempfile.TemporaryDirectory(prefix="phigate-report-bench-") as tmp:
        db, took = build(f"sqlite:///{Path(tmp) / 'bench.db'}", args.events, args.seed)
        try:
            print(f"{args.events:,} events over {DAYS} days written and indexed in {took:.1f} s")
            print("aggregates of the month, once:")
            _queries(db, month, options)
            print(f"{'report':<34} {'median':>8} {'slowest':>8}")
            spans = (("month (gather + build)", month), ("one day (daily mail)", last_day))
            for name, span in spans:
                with db.reading() as conn:
                    median, slowest, made = _timed(
                        lambda conn=conn, span=span: report(conn, span, options, domains), args.runs
                    )
                print(f"{name:<34} {median:>7.2f}s {slowest:>7.2f}s")
            with db.reading() as conn:
                data = read(conn, month, options)
                made = report(conn, month, options, domains)
            print(
                f"  month: {len(data.decisions)} decision groups, {len(made.tls)} domains, "
                f"{len(made.anomalies)} anomalies"
            )
            for fmt, render in sorted(RENDERERS.items()):
                median, slowest, text = _timed(lambda render=render: render(made), args.runs)
                size = len(str(text)) / 1000
                print(f"render {fmt:<27} {median:>7.3f}s {slowest:>7.3f}s  {size:.0f} kB")
        finally:
            db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
