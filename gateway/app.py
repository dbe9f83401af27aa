"""Composition root: prepares the data dir, builds the parts, runs listeners and workers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
import logging
import math
import os
import secrets
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import Connection

from gateway import malloc, metrics, periodic
from gateway.archive.retention import Schedule
from gateway.archive.rules_file import RetentionRulesError, load_schedule
from gateway.archive.scheduled import ScheduledRetention
from gateway.archive.storage import ArchiveStorageError, configured_storage
from gateway.archive.writer import ArchiveWriter
from gateway.audit import checkpoints, trail
from gateway.audit.formats import SyslogFormat
from gateway.audit.forwarder import Forwarder, ForwarderSetupError, client_context
from gateway.audit.indexer import Indexer
from gateway.bounce import BounceMaker
from gateway.config import LimitsConfig, Settings, parse_host_port
from gateway.consent.links import UnsubscribeLinks, load_key
from gateway.consent.mailto import MailtoUnsubscribe
from gateway.consent.purpose import PurposeHeader
from gateway.consent.source import RegistryConsent
from gateway.datadir import cert_store, open_database, prepare_metrics_dir
from gateway.delivery.attempt import SigningScope
from gateway.delivery.client import SmtpSender
from gateway.delivery.marketing import Marketing
from gateway.delivery.mx import MxResolver
from gateway.delivery.portal import PortalMode
from gateway.delivery.routing import Mode, Router, SmimeMode, SmtpMode
from gateway.delivery.security import TransportSecurity
from gateway.delivery.tlsrpt_send import TlsReporter
from gateway.delivery.transport import Transport
from gateway.delivery.worker import DeliveryService
from gateway.dkim.sign import DkimSigner
from gateway.inspect import header_values
from gateway.inspect.detect import dbcache, prepare
from gateway.inspect.header_values import HeaderValues
from gateway.inspect.inspector import Inspector
from gateway.intake import Intake, Reply, Submission
from gateway.logs import event
from gateway.mail import tls
from gateway.policy.live import LivePolicy, policy_directory
from gateway.policy.loader import PolicyError
from gateway.portal import access as portal_access
from gateway.portal.expiry import Expiry
from gateway.portal.notices import Notices, NoticeTemplateError
from gateway.portal.outbox import LISTENER as PORTAL_LISTENER
from gateway.portal.replying import ReplyResult
from gateway.ratelimit import RateKey, RateLimiter
from gateway.reports import consumer
from gateway.reports.daily import DailyReports
from gateway.runstate import PID_FILE
from gateway.siblings import Siblings
from gateway.smime.envelope import SmimeEncryptor
from gateway.smime.errors import SmimeSetupError
from gateway.smtp.acceptor import Acceptor
from gateway.smtp.auth import Authenticator, AuthGuard
from gateway.smtp.data import LargeMessages
from gateway.smtp.limits import ConnectionLimiter
from gateway.smtp.listener import ConnectionGate, ListenerContext, PhigateSMTP
from gateway.store import keyfiles, nodes
from gateway.store.audit_key import KEY_FILE as AUDIT_KEY_FILE
from gateway.store.database import Database
from gateway.store.keyholders import KeyReporter
from gateway.store.keyring import Keyring, KeyringError
from gateway.store.nodes import Node
from gateway.store.portal import Copy
from gateway.web.app import create_app
from gateway.web.factors import web_key
from gateway.web.health import Readiness
from gateway.web.portal import PortalParts
from gateway.web.reviewer import ReviewerParts
from gateway.web.scrape import create_metrics_app
from gateway.web.send import LISTENER as API_LISTENER
from gateway.web.send import Outgoing, SendParts
from gateway.web.server import WebServer, WebSetupError, web_tls_context
from gateway.webhooks import sender as webhook_sender
from gateway.webhooks.service import Webhooks

log = logging.getLogger("gateway.app")


class StartupError(Exception):
    """Something an admin must fix before phigate can start."""


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    cert, key = settings.path(settings.tls.cert_file), settings.path(settings.tls.key_file)
    if not any(listener.tls != "none" for listener in settings.listeners):
        return None
    if not cert.exists() or not key.exists():
        raise StartupError(
            f"TLS certificate {cert} or key {key} not found: set tls.cert_file/tls.key_file "
            "in the config, or run `phigate init DIR` for a development certificate"
        )
    try:
        return tls.server_context(cert, key)
    except (OSError, ValueError) as exc:
        raise StartupError(f"cannot load TLS certificate {cert}: {exc}") from exc


def bind_listeners(settings: Settings) -> list[socket.socket]:
    """Bind every listener's socket (before any process is forked)."""
    sockets = []
    for listener in settings.listeners:
        host, port = listener.host_port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sockets.append(socket.create_server((host, port), family=family, backlog=1024))
        except OSError as exc:
            for sock in sockets:
                sock.close()
            raise StartupError(
                f"cannot listen on {listener.address} ({listener.name}): {exc.strerror}"
            ) from exc
    return sockets


