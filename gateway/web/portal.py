"""The portal's pages: a recipient opens a link, proves the address, reads, downloads, replies.

Server-rendered (Jinja2), no scripts, one stylesheet. Every response carries
a strict Content-Security-Policy and is never cached; every form carries a
CSRF token (double submit: a random cookie and its HMAC under the portal
key). A link (its token) finds and decrypts a copy; a session cookie, bound
to one copy, is what proves that this browser answered the code. Audit
events and logs hold metadata only: never the token, the code or content.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Connection
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from gateway import metrics
from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.config import PortalConfig
from gateway.logs import event
from gateway.portal import access, custody, outbox, passphrase, reading, replying
from gateway.portal.notices import Notices, when
from gateway.store import portal, portal_access
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.web.pages import Refused, csrf_cookie, secure, set_cookie
from gateway.web.unsubscribe import mask

log = logging.getLogger("gateway.web")

SESSION_COOKIE = "portal_session"
CSRF_COOKIE = "portal_csrf"
COOKIE_PATH = "/portal/"
_FORM_SLACK = 64 * 1024  # multipart boundaries and the text field, beyond the files
ROUTE_BODY_LIMIT = 100 * 1024 * 1024 + _FORM_SLACK  # PortalConfig.max_reply_bytes' ceiling
_TEMPLATES = Path(str(resources.files("gateway.web") / "templates" / "portal"))


@dataclass(frozen=True)
class PortalParts:
    """What the portal's pages need, built by the composition root."""

    keyring: Keyring
    notices: Notices
    config: PortalConfig
    key: bytes  # the portal key (keys/portal.key): code hashes and CSRF tokens
    replies: replying.ReplySubmitter
    on_queued: Callable[[], None]  # wakes delivery: a code should leave at once
    public_url: str  # web.public_url ("" = https://<hostname>): decides Secure cookies
    address: str  # the portal's mail address: notices, codes and replies come from it
    logo: tuple[bytes, str] | None  # (image, content type) of portal.logo_file


class Portal:
    """The parts, the per-process rate limit and the page templates."""

    def __init__(self, db: Database, parts: PortalParts) -> None:
        self.db = db
        self.parts = parts
        self.rate = access.ClientRate(parts.config.requests_per_minute)
        self.env = Environment(
            loader=FileSystemLoader(str(_TEMPLATES)), autoescape=select_autoescape(["html"])
        )
        self.env.filters["filesize"] = _filesize
        self.style = (_TEMPLATES / "style.css").read_bytes()


def _filesize(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def portal_of(request: Request) -> Portal:
    """The portal, after the client's rate check (429 page beyond it)."""
    found: Portal = request.app.state.portal
    if not found.rate.allow(_client(request)):
        raise Refused(
            _page(
                found,
                request,
                "Too many requests",
                [
                    "This page was asked for too often from your network. Wait a minute, "
                    "then try again."
                ],
                429,
                retry_at=time.time() + 60,
            )
        )
    return found


Ctx = Annotated[Portal, Depends(portal_of)]
router = APIRouter(include_in_schema=False)


def _render(
    ctx: Portal, request: Request, template: str, title: str, status: int = 200, **values: object
) -> HTMLResponse:
    page = ctx.env.get_template(template).render(
        title=title,
        organisation=ctx.parts.notices.organisation,
        logo=ctx.parts.logo is not None,
        **values,
    )
    return secure(HTMLResponse(page, status_code=status), request)


def _page(
    ctx: Portal,
    request: Request,
    title: str,
    lines: Sequence[str],
    status: int,
    back: str | None = None,
    retry_at: float | None = None,
) -> HTMLResponse:
    """An information page; `retry_at` (for 429) also tells clients when, in Retry-After."""
    response = _render(ctx, request, "info.html", title, status, lines=lines, back=back)
    if retry_at is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_at - time.time())))
    return response


def _audit(
    copy: portal.Copy, name: str, result: str, client: str, detail: str | None = None
) -> AuditEvent:
    return AuditEvent(
        event=name,
        result=result,
        queue_id=copy.queue_id,
        principal=copy.principal,
        client_ip=client,
        recipients=(copy.recipient,),
        detail=detail,
    )


@dataclass(frozen=True)
class Opened:
    link: custody.Link
    copy: portal.Copy


