"""`phigate inspect`: inspect message files for PHI exactly as the server does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gateway.cli.common import cli_settings, policy_config_option, read_detector_cache
from gateway.inspect.findings import Findings
from gateway.inspect.inspector import Inspector
from gateway.mail.message import parse


def _phi_verdict(findings: Findings) -> bool | str:
    if findings.phi:
        return True
    return "unscannable" if findings.unscannable else False


def _inspection_report(path: str, findings: Findings) -> dict[str, Any]:
    return {
        "file": path,
        "phi": _phi_verdict(findings),
        "findings": dict(sorted(findings.types.items())),
        "in_subject": findings.in_subject,
        "in_attachment": findings.in_attachment,
        "structured": findings.structured,
        "places": {place: dict(types) for place, types in sorted(findings.places.items())},
        "unscannable": dict(findings.unscannable_reasons),
        "attachment_types": sorted(findings.attachment_types),
    }


def _inspection_line(report: dict[str, Any]) -> str:
    verdict = {True: "PHI", False: "no PHI", "unscannable": "unscannable"}[report["phi"]]
    details = [", ".join(f"{k}={v}" for k, v in report["findings"].items())]
    if report["places"]:
        details.append("in " + ", ".join(report["places"]))
    if report["unscannable"]:
        details.append(
            "unscannable: " + ", ".join(f"{k}={v}" for k, v in report["unscannable"].items())
        )
    shown = "; ".join(d for d in details if d)
    return f"{report['file']}: {verdict}" + (f" ({shown})" if shown else "")


@click.command("inspect")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line per message.")
@policy_config_option
def inspect_command(files: tuple[str, ...], as_json: bool, config_file: str | None) -> None:
    """Inspect MESSAGE.eml files for PHI exactly as the server does.

    Prints, per message, whether it holds PHI (true, false or "unscannable"),
    the finding types with counts and where they are (subject, header,
    body[N], attachment[N]) — never the values. The `inspection:` settings
    of -c apply (organisation identifier patterns, budgets, the PHI rule).

    \b
      phigate inspect mail/*.eml
      phigate inspect --json mail/*.eml | jq 'select(.phi == false)'
    """
    settings = cli_settings(config_file, None)
    read_detector_cache(settings)
    inspector = Inspector(settings.inspection)
    try:
        for path in files:
            findings = inspector.inspect(parse(Path(path).read_bytes()).message)
            report = _inspection_report(path, findings)
            click.echo(json.dumps(report) if as_json else _inspection_line(report))
    finally:
        inspector.close()
