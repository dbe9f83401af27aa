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
            assert label["family"] in corpus.NEGATIVE_CATEGORIES + corpus.NEW_NEGATIVE_FAMILIES


def test_every_category_carrier_and_adversarial_case_is_produced(
    generated: tuple[Path, list[corpus.MessageLabel]],
) -> None:
    _, labels = generated
    old = [label for label in labels if label["family"] in corpus.CATEGORIES]
    assert {label["category"] for label in old} == set(corpus.CATEGORIES)
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
    assert list(result["splits"]) == ["tune"]
    tune = result["splits"]["tune"]
    assert tune["corpus"]["messages"] == COUNT
    phigate = tune["phigate"]
    assert phigate["phi_messages"] + phigate["negative_messages"] == COUNT
    assert phigate["errors"] == 0 and phigate["fp_rate"] == 0.0
    assert 0.0 < phigate["recall"] < 1.0  # the HL7 mail and nothing else
    assert len(phigate["groups"]) >= len(corpus.CATEGORIES)
    assert set(phigate["latency"]) == {"p50_ms", "p90_ms", "p99_ms", "max_ms"}
    assert tune["span_recall"]["ssn"]["recall"] > 0.5  # the undisguised ones
    if tune["presidio"] is not None:
        assert set(tune["presidio"]) == set(phi_accuracy.PRESIDIO_VARIANTS)
    out = io.StringIO()
    phi_accuracy.print_report(result, out)
    table = out.getvalue()
    print(table)
    for line in ("document recall (PHI mail)", "false positives (non-PHI mail)", "latency p99"):
        assert line in table
    assert ">= 0.99" in table and "<= 3%" in table
    assert "span recall by type" in table and "category:referral" in table
    assert "=== split: tune" in table and "by family" in table and "issue examples" in table


def test_the_scorer_finds_the_real_inspection() -> None:
    assert callable(phi_accuracy.resolve_inspect())
    without = phi_accuracy.run(3, 1, None, presidio=False, inspect=_fake_inspect, spans=False)
    out = io.StringIO()
    phi_accuracy.print_report(without, out)
    assert "span recall: detectors not available" in out.getvalue()


# ---------------------------------------------------------------- round-two families and splits

NEW_COUNT = len(corpus.NEW_FAMILIES) + 12


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[corpus.MessageLabel]]:
    out = tmp_path_factory.mktemp("splits")
    return out, corpus.generate(out, NEW_COUNT, seed=3, split="all", families="new")


def test_labels_carry_family_and_split(
    generated: tuple[Path, list[corpus.MessageLabel]],
    splits: tuple[Path, list[corpus.MessageLabel]],
) -> None:
    _, old_mix = generated
    assert all(label["split"] == "tune" for label in old_mix)
    assert {label["family"] for label in old_mix[: len(corpus.COVERAGE)]} == set(corpus.CATEGORIES)
    _, labels = splits
    for name in corpus.SPLITS:
        chosen = [label for label in labels if label["split"] == name]
        assert len(chosen) == NEW_COUNT
        assert {label["family"] for label in chosen} == set(corpus.NEW_FAMILIES)
        for label in chosen:
            assert label["phi"] == (label["family"] in corpus.NEW_PHI_FAMILIES)
            names = [s for p in label["parts"] for s in p["spans"] if s["type"] == "name"]
            assert bool(names) == label["phi"], label["file"]
    tune_files = {label["file"] for label in labels if label["split"] == "tune"}
    assert not tune_files & {label["file"] for label in labels if label["split"] == "heldout"}


def test_new_family_spans_point_at_their_values_in_the_message(
    splits: tuple[Path, list[corpus.MessageLabel]],
) -> None:
    directory, labels = splits
    checked = 0
    for label in labels:
        message = _PARSER.parsebytes((directory / label["file"]).read_bytes())
        for part in label["parts"]:
            text = _normal(_decoded(message, part))
            for span in part["spans"]:
                where = f"{label['file']} {part['label']} {span['type']}"
                assert part["text"][span["start"] : span["end"]] == span["value"], where
                assert span["value"] in text, where
                checked += 1
    assert checked > 120