async def _open(ctx: Portal, request: Request, token: str, content: bool = False) -> Opened:
    """The copy the link names, if it can still be read; else a page saying why.
    `content`: load the sealed message too (only pages that show it need it)."""
    now = time.time()
    link = custody.parse_token(token)
    copy = (
        await ctx.db.read(lambda c: portal.by_verifier(c, link.verifier, content)) if link else None
    )
    if link is None or copy is None:
        event(log, "portal_link", result="unknown")
        raise Refused(
            _page(
                ctx,
                request,
                "This link does not work",
                [
                    "The link may have been cut short or changed when it was copied. Open it "
                    "again from the email you received, or ask the sender to send the message "
                    "again."
                ],
                404,
            )
        )
    if copy.state == portal.RECALLED:
        raise Refused(
            _page(
                ctx,
                request,
                "This message was withdrawn",
                [
                    "The sender withdrew this message, so it can no longer be read. If you "
                    "need it, contact the sender."
                ],
                410,
            )
        )
    if not copy.readable(now) or (content and copy.sealed is None):
        raise Refused(
            _page(
                ctx,
                request,
                "This message has expired",
                [
                    f"Secure messages can be read for a limited time; this one could be read "
                    f"until {when(copy.expires_at)}. If you still need it, ask the sender to "
                    "send it again."
                ],
                410,
            )
        )
    return Opened(link, copy)


def _unlocked(ctx: Portal, request: Request, copy: portal.Copy) -> None:
    until = access.locked_until(copy, time.time())
    if until is not None:
        raise Refused(_locked_page(ctx, request, until))


def _locked_page(ctx: Portal, request: Request, until: float) -> HTMLResponse:
    return _page(
        ctx,
        request,
        "Too many wrong attempts",
        [
            f"To protect this message, it cannot be opened until {when(until)}. "
            "Try again after that time with a new code."
        ],
        429,
        retry_at=until,
    )


def _set_cookie(
    response: Response, request: Request, ctx: Portal, name: str, value: str, max_age: int | None
) -> None:
    set_cookie(response, request, ctx.parts.public_url, COOKIE_PATH, name, value, max_age)


def _with_csrf(response: Response, request: Request, ctx: Portal, cookie: str) -> Response:
    if request.cookies.get(CSRF_COOKIE) != cookie:
        _set_cookie(response, request, ctx, CSRF_COOKIE, cookie, None)
    return response


def _check_csrf(ctx: Portal, request: Request, field: object) -> None:
    if not access.csrf_valid(
        ctx.parts.key, request.cookies.get(CSRF_COOKIE), field if isinstance(field, str) else None
    ):
        raise Refused(
            _page(
                ctx,
                request,
                "This form has expired",
                [
                    "The page was open too long or was sent from elsewhere. Go back, reload "
                    "the page and try again."
                ],
                403,
            )
        )


def _has_session(ctx: Portal, request: Request, copy: portal.Copy) -> Callable[[Connection], bool]:
    secret = request.cookies.get(SESSION_COOKIE)
    digest = access.secret_hash(secret) if secret else ""
    now = time.time()
    return lambda conn: bool(digest) and portal_access.session_opens(conn, digest, copy.id, now)


async def _session(ctx: Portal, request: Request, token: str, content: bool = True) -> Opened:
    """The copy, for a browser whose session was started for it; else back to the landing page."""
    opened = await _open(ctx, request, token, content)
    if not await ctx.db.read(_has_session(ctx, request, opened.copy)):
        raise Refused(secure(RedirectResponse(f"/portal/m/{token}", 303), request))
    return opened


def _access_page(
    ctx: Portal,
    request: Request,
    opened: Opened,
    status: int = 200,
    *,
    code_sent: bool = False,
    error: str | None = None,
) -> Response:
    copy, now = opened.copy, time.time()
    cookie = csrf_cookie(request, CSRF_COOKIE)
    response = _render(
        ctx,
        request,
        "access.html",
        "You have a secure message",
        status,
        token=opened.link.token,
        csrf=access.csrf_token(ctx.parts.key, cookie),
        recipient=mask(copy.recipient),
        sender=copy.sender if copy.show_sender else None,
        expires=when(copy.expires_at),
        passphrase=copy.access == portal.PASSPHRASE,
        code_sent=code_sent,
        code_waiting=copy.code_expires_at is not None and now < copy.code_expires_at,
        minutes=ctx.parts.config.code_minutes,
        error=error,
    )
    return _with_csrf(response, request, ctx, cookie)


