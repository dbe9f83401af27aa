"""Intake: parse -> inspect -> decide -> seal -> store, then the 250.

Each stage is a plain function of what the earlier ones produced: the
message is inspected (gateway.inspect), the policy decides per recipient
(gateway.policy), and the message is stored with one job per recipient to
deliver or hold, in the same transaction as the audit events of every
decision. Recipients the policy refuses get a content-free DSN when others
are accepted, or the whole message is refused with the rule's reason.
The portal passphrase header is taken out of every message first; jobs
delivered through the portal carry the policy's terms and, where asked
for, only a hash of that passphrase.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from functools import partial
from typing import Protocol

from sqlalchemy import Connection

from gateway import metrics
from gateway.archive import writer as archive_writer
from gateway.archive.records import MESSAGE, PORTAL_REPLY
from gateway.archive.storage import ArchiveStorageError
from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.bounce import BounceMaker, FailedRecipient, is_null_sender, queue_dsn
from gateway.config import ReceivedHeaderConfig
from gateway.consent.mailto import MailtoUnsubscribe, remember
from gateway.consent.purpose import MARKETING, PurposeHeader, UnknownPurpose
from gateway.dkim.sign import DkimSigner
from gateway.inspect.findings import DECLARED, PHI_TYPES, DeclaredPhi, Findings
from gateway.inspect.header_values import HeaderValues
from gateway.inspect.inspector import Inspector
from gateway.logs import event
from gateway.mail.headers import take_fields
from gateway.mail.message import parse
from gateway.policy.engine import CompiledPolicy, Decision
from gateway.policy.evaluate import Evaluation, consider
from gateway.policy.facts import Envelope
from gateway.portal import passphrase as passphrases
from gateway.portal.outbox import LISTENER as PORTAL_LISTENER
from gateway.ratelimit import Charged, RateKey, RateLimiter
from gateway.store import audit_facets, queue
from gateway.store.contents import ContentFiles
from gateway.store.database import Database
from gateway.store.keyring import Keyring, Sealed

log = logging.getLogger("gateway.intake")


class AsyncConsentSource(Protocol):
    async def states(self, recipients: Sequence[str], purpose: str) -> Mapping[str, str]:
        """Consent state per recipient for `purpose` (absent: "none")."""
        ...


class Handoff(Protocol):
    """Delivery taking new mail straight from intake, without a claim."""

    def lease(self, size: int) -> queue.Lease | None:
        """A worker free now for a message of `size` octets (held for it until
        `take`), or None: the message waits to be claimed."""
        ...

    def take(self, lease: queue.Lease, leased: queue.Leased | None) -> None:
        """What was queued under `lease`, once committed (None: nothing was)."""
        ...


@dataclass(frozen=True)
class Submission:
    """What the listener knows once DATA has arrived; addresses already normalised."""

    listener: str
    principal: str | None
    client_ip: str
    helo: str | None
    tls: bool
    authenticated: bool
    sender: str
    recipients: tuple[str, ...]
    content: bytes
    # Whose sending limits the message counts against; None: no limits (the portal's replies).
    rate_key: RateKey | None = None
    # PHI the sender's message template declares (its PHI variables' names): the
    # message is decided as carrying PHI even when inspection finds none.
    declared_phi: DeclaredPhi | None = None
    # The API token the message was sent with (its name), for webhooks scoped to it.
    token: str | None = None
    # The caller's own row kept with the message (the send API's idempotency key),
    # written in the transaction that stores it, with its queue id.
    record: Callable[[Connection, str], None] | None = None

    @property
    def envelope(self) -> Envelope:
        return Envelope(self.sender, self.recipients, self.principal, self.authenticated, self.tls)


@dataclass(frozen=True)
class Refused:
    """A recipient the policy refused while others were accepted (they get a DSN)."""

    recipient: str
    rule: str  # "defaults" when no rule decided
    reason: str


@dataclass(frozen=True)
class Reply:
    code: int
    text: str
    queue_id: str | None = None
    # A policy refusal of the whole message: the rule that decided ("defaults": none).
    rule: str | None = None
    # Over a sending limit: the seconds until its window ends (an API's Retry-After).
    retry_after: int | None = None
    # With a 250: the recipients the policy refused.
    refused: tuple[Refused, ...] = ()

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


def rewrite_of(decision: Decision, footer: str | None = None) -> queue.Rewrite | None:
    """The changes a delivery must make, as stored on its job (policy text only):
    subject, added headers, and the CAN-SPAM footer's postal address."""
    if decision.neutral_subject is None and not decision.add_headers and footer is None:
        return None
    return queue.Rewrite(decision.neutral_subject, decision.add_headers, footer)


