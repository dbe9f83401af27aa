"""extract_heavy(): PDF, DOCX, XLSX, zip attachments and large HTML, in a worker process.

A pure function of picklable arguments. It never raises and never logs: whatever a
file does to a parser becomes an unscannable reason ("malformed", "encrypted" ...).
Zip archives (OOXML files are zips too) are bounded by the archive budgets before a
byte is inflated; time and memory by the worker pool.
"""

from __future__ import annotations

import ctypes
import io
import logging
import re
import zipfile
from typing import IO, Any, Final, TypeAlias
from xml.etree.ElementTree import ParseError

from defusedxml.ElementTree import iterparse

from gateway.config import InspectionConfig
from gateway.inspect.content import Extraction, UnscannableReason
from gateway.inspect.extract.collect import Collector
from gateway.inspect.extract.jobs import HeavyJob, HeavyKind, HeavyResult
from gateway.inspect.extract.kinds import classify, file_ext
from gateway.inspect.extract.text import html_to_text

# The parsers log what they find odd in a file (keys, fonts, names from it): never
# file content in the logs, in a worker (which silences all logging) or not.
for _parser in ("pypdfium2", "openpyxl"):
    logging.getLogger(_parser).setLevel(logging.CRITICAL + 1)

# A part's octets: bytes, or a mapping of the server's memory file (shared.py). Not a
# file object: PDFium would read it through a ctypes callback, which needs memory both
# writable and executable, refused where MemoryDenyWriteExecute= holds (the systemd unit).
Octets: TypeAlias = bytes | ctypes.Array[ctypes.c_char]

# Below this size a member is no bomb whatever its ratio (small repetitive files
# compress far beyond any sensible ratio).
_RATIO_FLOOR: Final = 1 << 20
_DOCX_PARTS: Final = re.compile(
    r"word/(?:document\d*|header\d*|footer\d*|footnotes|endnotes|comments)\.xml"
)
_PPTX_PARTS: Final = re.compile(r"ppt/(?:slides/slide|notesSlides/notesSlide)\d+\.xml")
_DIGITS: Final = re.compile(r"(\d+)")


def _natural(name: str) -> list[str | int]:
    """slide2 before slide10."""
    return [int(p) if p.isdigit() else p for p in _DIGITS.split(name)]


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an id typed as a number: "123456789", not "123456789.0"
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):  # dates and times
        text = str(isoformat())
        return text.removesuffix("T00:00:00")
    return str(value)


def _reason(exc: Exception) -> UnscannableReason:
    # Out of the worker's address space is a budget; anything else, a bad file.
    return "over_budget" if isinstance(exc, MemoryError) else "malformed"


