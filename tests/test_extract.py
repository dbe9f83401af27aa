"""Content extraction: MIME walk, text normalisation, heavy formats, clinical payloads,
the worker pool. Every file is built here with the real libraries."""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import json
import os
import random
import subprocess
import time
import timeit
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import openpyxl
import pytest
from documents import docx_with_text, pdf_with_text
from hypothesis import given
from hypothesis import strategies as st
from pebble import ProcessExpired
from pypdf import PdfReader, PdfWriter

from gateway.config import InspectionConfig
from gateway.inspect.content import Extraction, Place
from gateway.inspect.extract import (
    AttachmentPool,
    HeavyJob,
    HeavyKind,
    extract_heavy,
    find_structured,
    merge,
    mime,
    normalise_text,
    result_or_unscannable,
    shared,
    walk,
)
from gateway.inspect.extract.shared import SHARED_FROM
from gateway.mail.message import parse

CONFIG = InspectionConfig()
ATTACHMENT = Place("attachment", 0)


# --- building messages and files ----------------------------------------------------


def message(*parts: str, subject: str = "Hello", headers: str = "") -> bytes:
    """A multipart/mixed message; each part is its own header block, blank line, body."""
    head = (
        f"From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: {subject}\n{headers}"
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n\n"
    )
    body = "".join(f"--XX\n{part}\n" for part in parts) + "--XX--\n"
    return (head + body).replace("\n", "\r\n").encode()


def b64_part(content_type: str, data: bytes, name: str | None = None) -> str:
    disposition = f'Content-Disposition: attachment; filename="{name}"\n' if name else ""
    encoded = base64.encodebytes(data).decode()
    return (
        f"Content-Type: {content_type}\n{disposition}Content-Transfer-Encoding: base64\n\n{encoded}"
    )


def run(raw: bytes, config: InspectionConfig = CONFIG) -> tuple[Extraction, list[HeavyJob]]:
    return walk(parse(raw).message, config)


def texts(extraction: Extraction, label: str | None = None) -> str:
    return "\n".join(s.text.strip() for s in extraction.segments if label in (None, s.place.label))


def reasons(extraction: Extraction) -> list[tuple[str, str]]:
    return [(place.label, reason) for place, reason in extraction.unscannable]