def portal_terms_of(decision: Decision, passphrase_hash: str | None) -> queue.PortalTerms | None:
    """How mode portal must hold this recipient's copy; None when via has no portal."""
    choice = decision.portal
    if choice is None:
        return None
    return queue.PortalTerms(
        choice.access,
        choice.show_sender,
        choice.expiry_days,
        choice.read_receipt,
        passphrase_hash if choice.access == "passphrase" else None,
    )


def _needs_passphrase(decision: Decision) -> bool:
    return decision.portal is not None and decision.portal.access == "passphrase"


def job_for(
    decision: Decision,
    evaluation: Evaluation,
    policy: CompiledPolicy,
    passphrase_hash: str | None,
) -> queue.NewJob:
    marketing = evaluation.category == MARKETING
    return queue.NewJob(
        recipient=decision.recipient,
        via=decision.via,
        held=decision.action == "hold",
        rule=decision.rule,
        policy=evaluation.policy_version,
        rewrite=rewrite_of(decision, policy.can_spam_footer if marketing else None),
        # Marketing consent is checked again just before sending.
        purpose=evaluation.purpose if marketing else None,
        portal=portal_terms_of(decision, passphrase_hash),
    )


def decision_event(
    evaluation: Evaluation, decision: Decision, queue_id: str, submission: Submission, now: float
) -> AuditEvent:
    """The audit record of one decision: ids, modes and states, never a PHI value."""
    category = evaluation.category
    if evaluation.category_rule:
        category += f"({evaluation.category_rule})"
    if evaluation.purpose and evaluation.purpose != evaluation.category:
        category += f" purpose={evaluation.purpose}"
    detail = (
        f"policy={evaluation.policy_version} category={category} "
        f"rule={decision.rule or 'defaults'} consent={decision.consent}"
    )
    if decision.via:
        detail += f" via={','.join(decision.via)}"
    if decision.neutral_subject is not None:
        detail += " subject=neutral"
    findings = evaluation.facts.findings
    detail += f" phi={'yes' if findings.phi else 'no'}"
    if findings.types.get(DECLARED):
        detail += f" declared={findings.types[DECLARED]}"
    if findings.unscannable:
        detail += " unscannable=yes"
    return AuditEvent(
        event="policy",
        result=decision.action,
        queue_id=queue_id,
        principal=submission.principal,
        client_ip=submission.client_ip,
        sender=submission.sender,
        recipients=(decision.recipient,),
        ts=now,
        detail=detail[:255],
    )


@functools.lru_cache(maxsize=4)
def _received_stamp(second: int) -> str:
    """The Received header's date, local time, to the second: the same for every
    message of that second (working it out costs more than the rest of the header)."""
    return formatdate(second, localtime=True)


def received_header(
    submission: Submission, queue_id: str, hostname: str, options: ReceivedHeaderConfig, now: float
) -> bytes:
    """A trace header that reveals the client only as far as the admin allows."""
    protocol = "ESMTP" + ("S" if submission.tls else "") + ("A" if submission.authenticated else "")
    origin = []
    if options.include_helo and submission.helo:
        origin.append(submission.helo)
    if options.include_client_ip:
        origin.append(f"([{submission.client_ip}])")
    source = f"from {' '.join(origin)}\r\n\t" if origin else ""
    stamp = _received_stamp(int(now))
    return (
        f"Received: {source}by {hostname} (phigate) with {protocol} id {queue_id};\r\n\t{stamp}\r\n"
    ).encode("ascii", "replace")


def archive_copy(
    queue_id: str,
    submission: Submission,
    message_id: str | None,
    evaluation: Evaluation,
    now: float,
    header: bytes,
    sealed: Sealed,
) -> archive_writer.ArchiveCopy:
    """The archive's copy of a message stored as `header` + its content, sealed:
    metadata of every accepted recipient, the category and the PHI verdict.
    Replies written in the portal are marked as such; DSNs and phigate's own
    notices never pass here (they are queued without intake)."""
    entry = archive_writer.entry_for(
        queue_id=queue_id,
        kind=PORTAL_REPLY if submission.listener == PORTAL_LISTENER else MESSAGE,
        received_at=now,
        message_id=message_id,
        principal=submission.principal,
        sender=submission.sender,
        recipients=[d.recipient for d in evaluation.accepted],
        category=evaluation.category,
        phi=evaluation.facts.findings.phi,
        stored=(header, submission.content),
    )
    return archive_writer.ArchiveCopy(entry, sealed)


