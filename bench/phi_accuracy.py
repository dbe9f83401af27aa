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

    def add(self, label: corpus.MessageLabel, flagged: bool) -> None:
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
        }


def load_or_generate(
    corpus_dir: Path | None, count: int, seed: int
) -> tuple[Path, list[corpus.MessageLabel], tempfile.TemporaryDirectory[str] | None]:
    if corpus_dir is not None:
        return corpus_dir, corpus.load_labels(corpus_dir), None
    temp = tempfile.TemporaryDirectory(prefix="phigate-corpus-")
    directory = Path(temp.name)
    return directory, corpus.generate(directory, count, seed), temp


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
            score.latencies.append(time.perf_counter() - start)
            score.errors += 1
            score.error_types[type(exc).__name__] += 1
            score.add(label, False)
            continue
        score.latencies.append(time.perf_counter() - start)
        score.add(label, bool(findings.phi or findings.structured))
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

    def add(
        self,
        label: corpus.MessageLabel,
        part: corpus.PartLabel,
        predicted: list[tuple[str, int, int]],
    ) -> None:
        if not label["phi"]:
            self.on_negatives.update(kind for kind, _, _ in predicted)
            return
        for span in part["spans"]:
            self.labelled[span["type"]] += 1
            if any(
                kind == span["type"] and start < span["end"] and span["start"] < end
                for kind, start, end in predicted
            ):
                self.found[span["type"]] += 1

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
            scores[name].latencies.append(elapsed)
            scores[name].add(label, bool(found & interesting))
        for part, entities in zip(label["parts"], per_part, strict=True):
            mapped = [(t, s, e) for entity, s, e in entities for t in PRESIDIO_TYPES[entity]]
            spans.add(label, part, mapped)
    return scores, spans


# ---------------------------------------------------------------- report


def run(
    count: int,
    seed: int,
    corpus_dir: Path | None,
    presidio: bool = True,
    inspect: str | InspectFunction = DEFAULT_INSPECT,
    spans: bool | FindSpans = True,
) -> dict[str, Any]:
    """The whole benchmark. `inspect`: MODULE:FUNCTION or the function itself; `spans`:
    True finds gateway.inspect.detect.find_spans, False skips span recall, or a function."""
    config = InspectionConfig()
    inspect_message = resolve_inspect(inspect) if isinstance(inspect, str) else inspect
    directory, labels, temp = load_or_generate(corpus_dir, count, seed)
    try:
        phigate, unscannable = score_phigate(inspect_message, directory, labels, config)
    finally:
        if temp is not None:
            temp.cleanup()
    find_spans = find_spans_function() if spans is True else spans or None
    span_score = score_spans(find_spans, labels, config) if find_spans else None
    result: dict[str, Any] = {
        "corpus": {
            "messages": len(labels),
            "phi": sum(label["phi"] for label in labels),
            "structured": sum(bool(label["structured"]) for label in labels),
            "negative": sum(not label["phi"] for label in labels),
            "seed": None if corpus_dir else seed,
            "directory": str(corpus_dir) if corpus_dir else None,
        },
        "inspection": f"{inspect_message.__module__}.{inspect_message.__name__}",
        "targets": {"recall": TARGET_RECALL, "fp_rate": TARGET_FP},
        "phigate": phigate.summary() | {"unscannable": dict(unscannable)},
        "span_recall": span_score.summary() if span_score else None,
        "span_errors": dict(span_score.errors) if span_score else {},
        "presidio": None,
        "presidio_status": "skipped",
    }
    if presidio:
        engine = build_presidio()
        result["presidio_status"] = "not installed" if engine is None else "ok"
        if engine is not None:
            scores, presidio_spans = score_presidio(engine, labels)
            result["presidio"] = {name: s.summary() for name, s in scores.items()}
            result["presidio_span_recall"] = presidio_spans.summary()
    return result


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def _mark(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_report(result: Mapping[str, Any], out: Any = sys.stdout) -> None:
    def w(line: str = "") -> None:
        print(line, file=out)

    c = result["corpus"]
    w(
        f"PHI accuracy: {c['messages']} messages ({c['phi']} PHI, of which {c['structured']} "
        f"structured; {c['negative']} negative)"
        + (f", seed {c['seed']}" if c["seed"] is not None else f", corpus {c['directory']}")
    )
    w(f"inspection: {result['inspection']}")
    w()
    columns: list[tuple[str, Mapping[str, Any]]] = [("phigate", result["phigate"])]
    if result["presidio"]:
        columns.append(("presidio", result["presidio"]["presidio"]))
        columns.append(("presidio strong", result["presidio"]["presidio_strong"]))
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
    p = result["phigate"]
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
    if result["presidio"] is None:
        status = result.get("presidio_status", "skipped")
        hint = " (pip install 'phigate[bench]')" if status == "not installed" else ""
        w(f"presidio: {status}{hint}")
    else:
        w(
            "presidio: pattern recognizers only, no NLP model, on the labelled part texts; "
            f"'presidio' = any of {', '.join(sorted(PRESIDIO_VARIANTS['presidio']))}; "
            "'strong' = SSN/ITIN/DEA/NHS only"
        )

    w()
    w("by group: flagged/total (phigate" + (", presidio)" if result["presidio"] else ")"))
    groups = p["groups"]
    for key in groups:
        cells = [f"{groups[key]['flagged']}/{groups[key]['total']}"]
        if result["presidio"]:
            other = result["presidio"]["presidio"]["groups"][key]
            cells.append(f"{other['flagged']}/{other['total']}")
        w(f"  {key:36}" + "".join(f"{cell:>12}" for cell in cells))

    w()
    spans = result["span_recall"]
    presidio_spans = result.get("presidio_span_recall")
    if spans is None:
        w("span recall: detectors not available (gateway.inspect.detect.find_spans)")
        if presidio_spans:
            w("presidio span recall (labelled types it has an entity for):")
            for kind, s in presidio_spans.items():
                if s["labelled"]:
                    w(f"  {kind:18} {s['found']:>6}/{s['labelled']:<6} {_fmt(s['recall'])}")
        return
    w("span recall by type (a predicted span of the same type overlaps the labelled one)")
    w("  (on negatives: spans find_spans reported in non-PHI mail, all types)")
    if result.get("span_errors"):
        errors = ", ".join(f"{k} {v}" for k, v in sorted(result["span_errors"].items()))
        w(f"  find_spans raised on some parts (counted as nothing found): {errors}")
    w(f"  {'type':18}{'labelled':>10}{'find_spans':>12}{'presidio':>10}{'on negatives':>14}")
    for kind, s in spans.items():
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
    parser.add_argument("--count", type=int, default=500, help="messages to generate")
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
        args.count, args.seed, args.corpus, presidio=not args.no_presidio, inspect=args.inspect
    )
    if args.json:
        print_report(result, sys.stderr)
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
