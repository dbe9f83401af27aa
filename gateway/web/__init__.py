"""phigate's web app: the send API, the consent API, one-click unsubscribe pages, the
portal and the reviewer's pages.

What every route needs is one `WebContext`, kept on the app and handed to
routes by the `web_context` dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from gateway.config import ConsentConfig
from gateway.consent.links import UnsubscribeLinks
from gateway.store.database import Database


@dataclass(frozen=True)
class WebContext:
    db: Database
    consent: ConsentConfig  # the purposes records may name, and their descriptions
    links: UnsubscribeLinks


def web_context(request: Request) -> WebContext:
    context: WebContext = request.app.state.context
    return context
