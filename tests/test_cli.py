"""The command line as an admin uses it: init, config check, serve refusing bad config."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from harness import PHIGATE, free_port


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PHIGATE, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_init_writes_a_config_that_checks_clean(tmp_path: Path) -> None:
    target = tmp_path / "etc"
    result = run("init", str(target))
    assert result.returncode == 0, result.stderr
    config = target / "phigate.yaml"
    check = run("config", "check", "-c", str(config))
    assert check.returncode == 0, check.stderr
    assert "OK" in check.stdout
    keys = list((target / "keys").glob("*.key"))
    assert sorted(k.name.startswith("mk-") for k in keys) == [False, True]  # and audit.key
    assert all(k.stat().st_mode & 0o777 == 0o600 for k in keys)
    assert (target / "tls" / "server.crt").exists()
    for private in (target / "phigate.db", target / "tls" / "server.key", target / "keys"):
        assert private.stat().st_mode & 0o077 == 0, private  # nothing for other users
    again = run("init", str(target))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_serve_with_a_bad_config_exits_2_naming_the_line_and_starts_nothing(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "phigate.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        "listeners:\n"
        f"  - address: 127.0.0.1:{port}\n"
        "delievery:\n"
        "  mode: sandbox\n"
    )
    result = run("serve", "-c", str(config))
    assert result.returncode == 2
    assert "phigate.yaml:4" in result.stderr
    assert 'did you mean "delivery"' in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was created or started


def test_config_check_reports_wrong_type_with_line(tmp_path: Path) -> None:
    config = tmp_path / "phigate.yaml"
    config.write_text("delivery:\n  workers: eight\n")
    result = run("config", "check", "-c", str(config))
    assert result.returncode == 2
    assert "phigate.yaml:2" in result.stderr and "delivery.workers" in result.stderr


def test_principal_lifecycle_and_json(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "phigate.yaml"
    assert run("init", str(config.parent)).returncode == 0
    added = run(
        "principal", "add", "ehr1", "--domain", "Clinic.Example.org", "--json", "-c", str(config)
    )
    assert added.returncode == 0, added.stderr
    creds = json.loads(added.stdout)
    assert creds["name"] == "ehr1" and len(creds["secret"]) >= 24
    dup = run("principal", "add", "ehr1", "--domain", "x.example.org", "-c", str(config))
    assert dup.returncode == 2 and "already exists" in dup.stderr
    bad = run("principal", "add", "ehr2", "--domain", "not a domain", "-c", str(config))
    assert bad.returncode == 2 and "not a domain name" in bad.stderr
    assert run("principal", "disable", "ehr1", "-c", str(config)).returncode == 0
    listed = json.loads(run("principal", "ls", "--json", "-c", str(config)).stdout)
    assert listed == [
        {
            "name": "ehr1",
            "domains": ["clinic.example.org"],
            "from_domains": [],
            "enabled": False,
            "created_at": listed[0]["created_at"],
        }
    ]
    db_bytes = (config.parent / "phigate.db").read_bytes()
    assert creds["secret"].encode() not in db_bytes  # only the argon2 hash is stored


def test_commands_without_data_dir_explain_what_to_do(tmp_path: Path) -> None:
    env_cwd = tmp_path
    result = run("queue", "ls", cwd=env_cwd)
    assert result.returncode == 2
    assert "phigate serve" in result.stderr and "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []
