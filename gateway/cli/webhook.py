"""`phigate webhook`: signed delivery-status webhooks (docs/webhooks.md)."""

from __future__ import annotations

import asyncio
import secrets
import time

import click
from sqlalchemy import Connection

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.cli.common import (
    EXIT_USAGE,
    cli_actor,
    cli_settings,
    config_options,
    fail,
    open_keyring,
    open_store,
    print_json,
    when,
)
from gateway.config import WEBHOOK_KINDS, Settings
from gateway.webhooks import events, outbox, signing, subscriptions, urls
from gateway.webhooks.subscriptions import SubscriptionError
from gateway.webhooks.urls import UnsafeUrl

AUDIT_EVENT = "webhook"


@click.group("webhook")
def webhook_group() -> None:
    """Signed webhooks telling a sending system what became of its mail.

    A subscription sends a principal's events, or those of the mail sent with one
    API token, of the kinds it names to a URL:
    accepted, delivered, deferred, bounced, portal_opened, portal_expired,
    consent_suppressed, unsubscribed. Each is a small JSON body (queue id,
    recipient, status, code, time; never content or subject), signed the
    Standard Webhooks way (webhook-id, webhook-timestamp, webhook-signature:
    HMAC-SHA256 with the secret `add` prints once). Sent at least once from a
    durable outbox, retried with back-off for `webhooks.retry_for` (24 h),
    then dead-lettered. Only https:// with a verified certificate, to public
    addresses or webhooks.allowed_networks; never link-local or metadata.

    \b
      phigate webhook add billing --principal ehr1 \\
          --url https://billing.example/hooks/phigate --events delivered,bounced
      phigate webhook add portal-app --token portal-app \\
          --url https://app.example/hooks --events all    # that token's mail only
      phigate webhook test billing        # one signed test event, now
      phigate webhook ls                  # subscriptions and their counts
      phigate webhook ls --failed         # dead letters
      phigate webhook retry 42            # send dead letter 42 again
      phigate webhook rm billing

    How to verify a signature, and the settings (webhooks: in phigate.yaml):
    docs/webhooks.md.
    """


def _audit(conn: Connection, result: str, detail: str) -> None:
    trail.append(conn, [AuditEvent(AUDIT_EVENT, result, detail=detail[:255], actor=cli_actor())])


@webhook_group.command("add")
@click.argument("name")
@click.option("--principal", help="Whose mail the events are about (or --token).")
@click.option(
    "--token",
    help="Only the mail sent with this API token (`phigate token ls`), instead of --principal.",
)
@click.option(
    "--url",
    required=True,
    help="Where to POST them: https://, or http:// into webhooks.allowed_networks.",
)
@click.option(
    "--events",
    "kinds",
    required=True,
    help=f"Comma-separated kinds (e.g. delivered,bounced), or all: {', '.join(WEBHOOK_KINDS)}.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the subscription and secret as JSON.")
