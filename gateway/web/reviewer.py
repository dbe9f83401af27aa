"""The reviewer's pages (/review/): sign-in for people, audit search, message timelines, reports.

Server-rendered (Jinja2), no scripts, one stylesheet, the same security
headers as the portal (gateway.web.pages). A person signs in with a name and
password (gateway.web.factors), then a TOTP code when enrolled or when their
role requires one; wrong attempts lock them out (gateway.web.users). Sessions
live in the store (gateway.web.sessions) with an idle timeout and an
absolute lifetime; every form carries a CSRF token (double submit, keyed).

Each page a person opens is an audit event (`web_view`, actor `web:<name>`)
naming the page and, for a search, which kinds of filter were used — never
their values, which may be addresses.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Connection

from gateway.audit import indexer, search, trail
from gateway.audit.aggregates import span_of
from gateway.audit.timeline import timeline
from gateway.audit.trail import AuditEvent
from gateway.config import AnomalyConfig, ReviewerConfig
from gateway.portal import access
from gateway.portal.notices import when
from gateway.reports import gather, render_html
from gateway.store.audit_facets import TLS_KINDS
from gateway.store.database import Database
from gateway.web import factors, roles, sessions, users
from gateway.web.pages import Refused, csrf_cookie, report_page, secure, set_cookie
from gateway.web.users import User

PREFIX = "/review"
SESSION_COOKIE = "review_session"
CSRF_COOKIE = "review_csrf"
COOKIE_PATH = PREFIX + "/"
VIEW_EVENT = "web_view"
SIGN_OUT_EVENT = "web_sign_out"
_TEMPLATES = Path(str(resources.files("gateway.web") / "templates" / "review"))
_QUEUE_ID = re.compile(r"^[0-9A-Za-z]{1,32}$")
# Search filters as the page's query names them (the CLI's options): text ones.
_TEXT_FILTERS = (
    "queue_id", "message_id", "principal", "sender", "recipient", "recipient_domain",
    "rule", "policy_version", "mode", "result", "actor",
)  # fmt: skip


@dataclass(frozen=True)
class ReviewerParts:
    """What the reviewer's pages need, built by the composition root."""

    config: ReviewerConfig
    key: bytes  # the web key (keys/web.key): TOTP secrets and CSRF tokens
    public_url: str  # web.public_url: decides Secure cookies
    # What the report page builds its anomalies with (reports.anomalies, and the
    # personal mailbox domains of reports.consumer_domains).
    report_options: AnomalyConfig
    report_domains: frozenset[str]


class Reviewer:
    def __init__(self, db: Database, parts: ReviewerParts) -> None:
        self.db = db
        self.parts = parts
        self.config = parts.config
        self.sign_ins = access.ClientRate(parts.config.sign_ins_per_minute)
        self.csrf_key = hmac.new(parts.key, b"reviewer forms", hashlib.sha256).digest()
        self.env = Environment(
            loader=FileSystemLoader(str(_TEMPLATES)), autoescape=select_autoescape(["html"])
        )
        self.env.filters["iso"] = _iso
        self.style = (_TEMPLATES / "style.css").read_bytes()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def reviewer_of(request: Request) -> Reviewer:
    found: Reviewer = request.app.state.reviewer
    return found


Ctx = Annotated[Reviewer, Depends(reviewer_of)]
router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Person:
    """A signed-in person and their session."""

    user: User
    session_hash: str


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _set_cookie(
    response: Response, request: Request, ctx: Reviewer, name: str, value: str, max_age: int | None
) -> None:
    set_cookie(response, request, ctx.parts.public_url, COOKIE_PATH, name, value, max_age)


def _render(
    ctx: Reviewer,
    request: Request,
    template: str,
    title: str,
    status: int = 200,
    person: Person | None = None,
    **values: object,
) -> HTMLResponse:
    cookie = csrf_cookie(request, CSRF_COOKIE)
    page = ctx.env.get_template(template).render(
        title=title,
        person=person.user if person else None,
        pages=roles.pages_of(person.user.role) if person else (),
        csrf=access.csrf_token(ctx.csrf_key, cookie),
        **values,
    )
    response = secure(HTMLResponse(page, status_code=status), request)
    if request.cookies.get(CSRF_COOKIE) != cookie:
        _set_cookie(response, request, ctx, CSRF_COOKIE, cookie, None)
    return response


