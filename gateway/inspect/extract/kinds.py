"""What a part or archive member is: by its bytes first, then its file name, then its type.

The bytes win because names and declared types are the sender's to choose: a PDF
renamed "notes.txt" is still read as a PDF.
"""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal[
    "text", "html", "pdf", "docx", "xlsx", "zip", "image", "binary", "encrypted", "signature"
]

_TEXT_EXTS: Final = (
    *("txt", "text", "csv", "tsv", "tab", "json", "ndjson", "xml", "log", "md", "rtf"),
    *("hl7", "hl7v2", "er7", "cda", "ccd", "ccda", "edi", "x12", "837", "835", "270", "271"),
    *("yaml", "yml", "ini", "cfg", "conf", "ics", "vcs", "vcf", "eml", "sql", "tex", "svg"),
)
_IMAGE_EXTS: Final = (
    *("png", "jpg", "jpeg", "jpe", "gif", "bmp", "tif", "tiff", "webp", "heic", "heif", "jp2"),
    *("dcm", "dicom"),
)
_TEXT_SUBTYPES: Final = (
    *("json", "ndjson", "x-ndjson", "xml", "csv", "rtf", "yaml", "x-yaml", "sql", "javascript"),
    *("hl7-v2", "x-hl7", "edi-x12", "edifact"),
)
_EXT_KINDS: Final[dict[str, Kind]] = {
    **{f".{ext}": "text" for ext in _TEXT_EXTS},
    ".htm": "html",
    ".html": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".docm": "docx",
    ".dotx": "docx",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".xltx": "xlsx",
    ".pptx": "zip",  # an OOXML zip; the extractor recognises it by its members
    ".zip": "zip",
    **{f".{ext}": "image" for ext in _IMAGE_EXTS},
}
_TYPE_KINDS: Final[dict[str, Kind]] = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "image/svg+xml": "text",  # XML, and its text is drawn
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/zip": "zip",
    "application/x-zip": "zip",
    "application/x-zip-compressed": "zip",
    **{f"application/{sub}": "text" for sub in _TEXT_SUBTYPES},
    "application/pkcs7-mime": "encrypted",
    "application/x-pkcs7-mime": "encrypted",
    # Signatures and the PGP/MIME version part carry no message content.
    "application/pkcs7-signature": "signature",
    "application/x-pkcs7-signature": "signature",
    "application/pgp-signature": "signature",
    "application/pgp-encrypted": "signature",
}

_IMAGE_MAGIC: Final = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"II*\0",
    b"MM\0*",
)
# Password-protected Office files are OLE compound files holding this stream.
_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OLE_ENCRYPTED: Final = "EncryptionInfo".encode("utf-16-le")
PGP_MESSAGE: Final = "-----BEGIN PGP MESSAGE-----"


def file_ext(name: str | None) -> str | None:
    """A file name's extension as reported: ".pdf" for "Report.PDF. ". Lower case, at
    most 16 characters after the dot, letters and digits only (so it carries no text)."""
    if not name:
        return None
    # Windows ignores trailing dots and spaces: "x.exe. " opens as an .exe.
    base = name.replace("\\", "/").rpartition("/")[2].rstrip(" .")
    _, dot, ext = base.rpartition(".")
    ext = ext.lower()[:16]
    return f".{ext}" if dot and ext.isascii() and ext.isalnum() else None


def _type_kind(content_type: str) -> Kind | None:
    kind = _TYPE_KINDS.get(content_type)
    if kind is not None:
        return kind
    major, _, minor = content_type.partition("/")
    if major in ("text", "message") or minor.endswith(("+json", "+xml")):
        return "text"
    return "image" if major == "image" else None


def classify(content_type: str, name: str | None, data: bytes) -> Kind:
    """The kind of a part (its lower-case content type, file name and decoded bytes)."""
    by_name = _EXT_KINDS.get(file_ext(name) or "")
    by_type = _type_kind(content_type)
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        hint = by_name or by_type
        return hint if hint in ("docx", "xlsx") else "zip"
    if data.startswith(_IMAGE_MAGIC):
        return "image"
    if data.startswith(_OLE_MAGIC):
        return "encrypted" if _OLE_ENCRYPTED in data else "binary"
    if data.startswith(PGP_MESSAGE.encode()):
        return "encrypted"
    return by_name or by_type or "binary"
