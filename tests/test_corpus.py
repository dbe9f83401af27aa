"""The labelled synthetic corpus (bench/corpus.py) and its scorer (bench/phi_accuracy.py).

The labels are checked against the messages with an extraction written here,
independently of the generator: every labelled value must be in the decoded
text of the part it names.
"""

from __future__ import annotations

import email.policy
import io
import re
import sys
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pypdf
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import corpus  # noqa: E402 (bench/corpus.py)
import phi_accuracy  # noqa: E402 (bench/phi_accuracy.py)

from gateway.config import InspectionConfig  # noqa: E402
from gateway.inspect.findings import Findings  # noqa: E402

COUNT = 30
_PARSER = BytesParser(policy=email.policy.compat32)
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[corpus.MessageLabel]]:
    out = tmp_path_factory.mktemp("corpus")
    return out, corpus.generate(out, COUNT, seed=1)


def _normal(text: str) -> str:
    return _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text)).replace("\r", "\n")


class _HtmlText(HTMLParser):
    _BLOCKS = frozenset({"p", "br", "div", "tr", "li", "h1", "h2", "h3", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)  # inline tags add nothing: 123-<b>45</b>-6789 stays whole


def _html_text(markup: str) -> str:
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    return "".join(parser.chunks)


def _payload_text(part: Message) -> str:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data.decode(part.get_content_charset() or "utf-8")


def _split(message: Message) -> tuple[list[Message], list[Message]]:
    bodies, attachments = [], []
    for part in message.walk():
        if part.is_multipart():
            continue
        if part.get_filename() or part.get_content_disposition() == "attachment":
            attachments.append(part)
        else:
            bodies.append(part)
    return bodies, attachments


def _attachment_text(part: Message, label: corpus.PartLabel) -> str:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    assert part.get_filename() == label["name"]
    if label["member"]:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.read(label["member"]).decode("utf-8")
    if label["format"] == "pdf":
        return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)
    if label["format"] == "docx":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            root = ElementTree.fromstring(archive.read("word/document.xml"))
        return "\n".join(
            "".join(t.text or "" for t in p.iter(f"{_W}t")) for p in root.iter(f"{_W}p")
        )
    return data.decode("utf-8")


def _decoded(message: Message, label: corpus.PartLabel) -> str:
    """The text of the part a label names, extracted here from the message itself."""
    if label["place"] == "subject":
        return str(make_header(decode_header(message["Subject"])))
    if label["place"] == "header":
        assert label["name"] is not None
        return str(make_header(decode_header(message[label["name"]])))
    bodies, attachments = _split(message)
    if label["place"] == "body":
        part = bodies[label["index"]]
        text = _payload_text(part)
        return _html_text(text) if part.get_content_subtype() == "html" else text
    return _attachment_text(attachments[label["index"]], label)