@router.get("/portal/style.css")
async def style(request: Request, ctx: Ctx) -> Response:
    return secure(Response(ctx.style, media_type="text/css"), request)


@router.get("/portal/logo")
async def logo(request: Request, ctx: Ctx) -> Response:
    if ctx.parts.logo is None:
        return _page(ctx, request, "No logo", ["This portal has no logo."], 404)
    image, content_type = ctx.parts.logo
    return secure(Response(image, media_type=content_type), request)


@router.get("/portal/m/{token}")
async def landing(token: str, request: Request, ctx: Ctx) -> Response:
    opened = await _open(ctx, request, token)
    copy = opened.copy
    await ctx.db.write(
        lambda conn: trail.append(
            conn, [_audit(copy, "portal_link_opened", "ok", _client(request))]
        )
    )
    _unlocked(ctx, request, copy)
    if await ctx.db.read(_has_session(ctx, request, copy)):
        return secure(RedirectResponse(f"/portal/m/{token}/message", 303), request)
    return _access_page(ctx, request, opened)


async def _small_form(request: Request) -> dict[str, str]:
    async with request.form(max_files=0, max_fields=8, max_part_size=4096) as form:
        return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post("/portal/m/{token}/code")
async def send_code(token: str, request: Request, ctx: Ctx) -> Response:
    opened = await _open(ctx, request, token)
    copy, parts, now = opened.copy, ctx.parts, time.time()
    _check_csrf(ctx, request, (await _small_form(request)).get("csrf"))
    _unlocked(ctx, request, copy)
    if copy.access != portal.CODE:
        return _access_page(
            ctx, request, opened, 400, error="This message opens with a passphrase."
        )
    window = access.next_code_window(copy, parts.config, now)
    if not isinstance(window, access.CodeWindow):
        return _page(
            ctx,
            request,
            "Too many codes asked for",
            [
                f"Several codes were sent in the last hour. Use the newest one, or ask for a "
                f"new code after {when(window)}."
            ],
            429,
            retry_at=window,
        )
    code = access.new_code()
    content = parts.notices.code(
        recipient=copy.recipient, code=code, minutes=parts.config.code_minutes
    )
    client = _client(request)

    def record(conn: Connection) -> bool:
        if not portal_access.set_code(
            conn,
            copy.id,
            code_hash=access.code_hash(parts.key, copy.id, code),
            expires_at=now + parts.config.code_minutes * 60,
            codes_sent=window.codes_sent,
            window_start=window.window_start,
        ):
            return False
        _, mail = outbox.queue_mail(
            conn,
            parts.keyring,
            to=copy.recipient,
            content=content,
            kind="code",
            about=copy.queue_id,
            now=now,
        )
        trail.append(conn, [mail, _audit(copy, "portal_code_sent", "ok", client)])
        return True

    if not await ctx.db.write(record):
        return _page(  # expired or recalled since the page was opened
            ctx,
            request,
            "This message can no longer be read",
            ["It expired or was withdrawn by the sender."],
            410,
        )
    parts.on_queued()
    return _access_page(ctx, request, opened, code_sent=True)


@router.post("/portal/m/{token}/verify")
async def verify(token: str, request: Request, ctx: Ctx) -> Response:
    opened = await _open(ctx, request, token)
    copy, parts, now = opened.copy, ctx.parts, time.time()
    form = await _small_form(request)
    _check_csrf(ctx, request, form.get("csrf"))
    _unlocked(ctx, request, copy)
    if copy.access == portal.PASSPHRASE:
        right = await asyncio.to_thread(
            passphrase.passphrase_matches, copy.passphrase_hash, form.get("passphrase", "")
        )
    else:
        right = access.code_matches(parts.key, copy, form.get("code", ""), now)
    client = _client(request)
    if not right:

        def fail(conn: Connection) -> float | None:
            failed = portal_access.count_failure(conn, copy.id)
            until = access.lockout_end(failed, parts.config, now)
            events = [_audit(copy, "portal_code_failed", "failed", client, f"attempt {failed}")]
            if until is not None:
                portal_access.lock(conn, copy.id, until)
                events.append(_audit(copy, "portal_locked", "locked", client))
            trail.append(conn, events)
            return until

        until = await ctx.db.write(fail)
        if until is not None:
            return _locked_page(ctx, request, until)
        what = "passphrase" if copy.access == portal.PASSPHRASE else "code"
        return _access_page(
            ctx,
            request,
            opened,
            400,
            error=f"That {what} is not right, or it has expired. Check it and try again"
            + ("." if what == "passphrase" else ", or ask for a new code."),
        )
    secret = access.new_secret()
    lifetime = parts.config.session_minutes * 60
    await ctx.db.write(
        lambda conn: portal_access.start_session(
            conn, copy.id, access.secret_hash(secret), now, now + lifetime
        )
    )
    response = secure(RedirectResponse(f"/portal/m/{token}/message", 303), request)
    _set_cookie(response, request, ctx, SESSION_COOKIE, secret, lifetime)
    return response