@config_options
def webhook_add(
    name: str,
    principal: str | None,
    token: str | None,
    url: str,
    kinds: str,
    as_json: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Subscribe URL to PRINCIPAL's events, or to those of the mail sent with API
    TOKEN, as NAME; prints the signing secret once. Give one of --principal, --token.

    The URL's host is resolved now and at every connection; each address must
    be public (or in webhooks.allowed_networks). Give the secret (whsec_...)
    to the receiver: it verifies each request's webhook-signature with it.
    """
    settings = cli_settings(config_file, data_dir)
    try:
        wanted = subscriptions.parse_kinds(kinds)
        urls.checked(url, urls.networks(settings.webhooks.allowed_networks))
    except (SubscriptionError, UnsafeUrl) as exc:
        fail(f"webhook {name}: {exc}", EXIT_USAGE)
    keyring = open_keyring(settings)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                made, secret = subscriptions.add(
                    conn,
                    keyring,
                    name=name,
                    principal=principal,
                    token=token,
                    url=url,
                    kinds=wanted,
                    actor=cli_actor(),
                    now=time.time(),
                    cursor=settings.webhooks.cursor,
                )
                host = urls.parse(url).host
                _audit(
                    conn,
                    "added",
                    f"name={name} {'='.join(made.scope)} host={host} events={','.join(wanted)}",
                )
        except SubscriptionError as exc:
            fail(str(exc), EXIT_USAGE)
    text = signing.secret_text(secret)
    if as_json:
        print_json({**_subscription_json(made, {}), "secret": text})
        return
    click.echo(f"Webhook {name!r}: {' '.join(made.scope)}'s {', '.join(wanted)} events to {url}.")
    click.echo(f"Signing secret (shown only now): {text}")


def _subscription_json(
    sub: subscriptions.Subscription, counts: dict[tuple[int, str], int]
) -> dict[str, object]:
    return {
        "name": sub.name,
        "principal": sub.principal,
        "token": sub.token,
        "url": sub.url,
        "events": list(sub.kinds),
        "created_at": sub.created_at,
        "created_by": sub.created_by,
        **{state: counts.get((sub.id, state), 0) for state in _STATES},
    }


_STATES = (outbox.PENDING, outbox.SENT, outbox.FAILED)


@webhook_group.command("ls")
@click.option("--failed", is_flag=True, help="List dead-lettered deliveries instead.")
@click.option("--limit", default=100, show_default=True, help="With --failed: at most so many.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@config_options
def webhook_ls(
    failed: bool, limit: int, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """List subscriptions with their pending, sent and failed counts (never secrets),
    or with --failed the dead letters, newest first: `phigate webhook retry ID` sends
    one again."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        if failed:
            dead = outbox.listing(conn, outbox.FAILED, limit)
        else:
            subs, counts = subscriptions.list_all(conn), outbox.counts(conn)
    if failed:
        _print_dead(dead, as_json)
        return
    if as_json:
        print_json([_subscription_json(s, counts) for s in subs])
        return
    if not subs:
        click.echo(
            "No webhooks (subscribe one with `phigate webhook add NAME --principal P --url "
            "https://... --events delivered,bounced`)."
        )
        return
    click.echo(f"{'NAME':<20} {'SCOPE':<22} {'PENDING':>7} {'SENT':>7} {'FAILED':>7}  URL")
    for s in subs:
        n = [counts.get((s.id, state), 0) for state in _STATES]
        click.echo(f"{s.name:<20} {' '.join(s.scope):<22} {n[0]:>7} {n[1]:>7} {n[2]:>7}  {s.url}")
        click.echo(f"{'':<20} events: {','.join(s.kinds)}")


def _print_dead(dead: list[outbox.Delivery], as_json: bool) -> None:
    if as_json:
        print_json(
            [
                {
                    "id": d.id,
                    "webhook": d.subscription,
                    "webhook_id": d.webhook_id,
                    "kind": d.kind,
                    "attempts": d.attempts,
                    "created_at": d.created_at,
                    "last_status": d.last_status,
                    "last_error": d.last_error,
                }
                for d in dead
            ]
        )
        return
    if not dead:
        click.echo("No dead-lettered webhook deliveries.")
        return
    click.echo(f"{'ID':>8} {'WEBHOOK':<20} {'KIND':<18} {'TRIES':>5} {'SINCE':<19}  LAST ANSWER")
    for d in dead:
        answer = str(d.last_status) if d.last_status is not None else (d.last_error or "-")
        click.echo(
            f"{d.id:>8} {d.subscription:<20} {d.kind:<18} {d.attempts:>5} "
            f"{when(d.created_at):<19}  {answer}"
        )


@webhook_group.command("rm")
@click.argument("name")
@config_options
def webhook_rm(name: str, config_file: str | None, data_dir: str | None) -> None:
    """Remove webhook NAME and its outbox rows; nothing more is sent to it."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                gone = subscriptions.remove(conn, name)
                _audit(conn, "removed", f"name={name} {'='.join(gone.scope)}")
        except SubscriptionError as exc:
            fail(str(exc), EXIT_USAGE)
    click.echo(f"Webhook {name!r} removed.")


@webhook_group.command("retry")
@click.argument("delivery_id", metavar="ID", type=int)
@config_options
def webhook_retry(delivery_id: int, config_file: str | None, data_dir: str | None) -> None:
    """Send dead-lettered delivery ID again (`webhook ls --failed` lists them): due now,
    with a fresh `webhooks.retry_for` of retries, under its original webhook-id."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.transaction() as conn:
        again = outbox.retry(conn, delivery_id, time.time())
        if again is not None:
            _audit(conn, "retried", f"delivery={delivery_id} name={again.subscription}")
    if again is None:
        fail(
            f"no dead-lettered delivery {delivery_id}: `phigate webhook ls --failed` lists "
            "them (a delivery still being retried is sent by itself)",
            EXIT_USAGE,
        )
    click.echo(f"Delivery {delivery_id} to {again.subscription!r} queued again.")


@webhook_group.command("test")
@click.argument("name")
@config_options
def webhook_test(name: str, config_file: str | None, data_dir: str | None) -> None:
    """Send webhook NAME one signed test event now and show the answer.

    The body is {"type": "webhook.test", "timestamp": ..., "data": {"webhook": NAME}},
    signed like every event; it is not queued, so nothing is retried.
    """
    settings = cli_settings(config_file, data_dir)
    keyring = open_keyring(settings)
    with open_store(settings) as db, db.reading() as conn:
        try:
            sub = subscriptions.named(conn, name)
        except SubscriptionError as exc:
            fail(str(exc), EXIT_USAGE)
    outcome = asyncio.run(_send_test(settings, sub.url, sub.secret(keyring), name))
    if outcome.ok:
        click.echo(f"Webhook {name!r}: {sub.url} answered {outcome.status}.")
        return
    answer = f"answered {outcome.status}" if outcome.status is not None else outcome.error
    fail(
        f"webhook {name!r}: {sub.url} {answer}; a receiver must answer 2xx. Check the URL, "
        "that the receiver is up, and its certificate (webhooks.ca_file for a private CA)"
    )


async def _send_test(settings: Settings, url: str, secret: bytes, name: str) -> outbox.Outcome:
    from gateway.webhooks.sender import Sender, SenderSetupError, client_context

    ca_file = settings.webhooks.ca_file
    try:
        tls = client_context(settings.webhooks, settings.path(ca_file) if ca_file else None)
    except SenderSetupError as exc:
        fail(str(exc))
    sender = Sender(settings.webhooks, tls)
    try:
        body = events.body(events.TEST, {"webhook": name}, time.time())
        return await sender.post(url, secret, f"msg_test_{secrets.token_hex(8)}", body)
    finally:
        await sender.close()
