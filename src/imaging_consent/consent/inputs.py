"""Checking consent inputs locally, so bad input raises a typed error and sends nothing."""

from __future__ import annotations

from datetime import datetime

from eth_typing import ChecksumAddress
from web3 import Web3

from imaging_consent.contracts.consent_registry import ALL_STUDIES
from imaging_consent.errors import InvalidAddressError, InvalidGrantError, InvalidTimestampError

__all__ = [
    "Timestamp",
    "parse_address",
    "parse_grantee",
    "parse_scope",
    "parse_seconds",
    "parse_window",
]

_UINT48_MAX = 2**48 - 1
_ZERO_ADDRESS = "0x" + "00" * 20

#: A grant time: unix seconds, or a timezone-aware datetime.
Timestamp = int | datetime


def parse_address(value: str, what: str) -> ChecksumAddress:
    try:
        return Web3.to_checksum_address(value)
    except (ValueError, TypeError):
        raise InvalidAddressError(f"{what} is not an address: {value!r}") from None


def parse_grantee(value: str) -> ChecksumAddress:
    grantee = parse_address(value, "grantee")
    if grantee == _ZERO_ADDRESS:
        raise InvalidGrantError("the grantee must not be the zero address")
    return grantee


def parse_scope(scope: bytes | str | None) -> bytes:
    if scope is None:
        return ALL_STUDIES
    raw = bytes.fromhex(scope.removeprefix("0x")) if isinstance(scope, str) else bytes(scope)
    if len(raw) != 32:
        raise InvalidGrantError(f"a scope is a 32-byte study key, got {len(raw)} bytes")
    return raw


def parse_seconds(value: Timestamp, what: str) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidTimestampError(
                f"{what} is a naive datetime; give a timezone-aware one "
                "(e.g. datetime(..., tzinfo=timezone.utc)) or unix seconds"
            )
        seconds = int(value.timestamp())
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        raise InvalidTimestampError(f"{what} must be unix seconds or an aware datetime")
    if not 0 <= seconds <= _UINT48_MAX:
        raise InvalidTimestampError(f"{what} {seconds} is outside 0..2**48-1")
    return seconds


def parse_window(not_before: Timestamp, expires_at: Timestamp) -> tuple[int, int]:
    start, end = parse_seconds(not_before, "not_before"), parse_seconds(expires_at, "expires_at")
    if end != 0 and end <= start:
        raise InvalidGrantError(
            f"invalid validity window: expires_at {end} must be after not_before {start}"
        )
    return start, end
