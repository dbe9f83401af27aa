"""DKIM signing keys on disk, one directory per signing domain.

    KEYS_DIR/<domain>/<selector>.pem    PKCS#8 PEM private key, mode 0600
    KEYS_DIR/<domain>/active.json       {"rsa-sha256": "2026a", "ed25519-sha256": "2026e"}

The key type gives the algorithm (RSA: rsa-sha256, Ed25519: ed25519-sha256).
Per domain and algorithm one key is active, the one that signs. Domains are
kept lower-cased in their ASCII (A-label) form, selectors lower-cased.

The signer asks `KeyStore.active_keys` for every message: while nothing
changed that costs a `stat` of the state file and of each active key, and a
domain is reloaded as soon as one of them changes, so `phigate dkim` works on
a running server.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from gateway.mail.addresses import AddressError, signing_domain

RSA_SHA256 = "rsa-sha256"
ED25519_SHA256 = "ed25519-sha256"
# What `--algorithm` accepts, and the a= value each one signs with.
ALGORITHMS = {"rsa": RSA_SHA256, "ed25519": ED25519_SHA256}
# RFC 8301: at least 1024, and 2048 is what receivers expect today; beyond
# 4096 the record no longer fits comfortably in DNS and signing gets slow.
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096

STATE_FILE = "active.json"
_KEY_SUFFIX = ".pem"
_SELECTOR_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_TXT_STRING_MAX = 255  # bytes in one character-string of a TXT record

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class DkimError(Exception):
    """Why a key cannot be made or used, or a message cannot be signed, phrased for a person.

    Never holds message content: only domains, selectors, paths and line numbers.
    """


class KeyRequestError(DkimError):
    """What was asked cannot be done: a bad name or size, a taken or unknown selector."""


def normalise_domain(value: str) -> str:
    """The signing domain as stored and signed (d=): lower case, IDNA A-labels."""
    try:
        return signing_domain(value)
    except AddressError as exc:
        raise KeyRequestError(str(exc)) from None


def normalise_selector(value: str) -> str:
    """A selector is one or more DNS labels (letters, digits, '-', '_'), like 2026a or s1._rsa."""
    selector = value.strip().lower()
    labels = selector.split(".")
    if len(selector) > 63 or not all(_SELECTOR_LABEL.fullmatch(label) for label in labels):
        raise KeyRequestError(
            f"{value!r} is not a valid selector: use DNS labels of letters, digits, '-' and "
            "'_' separated by dots, at most 63 characters (for example 2026a or s1._rsa)"
        )
    return selector


def _is_selector(value: object) -> bool:
    return isinstance(value, str) and all(_SELECTOR_LABEL.fullmatch(p) for p in value.split("."))


@dataclass(frozen=True)
class DnsRecord:
    """The TXT record that publishes a key's public half."""

    name: str  # fully qualified, with the trailing dot
    value: str  # v=DKIM1; k=...; p=...

    @property
    def strings(self) -> list[str]:
        """The value cut into the at most 255-byte strings one TXT record holds."""
        return [
            self.value[i : i + _TXT_STRING_MAX] for i in range(0, len(self.value), _TXT_STRING_MAX)
        ]

    @property
    def zone_line(self) -> str:
        quoted = " ".join(f'"{part}"' for part in self.strings)
        return f"{self.name} IN TXT {quoted}"


@dataclass(frozen=True)
class KeyInfo:
    """One key of the store, as `phigate dkim ls` shows it."""

    domain: str
    selector: str
    algorithm: str
    bits: int
    active: bool
    created_at: float
    path: Path

    def as_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "selector": self.selector,
            "algorithm": self.algorithm,
            "bits": self.bits,
            "active": self.active,
            "created_at": self.created_at,
            "path": str(self.path),
            "dns_name": dns_name(self.domain, self.selector),
        }


@dataclass(frozen=True)
class ActiveKey:
    """A key that signs: what the signer needs and nothing else."""

    selector: str
    algorithm: str
    private_key: PrivateKey


def dns_name(domain: str, selector: str) -> str:
    return f"{selector}._domainkey.{domain}."


def algorithm_of(key: PrivateKey) -> str:
    return RSA_SHA256 if isinstance(key, rsa.RSAPrivateKey) else ED25519_SHA256


def public_key_record(key: PrivateKey) -> str:
    """The TXT value for a key: RFC 6376 3.6.1 for RSA, RFC 8463 for Ed25519."""
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"


