"""The send API (/api/v1/messages): mail from a sending system over HTTPS, through intake.

`POST /api/v1/messages` takes a JSON message (made into RFC 5322 here),
`POST /api/v1/messages/raw` a whole one (`message/rfc822`); a token with
scope send sends as its principal, whose sender domains and From: domains
are checked by the very functions the SMTP listener uses. The message goes
through intake like mail over SMTP, with the same promise: 201 and its queue
id only once it is stored. `GET /api/v1/messages/{queue_id}` tells the
principal that sent a message what became of it, per recipient.

Errors are problem+json naming the field and the fix (gateway.web.problems);
none holds content, nor does the log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response, status
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import Connection
from starlette.types import Message

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.config import SendApiConfig
from gateway.consent.purpose import MARKETING, PurposeHeader, UnknownPurpose
from gateway.inspect.findings import DeclaredPhi
from gateway.logs import event
from gateway.mail.compose import Attachment, Draft, DraftError, compose, envelope_of, with_crlf
from gateway.mail.content import author_refusal, content_problem, sender_refusal
from gateway.message_templates import Rendered, TemplateError, TemplateFileError, render
from gateway.message_templates import store as templates
from gateway.store import idempotency, principals, sent
from gateway.store.principals import Principal
from gateway.web import WebContext, tokens
from gateway.web.api import Context, admit, bearer
from gateway.web.problems import PROBLEM_RESPONSE, Problem, ProblemRoute, response
from gateway.web.send_bodies import (
    IdempotencyKey,
    MessageIn,
    MessageOut,
    RecipientOut,
)
from gateway.web.tokens import ApiToken

log = logging.getLogger("gateway.web")

# The listener name of the messages sent here (messages.listener, the accepted metric).
LISTENER = "api"
# What the framework lets through; the configured limits, smaller, are checked here.
_CEILING = 1 << 40
# JSON carries attachments in base64 (4 octets for 3) besides its own syntax.
_JSON_OVERHEAD = 64 * 1024
# Old idempotency keys are removed at most this often per process (in a send's commit).
_PRUNE_EVERY = 3600.0
# Answered while intake could not store the message (the store, inspection, a key).
_RETRY_SOON = 30


# --- what the composition root hands the web app ------------------------------------


class RefusedRecipient(Protocol):
    @property
    def recipient(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def reason(self) -> str: ...


class Outcome(Protocol):
    """Intake's reply (gateway.intake.Reply)."""

    @property
    def code(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def queue_id(self) -> str | None: ...
    @property
    def rule(self) -> str | None: ...
    @property
    def retry_after(self) -> int | None: ...
    @property
    def refused(self) -> Sequence[RefusedRecipient]: ...


@dataclass(frozen=True)
class Outgoing:
    """A message to hand to intake as token `token` of `principal`."""

    token: str
    principal: str
    client_ip: str
    tls: bool
    sender: str
    recipients: tuple[str, ...]
    content: bytes
    # Written in the transaction that stores the message, with its queue id.
    record: Callable[[Connection, str], None] | None = None
    # The PHI variables of the template it was rendered from, given a value.
    declared_phi: DeclaredPhi | None = None


class Submitter(Protocol):
    async def send(self, outgoing: Outgoing) -> Outcome: ...


@dataclass(frozen=True)
class SendParts:
    submitter: Submitter
    config: SendApiConfig
    max_message_size: int  # limits.max_message_size
    max_recipients: int  # limits.max_recipients
    hostname: str  # the domain of the Message-IDs made here
    category_header: Callable[[], str]  # the live policy's category header
    purpose_header: PurposeHeader  # consent.purpose_header and the configured purposes


@dataclass
class Sending:
    """The send API's state in one process: its parts and the keys being answered."""

    parts: SendParts
    in_flight: set[tuple[str, str]] = field(default_factory=set)
    next_prune: float = 0.0


def sending(request: Request) -> Sending:
    state: Sending = request.app.state.sending
    return state


# --- routes -------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {**PROBLEM_RESPONSE, "description": description}
    for code, description in (
        (401, "No, an unknown or a revoked token."),
        (403, "The token lacks scope send, or its principal is disabled."),
        (409, "A request with this idempotency key is being answered."),
        (413, "The request or the message is larger than limits.max_message_size allows."),
        (422, "The request is not valid, or the policy refused the message (`rule`)."),
        (429, "Over a sending limit: retry after `Retry-After` seconds."),
        (503, "The message could not be stored now: retry after `Retry-After` seconds."),
    )
}