def _bind(address: str, what: str, fix: str) -> socket.socket:
    host, port = parse_host_port(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        raise WebSetupError(
            f"cannot listen on {address} ({what}): {os.strerror(exc.errno or 0)}; {fix}"
        ) from None


def bind_metrics_socket(settings: Settings) -> socket.socket | None:
    """Bind the metrics listener's socket (before forking); None when metrics are off."""
    if not settings.metrics.enabled:
        return None
    return _bind(
        settings.metrics.address,
        "metrics",
        "set metrics.address to a free HOST:PORT, or metrics.enabled: false",
    )


def bind_web_socket(settings: Settings) -> socket.socket | None:
    """Bind the web app's socket (before forking); None when `web.enabled` is false.

    What the web app needs that can fail is checked here, once: the
    certificate (with `web.tls`) and the unsubscribe, portal and web keys (made
    now if new, so that forked processes never race to make them).
    """
    if not settings.web.enabled:
        return None
    if settings.web.tls:
        web_tls_context(settings.path(settings.tls.cert_file), settings.path(settings.tls.key_file))
    try:
        load_key(settings.path(settings.keys_dir))
        portal_key(settings)
        web_key(settings.path(settings.keys_dir))
    except KeyringError as exc:
        raise WebSetupError(str(exc)) from None
    return _bind(
        settings.web.address,
        "web",
        "set web.address to a free HOST:PORT, or web.enabled: false",
    )


def _per_process(limits: LimitsConfig, processes: int) -> LimitsConfig:
    """Each process enforces its share of the connection and large-message limits."""
    return limits.model_copy(
        update={
            "max_connections": math.ceil(limits.max_connections / processes),
            "max_connections_per_ip": math.ceil(limits.max_connections_per_ip / processes),
            "max_large_messages": math.ceil(limits.max_large_messages / processes),
        }
    )


@dataclass(frozen=True)
class Parts:
    """Every collaborator of one server process, each built once, by `build`."""

    db: Database
    keyring: Keyring
    policy: LivePolicy
    inspector: Inspector
    links: UnsubscribeLinks
    delivery: DeliveryService
    intake: Intake
    listeners: list[ListenerContext]  # one per configured listener, in order
    web_app: FastAPI | None  # None with web.enabled false
    web_tls: ssl.SSLContext | None  # HTTPS with web.tls
    tls_reports: TlsReporter
    readiness: Readiness  # what /readyz answers, on the web app and the metrics listener
    metrics_app: FastAPI | None  # None with metrics.enabled false
    daily_reports: DailyReports | None  # None with reports.daily.enabled false
    forwarder: Forwarder  # audit events to a syslog collector (idle unless enabled)
    # Search keys of new audit events, off the relay's path; a search runs a pass first.
    audit_index: Indexer
    # Delivery-status webhooks: the outbox fed behind the trail, and sent.
    webhooks: Webhooks
    # Archived mail destroyed when due, old audit events pruned (one process runs it);
    # None without archive.retention.rules_file.
    retention: ScheduledRetention | None = None

    def close(self) -> None:
        self.inspector.close()
        self.db.close()


def build(
    settings: Settings,
    *,
    policy: LivePolicy | None = None,
    tls_context: ssl.SSLContext | None = None,
    siblings: Siblings | None = None,
) -> Parts:
    """The composition root: every part of a server process, wired, nothing started.

    `policy` and `tls_context` are loaded before forking by `serve` (so a
    problem stops start-up once); by default they are loaded here. `siblings`:
    the other processes of this node, when there are (`serve`). The store
    is opened and migrated; `run` starts and stops the parts.
    """
    policy = policy or load_live_policy(settings)
    if tls_context is None:
        tls_context = _tls_context(settings)
    keys_dir = settings.path(settings.keys_dir)
    with contextlib.ExitStack() as on_error:
        keyring = Keyring(keys_dir)
        db = open_database(settings)
        on_error.callback(db.close)
        links = unsubscribe_links(settings)
        mailto = MailtoUnsubscribe(
            links,
            db,
            settings.unsubscribe.mailto_local_part,
            settings.hostname,
            settings.delivery.max_queue_lifetime,
        )
        consent = RegistryConsent(db, settings.consent)
        # Shared by intake and delivery: one signer, one maker of DSNs.
        signer = DkimSigner(settings.dkim, settings.path(settings.dkim.keys_dir))
        bounces = BounceMaker(keyring, settings.hostname, settings.postmaster_address)
        notices = portal_notices(settings)
        delivery = _delivery_service(
            settings,
            db,
            keyring,
            signer,
            bounces,
            Marketing(consent, links),
            policy,
            notices,
            siblings,
        )
        inspector = Inspector(settings.inspection)
        on_error.callback(inspector.close)
        rates = RateLimiter(settings.rate_limits)
        intake = Intake(
            db,
            keyring,
            settings.hostname,
            settings.received_header,
            inspector=inspector,
            policy=lambda: policy.current,
            consent=consent,
            purpose_header=PurposeHeader.of(settings.consent),
            passphrase_header=settings.portal.passphrase_header,
            mailto=mailto,
            bounces=bounces,
            header_values=HeaderValues(
                settings.inspection,
                keyfiles.load_or_create(
                    keys_dir,
                    header_values.KEY_FILE,
                    "header value key",
                    "Message-IDs recorded so far can no longer be matched",
                ),
            ),
            on_queued=delivery.notify,
            signer=signer,
            wait_for_delivery=delivery.wait_for_capacity,
            archive=archive_writer(settings),
            rates=rates,
            handoff=delivery,
            large_message_size=settings.limits.large_message_size,
        )
        readiness = Readiness(db, keyring)
        parts = Parts(
            db=db,
            keyring=keyring,
            policy=policy,
            inspector=inspector,
            links=links,
            delivery=delivery,
            intake=intake,
            listeners=_listener_contexts(
                settings, db, intake, mailto, tls_context, rates, siblings
            ),
            web_app=create_app(
                db,
                settings.consent,
                links,
                portal_parts(settings, keyring, notices, intake, delivery),
                readiness,
                ReviewerParts(
                    settings.reviewer,
                    web_key(keys_dir),
                    settings.web.public_url,
                    settings.reports.anomalies,
                    report_domains(settings),
                ),
                send_parts(settings, intake, policy),
            )
            if settings.web.enabled
            else None,
            web_tls=web_tls_context(
                settings.path(settings.tls.cert_file), settings.path(settings.tls.key_file)
            )
            if settings.web.enabled and settings.web.tls
            else None,
            tls_reports=tls_reporter(settings, db, keyring, notify=delivery.notify),
            readiness=readiness,
            metrics_app=create_metrics_app(
                db,
                readiness,
                settings.metrics.token,
                settings.audit.forward.cursor if settings.audit.forward.enabled else None,
            )
            if settings.metrics.enabled
            else None,
            daily_reports=DailyReports(
                db,
                keyring,
                settings.reports,
                report_domains(settings),
                settings.postmaster_address,
                settings.hostname,
                notify=delivery.notify,
            )
            if settings.reports.daily.enabled
            else None,
            forwarder=Forwarder(
                db,
                settings.audit.forward,
                SyslogFormat(settings.audit.syslog, settings.hostname),
                forwarder_tls(settings),
            ),
            audit_index=Indexer(
                db, settings.audit.index_every_seconds, settings.audit.index_max_delay_seconds
            ),
            webhooks=Webhooks(
                db,
                keyring,
                settings.webhooks,
                webhook_sender.Sender(settings.webhooks, webhooks_tls(settings)),
            ),
            retention=_scheduled_retention(settings, db),
        )
        on_error.pop_all()
    return parts


def archive_writer(settings: Settings) -> ArchiveWriter | None:
    """The archive's writer (its own keyring and storage); None with archive.enabled false."""
    config = settings.archive
    if not config.enabled:
        return None
    try:
        return ArchiveWriter(Keyring(settings.path(config.keys_dir)), configured_storage(settings))
    except (KeyringError, ArchiveStorageError) as exc:
        raise StartupError(f"the archive is not usable: {exc}") from exc


class IntakeReplies:
    """Replies from the portal enter the pipeline like any mail: inspected, policy-checked."""

    def __init__(self, intake: Intake, portal_address: str) -> None:
        self.intake = intake
        self.portal_address = portal_address

    async def submit(self, copy: Copy, client_ip: str, content: bytes) -> ReplyResult:
        reply = await self.intake.accept(
            Submission(
                listener=PORTAL_LISTENER,
                principal=None,
                client_ip=client_ip,
                helo=None,
                tls=False,
                authenticated=False,
                sender=self.portal_address,
                recipients=(copy.sender,),
                content=content,
            )
        )
        return ReplyResult(reply.code, reply.text, reply.queue_id)


class IntakeSender:
    """Mail from the send API enters the pipeline as mail over SMTP AUTH does: as its
    token's principal, counted against the token's sending limits."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def send(self, outgoing: Outgoing) -> Reply:
        return await self.intake.accept(
            Submission(
                listener=API_LISTENER,
                principal=outgoing.principal,
                client_ip=outgoing.client_ip,
                helo=None,
                tls=outgoing.tls,
                authenticated=True,
                sender=outgoing.sender,
                recipients=outgoing.recipients,
                content=outgoing.content,
                rate_key=RateKey("token", outgoing.token),
                record=outgoing.record,
                declared_phi=outgoing.declared_phi,
                token=outgoing.token,
            )
        )


def send_parts(settings: Settings, intake: Intake, policy: LivePolicy) -> SendParts:
    """What the send API needs: intake, its limits, and the headers it writes."""
    return SendParts(
        submitter=IntakeSender(intake),
        config=settings.send_api,
        max_message_size=settings.limits.max_message_size,
        max_recipients=settings.limits.max_recipients,
        hostname=settings.hostname,
        category_header=lambda: policy.current.category_header,
        purpose_header=PurposeHeader.of(settings.consent),
    )


def portal_parts(
    settings: Settings,
    keyring: Keyring,
    notices: Notices,
    intake: Intake,
    delivery: DeliveryService,
) -> PortalParts:
    """What the portal's pages need: notices, the portal key, the logo, the replies' way in."""
    return PortalParts(
        keyring=keyring,
        notices=notices,
        config=settings.portal,
        key=portal_key(settings),
        replies=IntakeReplies(intake, settings.portal_address),
        on_queued=delivery.notify,
        public_url=settings.web.public_url,
        address=settings.portal_address,
        logo=portal_logo(settings),
    )


def portal_key(settings: Settings) -> bytes:
    """The key of access codes, sessions and forms (made before forking, by bind_web_socket)."""
    return keyfiles.load_or_create(
        settings.path(settings.keys_dir),
        portal_access.KEY_FILE,
        "portal key",
        "access codes and forms in progress stop working",
    )


def portal_logo(settings: Settings) -> tuple[bytes, str] | None:
    """The logo's bytes and type; a logo that cannot be shown stops start-up."""
    if not settings.portal.logo_file:
        return None
    path = settings.path(settings.portal.logo_file)
    kind = {".png": "image/png", ".svg": "image/svg+xml"}.get(path.suffix.lower())
    if kind is None:
        raise StartupError(
            f"portal.logo_file {path} is not a .png or .svg file: convert it, or remove the setting"
        )
    try:
        return path.read_bytes(), kind
    except OSError as exc:
        raise StartupError(
            f"portal.logo_file {path} cannot be read ({exc.strerror}): fix the path or "
            "remove the setting"
        ) from exc


def forwarder_tls(settings: Settings) -> ssl.SSLContext | None:
    """The audit forwarder's TLS client context (None: forwarding off, or plain TCP on loopback)."""
    config = settings.audit.forward
    if not (config.enabled and config.tls):
        return None
    try:
        return client_context(config, settings.path)
    except ForwarderSetupError as exc:
        raise StartupError(str(exc)) from None


def webhooks_tls(settings: Settings) -> ssl.SSLContext:
    """The TLS client context webhooks verify receivers with (webhooks.ca_file, or the system's)."""
    ca_file = settings.webhooks.ca_file
    try:
        return webhook_sender.client_context(
            settings.webhooks, settings.path(ca_file) if ca_file else None
        )
    except webhook_sender.SenderSetupError as exc:
        raise StartupError(str(exc)) from None


def tls_reporter(
    settings: Settings, db: Database, keyring: Keyring, notify: Callable[[], None] | None = None
) -> TlsReporter:
    """The daily TLS reports (RFC 8460), sent from the postmaster's address."""
    return TlsReporter(
        settings.tls_reports,
        db,
        keyring,
        hostname=settings.hostname,
        postmaster=settings.postmaster_address,
        nameservers=settings.delivery.nameservers,
        ca_file=settings.delivery.ca_file,
        notify=notify,
    )


def unsubscribe_links(settings: Settings) -> UnsubscribeLinks:
    """The unsubscribe links of marketing mail, under the key in the keys directory."""
    return UnsubscribeLinks(
        load_key(settings.path(settings.keys_dir)),
        settings.unsubscribe,
        settings.hostname,
        settings.web.public_url,
    )


def _listener_contexts(
    settings: Settings,
    db: Database,
    intake: Intake,
    mailto: MailtoUnsubscribe,
    tls_context: ssl.SSLContext | None,
    rates: RateLimiter,
    siblings: Siblings | None,
) -> list[ListenerContext]:
    """What the sessions of each listener share; the intake, authenticator, AUTH
    guard, mailto opt-outs and sending limits are shared by all listeners."""
    # On PostgreSQL, where several nodes may serve, they count failed AUTH together.
    guard = AuthGuard(
        _per_process(settings.limits, settings.processes),
        db=db if db.dialect == "postgresql" else None,
    )
    authenticator = Authenticator(db)
    contexts = []
    for listener in settings.listeners:
        # Each listener its own limits and slots: a flood on one leaves the others free.
        limits = _per_process(listener.effective_limits(settings.limits), settings.processes)
        contexts.append(
            ListenerContext(
                config=listener,
                limits=limits,
                hostname=settings.hostname,
                db=db,
                intake=intake,
                authenticator=authenticator,
                guard=guard,
                limiter=ConnectionLimiter(limits),
                large_messages=LargeMessages(limits.large_message_size, limits.max_large_messages),
                relay_networks=list(settings.relay_networks),
                tls_context=tls_context if listener.tls != "none" else None,
                unsubscribe=mailto if listener.accept_unsubscribe else None,
                rates=rates,
                siblings=siblings,
            )
        )
    return contexts


async def run(
    settings: Settings,
    sockets: list[socket.socket],
    ssl_context: ssl.SSLContext | None,
    policy: LivePolicy,
    node: Node,
    stop: asyncio.Event | None = None,
    grace: float = 30.0,
    web_socket: socket.socket | None = None,
    metrics_socket: socket.socket | None = None,
    siblings: Siblings | None = None,
) -> None:
    """Serve on pre-bound sockets until SIGTERM/SIGINT (or `stop`), then shut down gracefully.

    The node's roles decide what runs: `sockets` is empty without smtp,
    `web_socket` None without web, and delivery workers start only with
    delivery. SIGHUP reloads the policy, the master keys and the TLS certificate.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    keys: KeyReporter | None = None
    tls_contexts: list[ssl.SSLContext] = []  # filled once built; read again after anyway

    beat_now = asyncio.Event()  # the heartbeat reports a reload at once

    def reload() -> None:
        policy.on_signal()
        beat_now.set()
        if keys is not None:  # else the keys are read after this signal anyway
            keys.reload()
        if tls_contexts:
            _reload_certificate(settings, tls_contexts)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, reload)
    parts = build(settings, policy=policy, tls_context=ssl_context, siblings=siblings)
    db, delivery = parts.db, parts.delivery
    contexts = parts.listeners if "smtp" in settings.node.roles else []
    delivering = "delivery" in settings.node.roles
    db.start()
    keys = KeyReporter(Path(settings.data_dir), parts.keyring, db)
    live = [ctx.tls_context for ctx in parts.listeners] + [parts.web_tls]
    tls_contexts.extend({id(c): c for c in live if c is not None}.values())
    servers: list[asyncio.AbstractServer] = []
    web = (
        WebServer(parts.web_app, web_socket, parts.web_tls, grace, settings.web)
        if web_socket is not None and parts.web_app is not None
        else None
    )
    scrapes = (
        WebServer(parts.metrics_app, metrics_socket, None, grace, _METRICS_LIMITS, "metrics")
        if metrics_socket is not None and parts.metrics_app is not None
        else None
    )
    try:
        if scrapes is not None:  # first: /readyz says what is still starting
            await scrapes.start()
        for ctx, sock in zip(contexts, sockets, strict=True):
            servers.append(await _serve(ctx, sock))
        if web is not None:
            await web.start()
        parts.readiness.serving(_not_serving(contexts, servers, web))
        if delivering:
            delivery.start()
        policy.started(await db.read(nodes.latest_reload))
        heartbeat = asyncio.create_task(
            _heartbeat(db, node, policy, stop, beat_now), name="node-heartbeat"
        )
        reports = asyncio.create_task(parts.tls_reports.run_forever(stop), name="tls-reports")
        audit_checkpoints = asyncio.create_task(
            trail.checkpoint_periodically(db, settings.audit, stop), name="audit-checkpoints"
        )
        portal_expiry = asyncio.create_task(Expiry(db).run_forever(stop), name="portal-expiry")
        daily = (
            asyncio.create_task(parts.daily_reports.run_forever(stop), name="daily-reports")
            if parts.daily_reports is not None
            else None
        )
        # Each process runs it; the one holding the cursor's lease forwards.
        forwarding = asyncio.create_task(parts.forwarder.run_forever(stop), name="audit-forward")
        audit_index = asyncio.create_task(parts.audit_index.run_forever(stop), name="audit-index")
        # Each process sends; the one holding the cursor's lease feeds the outbox.
        webhooks = asyncio.create_task(parts.webhooks.run_forever(stop), name="webhooks")
        # Each process runs it; the one holding its lease destroys and prunes.
        retention = (
            asyncio.create_task(parts.retention.run_forever(stop), name="retention")
            if parts.retention is not None
            else None
        )
        event(
            log,
            "ready",
            listeners=[f"{c.config.name}={c.config.address}/{c.config.tls}" for c in contexts],
            web=f"{settings.web.address}/{'https' if settings.web.tls else 'http'}"
            if web is not None
            else "off",
            delivery=settings.delivery.mode if delivering else "off",
            node=node.name,
        )
        await stop.wait()
        parts.readiness.stopping()
        event(log, "stopping")
        reports.cancel()  # an unfinished report is sent by the next pass
        forwarding.cancel()  # what was sent and not yet confirmed is sent again at start
        webhooks.cancel()  # deliveries claimed and not settled are due again after their lease
        await asyncio.gather(
            reports,
            audit_checkpoints,
            portal_expiry,
            forwarding,
            webhooks,
            audit_index,
            heartbeat,
            *([daily] if daily is not None else []),
            *([retention] if retention is not None else []),
            return_exceptions=True,
        )
    finally:
        if web is not None:
            await web.stop()
        await _shutdown(contexts[: len(servers)], servers, delivery if delivering else None, grace)
        await trail.final_checkpoint(db)
        keys.stopped()
        if scrapes is not None:  # last: it reports the drain until the end
            await scrapes.stop()
        parts.close()
        event(log, "stopped")


@dataclass(frozen=True)
class _ScrapeLimits:
    max_connections: int
    max_connections_per_ip: int
    request_timeout: float


# A few scrapers and health checkers, not the public: one may use them all.
_METRICS_LIMITS = _ScrapeLimits(max_connections=32, max_connections_per_ip=32, request_timeout=10.0)


def _not_serving(
    contexts: list[ListenerContext], servers: list[asyncio.AbstractServer], web: WebServer | None
) -> Callable[[], list[str]]:
    """What /readyz asks: the names of this process's listeners that do not serve."""

    def down() -> list[str]:
        names = [
            c.config.name for c, s in zip(contexts, servers, strict=True) if not s.is_serving()
        ]
        if web is not None and not web.serving:
            names.append("web")
        return names

    return down


def smime_encryptor(settings: Settings) -> SmimeEncryptor:
    """Raises SmimeSetupError when the signing certificate or trust bundle is unusable."""
    return SmimeEncryptor(settings.smime, cert_store(settings), Path(settings.data_dir))


def _delivery_service(
    settings: Settings,
    db: Database,
    keyring: Keyring,
    signer: DkimSigner,
    bounces: BounceMaker,
    marketing: Marketing,
    policy: LivePolicy,
    notices: Notices,
    siblings: Siblings | None,
) -> DeliveryService:
    """Delivery and the parts it sends with: transport, the modes by name, marketing."""
    config = settings.delivery
    transport = Transport(
        config,
        db,
        keyring,
        SmtpSender(
            settings.hostname, config.ca_file, config.connect_timeout, config.command_timeout
        ),
        TransportSecurity(config, settings.path("mta-sts")),
        MxResolver(config.nameservers, port=config.mx_port, cache_seconds=config.dns_cache_seconds),
        signer,
        policy=lambda: policy.current,
    )
    service: DeliveryService | None = None

    def deliver_notices() -> None:  # the portal's notices are new mail for this service
        if service is not None:
            service.notify()

    modes: dict[str, Mode] = {
        "standard": SmtpMode("standard", transport),
        "tls": SmtpMode("tls", transport),
        "smime": SmimeMode(smime_encryptor(settings), transport),
        "portal": PortalMode(
            db, keyring, notices, settings.portal, settings.public_base_url, deliver_notices
        ),
    }
    service = DeliveryService(
        config,
        db,
        keyring,
        transport=transport,
        router=Router(modes),
        marketing=marketing,
        bounces=bounces,
        signing=SigningScope(
            settings.postmaster_address, settings.relay_networks, settings.portal_address
        ),
        reports_tls=settings.tls_reports.enabled,
        large_message_size=settings.limits.large_message_size,
        max_large_messages=_per_process(settings.limits, settings.processes).max_large_messages,
        siblings=siblings,
    )
    return service


def portal_notices(settings: Settings) -> Notices:
    """The portal's mail texts, checked now: a broken template stops start-up."""
    templates = settings.portal.templates_dir
    try:
        return Notices(
            settings.portal.organisation,
            settings.portal_address,
            settings.hostname,
            settings.path(templates) if templates else None,
        )
    except NoticeTemplateError as exc:
        raise StartupError(f"portal templates: {exc}") from None


def report_domains(settings: Settings) -> frozenset[str]:
    """The personal mailbox domains reports name, checked now: a bad list stops start-up."""
    try:
        return consumer.load(settings.reports.consumer_domains, Path(settings.data_dir))
    except consumer.DomainListError as exc:
        raise StartupError(f"reports: {exc}") from None


async def _serve(ctx: ListenerContext, sock: socket.socket) -> asyncio.AbstractServer:
    """Serve one listener's socket: asyncio's server, or phigate's own acceptor behind
    load balancers and where sibling processes share the socket (gateway.smtp.acceptor)."""
    if ctx.config.proxy_protocol.enabled or ctx.siblings is not None:
        server = Acceptor(ctx, sock)
        await server.start_serving()
        return server
    implicit = ctx.implicit_tls
    return await asyncio.get_running_loop().create_server(
        lambda: ConnectionGate(ctx),
        sock=sock,
        backlog=1024,
        ssl=ctx.tls_context if implicit else None,
        ssl_handshake_timeout=ctx.limits.tls_handshake_timeout if implicit else None,
    )


async def _shutdown(
    contexts: list[ListenerContext],
    servers: list[asyncio.AbstractServer],
    delivery: DeliveryService | None,
    grace: float,
) -> None:
    for ctx in contexts:
        ctx.accepting = False
    for server in servers:
        server.close()
    deadline = time.monotonic() + grace
    # Sessions between transactions are told and closed at once; a session in
    # the middle of one gets until the deadline to finish (and get its 250).
    told: dict[PhigateSMTP, float] = {}
    while time.monotonic() < deadline:
        open_sessions = [s for ctx in contexts for s in ctx.sessions]
        if not open_sessions:
            break
        now = time.monotonic()
        for session in open_sessions:
            if session.in_transaction or session.transport is None:
                continue
            if session not in told:
                told[session] = now
                session.say_goodbye()
            elif now - told[session] > 2.0:
                session.abort()  # the client does not finish the TLS close
        await asyncio.sleep(0.05)
    for ctx in contexts:
        for session in list(ctx.sessions):
            session.abort()
    if servers:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.wait_closed() for s in servers)), 5)
    for ctx in contexts:
        await ctx.flush_audits()  # refusal summaries of the sessions just ended
    if delivery is not None:
        await delivery.stop(grace)


