"""A data dir and store as `phigate` opens them, for tests that run CLI commands
against a real store (SQLite, or PostgreSQL in the run on PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from gateway import app, datadir
from gateway.cli import main
from gateway.config import Settings
from gateway.intake import Submission
from gateway.settings_loader import load_settings
from gateway.store.database import Database
from gateway.store.keyring import Keyring


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


def accept(parts: app.Parts, submission: Submission) -> str:
    """One submission through the built parts' intake, as the listener hands it over;
    the reply."""

    async def go() -> str:
        parts.db.start()
        try:
            return str(await parts.intake.accept(submission))
        finally:
            parts.db.stop()

    return asyncio.run(go())


@dataclass
class CliStore:
    """A store and its keyring, and the config file commands are run against."""

    config: Path
    db: Database
    keyring: Keyring

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, [*args, "-c", str(self.config)])

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)
