"""What walk() leaves for a worker process, and what the worker sends back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from gateway.inspect.content import Extraction, Place

# "html": an HTML part too large to convert in-process (its text, as UTF-8).
HeavyKind = Literal["pdf", "docx", "xlsx", "zip", "html"]

# The same shape as a message's extraction, so merging is appending (and it pickles).
HeavyResult: TypeAlias = Extraction


@dataclass(frozen=True)
class HeavyJob:
    """One part for an extractor in a worker process: its place and decoded bytes."""

    place: Place
    kind: HeavyKind
    data: bytes

    def __repr__(self) -> str:  # never the bytes, which are message content
        return f"HeavyJob({self.place.label}, {self.kind}, {len(self.data)} bytes)"