def zip_of(files: dict[str, bytes | str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def docx(body: str, header: str = "") -> bytes:
    """A DOCX as Word writes it, reduced to the parts text lives in."""
    files: dict[str, bytes | str] = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types/>',
        "word/document.xml": f"<w:document {W}><w:body>{body}</w:body></w:document>",
    }
    if header:
        files["word/header1.xml"] = f"<w:hdr {W}>{header}</w:hdr>"
    return zip_of(files)


def xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def encrypted_pdf(user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_with_text(["Jane Doe"]))))
    writer.encrypt(user_password, owner_password="owner-secret", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def heavy(kind: HeavyKind, data: bytes, config: InspectionConfig = CONFIG) -> Extraction:
    return extract_heavy(HeavyJob(ATTACHMENT, kind, data), config)


# --- normalisation ------------------------------------------------------------------


def test_normalise_full_width_digits_invisible_characters_dashes_and_line_endings() -> None:
    assert normalise_text("ＳＳＮ １２３－４５－６７８９") == "SSN 123-45-6789"
    assert normalise_text("123\u200b-45\u00ad-67\u200d8\ufeff9\u2060") == "123-45-6789"
    assert normalise_text("123\u201345\u20136789") == "123-45-6789"
    assert normalise_text("a\r\nb\rc\u2028d") == "a\nb\nc\nd"
    assert normalise_text("plain ascii") == "plain ascii"


def test_every_place_is_normalised() -> None:
    raw = message(
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes("MRN １２３\u200b４５６７".encode()).decode(),
        subject="=?utf-8?b?" + base64.b64encode("ＳＳＮ".encode()).decode() + "?=",
    )
    extraction, _ = run(raw)
    assert texts(extraction, "subject") == "SSN"
    assert texts(extraction, "body[0]") == "MRN 1234567"


# --- MIME -----------------------------------------------------------------------------


def test_quoted_printable_soft_break_inside_a_number_is_joined() -> None:
    part = (
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        "Patient SSN 123-4=\n5-6789, caf=C3=A9"
    )
    extraction, _ = run(message(part))
    assert texts(extraction, "body[0]") == "Patient SSN 123-45-6789, café"


def test_format_flowed_with_delsp_joins_a_broken_number() -> None:
    part = "Content-Type: text/plain; format=flowed; delsp=yes\n\nSSN 123-45- \n6789\nnext line"
    extraction, _ = run(message(part))
    assert texts(extraction, "body[0]") == "SSN 123-45-6789\nnext line"


def test_html_inline_tags_do_not_split_words_but_blocks_do() -> None:
    html = (
        "<html><head><style>p{margin:0}</style></head><body>"
        "<p>SSN 123-<b>45</b>-<span style='x'>6789</span></p>"
        "<p>&#49;&#50;&#51;-45-6789 and ９８７&#x2d;65&#8203;-4321</p>"
        "<table><tr><td>Jane</td><td>Doe</td></tr></table>"
        "<div style='display:none'>hidden MRN 7654321</div>after<br>break"
        "</body></html>"
    )
    extraction, _ = run(message(f"Content-Type: text/html; charset=utf-8\n\n{html}"))
    lines = texts(extraction, "body[0]").split("\n")
    assert "SSN 123-45-6789" in lines
    assert "123-45-6789 and 987-65-4321" in lines
    assert "Jane" in lines and "Doe" in lines  # cells are not "JaneDoe"
    assert "hidden MRN 7654321" in lines
    assert "after" in lines and "break" in lines


def test_large_html_goes_to_a_worker() -> None:
    # Deep nesting makes HTML parsing quadratic: 200 KB of it would stall the server.
    nested = "<ul><li>" * 25_000 + "SSN 123-<b>45</b>-6789"
    started = time.process_time()  # CPU time: the work done, however busy the machine
    _, jobs = run(message(f"Content-Type: text/html\n\n{nested}"))
    assert time.process_time() - started < 0.1
    assert [(job.place.label, job.kind) for job in jobs] == [("body[0]", "html")]
    ordinary = "<p>SSN 123-<b>45</b>-6789</p>" * 2000
    [job] = run(message(f"Content-Type: text/html\n\n{ordinary}"))[1]
    assert "SSN 123-45-6789" in texts(extract_heavy(job, CONFIG))


def test_subject_display_names_and_file_names() -> None:
    raw = message(
        "Content-Type: text/plain\n\nbody",
        b64_part("application/octet-stream", b"x", name="=?utf-8?q?Doe=2C_Jane_labs?=.txt"),
        subject="=?iso-8859-1?q?R=E9sultats?= for =?utf-8?b?SmFuZQ==?=",
        headers='Cc: =?utf-8?q?Doe=2C_John?= <j@example.com>, "Roe, Richard" <r@x.org>\n',
    )
    extraction, _ = run(raw)
    assert texts(extraction, "subject") == "Résultats for Jane"
    headers = [s for s in extraction.segments if s.place.kind == "header"]
    assert headers[0].place == Place("header", 0)
    assert headers[0].text.split("\n") == ["Alice", "Doe, John", "Roe, Richard"]
    assert headers[1].place == Place("header", 1)
    assert headers[1].text == "Doe, Jane labs.txt"


def test_wrong_and_unknown_charsets_still_decode() -> None:
    raw = message(
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n",
        "Content-Type: text/plain; charset=x-no-such-charset\n\n",
        "Content-Type: text/plain; charset=us-ascii\n\n",
        "Content-Type: text/plain; charset=base64\n\n",
    )
    # Bodies put in as bytes: latin-1 declared as UTF-8, UTF-8 declared as ASCII ...
    raw = raw.replace(b"\r\n\r\n\r\n--XX", b"\r\n\r\nMARK\r\n--XX")
    bodies = ["José 123".encode("latin-1"), "José 456".encode(), "José 789".encode(), b"Jo 0"]
    for body in bodies:
        raw = raw.replace(b"MARK", body, 1)
    extraction, _ = run(raw)
    assert [s.text for s in extraction.segments if s.place.kind == "body"] == [
        "José 123",
        "José 456",
        "José 789",
        "Jo 0",
    ]


def test_base64_garbage_is_malformed_and_never_crashes() -> None:
    raw = message(
        "Content-Type: application/octet-stream; name=a.bin\nContent-Transfer-Encoding: base64"
        "\n\n!!!not*base64~~~\x01\x02",
        "Content-Type: application/pdf; name=b.pdf\nContent-Transfer-Encoding: base64\n\n%PDF-{}",
        "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\nU1NOIDEyMy00NS02Nzg5",
        "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\nMTIz*#*NDU2Nw==",
    )
    extraction, jobs = run(raw)
    assert reasons(extraction) == [
        ("attachment[0]", "malformed"),
        ("attachment[1]", "malformed"),
        ("body[1]", "malformed"),
    ]
    assert jobs == []  # no extractor gets bytes that were guessed
    assert texts(extraction, "body[0]") == "SSN 123-45-6789"  # missing padding is fine
    assert "1234567" in texts(extraction, "body[1]")  # malformed, still read leniently


def test_deeply_nested_messages_are_walked_without_recursion() -> None:
    inner = b"Subject: innermost\r\nContent-Type: text/plain\r\n\r\nMRN 7654321\r\n"
    for level in range(60):
        inner = b"Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n" % level + inner
    started = time.process_time()
    extraction, _ = run(inner)
    assert time.process_time() - started < 1
    assert texts(extraction, "body[0]") == ""  # the top message has no text part
    assert "MRN 7654321" in texts(extraction, "attachment[0]")
    assert "innermost" in texts(extraction, "attachment[0]")
    assert extraction.unscannable == []

    for level in range(60, 100):
        inner = b"Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n" % level + inner
    extraction, _ = run(inner)
    assert reasons(extraction) == [("attachment[0]", "too_deep")]


def test_attached_message_shares_one_attachment_index() -> None:
    attached = (
        "Subject: Lab results for Jane Doe\nContent-Type: multipart/mixed; boundary=IN\n\n"
        "--IN\nContent-Type: text/plain\n\nMRN 7654321\n"
        "--IN\nContent-Type: image/png; name=x.png\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(b"\x89PNG\r\n\x1a\n0000").decode()
        + "--IN--\n"
    )
    raw = message(
        "Content-Type: text/plain\n\nsee attached",
        f'Content-Type: message/rfc822\nContent-Disposition: attachment; filename="fw.eml"\n\n'
        f"{attached}",
        "Content-Type: text/csv; name=list.csv\n\nname,mrn\nJohn Roe,1234567",
    )
    extraction, _ = run(raw)
    assert "Lab results for Jane Doe" in texts(extraction, "attachment[0]")
    assert "MRN 7654321" in texts(extraction, "attachment[0]")
    assert reasons(extraction) == [("attachment[0]", "image")]
    assert texts(extraction, "attachment[1]") == "name,mrn\nJohn Roe,1234567"
    assert {"message/rfc822", ".eml", "image/png", ".png", "text/csv", ".csv"} <= (
        extraction.attachment_types
    )


def test_attachments_by_kind() -> None:
    raw = message(
        "Content-Type: text/plain\n\nbody text",
        b64_part("image/jpeg", b"\xff\xd8\xff\xe0 jpeg", name="scan.jpg"),
        b64_part("audio/mpeg", b"ID3 audio", name="voice.mp3"),
        b64_part("application/octet-stream", b"\x00\x01 unknown", name="blob.dat"),
        b64_part("application/octet-stream", pdf_with_text(["x"]), name="renamed.txt"),
        b64_part("application/vnd.ms-excel", b"PK\x03\x04 sheet", name="Book.XLSX"),
        b64_part("application/json", b'{"a": "1234567"}', name="data.json"),
        "Content-Type: application/pkcs7-signature; name=smime.p7s\n\nMIIB",
    )
    extraction, jobs = run(raw)
    assert reasons(extraction) == [
        ("attachment[0]", "image"),
        ("attachment[1]", "unknown_binary"),
        ("attachment[2]", "unknown_binary"),
    ]
    assert [(job.place.label, job.kind) for job in jobs] == [
        ("attachment[3]", "pdf"),  # by its bytes, not its name
        ("attachment[4]", "xlsx"),
    ]
    assert texts(extraction, "attachment[5]") == '{"a": "1234567"}'
    assert {"image/jpeg", ".jpg", ".mp3", ".xlsx", "application/json", ".p7s"} <= (
        extraction.attachment_types
    )


def test_attachment_over_budget_is_not_decoded() -> None:
    config = InspectionConfig(max_attachment_bytes=1000)
    raw = message(
        b64_part("text/plain", b"a" * 2000, name="big.txt"),
        b64_part("text/plain", b"SSN 123-45-6789", name="small.txt"),
    )
    extraction, _ = run(raw, config)
    assert reasons(extraction) == [("attachment[0]", "over_budget")]
    assert texts(extraction, "attachment[1]") == "SSN 123-45-6789"


@pytest.mark.parametrize(("size", "over"), [(999, False), (1002, True)])
def test_the_attachment_budget_counts_decoded_octets_not_line_ends(size: int, over: bool) -> None:
    config = InspectionConfig(max_attachment_bytes=1000)
    # Short lines: the line ends alone would take 1,000 octets past the budget.
    encoded = base64.b64encode(b"MRN 1234567 " * 100)[: size * 4 // 3]
    lines = "\r\n".join(encoded[i : i + 4].decode() for i in range(0, len(encoded), 4))
    data = base64.b64decode(encoded + b"=" * (-len(encoded) % 4))
    assert len(data) == size
    raw = message(
        "Content-Type: text/plain; name=a.txt\nContent-Transfer-Encoding: base64\n\n" + lines
    )
    extraction, _ = run(raw, config)
    if over:
        assert reasons(extraction) == [("attachment[0]", "over_budget")]
    else:
        assert reasons(extraction) == []
        assert texts(extraction, "attachment[0]") == data.decode()


@given(st.binary(max_size=3000), st.sampled_from([76, 64, 4]), st.sampled_from(["\r\n", "\n"]))
def test_base64_of_any_bytes_decodes_whole_and_well_formed(
    data: bytes, width: int, line_end: str
) -> None:
    encoded = base64.b64encode(data).decode().rstrip("=")  # padding left out is harmless
    lines = line_end.join(encoded[i : i + width] for i in range(0, len(encoded), width))
    raw = message(
        "Content-Type: application/octet-stream; name=a.bin\nContent-Transfer-Encoding: base64"
        f"\n\n{lines}{line_end}"
    )
    extraction, _ = run(raw)
    assert "malformed" not in [reason for _, reason in extraction.unscannable]
    assert mime._base64(encoded.encode()) == (data, False)


def test_text_budget_truncates_once() -> None:
    config = InspectionConfig(max_text_chars=1000)
    raw = message(*(f"Content-Type: text/plain\n\n{'x' * 600}" for _ in range(3)))
    extraction, _ = run(raw, config)
    assert sum(len(s.text) for s in extraction.segments) == 1000
    assert [reason for _, reason in extraction.unscannable] == ["over_budget"]
    # A worker's result is held to what is left.
    merge(extraction, heavy("pdf", pdf_with_text(["more text"])), config)
    assert sum(len(s.text) for s in extraction.segments) == 1000
    assert [reason for _, reason in extraction.unscannable] == ["over_budget"]


def test_inline_pgp_is_encrypted() -> None:
    pgp = "-----BEGIN PGP MESSAGE-----\n\nhQEMA0\n-----END PGP MESSAGE-----"
    extraction, _ = run(message(f"Content-Type: text/plain\n\n{pgp}"))
    assert reasons(extraction) == [("body[0]", "encrypted")]


# --- clinical payloads ----------------------------------------------------------------

HL7 = (
    "MSH|^~\\&|EPIC|GENERAL HOSP|LAB|LAB|202401011200||ADT^A01|MSG0001|P|2.5\r"
    "PID|1||7654321^^^GH^MR~123-45-6789^^^SSA^SS||DOE^JANE^Q||19800101|F\r"
    "NK1|1|DOE^JOHN|SPO\r"
)


def test_hl7_in_a_body_with_carriage_returns() -> None:
    extraction, _ = run(message(f"Content-Type: text/plain\n\nPlease file:\n{HL7}"))
    [payload] = extraction.structured
    assert payload.kind == "hl7" and payload.place == Place("body", 0)
    assert {"JANE Q DOE", "JANE DOE", "DOE, JANE Q", "DOE", "JOHN DOE"} <= set(payload.names)
    assert {"7654321", "123-45-6789", "19800101"} <= set(payload.identifiers)
    assert "PID|1||7654321" in texts(extraction, "body[0]")  # still a segment


def test_hl7_attachment_and_newline_separators() -> None:
    raw = message(b64_part("application/octet-stream", HL7.replace("\r", "\n").encode(), "a.hl7"))
    extraction, _ = run(raw)
    assert [p.kind for p in extraction.structured] == ["hl7"]
    assert extraction.structured[0].place == ATTACHMENT


FHIR_BUNDLE = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {
            "resource": {
                "id": "p1",
                "name": [{"family": "Doe", "given": ["Jane", "Q"]}],
                "identifier": [{"system": "urn:mrn", "value": "7654321"}],
                "birthDate": "1980-01-01",
                "resourceType": "Patient",  # not first: key order is free in JSON
            }
        },
        {
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "subject": {"reference": "Patient/p2", "display": "Richard Roe"},
            }
        },
    ],
}


