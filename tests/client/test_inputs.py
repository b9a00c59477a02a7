"""Local checks of consent inputs: addresses must match their EIP-55 checksum."""

from __future__ import annotations

import pytest

from imaging_consent.consent.inputs import parse_address
from imaging_consent.errors import InvalidAddressError

GOOD = "0x66aB6D9362d4F35596279692F0251Db635165871"


def test_parse_address_accepts_checksummed_and_single_case() -> None:
    assert parse_address(GOOD, "grantee") == GOOD
    assert parse_address(GOOD.lower(), "grantee") == GOOD
    assert parse_address("0x" + GOOD[2:].upper(), "grantee") == GOOD


@pytest.mark.parametrize(
    "typo",
    [
        GOOD[:-1] + "2",  # one digit changed: the checksum no longer matches
        GOOD.replace("aB", "ab", 1),  # one letter's case changed
    ],
)
def test_parse_address_refuses_a_mistyped_mixed_case_address(typo: str) -> None:
    with pytest.raises(InvalidAddressError, match="EIP-55 checksum"):
        parse_address(typo, "grantee")


def test_parse_address_refuses_a_non_address() -> None:
    with pytest.raises(InvalidAddressError, match="grantee is not an address"):
        parse_address("0x1234", "grantee")
