"""Reading the archive back as an auditor would: its rows, its keyring, its object store."""

from __future__ import annotations

import contextlib
import hashlib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from harness import free_port
from moto.server import ThreadedMotoServer

from gateway.archive.records import ArchiveEntry, entries
from gateway.archive.storage import ArchiveStorage, archived_sealed
from gateway.store.database import Database
from gateway.store.keyring import Keyring

BUCKET = "phigate-archive"


@dataclass(frozen=True)
class Opened:
    entry: ArchiveEntry
    content: bytes  # what the archive's own keys open


def open_archived(db_url: str, keys_dir: Path, storage: ArchiveStorage) -> list[Opened]:
    """Every archived message, opened with the archive keyring alone (oldest first)."""
    keyring = Keyring(keys_dir)
    db = Database(db_url)
    try:
        with db.reading() as conn:
            queue_ids = [
                row[0]
                for row in conn.exec_driver_sql(
                    "SELECT queue_id FROM archived_messages ORDER BY received_at"
                )
            ]
            opened = []
            for entry in entries(conn, queue_ids):
                sealed = archived_sealed(conn, storage, entry.queue_id)
                assert sealed is not None, entry.queue_id
                content = keyring.open(sealed, entry.queue_id.encode())
                assert hashlib.sha256(content).hexdigest() == entry.sha256
                assert len(content) == entry.size
                opened.append(Opened(entry, content))
    finally:
        db.close()
    return opened


@dataclass
class S3Server:
    """A real S3-compatible server (moto's) on loopback, with one bucket."""

    endpoint: str
    credentials_file: Path

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="archive-test",
            aws_secret_access_key="archive-test-secret",
        )

    def settings(self, bucket: str = BUCKET) -> dict[str, Any]:
        return {
            "kind": "s3",
            "endpoint_url": self.endpoint,
            "bucket": bucket,
            "credentials_file": str(self.credentials_file),
            "timeout_seconds": 5,
        }


@contextlib.contextmanager
def s3_server(directory: Path) -> Iterator[S3Server]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # moto keeps its buckets in the process, across servers: start from none.
    urllib.request.urlopen(
        urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST"),
        timeout=10,
    ).close()
    try:
        credentials = directory / "s3-credentials"
        credentials.write_text(
            "[default]\naws_access_key_id = archive-test\n"
            "aws_secret_access_key = archive-test-secret\n"
        )
        credentials.chmod(0o600)
        s3 = S3Server(f"http://127.0.0.1:{port}", credentials)
        s3.client().create_bucket(Bucket=BUCKET)
        yield s3
    finally:
        server.stop()