def test_hl7_without_people_and_pathological_text() -> None:
    ack = "MSH|^~\\&|LAB|GH|EPIC|GH|202401011200||ACK|1|P|2.5\rMSA|AA|MSG0001\r"
    assert find_structured(normalise_text(ack), ATTACHMENT) == []
    started = time.process_time()
    find_structured("\n" * 200_000 + "MSH", ATTACHMENT)
    find_structured("{" * 50_000 + '"resourceType"', ATTACHMENT)
    find_structured("<" * 50_000 + "hl7.org/fhir ClinicalDocument", ATTACHMENT)
    assert time.process_time() - started < 1


def test_fhir_json_bundle() -> None:
    payloads = find_structured(json.dumps(FHIR_BUNDLE, indent=1), ATTACHMENT)
    [payload] = payloads
    assert payload.kind == "fhir"
    assert {"Jane Q Doe", "Jane Doe", "Doe, Jane Q", "Doe", "Richard Roe"} <= set(payload.names)
    assert {"7654321", "1980-01-01"} <= set(payload.identifiers)


def test_fhir_json_inside_prose_and_not_clinical_json() -> None:
    observation = {"resourceType": "Condition", "subject": {"identifier": {"value": "M-991"}}}
    [payload] = find_structured(f"Hi,\nsee {json.dumps(observation)} thanks", ATTACHMENT)
    assert payload.identifiers == ("M-991",)
    assert find_structured('{"resourceType": "CapabilityStatement"}', ATTACHMENT) == []
    assert find_structured('{"resourceType": "Patient", broken', ATTACHMENT) == []


