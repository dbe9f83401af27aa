"""MTA-STS (RFC 8461): discover, fetch and cache recipient domains' policies.

``MtaStsResolver.lookup(domain)`` answers with the policy to apply, if any:

- the ``_mta-sts.<domain>`` TXT record gives the policy id (through the
  configured name servers);
- a new id, or no valid cached policy, means fetching
  ``https://mta-sts.<domain>/.well-known/mta-sts.txt``: the host is resolved
  through the same name servers and its certificate verified for its name;
- policies are cached per domain, in memory and on disk, until their max_age
  runs out. A cached policy stays in force when DNS or HTTPS fail, and also
  when the TXT record disappears (§3.1, §10.2): otherwise whoever can strip a
  DNS answer could turn enforcement off.

Concurrent lookups for one domain share one discovery, and its outcome is
reused for a short while, so a burst of messages costs one TXT query and at
most one HTTPS fetch. Failures are classified with the RFC 8460 result types
for TLS reporting; ``lookup`` never raises on network or policy trouble.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import ssl
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import httpx
from dns.rdtypes.ANY.TXT import TXT

from gateway.delivery.mtasts_policy import (
    PolicyError,
    StsPolicy,
    is_domain_name,
    parse_policy,
    parse_txt_records,
)
from gateway.delivery.mx import MxResolver, RouteError, make_resolver
from gateway.logs import event

__all__ = [
    "FETCH_ERROR",
    "MAX_POLICY_BYTES",
    "POLICY_INVALID",
    "POLICY_PATH",
    "WEBPKI_INVALID",
    "MtaStsResolver",
    "StsLookup",
    "StsPolicy",
]

# RFC 8460 §4.3.2.1 result types.
FETCH_ERROR = "sts-policy-fetch-error"
POLICY_INVALID = "sts-policy-invalid"
WEBPKI_INVALID = "sts-webpki-invalid"

POLICY_PATH = "/.well-known/mta-sts.txt"
MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 §3.3 suggests this limit
_CACHE_FORMAT = 1
# How far down an exception's causes to look for the TLS error.
_CAUSE_DEPTH = 8
# Past this many remembered outcomes, the expired ones are dropped.
_RECENT_LIMIT = 10_000

log = logging.getLogger("gateway.delivery.mtasts")


@dataclass(frozen=True)
class StsLookup:
    """What to apply for a domain, and what went wrong finding out."""

    policy: StsPolicy | None  # None: no (usable) policy; deliver as without MTA-STS
    # RFC 8460 result type when discovery or fetching failed (for TLS reports);
    # ``policy`` may still be set then: a cached one that stays in force.
    failure: str | None = None
    detail: str | None = None  # why, for logs: no message content, only names


class _Failure(Exception):
    def __init__(self, result: str, detail: str) -> None:
        super().__init__(detail)
        self.result = result
        self.detail = detail


@dataclass(frozen=True)
class _Cached:
    policy: StsPolicy
    fetched_at: float  # wall clock, so the age survives a restart

    @property
    def expires_at(self) -> float:
        return self.fetched_at + self.policy.max_age


@dataclass(frozen=True)
class _Recent:
    until: float  # time.monotonic()
    lookup: StsLookup


class MtaStsResolver:
    """Policy lookups for the delivery worker; one instance per event loop."""

    def __init__(
        self,
        nameservers: list[str],
        cache_dir: Path,
        https_port: int = 443,
        ca_file: str | None = None,
        timeout: float = 10.0,
        *,
        txt_cache_seconds: float = 60.0,
    ) -> None:
        """``txt_cache_seconds``: how long one discovery's outcome is reused
        (shorter when the TXT record's TTL is); 0 asks DNS on every lookup."""
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if txt_cache_seconds < 0:
            raise ValueError("txt_cache_seconds must not be negative")
        self._cache_dir = cache_dir
        self._https_port = https_port
        self._timeout = timeout
        self._txt_cache_seconds = txt_cache_seconds
        # Outcomes are reused for txt_cache_seconds here, not cached by dnspython.
        self._dns = make_resolver(nameservers, timeout)
        self._addresses = MxResolver(nameservers, timeout=timeout)
        self._tls = ssl.create_default_context(cafile=ca_file)
        self._tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self._policies: dict[str, _Cached] = {}
        self._recent: dict[str, _Recent] = {}
        self._inflight: dict[str, asyncio.Task[StsLookup]] = {}
        self._closed = False

    async def lookup(self, domain: str) -> StsLookup:
        """The policy to apply to mail for ``domain`` (a lower-case A-label name)."""
        if self._closed:
            raise RuntimeError("MtaStsResolver is closed")
        domain = domain.rstrip(".").lower()  # a stray final dot or capital must not skip MTA-STS
        recent = self._recent.get(domain)
        if recent is not None and recent.until > time.monotonic():
            return recent.lookup
        # Checked before use in DNS names and as a cache file name.
        if "." not in domain or not is_domain_name(domain):
            return StsLookup(None)  # an IP literal or no domain name: nothing to look up
        task = self._inflight.get(domain)
        if task is None:
            task = asyncio.create_task(self._refresh(domain))
            self._inflight[domain] = task
            task.add_done_callback(lambda done: self._forget_task(domain, done))
        # Shielded: a waiter being cancelled must not cancel the others' lookup.
        return await asyncio.shield(task)

    async def aclose(self) -> None:
        self._closed = True
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- one discovery -------------------------------------------------------

    async def _refresh(self, domain: str) -> StsLookup:
        cached = await self._valid_cached(domain)
        current = cached.policy if cached else None
        ttl: float | None = None
        try:
            policy_id, ttl = await self._discover(domain)
            if policy_id is None or (cached is not None and cached.policy.id == policy_id):
                result = StsLookup(current)
            else:
                cached = await self._fetch_and_store(domain, policy_id)
                result = StsLookup(cached.policy)
        except _Failure as failure:
            event(
                log,
                "mta_sts_failure",
                logging.WARNING,
                domain=domain,
                result=failure.result,
                detail=failure.detail,
                cached_policy=current.mode if current else None,
            )
            result = StsLookup(current, failure.result, failure.detail)
        self._remember(domain, result, ttl, cached)
        return result

    def _remember(
        self, domain: str, result: StsLookup, ttl: float | None, cached: _Cached | None
    ) -> None:
        seconds = self._txt_cache_seconds if ttl is None else min(self._txt_cache_seconds, ttl)
        if result.policy is not None and cached is not None:
            # Never hand out a policy past its max_age.
            seconds = min(seconds, cached.expires_at - time.time())
        if seconds <= 0:
            self._recent.pop(domain, None)
            return
        now = time.monotonic()
        self._recent[domain] = _Recent(now + seconds, result)
        if len(self._recent) > _RECENT_LIMIT:
            self._recent = {k: v for k, v in self._recent.items() if v.until > now}

    def _forget_task(self, domain: str, task: asyncio.Task[StsLookup]) -> None:
        if self._inflight.get(domain) is task:
            del self._inflight[domain]

    async def _discover(self, domain: str) -> tuple[str | None, float | None]:
        """The TXT record's policy id (None: no policy record) and its TTL."""
        name = f"_mta-sts.{domain}"
        try:
            answer = await asyncio.wait_for(
                self._dns.resolve(dns.name.from_text(name), dns.rdatatype.TXT, search=False),
                self._timeout + 1.0,  # dnspython enforces its lifetime; this guards the transport
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None, None
        except dns.resolver.NoNameservers as exc:
            raise _Failure(FETCH_ERROR, f"TXT lookup for {name} failed: SERVFAIL") from exc
        except (dns.exception.DNSException, TimeoutError) as exc:
            raise _Failure(FETCH_ERROR, f"TXT lookup for {name} failed: {_reason(exc)}") from exc
        records = [
            # Several strings of one record are one text (§3.1).
            b"".join(rr.strings).decode("ascii", "replace")
            for rr in answer
            if isinstance(rr, TXT)
        ]
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else None
        return parse_txt_records(records), ttl

    # -- HTTPS ----------------------------------------------------------------

    async def _fetch_and_store(self, domain: str, policy_id: str) -> _Cached:
        policy = await self._fetch(domain, policy_id)
        cached = _Cached(policy, time.time())
        self._policies[domain] = cached
        event(
            log,
            "mta_sts_policy_fetched",
            domain=domain,
            id=policy.id,
            mode=policy.mode,
            max_age=policy.max_age,
        )
        await asyncio.to_thread(self._save, domain, cached)
        return cached

    async def _fetch(self, domain: str, policy_id: str) -> StsPolicy:
        host = f"mta-sts.{domain}"
        try:
            addresses = await self._addresses.addresses(host)
        except RouteError as exc:
            raise _Failure(FETCH_ERROR, f"address lookup for {host} failed") from exc
        # Replaced by the last connection failure if there are addresses.
        unreachable = _Failure(FETCH_ERROR, f"{host} has no address")
        try:
            async with asyncio.timeout(self._timeout):
                for address in addresses:
                    try:
                        return await self._get(address, host, policy_id)
                    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                        failure = _transport_failure(exc, host)
                        if failure.result == WEBPKI_INVALID:
                            raise failure from exc
                        unreachable = failure  # try the next address
                    except (httpx.HTTPError, OSError) as exc:
                        raise _transport_failure(exc, host) from exc
        except TimeoutError as exc:
            raise _Failure(FETCH_ERROR, f"fetching the policy from {host} timed out") from exc
        raise unreachable

    async def _get(self, address: str, host: str, policy_id: str) -> StsPolicy:
        # The URL names the address found through our name servers; SNI and the
        # Host header name the policy host, and the certificate is verified for
        # that name. A fresh client per fetch: a pooled connection to the same
        # address would skip verifying the next domain's certificate.
        url = httpx.URL(scheme="https", host=address, port=self._https_port, path=POLICY_PATH)
        host_header = host if self._https_port == 443 else f"{host}:{self._https_port}"
        headers = {"Host": host_header, "Accept": "text/plain", "Accept-Encoding": "identity"}
        async with (
            httpx.AsyncClient(
                verify=self._tls,
                trust_env=False,  # no proxies from the environment
                follow_redirects=False,  # §3.3: redirects are not followed
                timeout=self._timeout,
            ) as client,
            client.stream(
                "GET", url, headers=headers, extensions={"sni_hostname": host}
            ) as response,
        ):
            body = await _policy_body(response, host)
        try:
            text = body.decode("utf-8")
            return parse_policy(text, policy_id)
        except UnicodeDecodeError as exc:
            raise _Failure(POLICY_INVALID, f"policy from {host} is not UTF-8 text") from exc
        except PolicyError as exc:
            raise _Failure(POLICY_INVALID, f"policy from {host} is invalid: {exc}") from exc

    # -- the cache on disk ----------------------------------------------------

    async def _valid_cached(self, domain: str) -> _Cached | None:
        cached = self._policies.get(domain)
        if cached is None:
            cached = await asyncio.to_thread(self._load, domain)
        if cached is None or cached.expires_at <= time.time():
            self._policies.pop(domain, None)
            return None
        self._policies[domain] = cached
        return cached

    def _path(self, domain: str) -> Path:
        return self._cache_dir / f"{domain}.json"

    def _load(self, domain: str) -> _Cached | None:
        path = self._path(domain)
        try:
            data = json.loads(path.read_bytes())
            return _from_json(data, domain)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            # PolicyError is a ValueError: a file we did not write, or damage.
            event(
                log,
                "mta_sts_cache_unreadable",
                logging.WARNING,
                domain=domain,
                path=str(path),
                error=type(exc).__name__,
            )
            return None

    def _save(self, domain: str, cached: _Cached) -> None:
        data = {
            "format": _CACHE_FORMAT,
            "domain": domain,
            "id": cached.policy.id,
            "fetched_at": cached.fetched_at,
            "policy": cached.policy.text,
        }
        try:
            _write_atomically(self._path(domain), json.dumps(data).encode())
        except OSError as exc:
            # The policy still applies now; only a restart would lose it.
            event(
                log,
                "mta_sts_cache_not_written",
                logging.WARNING,
                domain=domain,
                path=str(self._cache_dir),
                error=type(exc).__name__,
            )


async def _policy_body(response: httpx.Response, host: str) -> bytes:
    """The body of a policy response, after the checks of RFC 8461 §3.3."""
    if response.is_redirect:
        raise _Failure(
            FETCH_ERROR, f"{host} answered with a redirect (HTTP {response.status_code})"
        )
    if response.status_code != 200:
        raise _Failure(FETCH_ERROR, f"{host} answered HTTP {response.status_code}")
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "text/plain":
        raise _Failure(POLICY_INVALID, f"policy from {host} is not text/plain: {media_type!a}")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise _Failure(POLICY_INVALID, f"policy from {host} is {encoding!a} encoded")
    too_big = _Failure(
        POLICY_INVALID, f"policy from {host} is larger than {MAX_POLICY_BYTES} bytes"
    )
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_POLICY_BYTES:
        raise too_big
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > MAX_POLICY_BYTES:
            raise too_big
    return bytes(body)


def _transport_failure(exc: BaseException, host: str) -> _Failure:
    """Classify an HTTPS failure: certificate problems apart from the rest."""
    cause: BaseException | None = exc
    for _ in range(_CAUSE_DEPTH):
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _Failure(
                WEBPKI_INVALID, f"certificate of {host} not accepted: {cause.verify_message}"
            )
        if isinstance(cause, ssl.SSLError):
            return _Failure(FETCH_ERROR, f"TLS with {host} failed: {cause.reason}")
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return _Failure(FETCH_ERROR, f"fetching the policy from {host} timed out")
    return _Failure(FETCH_ERROR, f"fetching the policy from {host} failed: {type(exc).__name__}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, dns.exception.Timeout | TimeoutError):
        return "timed out"
    return type(exc).__name__


def _from_json(data: Any, domain: str) -> _Cached:
    if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
        raise ValueError("unknown cache format")
    policy_id, fetched_at, text = data.get("id"), data.get("fetched_at"), data.get("policy")
    if (
        data.get("domain") != domain
        or not isinstance(policy_id, str)
        or not isinstance(fetched_at, int | float)
        or not math.isfinite(fetched_at)
        or not isinstance(text, str)
    ):
        raise ValueError("malformed cache entry")
    return _Cached(parse_policy(text, policy_id), float(fetched_at))


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600): readers see the old or the new file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)
