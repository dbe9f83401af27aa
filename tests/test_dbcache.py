"""The on-disk cache of compiled Hyperscan databases: a later engine loads what an
earlier one compiled, and a file that is damaged, foreign or for other patterns is
never used."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import PHIGATE, Phigate

from gateway.inspect.detect import dbcache
from gateway.inspect.detect.matcher import Pattern, build_engine

hyperscan = pytest.importorskip("hyperscan")

PATTERNS = [Pattern(r"\d{3}-\d{2}-\d{4}"), Pattern(r"MRN[: ]*\d{6,8}", "lookback", 20)]
OTHER = [Pattern(r"\d{3}-\d{3}-\d{4}")]
TEXT = b"SSN 123-45-6789, MRN: 1234567, call 555-123-4567"


@pytest.fixture
def cache(tmp_path: Path, detector_cache: Path) -> Iterator[Path]:
    """This test's own cache directory, the run's shared one back afterwards."""
    directory = tmp_path / "cache"
    dbcache.use_directory(directory)
    yield directory
    dbcache.use_directory(detector_cache)


def entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.hsdb"))


def test_a_second_engine_loads_what_the_first_compiled(cache: Path) -> None:
    first = build_engine(PATTERNS, "hyperscan")
    [entry] = entries(cache)
    written = entry.stat()

    second = build_engine(PATTERNS, "hyperscan")

    # Compiling again would have written the file again (a new file renamed over it).
    assert entry.stat().st_ino == written.st_ino
    assert entry.stat().st_mtime_ns == written.st_mtime_ns
    assert second.scan(TEXT) == first.scan(TEXT) == build_engine(PATTERNS, "re2").scan(TEXT)
    assert second.scan(TEXT)  # the sample text does match


def test_the_cache_compiles_only_on_a_miss(tmp_path: Path) -> None:
    source = dbcache.Source([rb"\d{3}-\d{2}-\d{4}"], [0], [0], hyperscan.HS_MODE_BLOCK)
    compiled: list[Any] = []

    def compile() -> Any:
        db = hyperscan.Database(mode=source.mode)
        db.compile(expressions=list(source.expressions), ids=list(source.ids), elements=1)
        compiled.append(db)
        return db

    cache = dbcache.DatabaseCache(tmp_path / "cache")
    cache.load_or_compile(source, compile)
    loaded = cache.load_or_compile(source, compile)

    assert len(compiled) == 1
    found: list[tuple[int, int, int]] = []
    loaded.scan(
        b"x 123-45-6789",
        match_event_handler=lambda i, s, e, f, c: found.append((i, s, e)),
        scratch=hyperscan.Scratch(loaded),
    )
    assert found == [(0, 0, 13)]


def test_a_different_pattern_set_gets_its_own_entry(cache: Path) -> None:
    build_engine(PATTERNS, "hyperscan")
    build_engine(OTHER, "hyperscan")
    assert len(entries(cache)) == 2


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(
            lambda data: data[:-100] + bytes(b ^ 0xFF for b in data[-100:]), id="flipped-bytes"
        ),
        pytest.param(lambda data: b"not a database at all\n" * 10, id="garbage"),
    ],
)
def test_a_damaged_file_is_compiled_anew_and_replaced(cache: Path, damage: Any) -> None:
    build_engine(PATTERNS, "hyperscan")
    [entry] = entries(cache)
    damaged = damage(entry.read_bytes())
    entry.write_bytes(damaged)

    engine = build_engine(PATTERNS, "hyperscan")

    assert engine.scan(TEXT) == build_engine(PATTERNS, "re2").scan(TEXT)
    assert entry.read_bytes() != damaged
    replaced = entry.stat().st_ino
    build_engine(PATTERNS, "hyperscan")
    assert entry.stat().st_ino == replaced  # the new file loads: nothing is written again


def test_a_file_for_other_patterns_is_never_loaded(cache: Path) -> None:
    """The key inside the file is checked: a file renamed to another set's name is refused."""
    build_engine(OTHER, "hyperscan")
    [other] = entries(cache)
    build_engine(PATTERNS, "hyperscan")
    [mine] = [e for e in entries(cache) if e != other]
    other_bytes = other.read_bytes()
    mine.write_bytes(other_bytes)  # the database for OTHER under PATTERNS' key

    engine = build_engine(PATTERNS, "hyperscan")

    assert engine.scan(TEXT) == build_engine(PATTERNS, "re2").scan(TEXT)
    assert mine.read_bytes() != other_bytes