class ContentNotWritten(Exception):
    """A large content's file could not be written; `problem` is the errno's name."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


Seals = tuple[Sealed, Sealed | None]  # the queue's sealed content and, archive on, the archive's


class Sealing:
    """A message's content sealed for the store, and its file where it has one.

    A content the store keeps in a file of its own (a large one on SQLite) is
    sealed and written on a thread from the moment the message is in, while it
    is inspected and decided: the file's flush (milliseconds for 2 MB) then no
    longer adds to the wait for the 250. Any other content is sealed once the
    message is decided (`seals`).

    The file is removed once the intake is over (`end`), unless the row that
    holds its key may have been committed (`keep`): a refusal, a failure or a
    lost session leaves no file behind.
    """

    def __init__(
        self, seal: Callable[[], Seals], contents: ContentFiles | None, queue_id: str
    ) -> None:
        # With `contents`, `seal` writes the content's file and flushes it before it
        # returns; the Seals it gives then hold the key alone.
        self._seal = seal
        self._contents = contents
        self._queue_id = queue_id
        self._kept = False
        self._filing: asyncio.Future[Seals] | None = (
            asyncio.ensure_future(asyncio.to_thread(self._seal_into_file))
            if contents is not None
            else None
        )

    @property
    def in_file(self) -> bool:
        return self._contents is not None

    def _seal_into_file(self) -> Seals:
        try:
            return self._seal()
        except OSError as exc:
            raise ContentNotWritten(
                errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            ) from exc

    async def seals(self) -> Seals:
        """The sealed content; raises ContentNotWritten if its file could not be written."""
        if self._filing is None:
            return self._seal()
        # Shielded: a session lost meanwhile must not mark a write still under way as
        # ended, or `end` would remove the file before the write is done.
        return await asyncio.shield(self._filing)

    def keep(self) -> None:
        """The row that holds the content's key may be committed: its file stays."""
        self._kept = True

    def end(self) -> None:
        """The intake is over: the file goes, once written, unless it is kept."""
        filing, contents, queue_id = self._filing, self._contents, self._queue_id
        if filing is None or contents is None or self._kept:
            return

        def remove(done: asyncio.Future[Seals]) -> None:
            if not done.cancelled():
                done.exception()  # answered already, or needs no answer: nothing is stored
            contents.remove([queue_id])

        filing.add_done_callback(remove)


def _count(findings: Findings, decisions: Sequence[Decision]) -> None:
    """Metrics of a decided message: finding types and rule ids, never a value."""
    for kind, count in findings.types.items():
        metrics.PHI_FINDINGS.labels(kind if kind in PHI_TYPES else "other").inc(count)
    for decision in decisions:
        metrics.DECISIONS.labels(decision.rule or "defaults", decision.action).inc()


