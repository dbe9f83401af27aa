"""Envelope addresses (gateway.mail.addresses.normalise): what MAIL and RCPT accept."""

from __future__ import annotations

import pytest

from gateway.mail.addresses import AddressError, normalise


@pytest.mark.parametrize("code", [*range(0x21), 0x7F])
def test_spaces_and_control_characters_are_refused(code: int) -> None:
    with pytest.raises(AddressError, match="spaces or control characters"):
        normalise(f"jane{chr(code)}doe@clinic.example.org")


def test_the_domain_is_lowered_and_the_local_part_kept() -> None:
    assert normalise("Jane.Doe@Clinic.Example.ORG") == "Jane.Doe@clinic.example.org"
