"""The head-to-head benchmark's pieces: the Postfix instance it configures
(bench/versus_postfix.py), the realistic mix it sends with --mix
(bench/mail_mix.py), the pacing of --rate (bench/loadgen.py) and the TLS sink it
goes to (bench/sink.py), and how it
folds py-spy's stacks into costs (bench/stack_profile.py)."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import aiosmtplib.protocol
import pytest
from certs import make_certs
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import InspectionConfig
from gateway.inspect import Inspector
from gateway.mail.message import parse

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402 (bench/loadgen.py)
import mail_mix  # noqa: E402 (bench/mail_mix.py)
import relay  # noqa: E402 (bench/relay.py)
import stack_profile  # noqa: E402 (bench/stack_profile.py)
import versus_postfix  # noqa: E402 (bench/versus_postfix.py)

SITE = "/venv/lib/python3.11/site-packages"
GATEWAY = "/repo/gateway"
# scripts/test installs the packages and CI runs as root: these run there.
NEEDS_POSTFIX = pytest.mark.skipif(
    versus_postfix.missing_programs() or os.geteuid() != 0,
    reason="needs root and the Debian packages " + versus_postfix.PACKAGES,
)


def postconf(postfix: versus_postfix.Postfix, name: str) -> str:
    """One setting of the benchmark's Postfix instance, as Postfix reads it."""
    done = subprocess.run(
        ["postconf", "-c", str(postfix.config_dir), "-h", name],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _frame(function: str, file: str) -> str:
    return f"{function} ({file}:1)"


def test_stacks_are_charged_to_the_innermost_named_cost_and_to_their_stage() -> None:
    loop = _frame("Runner.run", "/usr/lib/python3.11/asyncio/runners.py")
    commit = [
        _frame("Database._writer", f"{GATEWAY}/store/database.py"),
        _frame("Connection.commit", f"{SITE}/sqlalchemy/engine/base.py"),
        _frame("DefaultDialect.do_commit", f"{SITE}/sqlalchemy/engine/default.py"),
    ]
    audit_in_delivery = [
        'process 7:"phigate serve"',
        _frame("Database._writer", f"{GATEWAY}/store/database.py"),
        _frame("record_outcome", f"{GATEWAY}/delivery/worker.py"),
        _frame("append", f"{GATEWAY}/audit/trail.py"),
        _frame("chain_hash", f"{GATEWAY}/audit/trail.py"),
        _frame("dumps", "/usr/lib/python3.11/json/__init__.py"),
    ]
    reading = [
        loop,
        _frame("SMTP._handle_client", f"{SITE}/aiosmtpd/smtp.py"),
        _frame("StreamReader.readuntil", "/usr/lib/python3.11/asyncio/streams.py"),
    ]
    lines = [
        ";".join(commit) + " 30\n",
        ";".join(audit_in_delivery) + " 20\n",
        ";".join(reading) + " 6\n",
        loop + " 4\n",
        "garbage\n",
    ]

    profile = stack_profile.fold(lines)

    assert profile.samples == {
        ("SQLite statements and commits (their share holding the GIL)", "writer"): 30,
        ("audit trail", "delivery"): 20,
        ("asyncio (Python)", "intake"): 6,
        (stack_profile.EVENT_LOOP, "other"): 4,
    }
    # 30 samples at 100 Hz over 10 messages: 30 ms per message, half of all samples.
    table = stack_profile.format_profile(profile, messages=10, rate=100.0)
    row = next(line for line in table.splitlines() if line.startswith("SQLite"))
    assert row.split()[-6:] == ["0.00", "0.00", "30.00", "0.00", "30.00", "50%"]
    # Scaled to 6 ms of CPU per message measured: 60 ms were sampled, a tenth ran.
    scaled = stack_profile.format_profile(profile, messages=10, rate=100.0, cpu_ms=6.0)
    row = next(line for line in scaled.splitlines() if line.startswith("SQLite"))
    assert row.split()[-6:] == ["0.00", "0.00", "3.00", "0.00", "3.00", "50%"]
    assert stack_profile.OUTSIDE_GIL not in scaled
    # 90 ms measured: the 30 ms the samples (time holding the GIL) leave out ran outside it.
    fuller = stack_profile.format_profile(profile, messages=10, rate=100.0, cpu_ms=90.0)
    lines = fuller.splitlines()
    assert lines[0].endswith("30.00 ms ran outside the GIL")
    row = next(line for line in lines if line.startswith("SQLite"))
    assert row.split()[-6:] == ["0.00", "0.00", "30.00", "0.00", "30.00", "33%"]
    outside = next(line for line in lines if line.startswith(stack_profile.OUTSIDE_GIL))
    assert outside.split()[-2:] == ["30.00", "33%"]
    every = next(line for line in lines if line.startswith("all "))
    assert every.split()[1:] == ["6.00", "20.00", "30.00", "4.00", "90.00"]


# A thread that holds the GIL, and one whose work runs with the GIL let go (hashlib
# lets it go for large buffers): both on a CPU all the time.
_TWO_THREADS = """
import ctypes, hashlib, threading
# Yama's ptrace_scope 1 lets only an ancestor attach; this lets py-spy, a sibling, attach
# too (PR_SET_PTRACER, PR_SET_PTRACER_ANY; without Yama the call fails, harmlessly).
ctypes.CDLL(None).prctl(0x59616D61, ctypes.c_ulong(2**64 - 1), 0, 0, 0)
print("ready", flush=True)
def outside_the_gil():
    data = bytes(64 * 1024 * 1024)
    while True:
        hashlib.sha256(data).digest()
threading.Thread(target=outside_the_gil, daemon=True).start()
def holding_the_gil():
    while True:
        sum(range(1000))
holding_the_gil()
"""


def _may_attach() -> bool:
    """Whether py-spy, started by this process, may attach to a sibling of its own user:
    as root, or where Yama allows it (scope 1: the sibling says so, as the test's does).
    Scopes 2 and 3 let only a privileged tracer attach, or none."""
    scope = Path("/proc/sys/kernel/yama/ptrace_scope")
    return os.geteuid() == 0 or not scope.exists() or scope.read_text().strip() in ("0", "1")


@pytest.mark.skipif(not _may_attach(), reason="Yama scope 2 or 3: a tracer must be privileged")
def test_a_profile_samples_the_thread_holding_the_gil_not_work_done_without_it(
    tmp_path: Path,
) -> None:
    program = versus_postfix.py_spy_program()
    assert program is not None, "py-spy is in the test extra"
    script = tmp_path / "two_threads.py"
    script.write_text(_TWO_THREADS)
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"  # py-spy may attach from here on
        spy = versus_postfix.PySpy(program, child.pid, tmp_path / "stacks.txt")
        time.sleep(2.0)
        table = spy.finish(messages=100, cpu_ms=40.0)
    finally:
        child.kill()
        child.wait(timeout=10)
    samples: Counter[str] = Counter()
    for line in (tmp_path / "stacks.txt").read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples[stack.rsplit(";", 1)[-1].split(" ", 1)[0]] += int(count)
    holding, outside = samples["holding_the_gil"], samples["outside_the_gil"]
    # Both threads ran on a CPU throughout; only the one holding the GIL is sampled.
    assert holding >= 100  # about 200 at 100 Hz over two seconds
    assert outside * 10 < holding
    # The CPU the samples leave out (both threads': about 40 ms per "message") has its line.
    assert stack_profile.OUTSIDE_GIL in table


@NEEDS_POSTFIX
def test_the_postfix_baseline_is_a_valid_closed_relay_with_its_milter(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    workdir = tmp_path / "postfix"
    workdir.mkdir()
    tmp_path.chmod(0o755)
    postfix = versus_postfix.Postfix(workdir, 2525, certs["good"], certs["good_key"], "secret")

    postfix.prepare()  # ends with `postfix check`, which fails on a broken configuration

    assert postconf(postfix, "smtpd_relay_restrictions") == "permit_sasl_authenticated, reject"
    assert postconf(postfix, "smtpd_milters") == f"unix:{postfix.milter_socket}"
    assert postconf(postfix, "milter_default_action") == "tempfail"
    assert (postfix.queue_dir / "incoming").is_dir()
    key = (postfix.dkim_dir / "bench.private").read_text()
    assert "PRIVATE KEY" in key


@NEEDS_POSTFIX
def test_in_the_mix_postfix_delivers_only_over_tls_verified_against_the_test_ca(
    tmp_path: Path,
) -> None:
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    workdir = tmp_path / "postfix"
    workdir.mkdir()
    tmp_path.chmod(0o755)
    relay_tls = versus_postfix.RelayTls(certs["ca"], versus_postfix.SINK_NAME)
    postfix = versus_postfix.Postfix(
        workdir, 2525, certs["good"], certs["good_key"], "secret", relay_tls
    )

    postfix.prepare()  # `postfix check` rejects a broken configuration

    assert postconf(postfix, "smtp_tls_security_level") == "secure"
    assert postconf(postfix, "smtp_tls_secure_cert_match") == versus_postfix.SINK_NAME
    assert postconf(postfix, "smtp_tls_CAfile") == str(certs["ca"])
    assert postconf(postfix, "relayhost") == "[127.0.0.1]:2525"


@pytest.fixture(scope="module")
def inspector() -> Iterator[Inspector]:
    tool = Inspector(InspectionConfig(), workers=1)
    yield tool
    tool.close()


def test_the_mix_has_its_stated_shares_and_phigate_finds_phi_in_exactly_its_third(
    inspector: Inspector,
) -> None:
    cycle = len(mail_mix.SIZE_CYCLE) * mail_mix.PHI_EVERY  # every size with and without PHI
    messages = [
        mail_mix.make_mixed_message(loadgen.message_head("test", index), index)
        for index in range(cycle)
    ]

    sizes = Counter(m.size for m in messages)
    assert sizes == {mail_mix.SMALL: 42, mail_mix.MEDIUM: 15, mail_mix.LARGE: 3}
    assert sum(m.phi for m in messages) == cycle // 3
    assert {(m.size, m.phi) for m in messages} == {
        (size, phi) for size in sizes for phi in (False, True)
    }
    for index, message in enumerate(messages):
        assert 0.9 * message.size < len(message.content) < 1.1 * message.size, index
        findings = inspector.inspect(parse(message.content).message)
        assert findings.phi is message.phi, index
        assert not findings.unscannable, (index, findings.unscannable_reasons)
    large = next(m for m in messages if m.size == mail_mix.LARGE)
    assert b"Content-Type: application/pdf" in large.content
    # Bodies are not one repeated line: the text differs between messages of a size.
    small_bodies = {m.content.split(b"\r\n\r\n", 1)[1] for m in messages[1:3]}
    assert len(small_bodies) == 2


@pytest.mark.parametrize("only", sorted(set(mail_mix.SIZE_CYCLE)))
def test_one_size_class_of_the_mix_is_its_messages_of_that_size_with_their_phi_share(
    only: int,
) -> None:
    count = len(mail_mix.SIZE_CYCLE) * mail_mix.PHI_EVERY
    indexes = [mail_mix.mix_index(number, only) for number in range(count)]
    assert indexes == sorted(set(indexes))  # each of the mix's messages once, in order
    assert {mail_mix.size_class(index) for index in indexes} == {only}
    # Every message of that size in the mix's first indexes, none left out.
    assert set(indexes) >= {i for i in range(indexes[-1]) if mail_mix.size_class(i) == only}
    assert sum(mail_mix.carries_phi(index) for index in indexes) == count // mail_mix.PHI_EVERY
    assert [mail_mix.mix_index(number) for number in range(5)] == list(range(5))
    bodies = loadgen.mixed_bodies("test", 10_000, marketing=False, only=only)
    share = mail_mix.SIZE_CYCLE.count(only) / len(mail_mix.SIZE_CYCLE)
    assert len(bodies) == round(loadgen.BODY_CYCLE * share)  # as much memory as the whole mix's
    with pytest.raises(ValueError, match="no size class"):
        mail_mix.mix_index(0, 12_345)


def test_the_sink_offers_starttls_with_its_certificate_and_counts_what_came_over_tls(
    tmp_path: Path,
) -> None:
    certs = make_certs(tmp_path)
    sink = relay.PythonSink(tmp_path, (certs["good"], certs["good_key"]), tmp_path / "dump")
    sink.start()
    verified = ssl.create_default_context(cafile=str(certs["ca"]))

    async def send(starttls: bool) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, start_tls=False)
        await client.connect()
        if starttls:
            await client.starttls(tls_context=verified)
        await client.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nbody\r\n")
        await client.quit()

    try:
        asyncio.run(send(starttls=True))
        asyncio.run(send(starttls=False))
        assert relay.wait_until(lambda: sink.count() == 2, 10.0)
        assert sink.tls_count() == 1
    finally:
        sink.stop()
    assert (tmp_path / "dump").read_bytes().count(b"Subject: x") == 2


def _summary(
    system: str, delivered_per_s: float, mb_per_s: float, cpu_ms_per_mb: float
) -> versus_postfix.Summary:
    return versus_postfix.Summary(
        sessions=10,
        system=system,
        runs=2,
        delivered_per_s=delivered_per_s,
        accepted_per_s=50.0,
        p50_ms=1.0,
        p99_ms=2.0,
        cpu_ms_per_message=1.0,
        peak_rss_mb=1.0,
        peak_pss_mb=1.0,
        delivered_mb_per_s=mb_per_s,
        cpu_ms_per_mb=cpu_ms_per_mb,
    )


def test_the_mix_is_held_to_the_targets_scaled_to_its_bytes() -> None:
    postfix = _summary("postfix", 50.0, 4.0, 60.0)
    # 2.5 ms per 5 KB message is 512 ms per MB.
    fast = _summary("phigate", 48.0, 6.0, 512.0)
    slow = _summary("phigate", 40.0, 5.9, 513.0)

    (met,) = versus_postfix.scaled_target_lines([fast, postfix])
    (missed,) = versus_postfix.scaled_target_lines([slow, postfix])

    assert "MISSED" not in met
    assert "MB/s 1.50x Postfix's (met" in met
    assert "CPU 512 ms/MB (met" in met
    assert "delivered 96% of accepted/s (met" in met
    assert "MB/s 1.48x Postfix's (MISSED" in missed
    assert "CPU 513 ms/MB (MISSED" in missed
    assert "delivered 80% of accepted/s (MISSED" in missed


def test_a_paced_load_sends_no_faster_than_its_rate(tmp_path: Path) -> None:
    sink = relay.PythonSink(tmp_path)
    sink.start()
    try:
        paced = relay.run_loadgen_at(sink.port, 2, 40, "paced", 30.0, None, rate=40.0)
        unpaced = relay.run_loadgen_at(sink.port, 2, 40, "unpaced", 30.0, None)
    finally:
        sink.stop()
    assert paced["accepted"] == unpaced["accepted"] == 40
    # Message 39 is due 39/40 s into the run, and the first was sent a moment after the
    # run began: more than 38/40 s between them, whatever the machine.
    assert paced["last_accept"] - paced["first_submit"] > 38 / 40
    assert unpaced["last_accept"] - unpaced["first_submit"] < 38 / 40


# Line ends and dots in every arrangement that matters to them.
_DATA_OCTETS = st.binary(max_size=30).map(lambda raw: bytes(b"\r\n.a"[o % 4] for o in raw))


@settings(max_examples=500)
@given(message=_DATA_OCTETS)
def test_the_load_generators_data_is_aiosmtplibs(message: bytes) -> None:
    """The load generator's line ends and dot-stuffing give the bytes aiosmtplib's
    regular expressions give, for any message, CRLF or not."""
    assert loadgen.crlf_lines(message) == loadgen.AIOSMTPLIB_CRLF(message)
    assert loadgen.LeadingDots().sub(b"..", message) == aiosmtplib.protocol.PERIOD_REGEX.sub(
        b"..", message
    )


def test_the_mix_bodies_repeat_with_their_size_and_phi() -> None:
    """A body made once serves every BODY_CYCLE-th message: the same size class and the
    same PHI or none, under each message's own header block."""
    assert loadgen.BODY_CYCLE % (len(mail_mix.SIZE_CYCLE) * mail_mix.PHI_EVERY) == 0
    bodies = loadgen.mixed_bodies("test", 10_000, marketing=False)
    assert len(bodies) == loadgen.BODY_CYCLE
    state = loadgen.RunState(total=10_000, deadline=0.0, run_id="test", mix=True, bodies=bodies)
    for index in (7, 19, 33):
        later = index + 3 * loadgen.BODY_CYCLE
        assert mail_mix.size_class(later) == mail_mix.size_class(index)
        assert mail_mix.carries_phi(later) == mail_mix.carries_phi(index)
        content = loadgen.content_at(state, later)
        head = loadgen.message_head("test", later).encode()
        assert content == head + bodies[index]
        made = mail_mix.make_mixed_message(loadgen.message_head("test", index), index).content
        assert abs(len(content) - len(made)) < 10


def test_the_cpu_of_main_threads_is_told_from_the_other_threads() -> None:
    # versus_postfix prints phigate's event loops apart from its database writers.
    def burn(seconds: float) -> None:
        until = time.thread_time() + seconds
        while time.thread_time() < until:
            pass

    before = relay.TreeCpu.read(os.getpid())
    worker = threading.Thread(target=burn, args=(0.3,))
    worker.start()
    worker.join()
    after_thread = relay.TreeCpu.read(os.getpid())
    burn(0.3)
    after_main = relay.TreeCpu.read(os.getpid())

    assert after_thread.total - before.total >= 0.25
    assert after_thread.main_threads - before.main_threads < 0.1
    assert after_main.main_threads - after_thread.main_threads >= 0.25


class _Counter:
    """A sink's message counter that never moves: the sampler also polls it."""

    def count(self) -> int:
        return 0


def test_the_sampler_reads_pss_once_a_second_and_once_more_as_the_run_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # smaps_rollup walks every page of a process: read ten times a second it took a
    # quarter of a core from the system under test.
    reads: list[float] = []
    real_pss_kb = relay.tree_pss_kb

    def counted_pss_kb(pids: list[int]) -> int:
        reads.append(time.monotonic())
        return real_pss_kb(pids)

    monkeypatch.setattr(relay, "tree_pss_kb", counted_pss_kb)
    sleeper = subprocess.Popen(["sleep", "30"])  # a process tree of one
    try:
        sampler = relay.Sampler(_Counter(), [sleeper.pid], pss=True)  # type: ignore[arg-type]
        sampler.reset()
        sampler.start()
        try:
            time.sleep(2.5)
        finally:
            sampler.stop()
        polled = len(reads) - 1  # the first is reset()'s
        assert 2 <= polled <= 4  # RSS meanwhile every 100 ms
        assert sampler.peak_rss_kb() > 0
        before_end = len(reads)
        assert sampler.peak_pss_kb() > 0
        assert len(reads) == before_end + 1  # a run shorter than a second has its sample too
    finally:
        sleeper.kill()
        sleeper.wait()
