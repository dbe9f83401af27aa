"""detect() alone on each pattern backend: Hyperscan and RE2 side by side.

    .venv/bin/python bench/detect_backends.py               # about 30-60 s
    .venv/bin/python bench/detect_backends.py --runs 100    # a quick look

One synthetic extraction per size (Faker prose with patient lines, greetings,
lab values, codes, phone numbers and signatures mixed in; split as a subject,
display names, an attachment name, a text body, a shorter HTML alternative
and a PDF attachment's text), inspected --runs times per backend after a
warm-up; every call is timed on its own. Extraction (MIME, HTML, PDF) is not
timed: bench/inspect_speed.py measures the whole of inspect_message.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from faker import Faker
from phi_accuracy import percentile

from gateway.config import InspectionConfig
from gateway.inspect.content import Extraction, Place, Segment
from gateway.inspect.detect import Backend, detect, matcher

CONFIG = InspectionConfig()


def realistic(size: int, fake: Faker, rng: random.Random) -> Extraction:
    """About `size` characters of mail text, split across a message's places."""
    chunks: list[str] = []
    while sum(map(len, chunks)) < size:
        chunks.append(fake.paragraph(nb_sentences=rng.randint(3, 7)) + "\n\n")
        if rng.random() < 0.35:
            chunks.append(
                rng.choice(
                    [
                        f"Patient: {fake.name()}\nDOB: {fake.date_of_birth():%m/%d/%Y}\n",
                        f"Dear {fake.name()},\nyour visit on {fake.date_this_year():%B %d, %Y}.\n",
                        f"HbA1c 7.{rng.randint(0, 9)}% and LDL: {rng.randint(80, 190)} mg/dL.\n",
                        "Assessment: Type 2 diabetes (E11.9), hypertension (I10).\n",
                        f"Call {fake.phone_number()} or fax {fake.numerify('###-555-####')}.\n",
                        f"Thanks,\n{fake.name()}\n{fake.company()}\n{fake.email()}\n",
                    ]
                )
            )
    body = "".join(chunks)[:size]
    cut = len(body) * 2 // 3
    return Extraction(
        segments=[
            Segment(Place("subject"), "Re: follow-up for your visit"),
            Segment(Place("header", 0), f"{fake.name()}\nScheduling Team"),
            Segment(Place("header", 1), "visit_summary.pdf"),
            Segment(Place("body", 0), body[:cut]),
            Segment(Place("body", 1), body[:2000]),  # the HTML alternative, shorter
            Segment(Place("attachment", 0), body[cut:]),
        ],
        attachment_types={"application/pdf", ".pdf"},
    )


def time_detect(extraction: Extraction, backend: Backend, runs: int) -> list[float]:
    """Milliseconds of each of `runs` calls, after one untimed call."""
    detect(extraction, CONFIG, backend=backend)
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        detect(extraction, CONFIG, backend=backend)
        times.append((time.perf_counter_ns() - start) / 1e6)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000, help="timed calls per case")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 20_000], help="characters of text"
    )
    args = parser.parse_args(argv)
    backends: list[Backend] = ["re2"] + (["hyperscan"] if matcher.hyperscan else [])
    fake = Faker("en_US")
    Faker.seed(7)
    rng = random.Random(7)
    extractions = {size: realistic(size, fake, rng) for size in args.sizes}
    print(f"{'backend':10}{'KB':>6}{'runs':>7}{'median ms':>11}{'p99 ms':>9}")
    for backend in backends:
        detect(Extraction(), CONFIG, backend=backend)  # compiles the patterns
        for size, extraction in extractions.items():
            times = time_detect(extraction, backend, args.runs)
            print(
                f"{backend:10}{size / 1000:>6g}{args.runs:>7}"
                f"{percentile(times, 0.5):>11.3f}{percentile(times, 0.99):>9.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