class _Extractor:
    def __init__(self, job: HeavyJob, config: InspectionConfig, out: Collector) -> None:
        self.place = job.place
        self.config = config
        self.out = out
        # Archive budgets hold for the whole attachment, nested archives included.
        self.members_left = config.archive_max_members
        self.bytes_left = config.archive_max_bytes

    def extract(self, kind: HeavyKind, source: Octets, depth: int) -> None:
        """`source`: the part's bytes, or a mapping of them that PDFium reads in place, only
        as far as it needs (a scan's image data never); the other parsers read a copy."""
        try:
            if kind == "pdf":
                self.pdf(source)
                return
            data = source if isinstance(source, bytes) else bytes(source)
            if kind == "html":
                self.out.text(self.place, html_to_text(data.decode("utf-8", "replace")))
            else:
                self.container(data, depth)
        except Exception as exc:  # whatever a crafted file does to a parser
            self.out.unscannable(self.place, _reason(exc))

    # --- PDF ----------------------------------------------------------------------

    def pdf(self, source: Octets) -> None:
        # PDFium (Chrome's PDF engine): about six times faster than pure-Python
        # parsers on large documents, and hardened against hostile files. Imported
        # at the first PDF, as openpyxl at the first workbook: most servers never
        # see one, and each costs every process memory.
        import pypdfium2 as pdfium

        try:
            document = pdfium.PdfDocument(source)
        except pdfium.PdfiumError as exc:
            # Opening without a password fails only for a user password; an
            # owner password (permissions only) opens and is read.
            encrypted = "password" in str(exc).lower()
            self.out.unscannable(self.place, "encrypted" if encrypted else "malformed")
            return
        pages: list[str] = []
        size = 0
        try:
            for index in range(len(document)):
                page = document[index]
                textpage = page.get_textpage()
                try:
                    pages.append(textpage.get_text_range())
                finally:
                    textpage.close()
                    page.close()
                size += len(pages[-1])
                if size > self.out.left:  # the rest could not be kept anyway: stop reading
                    break
            if pages and not any(text.strip() for text in pages):
                self.out.unscannable(self.place, "image")  # pages without text: a scan
        finally:  # what was read is scanned, also when a later page breaks the parser
            document.close()
            self.out.text(self.place, "\n".join(pages))  # over budget if it stopped early

    # --- zip and OOXML --------------------------------------------------------------

    def admit(self, info: zipfile.ZipInfo) -> bool:
        """Whether a member may be inflated; reports why not. zipfile never inflates
        past a member's declared size, so checking declared sizes bounds the work."""
        if info.flag_bits & 0x1:
            self.out.unscannable(self.place, "encrypted")
            return False
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > self.bytes_left or (
            info.file_size > _RATIO_FLOOR and ratio > self.config.archive_max_ratio
        ):
            self.out.unscannable(self.place, "over_budget")
            return False
        self.bytes_left -= info.file_size
        return True

    def container(self, data: bytes, depth: int) -> None:
        if depth > self.config.archive_max_depth:
            self.out.unscannable(self.place, "too_deep")
            return
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "word/document.xml" in names:
                self.ooxml(archive, _DOCX_PARTS)
            elif "ppt/presentation.xml" in names:
                self.ooxml(archive, _PPTX_PARTS)
            elif "xl/workbook.xml" in names:
                self.xlsx(archive, data)
            else:
                self.zip(archive, depth)

    def ooxml(self, archive: zipfile.ZipFile, parts: re.Pattern[str]) -> None:
        """Word and PowerPoint text: runs joined within a paragraph ("123-45-" and
        "6789" in two runs are one number), paragraphs on their own lines.

        The XML is streamed, and reading stops at the archive byte budget or once
        the text budget is full, so a large document is read as far as the budgets
        go instead of being refused for its (naturally high) compression ratio.
        """
        infos = [i for i in archive.infolist() if parts.fullmatch(i.filename)]
        for info in sorted(infos, key=lambda i: _natural(i.filename)):
            if info.flag_bits & 0x1:
                self.out.unscannable(self.place, "encrypted")
                continue
            if self.out.left <= 0:
                return  # the text budget is full: its cut is already reported
            if self.bytes_left <= 0:
                self.out.unscannable(self.place, "over_budget")
                return
            chunks: list[str] = []
            size = 0
            try:
                with archive.open(info) as member:
                    stream = _Capped(member, self.bytes_left)
                    try:
                        for event, element in iterparse(stream, ("start", "end"), forbid_dtd=True):
                            tag = element.tag.rpartition("}")[2]
                            if event == "start":
                                if tag == "tab":
                                    chunks.append("\t")
                                elif tag in ("br", "cr"):
                                    chunks.append("\n")
                                continue
                            if tag in ("t", "delText"):  # deleted (tracked) text is still there
                                chunks.append(element.text or "")
                                size += len(chunks[-1])
                            elif tag == "p":
                                chunks.append("\n")
                            element.clear()
                            if size > self.out.left:
                                break  # Collector.text records the cut as over budget
                    except ParseError:
                        if not stream.exhausted:
                            raise
                    self.bytes_left -= stream.read_bytes
                    if stream.exhausted:
                        self.out.unscannable(self.place, "over_budget")
            finally:
                self.out.text(self.place, "".join(chunks))

    def xlsx(self, archive: zipfile.ZipFile, data: bytes) -> None:
        """Every sheet: its name, then one line per row, cells joined by tabs."""
        if not all(self.admit(info) for info in archive.infolist()):
            return  # openpyxl reads the members itself: all must pass
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        lines: list[str] = []
        size = 0
        try:
            for sheet in book.worksheets:
                sheet.reset_dimensions()  # declared dimensions may be huge or wrong
                lines.append(sheet.title)
                for row in sheet.iter_rows(values_only=True):
                    cells = [_cell_text(value) for value in row if value is not None]
                    if cells:
                        lines.append("\t".join(cells))
                        size += len(lines[-1]) + 1
                        if size > self.out.left:
                            break
                if size > self.out.left:
                    break
        finally:
            book.close()
            self.out.text(self.place, "\n".join(lines))

    def zip(self, archive: zipfile.ZipFile, depth: int) -> None:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if len(infos) > self.members_left:
            self.out.unscannable(self.place, "over_budget")
            infos = infos[: self.members_left]
        self.members_left -= len(infos)
        # Member names are content too ("Jane Doe labs.pdf").
        self.out.text(self.place, "\n".join(i.filename for i in infos), structured=False)

        def nested(kind: HeavyKind, data: bytes) -> None:
            self.extract(kind, data, depth + 1 if kind in ("docx", "xlsx", "zip") else depth)

        for info in infos:
            ext = file_ext(info.filename)
            if ext is not None:
                self.out.extraction.attachment_types.add(ext)
            if not self.admit(info):
                continue
            try:
                data = archive.read(info)
            except NotImplementedError:  # a compression method zipfile lacks
                self.out.unscannable(self.place, "unknown_binary")
                continue
            except Exception as exc:  # a damaged member; the others may be fine
                self.out.unscannable(self.place, _reason(exc))
                continue
            self.out.part(self.place, classify("", info.filename, data), data, None, nested)


class _Capped(io.RawIOBase):
    """A member stream that ends after `limit` bytes (the archive byte budget)."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream = stream
        self.left = limit
        self.read_bytes = 0
        self.exhausted = False  # the budget ended the stream before the member did

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            self.exhausted = self.exhausted or bool(self.stream.read(1))
            return 0
        data = self.stream.read(min(len(buffer), self.left))
        buffer[: len(data)] = data
        self.left -= len(data)
        self.read_bytes += len(data)
        return len(data)


def extract_heavy(
    job: HeavyJob, config: InspectionConfig, mapped: Octets | None = None
) -> HeavyResult:
    """The text, payloads and unscannable parts of one PDF, DOCX, XLSX, zip or HTML
    part, all at the job's place; its bytes `mapped` where given, else the job's.
    Runs in a worker; never raises."""
    result = Extraction()
    source = job.data if mapped is None else mapped
    _Extractor(job, config, Collector(result, config.max_text_chars)).extract(job.kind, source, 0)
    return result
