"""PHI detection accuracy on the labelled synthetic corpus, next to Presidio (regex only).

    .venv/bin/python bench/phi_accuracy.py --count 500        # generate a corpus in a temp dir
    .venv/bin/python bench/phi_accuracy.py --corpus DIR       # one written by bench/corpus.py
    .venv/bin/python bench/phi_accuracy.py --count 500 --json # results as JSON on stdout
    .venv/bin/python bench/phi_accuracy.py --inspect mymodule:inspect   # another implementation

Each message is parsed as gateway/intake.py does (BytesParser, compat32) and
inspected with gateway.inspect.inspect_message. A PHI message (label phi true,
structured payloads included) counts as found when the findings say `phi` or
`structured`; a negative counts as a false positive on the same condition.
Latency is that one call, per message.

Span recall: when gateway.inspect.detect.find_spans exists, it runs over each
labelled part text (what a correct extractor yields), with the names of the
message's structured payloads as known_names, as the real pipeline passes
them; a labelled span counts as found when a predicted span of the same type
overlaps it.

Presidio runs on the same part texts (so it gets perfect extraction for free)
with its predefined pattern recognizers only, a no-op NLP engine (no spaCy
model) and the bundled public-suffix snapshot (no network). A message counts
as found when any part yields an entity of an identifier type with score >= 0.3.

See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import email.policy
import importlib
import inspect
import json
import logging
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus

from gateway.config import InspectionConfig

if TYPE_CHECKING:  # gateway.inspect itself is imported only when the benchmark runs
    from gateway.inspect.findings import Findings

InspectFunction = Callable[[Message, InspectionConfig | None], "Findings"]
FindSpans = Callable[
    ..., Iterable[Any]
]  # (text, config, known_names=()) -> [Span(type, start, end)]
DEFAULT_INSPECT = "gateway.inspect:inspect_message"

TARGET_RECALL = 0.99
TARGET_FP = 0.03
PRESIDIO_MIN_SCORE = 0.3  # below: Presidio's "very weak" guesses (any 9 digits as an SSN ...)
# Presidio entity -> the labelled types it stands for (for its per-type span recall).
PRESIDIO_TYPES: dict[str, frozenset[str]] = {
    "US_SSN": frozenset({"ssn"}),
    "US_ITIN": frozenset({"ssn"}),
    "MEDICAL_LICENSE": frozenset({"dea"}),
    "UK_NHS": frozenset(),
    "PHONE_NUMBER": frozenset({"phone", "fax"}),
    "EMAIL_ADDRESS": frozenset({"email"}),
    "DATE_TIME": frozenset({"date_of_birth", "service_date"}),
}
# Two readings of "Presidio found PHI": any identifier it knows, or only the strong ones.
PRESIDIO_VARIANTS: dict[str, frozenset[str]] = {
    "presidio": frozenset(PRESIDIO_TYPES),
    "presidio_strong": frozenset({"US_SSN", "US_ITIN", "MEDICAL_LICENSE", "UK_NHS"}),
}
_PARSER = BytesParser(policy=email.policy.compat32)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": percentile(ms, 0.5),
        "p90_ms": percentile(ms, 0.9),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms, default=0.0),
    }


@dataclass
class DocScore:
    """Document-level counts of one detector."""

    positives: int = 0
    found: int = 0
    negatives: int = 0
    false_positives: int = 0
    errors: int = 0
    error_types: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    # group ("category:lab_result", "adversarial:html_split" ...) -> [found or flagged, total]
    groups: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    # "family:NAME" and "place:CARRIER" -> the same counts over those messages only
    sub: dict[str, DocScore] = field(default_factory=dict)

    def add(
        self, label: corpus.MessageLabel, flagged: bool, seconds: float, nested: bool = True
    ) -> None:
        self.latencies.append(seconds)
        if nested:
            for key in (f"family:{family_of(label)}", f"place:{label['carrier']}"):
                self.sub.setdefault(key, DocScore()).add(label, flagged, seconds, nested=False)
        kind = "phi" if label["phi"] else "negative"
        keys = [f"category:{label['category']}", f"carrier:{label['carrier']}:{kind}"]
        if label["adversarial"]:
            keys.append(f"adversarial:{label['adversarial']}")
        if label["phi"]:
            self.positives += 1
            self.found += flagged
        else:
            self.negatives += 1
            self.false_positives += flagged
        for key in keys:
            self.groups[key][0] += flagged
            self.groups[key][1] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "phi_messages": self.positives,
            "found": self.found,
            "recall": self.found / self.positives if self.positives else None,
            "negative_messages": self.negatives,
            "false_positives": self.false_positives,
            "fp_rate": self.false_positives / self.negatives if self.negatives else None,
            "errors": self.errors,
            "error_types": dict(self.error_types),
            "latency": latency_summary(self.latencies),
            "groups": {k: {"flagged": v[0], "total": v[1]} for k, v in sorted(self.groups.items())},
            "families": self._subs("family:"),
            "places": self._subs("place:"),
        }

    def brief(self) -> dict[str, Any]:
        """Recall, false-positive rate and latency, without the groups."""
        return {
            "phi_messages": self.positives,
            "recall": self.found / self.positives if self.positives else None,
            "negative_messages": self.negatives,
            "fp_rate": self.false_positives / self.negatives if self.negatives else None,
            "errors": self.errors,
            "latency": latency_summary(self.latencies),
        }

    def _subs(self, prefix: str) -> dict[str, dict[str, Any]]:
        return {
            key.removeprefix(prefix): score.brief()
            for key, score in sorted(self.sub.items())
            if key.startswith(prefix)
        }


def family_of(label: corpus.MessageLabel) -> str:
    """The label's family; corpora written before families existed have the category."""
    return label.get("family") or label["category"]


