"""The `phigate` command: a thin layer over the parts, `phigate <noun> <verb>`."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from gateway import app
from gateway.audit import trail
from gateway.audit.cli import audit_group
from gateway.audit.trail import AuditEvent
from gateway.certs.cli import certs_group
from gateway.cli_common import (
    EXIT_USAGE,
    F,
    cli_settings,
    config_options,
    fail,
    open_keyring,
    open_store,
    print_json,
    when,
)
from gateway.consent import NoConsentRecords
from gateway.consent.cli import consent_group
from gateway.dkim.cli import dkim_group
from gateway.inspect import inspect_message
from gateway.inspect.findings import Findings
from gateway.inspect.inspector import Inspector
from gateway.intake import parse
from gateway.policy.cases import run_policy_tests
from gateway.policy.engine import CompiledPolicy, Outcome
from gateway.policy.evaluate import evaluate
from gateway.policy.explain import explanation, explanation_text
from gateway.policy.facts import Envelope
from gateway.policy.live import policy_directory, read_statuses
from gateway.policy.loader import PolicyError, load_policy, policy_json_schema, shipped_policy_dir
from gateway.runstate import ServerNotRunning, signal_server
from gateway.settings_loader import load_settings, template_text
from gateway.smtp.addresses import AddressError, normalise
from gateway.store import principals, queue, sandbox
from gateway.store.keyring import KeyringError
from gateway.store.principals import PrincipalError
from gateway.web.cli import token_group


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """phigate: an SMTP relay for healthcare that decides, per recipient, how each
    message may leave, keeps content encrypted at rest and audits every step.

    \b
    Quick start (embedded defaults, nothing leaves the machine):
      phigate serve                 # listens on 127.0.0.1:2525, sandbox delivery
      phigate sandbox ls            # what would have been sent
    Production:
      phigate init /etc/phigate     # commented config, keys, dev certificate
      phigate config check -c /etc/phigate/phigate.yaml
      phigate serve -c /etc/phigate/phigate.yaml
    """
    # The database holds addresses and the data dir keys: nothing phigate
    # creates is for other users.
    os.umask(0o077)


# --- serve / init / config ---------------------------------------------------


@main.command()
@config_options
@click.option(
    "--listen",
    multiple=True,
    metavar="HOST:PORT",
    help="Listen here instead of the configured addresses (repeatable).",
)
@click.option(
    "--deliver",
    metavar="MODE",
    help="sandbox | smarthost://HOST:PORT | mx (overrides delivery.mode).",
)
def serve(
    config_file: str | None, data_dir: str | None, listen: tuple[str, ...], deliver: str | None
) -> None:
    """Run the SMTP listeners and delivery workers until SIGTERM or Ctrl-C.

    Without -c, runs on embedded defaults: data in ./phigate-data (SQLite, a
    generated master key and self-signed certificate), submission with
    STARTTLS and AUTH on 127.0.0.1:2525, and sandbox delivery. The first run
    creates a principal "dev" and prints its secret once (also kept in
    DATA_DIR/dev-principal.json).
    """
    settings = cli_settings(config_file, data_dir, listen=list(listen), deliver=deliver)
    from gateway.logs import configure

    configure(settings.log_level)
    try:
        app.prepare_data_dir(settings, generate_cert=settings.dev_principal)
        if settings.dev_principal:
            db = app.open_database(settings)
            try:
                creds = app.ensure_dev_principal(settings, db)
            finally:
                db.close()
            if creds is not None:
                click.echo(
                    f"Created principal {creds.name!r} for {', '.join(creds.domains)}; "
                    f"secret (shown once, also in "
                    f"{settings.path(app.DEV_CREDENTIALS)}): {creds.secret}",
                    err=True,
                )
        app.serve(settings)
    except (app.StartupError, KeyringError) as exc:
        fail(str(exc))


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
def init(directory: str) -> None:
    """Create DIRECTORY with a commented phigate.yaml, master key and dev certificate.

    Edit DIRECTORY/phigate.yaml (listeners, delivery, relay networks), replace
    the self-signed certificate with your own, then run
    `phigate config check -c DIRECTORY/phigate.yaml` and
    `phigate serve -c DIRECTORY/phigate.yaml`.
    """
    target = Path(directory)
    config_path = target / "phigate.yaml"
    if config_path.exists():
        fail(f"{config_path} already exists; not overwriting it", EXIT_USAGE)
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    config_path.write_text(template_text())
    settings = load_settings(config_path)
    app.prepare_data_dir(settings, generate_cert=True)
    db = app.open_database(settings)
    db.close()
    click.echo(
        f"Wrote {config_path}, master key in {settings.path(settings.keys_dir)}, "
        f"development certificate {settings.path(settings.tls.cert_file)}."
    )
    click.echo(
        f"Next: edit it, then `phigate config check -c {config_path}` and "
        f"`phigate principal add NAME --domain DOMAIN -c {config_path}`."
    )


@main.group()
def config() -> None:
    """Inspect and validate settings files."""


@config.command("check")
@config_options
def config_check(config_file: str | None, data_dir: str | None) -> None:
    """Validate a settings file; errors name the line, the key and the fix (exit 2)."""
    if not config_file:
        fail("give the file to check with -c FILE", EXIT_USAGE)
    settings = cli_settings(config_file, data_dir)
    click.echo(f"{config_file}: OK")
    for listener in settings.listeners:
        click.echo(f"  listener {listener.name}: {listener.address} tls={listener.tls}")
    target = settings.delivery.smarthost if settings.delivery.mode == "smarthost" else ""
    click.echo(f"  delivery: {settings.delivery.mode} {target}".rstrip())
    click.echo(f"  data dir: {settings.data_dir}")


# --- principals -------------------------------------------------------------


@main.group()
def principal() -> None:
    """Sending systems that authenticate with SMTP AUTH."""


@principal.command("add")
@click.argument("name")
@click.option(
    "--domain",
    "domains",
    multiple=True,
    required=True,
    help="A sender domain this principal may use (repeatable): in MAIL FROM, From: and Sender:.",
)
@click.option(
    "--from-domain",
    "from_domains",
    multiple=True,
    help="A further domain its From: and Sender: headers may name, and DKIM may sign as "
    "(repeatable; e.g. the brands a CRM sends for).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
@config_options
def principal_add(
    name: str,
    domains: tuple[str, ...],
    from_domains: tuple[str, ...],
    as_json: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Create principal NAME allowed to send as --domain; prints its secret once.

    The From: and Sender: headers of its mail must name a --domain or a
    --from-domain; change the latter later with `phigate principal
    set-from-domains`.
    """
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                secret = principals.add(conn, name, domains, from_domains)
                created = principals.get(conn, name)
                assert created is not None
                detail = "domains=" + ",".join(created.domains)
                if created.from_domains:
                    detail += " from_domains=" + ",".join(created.from_domains)
                trail.append(
                    conn,
                    [
                        AuditEvent(
                            event="principal", result="added", principal=name, detail=detail[:200]
                        )
                    ],
                )
        except PrincipalError as exc:
            fail(str(exc), EXIT_USAGE)
    if as_json:
        print_json(
            {
                "name": name,
                "secret": secret,
                "domains": list(created.domains),
                "from_domains": list(created.from_domains),
            }
        )
    else:
        extra = f" (From: also {', '.join(created.from_domains)})" if created.from_domains else ""
        click.echo(f"Principal {name!r} created for {', '.join(created.domains)}{extra}.")
        click.echo(f"Secret (shown only now; AUTH PLAIN/LOGIN as {name!r}): {secret}")


