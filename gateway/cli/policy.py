"""`phigate policy`: check, explain, test and reload the policy that decides how mail leaves."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.cli.common import (
    EXIT_USAGE,
    audit_admin,
    cli_actor,
    cli_settings,
    config_options,
    fail,
    open_store,
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
from gateway.policy.live import policy_directory
from gateway.policy.loader import PolicyError, load_policy, policy_json_schema, shipped_policy_dir
from gateway.runstate import ServerNotRunning, signal_server

if TYPE_CHECKING:
    from gateway.store.database import Database
    from gateway.store.nodes import PolicyState


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
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    help="Seconds to wait for every node to report (they check every node.heartbeat_seconds).",
)
@click.option("--json", "as_json", is_flag=True, help="Each process's result as JSON, for scripts.")
def policy_reload(
    config_file: str | None, data_dir: str | None, timeout: float, as_json: bool
) -> None:
    """Make every running node load its policy again, and report each one.

    The policy is validated here first: if it has problems they are printed
    and no node is disturbed. Then the reload is asked through the database,
    so every node sharing it loads its own policy directory (this machine's
    server at once, by SIGHUP; the others at their next heartbeat). A node
    swaps policies atomically; if its own load fails, it keeps the policy it
    runs and the error is shown.

    Every node must run the same policy: a node that loaded a version other
    than the one checked here has different files, and counts as failed.
    Exit status: 0 every process of every live node runs the checked
    version, 1 otherwise (or no node answered in time).

    \b
    Example:
      phigate policy reload -c /etc/phigate/phigate.yaml
      NODE  PID   POLICY            RESULT
      mx1   4121  6f1c2a9e0b7d4e11  reloaded
      mx2   3377  6f1c2a9e0b7d4e11  reloaded
      Reloaded policy version 6f1c2a9e0b7d4e11 on 2 nodes from /etc/phigate/policies.
    """
    from gateway.store import nodes

    settings = cli_settings(config_file, data_dir)
    directory = policy_directory(settings.policy_dir)
    expected = _load_policy(directory).version
    with open_store(settings) as db:
        with db.transaction() as conn:
            if not nodes.running_policies(conn, time.time()):
                fail(
                    "no running phigate found: no node sharing this database has beaten lately "
                    "(`phigate nodes ls` lists them); a node loads the policy when it starts"
                )
            asked = nodes.ask_reload(conn, cli_actor(), expected, time.time())
        # This machine's server reloads at once; the other nodes at their next beat.
        with contextlib.suppress(ServerNotRunning):
            signal_server(Path(settings.data_dir), signal.SIGHUP)
        states = _await_reload(db, asked, timeout)
    if not states:  # every node stopped meanwhile
        audit_admin(settings, "policy_reload", "timeout", f"version={expected}")
        fail("no running phigate found: the nodes stopped while the reload was asked")
    results = [(state, _reload_result(state, asked, expected)) for state in states]
    failed = [state for state, result in results if result != "reloaded"]
    node_count = len({state.node for state in states})
    audit_admin(
        settings,
        "policy_reload",
        "failed" if failed else "ok",
        f"version={expected} nodes={node_count} failed_processes={len(failed)}",
    )
    if as_json:
        print_json(
            [
                {
                    "node": state.node,
                    "pid": state.pid,
                    "version": state.version,
                    "result": result,
                    "error": state.error,
                }
                for state, result in results
            ]
        )
    else:
        _print_reload(results)
    if failed:
        fail(
            f"{len(failed)} of {len(states)} processes do not run policy version {expected}; "
            "a node whose reload failed keeps the policy it ran. Fix the files it names (or copy "
            f"this machine's {directory} to every node) and run `phigate policy reload` again"
        )
    if not as_json:
        nodes_word = "node" if node_count == 1 else "nodes"
        click.echo(
            f"Reloaded policy version {expected} on {node_count} {nodes_word} from {directory}."
        )


def _await_reload(db: Database, asked: int, timeout: float) -> list[PolicyState]:
    """The live processes' states once each has acted on reload `asked`, or as
    they stand when `timeout` runs out."""
    from gateway.store import nodes

    deadline = time.monotonic() + timeout
    while True:
        with db.reading() as conn:
            states = nodes.running_policies(conn, time.time())
        if states and all(state.reload_id >= asked for state in states):
            return states
        if time.monotonic() >= deadline:
            return states
        time.sleep(0.2)


def _reload_result(state: PolicyState, asked: int, expected: str) -> str:
    if state.reload_id < asked:
        return "no answer"
    if state.error is not None:
        return "failed"
    if state.version != expected:
        return "other version"
    return "reloaded"


def _print_reload(results: list[tuple[PolicyState, str]]) -> None:
    rows = [("NODE", "PID", "POLICY", "RESULT")] + [
        (state.node, str(state.pid), state.version, result) for state, result in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for error in sorted({state.error for state, _ in results if state.error}):
        click.echo(error, err=True)