def test_fhir_xml() -> None:
    xml = (
        '<?xml version="1.0"?><Bundle xmlns="http://hl7.org/fhir"><entry><resource>'
        '<Patient><identifier><value value="7654321"/></identifier>'
        '<name><family value="Doe"/><given value="Jane"/></name>'
        '<birthDate value="1980-01-01"/></Patient></resource></entry></Bundle>'
    )
    extraction, _ = run(message(b64_part("application/fhir+xml", xml.encode(), "p.xml")))
    [payload] = extraction.structured
    assert payload.kind == "fhir"
    assert {"Jane Doe", "Doe, Jane", "Doe"} <= set(payload.names)
    assert {"7654321", "1980-01-01"} <= set(payload.identifiers)


def test_ccda() -> None:
    xml = (
        '<ClinicalDocument xmlns="urn:hl7-org:v3"><recordTarget><patientRole>'
        '<id root="2.16.840.1.113883.19.5" extension="7654321"/>'
        "<patient><name><given>Jane</given><family>Doe</family></name>"
        '<birthTime value="19800101"/></patient></patientRole></recordTarget>'
        "</ClinicalDocument>"
    )
    [payload] = find_structured(f"Summary below\n{xml}\n-- sent from my phone", ATTACHMENT)
    assert payload.kind == "ccda"
    assert {"Jane Doe", "Doe, Jane", "Doe"} <= set(payload.names)
    assert {"7654321", "19800101"} <= set(payload.identifiers)