def _info(
    ctx: Reviewer,
    request: Request,
    title: str,
    lines: Sequence[str],
    status: int,
    person: Person | None = None,
) -> HTMLResponse:
    return _render(ctx, request, "info.html", title, status, person, lines=lines)


def _redirect(request: Request, to: str) -> RedirectResponse:
    return secure(RedirectResponse(to, 303), request)


def _check_csrf(ctx: Reviewer, request: Request, form: dict[str, str]) -> None:
    if not access.csrf_valid(ctx.csrf_key, request.cookies.get(CSRF_COOKIE), form.get("csrf")):
        raise Refused(
            _info(
                ctx,
                request,
                "This form has expired",
                [
                    "The page was open too long or the form was sent from elsewhere. Go back, "
                    "reload the page and try again."
                ],
                403,
            )
        )


def _check_rate(ctx: Reviewer, request: Request) -> None:
    """Passwords and codes tried from this client address: a 429 page beyond the rate."""
    if not ctx.sign_ins.allow(_client(request)):
        response = _info(
            ctx,
            request,
            "Too many sign-in attempts",
            ["Too many sign-ins were tried from your network. Wait a minute, then try again."],
            429,
        )
        response.headers["Retry-After"] = "60"
        raise Refused(response)


async def _form(request: Request) -> dict[str, str]:
    async with request.form(max_files=0, max_fields=8, max_part_size=4096) as form:
        return {k: v for k, v in form.items() if isinstance(v, str)}


# --- who is signed in ---------------------------------------------------------------


