"""One-click unsubscribe pages (RFC 8058) for the links in marketing mail.

GET shows a confirmation page and changes nothing: mail scanners and link
previews open links. POST with `List-Unsubscribe=One-Click` (what a mail
client sends, and what the page's button sends) records the opt-out at once.
Pages show the address masked, load nothing from elsewhere, and are never cached.
"""

from __future__ import annotations

import html
import logging
import time
from importlib import resources
from string import Template
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from gateway.consent import registry
from gateway.consent.links import LinkError, UnsubscribeRequest
from gateway.logs import event
from gateway.web import WebContext, web_context

log = logging.getLogger("gateway.web")

PAGE = Template((resources.files("gateway.web") / "templates" / "page.html").read_text("utf-8"))
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
ONE_CLICK = ("List-Unsubscribe", "One-Click")
_FORM = (
    '<form method="post">'
    f'<input type="hidden" name="{ONE_CLICK[0]}" value="{ONE_CLICK[1]}">'
    '<button type="submit">Unsubscribe</button></form>'
)
_NOT_AFFECTED = '<p class="note">Messages about your care and your account are not affected.</p>'

router = APIRouter(include_in_schema=False)
Context = Annotated[WebContext, Depends(web_context)]


def mask(address: str) -> str:
    """`j***@example.org`: enough for its owner to recognise, little for anyone else."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _what(ctx: WebContext, purpose: str) -> str:
    """What the recipient stops getting, in words: "marketing email (Flu clinic news)"."""
    _, _, sub = purpose.partition("/")
    if not sub:
        return "marketing email"
    config = ctx.consent.purposes.get(sub)
    return f"marketing email ({config.description if config and config.description else sub})"


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    """A page; `title` is text, `body` is HTML whose variable parts are already escaped."""
    content = PAGE.substitute(title=html.escape(title), body=body)
    return HTMLResponse(content, status_code=status_code, headers=HEADERS)


def _error_page(kind: str, ctx: WebContext) -> HTMLResponse:
    if kind == "expired":
        days = ctx.links.link_days
        return _page(
            "This unsubscribe link has expired",
            f"<p>Unsubscribe links work for {days} days. Use the unsubscribe link in a more "
            "recent message from us, or reply to that message and ask to be removed.</p>",
            410,
        )
    return _page(
        "This unsubscribe link is not valid",
        "<p>The link may have been cut short or changed when it was copied. Open it again "
        "from the message, or use the unsubscribe link in a more recent message.</p>",
        400,
    )


def _read(ctx: WebContext, token: str, now: float) -> UnsubscribeRequest | HTMLResponse:
    try:
        return ctx.links.read(token, now)
    except LinkError as exc:
        event(log, "unsubscribe", result=exc.kind)
        return _error_page(exc.kind, ctx)


def _confirmation(ctx: WebContext, request: UnsubscribeRequest, status_code: int) -> HTMLResponse:
    what = html.escape(_what(ctx, request.purpose))
    return _page(
        "Unsubscribe?",
        f"<p>Stop {what} to <strong>{html.escape(mask(request.address))}</strong>?</p>"
        f"{_FORM}{_NOT_AFFECTED}",
        status_code,
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
async def confirm(token: str, ctx: Context) -> HTMLResponse:
    found = _read(ctx, token, time.time())
    if isinstance(found, HTMLResponse):
        return found
    return _confirmation(ctx, found, 200)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, request: Request, ctx: Context) -> HTMLResponse:
    now = time.time()
    found = _read(ctx, token, now)
    if isinstance(found, HTMLResponse):
        return found
    async with request.form(max_files=0, max_fields=16, max_part_size=1024) as form:
        one_click = form.get(ONE_CLICK[0]) == ONE_CLICK[1]
    if not one_click:
        event(log, "unsubscribe", result="not_one_click", token_id=found.token_id)
        return _confirmation(ctx, found, 400)

    def record(conn: Connection) -> bool:
        return registry.opt_out(
            conn,
            address=found.address,
            purpose=found.purpose,
            source="unsubscribe",
            actor="recipient",
            now=now,
            reference=found.token_id,
        )

    recorded = await ctx.db.write(record)
    event(log, "unsubscribe", result="recorded" if recorded else "already", token_id=found.token_id)
    what = html.escape(_what(ctx, found.purpose))
    who = html.escape(mask(found.address))
    if recorded:
        return _page(
            "You are unsubscribed", f"<p>{who} will get no more {what} from us.</p>{_NOT_AFFECTED}"
        )
    return _page(
        "You were already unsubscribed",
        f"<p>{who} is unsubscribed from {what}; nothing more to do.</p>{_NOT_AFFECTED}",
    )
