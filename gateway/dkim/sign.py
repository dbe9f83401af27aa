"""DKIM signing (RFC 6376; Ed25519 per RFC 8463) of the exact bytes that leave.

A message is signed for the domain of its From header, so that DMARC finds an
aligned signature, with every active key of that domain: Ed25519 and RSA both
when both are active; and only when the message's sender may use that domain
(the caller says which it may), so no client gets mail signed as another
organisation whose key phigate holds. Canonicalisation is relaxed/relaxed. The signature
fields are byte-identical to dkimpy's for the same key, message, header list
and time, while the private-key work runs in OpenSSL through `cryptography`.

Signing must be the very last change to a message: whatever is altered
after it (a rewritten header, re-encoded body) breaks the signature.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway import metrics
from gateway.config import DkimConfig
from gateway.dkim.keys import RSA_SHA256, ActiveKey, DkimError, KeyStore, normalise_domain
from gateway.mail.headers import (
    AuthorError,
    HeaderField,
    HeaderSyntaxError,
    from_domains,
    split_at,
)
from gateway.mail.line_ends import crlf_only

__all__ = ["DkimError", "DkimSigner", "relaxed_body_hash", "relaxed_header"]

_CRLF = b"\r\n"
_LINE_END = re.compile(rb"\r\n|\r|\n")
_WSP_RUN = re.compile(rb"[ \t]+")
# Two spaces or more (tabs made spaces first): a literal prefix, searched fast.
_SPACE_RUN = re.compile(rb"  +")

_SIGNATURE_FIELD = b"DKIM-Signature"
# dkimpy folds at 72 columns, the field name sharing the first line; we fold
# the same way so that our fields are byte-identical to its.
_FIRST_LINE = 72 - len(_SIGNATURE_FIELD)
_NEXT_LINES = 71
# The body is canonicalised and hashed a piece of about this many octets at a time.
_BODY_PIECE = 64 * 1024


def _reduced(lines: bytes) -> bytes:
    """RFC 6376 3.4.4 on whole CRLF lines: WSP runs made one space, none at line ends."""
    if b"\t" in lines:
        lines = lines.replace(b"\t", b" ")
    # A search for one octet runs at memory speed, for two or three about a hundred
    # times slower: lines without a space (base64) have nothing to reduce.
    if b" " in lines:
        if b"  " in lines:
            lines = _SPACE_RUN.sub(b" ", lines)
        lines = lines.replace(b" \r\n", _CRLF)
    return lines


def relaxed_body_hash(body: bytes, piece: int = _BODY_PIECE, start: int = 0) -> bytes:
    """SHA-256 of the relaxed canonical body (RFC 6376 3.4.4) of body[start:], CRLF lines.

    Reduced and hashed in pieces of whole lines, each about `piece` octets: a piece
    with no space or tab that ends in one CRLF after text (the base64 of an
    attachment) is hashed where it lies, uncopied; only the others are reduced.
    Empty lines at the end are left out, however many pieces they span.
    """
    digest = hashlib.sha256()
    view = memoryview(body)
    line_ends = b""  # CRLFs not yet hashed: the body may end with them
    empty = True
    while start < len(body):
        cut = body.find(b"\n", start + piece)
        stop = len(body) if cut < 0 else cut + 1
        if (
            stop - start > 2
            and body.endswith(_CRLF, start, stop)
            and body[stop - 3] not in _CRLF
            and body.find(b" ", start, stop) < 0
            and body.find(b"\t", start, stop) < 0
        ):
            digest.update(line_ends)
            digest.update(view[start : stop - 2])
            line_ends, empty = _CRLF, False
        else:
            reduced = _reduced(body[start:stop])
            text = reduced.rstrip(_CRLF)
            if text:
                digest.update(line_ends)
                digest.update(text)
                line_ends = reduced[len(text) :]
                empty = False
            else:
                line_ends += reduced
        start = stop
    if not empty:
        digest.update(_CRLF)
    return digest.digest()


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 3.4.2: lower-case name, unfolded value with WSP reduced and trimmed, CRLF."""
    if b"\r\n" in value or b"\t" in value or b"  " in value:
        value = _WSP_RUN.sub(b" ", value.replace(_CRLF, b""))
    return name.lower() + b":" + value.strip(b" ") + _CRLF


def _crlf(message: bytes) -> bytes:
    """Every line end as CRLF and a final CRLF, as the message will be sent over SMTP."""
    if not crlf_only(message):
        message = _LINE_END.sub(_CRLF, message)
    if message and not message.endswith(_CRLF):
        message += _CRLF
    return message


def _split(message: bytes) -> tuple[list[HeaderField], int]:
    """The header fields, and where the body begins."""
    try:
        return split_at(message)
    except HeaderSyntaxError as exc:
        raise DkimError(f"cannot sign: {exc}") from None


def _from_domain(fields: Sequence[HeaderField]) -> str | None:
    """The domain of the first address in the From header (RFC 5322.From), normalised;
    None when there is no From. A From that cannot be read is a DkimError: which
    domain it would have named, and whether that one must be signed, is unknown."""
    try:
        domains = from_domains(fields)
    except AuthorError as exc:
        raise DkimError(f"cannot sign: {exc}") from None
    return domains[0] if domains else None


def _select(fields: Sequence[HeaderField], names: Sequence[bytes]) -> list[HeaderField]:
    """RFC 6376 5.4.2: each name takes the next occurrence from the bottom; none left, nothing."""
    selected: list[HeaderField] = []
    next_below: dict[bytes, int] = {}
    for name in names:
        index = next_below.get(name, len(fields))
        while index > 0:
            index -= 1
            if fields[index].lower == name:
                selected.append(fields[index])
                break
        next_below[name] = index
    return selected


