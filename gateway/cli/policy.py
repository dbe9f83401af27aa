"""`phigate policy`: check, explain, test and reload the policy that decides how mail leaves."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from gateway.cli.common import (
    EXIT_USAGE,
    audit_admin,
    cli_settings,
    config_options,
    fail,
    policy_config_option,
    print_json,
    read_detector_cache,
)
from gateway.consent import NoConsentRecords
from gateway.inspect import inspect_message
from gateway.mail.addresses import AddressError, normalise
from gateway.mail.message import parse
from gateway.policy.cases import run_policy_tests
from gateway.policy.engine import CompiledPolicy, Outcome, PortalChoice
from gateway.policy.evaluate import evaluate
from gateway.policy.explain import explanation, explanation_text
from gateway.policy.facts import Envelope
from gateway.policy.live import policy_directory, read_statuses
from gateway.policy.loader import PolicyError, load_policy, policy_json_schema, shipped_policy_dir
from gateway.runstate import ServerNotRunning, signal_server


@click.group("policy")
def policy_group() -> None:
    """Check, explain, test and reload the policy that decides how mail leaves.

    \b
    The policy is the *.yaml files in policy_dir (phigate.yaml); without one,
    the shipped default. The language is described in docs/policy.md.
      phigate policy check DIR            validate and summarise
      phigate policy test DIR             run the test cases in DIR/tests/
      phigate policy explain MSG.eml --from A --to B    why this decision?
      phigate policy reload               make the running server load it
    """


def _policy_dir(directory: str | None, config_file: str | None) -> Path:
    if directory:
        return Path(directory)
    if config_file or os.environ.get("PHIGATE_CONFIG"):
        return policy_directory(cli_settings(config_file, None).policy_dir)
    return shipped_policy_dir()


def _load_policy(directory: Path) -> CompiledPolicy:
    try:
        return load_policy(directory)
    except PolicyError as exc:
        fail(f"the policy in {directory} is not valid:\n{exc}")
        raise


_DIR_HELP = "Default: policy_dir of the settings file, else the shipped default policy."


def _policy_summary(policy: CompiledPolicy) -> dict[str, Any]:
    def outcome(o: Outcome) -> dict[str, Any]:
        if o.action == "reject":
            return {"action": o.action, "reason": o.reason}
        shown: dict[str, Any] = {"action": o.action, "via": list(o.via), "subject": o.subject}
        if o.portal is not None:
            shown["portal"] = o.portal.as_dict()
        return shown if o.reason is None else {**shown, "reason": o.reason}

    return {
        "version": policy.version,
        "files": list(policy.files),
        "settings": {
            "category_header": policy.category_header,
            "neutral_subject": policy.neutral_subject,
            "timezone": policy.timezone,
        },
        "recipient_groups": {
            g.name: {
                "domains": len(g.domains.exact) + len(g.domains.suffixes),
                "addresses": len(g.addresses),
            }
            for g in policy.recipient_groups
        },
        "sender_groups": {
            g.name: {
                "principals": len(g.principals),
                "domains": len(g.domains.exact) + len(g.domains.suffixes),
                "addresses": len(g.addresses),
            }
            for g in policy.sender_groups
        },
        "categories": [{"rule": r.id, "category": r.category} for r in policy.category_rules],
        "rules": [{"rule": r.id, **outcome(r.outcome)} for r in policy.rules],
        "defaults": outcome(policy.defaults),
    }


@policy_group.command("check")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@policy_config_option
def policy_check(directory: str | None, as_json: bool, config_file: str | None) -> None:
    """Validate the policy in DIRECTORY and summarise it; exit 1 on any problem.

    Every problem is reported with file:line:column, what is wrong and how to
    fix it. DIRECTORY defaults to policy_dir of the settings file (-c), else
    the shipped default policy.
    """
    path = _policy_dir(directory, config_file)
    summary = _policy_summary(_load_policy(path))
    if as_json:
        print_json(summary)
        return
    click.echo(f"{path}: valid, version {summary['version']}")
    click.echo(f"Files: {', '.join(Path(f).name for f in summary['files'])}")
    for kind in ("recipient_groups", "sender_groups"):
        groups = summary[kind]
        listed = ", ".join(
            f"{name} ({', '.join(f'{n} {k}' for k, n in counts.items() if n)})"
            for name, counts in groups.items()
        )
        click.echo(f"{kind.replace('_', ' ').capitalize()}: {listed or 'none'}")
    click.echo("Categories (first match; otherwise unknown):")
    for rule in summary["categories"]:
        click.echo(f"  {rule['rule']} -> {rule['category']}")
    click.echo("Rules (per recipient, first match decides):")
    for rule in [*summary["rules"], {"rule": "(defaults)", **summary["defaults"]}]:
        if rule["action"] == "reject":
            what = f"reject: {rule['reason']}"
        else:
            what = f"deliver via {', '.join(rule['via'])}; subject {rule['subject']}"
            if "portal" in rule:
                what += f"; {PortalChoice(**rule['portal']).text()}"
            if rule["action"] == "hold":
                what = f"hold: {rule['reason']}; once released, {what}"
        click.echo(f"  {rule['rule']} -> {what}")


@policy_group.command("schema")
def policy_schema() -> None:
    """Print the JSON Schema of policy files, for editors to validate and complete.

    \b
    Save it, then point your editor at it, e.g. with the first line
      # yaml-language-server: $schema=./policy.schema.json
    """
    print_json(policy_json_schema())


@policy_group.command("explain")
@click.argument("message_file", metavar="MESSAGE.eml", type=click.Path(dir_okay=False, exists=True))
@click.option("--from", "sender", required=True, metavar="ADDR", help="Envelope sender.")
@click.option(
    "--to", "recipients", required=True, multiple=True, metavar="ADDR", help="Recipient (repeat)."
)
@click.option("--principal", metavar="NAME", help="As if sent by this authenticated principal.")
@click.option("--tls/--no-tls", default=True, show_default=True, help="Inbound session used TLS.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), help=_DIR_HELP)
@click.option("--json", "as_json", is_flag=True)
@policy_config_option
def policy_explain(
    message_file: str,
    sender: str,
    recipients: tuple[str, ...],
    principal: str | None,
    tls: bool,
    directory: str | None,
    as_json: bool,
    config_file: str | None,
) -> None:
    """Show how the policy decides for MESSAGE.eml, rule by rule, per recipient.

    Runs the server's own inspection and engine: findings (types and counts,
    never values), the category and the rule that set it, each recipient's
    consent, every rule considered with each condition's outcome, and the
    decision.
    """
    policy = _load_policy(_policy_dir(directory, config_file))
    content = Path(message_file).read_bytes()
    try:
        envelope = Envelope(
            "" if sender in ("", "<>") else normalise(sender),
            tuple(normalise(r) for r in recipients),
            principal,
            authenticated=principal is not None,
            inbound_tls=tls,
        )
    except AddressError as exc:
        fail(f"{exc} (write e.g. --from ehr@clinic.example --to dr@partner.example)", EXIT_USAGE)
        raise
    parsed = parse(content)
    settings = cli_settings(config_file, None)
    read_detector_cache(settings)
    findings = inspect_message(parsed.message, settings.inspection)
    evaluation = evaluate(
        policy, envelope, parsed.message, len(content), findings, time.time(), NoConsentRecords()
    )
    if as_json:
        print_json(explanation(policy, evaluation))
    else:
        click.echo(explanation_text(policy, evaluation))


@policy_group.command("test")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@policy_config_option
def policy_test(directory: str | None, config_file: str | None) -> None:
    """Run the test cases in DIRECTORY/tests/*.yaml against the policy in DIRECTORY.

    Each case gives an envelope, a message (file or inline) and the expected
    decision per recipient; failures print a diff of expected and actual.
    Exit status: 0 all passed, 1 a case failed, 2 a policy or case file is
    not valid.
    """
    sys.exit(run_policy_tests(_policy_dir(directory, config_file), click.echo))


@policy_group.command("reload")
@config_options
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the server.")
def policy_reload(config_file: str | None, data_dir: str | None, timeout: float) -> None:
    """Make the running server load the policy again (like SIGHUP), and report.

    The policy is validated here first: if it has problems they are printed
    and the server is not disturbed. The server swaps policies atomically; if
    its own load fails, it keeps the running policy and the error is shown.
    """
    settings = cli_settings(config_file, data_dir)
    directory = policy_directory(settings.policy_dir)
    expected = _load_policy(directory).version
    data = Path(settings.data_dir)
    asked = time.time()
    try:
        signal_server(data, signal.SIGHUP)
    except ServerNotRunning as exc:
        fail(str(exc))
    deadline = time.monotonic() + timeout
    statuses = []
    while time.monotonic() < deadline:
        statuses = read_statuses(data)
        if statuses and all(s.checked_at >= asked for s in statuses):
            break
        time.sleep(0.1)
    else:
        audit_admin(settings, "policy_reload", "timeout", f"version={expected}")
        fail(f"the server did not report back within {timeout:g} s; see its log")
    failed = [s for s in statuses if s.error is not None or s.version != expected]
    for status in statuses:
        click.echo(f"pid {status.pid}: policy version {status.version}")
    audit_admin(settings, "policy_reload", "failed" if failed else "ok", f"version={expected}")
    if failed:
        errors = "\n".join(sorted({s.error or "loaded another version" for s in failed}))
        fail(f"reload failed; the running policy stays in force:\n{errors}")
    click.echo(f"Reloaded policy version {expected} from {directory}.")