def split_of(label: corpus.MessageLabel) -> str:
    return label.get("split") or "tune"


def load_or_generate(
    corpus_dir: Path | None, count: int, seed: int, split: str = "all", families: str = "all"
) -> tuple[Path, list[corpus.MessageLabel], tempfile.TemporaryDirectory[str] | None]:
    """The labels of the chosen split(s): read from CORPUS_DIR, or COUNT per split generated."""
    if corpus_dir is not None:
        labels = corpus.load_labels(corpus_dir)
        return corpus_dir, [x for x in labels if split in ("all", split_of(x))], None
    temp = tempfile.TemporaryDirectory(prefix="phigate-corpus-")
    directory = Path(temp.name)
    return directory, corpus.generate(directory, count, seed, split, families), temp


def resolve_inspect(spec: str = DEFAULT_INSPECT) -> InspectFunction:
    """MODULE:FUNCTION, imported when the benchmark runs (the default is what intake calls)."""
    module_name, _, attribute = spec.partition(":")
    function = getattr(importlib.import_module(module_name), attribute or "inspect_message")
    if not callable(function):
        raise TypeError(f"{spec} is not a function")
    return cast(InspectFunction, function)


def score_phigate(
    inspect_message: InspectFunction,
    directory: Path,
    labels: Sequence[corpus.MessageLabel],
    config: InspectionConfig,
) -> tuple[DocScore, Counter[str]]:
    score = DocScore()
    unscannable: Counter[str] = Counter()
    raws = [(directory / label["file"]).read_bytes() for label in labels]
    # Untimed warm-up over the first messages (every carrier, as corpus.COVERAGE comes
    # first): pattern compilation and worker start-up are not per-message costs.
    for raw in raws[: len(corpus.COVERAGE)]:
        with contextlib.suppress(Exception):  # counted below, where it is timed again
            inspect_message(_PARSER.parsebytes(raw), config)
    for label, raw in zip(labels, raws, strict=True):
        message = _PARSER.parsebytes(raw)
        start = time.perf_counter()
        try:
            findings = inspect_message(message, config)
        except Exception as exc:  # a crash is a result too: counted, the message not flagged
            score.errors += 1
            score.error_types[type(exc).__name__] += 1
            score.add(label, False, time.perf_counter() - start)
            continue
        score.add(label, bool(findings.phi or findings.structured), time.perf_counter() - start)
        for reason, n in findings.unscannable_reasons.items():
            unscannable[reason] += n
        if findings.unscannable and not findings.unscannable_reasons:
            unscannable["unspecified"] += 1
    return score, unscannable


