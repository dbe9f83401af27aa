"""Where phigate's CPU time goes, per message: py-spy's raw stacks folded into costs.

    py-spy record --pid PID --subprocesses --nonblocking --gil --full-filenames \\
        --format raw --rate 100 -o stacks.txt
    .venv/bin/python bench/stack_profile.py stacks.txt --messages 2000 --rate 100 --cpu-ms 3.3

Each stack is charged to one cost: the first frame, from the innermost out,
that a rule below names (so SQLite called by the audit trail counts as SQLite,
and the audit trail's own Python as the audit trail), and to one stage: delivery
when a delivery frame is on the stack, intake when a listener or intake frame
is, else other. Code in C or Rust (OpenSSL, SQLite, AES-GCM, RSA) has no frame
of its own and counts for the Python frame that called it; on uvloop the
socket and TLS record work of the event loop has no Python frame at all and
shows as "event loop".

Recorded with `--gil`, a sample is a thread that holds the GIL: Python code,
and the C it calls without letting the GIL go. Without it py-spy also samples
every thread it does not count as idle: one in a flush to disk or waiting for
the write lock, one woken and waiting for a core, and work done with the GIL
let go; on one session they were half the samples. What runs with the GIL let
go (SQLite's statements, the flush, the kernel's share of a system call, the
event loop's own C) is then the difference between the CPU
measured and the samples: with `--cpu-ms` it gets a line of its own. A sample
is 1/rate seconds, so the figures are estimates: compare them with each other,
and with the measured CPU ms per message.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# (cost, path fragment, function names or None for any), tried in this order on each frame.
RULES: tuple[tuple[str, str, frozenset[str] | None], ...] = (
    (
        "SQLite statements and commits (their share holding the GIL)",
        "/sqlalchemy/engine/default.py",
        frozenset({"do_execute", "do_executemany", "do_execute_no_params", "do_commit"}),
    ),
    ("SQLAlchemy (Python)", "/sqlalchemy/", None),
    ("TLS (ssl module)", "/ssl.py", None),
    ("TLS (ssl module)", "/asyncio/sslproto.py", None),
    ("logging", "/logging/", None),
    ("logging", "/gateway/logs.py", None),
    ("MIME parsing (email package)", "/email/", None),
    ("message model (gateway/mail)", "/gateway/mail/", None),
    ("PHI inspection", "/gateway/inspect/", None),
    ("policy", "/gateway/policy/", None),
    ("consent", "/gateway/consent/", None),
    ("encryption at rest (keyring)", "/gateway/store/keyring.py", None),
    ("store (Python)", "/gateway/store/", None),
    ("audit trail", "/gateway/audit/", None),
    ("DKIM signing", "/gateway/dkim/", None),
    ("delivery client (aiosmtplib)", "/aiosmtplib/", None),
    ("delivery (phigate)", "/gateway/delivery/", None),
    ("SMTP server (aiosmtpd)", "/aiosmtpd/", None),
    ("listener (phigate)", "/gateway/smtp/", None),
    ("intake (phigate)", "/gateway/intake.py", None),
    ("metrics", "/prometheus_client/", None),
    ("metrics", "/gateway/metrics.py", None),
    ("asyncio (Python)", "/asyncio/", None),
    ("other phigate", "/gateway/", None),
)
# The store's writer thread runs the transactions of intake and delivery (their
# functions are on its stack, and count for them); what is left there is its own:
# BEGIN, COMMIT with its fsync, checkpoints.
STAGES = (
    ("delivery", ("/gateway/delivery/",)),
    ("intake", ("/gateway/smtp/", "/gateway/intake.py", "/aiosmtpd/")),
    ("writer", ("/gateway/store/database.py",)),
)
STAGE_NAMES = ("intake", "delivery", "writer", "other")
EVENT_LOOP = "event loop (uvloop: sockets, TLS records, callbacks)"
OTHER = "other"
OUTSIDE_GIL = "outside the GIL (SQLite's statements, flushes, the kernel)"
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*):\d+\)$")
# Innermost Python frames that mean "inside the event loop's C code" (uvloop has no
# Python frames below them).
_LOOP_ENTRY = frozenset(
    {
        "Runner.run", "run", "run_forever", "run_until_complete", "Loop.run_forever",
        "Loop.run_until_complete", "BaseEventLoop.run_forever",
        "BaseEventLoop.run_until_complete",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Frame:
    function: str
    file: str


def parse_frame(text: str) -> Frame | None:
    """`function (file:line)`; None for py-spy's process and thread labels."""
    match = _FRAME.match(text)
    return Frame(match["function"], match["file"]) if match else None


