"""Inspection speed: gateway.inspect.inspect_message on text mail and on large attachments.

    .venv/bin/python bench/inspect_speed.py            # 15-30 seconds
    .venv/bin/python bench/inspect_speed.py --quick    # a smoke run
    .venv/bin/python bench/inspect_speed.py --json     # results as JSON on stdout

1. Text mail: --messages synthetic messages of 5-20 KB without attachments
   (bench/corpus.py text_message: PHI letters and negatives lengthened with
   prose, 30% HTML), each inspected --rounds times after a warm-up; every call is
   timed on its own. Targets: median < 1 ms, p99 < 5 ms.
2. Large attachments: a message with a 5 MB PDF and one with a 5 MB DOCX, each
   as a report of about 100 KB of text plus an embedded image (the usual shape
   of a large attachment), and each as text only (5 MB of text, beyond the
   default max_text_chars budget, so the budget is what gets measured).
   Inspected 3 times each (a fresh parse each time), after small PDF and DOCX
   messages have started the extractor workers. Target: < 1 s each.
3. Peak RSS of this process (ru_maxrss: it holds the test messages too) and of
   its waited-for children (extractor workers), after the phigate runs.
4. Presidio (pattern recognizers only, no NLP model; see bench/phi_accuracy.py)
   on the text of the same text messages, one call per message, side by side.

Parsing (email BytesParser, compat32, as gateway/intake.py) is not timed.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import email.policy
import gc
import json
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from email.parser import BytesParser
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
import phi_accuracy

from gateway.config import InspectionConfig

TARGET_MEDIAN_MS = 1.0
TARGET_P99_MS = 5.0
TARGET_LARGE_S = 1.0
_PARSER = BytesParser(policy=email.policy.compat32)


def _status_mb(pid: str, key: str) -> float | None:
    """VmRSS / VmHWM of a process from /proc (Linux), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak() -> None:
    """Reset this process's VmHWM (Linux >= 4.0), so a phase's own peak can be read.

    Memory freed while building the test messages is first handed back to the OS
    (glibc malloc_trim), or it would count in the phase's peak."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _descendants() -> list[str]:
    found: list[str] = []
    pending = ["self"]
    while pending:
        pid = pending.pop()
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = (task / "children").read_text().split()
                found.extend(children)
                pending.extend(children)
    return found


def _memory(peaks: Sequence[float | None]) -> dict[str, float | int | None]:
    """This process's peak (the largest of the phase peaks: _reset_peak also resets
    ru_maxrss), and the extractor worker processes alive now with their peaks."""
    workers = [_status_mb(pid, "VmHWM") for pid in _descendants()]
    sizes = [w for w in workers if w is not None]
    known = [p for p in [*peaks, _status_mb("self", "VmHWM")] if p is not None]
    return {
        "process_peak_mb": max(known, default=None),
        "workers": len(sizes),
        "worker_peak_mb": max(sizes, default=None),
        "children_waited_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def _summary(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "runs": len(ms),
        "median_ms": phi_accuracy.percentile(ms, 0.5),
        "p90_ms": phi_accuracy.percentile(ms, 0.9),
        "p99_ms": phi_accuracy.percentile(ms, 0.99),
        "max_ms": max(ms, default=0.0),
    }


def time_text_mail(
    inspect_message: phi_accuracy.InspectFunction,
    raws: Sequence[bytes],
    rounds: int,
    config: InspectionConfig,
) -> dict[str, float]:
    for raw in raws[: min(len(raws), 50)]:  # warm-up: compiled patterns, caches
        inspect_message(_PARSER.parsebytes(raw), config)
    seconds: list[float] = []
    for _ in range(rounds):
        messages = [_PARSER.parsebytes(raw) for raw in raws]  # fresh objects, parse not timed
        gc.collect()
        for message in messages:
            start = time.perf_counter()
            inspect_message(message, config)
            seconds.append(time.perf_counter() - start)
    return _summary(seconds)


def time_large(
    inspect_message: phi_accuracy.InspectFunction,
    raw: bytes,
    runs: int,
    config: InspectionConfig,
) -> dict[str, Any]:
    seconds: list[float] = []
    findings: Any = None
    for _ in range(runs):
        message = _PARSER.parsebytes(raw)
        gc.collect()
        start = time.perf_counter()
        findings = inspect_message(message, config)
        seconds.append(time.perf_counter() - start)
    result: dict[str, Any] = _summary(seconds)
    result["message_mb"] = len(raw) / 1e6
    if findings is not None:
        result["phi"] = bool(findings.phi)
        result["unscannable"] = dict(findings.unscannable_reasons) or bool(findings.unscannable)
        result["types"] = len(findings.types)
    return result


def time_presidio(engine: Any, texts: Sequence[str]) -> dict[str, float]:
    for text in texts[:5]:
        phi_accuracy.presidio_entities(engine, text)
    seconds = []
    for text in texts:
        start = time.perf_counter()
        phi_accuracy.presidio_entities(engine, text)
        seconds.append(time.perf_counter() - start)
    return _summary(seconds)


def run(
    messages: int = 300,
    rounds: int = 5,
    large_mb: float = 5.0,
    large_runs: int = 3,
    presidio: bool = True,
    inspect: str | phi_accuracy.InspectFunction = phi_accuracy.DEFAULT_INSPECT,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    config = InspectionConfig()
    inspect_message = phi_accuracy.resolve_inspect(inspect) if isinstance(inspect, str) else inspect
    progress(f"building {messages} text messages of 5-20 KB")
    built = [corpus.text_message(1, i, 5_000 + (i * 7919) % 15_001) for i in range(messages)]
    raws = [raw for raw, _ in built]
    texts = [text for _, text in built]
    result: dict[str, Any] = {
        "inspection": f"{inspect_message.__module__}.{inspect_message.__name__}",
        "targets": {
            "text_median_ms": TARGET_MEDIAN_MS,
            "text_p99_ms": TARGET_P99_MS,
            "large_s": TARGET_LARGE_S,
        },
        "text_mail": {
            "messages": messages,
            "rounds": rounds,
            "mean_kb": sum(map(len, raws)) / max(1, len(raws)) / 1024,
        },
        "large": {},
    }
    result["baseline_rss_mb"] = _status_mb("self", "VmRSS")
    progress("timing text mail")
    _reset_peak()
    result["text_mail"] |= time_text_mail(inspect_message, raws, rounds, config)
    result["text_mail"]["peak_rss_mb"] = _status_mb("self", "VmHWM")
    size = int(large_mb * 1_000_000)
    # Untimed: a small PDF and a small DOCX message start the extractor workers, a
    # once-per-process cost that is not the attachment's.
    for index, (_, carrier, _) in enumerate(corpus.COVERAGE):
        if carrier in ("pdf", "docx"):
            inspect_message(_PARSER.parsebytes(corpus.build_message(1, index)[0]), config)
    for kind in ("pdf", "docx"):
        for text_only in (False, True):
            name = f"{kind} {large_mb:g} MB " + ("text only" if text_only else "text + image")
            progress(f"building and timing: {name}")
            raw = corpus.big_attachment_message(kind, size, text_only=text_only)
            _reset_peak()
            result["large"][name] = time_large(inspect_message, raw, large_runs, config)
            result["large"][name]["peak_rss_mb"] = _status_mb("self", "VmHWM")
            del raw
    peaks = [result["baseline_rss_mb"], result["text_mail"]["peak_rss_mb"]]
    peaks += [s["peak_rss_mb"] for s in result["large"].values()]
    result["memory_after_phigate"] = _memory(peaks)
    result["presidio"] = None
    if presidio:
        progress("Presidio on the text mail")
        engine = phi_accuracy.build_presidio()
        if engine is not None:
            result["presidio"] = time_presidio(engine, texts)
            peaks.append(result["memory_after_phigate"]["process_peak_mb"])
            result["memory_after_presidio"] = _memory(peaks)
    return result


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_report(result: Mapping[str, Any], out: Any = sys.stdout) -> None:
    def w(line: str = "") -> None:
        print(line, file=out)

    w(f"inspection: {result['inspection']}")
    t = result["text_mail"]
    w()
    w(
        f"text mail: {t['messages']} messages of 5-20 KB (mean {t['mean_kb']:.1f} KB), "
        f"no attachments, {t['rounds']} rounds"
    )
    head = f"  {'':12}{'runs':>8}{'median ms':>12}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}"
    w(head)
    rows = [("phigate", t)]
    if result["presidio"]:
        rows.append(("presidio", result["presidio"]))
    for name, s in rows:
        w(
            f"  {name:12}{s['runs']:>8}{s['median_ms']:>12.3f}{s['p90_ms']:>10.3f}"
            f"{s['p99_ms']:>10.3f}{s['max_ms']:>10.3f}"
        )
    median_ok = t["median_ms"] < TARGET_MEDIAN_MS
    p99_ok = t["p99_ms"] < TARGET_P99_MS
    w(
        f"  target: median < {TARGET_MEDIAN_MS:g} ms ({'met' if median_ok else 'NOT met'}), "
        f"p99 < {TARGET_P99_MS:g} ms ({'met' if p99_ok else 'NOT met'})"
    )
    if result["presidio"] is None:
        w("  presidio: not installed or skipped")
    w()
    w(f"large attachments (target < {TARGET_LARGE_S:g} s each)")
    w(f"  {'':28}{'message MB':>11}{'median s':>10}{'max s':>8}{'peak MB':>9}  result")
    for name, s in result["large"].items():
        ok = s["max_ms"] / 1000 < TARGET_LARGE_S
        outcome = f"phi={s.get('phi')} unscannable={s.get('unscannable')}"
        w(
            f"  {name:28}{s['message_mb']:>11.1f}{s['median_ms'] / 1000:>10.3f}"
            f"{s['max_ms'] / 1000:>8.3f}{_mb(s.get('peak_rss_mb')):>9}  "
            f"{'met' if ok else 'NOT met'}; {outcome}"
        )
    w()
    m = result["memory_after_phigate"]
    w(
        f"RSS: {_mb(result.get('baseline_rss_mb'))} MB before inspecting (interpreter, "
        f"imports, the text messages); peak {_mb(t.get('peak_rss_mb'))} MB during the text "
        f"mail; peak of the process {_mb(m['process_peak_mb'])} MB"
    )
    w(
        f"child processes (extractor workers) alive: {m['workers']}, "
        f"largest peak {_mb(m['worker_peak_mb'])} MB"
        f" (VmHWM); largest exited child {_mb(m['children_waited_peak_mb'])} MB"
    )
    if result.get("memory_after_presidio"):
        peak = result["memory_after_presidio"]["process_peak_mb"]
        w(f"peak of the process after loading and running Presidio: {_mb(peak)} MB")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=300, help="text messages (default 300)")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over them")
    parser.add_argument("--large-mb", type=float, default=5.0, help="attachment size in MB")
    parser.add_argument("--large-runs", type=int, default=3, help="timed runs per attachment")
    parser.add_argument("--quick", action="store_true", help="60 messages, 1 round, 1 run")
    parser.add_argument("--no-presidio", action="store_true")
    parser.add_argument("--json", action="store_true", help="JSON on stdout, the table on stderr")
    parser.add_argument(
        "--inspect",
        default=phi_accuracy.DEFAULT_INSPECT,
        metavar="MODULE:FUNCTION",
        help=f"the inspection to time (default {phi_accuracy.DEFAULT_INSPECT})",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.rounds, args.large_runs = 60, 1, 1
    if args.messages < 1 or args.rounds < 1 or args.large_runs < 1 or args.large_mb <= 0:
        parser.error("--messages, --rounds, --large-runs and --large-mb must be positive")
    result = run(
        args.messages,
        args.rounds,
        args.large_mb,
        args.large_runs,
        presidio=not args.no_presidio,
        inspect=args.inspect,
        progress=lambda line: print(f"... {line}", file=sys.stderr, flush=True),
    )
    if args.json:
        print_report(result, sys.stderr)
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
