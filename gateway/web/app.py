"""The FastAPI app: send and consent APIs, pages, and what keeps them quiet and safe.

Nothing here writes URLs or bodies anywhere: each request is logged as one
metadata-only event naming its route template (never the path, which holds
tokens), a failure answers a plain 500 with no traceback, and bodies are capped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import ConsentConfig
from gateway.consent.links import UnsubscribeLinks
from gateway.logs import event
from gateway.store.database import Database
from gateway.web import WebContext, api, health, portal, portal_api, reviewer, send, unsubscribe
from gateway.web.pages import Refused, refused_page

log = logging.getLogger("gateway.web")

OPENAPI_PATH = "/api/openapi.json"
MAX_BODY_BYTES = 1024 * 1024  # a query of 1,000 long addresses fits


class RequestLog:
    """ASGI middleware: one event per request, with method, route template, status,
    duration and the API token's name; never the path, query, headers or body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            event(
                log,
                "web_request",
                method=scope["method"],
                route=_route_template(scope),
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
                token=scope.get("state", {}).get("token_name"),
            )


def _route_template(scope: Scope) -> str:
    """The matched route's template ("/unsubscribe/{token}"); "-" when none matched."""
    path = getattr(scope.get("route"), "path", None)
    if path is None and scope["path"] == OPENAPI_PATH:  # a plain route, not recorded in scope
        path = OPENAPI_PATH
    return str(path or "-")


async def internal_error(_request: Request, exc: Exception) -> Response:
    event(log, "web_error", logging.ERROR, error=type(exc).__name__)
    return PlainTextResponse("Internal error: the request was not completed.", 500)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    """422 naming each field and what is wrong, without echoing the input back."""
    assert isinstance(exc, RequestValidationError)
    detail: list[dict[str, Any]] = [
        {
            "loc": list(error["loc"]),
            "msg": error["msg"].removeprefix("Value error, "),  # pydantic's, for ValueError
            "type": error["type"],
        }
        for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def create_app(
    db: Database,
    consent: ConsentConfig,
    links: UnsubscribeLinks,
    portal_parts: portal.PortalParts | None = None,
    readiness: health.Readiness | None = None,
    reviewer_parts: reviewer.ReviewerParts | None = None,
    send_parts: send.SendParts | None = None,
) -> FastAPI:
    """The web app over this store; `links` reads unsubscribe tokens; with
    `portal_parts`, the portal's pages too; with `readiness`, /healthz and /readyz;
    with `reviewer_parts`, the reviewer's pages (/review/); with `send_parts`,
    the send API (/api/v1/messages)."""
    app = FastAPI(
        title="phigate API",
        version="1",
        description="Send mail; record and query marketing authorizations and opt-outs; "
        "recall messages sent to the portal. "
        "Authenticate with `Authorization: Bearer <token>` (`phigate token add`).",
        openapi_url=OPENAPI_PATH,
        max_body_size=MAX_BODY_BYTES,  # larger bodies get 413 before they are read whole
        docs_url=None,  # Swagger UI and ReDoc load their assets from a CDN
        redoc_url=None,
    )
    app.state.context = WebContext(db, consent, links)
    app.include_router(api.router)
    app.include_router(portal_api.router)
    app.include_router(unsubscribe.router)
    if readiness is not None:
        app.state.readiness = readiness
        app.include_router(health.router)
    if portal_parts is not None:
        app.state.portal = portal.Portal(db, portal_parts)
        app.include_router(portal.router)
    if send_parts is not None:
        app.state.sending = send.Sending(send_parts)
        app.include_router(send.router)
        send.publish_problems(app)
    if reviewer_parts is not None:
        app.state.reviewer = reviewer.Reviewer(db, reviewer_parts)
        app.include_router(reviewer.router)
    app.add_exception_handler(Refused, refused_page)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_middleware(RequestLog)
    return app