def find_spans_function() -> FindSpans | None:
    """gateway.inspect.detect.find_spans, when the detectors exist."""
    try:
        module = importlib.import_module("gateway.inspect.detect")
    except ImportError:
        return None
    found = getattr(module, "find_spans", None)
    return found if callable(found) else None


@dataclass
class SpanScore:
    labelled: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    # Predicted spans in negative mail, by type: what would make a false positive.
    on_negatives: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # exception name -> parts
    # "family:NAME" / "place:PLACE:FORMAT" -> type -> [found, labelled]
    by: dict[str, dict[str, list[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: [0, 0]))
    )

    def add(
        self,
        label: corpus.MessageLabel,
        part: corpus.PartLabel,
        predicted: list[tuple[str, int, int]],
    ) -> None:
        if not label["phi"]:
            self.on_negatives.update(kind for kind, _, _ in predicted)
            return
        where = "place:" + (
            part["place"]
            if part["place"] in ("subject", "header")
            else f"{part['place']}:{part['format']}"
        )
        for span in part["spans"]:
            hit = any(
                kind == span["type"] and start < span["end"] and span["start"] < end
                for kind, start, end in predicted
            )
            self.labelled[span["type"]] += 1
            self.found[span["type"]] += hit
            for key in (f"family:{family_of(label)}", where):
                self.by[key][span["type"]][0] += hit
                self.by[key][span["type"]][1] += 1

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        types = sorted(set(self.labelled) | set(self.on_negatives))
        return {
            t: {
                "labelled": self.labelled[t],
                "found": self.found[t],
                "recall": self.found[t] / self.labelled[t] if self.labelled[t] else None,
                "on_negatives": self.on_negatives[t],
            }
            for t in types
        }

    def grouped(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Per family or place: name span recall, and the other types' recall pooled."""
        out: dict[str, dict[str, Any]] = {}
        for key, counts in sorted(self.by.items()):
            if not key.startswith(prefix):
                continue
            name = counts.get("name", [0, 0])
            others = [sum(v[i] for t, v in counts.items() if t != "name") for i in (0, 1)]
            out[key.removeprefix(prefix)] = {
                "name_labelled": name[1],
                "name_found": name[0],
                "name_recall": name[0] / name[1] if name[1] else None,
                "other_labelled": others[1],
                "other_recall": others[0] / others[1] if others[1] else None,
            }
        return out


def _known_names(label: corpus.MessageLabel) -> tuple[str, ...]:
    names = {
        span["value"]
        for part in label["parts"]
        if part["format"] in ("hl7", "fhir", "ccda")
        for span in part["spans"]
        if span["type"] == "name"
    }
    return tuple(sorted(names))


def _known_ids(label: corpus.MessageLabel) -> tuple[str, ...]:
    ids = {
        span["value"]
        for part in label["parts"]
        if part["format"] in ("hl7", "fhir", "ccda")
        for span in part["spans"]
        if span["type"] in ("mrn", "ssn", "mbi", "member_id", "account_number")
    }
    return tuple(sorted(ids))


def score_spans(
    find_spans: FindSpans, labels: Sequence[corpus.MessageLabel], config: InspectionConfig
) -> SpanScore:
    """Runs find_spans(text, config, known_names=...) over every labelled part text.

    Keyword options beyond that contract are passed only when the function has
    them: known_ids (the structured payloads' identifiers) and display_names
    (for the "header" place), as gateway.inspect.detect.detect passes them.
    """
    try:
        parameters = set(inspect.signature(find_spans).parameters)
    except (TypeError, ValueError):
        parameters = set()
    score = SpanScore()
    for label in labels:
        names = _known_names(label)
        extra: dict[str, Any] = {}
        if "known_ids" in parameters:
            extra["known_ids"] = _known_ids(label)
        for part in label["parts"]:
            options = dict(extra)
            if "display_names" in parameters and part["place"] == "header":
                options["display_names"] = True
            try:
                spans = find_spans(part["text"], config, known_names=names, **options)
            except Exception as exc:  # counted, with its type; the part counts as found nothing
                score.errors[type(exc).__name__] += 1
                spans = []
            score.add(label, part, [(s.type, s.start, s.end) for s in spans])
    return score


# ---------------------------------------------------------------- Presidio


def build_presidio() -> Any:
    """Presidio's AnalyzerEngine with its predefined pattern recognizers only.

    NoOpNlpEngine (presidio-analyzer >= 2.2.36x) needs no spaCy model and makes the
    registry skip the NER recognizer. Presidio's e-mail recognizer calls
    tldextract, whose default extractor downloads the public suffix list: it is
    replaced by one that only uses the snapshot bundled with tldextract.
    Returns None when presidio-analyzer is not installed.
    """
    try:
        import tldextract
        import tldextract.tldextract as tld_module
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
    except ImportError:
        return None
    tld_module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    # It warns about every recognizer of another language it skips: noise here.
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


def presidio_entities(engine: Any, text: str) -> list[tuple[str, int, int]]:
    results = engine.analyze(
        text=text,
        language="en",
        entities=sorted(PRESIDIO_TYPES),
        score_threshold=PRESIDIO_MIN_SCORE,
    )
    return [(r.entity_type, r.start, r.end) for r in results]


def score_presidio(
    engine: Any, labels: Sequence[corpus.MessageLabel]
) -> tuple[dict[str, DocScore], SpanScore]:
    scores = {name: DocScore() for name in PRESIDIO_VARIANTS}
    spans = SpanScore()
    if labels:  # warm-up, untimed
        presidio_entities(engine, labels[0]["parts"][0]["text"])
    for label in labels:
        start = time.perf_counter()
        per_part = [presidio_entities(engine, part["text"]) for part in label["parts"]]
        elapsed = time.perf_counter() - start
        found = {entity for entities in per_part for entity, _, _ in entities}
        for name, interesting in PRESIDIO_VARIANTS.items():
            scores[name].add(label, bool(found & interesting), elapsed)
        for part, entities in zip(label["parts"], per_part, strict=True):
            mapped = [(t, s, e) for entity, s, e in entities for t in PRESIDIO_TYPES[entity]]
            spans.add(label, part, mapped)
    return scores, spans


# ---------------------------------------------------------------- report


# The table of issue 14: message bodies tried by hand, what inspection said then, and
# what it must say once unlabelled patient names are found.
ISSUE_EXAMPLES: tuple[tuple[str, bool, bool], ...] = (  # (body, PHI today, PHI after)
    ("We saw Jennifer Walsh today; her HIV viral load is undetectable.", False, True),
    ("Robert King: your prescription for metformin is ready for pickup.", False, True),
    ("Patient: John Q. Patient\nDiagnosis: type 2 diabetes", False, True),
    (
        "Hi Maria Lopez, your colonoscopy is scheduled for March 3 at 9am with Dr. Patel.",
        True,
        True,
    ),
    ("Dear Mr. Nguyen, your biopsy results are back.", True, True),
)


def issue_examples(
    inspect_message: InspectFunction, config: InspectionConfig
) -> list[dict[str, Any]]:
    """Each issue example as a plain-text message, and whether inspection flags it."""
    out = []
    for body, today, after in ISSUE_EXAMPLES:
        raw = (
            "From: clinic@example.org\r\nTo: someone@example.net\r\nSubject: Message\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + body.replace("\n", "\r\n")
            + "\r\n"
        ).encode("utf-8")
        try:
            findings = inspect_message(_PARSER.parsebytes(raw), config)
            flagged: bool | None = bool(findings.phi or findings.structured)
        except Exception:  # reported as an error, like a crash in the corpus run
            flagged = None
        out.append({"body": body, "expected_today": today, "expected_after": after, "phi": flagged})
    return out


def run_split(
    directory: Path,
    labels: Sequence[corpus.MessageLabel],
    config: InspectionConfig,
    inspect_message: InspectFunction,
    find_spans: FindSpans | None,
    presidio_engine: Any,
    info: Mapping[str, Any],
) -> dict[str, Any]:
    """The scores of one split's messages."""
    phigate, unscannable = score_phigate(inspect_message, directory, labels, config)
    span_score = score_spans(find_spans, labels, config) if find_spans else None
    result: dict[str, Any] = {
        "corpus": {
            "messages": len(labels),
            "phi": sum(label["phi"] for label in labels),
            "structured": sum(bool(label["structured"]) for label in labels),
            "negative": sum(not label["phi"] for label in labels),
        }
        | dict(info),
        "phigate": phigate.summary() | {"unscannable": dict(unscannable)},
        "span_recall": span_score.summary() if span_score else None,
        "span_errors": dict(span_score.errors) if span_score else {},
        "family_spans": span_score.grouped("family:") if span_score else None,
        "place_spans": span_score.grouped("place:") if span_score else None,
        "presidio": None,
    }
    if presidio_engine is not None:
        scores, presidio_spans = score_presidio(presidio_engine, labels)
        result["presidio"] = {name: s.summary() for name, s in scores.items()}
        result["presidio_span_recall"] = presidio_spans.summary()
    return result


def run(
    count: int,
    seed: int,
    corpus_dir: Path | None,
    presidio: bool = True,
    inspect: str | InspectFunction = DEFAULT_INSPECT,
    spans: bool | FindSpans = True,
    split: str = "all",
    families: str = "all",
) -> dict[str, Any]:
    """The whole benchmark, one result per split (never pooled). `inspect`: MODULE:FUNCTION
    or the function itself; `spans`: True finds gateway.inspect.detect.find_spans, False
    skips span recall, or a function. `count` messages per split; `families`: all or new."""
    config = InspectionConfig()
    inspect_message = resolve_inspect(inspect) if isinstance(inspect, str) else inspect
    find_spans = find_spans_function() if spans is True else spans or None
    engine = build_presidio() if presidio else None
    status = "skipped" if not presidio else "not installed" if engine is None else "ok"
    directory, labels, temp = load_or_generate(corpus_dir, count, seed, split, families)
    splits: dict[str, Any] = {}
    try:
        for name in corpus.SPLITS:
            chosen = [label for label in labels if split_of(label) == name]
            if not chosen:
                continue
            info = {
                "split": name,
                "families": families,
                "seed": None if corpus_dir else seed,
                "directory": str(corpus_dir) if corpus_dir else None,
            }
            splits[name] = run_split(
                directory, chosen, config, inspect_message, find_spans, engine, info
            )
    finally:
        if temp is not None:
            temp.cleanup()
    return {
        "inspection": f"{inspect_message.__module__}.{inspect_message.__name__}",
        "targets": {"recall": TARGET_RECALL, "fp_rate": TARGET_FP},
        "presidio_status": status,
        "splits": splits,
        "issue_examples": issue_examples(inspect_message, config),
    }


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def _mark(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_report(result: Mapping[str, Any], out: Any = sys.stdout) -> None:
    def w(line: str = "") -> None:
        print(line, file=out)

    w(f"inspection: {result['inspection']}")
    for name, split in result["splits"].items():
        w()
        w(f"=== split: {name} " + "=" * 60)
        print_split(split, result.get("presidio_status", "skipped"), out)
    w()
    print_issue_examples(result["issue_examples"], out)


def print_issue_examples(examples: Sequence[Mapping[str, Any]], out: Any = sys.stdout) -> None:
    def said(flag: bool | None) -> str:
        return "error" if flag is None else "PHI" if flag else "no PHI"

    print("issue examples (issue 14): expected today / expected after / now", file=out)
    for example in examples:
        body = example["body"].replace("\n", " / ")
        print(
            f"  {said(example['expected_today']):>7} {said(example['expected_after']):>7} "
            f"{said(example['phi']):>7}  {body}",
            file=out,
        )


def _ms(s: Mapping[str, Any], key: str) -> str:
    return f"{s['latency'][key]:.2f}"


def print_split(split: Mapping[str, Any], presidio_status: str, out: Any = sys.stdout) -> None:
    def w(line: str = "") -> None:
        print(line, file=out)

    c = split["corpus"]
    w(
        f"PHI accuracy, split {c['split']}: {c['messages']} messages ({c['phi']} PHI, of which "
        f"{c['structured']} structured; {c['negative']} negative)"
        + (f", seed {c['seed']}" if c["seed"] is not None else f", corpus {c['directory']}")
    )
    w()
    columns: list[tuple[str, Mapping[str, Any]]] = [("phigate", split["phigate"])]
    if split["presidio"]:
        columns.append(("presidio", split["presidio"]["presidio"]))
        columns.append(("presidio strong", split["presidio"]["presidio_strong"]))
    head = f"{'':32}" + "".join(f"{name:>17}" for name, _ in columns) + f"{'target':>12}"
    w(head)
    w("-" * len(head))
    rows: list[tuple[str, Callable[[Mapping[str, Any]], str], str]] = [
        ("document recall (PHI mail)", lambda s: _fmt(s["recall"]), f">= {TARGET_RECALL}"),
        ("false positives (non-PHI mail)", lambda s: _fmt(s["fp_rate"], True), "<= 3%"),
        ("latency p50 ms", lambda s: f"{s['latency']['p50_ms']:.3f}", ""),
        ("latency p90 ms", lambda s: f"{s['latency']['p90_ms']:.3f}", ""),
        ("latency p99 ms", lambda s: f"{s['latency']['p99_ms']:.3f}", ""),
        ("errors", lambda s: str(s["errors"]), "0"),
    ]
    for title, get, target in rows:
        w(f"{title:32}" + "".join(f"{get(s):>17}" for _, s in columns) + f"{target:>12}")
    p = split["phigate"]
    ok_recall = p["recall"] is not None and p["recall"] >= TARGET_RECALL
    ok_fp = p["fp_rate"] is not None and p["fp_rate"] <= TARGET_FP
    w()
    w(f"phigate: recall {_mark(ok_recall)}, false positives {_mark(ok_fp)}")
    if p["errors"]:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(p["error_types"].items()))
        w(f"phigate: inspect_message raised on {p['errors']} messages ({kinds})")
    if p["unscannable"]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(p["unscannable"].items()))
        w(f"phigate unscannable parts: {reasons}")
    if split["presidio"] is None:
        hint = " (pip install 'phigate[bench]')" if presidio_status == "not installed" else ""
        w(f"presidio: {presidio_status}{hint}")
    else:
        w(
            "presidio: pattern recognizers only, no NLP model, on the labelled part texts; "
            f"'presidio' = any of {', '.join(sorted(PRESIDIO_VARIANTS['presidio']))}; "
            "'strong' = SSN/ITIN/DEA/NHS only"
        )

    w()
    w("by group: flagged/total (phigate" + (", presidio)" if split["presidio"] else ")"))
    groups = p["groups"]
    for key in groups:
        cells = [f"{groups[key]['flagged']}/{groups[key]['total']}"]
        if split["presidio"]:
            other = split["presidio"]["presidio"]["groups"][key]
            cells.append(f"{other['flagged']}/{other['total']}")
        w(f"  {key:36}" + "".join(f"{cell:>12}" for cell in cells))

    family_spans = split.get("family_spans") or {}
    w()
    w("by family (phigate): document recall or false-positive rate; name span recall")
    w("  (found/labelled) and the other labelled types' span recall; latency ms")
    w(
        f"  {'family':22}{'msgs':>6}{'recall':>8}{'FP':>7}{'names':>12}{'name rec':>10}"
        f"{'other rec':>10}{'p50':>7}{'p99':>7}"
    )
    for family, s in p["families"].items():
        spans = family_spans.get(family, {})
        names = f"{spans['name_found']}/{spans['name_labelled']}" if spans else "-"
        w(
            f"  {family:22}{s['phi_messages'] + s['negative_messages']:>6}"
            f"{_fmt(s['recall']):>8}{_fmt(s['fp_rate'], True):>7}{names:>12}"
            f"{_fmt(spans.get('name_recall')):>10}{_fmt(spans.get('other_recall')):>10}"
            f"{_ms(s, 'p50_ms'):>7}{_ms(s, 'p99_ms'):>7}"
        )
    w()
    w("by place (phigate): the carrier of the message")
    w(f"  {'carrier':22}{'msgs':>6}{'recall':>8}{'FP':>7}{'p50':>7}{'p99':>7}")
    for place, s in p["places"].items():
        w(
            f"  {place:22}{s['phi_messages'] + s['negative_messages']:>6}{_fmt(s['recall']):>8}"
            f"{_fmt(s['fp_rate'], True):>7}{_ms(s, 'p50_ms'):>7}{_ms(s, 'p99_ms'):>7}"
        )
    place_spans = split.get("place_spans")
    if place_spans:
        w("  name span recall by part (place:format)")
        for place, s in place_spans.items():
            if s["name_labelled"]:
                w(
                    f"  {place:22}{s['name_found']:>6}/{s['name_labelled']:<6}"
                    f"{_fmt(s['name_recall']):>8}"
                )

    w()
    spans_by_type = split["span_recall"]
    presidio_spans = split.get("presidio_span_recall")
    if spans_by_type is None:
        w("span recall: detectors not available (gateway.inspect.detect.find_spans)")
        if presidio_spans:
            w("presidio span recall (labelled types it has an entity for):")
            for kind, s in presidio_spans.items():
                if s["labelled"]:
                    w(f"  {kind:18} {s['found']:>6}/{s['labelled']:<6} {_fmt(s['recall'])}")
        return
    w("span recall by type (a predicted span of the same type overlaps the labelled one)")
    w("  (on negatives: spans find_spans reported in non-PHI mail, all types)")
    if split.get("span_errors"):
        errors = ", ".join(f"{k} {v}" for k, v in sorted(split["span_errors"].items()))
        w(f"  find_spans raised on some parts (counted as nothing found): {errors}")
    w(f"  {'type':18}{'labelled':>10}{'find_spans':>12}{'presidio':>10}{'on negatives':>14}")
    for kind, s in spans_by_type.items():
        other = (presidio_spans or {}).get(kind)
        presidio_recall = _fmt(other["recall"]) if other and other["labelled"] else "-"
        w(
            f"  {kind:18}{s['labelled']:>10}{_fmt(s['recall']):>12}{presidio_recall:>10}"
            f"{s['on_negatives']:>14}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=500, help="messages to generate, per split")
    parser.add_argument(
        "--split",
        choices=(*corpus.SPLITS, "all"),
        default="tune",
        help="tune (default), heldout, fresh, blind, sealed, vault, quarry, ledger, or all "
        "(each reported on its own). heldout, fresh and blind are diagnostics; sealed, vault, "
        "quarry and ledger are judges: never run them (or all) while tuning a detector",
    )
    parser.add_argument(
        "--families",
        choices=corpus.FAMILY_SELECTIONS,
        default="all",
        help="all: old categories and round-two families in proportion; new: round two only",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--corpus", type=Path, help="use this corpus instead of generating one")
    parser.add_argument("--no-presidio", action="store_true", help="skip the Presidio comparison")
    parser.add_argument("--json", action="store_true", help="JSON on stdout, the table on stderr")
    parser.add_argument(
        "--inspect",
        default=DEFAULT_INSPECT,
        metavar="MODULE:FUNCTION",
        help=f"the inspection to score (default {DEFAULT_INSPECT})",
    )
    args = parser.parse_args(argv)
    if args.corpus is None and args.count < 1:
        parser.error("--count must be at least 1")
    result = run(
        args.count,
        args.seed,
        args.corpus,
        presidio=not args.no_presidio,
        inspect=args.inspect,
        split=args.split,
        families=args.families,
    )
    if args.json:
        print_report(result, sys.stderr)
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