async def _content(ctx: Portal, request: Request, opened: Opened) -> bytes:
    copy = opened.copy
    assert copy.sealed is not None  # checked by _open
    try:
        return custody.open_sealed(
            ctx.parts.keyring,
            copy.sealed,
            opened.link,
            custody.context_of(copy.queue_id, copy.recipient),
        )
    except custody.CustodyError:
        event(log, "portal_link", result="does_not_open", portal_id=copy.id)
        raise Refused(
            _page(
                ctx,
                request,
                "This link does not work",
                ["The message cannot be opened with this link. Ask the sender to send it again."],
                404,
            )
        ) from None


@router.get("/portal/m/{token}/message")
async def message(token: str, request: Request, ctx: Ctx) -> Response:
    opened = await _session(ctx, request, token)
    copy, parts, now = opened.copy, ctx.parts, time.time()
    shown = await asyncio.to_thread(reading.read, await _content(ctx, request, opened))
    client = _client(request)

    def record(conn: Connection) -> bool:
        first = portal.record_view(conn, copy.id, now)
        view = "view=first" if first else "view=again"  # the first is the pickup
        events = [_audit(copy, "portal_viewed", "ok", client, view)]
        if first and copy.read_receipt:
            receipt = parts.notices.receipt(
                sender=copy.sender, recipient=copy.recipient, queue_id=copy.queue_id, opened_at=now
            )
            _, mail = outbox.queue_mail(
                conn,
                parts.keyring,
                to=copy.sender,
                content=receipt,
                kind="receipt",
                about=copy.queue_id,
                now=now,
            )
            events.append(mail)
        trail.append(conn, events)
        return first

    if await ctx.db.write(record):
        metrics.PORTAL_COPIES.labels("viewed").inc()
        if copy.read_receipt:  # a receipt was queued with the first view
            parts.on_queued()
    return _render(
        ctx,
        request,
        "message.html",
        "Your secure message",
        token=token,
        reading=shown if isinstance(shown, reading.Reading) else None,
        unreadable=shown.reason if isinstance(shown, reading.Unreadable) else None,
        expires=when(copy.expires_at),
    )


def _content_disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback and the UTF-8 name."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    encoded = urllib.parse.quote(filename, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


@router.get("/portal/m/{token}/attachments/{number}")
async def download(token: str, number: str, request: Request, ctx: Ctx) -> Response:
    opened = await _session(ctx, request, token)
    copy = opened.copy
    content = await _content(ctx, request, opened)
    index = int(number) if number.isascii() and number.isdigit() and len(number) < 6 else -1
    found = await asyncio.to_thread(reading.attachment, content, index) if index >= 0 else None
    if found is None:
        return _page(
            ctx,
            request,
            "No such attachment",
            ["This message has no such attachment."],
            404,
            back=f"/portal/m/{token}/message",
        )
    client = _client(request)

    def record(conn: Connection) -> None:
        portal.record_download(conn, copy.id)
        trail.append(
            conn,
            [
                _audit(
                    copy,
                    "portal_downloaded",
                    "ok",
                    client,
                    f"attachment {index}, {len(found.content)} bytes",
                )
            ],
        )

    await ctx.db.write(record)
    response = Response(found.content, media_type=found.content_type)
    response.headers["Content-Disposition"] = _content_disposition(found.filename)
    return secure(response, request)


