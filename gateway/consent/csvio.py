"""Consent records as CSV: what `phigate consent import` reads and `export` writes.

One row per record, in recording order; the header row names the columns
(any order, any case). Export writes every column; import needs `purpose`
and `address` or `patient_id`, and reads the others when present.

Cells a spreadsheet would run as a formula (starting with = + - @, a tab or a
carriage return: OWASP's CSV injection list) are written with a leading
single quote, which import takes off again, so an export imports as the same
records.
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from gateway.config import ConsentConfig
from gateway.consent import registry
from gateway.consent.registry import (
    RECORD_COLUMNS,
    Change,
    ConsentError,
    Grant,
    OptChange,
    Revocation,
)

COLUMNS = RECORD_COLUMNS  # what export writes, import reads

# Shown by `phigate consent import --help` (click keeps lines after \b as written).
COLUMNS_HELP = """\b
Columns (header row required; names in any order and case):
  kind                    grant (default), revoke, opt_out or opt_in
  address                 the recipient's address (this or patient_id, or both)
  patient_id              the patient's id in the EHR; a grant naming both links
                          the address to the patient; a revoke by patient id
                          covers every address linked to the patient
  purpose                 marketing or marketing/<sub-purpose> (required)
  effective_at            when granted or revoked (required for those; ignored
                          for opt_out/opt_in, which count in file order)
  expires_at              grants: when the authorization ends (empty: never)
  source                  web_form, ehr, import (default), api, admin, unsubscribe
  document_ref            grants: where the signed authorization is kept (at most
                          200 characters; never the document); opt-outs: reference
  remuneration            grants: true if a third party pays for the marketing
  remuneration_disclosed  grants: true if the authorization discloses that
  actor, recorded_at      written by export; not read (imported records are
                          recorded now, by you)
Dates are ISO 8601 (2025-01-31, 2025-01-31T14:30:00Z; without a zone: UTC).
Booleans: true/false, yes/no, 1/0 or empty (false).
Export writes a value starting with = + - @ (which a spreadsheet would run as
a formula) with a leading ' ; import takes that quote off again."""

_KINDS = {kind.replace("_", "-"): kind for kind in registry.KINDS} | {
    kind: kind for kind in registry.KINDS
}
_TRUE = ("true", "yes", "1")
# First characters that make a spreadsheet cell a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_GUARD = "'"
_FALSE = ("false", "no", "0", "")
# A registry field named in a ConsentError, as the CSV column that holds it.
_COLUMN_OF = {
    "granted_at": "effective_at",
    "revoked_at": "effective_at",
    "reference": "document_ref",
}


class CsvFileError(Exception):
    """The file cannot be read as consent records at all (nothing in it is imported)."""


@dataclass(frozen=True)
class RowError:
    line: int
    column: str | None
    message: str

    def text(self, path: str) -> str:
        where = f"{path}:{self.line}: " + (f"column {self.column}: " if self.column else "")
        return where + self.message