def _key_bits(key: PrivateKey) -> int:
    return key.key_size if isinstance(key, rsa.RSAPrivateKey) else 256


def load_private_key(path: Path) -> PrivateKey:
    """Read a PEM private key file, refusing key types and sizes DKIM must not use."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DkimError(f"DKIM key {path} does not exist") from None
    except OSError as exc:
        raise DkimError(
            f"cannot read DKIM key {path}: {exc.strerror} (keys are mode 0600: run "
            "`phigate dkim` as the user the server runs as)"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise DkimError(f"{path} is not an unencrypted PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise DkimError(
                f"{path} is a {key.key_size}-bit RSA key; DKIM needs at least {MIN_RSA_BITS}"
            )
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise DkimError(f"{path} is neither an RSA nor an Ed25519 key")


def _new_key(algorithm: str, bits: int) -> PrivateKey:
    if algorithm == RSA_SHA256:
        if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
            raise KeyRequestError(
                f"RSA keys need {MIN_RSA_BITS} to {MAX_RSA_BITS} bits (asked for {bits}): "
                f"receivers treat shorter keys as unsigned (RFC 8301); {MIN_RSA_BITS} is usual"
            )
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return ed25519.Ed25519PrivateKey.generate()


def _write_private(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only; never replaces an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What a file looks like: a rewrite through rename changes the inode, even within
    one mtime tick; None when it does not exist."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DkimError(f"cannot read {path}: {exc.strerror}") from None
    return (found.st_ino, found.st_mtime_ns, found.st_size)


@dataclass(frozen=True)
class _Loaded:
    """A domain's active keys and the state and key files they were read from."""

    files: tuple[tuple[Path, tuple[int, int, int] | None], ...]
    keys: tuple[ActiveKey, ...]