def run_process(
    settings: Settings,
    sockets: list[socket.socket],
    ssl_context: ssl.SSLContext | None,
    policy: LivePolicy,
    node: Node,
    web_socket: socket.socket | None = None,
    metrics_socket: socket.socket | None = None,
    siblings: Siblings | None = None,
) -> None:
    """One server process: an event loop with listeners, delivery workers and the web app."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    asyncio.run(
        run(
            settings,
            sockets,
            ssl_context,
            policy,
            node,
            web_socket=web_socket,
            metrics_socket=metrics_socket,
            siblings=siblings,
        )
    )


def _check_audit_key(settings: Settings) -> None:
    """Refuse to extend a trail under another key than the one it was keyed with."""
    db = open_database(settings)
    try:
        with db.reading() as conn:
            signed = checkpoints.newest(conn)
    finally:
        db.close()
    key_id = db.audit_key.key_id if db.audit_key else ""
    if signed is not None and signed.key_id != key_id:
        key_file = settings.path(settings.keys_dir) / AUDIT_KEY_FILE
        raise StartupError(
            f"the audit key {key_file} (key {key_id}) is not the one the audit trail was "
            f"keyed with (key {signed.key_id}): restore that key from a backup of the keys "
            "directory; `phigate audit verify` shows what the stored checkpoints say"
        )


def _remove_stray_contents(settings: Settings) -> None:
    """Content files left by a crash (store/contents.py), before any process takes mail in."""
    db = open_database(settings)
    try:
        removed = db.remove_contents()
    finally:
        db.close()
    if removed:
        event(log, "content_files_removed", files=removed)


def serve(settings: Settings) -> None:
    malloc.return_large_blocks()  # before anything large is allocated, in every process
    # Loaded before forking: a certificate problem stops start-up once, here.
    ssl_context = _tls_context(settings)
    _check_audit_key(settings)
    _remove_stray_contents(settings)
    policy = load_live_policy(settings)
    try:
        smime_encryptor(settings)
    except SmimeSetupError as exc:
        raise StartupError(f"S/MIME settings are not usable: {exc}") from exc
    portal_notices(settings)
    portal_logo(settings)
    report_domains(settings)
    forwarder_tls(settings)
    webhooks_tls(settings)
    archive_writer(settings)
    retention_schedule(settings)
    dbcache.use_directory(dbcache.directory_for(settings))
    prepare(settings.inspection)  # compiled (or loaded) once here; forked processes share it
    gc.collect()
    malloc.trim()  # what compiling left free, before the processes inherit it
    # Before forking and before anything counts: every process writes its own
    # files there, and a scrape sums them.
    metrics.configure(prepare_metrics_dir(settings) if settings.metrics.enabled else None)
    roles = settings.node.roles
    try:
        web_socket = bind_web_socket(settings) if "web" in roles else None
        metrics_socket = bind_metrics_socket(settings)
    except WebSetupError as exc:
        raise StartupError(str(exc)) from exc
    sockets = bind_listeners(settings) if "smtp" in roles else []
    pid_file = Path(settings.data_dir) / PID_FILE
    pid_file.write_text(f"{os.getpid()}\n")
    node = this_node(settings, time.time())
    _node_record(settings, partial(nodes.register, node=node))
    try:
        if settings.processes == 1:
            run_process(settings, sockets, ssl_context, policy, node, web_socket, metrics_socket)
        else:
            from gateway.supervisor import supervise

            # With SMTP and delivery both here, a process busy with every session
            # leaves delivering to an idle sibling.
            siblings = Siblings(settings.processes) if {"smtp", "delivery"} <= set(roles) else None

            def child(index: int) -> None:
                if siblings is not None:
                    siblings.become(index)
                run_process(
                    settings,
                    sockets,
                    ssl_context,
                    policy,
                    node,
                    web_socket,
                    metrics_socket,
                    siblings,
                )

            supervise(settings.processes, child)
    finally:
        pid_file.unlink(missing_ok=True)
        try:
            _node_record(settings, partial(nodes.stopped, name=node.name, now=time.time()))
        except Exception as exc:  # the node stopped all the same: `nodes ls` shows it stale
            event(log, "node_stop_not_recorded", logging.WARNING, error=type(exc).__name__)


def _reload_certificate(settings: Settings, contexts: list[ssl.SSLContext]) -> None:
    """SIGHUP: a renewed tls.cert_file and tls.key_file for new TLS handshakes."""
    cert, key = settings.path(settings.tls.cert_file), settings.path(settings.tls.key_file)
    try:
        tls.reload_certificate(contexts, cert, key)
    except (OSError, ssl.SSLError, ValueError) as exc:
        # The certificate loaded before stays in use: nothing is refused for this.
        event(log, "tls_reload_failed", logging.ERROR, problem=type(exc).__name__)
    else:
        event(log, "tls_reloaded", cert_file=str(cert))


def this_node(settings: Settings, now: float) -> Node:
    """This start of the server as one of the nodes sharing the database."""
    name = settings.node.name or f"{socket.gethostname()}-{secrets.token_hex(3)}"
    return Node(
        name=name,
        roles=tuple(settings.node.roles),
        version=_version(),
        processes=settings.processes,
        heartbeat_seconds=settings.node.heartbeat_seconds,
        started_at=now,
        heartbeat_at=now,
    )


def _version() -> str:
    try:
        return importlib.metadata.version("phigate")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def _node_record(settings: Settings, change: Callable[[Connection], None]) -> None:
    db = open_database(settings)
    try:
        with db.transaction() as conn:
            change(conn)
    finally:
        db.close()


async def _heartbeat(
    db: Database, node: Node, policy: LivePolicy, stop: asyncio.Event, beat_now: asyncio.Event
) -> None:
    """Every process of a node beats: the node is live while any of them is. With
    each beat it reloads its policy if `phigate policy reload` asked every node
    to, and reports the policy it runs."""

    async def beat(now: float) -> None:
        policy.asked(await db.read(nodes.latest_reload))
        state = policy.state(node.name)
        await db.write(partial(nodes.beat, name=node.name, now=now, policy=state), durable=False)

    await periodic.every(
        node.heartbeat_seconds, stop, beat, log, "node_heartbeat_failed", wake=beat_now
    )


def retention_schedule(settings: Settings) -> Schedule | None:
    """The retention rules (None without a rules file); an invalid file stops start-up."""
    rules_file = settings.archive.retention.rules_file
    if rules_file is None:
        return None
    try:
        return load_schedule(settings.path(rules_file))
    except RetentionRulesError as exc:
        raise StartupError(
            f"the retention rules are not valid, so phigate does not start:\n{exc}"
        ) from None


def _scheduled_retention(settings: Settings, db: Database) -> ScheduledRetention | None:
    schedule = retention_schedule(settings)
    if schedule is None:
        return None
    try:
        storage = configured_storage(settings)
    except ArchiveStorageError as exc:
        raise StartupError(f"the archive is not usable: {exc}") from exc
    return ScheduledRetention(db, schedule, settings.archive.retention, settings.hostname, storage)


def load_live_policy(settings: Settings) -> LivePolicy:
    """The policy, loaded before forking: an invalid one stops start-up once, here."""
    try:
        return LivePolicy(policy_directory(settings.policy_dir))
    except PolicyError as exc:
        raise StartupError(f"the policy is not valid, so phigate does not start:\n{exc}") from exc