def _fold(value: bytes) -> bytes:
    """Fold at spaces within the line width (base64 is cut anywhere), as dkimpy does."""
    if len(value) <= _FIRST_LINE:
        return value
    lines = []
    width, rest = _FIRST_LINE, value
    while len(rest) + len(_CRLF) > width:  # the CRLF ending the field counts on its line
        cut = rest.rfind(b" ", 0, width)
        if cut != -1:
            lines.append(rest[:cut])
            rest = rest[cut + 1 :]
        elif len(rest) > width:
            lines.append(rest[:width])
            rest = rest[width:]
        else:
            break  # cutting here would only split off the CRLF
        width = _NEXT_LINES
    lines.append(rest)
    return b"\r\n ".join(lines)


def _signature_length(key: ActiveKey) -> int:
    """Characters of base64 in b=: fixed by the key, so folding does not depend on it."""
    size = key.private_key.key_size // 8 if isinstance(key.private_key, rsa.RSAPrivateKey) else 64
    return 4 * ((size + 2) // 3)


def _sign_bytes(key: ActiveKey, data: bytes) -> bytes:
    if isinstance(key.private_key, rsa.RSAPrivateKey):
        return key.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    # RFC 8463: Ed25519 signs the SHA-256 hash of the canonicalised header.
    return key.private_key.sign(hashlib.sha256(data).digest())


def _signature_field(
    key: ActiveKey,
    domain: str,
    timestamp: int,
    names: Sequence[bytes],
    body_hash: bytes,
    signed: bytes,
) -> bytes:
    tags = b"; ".join(
        [
            b"v=1",
            b"a=" + key.algorithm.encode(),
            b"c=relaxed/relaxed",
            b"d=" + domain.encode(),
            b"i=@" + domain.encode(),
            b"q=dns/txt",
            b"s=" + key.selector.encode(),
            b"t=%d" % timestamp,
            b"h=" + b" : ".join(names),
            b"bh=" + body_hash,
            b"b=",
        ]
    )
    # The field is hashed as it will be sent, with b= empty: fold it with a
    # stand-in of the signature's length, then cut the stand-in off.
    folded = _fold(tags + b"A" * _signature_length(key))
    without_b = folded[: folded.rfind(b"b=") + 2]
    data = signed + relaxed_header(_SIGNATURE_FIELD, without_b)[: -len(_CRLF)]
    signature = base64.b64encode(_sign_bytes(key, data))
    return _SIGNATURE_FIELD + b": " + _fold(tags + signature) + _CRLF


class DkimSigner:
    """Signs outgoing mail with the active keys of its From domain; thread-safe."""

    def __init__(self, config: DkimConfig, keys_dir: Path) -> None:
        self.store = KeyStore(keys_dir)
        self.required_domains = frozenset(normalise_domain(d) for d in config.required_domains)
        self._header_names = frozenset(n.lower().encode("ascii") for n in config.sign_headers)
        # From always: a second From is how a signed message is made to show another author.
        self._oversigned = frozenset(
            [b"from", *(n.lower().encode("ascii") for n in config.oversign_headers)]
        )

    def sign(
        self, message: bytes, now: float | None = None, *, permitted: Collection[str]
    ) -> bytes:
        """The message (CRLF line ends) with one DKIM-Signature per active key prepended.

        `permitted`: the domains the message's principal (or relay network)
        may send as. Unchanged when the From domain has no active key, or
        there is no From domain. Raises DkimError when the From domain is not
        permitted (never a signature for a domain the sender may not use),
        when a required domain has no active key, its key cannot be read, or
        the header cannot be parsed: such mail must not leave unsigned.
        """
        message = _crlf(message)
        fields, body_at = _split(message)
        domain = _from_domain(fields)
        if domain is None:
            return message
        if domain not in permitted:
            raise DkimError(
                f"refusing to sign as {domain}: the message's principal or relay network "
                "may not send as that domain"
            )
        keys = self.store.active_keys(domain)
        if not keys:
            if domain in self.required_domains:
                raise DkimError(
                    f"{domain} must be signed but has no active DKIM key "
                    f"(`phigate dkim keygen {domain} --selector SELECTOR`)"
                )
            return message
        names = [f.lower for f in fields if f.lower in self._header_names or f.lower == b"from"]
        # One more of each oversigned field than there are: none can be added unnoticed.
        names += [name for name in dict.fromkeys(names) if name in self._oversigned]
        signed = b"".join(relaxed_header(f.lower, f.value) for f in _select(fields, names))
        body_hash = base64.b64encode(relaxed_body_hash(message, start=body_at))
        timestamp = int(time.time() if now is None else now)
        # RSA on top: a verifier that checks only the first signature knows RSA.
        ordered = sorted(keys, key=lambda k: k.algorithm != RSA_SHA256)
        signatures = b"".join(
            _signature_field(key, domain, timestamp, names, body_hash, signed) for key in ordered
        )
        for key in ordered:
            metrics.DKIM_SIGNATURES.labels(key.algorithm).inc()
        return signatures + message

    def signing_domain(self, message: bytes) -> str | None:
        """The domain `sign` signs the message for (None: it is sent unsigned)."""
        domain = _from_domain(_split(_crlf(message))[0])
        if domain is None or not self.store.active_keys(domain):
            return None
        return domain

    def missing_required_key(self, from_domain: str) -> bool:
        """True when mail from this domain must be signed but cannot be (answer 451)."""
        try:
            domain = normalise_domain(from_domain)
        except DkimError:
            return False
        if domain not in self.required_domains:
            return False
        try:
            return not self.store.active_keys(domain)
        except DkimError:
            return True  # an unreadable key cannot sign either