def cost_of(frames: Sequence[Frame]) -> str:
    if frames and frames[-1].function in _LOOP_ENTRY:
        return EVENT_LOOP
    for frame in reversed(frames):
        for name, fragment, functions in RULES:
            # py-spy names methods Class.method.
            method = frame.function.rsplit(".", 1)[-1]
            if fragment in frame.file and (functions is None or method in functions):
                return name
    return OTHER


def stage_of(frames: Sequence[Frame]) -> str:
    for name, fragments in STAGES:
        if any(fragment in frame.file for frame in frames for fragment in fragments):
            return name
    return "other"


@dataclass
class Profile:
    samples: Counter[tuple[str, str]]  # (cost, stage) -> samples
    innermost: Counter[str]  # innermost Python function -> samples

    @property
    def total(self) -> int:
        return sum(self.samples.values())


def fold(lines: Iterable[str]) -> Profile:
    """py-spy's raw output (`frame;frame;... count`, outermost first) folded by cost and stage."""
    samples: Counter[tuple[str, str]] = Counter()
    innermost: Counter[str] = Counter()
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [f for f in (parse_frame(part) for part in stack.split(";")) if f is not None]
        count = int(count_text)
        samples[(cost_of(frames), stage_of(frames))] += count
        if frames:
            inner = frames[-1]
            innermost[f"{inner.function} ({short_path(inner.file)})"] += count
    return Profile(samples, innermost)


def short_path(path: str) -> str:
    for marker in ("/site-packages/", "/lib/python3.11/", "/gateway/"):
        if marker in path:
            head = "gateway/" if marker == "/gateway/" else ""
            return head + path.split(marker, 1)[1]
    return path


def format_profile(
    profile: Profile, messages: int, rate: float, cpu_ms: float | None = None, top: int = 15
) -> str:
    """A table of ms per message by cost and stage, then the busiest innermost frames.

    With `cpu_ms` (the CPU per message measured over the same run), the CPU the
    samples do not account for is a line of its own, outside the GIL. Where they
    come to more (on a saturated machine a thread holding the GIL waits for a
    core, and is sampled as if it ran) they are scaled down to it.
    """
    sampled = profile.total * 1000.0 / rate / max(messages, 1)
    scale = cpu_ms / sampled if cpu_ms is not None and sampled > cpu_ms else 1.0
    per_message = scale * 1000.0 / rate / max(messages, 1)
    outside = max(cpu_ms - sampled, 0.0) if cpu_ms is not None else 0.0
    stages = STAGE_NAMES
    costs = sorted(
        {cost for cost, _ in profile.samples},
        key=lambda cost: -sum(profile.samples[(cost, s)] for s in stages),
    )
    every = profile.total * per_message + outside

    def share(ms: float) -> str:
        return f"{100.0 * ms / every:.0f}%" if every > 0 else ""

    rows: list[tuple[str, ...]] = [("cost", *stages, "total", "share")]
    for cost in costs:
        counts = [profile.samples[(cost, stage)] for stage in stages]
        total = sum(counts) * per_message
        rows.append(
            (cost, *(f"{n * per_message:.2f}" for n in counts), f"{total:.2f}", share(total))
        )
    if outside > 0:  # which stage it is in is not known
        rows.append((OUTSIDE_GIL, *("" for _ in stages), f"{outside:.2f}", share(outside)))
    totals = [sum(profile.samples[(c, stage)] for c in costs) for stage in stages]
    rows.append(("all", *(f"{n * per_message:.2f}" for n in totals), f"{every:.2f}", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))
        for row in rows
    ]
    if cpu_ms is not None:
        lines.insert(
            0,
            f"{sampled:.2f} ms holding the GIL per message sampled, {cpu_ms:.2f} ms of CPU "
            "measured: "
            + (
                f"samples scaled by {scale:.2f}"
                if scale < 1.0
                else f"{outside:.2f} ms ran outside the GIL"
            ),
        )
    lines.append(f"busiest innermost frames (ms per message, as above), of {messages} messages:")
    for name, count in profile.innermost.most_common(top):
        lines.append(f"  {count * per_message:6.2f}  {name}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stacks", type=Path, help="py-spy record --format raw output.")
    parser.add_argument("--messages", type=int, required=True, help="Messages in the recording.")
    parser.add_argument("--rate", type=float, default=100.0, help="py-spy's --rate (default 100).")
    parser.add_argument(
        "--cpu-ms",
        type=float,
        default=None,
        help="CPU ms per message measured over the recording: what the samples do not "
        "account for is shown as run outside the GIL (samples above it are scaled down).",
    )
    parser.add_argument("--top", type=int, default=15, help="Innermost frames to list.")
    args = parser.parse_args(argv)
    with args.stacks.open(encoding="utf-8", errors="replace") as stacks:
        profile = fold(stacks)
    print(format_profile(profile, args.messages, args.rate, args.cpu_ms, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
