"""Compiled Hyperscan databases kept on disk: a process loads in milliseconds
what takes seconds of CPU to compile.

A file is named by the SHA-256 of everything that shapes the database (the
Hyperscan version, the mode, each pattern's text, flags and id) and holds that
key again, with a digest of the serialized database. A file that is missing,
unreadable, not ours, not for this key or that Hyperscan refuses is compiled
anew and replaced: the cache can only make start-up faster, never detection
different. The directory is the user's alone (0700, files 0600), since whoever
could write there could choose what the detector looks for.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from gateway.config import Settings
from gateway.logs import event

log = logging.getLogger(__name__)
_MAGIC = b"phigate-hyperscan-db 1\n"
_SUFFIX = ".hsdb"
_DIGEST = hashlib.sha256().digest_size
KEEP = 8  # databases kept (about 6 MB each with the shipped patterns)


class Source(NamedTuple):
    """What a database is compiled from; equal sources compile to equal databases."""

    expressions: Sequence[bytes]
    ids: Sequence[int]
    flags: Sequence[int]
    mode: int


def cache_key(source: Source, version: str) -> str:
    key = hashlib.sha256(f"hyperscan {version} mode {source.mode}\n".encode())
    for expression, id_, flags in zip(source.expressions, source.ids, source.flags, strict=True):
        key.update(f"{id_} {flags} {len(expression)}\n".encode())
        key.update(expression)
    return key.hexdigest()


class DatabaseCache:
    """One directory of serialized databases."""

    def __init__(self, directory: Path, *, write: bool = True) -> None:
        import hyperscan  # only engines that exist where Hyperscan does come here

        self.directory = directory
        self.write = write
        self._hs: Any = hyperscan

    def path(self, key: str) -> Path:
        return self.directory / f"{key}{_SUFFIX}"

    def load_or_compile(self, source: Source, compile: Callable[[], Any]) -> Any:
        key = cache_key(source, self._hs.__version__)
        database = self._load(key, source.mode)
        if database is None:
            database = compile()
            if self.write:
                self._store(key, database)
        return database

    def _load(self, key: str, mode: int) -> Any:
        try:
            payload = _read_own_file(self.path(key), key)
            database = self._hs.loadb(payload, mode)
            self._hs.Scratch(database)  # refuses a database built for another CPU
        except FileNotFoundError:
            return None
        except (OSError, ValueError, self._hs.error) as exc:
            event(log, "detector_cache_unusable", logging.WARNING, error=type(exc).__name__)
            return None
        return database

    def _store(self, key: str, database: Any) -> None:
        payload = self._hs.dumpb(database)
        header = _MAGIC + key.encode() + hashlib.sha256(payload).digest()
        try:
            _own_directory(self.directory)
            fd, temp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")  # mode 0600
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(header + payload)
                os.replace(temp, self.path(key))
            except BaseException:
                os.unlink(temp)
                raise
            self._prune()
        except OSError as exc:
            # Without a cache every start compiles: slower, never wrong.
            event(log, "detector_cache_not_written", logging.WARNING, error=type(exc).__name__)

    def _prune(self) -> None:
        """Keep the newest few: a changed pattern set leaves its old database behind."""
        dated = []
        for file in self.directory.glob(f"*{_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):  # another process pruned it
                dated.append((file.stat().st_mtime, file))
        for _, stale in sorted(dated, reverse=True)[KEEP:]:
            stale.unlink(missing_ok=True)


class CacheError(OSError):
    """The cache directory or a file in it is not safe to use."""


def _own_directory(directory: Path) -> None:
    """Create `directory` (not its parents) 0700, or check that it is ours and made so."""
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise CacheError("the cache directory is not a directory of this user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        directory.chmod(0o700)


def _read_own_file(path: Path, key: str) -> bytes:
    """The serialized database in `path`, if the file is ours, private and for `key`."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise CacheError("a cache file is not private to this user")
        data = file.read()
    header = len(_MAGIC) + len(key) + _DIGEST
    if data[: len(_MAGIC)] != _MAGIC or data[len(_MAGIC) : len(_MAGIC) + len(key)] != key.encode():
        raise ValueError("a cache file is not for these patterns")
    payload = data[header:]
    if hashlib.sha256(payload).digest() != data[header - _DIGEST : header]:
        raise ValueError("a cache file is damaged")
    return payload


_cache: DatabaseCache | None = None


def directory_for(settings: Settings) -> Path | None:
    """An installation's cache directory (`cache_dir`, under data_dir); None when empty."""
    return settings.path(settings.cache_dir) if settings.cache_dir else None


def use_directory(directory: Path | None, *, write: bool = True) -> None:
    """Where this process finds compiled databases from now on (None: nowhere), and whether
    it keeps the ones it compiles there."""
    global _cache
    _cache = None if directory is None else DatabaseCache(directory, write=write)


def load_or_compile(source: Source, compile: Callable[[], Any]) -> Any:
    """The database for `source`: from the cache when one is set and holds it, else compiled
    (and kept for the next process)."""
    cache = _cache
    return compile() if cache is None else cache.load_or_compile(source, compile)