def _reply_form(ctx: Portal, request: Request, token: str) -> Response:
    cookie = csrf_cookie(request, CSRF_COOKIE)
    response = _render(
        ctx,
        request,
        "reply.html",
        "Reply",
        token=token,
        csrf=access.csrf_token(ctx.parts.key, cookie),
        limit=ctx.parts.config.max_reply_bytes,
    )
    return _with_csrf(response, request, ctx, cookie)


@router.get("/portal/m/{token}/reply")
async def reply_form(token: str, request: Request, ctx: Ctx) -> Response:
    await _session(ctx, request, token, content=False)
    return _reply_form(ctx, request, token)


class _InMemoryParser(MultiPartParser):
    # Uploads stay in memory (never in a temporary file on disk): they are PHI,
    # and their total is bounded by portal.max_reply_bytes before parsing.
    spool_max_size = ROUTE_BODY_LIMIT


class _TooLarge(Exception):
    pass


async def _bounded(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _TooLarge
        yield chunk


async def _reply_form_data(
    request: Request, limit: int
) -> tuple[dict[str, str], list[replying.ReplyFile]]:
    fields: dict[str, str] = {}
    files: list[replying.ReplyFile] = []
    parser = _InMemoryParser(
        request.headers, _bounded(request, limit), max_files=20, max_fields=8, max_part_size=limit
    )
    form = await parser.parse()
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                if value.filename or data:
                    files.append(
                        replying.ReplyFile(
                            reading.safe_filename(value.filename, len(files)),
                            value.content_type or "application/octet-stream",
                            data,
                        )
                    )
            else:
                fields[name] = value
    finally:
        await form.close()
    return fields, files


@router.post("/portal/m/{token}/reply", max_body_size=ROUTE_BODY_LIMIT)
async def reply(token: str, request: Request, ctx: Ctx) -> Response:
    opened = await _session(ctx, request, token)
    copy, parts = opened.copy, ctx.parts
    limit = parts.config.max_reply_bytes + _FORM_SLACK
    too_large = _page(
        ctx,
        request,
        "Your reply is too large",
        [
            f"A reply with its attachments may be {_filesize(parts.config.max_reply_bytes)} at "
            "most. Send fewer or smaller files."
        ],
        413,
        back=f"/portal/m/{token}/message",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return too_large
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return _page(
            ctx, request, "This form could not be read", ["Reload the page and try again."], 400
        )
    try:
        fields, files = await _reply_form_data(request, limit)
    except _TooLarge:
        return too_large
    except MultiPartException:
        return _page(
            ctx, request, "This form could not be read", ["Reload the page and try again."], 400
        )
    _check_csrf(ctx, request, fields.get("csrf"))
    # The stream's bound leaves room for the form's framing; the limit is on
    # what the recipient typed and attached.
    typed = len(fields.get("text", "").encode()) + sum(len(f.content) for f in files)
    if typed > parts.config.max_reply_bytes:
        return too_large
    original = await asyncio.to_thread(reading.read, await _content(ctx, request, opened))
    content = replying.compose_reply(
        copy=copy,
        organisation=parts.notices.organisation,
        portal_address=parts.address,
        original_subject=original.subject if isinstance(original, reading.Reading) else "",
        original_message_id=original.message_id if isinstance(original, reading.Reading) else None,
        text=fields.get("text", ""),
        files=files,
    )
    client = _client(request)
    result = await parts.replies.submit(copy, client, content)
    back = f"/portal/m/{token}/message"
    if result.code == 250:
        now = time.time()

        def record(conn: Connection) -> None:
            portal.record_reply(conn, copy.id, now)
            trail.append(conn, [_audit(copy, "portal_replied", "ok", client, result.queue_id)])

        await ctx.db.write(record)
        return _page(
            ctx,
            request,
            "Your reply was sent",
            ["Your reply is on its way to the sender."],
            200,
            back=back,
        )
    if 400 <= result.code < 500:
        return _page(
            ctx,
            request,
            "Your reply could not be sent now",
            [
                "Something on our side is busy. Try again later.",
                f"Details: {result.code} {result.text}",
            ],
            503,
            back=back,
        )
    return _page(
        ctx,
        request,
        "Your reply was not accepted",
        ["The reply could not be sent, for this reason:", f"{result.code} {result.text}"],
        400,
        back=back,
    )