async def _session_of(ctx: Reviewer, request: Request) -> tuple[sessions.Session, User] | None:
    """The live session of this browser and its person, verified or not."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None

    def look(conn: Connection) -> tuple[sessions.Session, User] | None:
        found = sessions.find(conn, secret)
        if found is None:
            return None
        user = users.by_id(conn, found.user_id)
        return (found, user) if user is not None else None

    found = await ctx.db.read(look)
    now = time.time()
    if found is None:
        return None
    session, user = found
    idle = ctx.config.idle_minutes * 60
    if not session.live(now, idle) or user.disabled_at is not None or user.locked(now):
        await ctx.db.write(lambda conn: sessions.end(conn, session.session_hash))
        return None
    return session, user


def _sign_in_again(request: Request) -> Refused:
    response = _redirect(request, f"{PREFIX}/sign-in")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return Refused(response)


def signed_in_for(page: str | None) -> Callable[..., Coroutine[Any, Any, Person]]:
    """A dependency admitting a verified session whose person's role may see `page`
    (None: any signed-in person). Without one: back to sign-in; a role that may not
    see the page: 403, audited like a view."""

    async def check(request: Request, ctx: Ctx) -> Person:
        found = await _session_of(ctx, request)
        if found is None or not found[0].verified:
            raise _sign_in_again(request)
        session, user = found
        person = Person(user, session.session_hash)
        if page is not None and not roles.may_see(user.role, page):
            await _viewed(ctx, request, person, page, "forbidden")
            raise Refused(
                _info(
                    ctx,
                    request,
                    "You may not see this page",
                    [
                        f"Your role ({user.role}) does not include this page. An admin can "
                        "change it with `phigate user role NAME ROLE`."
                    ],
                    403,
                    person,
                )
            )
        return person

    return check


async def _viewed(
    ctx: Reviewer,
    request: Request,
    person: Person,
    page: str,
    result: str = "ok",
    detail: str = "",
) -> None:
    """The session was used now, and the view is audited (metadata only)."""
    now = time.time()
    seen = AuditEvent(
        VIEW_EVENT,
        result,
        client_ip=_client(request),
        detail=f"page={page}{' ' + detail if detail else ''}"[:255],
        ts=now,
        actor=person.user.actor,
    )

    def record(conn: Connection) -> None:
        sessions.touch(conn, person.session_hash, now)
        trail.append(conn, [seen])

    await ctx.db.write(record)


Anyone = Annotated[Person, Depends(signed_in_for(None))]
AuditReader = Annotated[Person, Depends(signed_in_for(roles.AUDIT))]
ReportReader = Annotated[Person, Depends(signed_in_for(roles.REPORTS))]


# --- signing in and out -------------------------------------------------------------


@router.get(f"{PREFIX}/style.css")
async def style(request: Request, ctx: Ctx) -> Response:
    return secure(Response(ctx.style, media_type="text/css"), request)


@router.get(PREFIX)
async def bare(request: Request) -> Response:
    return _redirect(request, COOKIE_PATH)  # the cookies' path ends with a slash


def _sign_in_form(
    ctx: Reviewer, request: Request, status: int = 200, error: str | None = None
) -> HTMLResponse:
    return _render(ctx, request, "sign_in.html", "Sign in", status, error=error)


@router.get(f"{PREFIX}/sign-in")
async def sign_in_page(request: Request, ctx: Ctx) -> Response:
    found = await _session_of(ctx, request)
    if found is not None and found[0].verified:
        return _redirect(request, COOKIE_PATH)
    return _sign_in_form(ctx, request)


def _locked_page(ctx: Reviewer, request: Request, until: float) -> HTMLResponse:
    response = _info(
        ctx,
        request,
        "Too many wrong attempts",
        [
            f"To protect this account, it cannot sign in until {when(until)}. Try again "
            "then, or ask an admin to run `phigate user unlock NAME`."
        ],
        429,
    )
    response.headers["Retry-After"] = str(max(1, int(until - time.time())))
    return response


_WRONG = "The name or password is not right. Check them and try again."


async def _wrong(
    ctx: Reviewer, request: Request, user: User, factor: str, retry: Callable[[], Response]
) -> Response:
    """Count a wrong password or code: the locked page once they are too many, else `retry`."""
    config, client, now = ctx.config, _client(request), time.time()
    until = await ctx.db.write(
        lambda conn: users.failed(
            conn, user, factor, config.lockout_attempts, config.lockout_minutes * 60, client, now
        )
    )
    if until is not None:
        return _locked_page(ctx, request, until)
    return retry()


async def _start_session(
    ctx: Reviewer, request: Request, user: User, verified: bool
) -> RedirectResponse:
    """A new session (replacing the browser's old one) and its cookie."""
    now, client = time.time(), _client(request)
    old = request.cookies.get(SESSION_COOKIE)
    lifetime = ctx.config.max_session_hours * 3600 if verified else ctx.config.code_minutes * 60

    def record(conn: Connection) -> str:
        if old:
            sessions.end(conn, sessions.secret_hash(old))
        if verified:
            users.signed_in(conn, user, client, now)
        return sessions.start(conn, user.id, verified, now, now + lifetime)

    secret = await ctx.db.write(record)
    response = _redirect(request, COOKIE_PATH if verified else f"{PREFIX}/sign-in/code")
    _set_cookie(response, request, ctx, SESSION_COOKIE, secret, int(lifetime))
    return response


@router.post(f"{PREFIX}/sign-in")
async def sign_in(request: Request, ctx: Ctx) -> Response:
    form = await _form(request)
    _check_csrf(ctx, request, form)
    _check_rate(ctx, request)
    name, typed = form.get("name", "").strip(), form.get("password", "")
    client, now = _client(request), time.time()
    user = await ctx.db.read(lambda conn: users.get(conn, name)) if name else None
    if user is not None and user.locked(now):
        await ctx.db.write(lambda conn: users.refused(conn, user, "locked", client, now))
        assert user.locked_until is not None
        return _locked_page(ctx, request, user.locked_until)
    right = await asyncio.to_thread(
        factors.password_matches, user.password_hash if user else None, typed
    )
    if user is None or user.disabled_at is not None:
        reason = "unknown name" if user is None else "disabled"
        await ctx.db.write(lambda conn: users.refused(conn, user, reason, client, now))
        return _sign_in_form(ctx, request, 400, _WRONG)
    if not right:
        return await _wrong(
            ctx, request, user, "password", lambda: _sign_in_form(ctx, request, 400, _WRONG)
        )
    needs_code = user.enrolled or user.role in ctx.config.totp_required_roles
    if needs_code and not user.enrolled:
        await ctx.db.write(lambda conn: users.refused(conn, user, "no totp", client, now))
        return _info(
            ctx,
            request,
            "A second factor is needed",
            [
                f"People with the role {user.role} sign in with a code from an authenticator "
                "app as well. Ask an admin to run `phigate user totp enroll "
                f"{user.name}` and add the secret it shows to your app."
            ],
            403,
        )
    return await _start_session(ctx, request, user, verified=not needs_code)


def _code_form(
    ctx: Reviewer, request: Request, status: int = 200, error: str | None = None
) -> HTMLResponse:
    return _render(
        ctx, request, "code.html", "Your code", status, error=error, digits=factors.CODE_DIGITS
    )


async def _waiting_for_code(ctx: Reviewer, request: Request) -> User:
    found = await _session_of(ctx, request)
    if found is None or found[0].verified:
        raise _sign_in_again(request)
    return found[1]


@router.get(f"{PREFIX}/sign-in/code")
async def code_page(request: Request, ctx: Ctx) -> Response:
    await _waiting_for_code(ctx, request)
    return _code_form(ctx, request)


@router.post(f"{PREFIX}/sign-in/code")
async def code(request: Request, ctx: Ctx) -> Response:
    form = await _form(request)
    _check_csrf(ctx, request, form)
    _check_rate(ctx, request)
    user = await _waiting_for_code(ctx, request)
    assert user.totp_sealed is not None  # the password step asked for a code only then
    try:
        secret = factors.open_totp(ctx.parts.key, user.name, user.totp_sealed)
    except factors.FactorError:
        client, now = _client(request), time.time()
        await ctx.db.write(lambda conn: users.refused(conn, user, "totp unreadable", client, now))
        return _info(
            ctx,
            request,
            "Your code cannot be checked",
            [
                "Your authenticator app's enrolment no longer matches this server's key. "
                f"Ask an admin to run `phigate user totp enroll {user.name}` and add the "
                "new secret to your app."
            ],
            503,
        )
    step = factors.totp_step(secret, form.get("code", ""), user.totp_last_step)
    if step is None or not await ctx.db.write(lambda conn: users.use_step(conn, user, step)):
        error = "That code is not right, or it was used already. Type the newest code."
        return await _wrong(
            ctx, request, user, "code", lambda: _code_form(ctx, request, 400, error)
        )
    return await _start_session(ctx, request, user, verified=True)


@router.post(f"{PREFIX}/sign-out")
async def sign_out(request: Request, ctx: Ctx) -> Response:
    form = await _form(request)
    _check_csrf(ctx, request, form)
    found = await _session_of(ctx, request)
    if found is not None:
        session, user = found
        now, client = time.time(), _client(request)

        def record(conn: Connection) -> None:
            sessions.end(conn, session.session_hash)
            trail.append(
                conn, [AuditEvent(SIGN_OUT_EVENT, "ok", client_ip=client, ts=now, actor=user.actor)]
            )

        await ctx.db.write(record)
    response = _info(
        ctx, request, "You are signed out", ["Close this window or sign in again."], 200
    )
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


# --- pages --------------------------------------------------------------------------


@router.get(COOKIE_PATH)
async def home(request: Request, ctx: Ctx, person: Anyone) -> Response:
    await _viewed(ctx, request, person, "home")
    return _render(ctx, request, "home.html", "Reviewer", person=person)


def _filters(query: dict[str, str], events: list[str]) -> tuple[search.Filters, list[str]]:
    """The search's filters from the query, and the kinds of filter used (for the audit);
    search.FilterError says which filter cannot be read."""
    given: dict[str, Any] = {}
    for name in _TEXT_FILTERS:
        value = query.get(name, "").strip()
        if value:
            given[name] = value
    tls = query.get("tls", "")
    if tls:
        if tls not in TLS_KINDS:
            raise search.FilterError(f"TLS verification must be one of {', '.join(TLS_KINDS)}")
        given["tls"] = tls
    for name, end in (("since", False), ("until", True)):
        value = query.get(name, "").strip()
        if value:
            given[name] = search.parse_when(value, end=end)
    kinds = tuple(word for text in events for word in text.replace(",", " ").split())
    used = sorted([*given, *(["event"] if kinds else [])])
    return search.Filters(events=kinds, **given), used


@router.get(f"{PREFIX}/audit")
async def audit_search(request: Request, ctx: Ctx, person: AuditReader) -> Response:
    query = {k: v for k, v in request.query_params.items() if k != "event"}
    events = request.query_params.getlist("event")
    after_text = query.get("after", "0")
    # An event id (paging); anything else, or beyond any id, starts from the first page.
    numeric = after_text.isascii() and after_text.isdigit() and len(after_text) <= 18
    after = int(after_text) if numeric else 0
    asked = any(v.strip() for k, v in query.items() if k != "after") or any(events)
    error = None
    page: search.Page | None = None
    counted: search.Summary | None = None
    used: list[str] = []
    try:
        filters, used = _filters(query, events)
    except search.FilterError as exc:
        error = str(exc)
    if error is None and asked:
        limit = ctx.config.page_size

        def run(conn: Connection) -> tuple[search.Page, search.Summary]:
            return search.search(conn, filters, limit, after), search.summary(conn, filters)

        await indexer.index_pending(ctx.db)  # what the server has not indexed yet
        page, counted = await ctx.db.read(run)
    detail = f"filters={','.join(used) or '-'}" + (f" after={after}" if after else "")
    await _viewed(
        ctx, request, person, "audit_search", "ok" if error is None else "bad_filter", detail
    )
    next_link = None
    if page is not None and page.next_after is not None:
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "after" and v]
        next_link = f"{PREFIX}/audit?" + urllib.parse.urlencode([*kept, ("after", page.next_after)])
    return _render(
        ctx,
        request,
        "audit.html",
        "Audit search",
        400 if error else 200,
        person,
        query=query,
        event_text=" ".join(events),
        tls_kinds=TLS_KINDS,
        error=error,
        asked=asked,
        page=page,
        counted=counted,
        after=after,
        next_link=next_link,
    )


