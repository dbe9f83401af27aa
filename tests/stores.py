"""A data dir and store as `phigate` opens them, for tests that run CLI commands
against a real store (SQLite, or PostgreSQL when PHIGATE_TEST_POSTGRES names one)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from gateway import datadir
from gateway.config import Settings
from gateway.settings_loader import load_settings
from gateway.store.database import Database


@contextmanager
def cli_store(tmp_path: Path, database_url: str) -> Iterator[tuple[Path, Settings, Database]]:
    """The config file the CLI reads, its settings, and the store it opens."""
    config = tmp_path / "phigate.yaml"
    config.write_text(
        yaml.safe_dump({"data_dir": str(tmp_path / "data"), "database_url": database_url})
    )
    settings = load_settings(config)
    datadir.prepare_data_dir(settings, generate_cert=False)
    db = datadir.open_database(settings)
    try:
        yield config, settings, db
    finally:
        db.close()