def test_the_mix_is_proportional_and_the_old_categories_stay(tmp_path: Path) -> None:
    recipes = [corpus._family_recipe("tune", 1, i, "all") for i in range(2000)]
    new = sum(recipe is not None for recipe in recipes)
    assert abs(new / 2000 - corpus.NEW_SHARE) < 0.05
    assert all(recipe is None for recipe in recipes[: len(corpus.COVERAGE)])
    only_new = [corpus._family_recipe("tune", 1, i, "new") for i in range(300)]
    assert None not in only_new
    assert all(corpus._family_recipe("heldout", 1, i, "all") is not None for i in range(300))


def test_each_split_is_deterministic_and_the_splits_differ() -> None:
    for name in corpus.SPLITS:
        first = corpus.corpus_message(name, 5, 40, "new")
        assert first == corpus.corpus_message(name, 5, 40, "new")
        assert first[0] != corpus.corpus_message(name, 6, 40, "new")[0]
    tune, _ = corpus.build_family_message("tune", 5, 7, "name_inline", "plain")
    heldout, _ = corpus.build_family_message("heldout", 5, 7, "name_inline", "plain")
    assert tune != heldout


def _templates(book: corpus.Phrasebook) -> list[str]:
    lines = [line for group in book.templates.values() for t in group for line in t.split("\n")]
    lines += [t for group in book.subjects.values() for t in group]
    lines += [*book.covers, *book.list_items]
    return [line for line in lines if len(corpus._SLOT_RE.sub("", line).split()) >= 3]


def _words(line: str) -> set[str]:
    return set(re.findall(r"[a-z]+", corpus._SLOT_RE.sub(" ", line).lower()))


def test_heldout_phrasings_are_written_apart_from_the_tuning_ones() -> None:
    """No held-out template is in the tuning module, none is a word swap of a tuning one,
    and the name pools do not overlap."""
    tune_source = (BENCH / "corpus.py").read_text(encoding="utf-8")
    heldout_source = (BENCH / "corpus_heldout.py").read_text(encoding="utf-8")
    tune, heldout = corpus.phrasebook("tune"), corpus.phrasebook("heldout")
    assert set(tune.templates) == set(heldout.templates)
    for line in _templates(heldout):
        assert line not in tune_source, line
    for line in _templates(tune):
        assert line not in heldout_source, line
    for line in _templates(heldout):
        words = _words(line)
        for other in _templates(tune):
            # Jaccard similarity of the word sets: a word swap keeps most of them.
            similarity = len(words & _words(other)) / len(words | _words(other))
            assert similarity < 0.5, (line, other)
    for pool in ("compound_surnames", "apostrophe_surnames", "common_word_first"):
        assert not set(getattr(tune, pool)) & set(getattr(heldout, pool)), pool
    assert not set(tune.companies) & set(heldout.companies)


def test_the_scorer_reports_each_split_apart(
    splits: tuple[Path, list[corpus.MessageLabel]],
) -> None:
    directory, _ = splits
    result = phi_accuracy.run(
        0, 1, directory, presidio=False, inspect=_fake_inspect, spans=_fake_find_spans
    )
    assert list(result["splits"]) == ["tune", "heldout"]
    for name, split in result["splits"].items():
        assert split["corpus"]["split"] == name and split["corpus"]["messages"] == NEW_COUNT
        families = split["phigate"]["families"]
        assert set(families) == set(corpus.NEW_FAMILIES)
        assert set(families["name_inline"]["latency"]) >= {"p50_ms", "p99_ms"}
        assert split["family_spans"]["name_inline"]["name_labelled"] > 0
        assert {"plain", "html", "pdf", "docx"} <= set(split["phigate"]["places"])
    only = phi_accuracy.run(
        0, 1, directory, presidio=False, inspect=_fake_inspect, spans=False, split="heldout"
    )
    assert list(only["splits"]) == ["heldout"]
    examples = only["issue_examples"]
    assert [e["expected_today"] for e in examples] == [False, False, False, True, True]
    assert all(e["expected_after"] for e in examples)
    out = io.StringIO()
    phi_accuracy.print_report(only, out)
    assert "=== split: heldout" in out.getvalue() and "tune" not in out.getvalue().split("===")[0]
    assert "Robert King: your prescription for metformin is ready for pickup." in out.getvalue()