def _body_limit(parts: SendParts, raw: bool) -> int:
    """The largest request body a route takes: a message of limits.max_message_size,
    in JSON with its attachments in base64."""
    if raw:
        return parts.max_message_size
    return parts.max_message_size * 4 // 3 + _JSON_OVERHEAD


class SendRoute(ProblemRoute):
    """A send route: problem+json errors, and a body refused (413, problem+json) past
    its limit, before it is read whole when its length is declared."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        raw = self.path.endswith("/raw")

        async def limited(request: Request) -> Response:
            limit = _body_limit(sending(request).parts, raw)
            too_large = Problem.field(
                status.HTTP_413_CONTENT_TOO_LARGE,
                "too-large",
                "message" if raw else "body",
                f"the request is larger than {limit} octets (limits.max_message_size"
                f"{'' if raw else ', in base64 and JSON'}): send a smaller message",
            )
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                return response(too_large)
            size = 0
            receive = request.receive

            async def counted() -> Message:
                nonlocal size
                message = await receive()
                size += len(message.get("body", b""))
                if size > limit:
                    raise too_large  # answered by the problem route
                return message

            return await handler(Request(request.scope, counted))

        return limited


router = APIRouter(
    prefix="/api/v1/messages",
    tags=["send"],
    route_class=SendRoute,
    max_body_size=_CEILING,
    responses=_ERRORS,
)


def publish_problems(app: FastAPI) -> None:
    """Make the app's OpenAPI document say that the send routes' errors are
    problem+json only (FastAPI lists an error's model as application/json too)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            for path, operations in build()["paths"].items():
                if not path.startswith(router.prefix):
                    continue
                for operation in operations.values():
                    for code, described in operation["responses"].items():
                        if code[0] in "45":
                            described.get("content", {}).pop("application/json", None)
        return build()  # the document built once, as changed here

    app.openapi = openapi  # type: ignore[method-assign]


@dataclass(frozen=True)
class Caller:
    token: ApiToken
    principal: Principal
    secret: str  # the bearer secret: keys the hash of an idempotent request


async def _caller(
    request: Request,
    ctx: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The token presented, with scope send, and the principal it sends as: one read."""
    found: tuple[ApiToken | None, Principal | None] = (None, None)
    if credentials is not None:
        secret = credentials.credentials
        found = await ctx.db.read(lambda conn: _token_and_principal(conn, secret))
    token = await admit(request, ctx, found[0], tokens.SEND)
    principal, name = found[1], token.principal
    if principal is None or not principal.enabled:
        raise Problem(
            status.HTTP_403_FORBIDDEN,
            "principal-disabled",
            f"token {token.name!r} sends as principal {name!r}, which is missing or disabled: "
            f"enable it (`phigate principal enable {name}`) or make a token for another",
        )
    assert credentials is not None  # admitted: a token was presented
    return Caller(token, principal, credentials.credentials)


def _token_and_principal(conn: Connection, secret: str) -> tuple[ApiToken | None, Principal | None]:
    token = tokens.authenticate(conn, secret)
    if token is None or token.principal is None:
        return token, None
    return token, principals.get(conn, token.principal)


Sender = Annotated[Caller, Depends(_caller)]
Send = Annotated[Sending, Depends(sending)]
KeyHeader = Annotated[
    IdempotencyKey | None,
    Header(alias="Idempotency-Key", description="As `idempotency_key` in the body."),
]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Send a message",
    response_model=MessageOut,
    responses={200: {"model": MessageOut, "description": "A retry: the first answer's message."}},
)
async def send_message(
    message: MessageIn,
    request: Request,
    response: Response,
    ctx: Context,
    caller: Sender,
    send: Send,
    key_header: KeyHeader = None,
) -> MessageOut:
    """Build the message, check it as SMTP would, and store it: 201 once it is stored."""
    parts = send.parts
    key = _key(message.idempotency_key, key_header)
    fingerprint = _fingerprint(caller, message.model_dump_json(exclude={"idempotency_key"}))
    replay = await _replay(ctx, send, caller, key, fingerprint, response)
    if replay is not None:
        return replay
    named = tuple(dict.fromkeys([*message.to, *message.cc, *message.bcc]))
    try:
        recipients = _recipients(named, parts.max_recipients)
        _check_sender(caller, message.from_, "from")
        rendered = await _rendered(ctx, caller, message)
        content = _compose(message, parts, rendered)
        if len(content) > parts.max_message_size:
            raise Problem.field(
                status.HTTP_413_CONTENT_TOO_LARGE,
                "too-large",
                "attachments" if message.attachments else "text",
                f"the message would be {len(content)} octets, more than limits.max_message_size "
                f"({parts.max_message_size}): send less in one message",
            )
        _check_content(caller, content, "from")
        envelope = (message.from_, recipients, content)
        declared = rendered.declared_phi if rendered is not None else None
        return await _send(request, send, caller, envelope, key, fingerprint, declared)
    except Problem as problem:
        await _audit_refusal(ctx, request, caller, (message.from_, named), problem)
        raise


@router.post(
    "/raw",
    status_code=status.HTTP_201_CREATED,
    summary="Send a whole RFC 5322 message",
    response_model=MessageOut,
    responses={200: {"model": MessageOut, "description": "A retry: the first answer's message."}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def send_raw(
    request: Request,
    response: Response,
    ctx: Context,
    caller: Sender,
    send: Send,
    key_header: KeyHeader = None,
) -> MessageOut:
    """The envelope is read from the message as `sendmail -t` reads it: the sender from
    Sender: or From:, the recipients from To:, Cc: and Bcc: (whose fields are removed)."""
    parts = send.parts
    content = with_crlf(await request.body())
    key = _key(None, key_header)
    fingerprint = _fingerprint(caller, content)
    replay = await _replay(ctx, send, caller, key, fingerprint, response)
    if replay is not None:
        return replay
    addressed: tuple[str | None, tuple[str, ...]] = (None, ())
    try:
        problem = content_problem(content)
        if problem is not None:
            raise _from_reply(problem, "message")
        try:
            envelope = envelope_of(content)
        except DraftError as exc:
            raise Problem.field(422, "invalid-message", exc.field, str(exc)) from None
        addressed = (envelope.sender, envelope.recipients)
        if len(envelope.recipients) > parts.max_recipients:
            raise _too_many_recipients("message", parts.max_recipients)
        _check_sender(caller, envelope.sender, "message")
        _check_content(caller, envelope.content, "message")
        whole = (envelope.sender, envelope.recipients, envelope.content)
        return await _send(request, send, caller, whole, key, fingerprint)
    except Problem as refusal:
        await _audit_refusal(ctx, request, caller, addressed, refusal)
        raise


QueueId = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=32,
        pattern=r"^[0-9A-Za-z]+$",
        description="The queue id a send answered with.",
    ),
]


@router.get("/{queue_id}", summary="What became of a message", response_model=MessageOut)
async def message_status(queue_id: QueueId, ctx: Context, caller: Sender) -> MessageOut:
    """Each recipient's status (metadata only), for the principal that sent it."""
    found = await _status(ctx, queue_id, caller)
    if found is None:
        raise Problem(
            status.HTTP_404_NOT_FOUND,
            "not-found",
            f"no message {queue_id} sent by principal {caller.principal.name!r}",
        )
    return found


# --- the steps ----------------------------------------------------------------------


def _key(in_body: str | None, in_header: str | None) -> str | None:
    if in_body is not None and in_header is not None and in_body != in_header:
        raise Problem.field(
            422,
            "invalid-request",
            "idempotency_key",
            "differs from the Idempotency-Key header: give the key once, or the same in both",
        )
    return in_body if in_body is not None else in_header


def _fingerprint(caller: Caller, request: str | bytes) -> str:
    """A keyed hash of the request: equal for a retry, telling nothing of its content
    to anyone without the token's secret (which the store does not keep)."""
    data = request.encode() if isinstance(request, str) else request
    return hmac.new(caller.secret.encode(), data, hashlib.sha256).hexdigest()


async def _replay(
    ctx: Context,
    send: Sending,
    caller: Caller,
    key: str | None,
    fingerprint: str,
    response: Response,
) -> MessageOut | None:
    """The first answer to a retry with the same key (200), or None to send."""
    if key is None:
        return None
    token = caller.token.name
    since = time.time() - send.parts.config.idempotency_hours * 3600
    stored = await ctx.db.read(lambda conn: idempotency.find(conn, token, key, since))
    if stored is None:
        if (token, key) in send.in_flight:
            raise Problem.field(
                status.HTTP_409_CONFLICT,
                "idempotency-key-in-use",
                "idempotency_key",
                "a request with this key is being answered now: retry once it has been",
            )
        return None
    if not hmac.compare_digest(stored.request_hash, fingerprint):
        raise Problem.field(
            422,
            "idempotency-key-reused",
            "idempotency_key",
            f"was used for a different request in the last {send.parts.config.idempotency_hours} "
            "hours: give each message its own key",
        )
    found = await _status(ctx, stored.queue_id, caller)
    response.status_code = status.HTTP_200_OK
    return found or MessageOut(queue_id=stored.queue_id, recipients=[])


async def _audit_refusal(
    ctx: Context,
    request: Request,
    caller: Caller,
    addressed: tuple[str | None, tuple[str, ...]],
    problem: Problem,
) -> None:
    """A refused message is audited as the listener audits one (`refused`, result `api`,
    the HTTP status as its code): addresses and the error's text, never content."""
    sender, recipients = addressed
    refusal = AuditEvent(
        event="refused",
        result="api",
        principal=caller.principal.name,
        client_ip=_client_ip(request),
        sender=sender,
        recipients=recipients,
        code=problem.status_code,
        detail=str(problem.detail)[:196],
    )
    try:
        await ctx.db.write(lambda conn: trail.append(conn, [refusal]))
    except Exception as exc:  # the refusal stands; a content-free line says it went unaudited
        event(log, "refusal_not_audited", logging.ERROR, error=type(exc).__name__)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _recipients(recipients: tuple[str, ...], most: int) -> tuple[str, ...]:
    if not recipients:
        raise Problem.field(422, "invalid-request", "to", "give at least one recipient")
    if len(recipients) > most:
        raise _too_many_recipients("to", most)
    return recipients


def _too_many_recipients(where: str, most: int) -> Problem:
    return Problem.field(
        422,
        "too-many-recipients",
        where,
        f"more than {most} recipients (limits.max_recipients): send the rest in another message",
    )


def _reply_text(reply: str) -> str:
    """An SMTP reply's text, without its codes."""
    parts = reply.split(" ", 2)
    return parts[2] if len(parts) == 3 else reply


def _from_reply(reply: str, where: str) -> Problem:
    return Problem.field(422, "refused", where, _reply_text(reply))


def _check_sender(caller: Caller, sender: str, where: str) -> None:
    principal = caller.principal
    refusal = sender_refusal(sender, f'principal "{principal.name}"', principal.domains)
    if refusal is not None:
        raise Problem.field(
            422,
            "sender-not-permitted",
            where,
            f"{_reply_text(refusal)}: send from one of {', '.join(principal.domains)}",
        )


def _check_content(caller: Caller, content: bytes, where: str) -> None:
    refusal = author_refusal(content, caller.principal.author_domains)
    if refusal is not None:  # never DKIM-aligned mail as another organisation
        raise Problem.field(422, "author-not-permitted", where, _reply_text(refusal))


async def _rendered(ctx: WebContext, caller: Caller, message: MessageIn) -> Rendered | None:
    """The message's template rendered with its variables; None without a template."""
    if message.template is None:
        if message.variables:
            raise Problem.field(
                422, "invalid-request", "variables", "variables need a template: name it too"
            )
        return None
    given = [f for f in ("subject", "text", "html") if f in message.model_fields_set]
    if given:
        raise Problem.field(
            422,
            "invalid-request",
            given[0],
            f"{given[0]} comes from template {message.template!r}: leave it out, or leave "
            "out the template",
        )
    name = message.template
    try:
        stored = await ctx.db.read(lambda conn: templates.named(conn, name))
        template = stored.template()
        template.usable_by(caller.principal.name)
    except (TemplateError, TemplateFileError) as exc:
        raise Problem.field(422, "unusable-template", "template", str(exc)) from None
    try:
        return render(template, message.variables)
    except TemplateError as exc:  # names the variable, never its value
        raise Problem.field(422, "invalid-variables", "variables", str(exc)) from None


def _compose(message: MessageIn, parts: SendParts, rendered: Rendered | None) -> bytes:
    attachments = []
    if len(message.attachments) > parts.config.max_attachments:
        raise Problem.field(
            422,
            "too-many-attachments",
            "attachments",
            f"more than {parts.config.max_attachments} attachments (send_api.max_attachments): "
            "send the rest in another message",
        )
    for index, file in enumerate(message.attachments):
        try:
            content = base64.b64decode(file.content, validate=True)
        except (binascii.Error, ValueError):
            raise Problem.field(
                422, "invalid-request", f"attachments[{index}].content", "not base64 (RFC 4648)"
            ) from None
        attachments.append(Attachment(file.filename, file.content_type, content))
    headers = list(message.headers.items())
    if message.category is not None:
        headers.append((parts.category_header(), message.category))
    if message.purpose is not None:
        try:  # as intake would refuse it, but naming the field
            parts.purpose_header.purpose(MARKETING, message.purpose)
        except UnknownPurpose as exc:
            raise Problem.field(422, "unknown-purpose", "purpose", str(exc)) from None
        headers.append((parts.purpose_header.name, message.purpose))
    draft = Draft(
        sender=message.from_,
        sender_name=message.from_name,
        to=tuple(message.to),
        cc=tuple(message.cc),
        subject=rendered.subject if rendered is not None else message.subject,
        text=rendered.text if rendered is not None else message.text,
        html=rendered.html if rendered is not None else message.html,
        attachments=tuple(attachments),
        headers=tuple(headers),
    )
    try:
        return compose(draft, time.time(), parts.hostname)
    except DraftError as exc:
        raise Problem.field(422, "invalid-request", exc.field, str(exc)) from None


async def _send(
    request: Request,
    send: Sending,
    caller: Caller,
    envelope: tuple[str, tuple[str, ...], bytes],
    key: str | None,
    fingerprint: str,
    declared_phi: DeclaredPhi | None = None,
) -> MessageOut:
    sender, recipients, content = envelope
    token = caller.token.name
    record = None
    if key is not None:
        record = _recorder(send, token, key, fingerprint)
        send.in_flight.add((token, key))
    try:
        outcome = await send.parts.submitter.send(
            Outgoing(
                token=token,
                principal=caller.principal.name,
                client_ip=_client_ip(request),
                tls=request.url.scheme == "https",
                sender=sender,
                recipients=recipients,
                content=content,
                record=record,
                declared_phi=declared_phi,
            )
        )
    finally:
        if key is not None:
            send.in_flight.discard((token, key))
    return answer(outcome, recipients, "message" if request.url.path.endswith("/raw") else "to")


def _recorder(
    send: Sending, token: str, key: str, fingerprint: str
) -> Callable[[Connection, str], None]:
    hours = send.parts.config.idempotency_hours

    def record(conn: Connection, queue_id: str) -> None:
        now = time.time()
        since = now - hours * 3600
        idempotency.record(conn, token, key, fingerprint, queue_id, now, since)
        if now >= send.next_prune:
            idempotency.prune(conn, since)
            send.next_prune = now + _PRUNE_EVERY

    return record


def answer(outcome: Outcome, recipients: Sequence[str], recipients_field: str) -> MessageOut:
    """Intake's reply as the API's: the stored message, or the problem to raise."""
    if outcome.code == 250 and outcome.queue_id is not None:
        refused = {r.recipient: r for r in outcome.refused}
        return MessageOut(
            queue_id=outcome.queue_id,
            recipients=[
                RecipientOut(address=r, status="refused", rule=refused[r].rule)
                if r in refused
                else RecipientOut(address=r, status="accepted")
                for r in recipients
            ],
        )
    text = _reply_text(f"{outcome.code} {outcome.text}")
    if outcome.code >= 500:
        if outcome.rule is not None:
            raise Problem(422, "refused-by-policy", text, rule=outcome.rule)
        raise Problem(422, "refused", text)
    if outcome.retry_after:
        raise Problem(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "rate-limited",
            text,
            headers={"Retry-After": str(outcome.retry_after)},
        )
    if outcome.code == 452:  # too many recipients for the sender's limit
        raise Problem.field(422, "too-many-recipients", recipients_field, text)
    raise Problem(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "try-again",
        text,
        headers={"Retry-After": str(_RETRY_SOON)},
    )


async def _status(ctx: Context, queue_id: str, caller: Caller) -> MessageOut | None:
    principal = caller.principal.name
    found = await ctx.db.read(lambda conn: sent.status_of(conn, queue_id, principal))
    if found is None:
        return None
    return MessageOut(
        queue_id=found.queue_id,
        received_at=_when(found.received_at),
        recipients=[
            RecipientOut(
                address=r.recipient,
                status=r.status,
                attempts=r.attempts,
                last_code=r.last_code,
                last_status=r.last_status,
                updated_at=_when(r.updated_at),
            )
            for r in found.recipients
        ],
    )


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