def test_the_same_seed_gives_the_same_bytes(
    generated: tuple[Path, list[corpus.MessageLabel]], tmp_path: Path
) -> None:
    first, _ = generated
    again = corpus.generate(tmp_path / "again", COUNT, seed=1)
    assert len(again) == COUNT
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "again").iterdir())
    for name in names:
        assert (first / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    other, _ = corpus.build_message(2, COUNT - 1)
    assert other != (first / f"{COUNT - 1:05d}.eml").read_bytes()


def test_every_labelled_value_is_in_its_part(
    generated: tuple[Path, list[corpus.MessageLabel]],
) -> None:
    directory, labels = generated
    checked = 0
    for label in labels:
        message = _PARSER.parsebytes((directory / label["file"]).read_bytes())
        bodies, attachments = _split(message)
        places = [p for p in label["parts"] if p["place"] in ("body", "attachment")]
        assert len(places) == len(bodies) + len(attachments), label["file"]
        for part in label["parts"]:
            text = _normal(_decoded(message, part))
            for span in part["spans"]:
                where = f"{label['file']} {part['label']} {span['type']}"
                assert part["text"][span["start"] : span["end"]] == span["value"], where
                assert span["value"] in text, where
                checked += 1
    assert checked > 100


def test_negatives_carry_no_spans_and_phi_mail_does(
    generated: tuple[Path, list[corpus.MessageLabel]],
) -> None:
    _, labels = generated
    for label in labels:
        spans = [s for part in label["parts"] for s in part["spans"]]
        if label["phi"]:
            assert spans, label["file"]
        else:
            assert not spans and label["structured"] is None, label["file"]
            assert label["category"] in corpus.NEGATIVE_CATEGORIES


def test_every_category_carrier_and_adversarial_case_is_produced(
    generated: tuple[Path, list[corpus.MessageLabel]],
) -> None:
    _, labels = generated
    assert {label["category"] for label in labels} == set(corpus.CATEGORIES)
    assert {label["carrier"] for label in labels} == set(corpus.CARRIERS)
    assert {label["adversarial"] for label in labels} - {None} == set(corpus.ADVERSARIAL)
    assert {label["structured"] for label in labels} - {None} == {"hl7", "fhir", "ccda"}


def test_identifiers_have_real_formats(
    generated: tuple[Path, list[corpus.MessageLabel]],
) -> None:
    _, labels = generated
    icd10 = set(corpus.icd10_codes())
    assert "E11.9" in icd10 and "I10" in icd10 and "E11" not in icd10  # billable codes only
    seen: set[str] = set()
    for label in labels:
        for part in label["parts"]:
            for span in part["spans"]:
                kind, value = span["type"], span["value"]
                seen.add(kind)
                if kind == "ssn":
                    assert corpus.ssn_is_valid(value), value
                elif kind == "npi":
                    assert corpus.npi_is_valid(value), value
                elif kind == "icd10":
                    assert value in icd10, value
                elif kind == "dea":
                    assert corpus.dea_check_digit(value[2:]) == int(value[-1]), value
    assert {"ssn", "npi", "icd10", "dea", "name", "mrn", "date_of_birth"} <= seen
    assert corpus.npi_is_valid("1234567893") and not corpus.npi_is_valid("1234567890")


def test_adversarial_values_are_disguised(
    generated: tuple[Path, list[corpus.MessageLabel]],
) -> None:
    """The SSN of an adversarial message never appears whole before normalisation."""
    directory, labels = generated
    for label in labels:
        case = label["adversarial"]
        if case in (None, "zip_csv"):
            continue
        raw = (directory / label["file"]).read_bytes()
        message = _PARSER.parsebytes(raw)
        ssns = [s["value"] for p in label["parts"] for s in p["spans"] if s["type"] == "ssn"]
        assert ssns, label["file"]
        bodies, attachments = _split(message)
        if case == "qp_soft_break":
            undisguised = raw.decode("ascii")
        elif case == "docx_split_runs":
            data = attachments[0].get_payload(decode=True)
            assert isinstance(data, bytes)
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                undisguised = archive.read("word/document.xml").decode("utf-8")
        else:
            undisguised = "".join(_payload_text(part) for part in bodies)
        for ssn in ssns:
            assert ssn not in undisguised, (label["file"], case)


@dataclass(frozen=True)
class _Span:
    type: str
    start: int
    end: int


def _fake_find_spans(
    text: str, config: InspectionConfig, known_names: Sequence[str] = ()
) -> list[_Span]:
    return [_Span("ssn", m.start(), m.end()) for m in re.finditer(r"\d{3}-\d{2}-\d{4}", text)]


def _fake_inspect(message: Message, config: InspectionConfig | None = None) -> Findings:
    payloads = [part.get_payload(decode=True) for part in message.walk()]
    flagged = any(isinstance(data, bytes) and b"MSH|" in data for data in payloads)
    return Findings(phi=flagged, types={"ssn": 1} if flagged else {})


def test_the_scorer_prints_its_table(
    generated: tuple[Path, list[corpus.MessageLabel]],
) -> None:
    """Structure, not accuracy: the detectors are stood in for by trivial functions."""
    directory, _ = generated
    result = phi_accuracy.run(COUNT, 1, directory, inspect=_fake_inspect, spans=_fake_find_spans)
    assert result["corpus"]["messages"] == COUNT
    phigate = result["phigate"]
    assert phigate["phi_messages"] + phigate["negative_messages"] == COUNT
    assert phigate["errors"] == 0 and phigate["fp_rate"] == 0.0
    assert 0.0 < phigate["recall"] < 1.0  # the HL7 mail and nothing else
    assert len(phigate["groups"]) >= len(corpus.CATEGORIES)
    assert set(phigate["latency"]) == {"p50_ms", "p90_ms", "p99_ms", "max_ms"}
    assert result["span_recall"]["ssn"]["recall"] > 0.5  # the undisguised ones
    if result["presidio"] is not None:
        assert set(result["presidio"]) == set(phi_accuracy.PRESIDIO_VARIANTS)
    out = io.StringIO()
    phi_accuracy.print_report(result, out)
    table = out.getvalue()
    print(table)
    for line in ("document recall (PHI mail)", "false positives (non-PHI mail)", "latency p99"):
        assert line in table
    assert ">= 0.99" in table and "<= 3%" in table
    assert "span recall by type" in table and "category:referral" in table


def test_the_scorer_finds_the_real_inspection() -> None:
    assert callable(phi_accuracy.resolve_inspect())
    without = phi_accuracy.run(3, 1, None, presidio=False, inspect=_fake_inspect, spans=False)
    out = io.StringIO()
    phi_accuracy.print_report(without, out)
    assert "span recall: detectors not available" in out.getvalue()
