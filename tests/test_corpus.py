"""The labelled synthetic corpus (bench/corpus.py) and its scorer (bench/phi_accuracy.py).

The labels are checked against the messages with an extraction written here,
independently of the generator: every labelled value must be in the decoded
text of the part it names.
"""

from __future__ import annotations

import email.policy
import io
import itertools
import random
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
    for one, other in itertools.combinations(corpus.SPLITS, 2):
        files = {label["file"] for label in labels if label["split"] == one}
        assert not files & {label["file"] for label in labels if label["split"] == other}


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
        message = corpus.corpus_message(name, 5, 40, "new")
        assert message == corpus.corpus_message(name, 5, 40, "new")
        assert message[0] != corpus.corpus_message(name, 6, 40, "new")[0]
    for one, other in itertools.combinations(corpus.SPLITS, 2):
        first, _ = corpus.build_family_message(one, 5, 7, "name_inline", "plain")
        second, _ = corpus.build_family_message(other, 5, 7, "name_inline", "plain")
        assert first != second, (one, other)


def _templates(book: corpus.Phrasebook) -> list[str]:
    lines = [line for group in book.templates.values() for t in group for line in t.split("\n")]
    lines += [t for group in book.subjects.values() for t in group]
    lines += [*book.covers, *book.list_items]
    return [line for line in lines if len(corpus._SLOT_RE.sub("", line).split()) >= 3]


def _words(line: str) -> set[str]:
    return set(re.findall(r"[a-z]+", corpus._SLOT_RE.sub(" ", line).lower()))


# The module that holds each split's phrasebook.
_BOOK_MODULES = {
    "tune": "corpus.py",
    "heldout": "corpus_heldout.py",
    "fresh": "corpus_fresh.py",
    "blind": "corpus_blind.py",
    "sealed": "corpus_sealed.py",
    "vault": "corpus_vault.py",
    "quarry": "corpus_quarry.py",
    "ledger": "corpus_ledger.py",
}
_POOLS = (
    "compound_surnames",
    "apostrophe_surnames",
    "common_word_first",
    "common_word_last",
    "public_figures",
    "companies",
    "streets",
    "buildings",
    "funds",
)


def _pool_entries(book: corpus.Phrasebook) -> set[str]:
    return {entry for pool in _POOLS for entry in getattr(book, pool)}


@pytest.mark.parametrize(("one", "other"), list(itertools.combinations(corpus.SPLITS, 2)))
def test_each_pair_of_splits_is_written_apart(one: str, other: str) -> None:
    """No template of one split is in the other's module, none is a word swap of the
    other's, and no name pool entry is shared."""
    assert set(_BOOK_MODULES) == set(corpus.SPLITS)
    books = {name: corpus.phrasebook(name) for name in (one, other)}
    assert set(books[one].templates) == set(books[other].templates)
    for mine, theirs in ((one, other), (other, one)):
        source = (BENCH / _BOOK_MODULES[theirs]).read_text(encoding="utf-8")
        for line in _templates(books[mine]):
            assert line not in source, (mine, line)
    for line in _templates(books[one]):
        words = _words(line)
        for other_line in _templates(books[other]):
            # Jaccard similarity of the word sets: a word swap keeps most of them.
            similarity = len(words & _words(other_line)) / len(words | _words(other_line))
            assert similarity < 0.5, (line, other_line)
    assert not _pool_entries(books[one]) & _pool_entries(books[other])


_PATIENT_SLOTS = frozenset({"patient", "first", "dob", "items", "table"})


@pytest.mark.parametrize("split", corpus.SPLITS)
def test_negative_templates_name_no_patient(split: str) -> None:
    """A patient slot in a negative would be an unlabelled patient; covers are dropped for
    negatives only when they hold {patient}, so none may hold another patient slot."""
    book = corpus.phrasebook(split)

    def slots(lines: Sequence[str]) -> set[str]:
        return {slot for line in lines for slot in corpus._SLOT_RE.findall(line)}

    for family in corpus.NEW_NEGATIVE_FAMILIES:
        subjects = book.subjects.get(family, book.subjects["default"])
        assert not slots([*book.templates[family], *subjects]) & _PATIENT_SLOTS, family
    assert not slots(book.subjects["default"]) & _PATIENT_SLOTS
    assert not slots(book.covers) & (_PATIENT_SLOTS - {"patient"})
    for family in corpus.NEW_PHI_FAMILIES:
        key = "name_shape" if family in corpus._FAMILY_SHAPE else family
        for template in book.templates[key]:
            assert slots([template]) & _PATIENT_SLOTS, (family, template)


def test_the_scorer_reports_each_split_apart(
    splits: tuple[Path, list[corpus.MessageLabel]],
) -> None:
    directory, _ = splits
    result = phi_accuracy.run(
        0, 1, directory, presidio=False, inspect=_fake_inspect, spans=_fake_find_spans
    )
    assert list(result["splits"]) == list(corpus.SPLITS)
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


@pytest.mark.parametrize("split", ["blind", "sealed", "vault", "quarry", "ledger"])
def test_only_the_judges_and_the_blind_book_draw_names_from_other_locales(split: str) -> None:
    """A book without locales leaves the random stream alone (its corpus stays byte for byte
    the same); the blind, sealed, vault, quarry and ledger books draw their share of names from
    locales that write them in Latin script, with no space around them."""
    fake, hc = corpus._faker()
    c = corpus.Ctx(random.Random(1), fake, hc)
    for plain in ("tune", "heldout", "fresh"):
        state = c.rng.getstate()
        assert corpus._name_faker(c, corpus.phrasebook(plain)) is fake
        assert c.rng.getstate() == state
    book = corpus.phrasebook(split)
    assert book.name_locales
    drawn = [corpus._name_faker(c, book) is not fake for _ in range(2000)]
    assert abs(sum(drawn) / len(drawn) - book.name_locale_share) < 0.05
    for locale, _ in book.name_locales:
        other = corpus._locale_faker(locale)
        other.seed_instance(7)
        for name in (n for _ in range(40) for n in (other.first_name(), other.last_name())):
            letters = [ch for ch in name if ch.isalpha()]
            assert name == name.strip(), (locale, name)
            assert letters and all("LATIN" in unicodedata.name(ch) for ch in letters), (
                locale,
                name,
            )
