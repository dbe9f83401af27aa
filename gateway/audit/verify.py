"""Verifying the audit trail: the chain recomputed, and every checkpoint held against it.

What it finds, each as a problem naming an event id:
- an event whose hash does not match its content under the audit key (edited,
  or re-chained by someone without the key) or whose link to the one before
  is broken (an event removed or inserted);
- an event chained with plain SHA-256 after keyed events, or after the
  earliest checkpoint (a downgrade: every event since the key existed is keyed);
- a checkpoint whose event is gone (the trail was truncated) or whose hash or
  count no longer matches (events replaced, removed or inserted before it);
- a checkpoint not signed by this audit key (forged, altered, or another key);
- keyed events but no checkpoint at all (the checkpoint table was emptied);
- an event whose search keys (gateway.store.audit_facets) are not the ones its
  fields give: they are outside the hash, so they are checked here. Events the
  indexer has not reached yet (gateway.audit.indexer) are counted as
  unindexed, not as problems.

Events appended after the newest checkpoint and then removed cannot be told
from events never written: the server's periodic checkpoints bound that
window, and an exported checkpoint kept elsewhere survives a wiped table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from gateway.audit import checkpoints, pruning
from gateway.audit.checkpoints import Checkpoint
from gateway.audit.trail import GENESIS, KEYED_CHAIN, SHA256_CHAIN, walk
from gateway.store.audit_key import AuditKey


@dataclass(frozen=True)
class Problem:
    event_id: int | None  # None: about the trail as a whole
    reason: str


@dataclass
class Report:
    events: int = 0
    last_event_id: int = 0
    problems: list[Problem] = field(default_factory=list)
    truncated: bool = False
    checkpoint: Checkpoint | None = None  # the newest authentic one held against the chain
    notes: list[str] = field(default_factory=list)
    # Events past the search indexer's mark: their search keys are not there yet,
    # which is no damage (gateway.audit.indexer).
    unindexed: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_event(self) -> int | None:
        return min((p.event_id for p in self.problems if p.event_id is not None), default=None)

    def ordered_problems(self) -> list[Problem]:
        """Problems about the whole trail first, then by event id."""
        return sorted(self.problems, key=lambda p: -1 if p.event_id is None else p.event_id)

    def as_json(self, problem_limit: int) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "last_event_id": self.last_event_id,
            "first_bad_event": self.first_bad_event,
            "truncated": self.truncated,
            "problem_count": len(self.problems),
            "problems": [p.__dict__ for p in self.ordered_problems()[:problem_limit]],
            "checkpoint": self.checkpoint.exported() if self.checkpoint else None,
            "notes": self.notes,
            "unindexed": self.unindexed,
        }


def _authentic(candidates: list[Checkpoint], key: AuditKey, report: Report) -> list[Checkpoint]:
    trusted = []
    for cp in candidates:
        if cp.authentic(key):
            trusted.append(cp)
        elif cp.key_id != key.key_id:
            report.problems.append(
                Problem(
                    cp.event_id,
                    f"{cp.label} was signed with audit key {cp.key_id}, not with this one "
                    f"({key.key_id}): restore the audit key it was made with",
                )
            )
        else:
            report.problems.append(
                Problem(cp.event_id, f"{cp.label}: signature does not match (forged or altered)")
            )
    return trusted


def _hold(cp: Checkpoint, event_hash: str, count: int, report: Report) -> None:
    """Compare one checkpoint with the chain at its event."""
    if event_hash != cp.hash:
        report.problems.append(
            Problem(
                cp.event_id,
                f"hash differs from the one {cp.label} recorded: the event was replaced "
                "or the chain rewritten",
            )
        )
    if count != cp.count:
        report.problems.append(
            Problem(
                cp.event_id,
                f"{cp.label} counted {cp.count} events up to here, the trail now has "
                f"{count}: events before it were removed or inserted",
            )
        )


def _report_missing(unseen: dict[int, list[Checkpoint]], report: Report) -> None:
    """Checkpointed events the walk did not meet: the tail cut off, or events removed."""
    for event_id, missing in sorted(unseen.items()):
        for cp in missing:
            if event_id > report.last_event_id:
                report.truncated = True
                report.problems.append(
                    Problem(
                        event_id,
                        f"missing: {cp.label} recorded {cp.count} events up to event "
                        f"{event_id}, the trail now ends at event {report.last_event_id} "
                        f"({report.events} events): it was truncated",
                    )
                )
            else:
                report.problems.append(
                    Problem(event_id, f"missing: {cp.label} recorded it; it was removed")
                )


def _pruned_start(conn: Connection, trusted: list[Checkpoint], report: Report) -> Checkpoint | None:
    """The checkpoint a pruned trail starts after (gateway.audit.pruning), if it was
    pruned; a problem if the trail starts after one that no pruning recorded."""
    start = pruning.anchor(pruning.first_event_id(conn), trusted)
    if start is None:
        return None
    recorded = pruning.recorded_through(conn)
    if recorded != start.event_id:
        report.problems.append(
            Problem(
                None,
                f"the trail starts after event {start.event_id} ({start.label}), but "
                + (
                    "no audit_pruned event records a pruning"
                    if recorded is None
                    else f"the last pruning recorded was through event {recorded}"
                )
                + ": events were removed",
            )
        )
    else:
        report.notes.append(
            f"events through {start.event_id} were pruned by retention; the trail is "
            f"verified from {start.label} on"
        )
    return start


def verify(conn: Connection, key: AuditKey, exported: Checkpoint | None = None) -> Report:
    """Check the whole trail (and `exported`, a checkpoint kept elsewhere, if given)."""
    report = Report()
    stored = checkpoints.every(conn)
    trusted = _authentic(stored + ([exported] if exported else []), key, report)
    report.checkpoint = max(trusted, key=lambda cp: cp.created_at, default=None)
    start = _pruned_start(conn, trusted, report)
    expected: dict[int, list[Checkpoint]] = {}
    for cp in trusted:
        if start is not None and cp.event_id <= start.event_id:
            # The anchor is held by the first kept event's link; older events are gone.
            if cp.event_id < start.event_id:
                report.notes.append(
                    f"{cp.label} predates the pruned part of the trail: nothing to hold it against"
                )
            continue
        if cp.event_id:
            expected.setdefault(cp.event_id, []).append(cp)
    # Checkpoints are made with the key, and every event after the key existed
    # is keyed: none after the earliest checkpoint may be plain SHA-256.
    keyed_from = min((cp.event_id for cp in trusted), default=None)
    first_keyed: int | None = None
    position = start.count if start is not None else 0  # events since the trail's start
    for chained in walk(conn, key, start.hash if start is not None else GENESIS):
        report.events += 1
        position += 1
        report.last_event_id = chained.id
        if not chained.link_ok:
            report.problems.append(
                Problem(
                    chained.id,
                    "link to the previous event is broken: an event was "
                    "removed or inserted before it",
                )
            )
        downgraded = first_keyed is not None or (keyed_from is not None and chained.id > keyed_from)
        if chained.chain_version == SHA256_CHAIN and downgraded:
            report.problems.append(
                Problem(
                    chained.id,
                    "chained with plain SHA-256 where only keyed events may be "
                    "(rewritten by someone without the key)",
                )
            )
        elif not chained.hash_ok:
            report.problems.append(
                Problem(
                    chained.id,
                    "content does not match its hash under the audit key: "
                    "edited, or re-chained without the key",
                )
            )
        elif chained.facets_ok is None:
            report.unindexed += 1
        elif not chained.facets_ok:
            report.problems.append(
                Problem(
                    chained.id,
                    "its search keys (rule, policy_version, mode, tls, message_id, about, "
                    "or its rows in audit_recipients) differ from what its fields say: "
                    "edited, so searches would mislead",
                )
            )
        if chained.chain_version == KEYED_CHAIN and first_keyed is None:
            first_keyed = chained.id
        for cp in expected.pop(chained.id, []):
            _hold(cp, chained.hash, position, report)
    _report_missing(expected, report)
    if not stored:
        if first_keyed is not None:
            report.problems.append(
                Problem(
                    None,
                    "keyed events but no checkpoint: the checkpoint table was emptied, "
                    "so truncation cannot be ruled out (verify with an exported checkpoint)",
                )
            )
        else:
            report.notes.append("no checkpoint yet: run `phigate audit checkpoint` to record one")
    if report.unindexed:
        report.notes.append(
            f"{report.unindexed} newest event(s) not indexed for search yet, so their search "
            "keys were not checked: the server indexes them shortly, `phigate audit search` "
            "at once"
        )
    return report