def test_xml_attacks_are_refused() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        '<ClinicalDocument xmlns="urn:hl7-org:v3">&lol2;</ClinicalDocument>'
    )
    assert find_structured(bomb, ATTACHMENT) == []


# --- heavy formats ----------------------------------------------------------------------


def test_pdf_text() -> None:
    result = heavy("pdf", pdf_with_text(["Patient Jane Doe", "SSN 123-45-6789"]))
    assert texts(result).split("\n")[:2] == ["Patient Jane Doe", "SSN 123-45-6789"]
    assert result.unscannable == []


def test_pdf_with_hl7_text_yields_a_payload() -> None:
    result = heavy("pdf", pdf_with_text(HL7.strip().split("\r")))
    assert [p.kind for p in result.structured] == ["hl7"]


def test_pdf_without_text_is_an_image() -> None:
    assert reasons(heavy("pdf", pdf_with_text([]))) == [("attachment[0]", "image")]


def test_encrypted_pdf() -> None:
    assert reasons(heavy("pdf", encrypted_pdf("user-secret"))) == [("attachment[0]", "encrypted")]
    # An owner password alone restricts printing, not reading: anyone can open it.
    opened = heavy("pdf", encrypted_pdf(""))
    assert "Jane Doe" in texts(opened) and opened.unscannable == []


@pytest.mark.parametrize("cut", [30, 300, -60])
def test_truncated_pdf_is_malformed(cut: int) -> None:
    data = pdf_with_text(["Jane Doe"])[:cut]
    started = time.process_time()
    result = heavy("pdf", data)
    assert time.process_time() - started < 2
    assert reasons(result) == [("attachment[0]", "malformed")]


def test_garbage_pdf_is_malformed() -> None:
    assert reasons(heavy("pdf", b"%PDF-1.7\n" + bytes(range(256)) * 10)) == [
        ("attachment[0]", "malformed")
    ]


def test_docx_runs_paragraphs_tables_header_and_tracked_deletions() -> None:
    body = (
        "<w:p><w:r><w:t>SSN 123-45-</w:t></w:r>"
        "<w:r><w:rPr><w:b/></w:rPr><w:t>6789</w:t></w:r></w:p>"
        "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Jane</w:t></w:r></w:p></w:tc>"
        "<w:tc><w:p><w:r><w:t>Doe</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"
        "<w:p><w:del><w:r><w:delText>MRN 7654321</w:delText></w:r></w:del></w:p>"
    )
    header = "<w:p><w:r><w:t>Confidential: Richard Roe</w:t></w:r></w:p>"
    lines = texts(heavy("docx", docx(body, header))).split("\n")
    assert {"SSN 123-45-6789", "Jane", "Doe", "MRN 7654321", "Confidential: Richard Roe"} <= set(
        lines
    )


def test_pptx_slides_in_order() -> None:
    a = (
        'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
        'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"'
    )

    def slide(text: str) -> str:
        return f"<p:sld {a}><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:sld>"

    data = zip_of(
        {
            "ppt/presentation.xml": "<p:presentation/>",
            "ppt/slides/slide10.xml": slide("last"),
            "ppt/slides/slide2.xml": slide("MRN 7654321"),
            "ppt/slides/slide1.xml": slide("Jane Doe"),
        }
    )
    assert texts(heavy("zip", data)).split("\n") == ["Jane Doe", "MRN 7654321", "last"]


def test_xlsx_all_sheets_rows_joined() -> None:
    import datetime

    data = xlsx(
        {
            "Patients": [["Name", "MRN", "DOB"], ["Jane Doe", 7654321, datetime.date(1980, 1, 2)]],
            "Jane Roe": [[None, "SSN", "123-45-6789"]],
        }
    )
    lines = texts(heavy("xlsx", data)).split("\n")
    assert lines == [
        "Patients",
        "Name\tMRN\tDOB",
        "Jane Doe\t7654321\t1980-01-02",
        "Jane Roe",
        "SSN\t123-45-6789",
    ]