@dataclass
class CsvRead:
    """The changes read from a file (with their line numbers) and the rows that are wrong."""

    changes: list[tuple[int, Change]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


class _BadValue(Exception):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


# --- times ------------------------------------------------------------------------


def parse_time(text: str) -> float:
    """ISO 8601 date or date and time as UNIX seconds; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date (write e.g. 2025-01-31 or 2025-01-31T14:30:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


# --- reading ----------------------------------------------------------------------


def _header(path: Path, row: list[str]) -> list[str]:
    names = [name.strip().lower() for name in row]
    for name in names:
        if not name:
            raise CsvFileError(f"{path}:1: a column has no name (a comma too many?)")
        if name not in COLUMNS:
            close = difflib.get_close_matches(name, COLUMNS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise CsvFileError(
                f"{path}:1: unknown column {name!r} ({hint}the columns are {', '.join(COLUMNS)})"
            )
    for name in set(names):
        if names.count(name) > 1:
            raise CsvFileError(f"{path}:1: column {name} is named twice; keep one")
    if "purpose" not in names:
        raise CsvFileError(f"{path}:1: the header has no purpose column; add it")
    if "address" not in names and "patient_id" not in names:
        raise CsvFileError(f"{path}:1: the header needs an address or a patient_id column")
    return names


def _guarded(text: str) -> bool:
    """Whether `text` starts like a formula once leading quotes are set aside (so
    that a value which itself starts with a quote survives the round trip)."""
    return text.lstrip(_GUARD).startswith(_FORMULA_STARTS)


def neutralized(text: str) -> str:
    """A cell value a spreadsheet shows as text, never runs."""
    return _GUARD + text if _guarded(text) else text


def restored(cell: str) -> str:
    """The value `neutralized` was given: its quote taken off."""
    return cell[1:] if cell.startswith(_GUARD) and _guarded(cell[1:]) else cell


def _value(values: dict[str, str], column: str) -> str | None:
    text = values.get(column, "").strip()
    return text or None


def _time_value(values: dict[str, str], column: str, required: bool) -> float | None:
    text = _value(values, column)
    if text is None:
        if required:
            raise _BadValue(column, "is empty; write the date (e.g. 2025-01-31)")
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise _BadValue(column, str(exc)) from None


def _bool_value(values: dict[str, str], column: str) -> bool:
    text = values.get(column, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _BadValue(column, f"{text!r} is not a yes or no (write true or false)")


def _only_for(values: dict[str, str], kind: str, columns: Iterable[str], meant: str) -> None:
    """Columns that must be empty (or false) in a row of this kind."""
    for column in columns:
        unset = (
            not _bool_value(values, column)
            if column in ("remuneration", "remuneration_disclosed")
            else _value(values, column) is None
        )
        if not unset:
            raise _BadValue(column, f"is for {meant} only; leave it empty in a {kind} row")


def _change(values: dict[str, str]) -> Change:
    """The record a row describes, before the registry's checks."""
    kind_text = (_value(values, "kind") or registry.GRANT).lower()
    kind = _KINDS.get(kind_text)
    if kind is None:
        raise _BadValue("kind", f"{kind_text!r} is not one of {', '.join(registry.KINDS)}")
    address, patient_id = _value(values, "address"), _value(values, "patient_id")
    purpose = _value(values, "purpose") or ""
    source = _value(values, "source") or "import"
    if kind == registry.GRANT:
        granted_at = _time_value(values, "effective_at", required=True)
        assert granted_at is not None
        return Grant(
            address,
            patient_id,
            purpose,
            granted_at,
            _time_value(values, "expires_at", required=False),
            source,
            _value(values, "document_ref"),
            _bool_value(values, "remuneration"),
            _bool_value(values, "remuneration_disclosed"),
        )
    grant_only = ("expires_at", "remuneration", "remuneration_disclosed")
    if kind == registry.REVOKE:
        _only_for(values, kind, (*grant_only, "document_ref"), "grants")
        revoked_at = _time_value(values, "effective_at", required=True)
        assert revoked_at is not None
        return Revocation(address, patient_id, purpose, revoked_at, source)
    _only_for(values, kind, (*grant_only, "patient_id"), "grants and revocations")
    if address is None:
        raise _BadValue("address", "is empty; an opt-out or opt-in names an address")
    return OptChange(kind, address, purpose, source, _value(values, "document_ref"))


def _rows(path: Path, handle: TextIO) -> Iterator[tuple[int, list[str]]]:
    """(first line number, values) of every non-blank row; CsvFileError when unreadable."""
    reader = csv.reader(handle)
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CsvFileError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
        if any(value.strip() for value in row):
            yield line, row
        line = reader.line_num + 1


def read_changes(path: Path, config: ConsentConfig) -> CsvRead:
    """Read and check every row of the file; CsvFileError if it is not usable at all."""
    result = CsvRead()
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = _rows(path, handle)
            first = next(rows, None)
            if first is None:
                raise CsvFileError(f"{path}: the file is empty; the first row names the columns")
            names = _header(path, first[1])
            for line, row in rows:
                if len(row) != len(names):
                    message = (
                        f"the row has {len(row)} values but the header names {len(names)} "
                        "columns (quote values that contain commas)"
                    )
                    result.errors.append(RowError(line, None, message))
                    continue
                try:
                    values = dict(zip(names, map(restored, row), strict=True))
                    change = registry.check_for(config, _change(values))
                except _BadValue as exc:
                    result.errors.append(RowError(line, exc.column, str(exc)))
                    continue
                except ConsentError as exc:
                    column = _COLUMN_OF.get(exc.field or "", exc.field)
                    result.errors.append(RowError(line, column, str(exc)))
                    continue
                result.changes.append((line, change))
    except UnicodeDecodeError:
        raise CsvFileError(f"{path}: not UTF-8 text (save it as CSV UTF-8)") from None
    except OSError as exc:
        raise CsvFileError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    return result


# --- writing ----------------------------------------------------------------------


def _cell(name: str, value: Any) -> str:
    if name in ("effective_at", "expires_at", "recorded_at"):
        return format_time(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def write_records(out: TextIO, records: Iterable[dict[str, Any]]) -> int:
    """Write records (as `registry.export_records` gives them) as CSV; returns the count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for record in records:
        writer.writerow([neutralized(_cell(name, record[name])) for name in COLUMNS])
        count += 1
    return count


def record_json(record: dict[str, Any]) -> dict[str, Any]:
    """A record with ISO 8601 times, for JSON output."""
    return {
        name: (format_time(value) or None) if name.endswith("_at") else value
        for name, value in record.items()
    }