@principal.command("set-from-domains")
@click.argument("name")
@click.argument("from_domains", nargs=-1, metavar="[DOMAIN]...")
@click.option("--none", "clear", is_flag=True, help="Remove every extra From domain.")
@config_options
def principal_set_from_domains(
    name: str,
    from_domains: tuple[str, ...],
    clear: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Replace the extra domains NAME's From: and Sender: headers may name.

    Its sender domains (--domain at `add`) are always allowed; these come on
    top, e.g. `phigate principal set-from-domains crm brand-a.example
    brand-b.example`. Takes effect on the running server at the next AUTH,
    and on queued mail before it is signed.
    """
    if clear == bool(from_domains):
        fail("give the domains, or --none to remove them all", EXIT_USAGE)
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                clean = principals.set_from_domains(conn, name, from_domains)
                trail.append(
                    conn,
                    [
                        AuditEvent(
                            event="principal",
                            result="from_domains",
                            principal=name,
                            detail=("from_domains=" + ",".join(clean))[:200],
                        )
                    ],
                )
        except PrincipalError as exc:
            fail(str(exc), EXIT_USAGE)
    shown = ", ".join(clean) if clean else "none (only its sender domains)"
    click.echo(f"Principal {name!r}: extra From domains {shown}.")


@principal.command("ls")
@click.option("--json", "as_json", is_flag=True)
@config_options
def principal_ls(as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """List principals (never their secrets)."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        items = principals.list_all(conn)
    if as_json:
        print_json(
            [
                {
                    "name": p.name,
                    "domains": list(p.domains),
                    "from_domains": list(p.from_domains),
                    "enabled": p.enabled,
                    "created_at": p.created_at,
                }
                for p in items
            ]
        )
        return
    for p in items:
        state = "enabled " if p.enabled else "disabled"
        extra = f" (From: also {', '.join(p.from_domains)})" if p.from_domains else ""
        click.echo(f"{p.name:<24} {state} {', '.join(p.domains)}{extra}")


def _set_enabled(name: str, enabled: bool, config_file: str | None, data_dir: str | None) -> None:
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                principals.set_enabled(conn, name, enabled)
                trail.append(
                    conn,
                    [
                        AuditEvent(
                            event="principal",
                            principal=name,
                            result="enabled" if enabled else "disabled",
                        )
                    ],
                )
        except PrincipalError as exc:
            fail(str(exc), EXIT_USAGE)
    click.echo(f"Principal {name!r} {'enabled' if enabled else 'disabled'}.")


@principal.command("disable")
@click.argument("name")
@config_options
def principal_disable(name: str, config_file: str | None, data_dir: str | None) -> None:
    """Refuse AUTH for NAME from now on (takes effect on the running server at once)."""
    _set_enabled(name, False, config_file, data_dir)


@principal.command("enable")
@click.argument("name")
@config_options
def principal_enable(name: str, config_file: str | None, data_dir: str | None) -> None:
    """Allow NAME to authenticate again."""
    _set_enabled(name, True, config_file, data_dir)


# --- queue ------------------------------------------------------------------


@main.group("queue")
def queue_group() -> None:
    """The mail queue: metadata only, never content."""


@queue_group.command("ls")
@click.option("--all", "show_all", is_flag=True, help="Include delivered and bounced jobs.")
@click.option("--limit", default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@config_options
def queue_ls(
    show_all: bool, limit: int, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """List queued deliveries, one line per recipient."""
    settings = cli_settings(config_file, data_dir)
    states = (
        [queue.QUEUED, queue.ACTIVE, queue.HELD, queue.DELIVERED, queue.BOUNCED, queue.DELETED]
        if show_all
        else list(queue.PENDING_STATES)
    )
    with open_store(settings) as db, db.reading() as conn:
        rows = queue.list_jobs(conn, states, limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("Queue is empty.")
    for r in rows:
        last = f"{r['last_code']} {r['last_status']}" if r["last_code"] else "-"
        click.echo(
            f"{r['queue_id']}  {r['state']:<9} tries={r['attempts']:<2} "
            f"next={when(r['next_attempt_at'])}  last={last:<10} "
            f"{r['sender'] or '<>'} -> {r['recipient']}"
        )


@queue_group.command("show")
@click.argument("queue_id")
@click.option("--json", "as_json", is_flag=True)
@config_options
def queue_show(queue_id: str, as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """Show a message's envelope and per-recipient state (no content)."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        info = queue.show_message(conn, queue_id)
    if info is None:
        fail(f"no message {queue_id} in the queue (see `phigate queue ls --all`)")
        return
    if as_json:
        print_json(info)
        return
    click.echo(f"Queue ID:   {info['queue_id']}")
    click.echo(
        f"Received:   {when(info['received_at'])} on {info['listener']} "
        f"from {info['client_ip'] or '-'} principal={info['principal'] or '-'}"
    )
    click.echo(f"Sender:     {info['sender'] or '<>'}")
    click.echo(f"Size:       {info['size']} bytes; content stored: {info['content_stored']}")
    click.echo(f"Message-ID: {info['message_id'] or '-'}")
    recipients: list[dict[str, Any]] = info["recipients"]  # type: ignore[assignment]
    for r in recipients:
        click.echo(
            f"  {r['recipient']}: {r['state']} via={r['route']} rule={r['rule'] or 'defaults'} "
            f"tries={r['attempts']} last={r['last_code'] or '-'} {r['last_status'] or ''} "
            f"{r['last_reply'] or ''}".rstrip()
        )


@queue_group.command("retry")
@click.argument("queue_id", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Retry every deferred message.")
@config_options
def queue_retry(
    queue_id: str | None, retry_all: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Make deferred deliveries of QUEUE_ID (or --all) due now."""
    if not queue_id and not retry_all:
        fail("give a QUEUE_ID or --all", EXIT_USAGE)
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.transaction() as conn:
        count = queue.retry_now(conn, queue_id, time.time())
    click.echo(f"{count} deliver{'y' if count == 1 else 'ies'} due now.")


@queue_group.command("delete")
@click.argument("queue_id")
@config_options
def queue_delete(queue_id: str, config_file: str | None, data_dir: str | None) -> None:
    """Cancel a message's pending deliveries and destroy its content (no DSN is sent)."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.transaction() as conn:
        if not queue.message_exists(conn, queue_id):
            fail(f"no message {queue_id} in the queue (see `phigate queue ls`)")
        recipients = queue.delete_message(conn, queue_id, time.time())
        trail.append(
            conn,
            [
                AuditEvent(
                    event="deleted", result="admin", queue_id=queue_id, recipients=tuple(recipients)
                )
            ],
        )
    click.echo(
        f"Deleted {queue_id}: {len(recipients)} pending deliveries cancelled, content destroyed."
    )


@queue_group.command("release")
@click.argument("queue_id")
@config_options
def queue_release(queue_id: str, config_file: str | None, data_dir: str | None) -> None:
    """Release a message the policy held: its held recipients are delivered now.

    Find held messages with `phigate queue ls` (state "held"). To refuse a
    held message instead, use `phigate queue delete QUEUE_ID`.
    """
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.transaction() as conn:
        if not queue.message_exists(conn, queue_id):
            fail(f"no message {queue_id} in the queue (see `phigate queue ls`)")
        recipients = queue.release_held(conn, queue_id, time.time())
        if not recipients:
            fail(f"message {queue_id} has no held recipients (see `phigate queue show {queue_id}`)")
        trail.append(
            conn,
            [
                AuditEvent(
                    event="released",
                    result="admin",
                    queue_id=queue_id,
                    recipients=tuple(recipients),
                )
            ],
        )
    click.echo(f"Released {queue_id}: {len(recipients)} held recipient(s) queued for delivery.")


# --- policy ---------------------------------------------------------------------


@main.group("policy")
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


def _policy_option(func: F) -> F:
    return click.option(
        "-c",
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        envvar="PHIGATE_CONFIG",
        help="Settings file naming policy_dir. Also read from $PHIGATE_CONFIG.",
    )(func)


def _policy_summary(policy: CompiledPolicy) -> dict[str, Any]:
    def outcome(o: Outcome) -> dict[str, Any]:
        if o.action == "reject":
            return {"action": o.action, "reason": o.reason}
        shown = {"action": o.action, "via": list(o.via), "subject": o.subject}
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
@_policy_option
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
@_policy_option
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
    findings = inspect_message(parsed.message, cli_settings(config_file, None).inspection)
    evaluation = evaluate(
        policy, envelope, parsed.message, len(content), findings, time.time(), NoConsentRecords()
    )
    if as_json:
        print_json(explanation(policy, evaluation))
    else:
        click.echo(explanation_text(policy, evaluation))


@policy_group.command("test")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@_policy_option
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
        fail(f"the server did not report back within {timeout:g} s; see its log")
    failed = [s for s in statuses if s.error is not None or s.version != expected]
    for status in statuses:
        click.echo(f"pid {status.pid}: policy version {status.version}")
    if failed:
        errors = "\n".join(sorted({s.error or "loaded another version" for s in failed}))
        fail(f"reload failed; the running policy stays in force:\n{errors}")
    click.echo(f"Reloaded policy version {expected} from {directory}.")


# --- inspect ------------------------------------------------------------------


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


@main.command("inspect")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line per message.")
@_policy_option
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
    inspector = Inspector(settings.inspection)
    try:
        for path in files:
            findings = inspector.inspect(parse(Path(path).read_bytes()).message)
            report = _inspection_report(path, findings)
            click.echo(json.dumps(report) if as_json else _inspection_line(report))
    finally:
        inspector.close()


# --- sandbox ------------------------------------------------------------------


@main.group("sandbox")
def sandbox_group() -> None:
    """Mail captured by sandbox delivery instead of being sent."""


@sandbox_group.command("ls")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@config_options
def sandbox_ls(limit: int, as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """List captured messages, newest first."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        rows = sandbox.list_captured(conn, limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("Sandbox is empty.")
    for r in rows:
        recipients: list[str] = r["recipients"]  # type: ignore[assignment]
        click.echo(
            f"{r['id']:>6}  {when(r['captured_at'])}  {r['queue_id']}  {r['size']:>8} B  "
            f"{r['sender'] or '<>'} -> {', '.join(recipients)}"
        )


@sandbox_group.command("show")
@click.argument("capture_id", type=int)
@config_options
def sandbox_show(capture_id: int, config_file: str | None, data_dir: str | None) -> None:
    """Print a captured message exactly as it would have been sent (decrypted)."""
    settings = cli_settings(config_file, data_dir)
    keyring = open_keyring(settings)
    with open_store(settings) as db, db.reading() as conn:
        found = sandbox.get_sealed(conn, capture_id)
    if found is None:
        fail(f"no captured message {capture_id} (see `phigate sandbox ls`)")
        return
    context, sealed = found
    sys.stdout.buffer.write(keyring.open(sealed, context.encode()))
    sys.stdout.flush()


# --- keys & audit -------------------------------------------------------------


@main.group()
def keys() -> None:
    """Master keys that wrap the per-message data keys (files in DATA_DIR/keys).

    \b
    Rotation while phigate serves:
      phigate keys rotate           # new key; the server follows; every data key re-wrapped
      phigate keys ls               # which keys stored rows and server processes use
      phigate keys retire mk-1a2b   # delete an old key once nothing uses it
    """


def _rotation_options(func: F) -> F:
    func = click.option("--json", "as_json", is_flag=True)(func)
    func = click.option(
        "--timeout",
        default=30.0,
        show_default=True,
        help="Seconds to wait for every server process to seal with the current key.",
    )(func)
    return config_options(func)


def _rotation(
    config_file: str | None, data_dir: str | None, timeout: float, as_json: bool, *, new_key: bool
) -> None:
    from gateway.store import rotation

    settings = cli_settings(config_file, data_dir)
    keyring = open_keyring(settings)
    with open_store(settings) as db:
        try:
            run = rotation.rotate if new_key else rotation.finish
            done = run(db, keyring, Path(settings.data_dir), timeout)
        except (rotation.RotationError, KeyringError) as exc:
            fail(str(exc))
    old_keys = [key_id for key_id in keyring.key_ids if key_id != done.key_id]
    if as_json:
        print_json({**asdict(done), "retirable": old_keys})
        return
    click.echo(f"Master key {done.key_id} is current; {done.rewrapped} data keys re-wrapped.")
    if done.server_pid is None:
        click.echo("No running server found; it seals with the current key when it starts.")
    else:
        pids = ", ".join(map(str, done.processes))
        click.echo(f"Server processes sealing with {done.key_id}: {pids or 'none'}.")
    if old_keys:
        click.echo(
            f"No stored data key needs {', '.join(old_keys)} any more: once your backups "
            "do not need them either, remove each with `phigate keys retire KEY_ID`."
        )


@keys.command("rotate")
@_rotation_options
def keys_rotate(
    config_file: str | None, data_dir: str | None, timeout: float, as_json: bool
) -> None:
    """Create a new master key and re-wrap every stored data key under it.

    Safe while phigate serves: the server is told (SIGHUP, which also
    reloads its policy from disk) and seals new mail with the new key; data
    keys are re-wrapped in small transactions until no stored message uses
    an older key, including mail sealed while the server was switching over.
    Old key files stay: remove them with `phigate keys retire` (it refuses a
    key anything still uses). Exit status 1 if a server process did not
    switch within --timeout.
    """
    _rotation(config_file, data_dir, timeout, as_json, new_key=True)


@keys.command("rewrap")
@_rotation_options
def keys_rewrap(
    config_file: str | None, data_dir: str | None, timeout: float, as_json: bool
) -> None:
    """Finish a rotation: re-wrap data keys still under an older master key.

    Like `rotate` without creating a key: for a rotation that was
    interrupted, or whose server processes switched late.
    """
    _rotation(config_file, data_dir, timeout, as_json, new_key=False)


@keys.command("ls")
@click.option("--json", "as_json", is_flag=True)
@config_options
def keys_ls(as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """List master keys: which is current, how many stored data keys each wraps,
    and which running server processes seal new mail with it (never key material).
    """
    from gateway.store import rotation

    settings = cli_settings(config_file, data_dir)
    keyring = open_keyring(settings)
    with open_store(settings) as db:
        uses = rotation.key_uses(db, keyring, Path(settings.data_dir))
    if as_json:
        print_json([asdict(use) for use in uses])
        return
    click.echo(f"{'KEY':<12} {'CURRENT':<8} {'ROWS':>8}  PROCESSES")
    for use in uses:
        pids = ", ".join(map(str, use.processes)) or "-"
        missing = "" if use.file else "  (key file missing: restore it from a backup)"
        click.echo(
            f"{use.key_id:<12} {'yes' if use.current else '':<8} {use.rows:>8}  {pids}{missing}"
        )


@keys.command("retire")
@click.argument("key_id")
@config_options
def keys_retire(key_id: str, config_file: str | None, data_dir: str | None) -> None:
    """Delete master key KEY_ID once nothing uses it.

    Refused (exit status 1) while it is the current key, while any stored
    message or sandbox capture is wrapped under it, or while a running
    server process still seals with it. A retired key is gone: backups of
    the database made while it was in use need a backup of the key too.
    """
    from gateway.store import rotation

    settings = cli_settings(config_file, data_dir)
    keyring = open_keyring(settings)
    with open_store(settings) as db:
        try:
            rotation.retire(db, keyring, Path(settings.data_dir), key_id)
        except (rotation.RotationError, KeyringError) as exc:
            fail(f"not retiring {key_id}: {exc}")
    click.echo(f"Retired master key {key_id}; its file is deleted.")


main.add_command(audit_group)

main.add_command(certs_group)

main.add_command(dkim_group)

main.add_command(consent_group)

main.add_command(token_group)

if __name__ == "__main__":
    main()
