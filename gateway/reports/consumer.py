"""The personal mailbox domain list: the shipped file, or an admin's, plus additions."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from gateway.config import ConsumerDomainsConfig
from gateway.mail.addresses import AddressError, normalise_domain

SHIPPED = "consumer_domains.txt"


class DomainListError(ValueError):
    """A domain list that cannot be read; the message names the file and line."""


def parse(text: str, where: str) -> frozenset[str]:
    """Domains one a line; blank lines and # comments are skipped."""
    domains = set()
    for number, line in enumerate(text.splitlines(), 1):
        word = line.partition("#")[0].strip()
        if not word:
            continue
        try:
            domains.add(normalise_domain(word))
        except AddressError as exc:
            raise DomainListError(f"{where}, line {number}: {word!r}: {exc}") from None
    return frozenset(domains)


def load(config: ConsumerDomainsConfig, data_dir: Path) -> frozenset[str]:
    """The list in force: `config.file` (relative: under data_dir) or the shipped one,
    with `config.add`."""
    if config.file is None:
        shipped = resources.files("gateway.reports") / "data" / SHIPPED
        listed = parse(shipped.read_text(encoding="utf-8"), f"the shipped {SHIPPED}")
    else:
        path = Path(config.file)
        path = path if path.is_absolute() else data_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            raise DomainListError(
                f"reports.consumer_domains.file {path} cannot be read ({exc}); "
                "fix the path or remove the setting to use the shipped list"
            ) from None
        listed = parse(text, str(path))
    return listed | frozenset(config.add)
