"""docs/policy.md stays true: every YAML example loads, every condition is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.policy.engine import CompiledPolicy
from gateway.policy.loader import PolicyError, load_policy_texts
from gateway.policy.model import Conditions, PortalBlock

DOC = Path(__file__).resolve().parent.parent / "docs" / "policy.md"
# A fenced block opened by ```yaml at the start of a line, up to the closing fence.
_YAML_BLOCK = re.compile(r"^```yaml[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def yaml_blocks(text: str) -> list[tuple[int, str]]:
    """(line of the opening fence, block text) for every ```yaml block."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _YAML_BLOCK.finditer(text)]


def doc_blocks() -> list[tuple[int, str]]:
    return yaml_blocks(DOC.read_text(encoding="utf-8"))


def test_extraction_finds_blocks_and_only_yaml_ones() -> None:
    sample = (
        "x\n```yaml\nversion: 1\n```\n```text\nno: yaml\n```\n```yaml\nversion: 1\nrules: []\n```\n"
    )
    assert yaml_blocks(sample) == [(2, "version: 1\n"), (8, "version: 1\nrules: []\n")]
    # The real document has many examples; an extraction bug must not make this vacuous.
    assert len(doc_blocks()) >= 30


@pytest.mark.parametrize(
    ("line", "block"), [pytest.param(*b, id=f"line-{b[0]}") for b in doc_blocks()]
)
def test_every_yaml_example_is_a_valid_policy_file(line: int, block: str) -> None:
    assert block.startswith("version: 1\n"), f"docs/policy.md:{line}: start with version: 1"
    try:
        policy = load_policy_texts([(f"docs/policy.md:{line}", block)])
    except PolicyError as exc:
        pytest.fail(f"the example at docs/policy.md:{line} does not load:\n{exc}")
    assert isinstance(policy, CompiledPolicy)


def _written_name(field: str) -> str:
    alias = Conditions.model_fields[field].alias
    return alias or field


def test_every_condition_is_documented_in_an_example() -> None:
    examples = "\n".join(block for _, block in doc_blocks())
    missing = [
        _written_name(field)
        for field in Conditions.model_fields
        if not re.search(rf"^\s*(- )?{re.escape(_written_name(field))}:", examples, re.MULTILINE)
    ]
    assert missing == [], f"conditions without a YAML example in docs/policy.md: {missing}"


def test_condition_check_sees_the_alias() -> None:
    # `not_` is written `not:` in a policy; the check above must look for that spelling.
    assert _written_name("not_") == "not"
    assert _written_name("phi") == "phi"


def test_every_portal_key_is_documented_in_an_example() -> None:
    examples = "\n".join(block for _, block in doc_blocks())
    missing = [
        key
        for key in PortalBlock.model_fields
        if not re.search(rf"^\s+{key}:", examples, re.MULTILINE)
    ]
    assert missing == [], f"portal keys without a YAML example in docs/policy.md: {missing}"
