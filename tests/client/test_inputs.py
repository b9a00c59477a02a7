"""Local checks of consent inputs: addresses must match their EIP-55 checksum."""

from __future__ import annotations

import pytest

from imaging_consent.consent.inputs import iso_time, parse_address, parse_window
from imaging_consent.errors import InvalidAddressError, InvalidGrantError

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


@pytest.mark.parametrize("single_case", [GOOD.lower(), "0x" + GOOD[2:].upper()])
def test_parse_address_can_require_a_checksum(single_case: str) -> None:
    with pytest.raises(InvalidAddressError, match="no EIP-55 checksum") as caught:
        parse_address(single_case, "grantee", require_checksum=True)
    assert single_case.lower() not in str(caught.value).lower()  # the address is not echoed
    assert parse_address(GOOD, "grantee", require_checksum=True) == GOOD
    digits_only = "0x" + "12" * 20  # no letters: its own checksum
    assert parse_address(digits_only, "grantee", require_checksum=True) == digits_only


def test_window_errors_name_times_in_iso_utc() -> None:
    with pytest.raises(InvalidGrantError) as caught:
        parse_window(1_900_000_000, 1_800_000_000)
    message = str(caught.value)
    assert "2030-03-17T17:46:40Z" in message and "2027-01-15T08:00:00Z" in message
    assert "1800000000" not in message
    assert iso_time(0) == "1970-01-01T00:00:00Z"
