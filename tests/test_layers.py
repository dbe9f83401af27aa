"""The house keeps its shape: no module of `gateway/` imports from a later stage.

Every import is read (module level and inside functions, since a lazy import is
still a dependency) and checked against the layering written below as data.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"

# Lowest first. A component may import itself and any component of a lower
# layer; components of one layer are independent of each other.
LAYERS: list[list[str]] = [
    # Vocabulary every stage shares: it imports no stage.
    [
        "gateway.mail",
        "gateway.logs",
        "gateway.strict_yaml",
        "gateway.runstate",
        "gateway.metrics",
        "gateway.clients",
        "gateway.malloc",
        "gateway.siblings",
    ],
    # Background passes (above logs); large messages' turns (above malloc).
    ["gateway.periodic", "gateway.turns"],
    ["gateway.yaml_models"],
    # Settings: no feature package, no stage.
    ["gateway.config"],
    ["gateway.settings_loader"],
    ["gateway.store"],
    ["gateway.audit"],
    # The parts the stages are built from.
    # ... and the sending limits the listener, intake and an API count against.
    ["gateway.inspect", "gateway.consent", "gateway.dkim", "gateway.smime", "gateway.ratelimit"],
    ["gateway.policy"],
    # Bounces and DSNs: a stage that intake and delivery both hand mail to;
    # portal custody, notices and pages' content: what delivery and web share;
    # compliance reports read from the trail, for the CLI, the server and pages;
    # the archive, which intake writes and the CLI and the server read and destroy;
    # delivery-status webhooks, fed from the trail, for the server and the CLI;
    # message templates, rendered for the send API and tested by the CLI.
    [
        "gateway.bounce",
        "gateway.portal",
        "gateway.reports",
        "gateway.archive",
        "gateway.webhooks",
        "gateway.message_templates",
    ],
    # The message path: listener -> intake -> store <- delivery; the web app beside.
    ["gateway.intake", "gateway.delivery", "gateway.web"],
    ["gateway.smtp"],
    ["gateway.datadir", "gateway.supervisor"],
    # The composition root and the command line may import anything.
    ["gateway.app"],
    ["gateway.cli"],
]

# What the order above allows but the stages must still not do.
FORBIDDEN: set[tuple[str, str]] = {
    ("gateway.smtp", "gateway.delivery"),  # the listener hands mail to intake only
    ("gateway.smtp", "gateway.web"),
}

LAYER_OF: dict[str, int] = {c: i for i, layer in enumerate(LAYERS) for c in layer}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(GATEWAY.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    path = GATEWAY.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    """(gateway module imported, line) for every import in the file, at any depth."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                # `from gateway.smtp import tls` imports the module gateway.smtp.tls
                submodule = f"{base}.{alias.name}"
                yield (submodule if is_module(submodule) else base), node.lineno


def component(module: str) -> str | None:
    """The component of LAYERS a module belongs to (None: the bare `gateway` package)."""
    while module not in LAYER_OF:
        if "." not in module:
            return None
        module = module.rpartition(".")[0]
    return module


def edges() -> Iterator[tuple[str, str, str]]:
    """(importing module, imported module, where) for every import between gateway modules."""
    for path in sorted(GATEWAY.rglob("*.py")):
        for imported, line in imported_modules(path):
            if imported == "gateway" or imported.startswith("gateway."):
                yield module_name(path), imported, f"{path.relative_to(GATEWAY.parent)}:{line}"


def forbidden(importer: str, imported: str) -> str | None:
    """Why this import breaks the layering, or None when it is allowed."""
    source, target = component(importer), component(imported)
    if source is None:
        return f"{importer} belongs to no layer: add it to LAYERS in tests/test_layers.py"
    if target is None or source == target:
        return None
    if (source, target) in FORBIDDEN:
        return f"{source} may not import {target}"
    if LAYER_OF[target] >= LAYER_OF[source]:
        return f"{source} (layer {LAYER_OF[source]}) imports {target} (layer {LAYER_OF[target]})"
    return None


def test_every_gateway_module_belongs_to_a_layer() -> None:
    unplaced = {
        module_name(path)
        for path in GATEWAY.rglob("*.py")
        if module_name(path) != "gateway" and component(module_name(path)) is None
    }
    assert not unplaced, f"add these to LAYERS in tests/test_layers.py: {sorted(unplaced)}"


def test_no_module_imports_from_a_later_stage() -> None:
    broken = sorted(
        {
            f"{where}: {reason}"
            for importer, imported, where in edges()
            if (reason := forbidden(importer, imported)) is not None
        }
    )
    assert not broken, "imports against the layering:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("gateway.mail.addresses", "gateway.smtp.listener"),
        ("gateway.config", "gateway.dkim.keys"),
        ("gateway.store.queue", "gateway.intake"),
        ("gateway.intake", "gateway.delivery.worker"),
        ("gateway.intake", "gateway.smtp.listener"),
        ("gateway.delivery.worker", "gateway.intake"),
        ("gateway.smtp.listener", "gateway.delivery.worker"),
        ("gateway.policy.cases", "gateway.intake"),
        ("gateway.dkim.keys", "gateway.smime.envelope"),
        ("gateway.datadir", "gateway.app"),
    ],
)
def test_the_check_refuses_an_upward_import(importer: str, imported: str) -> None:
    assert forbidden(importer, imported) is not None


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("gateway.smtp.listener", "gateway.intake"),
        ("gateway.intake", "gateway.store.queue"),
        ("gateway.delivery.worker", "gateway.store.queue"),
        ("gateway.dkim.keys", "gateway.mail.addresses"),
        ("gateway.cli.serve", "gateway.app"),
    ],
)
def test_the_check_allows_a_downward_import(importer: str, imported: str) -> None:
    assert forbidden(importer, imported) is None


# Loaded only by `phigate serve` (and the server's own commands), never by the others.
SERVER_MODULES = ("aiosmtpd", "fastapi", "starlette", "uvicorn", "sqlalchemy", "gateway.app")


def test_dkim_ls_help_loads_neither_the_smtp_server_nor_the_web_app() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gateway.cli", "dkim", "ls", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    loaded = {
        line.rpartition("|")[2].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    # The measurement saw the command's own imports (the noun module itself is loaded
    # through importlib, which -X importtime does not report).
    assert "gateway.dkim.keys" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in SERVER_MODULES or m in SERVER_MODULES)
    assert not heavy, heavy
