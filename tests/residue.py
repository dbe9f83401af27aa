"""Searching a SQLite database's files for bytes that shredding must have destroyed.

SQLite keeps old page images in the WAL and deleted cells on free pages, so
a column set to NULL may live on in the files; these helpers look for it.
"""

from __future__ import annotations

from pathlib import Path

SUFFIXES = ("", "-wal", "-shm", "-journal")
CONTENTS = "-contents"  # the directory of large contents (gateway/store/contents.py)
CHUNK = 16  # bytes; a random 16-byte string does not occur by chance in a few MB
# Pieces searched for at most, evenly spread: a secret of megabytes would otherwise
# take minutes; SQLite keeps or frees whole pages, and every page is still sampled.
MAX_PIECES = 1024


def _files(db_path: Path) -> list[Path]:
    candidates = [db_path.with_name(db_path.name + suffix) for suffix in SUFFIXES]
    contents = db_path.with_name(db_path.name + CONTENTS)
    if contents.is_dir():
        candidates += sorted(contents.iterdir())
    return [path for path in candidates if path.exists()]


def residue(db_path: Path, *secrets: bytes) -> list[str]:
    """Which files (the database's, and its large contents') still hold a CHUNK-byte
    piece of the secrets."""
    pieces = [s[i : i + CHUNK] for s in secrets for i in range(0, len(s) - CHUNK + 1, CHUNK)]
    if len(pieces) > MAX_PIECES:
        step = len(pieces) / MAX_PIECES
        pieces = [pieces[int(n * step)] for n in range(MAX_PIECES)]
    found = []
    for path in _files(db_path):
        try:
            raw = path.read_bytes()
        except FileNotFoundError:  # removed since it was listed (after a checkpoint)
            continue
        hits = sum(piece in raw for piece in pieces)
        if hits:
            found.append(f"{path.name}: {hits} of {len(pieces)} pieces")
    return found
