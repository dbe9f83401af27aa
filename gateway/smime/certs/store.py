"""The recipient certificate store: a directory of certificate and CRL files.

Admins add files with `phigate certs import` (stored as `<sha256>.pem` and
`<sha256>.crl`) or by copying PEM or DER files of any name into the directory.
Names starting with "." are ignored. One `CertStore` serves a running server:
each lookup compares the directory's and the trust bundle's modification
times with those it last read and rescans when they differ, reparsing only
the files that changed.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from gateway.smime.certs.files import (
    FileContents,
    NotCertificateError,
    crl_fingerprint,
    fingerprint,
    pem_bytes,
    read_objects,
)
from gateway.smime.certs.profile import CertificateFacts, address_key, examine, name_text
from gateway.smime.certs.revocation import CrlInfo, Revocations
from gateway.smime.certs.trust import ChainBuilder, ChainResult, TrustAnchors, system_ca_file

MAX_FILE_BYTES = 5 * 1024 * 1024
# Directory timestamps can be coarse: a file added in the same tick as the last
# scan leaves the mtime unchanged, so a directory changed this recently is
# scanned once more after this many seconds.
_RACY_SECONDS = 2.0
_MIN_PREFIX = 4


class CertStoreError(Exception):
    """A request the store cannot satisfy (the text says what and how to fix it)."""


class BadSelector(CertStoreError):
    """Neither an address nor a fingerprint, or a prefix matching several certificates."""


class NoSuchCertificate(CertStoreError):
    pass


def _utc(moment: datetime.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class RecipientCertificate:
    """A usable certificate for one recipient, with the chain that makes it trusted."""

    certificate: x509.Certificate
    fingerprint: str
    address: str
    chain: tuple[x509.Certificate, ...]
    capabilities: tuple[str, ...]
    # Its S/MIME capabilities list AES-256-GCM: the recipient reads AuthEnvelopedData.
    offers_gcm: bool


@dataclass(frozen=True)
class CertEntry:
    """One stored certificate as `certs ls` and `certs show` report it."""

    facts: CertificateFacts
    files: tuple[str, ...]
    # Every reason it cannot be encrypted to now; empty: usable.
    problems: tuple[str, ...]
    # Subjects from the certificate to its trust anchor, when a chain was built.
    chain: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        return self.facts.fingerprint

    @property
    def status(self) -> str:
        return self.problems[0] if self.problems else "usable"

    def as_json(self) -> dict[str, object]:
        facts, cert = self.facts, self.facts.cert
        return {
            "fingerprint": facts.fingerprint,
            "kind": "ca" if facts.is_ca else "recipient",
            "addresses": list(facts.addresses),
            "subject": facts.subject,
            "issuer": facts.issuer,
            "serial": format(cert.serial_number, "x"),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "key": facts.key,
            "key_usage": list(facts.key_usage) if facts.key_usage is not None else None,
            "extended_key_usage": (
                list(facts.extended_key_usage) if facts.extended_key_usage is not None else None
            ),
            "smime_capabilities": list(facts.capabilities),
            "chain": list(self.chain),
            "status": self.status,
            "problems": list(self.problems),
            "files": list(self.files),
        }


@dataclass(frozen=True)
class UnreadableFile:
    path: str
    error: str


@dataclass(frozen=True)
class ImportedItem:
    source: str
    kind: str  # "certificate" | "crl"
    fingerprint: str
    new: bool
    entry: CertEntry | None = None
    crl: CrlInfo | None = None


@dataclass(frozen=True)
class ImportReport:
    items: tuple[ImportedItem, ...]
    errors: tuple[UnreadableFile, ...]


@dataclass(frozen=True)
class _ParsedFile:
    stamp: tuple[int, int]  # mtime_ns, size
    facts: tuple[CertificateFacts, ...]
    crls: tuple[x509.CertificateRevocationList, ...]
    error: str | None


@dataclass
class _Stored:
    facts: CertificateFacts
    files: list[str]


@dataclass
class _Snapshot:
    state: tuple[object, ...]
    recheck_at: float | None
    certs: dict[str, _Stored]
    by_address: dict[str, tuple[_Stored, ...]]
    crl_files: dict[str, list[str]]
    revocations: Revocations
    chains: ChainBuilder
    unreadable: tuple[UnreadableFile, ...]
    # Chain results by fingerprint; filled lazily by lookups in any thread (a
    # race only builds the same chain twice).
    chain_cache: dict[str, ChainResult] = field(default_factory=dict)


class CertStore:
    """Recipient certificates in `certs_dir`, trusted through `trust_file` (None: system CAs)."""

    def __init__(self, certs_dir: Path, trust_file: Path | None) -> None:
        self.certs_dir = certs_dir
        self._trust_configured = trust_file is not None
        self._trust_source = trust_file or system_ca_file()
        self._lock = threading.Lock()
        self._files: dict[str, _ParsedFile] = {}
        self._anchors: tuple[object, TrustAnchors] | None = None
        self._snapshot: _Snapshot | None = None

    @property
    def trust_source(self) -> Path | None:
        """The CA bundle recipient certificates must chain to (None: no system bundle found)."""
        return self._trust_source

    # --- lookups -------------------------------------------------------------

    def find(
        self, recipient: str, now: datetime.datetime | None = None
    ) -> RecipientCertificate | None:
        """The usable certificate for `recipient` that expires last, or None."""
        now = now or datetime.datetime.now(datetime.UTC)
        snapshot = self._current()
        key = address_key(recipient)
        for stored in snapshot.by_address.get(key, ()):
            chain = self._usable_chain(snapshot, stored.facts, now)
            if chain is not None:
                return RecipientCertificate(
                    certificate=stored.facts.cert,
                    fingerprint=stored.facts.fingerprint,
                    address=key,
                    chain=chain,
                    capabilities=stored.facts.capabilities,
                    offers_gcm=stored.facts.offers_gcm,
                )
        return None

    def entries(
        self, now: datetime.datetime | None = None, address: str | None = None
    ) -> list[CertEntry]:
        """Every stored certificate (or those naming `address`), recipients first."""
        now = now or datetime.datetime.now(datetime.UTC)
        snapshot = self._current()
        if address is not None:
            chosen: Iterable[_Stored] = snapshot.by_address.get(address_key(address), ())
        else:
            chosen = sorted(
                snapshot.certs.values(),
                key=lambda s: (s.facts.is_ca, s.facts.addresses, s.facts.subject),
            )
        return [self._entry(snapshot, stored, now) for stored in chosen]

    def lookup(self, selector: str, now: datetime.datetime | None = None) -> list[CertEntry]:
        """Certificates for an address, or the one a fingerprint (prefix) names."""
        now = now or datetime.datetime.now(datetime.UTC)
        snapshot = self._current()
        return [self._entry(snapshot, s, now) for s in self._select(snapshot, selector)]

    def crls(self) -> tuple[CrlInfo, ...]:
        return self._current().revocations.crls

    def unreadable(self) -> tuple[UnreadableFile, ...]:
        """Files in the directory that hold no certificate or CRL, and why."""
        return self._current().unreadable

    @property
    def trust_error(self) -> str | None:
        """Why no recipient certificate can be trusted (trust bundle missing or unreadable)."""
        with self._lock:
            return self._trust_anchors(self._trust_state()).error

    # --- changes -------------------------------------------------------------

    def import_files(
        self, paths: Sequence[Path], now: datetime.datetime | None = None
    ) -> ImportReport:
        """Store every certificate and CRL in `paths` once, under its SHA-256 fingerprint."""
        now = now or datetime.datetime.now(datetime.UTC)
        try:
            self.certs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise CertStoreError(f"cannot create {self.certs_dir}: {exc.strerror}") from None
        snapshot = self._current()
        known = set(snapshot.certs) | set(snapshot.crl_files)
        pending: list[tuple[str, str, str, bool]] = []
        errors: list[UnreadableFile] = []
        with self._lock:
            for path in paths:
                try:
                    contents = _read_file(path)
                except CertStoreError as exc:
                    errors.append(UnreadableFile(str(path), str(exc)))
                    continue
                for fp, kind, name, data in _named_objects(contents):
                    new = fp not in known
                    if new:
                        _write_atomically(self.certs_dir / name, data)
                        known.add(fp)
                    pending.append((str(path), kind, fp, new))
        snapshot = self._refresh(force=True)
        crls = {info.fingerprint: info for info in snapshot.revocations.crls}
        items = [
            ImportedItem(
                source,
                kind,
                fp,
                new,
                entry=self._entry(snapshot, snapshot.certs[fp], now)
                if fp in snapshot.certs
                else None,
                crl=crls.get(fp),
            )
            for source, kind, fp, new in pending
        ]
        return ImportReport(tuple(items), tuple(errors))

    def remove(self, selector: str, now: datetime.datetime | None = None) -> list[CertEntry]:
        """Delete the certificates a fingerprint prefix or an address selects; returns them.

        A certificate inside a bundle file takes the bundle apart: the file's
        other certificates and CRLs are kept as files of their own.
        """
        now = now or datetime.datetime.now(datetime.UTC)
        snapshot = self._current()
        chosen = self._select(snapshot, selector)
        removed = [self._entry(snapshot, stored, now) for stored in chosen]
        doomed = {entry.fingerprint for entry in removed}
        with self._lock:
            for name in sorted({name for entry in removed for name in entry.files}):
                self._split_out(name, doomed)
        self._refresh(force=True)
        return removed

    # --- internals -------------------------------------------------------------

    def _select(self, snapshot: _Snapshot, selector: str) -> list[_Stored]:
        text = selector.strip()
        if "@" in text:
            found = list(snapshot.by_address.get(address_key(text), ()))
            if not found:
                raise NoSuchCertificate(f"no certificate for {text} in {self.certs_dir}")
            return found
        prefix = text.replace(":", "").lower()
        if len(prefix) < _MIN_PREFIX or any(c not in "0123456789abcdef" for c in prefix):
            raise BadSelector(
                f"{selector!r} is neither an e-mail address nor a SHA-256 fingerprint "
                f"(hexadecimal, at least {_MIN_PREFIX} digits; see `phigate certs ls`)"
            )
        found = [s for fp, s in snapshot.certs.items() if fp.startswith(prefix)]
        if not found:
            raise NoSuchCertificate(
                f"no certificate with fingerprint {prefix}... in {self.certs_dir}"
            )
        if len(found) > 1:
            names = ", ".join(sorted(s.facts.fingerprint[:16] for s in found)[:5])
            raise BadSelector(
                f"fingerprint prefix {prefix} matches {len(found)} certificates ({names}); "
                "give more digits"
            )
        return found

    def _usable_chain(
        self, snapshot: _Snapshot, facts: CertificateFacts, now: datetime.datetime
    ) -> tuple[x509.Certificate, ...] | None:
        cert = facts.cert
        if facts.problems or not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return None
        result = self._chain(snapshot, facts, now)
        if result.error is not None or _chain_revocation(snapshot, result.chain):
            return None
        return result.chain

    def _chain(
        self, snapshot: _Snapshot, facts: CertificateFacts, now: datetime.datetime
    ) -> ChainResult:
        cached = snapshot.chain_cache.get(facts.fingerprint)
        if cached is None or not cached.holds_at(now):
            cached = snapshot.chains.build(facts.cert, now)
            snapshot.chain_cache[facts.fingerprint] = cached
        return cached

    def _entry(self, snapshot: _Snapshot, stored: _Stored, now: datetime.datetime) -> CertEntry:
        facts, cert = stored.facts, stored.facts.cert
        problems = list(facts.problems)
        chain: tuple[str, ...] = ()
        if not facts.is_ca:
            if now < cert.not_valid_before_utc:
                problems.append(f"not valid before {_utc(cert.not_valid_before_utc)}")
            elif now > cert.not_valid_after_utc:
                problems.append(f"expired on {_utc(cert.not_valid_after_utc)}")
            revoked = snapshot.revocations.reason(cert)
            if revoked:
                problems.append(revoked)
            # A chain is built at a time the certificate is valid, so that an
            # expired certificate still shows whether it was trusted.
            at = min(max(now, cert.not_valid_before_utc), cert.not_valid_after_utc)
            result = self._chain(snapshot, facts, at)
            if result.error:
                problems.append(result.error)
            else:
                chain = tuple(name_text(c.subject) for c in result.chain)
                revoked_in_chain = _chain_revocation(snapshot, result.chain)
                if revoked_in_chain:
                    problems.append(revoked_in_chain)
        return CertEntry(facts, tuple(stored.files), tuple(dict.fromkeys(problems)), chain)

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and snapshot.state == self._state() and not _due(snapshot):
            return snapshot
        return self._refresh(force=False)

    def _refresh(self, force: bool) -> _Snapshot:
        with self._lock:
            state = self._state()
            snapshot = self._snapshot
            if force or snapshot is None or snapshot.state != state or _due(snapshot):
                snapshot = self._scan(state)
                self._snapshot = snapshot
            return snapshot

    def _state(self) -> tuple[object, ...]:
        return (_stamp(self.certs_dir), self._trust_state())

    def _trust_state(self) -> object:
        return _stamp(self._trust_source) if self._trust_source else None

    def _trust_anchors(self, state: object) -> TrustAnchors:
        if self._anchors is None or self._anchors[0] != state:
            anchors = TrustAnchors.load(self._trust_source, self._trust_configured)
            self._anchors = (state, anchors)
        return self._anchors[1]

    def _read_directory(self) -> list[UnreadableFile]:
        """Bring `self._files` up to date, parsing only new or changed files."""
        files: dict[str, _ParsedFile] = {}
        problems: list[UnreadableFile] = []
        try:
            listing = sorted(os.scandir(self.certs_dir), key=lambda e: e.name)
        except FileNotFoundError:
            listing = []
        except OSError as exc:  # no certificates, which the policy's next mode handles
            listing = []
            problems.append(UnreadableFile(str(self.certs_dir), f"cannot list it: {exc.strerror}"))
        for item in listing:
            try:
                if item.name.startswith(".") or not item.is_file():
                    continue
                info = item.stat()
            except OSError:  # removed while we were listing
                continue
            stamp = (info.st_mtime_ns, info.st_size)
            cached = self._files.get(item.name)
            files[item.name] = (
                cached if cached and cached.stamp == stamp else _parse(Path(item.path), stamp)
            )
        self._files = files
        problems.extend(
            UnreadableFile(str(self.certs_dir / name), parsed.error)
            for name, parsed in files.items()
            if parsed.error
        )
        return problems

    def _scan(self, state: tuple[object, ...]) -> _Snapshot:
        unreadable = self._read_directory()
        files = self._files
        certs: dict[str, _Stored] = {}
        crl_files: dict[str, list[str]] = {}
        crl_objects: dict[str, x509.CertificateRevocationList] = {}
        for name, parsed in files.items():
            for facts in parsed.facts:
                certs.setdefault(facts.fingerprint, _Stored(facts, [])).files.append(name)
            for crl in parsed.crls:
                fp = crl_fingerprint(crl)
                crl_objects[fp] = crl
                crl_files.setdefault(fp, []).append(name)
        by_address: dict[str, list[_Stored]] = {}
        for stored in certs.values():
            for address in () if stored.facts.is_ca else stored.facts.addresses:
                by_address.setdefault(address, []).append(stored)
        anchors = self._trust_anchors(state[1])
        intermediates = [s.facts.cert for s in certs.values() if s.facts.is_ca]
        directory_stamp = state[0]
        racy = isinstance(directory_stamp, tuple) and (
            time.time() - directory_stamp[0] / 1e9 < _RACY_SECONDS
        )
        return _Snapshot(
            state=state,
            recheck_at=time.monotonic() + _RACY_SECONDS if racy else None,
            certs=certs,
            by_address={
                address: tuple(
                    sorted(found, key=lambda s: s.facts.cert.not_valid_after_utc, reverse=True)
                )
                for address, found in by_address.items()
            },
            crl_files=crl_files,
            revocations=Revocations(
                ((crl, tuple(crl_files[fp])) for fp, crl in crl_objects.items()),
                [*anchors.certificates, *intermediates],
            ),
            chains=ChainBuilder(anchors, intermediates),
            unreadable=tuple(unreadable),
        )

    def _split_out(self, name: str, doomed: set[str]) -> None:
        parsed = self._files.get(name)
        if parsed is None:
            return
        contents = FileContents(tuple(f.cert for f in parsed.facts), parsed.crls)
        kept = [(n, data) for fp, _, n, data in _named_objects(contents) if fp not in doomed]
        for keep_name, data in kept:
            if keep_name == name or not (self.certs_dir / keep_name).exists():
                _write_atomically(self.certs_dir / keep_name, data)
        if name not in {keep_name for keep_name, _ in kept}:
            try:
                (self.certs_dir / name).unlink(missing_ok=True)
            except OSError as exc:
                raise CertStoreError(
                    f"cannot remove {self.certs_dir / name}: {exc.strerror}"
                ) from None


def _due(snapshot: _Snapshot) -> bool:
    return snapshot.recheck_at is not None and time.monotonic() >= snapshot.recheck_at


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def _chain_revocation(snapshot: _Snapshot, chain: Sequence[x509.Certificate]) -> str | None:
    """Why a certificate of `chain` (the trust anchor excepted) is revoked, or None."""
    for cert in chain[:-1]:
        reason = snapshot.revocations.reason(cert)
        if reason:
            return reason
    return None


def _read_file(path: Path) -> FileContents:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CertStoreError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        data = path.read_bytes()
    except IsADirectoryError:
        raise CertStoreError("it is a directory") from None
    except OSError as exc:
        raise CertStoreError(f"cannot read it: {exc.strerror}") from None
    try:
        return read_objects(data)
    except NotCertificateError as exc:
        raise CertStoreError(str(exc)) from None


def _parse(path: Path, stamp: tuple[int, int]) -> _ParsedFile:
    try:
        contents = _read_file(path)
    except CertStoreError as exc:
        return _ParsedFile(stamp, (), (), str(exc))
    return _ParsedFile(stamp, tuple(examine(c) for c in contents.certificates), contents.crls, None)


def _named_objects(contents: FileContents) -> Iterable[tuple[str, str, str, bytes]]:
    """(fingerprint, kind, file name, PEM) of each object, as the store names its files."""
    for cert in contents.certificates:
        fp = fingerprint(cert)
        yield fp, "certificate", f"{fp}.pem", pem_bytes(cert)
    for crl in contents.crls:
        fp = crl_fingerprint(crl)
        yield fp, "crl", f"{fp}.crl", pem_bytes(crl)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as exc:
        raise CertStoreError(f"cannot write {path}: {exc.strerror}") from None