@router.get(PREFIX + "/audit/messages/{queue_id}")
async def message_timeline(
    queue_id: str, request: Request, ctx: Ctx, person: AuditReader
) -> Response:
    if not _QUEUE_ID.match(queue_id):
        await _viewed(ctx, request, person, "timeline", "not_found")
        return _info(ctx, request, "No such message", ["That is not a queue id."], 404, person)
    await indexer.index_pending(ctx.db)
    life = timeline(queue_id, await ctx.db.read(lambda conn: search.of_message(conn, queue_id)))
    await _viewed(
        ctx, request, person, "timeline", "ok" if life.found else "not_found", f"queue={queue_id}"
    )
    if not life.found:
        return _info(
            ctx,
            request,
            "No such message",
            [f"The audit trail holds no events about {queue_id}."],
            404,
            person,
        )
    return _render(
        ctx,
        request,
        "timeline.html",
        f"Message {queue_id}",
        person=person,
        life=life,
        about=life.summary(),
    )


@router.get(f"{PREFIX}/reports")
async def reports(request: Request, ctx: Ctx, person: ReportReader) -> Response:
    """A form for the time range, then the report of `phigate report --format html`,
    a document of its own (to print or save)."""
    since = request.query_params.get("from", "").strip()
    until = request.query_params.get("to", "").strip()
    error = None
    if since and until:
        try:
            span = span_of(since, until)
        except search.FilterError as exc:
            error = str(exc)
        else:
            options, domains = ctx.parts.report_options, ctx.parts.report_domains
            await indexer.index_pending(ctx.db)
            built = await ctx.db.read(lambda conn: gather.report(conn, span, options, domains))
            await _viewed(ctx, request, person, "report", detail="range=given")
            return report_page(HTMLResponse(render_html.render(built)), request)
    elif since or until:
        error = "give both the start and the end"
    await _viewed(ctx, request, person, "reports", "ok" if error is None else "bad_filter")
    today = datetime.fromtimestamp(time.time(), UTC).date()
    return _render(
        ctx,
        request,
        "reports.html",
        "Reports",
        status=400 if error else 200,
        person=person,
        error=error,
        since=since or (today - timedelta(days=6)).isoformat(),
        until=until or today.isoformat(),
    )