def test_malformed_office_files() -> None:
    assert reasons(heavy("docx", b"PK\x03\x04 not really")) == [("attachment[0]", "malformed")]
    broken = zip_of({"xl/workbook.xml": "<not a workbook"})
    assert reasons(heavy("xlsx", broken)) == [("attachment[0]", "malformed")]


def test_nested_zip_members_share_the_attachment_place() -> None:
    inner = zip_of({"deep/notes.txt": "MRN 7654321", "scan.png": b"\x89PNG\r\n\x1a\nxx"})
    data = zip_of(
        {
            "readme.txt": "SSN 123-45-6789",
            "report.pdf": pdf_with_text(["Patient Jane Doe"]),
            "letter.docx": docx("<w:p><w:r><w:t>Dear Richard Roe</w:t></w:r></w:p>"),
            "page.html": "<p>DOB 01/02/<b>1980</b></p>",
            "inner.zip": inner,
            "tool.exe": b"MZ\x90\x00",
        }
    )
    result = heavy("zip", data)
    text = texts(result)
    for expected in (
        "SSN 123-45-6789",
        "Patient Jane Doe",
        "Dear Richard Roe",
        "DOB 01/02/1980",
        "MRN 7654321",
        "deep/notes.txt",  # member names are content too
    ):
        assert expected in text
    assert all(s.place == ATTACHMENT for s in result.segments)
    assert sorted(reasons(result)) == [
        ("attachment[0]", "image"),
        ("attachment[0]", "unknown_binary"),
    ]
    assert {".txt", ".pdf", ".docx", ".zip", ".exe", ".png"} <= result.attachment_types


def test_zip_bomb_is_over_budget_fast() -> None:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("zeros.txt", "w", force_zip64=True) as member,
    ):
        chunk = bytes(1 << 20)
        for _ in range(200):  # 200 MB of zeros, under 1 MB compressed
            member.write(chunk)
    started = time.process_time()
    result = heavy("zip", out.getvalue())
    assert time.process_time() - started < 1
    assert reasons(result) == [("attachment[0]", "over_budget")]


def test_nested_zips_past_the_depth_are_too_deep() -> None:
    data = zip_of({"core.txt": "MRN 7654321"})
    for level in range(5):
        data = zip_of({f"level{level}.zip": data})
    result = heavy("zip", data, InspectionConfig(archive_max_depth=2))
    assert reasons(result) == [("attachment[0]", "too_deep")]
    assert "MRN 7654321" not in texts(result)
    assert "MRN 7654321" in texts(heavy("zip", data, InspectionConfig(archive_max_depth=5)))


def test_zip_member_budgets() -> None:
    many = zip_of({f"f{i}.txt": f"line {i}" for i in range(10)})
    result = heavy("zip", many, InspectionConfig(archive_max_members=4))
    assert reasons(result) == [("attachment[0]", "over_budget")]
    assert "line 3" in texts(result) and "line 4" not in texts(result)


def test_encrypted_zip_member() -> None:
    data = bytearray(zip_of({"secret.txt": "MRN 7654321", "open.txt": "hello"}))
    # zipfile cannot write encrypted members: set the "encrypted" flag of the first
    # member in the central directory, which is what readers trust.
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x1
    result = heavy("zip", bytes(data))
    assert reasons(result) == [("attachment[0]", "encrypted")]
    assert "hello" in texts(result) and "MRN 7654321" not in texts(result)


def test_password_protected_office_file_is_encrypted() -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100) + "EncryptionInfo".encode("utf-16-le")
    extraction, jobs = run(message(b64_part("application/octet-stream", ole, "locked.xlsx")))
    assert reasons(extraction) == [("attachment[0]", "encrypted")] and jobs == []


def test_walk_then_extract_then_merge() -> None:
    raw = message(
        "Content-Type: text/plain\n\nsee attached",
        b64_part("application/pdf", pdf_with_text(["MRN 7654321"]), "a.pdf"),
        b64_part(
            "application/octet-stream", docx("<w:p><w:r><w:t>Jane</w:t></w:r></w:p>"), "b.docx"
        ),
    )
    extraction, jobs = run(raw)
    assert [(job.place.label, job.kind) for job in jobs] == [
        ("attachment[0]", "pdf"),
        ("attachment[1]", "docx"),
    ]
    assert "bytes" in repr(jobs[0]) and "MRN" not in repr(jobs[0])
    for job in jobs:
        merge(extraction, extract_heavy(job, CONFIG), CONFIG)
    assert "MRN 7654321" in texts(extraction, "attachment[0]")
    assert "Jane" in texts(extraction, "attachment[1]")


# --- the worker pool ------------------------------------------------------------------


@pytest.fixture
def pool() -> Iterator[AttachmentPool]:
    with AttachmentPool(InspectionConfig(extractor_timeout=1.0), max_workers=1) as attachment_pool:
        yield attachment_pool


