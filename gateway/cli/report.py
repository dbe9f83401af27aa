"""`phigate report`: a compliance report of the audit trail over a time range."""

from __future__ import annotations

import time
from pathlib import Path

import click

from gateway.audit import indexer
from gateway.audit.aggregates import Span, span_of
from gateway.audit.search import FilterError
from gateway.cli.common import cli_settings, config_options, fail, open_store
from gateway.reports import consumer
from gateway.reports.formats import RENDERERS
from gateway.reports.gather import report


def _span(since: str, until: str) -> Span:
    try:
        return span_of(since, until)
    except FilterError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("report")
@click.option(
    "--from",
    "since",
    required=True,
    metavar="WHEN",
    help="Start: a date (YYYY-MM-DD, UTC) or an ISO time.",
)
@click.option(
    "--to",
    "until",
    required=True,
    metavar="WHEN",
    help="End: a date (the whole day included) or an ISO time (excluded).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(RENDERERS)),
    default="text",
    show_default=True,
    help="text for reading, json for scripts, html to print or mail.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of standard output.",
)
@config_options
def report_command(
    since: str,
    until: str,
    fmt: str,
    as_json: bool,
    output: Path | None,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """A compliance report of the audit trail: metadata only.

    \b
    Sections: volume by principal and category; PHI messages by delivery
    mode; refusals by rule; deferrals and bounces by reason; TLS by recipient
    domain; consent suppressions and opt-outs; admin changes by actor; and
    anomalies with their evidence: a principal far above its own baseline
    (robust z-score), PHI to first-seen or personal mailbox domains, bursts
    of AUTH failures, policy changes. Thresholds: `reports.anomalies` in
    phigate.yaml (docs/reports.md).
    \b
    Examples:
      phigate report --from 2026-11-01 --to 2026-11-30
      phigate report --from 2026-11-01 --to 2026-11-30 --format html --output nov.html
      phigate report --from 2026-12-03T00:00 --to 2026-12-03T12:00 --format json
    """
    fmt = "json" if as_json else fmt
    span = _span(since, until)
    settings = cli_settings(config_file, data_dir)
    options = settings.reports
    try:
        domains = consumer.load(options.consumer_domains, Path(settings.data_dir))
    except consumer.DomainListError as exc:
        fail(str(exc))
    with open_store(settings) as db:
        indexer.catch_up(db)  # the events the server has not indexed yet count too
        with db.reading() as conn:
            made = report(conn, span, options.anomalies, domains, time.time())
    text = RENDERERS[fmt](made)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    click.echo(f"Report written to {output} ({len(made.anomalies)} anomalies).")