def test_directory_and_files_are_private(cache: Path) -> None:
    build_engine(PATTERNS, "hyperscan")
    [entry] = entries(cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert entry.stat().st_uid == os.getuid()
    assert [p.name for p in cache.iterdir()] == [entry.name]  # no temporary file left


def test_a_loose_directory_is_made_private(cache: Path) -> None:
    cache.mkdir(mode=0o755)
    cache.chmod(0o755)
    build_engine(PATTERNS, "hyperscan")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert len(entries(cache)) == 1


def test_a_file_others_may_write_is_not_trusted(cache: Path) -> None:
    build_engine(PATTERNS, "hyperscan")
    [entry] = entries(cache)
    entry.chmod(0o666)
    before = entry.stat().st_ino

    build_engine(PATTERNS, "hyperscan")

    assert entry.stat().st_ino != before  # compiled and written anew, private again
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_file_of_another_user_is_not_trusted(cache: Path) -> None:
    build_engine(PATTERNS, "hyperscan")
    [entry] = entries(cache)
    os.chown(entry, 4242, 4242)

    build_engine(PATTERNS, "hyperscan")

    assert entry.stat().st_uid == os.getuid()


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory to another user needs root")
def test_a_directory_of_another_user_is_not_written(cache: Path) -> None:
    cache.mkdir(mode=0o700)
    os.chown(cache, 4242, 4242)

    engine = build_engine(PATTERNS, "hyperscan")

    assert engine.scan(TEXT) == build_engine(PATTERNS, "re2").scan(TEXT)
    assert entries(cache) == []


def test_a_missing_parent_means_no_cache_and_no_error(tmp_path: Path) -> None:
    cache = dbcache.DatabaseCache(tmp_path / "no" / "such" / "cache")
    source = dbcache.Source([rb"abc"], [0], [0], hyperscan.HS_MODE_BLOCK)

    def compile() -> Any:
        db = hyperscan.Database(mode=source.mode)
        db.compile(expressions=list(source.expressions), ids=[0], elements=1)
        return db

    assert cache.load_or_compile(source, compile) is not None
    assert not (tmp_path / "no").exists()


def test_only_the_newest_entries_are_kept(cache: Path) -> None:
    for n in range(dbcache.KEEP + 2):
        build_engine([Pattern(f"pattern{n}")], "hyperscan")
    assert len(entries(cache)) == dbcache.KEEP


def test_serve_keeps_its_database_under_the_data_dir(tmp_path: Path) -> None:
    """The default cache_dir: DATA_DIR/cache; a second start loads rather than compiles."""
    gw = Phigate(tmp_path, cache_dir="cache")
    cache = Path(gw.settings["data_dir"]) / "cache"
    gw.start()
    gw.stop()
    [entry] = entries(cache)
    written = entry.stat()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700

    gw.start()
    gw.stop()

    assert entry.stat().st_ino == written.st_ino


PATTERN_DIGEST = """
import hashlib
from gateway.config import InspectionConfig
from gateway.inspect.detect import patterns
from gateway.inspect.detect.namedata import name_data
data = name_data()
defs = patterns.build(InspectionConfig(), data.given, data.given_us)
print(hashlib.sha256(repr(defs).encode()).hexdigest())
"""


def test_every_process_builds_the_same_patterns() -> None:
    """Else no start would find what the one before kept: str hashes (so set order)
    differ from process to process."""
    digests = {
        subprocess.run(
            [sys.executable, "-c", PATTERN_DIGEST],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(digests) == 1


def test_commands_that_inspect_read_the_cache_but_never_write_it(tmp_path: Path) -> None:
    """Run as another user than the server, a command must not leave files it would refuse."""
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "phigate.yaml"
    config.write_text(f"data_dir: {data}\n")
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"From: a@example.org\r\nSubject: hi\r\n\r\nSSN 123-45-6789\r\n")

    result = subprocess.run(
        [*PHIGATE, "inspect", "--json", str(eml), "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert '"ssn"' in result.stdout
    assert not (data / "cache").exists()


def test_readers_never_see_a_file_half_written_by_another_writer(tmp_path: Path) -> None:
    """Processes sharing a directory (servers of one installation, test workers) may
    compile and write one key at once: a reader gets the old file or the new, whole."""
    source = dbcache.Source(
        [rb"\d{3}-\d{2}-\d{4}", rb"MRN\d{7}"], [0, 1], [0, 0], hyperscan.HS_MODE_BLOCK
    )
    database = hyperscan.Database(mode=source.mode)
    database.compile(expressions=list(source.expressions), ids=list(source.ids), elements=2)
    cache = dbcache.DatabaseCache(tmp_path / "cache")
    key = dbcache.cache_key(source, hyperscan.__version__)
    cache.load_or_compile(source, lambda: database)
    reader = dbcache.DatabaseCache(cache.directory, write=False)
    compiled: list[Any] = []

    def compile() -> Any:  # a miss: the file was missing, partial or damaged
        compiled.append(database)
        return database

    writing = threading.Event()
    writing.set()

    def writer() -> None:
        while writing.is_set():
            cache._store(key, database)

    writers = [threading.Thread(target=writer) for _ in range(2)]
    for thread in writers:
        thread.start()
    try:
        for _ in range(2000):
            reader.load_or_compile(source, compile)
    finally:
        writing.clear()
        for thread in writers:
            thread.join()
    assert compiled == []
    assert list(cache.directory.iterdir()) == [cache.path(key)]  # no temporary file left