def test_pool_extracts(pool: AttachmentPool) -> None:
    job = HeavyJob(ATTACHMENT, "pdf", pdf_with_text(["Jane Doe 123-45-6789"]))
    result = result_or_unscannable(pool.submit(job), job)
    assert "Jane Doe 123-45-6789" in texts(result)


def test_pool_times_out_and_carries_on(pool: AttachmentPool) -> None:
    # 100,000 nested elements take the HTML parser many seconds: far past the budget.
    slow = HeavyJob(ATTACHMENT, "html", b"<div>" * 100_000)
    started = time.perf_counter()
    result = result_or_unscannable(pool.submit(slow), slow)
    assert reasons(result) == [("attachment[0]", "timeout")]
    assert time.perf_counter() - started < 5
    quick = HeavyJob(Place("attachment", 1), "pdf", pdf_with_text(["still working"]))
    assert "still working" in texts(result_or_unscannable(pool.submit(quick), quick))


def _large_pdf(first: str, lines: int = 2000) -> bytes:
    """A PDF past shared.SHARED_FROM: its bytes go to the worker in a memfd."""
    data = pdf_with_text([first] + ["Routine follow-up notes, nothing new to report."] * lines)
    assert len(data) > SHARED_FROM
    return data


def _memfds() -> int:
    """This process's open memfds of large attachments."""
    fds = Path("/proc/self/fd")
    links = []
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # the directory's own descriptor is gone
            links.append(os.readlink(fd))
    return sum(link.startswith("/memfd:phigate-attachment") for link in links)


def test_large_attachments_go_through_reused_memfds(pool: AttachmentPool) -> None:
    jobs = [HeavyJob(Place("attachment", n), "pdf", _large_pdf(f"Patient {n}")) for n in range(4)]
    for job in jobs:
        assert f"Patient {job.place.index}" in texts(result_or_unscannable(pool.submit(job), job))
    # One worker, one job at a time: one memfd, kept for the next attachment.
    assert _memfds() == 1
    pool.close()
    assert _memfds() == 0


def test_a_large_docx_is_read_from_its_mapped_memfd(pool: AttachmentPool) -> None:
    # Past shared.SHARED_FROM with a picture that does not compress: the worker maps the
    # memfd and, for anything but a PDF, reads a copy of the mapping.
    body = "<w:p><w:r><w:t>Patient Jane Doe, MRN 4711</w:t></w:r></w:p>"
    data = zip_of(
        {
            "word/document.xml": f"<w:document {W}><w:body>{body}</w:body></w:document>",
            "word/media/scan.bin": random.Random(7).randbytes(2 * SHARED_FROM),
        }
    )
    assert len(data) > SHARED_FROM
    job = HeavyJob(ATTACHMENT, "docx", data)
    assert "Patient Jane Doe, MRN 4711" in texts(result_or_unscannable(pool.submit(job), job))
    assert _memfds() == 1  # it went through a memfd, kept for the next attachment


def test_a_reused_memfd_holds_only_its_new_attachment(pool: AttachmentPool) -> None:
    # PDFium reads a PDF from its end (the trailer): bytes left from a larger one
    # before would make it read that one instead.
    larger = HeavyJob(Place("attachment", 0), "pdf", _large_pdf("Patient Larger", 4000))
    smaller = HeavyJob(Place("attachment", 1), "pdf", _large_pdf("Patient Smaller"))
    assert len(smaller.data) < len(larger.data)
    assert "Patient Larger" in texts(result_or_unscannable(pool.submit(larger), larger))
    read = texts(result_or_unscannable(pool.submit(smaller), smaller))
    assert _memfds() == 1  # the same memfd, kept between them
    assert "Patient Smaller" in read and "Patient Larger" not in read


