"""Where archived ciphertext is kept: in its row, or as an object in S3-compatible storage.

Only ciphertext ever leaves the database: the data key that opens it stays,
wrapped under the archive's master key, in the row. An object whose row was
never committed (the put succeeded, the transaction did not) therefore opens
for nobody; such orphans are harmless and may be swept at leisure.

Deleting is for retention: crypto-shred first (the row's wrapped key and
content, in a committed transaction), then delete the object; a delete that
fails then leaves only an unreadable object behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, select

from gateway.config import ArchiveStorageConfig, Settings
from gateway.store.keyring import Sealed
from gateway.store.schema import archived_messages

from .records import DATABASE, sealed_content

S3 = "s3"


class ArchiveStorageError(Exception):
    """The object store is unusable as configured (said with the fix)."""


class ArchiveStorage(Protocol):
    """Archived ciphertext by queue id: put before its row is written, get, delete."""

    kind: str  # archived_messages.storage
    # True: put does I/O of its own (run it off the event loop, before the transaction).
    external: bool

    def put(self, queue_id: str, ciphertext: bytes) -> str | None:
        """Keep the ciphertext durably; its object key for the row (None: the row keeps it)."""
        ...

    def get(self, conn: Connection, queue_id: str) -> bytes | None:
        """The ciphertext; None once deleted or never archived."""
        ...

    def delete(self, object_key: str) -> None:
        """Delete a ciphertext kept outside the database (retention, once the row's
        wrapped key is gone); the row and its metadata stay."""
        ...


class DatabaseStorage:
    """The ciphertext in archived_messages.content, written with the row."""

    kind = DATABASE
    external = False

    def put(self, queue_id: str, ciphertext: bytes) -> None:
        return None  # records.record writes it in the row, in the accept's transaction

    def get(self, conn: Connection, queue_id: str) -> bytes | None:
        return conn.execute(
            select(archived_messages.c.content).where(archived_messages.c.queue_id == queue_id)
        ).scalar()

    def delete(self, object_key: str) -> None:
        raise ArchiveStorageError(
            f"object {object_key} is kept in an object store, but archive.storage is "
            "database: set archive.storage as it was when the message was archived"
        )


class S3Storage:
    """One object per message, named prefix + queue id, in an S3-compatible bucket."""

    kind = S3
    external = True

    def __init__(self, config: ArchiveStorageConfig, credentials_file: Path | None) -> None:
        import boto3  # only here: start-up and `phigate --help` never load it
        import botocore.config
        import botocore.session

        assert config.bucket is not None  # the settings refuse kind s3 without one
        self.bucket = config.bucket
        self.prefix = config.prefix
        session = botocore.session.Session()
        if credentials_file is not None:
            _check_credentials_file(credentials_file)
            session.set_config_variable("credentials_file", str(credentials_file))
        self.client: Any = boto3.Session(botocore_session=session).client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            config=botocore.config.Config(
                connect_timeout=config.timeout_seconds,
                read_timeout=config.timeout_seconds,
                retries={"mode": "standard", "max_attempts": 2},
            ),
        )

    def object_key(self, queue_id: str) -> str:
        return self.prefix + queue_id

    def put(self, queue_id: str, ciphertext: bytes) -> str:
        key = self.object_key(queue_id)
        try:
            # S3 answers a PUT only once the object is stored durably.
            self.client.put_object(Bucket=self.bucket, Key=key, Body=ciphertext)
        except Exception as exc:
            raise ArchiveStorageError(
                f"S3 put to bucket {self.bucket} failed: {_error_code(exc)}"
            ) from exc
        return key

    def get(self, conn: Connection, queue_id: str) -> bytes | None:
        key = self._key_of(conn, queue_id)
        if key is None:
            return None
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise ArchiveStorageError(
                f"S3 get from bucket {self.bucket} failed: {_error_code(exc)}"
            ) from exc
        return body

    def delete(self, object_key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=object_key)
        except Exception as exc:
            raise ArchiveStorageError(
                f"S3 delete in bucket {self.bucket} failed: {_error_code(exc)}"
            ) from exc

    def _key_of(self, conn: Connection, queue_id: str) -> str | None:
        return conn.execute(
            select(archived_messages.c.object_key).where(archived_messages.c.queue_id == queue_id)
        ).scalar()


def _error_code(exc: Exception) -> str:
    """The service's error code (NoSuchBucket, AccessDenied ...), else the exception's kind."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code or type(exc).__name__)


def _check_credentials_file(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ArchiveStorageError(
            f"archive.storage.credentials_file {path} cannot be read ({exc.strerror}): "
            "create it ([default] aws_access_key_id = ..., aws_secret_access_key = ...) "
            "or set credentials_file: null to use the environment's credentials"
        ) from None
    if mode & 0o077:
        raise ArchiveStorageError(
            f"archive.storage.credentials_file {path} is readable by group or others: "
            f"run `chmod 600 {path}`"
        )


def storage_for(config: ArchiveStorageConfig, credentials_file: Path | None) -> ArchiveStorage:
    """The storage `archive.storage` names; `credentials_file` already resolved."""
    if config.kind == S3:
        return S3Storage(config, credentials_file)
    return DatabaseStorage()


def configured_storage(settings: Settings) -> ArchiveStorage:
    """The storage phigate.yaml's `archive.storage` names, its paths under data_dir."""
    credentials = settings.archive.storage.credentials_file
    return storage_for(
        settings.archive.storage, settings.path(credentials) if credentials else None
    )


def archived_sealed(conn: Connection, storage: ArchiveStorage, queue_id: str) -> Sealed | None:
    """The archived copy with its ciphertext, wherever it is kept; None once destroyed."""
    found = sealed_content(conn, queue_id)
    if found is None:
        return None
    sealed, object_key = found
    if object_key is None:
        return sealed
    ciphertext = storage.get(conn, queue_id)
    if ciphertext is None:
        return None
    return Sealed(sealed.key_id, sealed.wrapped_key, ciphertext)
