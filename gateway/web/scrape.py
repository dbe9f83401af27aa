"""The metrics listener's app: GET /metrics (Prometheus text format), /healthz, /readyz.

It runs on its own address (`metrics.address`), never on the public web
app. With `metrics.token`, /metrics wants `Authorization: Bearer TOKEN`; the
health checks stay open, as load balancers and orchestrators ask without one.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from functools import partial

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway import metrics
from gateway.audit import cursors
from gateway.store import queue
from gateway.store.database import Database
from gateway.web import health
from gateway.web.app import RequestLog, internal_error


def _authorized(request: Request, token: str | None) -> bool:
    if token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


def create_metrics_app(
    db: Database,
    readiness: health.Readiness,
    token: str | None,
    forwarder_cursor: str | None = None,
) -> FastAPI:
    """`forwarder_cursor`: the audit forwarder's cursor, whose lag is reported (None: off)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.readiness = readiness
    app.include_router(health.router)

    @app.get("/metrics")
    async def scrape(request: Request) -> Response:
        if not _authorized(request, token):
            return PlainTextResponse(
                "Unauthorized: send Authorization: Bearer <metrics.token>.",
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        depth = await db.read(queue.depth)
        oldest = depth.oldest_received_at
        now = time.time()
        age = max(0.0, now - oldest) if oldest is not None else 0.0
        lag = None
        if forwarder_cursor is not None:
            behind = await db.read(partial(cursors.lag, name=forwarder_cursor, now=now))
            lag = (behind.events, behind.seconds)
        # Reads every process's file: off the event loop.
        body = await asyncio.to_thread(metrics.exposition, depth.jobs, age, lag)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_exception_handler(Exception, internal_error)
    app.add_middleware(RequestLog)
    return app