def test_a_worker_that_cannot_read_the_memfd_gets_the_bytes_through_the_pipe(
    pool: AttachmentPool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    put = shared.SharedBuffers.put
    gone = subprocess.Popen(["true"])  # a process whose /proc entry is gone
    gone.wait()

    def elsewhere(self: shared.SharedBuffers, data: bytes) -> shared.SharedBytes:
        return put(self, data)._replace(pid=gone.pid)

    monkeypatch.setattr(shared.SharedBuffers, "put", elsewhere)
    job = HeavyJob(ATTACHMENT, "pdf", _large_pdf("Jane Doe 123-45-6789"))
    assert "Jane Doe 123-45-6789" in texts(result_or_unscannable(pool.submit(job), job))
    assert "extractor_shared_memory_unreadable" in caplog.text
    assert _memfds() == 0  # given up on: closed, and not asked again
    again = HeavyJob(Place("attachment", 1), "pdf", _large_pdf("still read"))
    assert "still read" in texts(result_or_unscannable(pool.submit(again), again))
    assert caplog.text.count("extractor_shared_memory_unreadable") == 1
    assert "Jane" not in caplog.text


def test_a_memfd_that_cannot_be_made_leaves_the_attachment_to_the_pipe(
    pool: AttachmentPool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def out_of_memory(name: str, flags: int = 0) -> int:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(shared.os, "memfd_create", out_of_memory)
    job = HeavyJob(ATTACHMENT, "pdf", _large_pdf("Jane Doe 123-45-6789"))
    assert "Jane Doe 123-45-6789" in texts(result_or_unscannable(pool.submit(job), job))
    failed = [r for r in caplog.records if r.getMessage() == "extractor_shared_memory_failed"]
    assert [r.__dict__["fields"] for r in failed] == [{"error": "OSError"}]
    assert _memfds() == 0 and "Jane" not in caplog.text


def test_a_short_memfd_is_unreadable() -> None:
    fd = os.memfd_create("short", os.MFD_CLOEXEC)
    try:
        os.write(fd, b"%PDF-1.4")
        with pytest.raises(shared.SharedUnreadable):
            shared.extract_shared(
                shared.SharedBytes(os.getpid(), fd, 9), HeavyJob(ATTACHMENT, "pdf", b""), CONFIG
            )
    finally:
        os.close(fd)


def test_a_memfd_past_the_workers_address_space_is_over_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _large_pdf("Jane Doe 123-45-6789")
    fd = os.memfd_create("large", os.MFD_CLOEXEC)

    def out_of_address_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    try:
        os.write(fd, data)
        monkeypatch.setattr(shared.mmap, "mmap", out_of_address_space)
        result = shared.extract_shared(
            shared.SharedBytes(os.getpid(), fd, len(data)), HeavyJob(ATTACHMENT, "pdf", b""), CONFIG
        )
    finally:
        os.close(fd)
    # As a copy too large for the worker is; the memfd itself was readable.
    assert reasons(result) == [("attachment[0]", "over_budget")]


def test_pool_replaces_a_broken_pool(pool: AttachmentPool) -> None:
    pool.close()  # a pool that no longer runs, as when pebble's breaks
    job = HeavyJob(ATTACHMENT, "pdf", pdf_with_text(["still here"]))
    assert "still here" in texts(result_or_unscannable(pool.submit(job), job))


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TimeoutError("Task timeout"), "timeout"),
        (ProcessExpired("Abnormal termination", code=-9), "malformed"),  # type: ignore[no-untyped-call]
        (MemoryError(), "malformed"),
        (ValueError("Jane Doe 123-45-6789"), "malformed"),
    ],
)
def test_failed_jobs_are_unscannable(
    error: BaseException, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    future: Future[Extraction] = Future()
    future.set_exception(error)
    result = result_or_unscannable(future, HeavyJob(ATTACHMENT, "pdf", b"%PDF-"))
    assert reasons(result) == [("attachment[0]", reason)]
    assert "Jane" not in caplog.text and "123-45" not in caplog.text


# --- speed ----------------------------------------------------------------------------


def _timed_walk(raw: bytes) -> float:
    parsed = parse(raw).message
    runs = 200
    return min(timeit.repeat(lambda: walk(parsed, CONFIG), number=runs, repeat=3)) / runs


def test_walk_is_fast_for_ordinary_mail() -> None:
    sentence = "The patient was seen today; labs are attached. Please call me back.\n"
    plain = message(f"Content-Type: text/plain; charset=utf-8\n\n{sentence * 250}")
    paragraph = (
        "<p class=MsoNormal><span style='font-size:11.0pt;font-family:Calibri'>"
        f"{sentence}<o:p></o:p></span></p>\n"
    )
    html = message(f"Content-Type: text/html; charset=utf-8\n\n<html><body>{paragraph * 110}")
    assert 15_000 < len(plain) < 20_000 and 15_000 < len(html) < 20_000
    # Well under a millisecond on a workstation; the bound leaves room for slow CI.
    assert _timed_walk(plain) < 0.002
    assert _timed_walk(html) < 0.003


def test_large_docx_is_read_up_to_the_budgets_despite_its_compression_ratio() -> None:
    # Text-only Word files compress far beyond archive_max_ratio; they are streamed
    # and read as far as the budgets allow instead of being refused unread.
    first = "Patient Jane Doe, SSN 123-45-6789, seen for asthma."
    paragraphs = [first] + ["Routine follow-up notes, nothing new to report."] * 20_000
    data = docx_with_text(paragraphs)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("word/document.xml")
    assert info.file_size / info.compress_size > InspectionConfig().archive_max_ratio
    result = extract_heavy(HeavyJob(ATTACHMENT, "docx", data), InspectionConfig())
    assert first in texts(result) and reasons(result) == []
    small = InspectionConfig(max_text_chars=100_000)
    cut = extract_heavy(HeavyJob(ATTACHMENT, "docx", data), small)
    assert first in texts(cut) and reasons(cut) == [("attachment[0]", "over_budget")]
    tight = InspectionConfig(archive_max_bytes=200_000)
    capped = extract_heavy(HeavyJob(ATTACHMENT, "docx", data), tight)
    assert first in texts(capped) and reasons(capped) == [("attachment[0]", "over_budget")]
