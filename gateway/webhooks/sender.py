"""Posting one signed webhook: verified TLS, to an address checked at connection time.

The HTTP client is httpcore's connection pool (what httpx is built on) with a
network backend of our own: it resolves the URL's host when a connection is
opened, checks every address (gateway.webhooks.urls) and connects to the one
it checked; TLS then verifies the certificate against the URL's host name.
Redirects are not followed (a 3xx is a failed attempt), the answer's body is
not read beyond 64 KiB, and every attempt has a time limit.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import httpcore

from gateway.config import WebhooksConfig
from gateway.webhooks import signing, urls
from gateway.webhooks.outbox import Outcome
from gateway.webhooks.urls import IPNetwork, Target, UnsafeUrl

_MAX_ANSWER = 64 * 1024
_USER_AGENT = "phigate-webhooks"


class SenderSetupError(Exception):
    """The trust store named in webhooks.ca_file cannot be used."""


def client_context(config: WebhooksConfig, path: Path | None) -> ssl.SSLContext:
    """Verify receivers' certificates and names: the system's CAs, or `path`."""
    try:
        context = ssl.create_default_context(cafile=str(path) if path is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise SenderSetupError(
            f"webhooks.ca_file: cannot load {path} ({exc}): give a PEM file of CA "
            "certificates (relative paths are under data_dir), or null for the system's"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses a webhook of `scheme` may go to, the one checked."""

    def __init__(self, scheme: str, allowed: Sequence[IPNetwork]) -> None:
        self.scheme = scheme
        self.allowed = tuple(allowed)
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        bare = host.strip("[]")
        loop = asyncio.get_running_loop()
        try:
            found = await loop.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UnsafeUrl(f"{bare} does not resolve ({exc.strerror or exc})") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        address = urls.check(Target("", self.scheme, bare, port), addresses, self.allowed)
        return await self.inner.connect_tcp(
            address, port, timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeUrl("webhooks are never sent over a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class Sender:
    """Posts webhooks, reusing connections per receiver; one per process."""

    def __init__(self, config: WebhooksConfig, tls: ssl.SSLContext) -> None:
        self.config = config
        allowed = urls.networks(config.allowed_networks)
        # One pool per scheme, so that each connection is checked by its own rules
        # (plain http only into allowed_networks).
        self.pools = {
            scheme: httpcore.AsyncConnectionPool(
                ssl_context=tls,
                max_connections=config.concurrency * 2,
                max_keepalive_connections=config.concurrency,
                keepalive_expiry=30.0,
                network_backend=_CheckedBackend(scheme, allowed),
            )
            for scheme in ("https", "http")
        }

    async def post(self, url: str, secret: bytes, webhook_id: str, payload: str) -> Outcome:
        """One attempt; its outcome, never an exception."""
        try:
            target = urls.parse(url)
        except UnsafeUrl as exc:
            return Outcome(None, str(exc))
        body = payload.encode()
        headers = [
            ("user-agent", _USER_AGENT),
            *signing.headers(secret, webhook_id, int(time.time()), body),
        ]
        timeouts = {
            "connect": self.config.connect_timeout,
            "read": self.config.timeout,
            "write": self.config.timeout,
            "pool": self.config.timeout,
        }
        try:
            async with asyncio.timeout(self.config.timeout):
                async with self.pools[target.scheme].stream(
                    "POST", url, headers=headers, content=body, extensions={"timeout": timeouts}
                ) as response:
                    read = 0
                    async for chunk in response.aiter_stream():
                        read += len(chunk)
                        if read > _MAX_ANSWER:
                            break
                    return Outcome(response.status)
        except UnsafeUrl as exc:
            return Outcome(None, f"refused: {exc}")
        except TimeoutError:
            return Outcome(None, f"no answer within {self.config.timeout:g} s")
        except ssl.SSLError as exc:
            return Outcome(None, f"TLS: {exc.reason or type(exc).__name__}")
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
            return Outcome(None, f"{type(exc).__name__}: {_cause(exc)}")
        except (OSError, httpcore.UnsupportedProtocol) as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        for pool in self.pools.values():
            await pool.aclose()


def _cause(exc: BaseException) -> str:
    """The error's words: a TLS verification failure says what did not verify."""
    text = str(exc)
    for inner in (exc.__cause__, exc.__context__):
        if isinstance(inner, ssl.SSLCertVerificationError):
            return f"certificate not verified ({inner.verify_message})"
    return text or "connection failed"