class KeyStore:
    """The DKIM keys under one directory; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._cache: dict[str, _Loaded] = {}

    # -- for the signer ------------------------------------------------------

    def active_keys(self, domain: str) -> tuple[ActiveKey, ...]:
        """The keys that sign for a normalised domain, reloaded when their files changed."""
        directory = self.root / domain
        cached = self._cache.get(domain)
        if cached is not None and all(_file_stamp(path) == stamp for path, stamp in cached.files):
            return cached.keys
        with self._lock:
            # Stamps before reading: a change in between only causes another reload.
            state_path = directory / STATE_FILE
            state_stamp = _file_stamp(state_path)
            if state_stamp is None:
                entry = _Loaded(((state_path, None),), ())
            else:
                selectors = sorted(self._read_state(directory).items())
                paths = [directory / f"{selector}{_KEY_SUFFIX}" for _, selector in selectors]
                stamps = [(path, _file_stamp(path)) for path in paths]
                keys = tuple(
                    self._load_active(directory, algorithm, selector)
                    for algorithm, selector in selectors
                )
                entry = _Loaded(((state_path, state_stamp), *stamps), keys)
            self._cache[domain] = entry
            return entry.keys

    @staticmethod
    def _load_active(directory: Path, algorithm: str, selector: str) -> ActiveKey:
        key = load_private_key(directory / f"{selector}{_KEY_SUFFIX}")
        if algorithm_of(key) != algorithm:
            raise DkimError(
                f"{directory / STATE_FILE} names {selector} as the {algorithm} key, "
                f"but {selector}{_KEY_SUFFIX} is an {algorithm_of(key)} key"
            )
        return ActiveKey(selector, algorithm, key)

    # -- for the command line ------------------------------------------------

    def generate(self, domain: str, selector: str, algorithm: str, bits: int) -> KeyInfo:
        """Create a key; the first one of its algorithm for the domain becomes active."""
        domain, selector = normalise_domain(domain), normalise_selector(selector)
        if algorithm not in ALGORITHMS.values():
            raise DkimError(f"unknown algorithm {algorithm!r}")
        _private_dir(self.root)
        directory = self.root / domain
        _private_dir(directory)
        with self._locked(directory):
            path = directory / f"{selector}{_KEY_SUFFIX}"
            if path.exists():
                raise KeyRequestError(
                    f"{domain} already has a key with selector {selector} ({path}); a selector "
                    "names one key for good: choose a new one (for example the year and a letter)"
                )
            key = _new_key(algorithm, bits)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write_private(path, pem)
            state = self._read_state(directory)
            if algorithm not in state:
                state[algorithm] = selector
                self._write_state(directory, state)
        return self.key(domain, selector)

    def listing(self, domain: str | None = None) -> list[KeyInfo]:
        """Every key, or one domain's, sorted by domain, algorithm and selector."""
        if domain is not None:
            domains = [normalise_domain(domain)]
        elif self.root.is_dir():
            domains = sorted(entry.name for entry in self.root.iterdir() if entry.is_dir())
        else:
            domains = []
        found = []
        for name in domains:
            directory = self.root / name
            if not directory.is_dir():
                continue
            active = set(self._read_state(directory).items())
            for path in sorted(directory.glob(f"*{_KEY_SUFFIX}")):
                found.append(self._info(name, path, active))
        return sorted(found, key=lambda k: (k.domain, k.algorithm, k.selector))

    def key(self, domain: str, selector: str) -> KeyInfo:
        domain, selector = normalise_domain(domain), normalise_selector(selector)
        directory = self.root / domain
        path = directory / f"{selector}{_KEY_SUFFIX}"
        if not path.is_file():
            raise KeyRequestError(
                f"{domain} has no key with selector {selector} (see `phigate dkim ls`)"
            )
        return self._info(domain, path, set(self._read_state(directory).items()))

    def activate(self, domain: str, selector: str) -> KeyInfo:
        """Make a key the one that signs for its domain and algorithm."""
        info = self.key(domain, selector)
        directory = self.root / info.domain
        with self._locked(directory):
            state = self._read_state(directory)
            state[info.algorithm] = info.selector
            self._write_state(directory, state)
        return self.key(info.domain, info.selector)

    def remove(self, domain: str, selector: str, force: bool = False) -> KeyInfo:
        """Delete a key; the active one only with force (its domain then stops signing with it)."""
        info = self.key(domain, selector)
        directory = self.root / info.domain
        with self._locked(directory):
            state = self._read_state(directory)
            if state.get(info.algorithm) == info.selector:
                if not force:
                    raise KeyRequestError(
                        f"{info.selector} is the active {info.algorithm} key of {info.domain}: "
                        f"activate another selector first (`phigate dkim activate {info.domain} "
                        f"SELECTOR`), or pass --force to stop signing {info.domain} mail "
                        f"with {info.algorithm}"
                    )
                del state[info.algorithm]
                self._write_state(directory, state)
            # State first: the signer never sees an active key whose file is gone.
            info.path.unlink()
        return info

    def dns_record(self, domain: str, selector: str) -> DnsRecord:
        info = self.key(domain, selector)
        key = load_private_key(info.path)
        return DnsRecord(dns_name(info.domain, info.selector), public_key_record(key))

    # -- files ---------------------------------------------------------------

    def _info(self, domain: str, path: Path, active: set[tuple[str, str]]) -> KeyInfo:
        key = load_private_key(path)
        algorithm = algorithm_of(key)
        selector = path.name[: -len(_KEY_SUFFIX)]
        return KeyInfo(
            domain=domain,
            selector=selector,
            algorithm=algorithm,
            bits=_key_bits(key),
            active=(algorithm, selector) in active,
            created_at=path.stat().st_mtime,
            path=path,
        )

    @staticmethod
    def _read_state(directory: Path) -> dict[str, str]:
        path = directory / STATE_FILE
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise DkimError(f"cannot read {path}: {exc.strerror}") from None
        try:
            state = json.loads(raw)
        except ValueError:
            state = None
        valid = isinstance(state, dict) and all(
            algorithm in ALGORITHMS.values() and _is_selector(selector)
            for algorithm, selector in state.items()
        )
        if not valid:
            raise DkimError(
                f"{path} is damaged: it should map algorithms to selectors, like "
                '{"rsa-sha256": "2026a"}; fix it or activate the keys again'
            )
        assert isinstance(state, dict)
        return {str(k): str(v) for k, v in state.items()}

    @staticmethod
    def _write_state(directory: Path, state: dict[str, str]) -> None:
        final = directory / STATE_FILE
        temporary = directory / f".{STATE_FILE}.{os.getpid()}.tmp"
        temporary.unlink(missing_ok=True)
        _write_private(temporary, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())
        os.replace(temporary, final)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    @contextmanager
    def _locked(directory: Path) -> Iterator[None]:
        """Serialise changes to one domain between concurrent `phigate dkim` runs."""
        fd = os.open(directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
