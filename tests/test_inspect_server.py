"""Inspection in the running server and on the command line, with real documents."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

from documents import docx_with_text, pdf_with_text
from harness import Phigate, Sink, run_without_settings, via_sink, wait_until

CANARY_NAME = "Zebulon Quimby"
PHI_LINES = [
    f"Patient: {CANARY_NAME}",
    "DOB: 03/14/1961   MRN: 40719322",
    "Diagnosis: type 2 diabetes mellitus (E11.9); metformin 500 mg",
]
PLAIN_LINES = ["Quarterly facilities report", "The parking garage reopens on Monday."]

POLICY = """\
version: 1
rules:
  - id: phi-refused
    when:
      any_of:
        - phi: true
        - unscannable: true
    action: reject
    reason: PHI may not leave by this route
  - id: plain
    action: deliver
    via: [standard]
"""


def with_attachment(data: bytes, maintype: str, subtype: str, filename: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Records <records@clinic.example.org>"
    message["To"] = "dr@partner.test"
    message["Subject"] = "Documents"
    message.set_content("Please find the document attached.")
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes(policy=SMTP_POLICY)


def audit_details(gw: Phigate) -> list[str]:
    db = sqlite3.connect(gw.db_path)
    rows = [r[0] for r in db.execute("SELECT detail FROM audit_events WHERE event = 'policy'")]
    db.close()
    return rows


def test_phi_only_inside_a_pdf_attachment_is_found_by_the_server(tmp_path: Path) -> None:
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    (policy_dir / "policy.yaml").write_text(POLICY)
    phi_pdf = with_attachment(pdf_with_text(PHI_LINES), "application", "pdf", "results.pdf")
    plain_pdf = with_attachment(pdf_with_text(PLAIN_LINES), "application", "pdf", "report.pdf")
    with Sink() as sink:
        gw = Phigate(tmp_path, delivery=via_sink(sink), policy_dir=str(policy_dir))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            client = gw.client("ehr1", secret)
            refused = client.sendmail("records@clinic.example.org", ["dr@partner.test"], plain_pdf)
            assert refused == {}
            try:
                client.sendmail("records@clinic.example.org", ["dr@partner.test"], phi_pdf)
                raise AssertionError("a PDF with PHI was accepted")
            except Exception as exc:  # smtplib.SMTPDataError
                assert "550" in str(exc) and "phi-refused" in str(exc)
            client.quit()
            got = sink.wait_for(1)
            wait_until(lambda: len(audit_details(gw)) == 2)
        assert len(got) == 1 and b"report.pdf" in got[0].content
        plain, phi = audit_details(gw)
        assert "rule=plain" in plain and "phi=no" in plain
        assert "rule=phi-refused" in phi and "phi=yes" in phi
        # The name found in the PDF appears nowhere outside the encrypted store.
        assert CANARY_NAME not in gw.log_text()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return run_without_settings(*args, timeout=120)


def test_inspect_command_reports_many_files_without_values(tmp_path: Path) -> None:
    files = {
        "pdf.eml": with_attachment(pdf_with_text(PHI_LINES), "application", "pdf", "r.pdf"),
        "docx.eml": with_attachment(
            docx_with_text(PHI_LINES),
            "application",
            "vnd.openxmlformats-officedocument.wordprocessingml.document",
            "r.docx",
        ),
        "plain.eml": with_attachment(pdf_with_text(PLAIN_LINES), "application", "pdf", "p.pdf"),
        "image.eml": with_attachment(b"\x89PNG\r\n\x1a\n" + bytes(64), "image", "png", "scan.png"),
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    paths = [str(tmp_path / name) for name in files]
    result = run("inspect", "--json", *paths)
    assert result.returncode == 0, result.stderr
    reports = {Path(r["file"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert reports["pdf.eml"]["phi"] is True and reports["docx.eml"]["phi"] is True
    assert reports["pdf.eml"]["in_attachment"] is True
    assert "attachment[0]" in reports["pdf.eml"]["places"]
    assert {"name", "date_of_birth", "icd10"} <= set(reports["pdf.eml"]["findings"])
    assert reports["plain.eml"]["phi"] is False
    assert reports["image.eml"]["phi"] == "unscannable"
    assert reports["image.eml"]["unscannable"] == {"image": 1}
    text = run("inspect", *paths)
    for output in (result.stdout, text.stdout, text.stderr):
        assert CANARY_NAME not in output and "40719322" not in output
    assert f"{paths[0]}: PHI (" in text.stdout


def test_large_text_is_detected_without_stalling_the_event_loop() -> None:
    import asyncio
    from email.parser import BytesParser
    from email.policy import compat32

    from gateway.config import InspectionConfig
    from gateway.inspect.findings import Findings
    from gateway.inspect.inspector import Inspector

    line = "Patient: Zebulon Quimby, MRN: 40719322, phone 555-234-5678, metformin 500 mg.\n"
    body = line * 12_000  # about a million characters, tens of thousands of findings
    raw = f"Subject: export\r\n\r\n{body}".replace("\n", "\r\n").encode()
    message = BytesParser(policy=compat32).parsebytes(raw)
    inspector = Inspector(InspectionConfig())

    async def inspect_while_ticking() -> tuple[int, Findings]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        findings = await inspector.inspect_async(message)
        done.set()
        await task
        return ticks, findings

    try:
        ticks, findings = asyncio.run(inspect_while_ticking())
        assert findings == inspector.inspect(message)
    finally:
        inspector.close()
    assert findings.phi and findings.types["mrn"] >= 12_000
    assert ticks > 10  # the loop kept running while the text was searched