class Intake:
    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        hostname: str,
        received: ReceivedHeaderConfig,
        inspector: Inspector,
        policy: Callable[[], CompiledPolicy],
        consent: AsyncConsentSource,
        bounces: BounceMaker,
        header_values: HeaderValues,
        purpose_header: PurposeHeader,
        passphrase_header: str,
        on_queued: Callable[[], None] = lambda: None,
        signer: DkimSigner | None = None,
        mailto: MailtoUnsubscribe | None = None,
        wait_for_delivery: Callable[[], Awaitable[None]] | None = None,
        archive: archive_writer.ArchiveWriter | None = None,
        rates: RateLimiter | None = None,
        handoff: Handoff | None = None,
        large_message_size: int | None = None,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.hostname = hostname
        self.received = received
        self.inspector = inspector
        self.policy = policy  # read once per message: a reload never splits a decision
        self.consent = consent
        self.bounces = bounces
        self.on_queued = on_queued
        # Slows a sender while delivery falls behind (DeliveryService.wait_for_capacity).
        self.wait_for_delivery = wait_for_delivery
        self.signer = signer
        self.purpose_header = purpose_header  # names the marketing sub-purpose, if any
        self.header_values = header_values  # how the Message-ID may be recorded
        self.mailto = mailto  # records the List-Unsubscribe mailto of marketing mail
        # Where a sender gives a portal passphrase; removed from every message.
        self.passphrase_header = passphrase_header
        # With archive.enabled: every accepted message's sealed copy, kept with it.
        self.archive = archive
        # Sending limits per principal or relay network, checked and counted as a message is stored.
        self.rates = rates
        # Mail a delivery worker of this process can take at once skips the claim.
        self.handoff = handoff
        # Larger messages keep their content in a file of its own where the store has
        # such files (SQLite: store/contents.py).
        self.large_message_size = large_message_size

    async def accept(self, submission: Submission) -> Reply:
        """Decide, and store what may be delivered; the reply for the client.

        A large message's row is as small as any other's, its content being in a
        file of its own (store/contents.py)."""
        if self.wait_for_delivery is not None:
            await self.wait_for_delivery()  # before any work: nothing is held meanwhile
        started = time.perf_counter()
        reply = await self._accept(submission)
        if reply.code == 250:
            metrics.INTAKE_SECONDS.observe(time.perf_counter() - started)
            metrics.ACCEPTED.labels(submission.listener).inc()
        return reply

    async def _accept(self, submission: Submission) -> Reply:
        now = time.time()
        queue_id = queue.new_queue_id(now)
        refusal = await self._over_limit_early(submission)
        if refusal is not None:  # no inspection, nothing stored
            return refusal
        # Before anything reads the content: the passphrase is never inspected,
        # stored or delivered, whatever the policy decides.
        content, passphrase_fields = take_fields(submission.content, self.passphrase_header)
        if passphrase_fields:
            submission = dataclasses.replace(submission, content=content)
        header = received_header(submission, queue_id, self.hostname, self.received, now)
        sealing = self._sealing(queue_id, header, submission.content)
        try:
            return await self._decide(queue_id, submission, passphrase_fields, header, sealing, now)
        finally:
            sealing.end()

    def _sealing(self, queue_id: str, header: bytes, content: bytes) -> Sealing:
        limit = self.large_message_size
        large = limit is not None and len(content) > limit
        context = queue_id.encode()

        def seal() -> Seals:
            # Sealed straight from the concatenation: no plaintext copy waits with the
            # sealed one for the store.
            if self.archive is None:
                return self.keyring.seal(header + content, context), None
            return self.archive.seal(self.keyring, header + content, context)

        contents = self.db.contents if large else None
        if contents is None:
            return Sealing(seal, None, queue_id)

        def seal_into_file() -> Seals:
            # On disk before the row that holds its key is committed; the row then holds
            # the key alone: no copy of a large message waits for the inspection and the
            # commit.
            if self.archive is None:  # encrypted as it is written, never whole in memory
                write = partial(contents.write, queue_id)
                return self.keyring.seal_to((header, content), context, write), None
            sealed, archive_sealed = seal()  # the archive's row needs the whole ciphertext
            contents.write(queue_id, (sealed.ciphertext,))
            return dataclasses.replace(sealed, ciphertext=b""), archive_sealed

        return Sealing(seal_into_file, contents, queue_id)

    async def _decide(
        self,
        queue_id: str,
        submission: Submission,
        passphrase_fields: Sequence[bytes],
        header: bytes,
        sealing: Sealing,
        now: float,
    ) -> Reply:
        try:
            parsed = parse(submission.content)
            findings = await self.inspector.inspect_async(parsed.message)
            if submission.declared_phi is not None:
                findings = submission.declared_phi.onto(findings)
            policy = self.policy()
            considered = consider(
                policy,
                submission.envelope,
                parsed.message,
                len(submission.content),
                findings,
                now,
                self.purpose_header,
            )
            needed = considered.consent_needed
            consent: Mapping[str, str] = (
                await self.consent.states(needed.recipients, needed.purpose) if needed else {}
            )
            evaluation = considered.decide(consent)
        except UnknownPurpose as exc:
            return Reply(550, f"5.7.1 {exc}")
        except Exception:  # fail closed: an inspection or policy error is never a pass
            event(log, "intake_failed", logging.ERROR, queue_id=queue_id, stage="decide")
            return Reply(451, "4.3.0 Message could not be inspected; try again later")
        # The parsed message holds the content again, as text: let it go before the
        # waits below (consent, the store), where many large messages may be at once.
        message_id = parsed.message_id
        del parsed
        decisions = [
            decision_event(evaluation, d, queue_id, submission, now) for d in evaluation.decisions
        ]
        _count(findings, evaluation.decisions)
        if not evaluation.accepted:
            first = evaluation.refused[0]
            event(log, "refused_by_policy", queue_id=queue_id, rule=first.rule or "defaults")
            rule = first.rule or "defaults"
            reply = Reply(550, f"5.7.1 {first.reason} (policy rule {rule})", rule=rule)
            return await self._refuse(queue_id, decisions, reply)
        domain = evaluation.facts.from_domain
        if self.signer is not None and self.signer.missing_required_key(domain):
            # Never an unsigned message from a domain that must sign: the client
            # retries once an admin has made the key.
            event(log, "dkim_key_missing", logging.ERROR, queue_id=queue_id, domain=domain)
            return Reply(451, f"4.7.0 No DKIM signing key for {domain}; try again later")
        passphrase_hash = None
        wanting = next((d for d in evaluation.accepted if _needs_passphrase(d)), None)
        if wanting is not None:
            passphrase = passphrases.passphrase_of(passphrase_fields)
            if passphrase is None:
                return await self._refuse_without_passphrase(queue_id, wanting, decisions)
            passphrase_hash = await asyncio.to_thread(passphrases.hash_passphrase, passphrase)
        return await self._store(
            queue_id,
            submission,
            message_id,
            (policy, evaluation, passphrase_hash),
            decisions,
            (header, sealing),
            now,
        )

    async def _over_limit_early(self, submission: Submission) -> Reply | None:
        """The sender's limit this message would pass, as far as this process knows."""
        key = submission.rate_key
        if self.rates is None or key is None:
            return None
        breach = await self.rates.early(self.db, key, len(submission.recipients))
        return None if breach is None else Reply(*breach.smtp, retry_after=breach.retry_after)

    async def _refuse(self, queue_id: str, events: list[AuditEvent], reply: Reply) -> Reply:
        """Nothing is stored but the audit of the decisions and of the refusal."""
        try:
            await self.db.write(lambda conn: trail.append(conn, events))
        except Exception:
            event(log, "store_failed", logging.ERROR, queue_id=queue_id)
            return Reply(451, "4.3.0 Message could not be recorded; try again later")
        return reply

    async def _refuse_without_passphrase(
        self, queue_id: str, decision: Decision, decisions: list[AuditEvent]
    ) -> Reply:
        """A rule wants a passphrase the message does not give (well): refuse it whole.

        Audited as a policy refusal is: the decisions here, the reply by the
        listener. Neither the reply nor the log holds the header's value.
        """
        rule = decision.rule or "defaults"
        event(log, "refused_without_passphrase", queue_id=queue_id, rule=rule)
        reply = Reply(
            550,
            f"5.7.1 Policy rule {rule} needs a portal passphrase: set the "
            f"{self.passphrase_header} header to the one shared with the recipient "
            f"({passphrases.RULES})",
            rule=rule,
        )
        return await self._refuse(queue_id, decisions, reply)

    async def _store(
        self,
        queue_id: str,
        submission: Submission,
        raw_message_id: str | None,
        decided: tuple[CompiledPolicy, Evaluation, str | None],
        decisions: list[AuditEvent],
        stored: tuple[bytes, Sealing],
        now: float,
    ) -> Reply:
        policy, evaluation, passphrase_hash = decided
        header, sealing = stored
        message_id = self.header_values.recordable_message_id(raw_message_id)
        try:
            sealed, archive_sealed = await sealing.seals()
        except Exception as exc:  # fail closed: nothing is accepted that could not be sealed
            problem = exc.problem if isinstance(exc, ContentNotWritten) else type(exc).__name__
            event(log, "store_failed", logging.ERROR, queue_id=queue_id, problem=problem)
            return Reply(451, "4.3.0 Message could not be stored; try again later")
        archived = None
        if archive_sealed is not None and self.archive is not None:
            try:
                copy = archive_copy(
                    queue_id, submission, message_id, evaluation, now, header, archive_sealed
                )
                archived = await self.archive.place(copy)
            except Exception as exc:  # fail closed: nothing is accepted without its archive copy
                problem = str(exc) if isinstance(exc, ArchiveStorageError) else type(exc).__name__
                event(log, "archive_failed", logging.ERROR, queue_id=queue_id, problem=problem)
                return Reply(451, "4.3.0 Message could not be archived; try again later")
        record = queue.NewMessage(
            queue_id=queue_id,
            received_at=now,
            listener=submission.listener,
            principal=submission.principal,
            client_ip=submission.client_ip,
            sender=submission.sender,
            size=len(submission.content),
            message_id=message_id,
            sealed=sealed,
            content_in_file=sealing.in_file,
        )
        accepted = evaluation.accepted
        new_jobs = [job_for(d, evaluation, policy, passphrase_hash) for d in accepted]
        mailto_targets = (
            [self.mailto.target(job.recipient, MARKETING, now) for job in new_jobs if job.purpose]
            if self.mailto is not None
            else []
        )
        events = [
            *decisions,
            AuditEvent(
                event="accepted",
                result="queued",
                queue_id=queue_id,
                principal=submission.principal,
                client_ip=submission.client_ip,
                sender=submission.sender,
                recipients=tuple(d.recipient for d in accepted),
                size=len(submission.content),
                code=250,
                detail=audit_facets.accepted_detail(submission.token, message_id),
                ts=now,
            ),
        ]
        dsn = self._refusal_notice(queue_id, submission, message_id, evaluation.refused, now)

        rates, key, also = self.rates, submission.rate_key, submission.record
        lease = self.handoff.lease(record.size) if self.handoff is not None else None

        def store(conn: Connection) -> tuple[Charged | None, queue.Leased | None]:
            # May run again if the writer redoes its batch: build nothing it keeps.
            charged = None
            if rates is not None and key is not None:
                charged = rates.charge(conn, key, len(new_jobs), now)
                if charged.breach is not None:
                    return charged, None  # over a limit: nothing stored, nothing counted
            leased = queue.insert_message(conn, record, new_jobs, lease)
            if also is not None:
                also(conn, queue_id)
            if archived is not None:
                archive_writer.record(conn, archived)
            remember(conn, mailto_targets)  # its mailto works once the mail is out
            notices = []
            if dsn is not None:
                why = "refused by policy"
                notices.append(queue_dsn(conn, dsn, queue_id, submission.sender, now, why))
            trail.append(conn, [*events, *notices])
            return charged, leased

        handoff = self.handoff
        take = partial(handoff.take, lease) if handoff is not None and lease is not None else None

        def handed(stored: tuple[Charged | None, queue.Leased | None] | None) -> None:
            if take is not None:  # a refused or failed store gives the worker back
                take(stored[1] if stored is not None else None)

        try:
            # Handed over once committed, even if this session is gone by then.
            charged, _ = await self.db.write(store, then=handed if take is not None else None)
        except Exception:
            sealing.keep()  # the commit may have happened before the failure
            event(log, "store_failed", logging.ERROR, queue_id=queue_id)
            return Reply(451, "4.3.0 Message could not be stored; try again later")
        if rates is not None and charged is not None:
            rates.learn(charged)
            if charged.breach is not None:  # nothing was stored
                breach = charged.breach
                event(log, "rate_limited", queue_id=queue_id, limit=breach.limit)
                return Reply(*breach.smtp, retry_after=breach.retry_after)
        sealing.keep()
        event(
            log,
            "accepted",
            queue_id=queue_id,
            principal=submission.principal,
            client_ip=submission.client_ip,
            recipients=len(accepted),
            held=sum(d.action == "hold" for d in accepted),
            refused=len(evaluation.refused),
            size=len(submission.content),
        )
        if lease is None or dsn is not None:  # mail for the dispatcher to claim
            self.on_queued()
        refused = tuple(
            Refused(d.recipient, d.rule or "defaults", d.reason or "") for d in evaluation.refused
        )
        return Reply(250, f"2.0.0 Ok: queued as {queue_id}", queue_id, refused=refused)

    def _refusal_notice(
        self,
        queue_id: str,
        submission: Submission,
        message_id: str | None,
        refused: list[Decision],
        now: float,
    ) -> queue.NewMessage | None:
        """A DSN for the recipients the policy refused while others were accepted."""
        if not refused or is_null_sender(submission.sender):
            return None
        when = datetime.fromtimestamp(now, UTC)
        return self.bounces.dsn(
            queue_id=queue_id,
            sender=submission.sender,
            message_id=message_id,
            received_at=now,
            failed=[
                FailedRecipient(
                    recipient=d.recipient,
                    status="5.7.1",
                    diagnostic=f"smtp; 550 5.7.1 {d.reason} (policy rule {d.rule or 'defaults'})",
                    remote_mta=None,
                    last_attempt=when,
                )
                for d in refused
            ],
            now=now,
        )
