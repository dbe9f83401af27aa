"""What every server-rendered page (the portal's, the reviewer's) sends with it.

A strict Content-Security-Policy (no scripts at all, this origin's
stylesheet), no caching, no framing, no referrer; HSTS over HTTPS. Cookies
are Secure unless the web app is reached over plain http on purpose.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from fastapi.responses import Response

from gateway.portal import access
from gateway.reports import render_html

CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

# A compliance report (gateway/reports/render_html): its inline stylesheet by hash,
# its charts inline SVG, nothing fetched, no forms.
REPORT_CSP = (
    f"default-src 'none'; style-src 'sha256-{render_html.STYLE_SHA256}'; img-src data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)

R = TypeVar("R", bound=Response)


def https(request: Request, public_url: str) -> bool:
    """Whether cookies must be Secure: HTTPS here, or behind a proxy whose public
    address (web.public_url, empty: https://<hostname>) is not plain http."""
    return request.url.scheme == "https" or not public_url.startswith("http:")


def secure(response: R, request: Request) -> R:
    headers = response.headers
    headers["Content-Security-Policy"] = CSP
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Cache-Control"] = "no-store"
    headers["X-Robots-Tag"] = "noindex"
    if request.url.scheme == "https":
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


class Refused(Exception):
    """A page that ends the request early (bad link, locked, signed out, forbidden, CSRF)."""

    def __init__(self, response: Response) -> None:
        super().__init__("request refused")
        self.response = response


async def refused_page(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return exc.response


def report_page(response: R, request: Request) -> R:
    """A report document with the headers of every page and its own CSP."""
    secure(response, request)
    response.headers["Content-Security-Policy"] = REPORT_CSP
    return response


def set_cookie(
    response: Response,
    request: Request,
    public_url: str,
    path: str,
    name: str,
    value: str,
    max_age: int | None,
) -> None:
    """A cookie of these pages: HttpOnly, SameSite=Strict, Secure unless plain http on
    purpose (see `https`), under `path` only."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=https(request, public_url),
        httponly=True,
        samesite="strict",
    )


def csrf_cookie(request: Request, name: str) -> str:
    """The form token's cookie value this browser has, or a new one."""
    return request.cookies.get(name) or access.new_secret()
