"""Whatever arrives, inspection ends in Findings: never an exception, never a hang."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

import pytest
from documents import docx_with_text, pdf_with_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import InspectionConfig
from gateway.inspect.findings import PHI_TYPES, Findings
from gateway.inspect.inspector import Inspector
from gateway.mail.message import parse

PHI_LINES = ["Patient: Jane Doe", "SSN 123-45-6789", "Diagnosis: asthma (J45.909)"]


def _seed_messages() -> list[bytes]:
    """Messages with every kind of part, for mutation."""
    out = []
    for data, maintype, subtype, name in (
        (pdf_with_text(PHI_LINES), "application", "pdf", "r.pdf"),
        (
            docx_with_text(PHI_LINES),
            "application",
            "vnd.openxmlformats-officedocument.wordprocessingml.document",
            "r.docx",
        ),
        (
            b"MSH|^~\\&|A|B|C|D|202601011200||ADT^A04|1|P|2.5\rPID|1||123^^^H^MR||DOE^JANE",
            "text",
            "plain",
            "adt.hl7",
        ),
    ):
        message = EmailMessage()
        message["From"] = "Clinic <a@clinic.example>"
        message["Subject"] = "Results for Jane Doe"
        message.set_content("Dear Jane Doe,\nsee <b>attached</b>.\n", subtype="html")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        out.append(message.as_bytes(policy=SMTP_POLICY))
    return out


SEEDS = _seed_messages()


@pytest.fixture(scope="module")
def inspector() -> Iterator[Inspector]:
    tool = Inspector(InspectionConfig(extractor_timeout=2.0), workers=1)
    yield tool
    tool.close()


def _check(findings: Findings) -> None:
    assert set(findings.types) <= set(PHI_TYPES)
    assert all(count > 0 for count in findings.types.values())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=4000))
def test_random_bytes(inspector: Inspector, data: bytes) -> None:
    _check(inspector.inspect(parse(data).message))


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.sampled_from(SEEDS),
    cuts=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 400)), max_size=4),
    noise=st.binary(min_size=1, max_size=40),
)
def test_mutated_messages(
    inspector: Inspector, seed: bytes, cuts: list[tuple[int, int]], noise: bytes
) -> None:
    # Cut holes into headers, MIME boundaries and base64 attachments, and fill
    # them with noise: truncated PDFs, broken zips, half a boundary ...
    data = bytearray(seed)
    for position, length in cuts:
        at = position % len(data)
        data[at : at + length] = noise
    _check(inspector.inspect(parse(bytes(data)).message))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(min_size=1, max_size=3000), st.sampled_from(["pdf", "docx", "zip", "xlsx"]))
def test_garbage_attachments(inspector: Inspector, payload: bytes, kind: str) -> None:
    body = base64.encodebytes(payload).decode()
    raw = (
        "Subject: file\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
        f'Content-Type: application/octet-stream; name="f.{kind}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="f.{kind}"\r\n\r\n{body}\r\n--b--\r\n'
    )
    findings = inspector.inspect(parse(raw.encode()).message)
    _check(findings)
    assert f".{kind}" in findings.attachment_types


def test_seeds_hold_phi_in_each_kind_of_attachment(inspector: Inspector) -> None:
    # The mutations start from messages whose PHI the inspection does find.
    for seed in SEEDS:
        findings = inspector.inspect(parse(seed).message)
        assert findings.phi and findings.in_attachment, findings.places
