"""Header changes made just before sending: the policy's neutral subject and
added headers, and phigate's own (List-Unsubscribe on marketing mail).

Applied to the stored message at delivery, so the content at rest is what the
client submitted. The body is never touched. A header added here replaces any
header of the same name the sender wrote, so a sending system cannot forge
what the policy asserts.
"""

from __future__ import annotations

from gateway.store.queue import Rewrite

_CRLF = b"\r\n"


def _fields(head: bytes) -> list[list[bytes]]:
    """Header fields, each as its lines (the first plus folded continuations)."""
    fields: list[list[bytes]] = []
    for line in head.split(_CRLF):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    return fields


def _name(field: list[bytes]) -> bytes:
    return field[0].split(b":", 1)[0].strip().lower()


def apply_rewrite(content: bytes, rewrite: Rewrite | None) -> bytes:
    """`content` with the header changes of a job's `rewrite`; the footer is added
    separately (it needs the recipient's unsubscribe link)."""
    if rewrite is None:
        return content
    added = list(rewrite.headers)
    if rewrite.subject is not None:
        added.append(("Subject", rewrite.subject))
    return with_headers(content, added)


def with_headers(content: bytes, added: list[tuple[str, str]]) -> bytes:
    """`content` with `added` headers (ASCII), replacing same-named ones."""
    head, separator, body = content.partition(_CRLF + _CRLF)
    if not separator:  # a message of headers only
        head, body = content.removesuffix(_CRLF), b""
    replaced = {name.lower().encode("ascii") for name, _ in added}
    fields = [f for f in _fields(head) if _name(f) not in replaced]
    fields += [[f"{name}: {value}".encode("ascii")] for name, value in added]
    return _CRLF.join(_CRLF.join(f) for f in fields) + _CRLF + _CRLF + body
