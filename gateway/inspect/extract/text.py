"""Text from bytes and HTML, and the one normalisation every segment goes through."""

from __future__ import annotations

import codecs
import re
import unicodedata
from typing import Final

from selectolax.lexbor import LexborHTMLParser

# Invisible characters that split a number or a name for a regex but not for a reader:
# soft hyphen, Mongolian vowel separator, zero-width space/non-joiner/joiner, direction
# marks, word joiner, invisible operators, byte-order mark.
_INVISIBLE: Final = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
# Dashes a reader takes for "-" in "123–45–6789" (NFKC keeps them); folded before NFKC,
# which would turn U+2011 into U+2010 and U+FE58 into U+2014.
_DASHES: Final = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58"
# Unicode line breaks, so every segment's lines split on "\n" alone.
_LINE_BREAKS: Final = "\u0085\u2028\u2029"
_TABLE: Final = str.maketrans(
    {
        **dict.fromkeys(_INVISIBLE),
        **dict.fromkeys(_DASHES, "-"),
        **dict.fromkeys(_LINE_BREAKS, "\n"),
    }
)
# str.translate looks every character up in a dict (slow); search first, translate rarely.
_SPECIAL: Final = re.compile(f"[{_INVISIBLE}{_DASHES}{_LINE_BREAKS}]")


def normalise_text(text: str) -> str:
    """The text detectors see: NFKC (full-width digits become ASCII), no invisible
    characters, common dashes as "-", and "\\n" line endings."""
    if not text.isascii():  # ASCII is NFKC and has none of the characters above
        if _SPECIAL.search(text):
            text = text.translate(_TABLE)
        text = unicodedata.normalize("NFKC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:  # a bare CR (old Mac, HL7 segment ends); one copy fewer if none
            text = text.replace("\r", "\n")
    return text


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    if not name or len(name) > 40:
        return None
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def decode_text(data: bytes, charset: str | None) -> str:
    """Bytes as text under their declared charset, surviving a wrong or unknown one.

    The declared charset first; then UTF-8; then a declared legacy multi-byte charset
    with replacement characters; then UTF-8 with replacements when the bytes are mostly
    UTF-8, else Latin-1 (which maps every byte, so digits and ASCII always survive).
    """
    codec = _codec(charset)
    # UTF-16/32 decode almost any even-length bytes without error: trust them only
    # when the bytes have the NULs that ASCII text in them would have.
    if codec is not None and codec.startswith(("utf-16", "utf-32")) and b"\0" not in data:
        codec = None
    if codec is not None:
        try:
            return data.decode(codec)
        except (UnicodeError, LookupError):  # LookupError: a bytes codec such as "base64"
            pass
    if codec != "utf-8":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if codec is not None and codec not in ("utf-8", "ascii"):
        try:
            return data.decode(codec, "replace")
        except (UnicodeError, LookupError):
            pass
    text = data.decode("utf-8", "replace")
    non_ascii = len(data.translate(None, bytes(range(128))))
    return text if text.count("\ufffd") * 2 < non_ascii else data.decode("latin-1")


_FLOWED_BREAK: Final = re.compile(r" \r?\n")


def unflow(text: str, delsp: bool) -> str:
    """Joins the soft line breaks of format=flowed (RFC 3676); with delsp=yes the
    sender may break inside a word, "123-45- / 6789" is then "123-45-6789"."""
    return _FLOWED_BREAK.sub("" if delsp else " ", text)


# Elements a reader sees as separate lines or cells. Every other element is inline and
# must not split its text: "123-<b>45</b>-6789" is one number to a reader.
_BLOCKS: Final = frozenset(
    (
        *("address", "article", "aside", "blockquote", "body", "br", "button", "caption"),
        *("center", "dd", "details", "dialog", "dir", "div", "dl", "dt", "fieldset"),
        *("figcaption", "figure", "footer", "form", "frame", "frameset", "h1", "h2", "h3"),
        *("h4", "h5", "h6", "head", "header", "hr", "html", "iframe", "img", "legend", "li"),
        *("listing", "main", "menu", "nav", "noscript", "object", "ol", "option", "p"),
        *("plaintext", "pre", "script", "section", "select", "style", "summary", "table"),
        *("tbody", "td", "textarea", "tfoot", "th", "thead", "title", "tr", "ul", "xmp"),
    )
)


def html_to_text(html: str) -> str:
    """All text of an HTML document, hidden elements included, entities decoded; block
    elements start new lines, inline elements do not split words."""
    parts: list[str] = []
    add = parts.append
    root = LexborHTMLParser(html).root
    if root is None:
        return ""
    # One pass in document order (faster than CSS queries or unwrapping inline tags).
    # A block starts a line; a node right after a block sibling too, so
    # "<div>a</div>b" is two lines.
    for node in root.traverse(include_text=True):
        tag = node.tag
        if tag in _BLOCKS:
            add("\n")
            continue
        prev = node.prev
        if prev is not None and prev.tag in _BLOCKS:
            add("\n")
        if tag == "-text":
            add(node.text_content or "")
    return "".join(parts)
