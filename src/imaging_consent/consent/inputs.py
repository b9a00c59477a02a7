"""Checking consent inputs locally, so bad input raises a typed error and sends nothing."""

from __future__ import annotations

import functools
from datetime import datetime, timezone

from eth_typing import ChecksumAddress
from web3 import Web3

from imaging_consent.contracts.consent_registry import ALL_STUDIES
from imaging_consent.errors import InvalidAddressError, InvalidGrantError, InvalidTimestampError

__all__ = [
    "Timestamp",
    "iso_time",
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


def iso_time(timestamp: int) -> str:
    """Unix seconds as ISO 8601 in UTC (``2027-01-31T12:00:00Z``), as errors name times."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@functools.lru_cache(maxsize=4096)
def _checksummed(value: str) -> tuple[ChecksumAddress, bool]:
    """The EIP-55 form of ``value``, and whether ``value`` carried a checksum (mixed case).

    A mixed-case ``value`` must already be exactly the EIP-55 form.
    """
    address = Web3.to_checksum_address(value)
    digits = value[2:] if value[:2] in ("0x", "0X") else value
    single_case = digits in (digits.lower(), digits.upper())
    if not single_case and digits != address[2:]:
        raise ValueError("EIP-55 checksum mismatch")
    # Digits alone (no letters) are their own checksum: nothing could have been mistyped in case.
    return address, not single_case or digits == address[2:]


def parse_address(value: str, what: str, *, require_checksum: bool = False) -> ChecksumAddress:
    """``value`` as a checksummed address.

    A mixed-case address must match its EIP-55 checksum: one mistyped character is refused,
    never silently accepted as some other account. An all-lower or all-upper case address has
    no checksum, so a typo in it cannot be caught: with ``require_checksum`` it is refused too
    (use it wherever a typo would give something away: grants, delegations, roles).

    Args:
        value: The address text (``0x`` and 40 hex digits).
        what: What it is, for the error message (``"grantee"``, ``"--grantee"``).
        require_checksum: Refuse an address without a checksum (all lower or upper case).

    Raises:
        InvalidAddressError: If ``value`` is not an address, its mixed case does not match its
            checksum, or (with ``require_checksum``) it has no checksum.
    """
    try:
        address, checked = _checksummed(value)
    except (ValueError, TypeError) as exc:
        if "checksum" in str(exc):
            raise InvalidAddressError(
                f"{what} {value!r} does not match its mixed-case EIP-55 checksum "
                "(a mistyped character?)"
            ) from None
        raise InvalidAddressError(f"{what} is not an address: {value!r}") from None
    if require_checksum and not checked:
        raise InvalidAddressError(
            f"{what} has no EIP-55 checksum (it is all lower or all upper case), so a "
            "mistyped character cannot be caught; give the address in mixed case, as its "
            "owner's wallet shows it"
        )
    return address


def parse_grantee(value: str, patient: str | None = None) -> ChecksumAddress:
    """``value`` as a grantee: an address, neither zero nor ``patient`` (if given).

    Raises:
        InvalidAddressError: If ``value`` is not an address.
        InvalidGrantError: If it is the zero address or the patient's own address.
    """
    grantee = parse_address(value, "grantee")
    if grantee == _ZERO_ADDRESS:
        raise InvalidGrantError("the grantee must not be the zero address")
    if patient is not None and grantee == parse_address(patient, "patient"):
        raise InvalidGrantError(
            "the grantee is the patient's own address: a patient needs no grant to their own "
            "studies; name the account that should get access"
        )
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
        raise InvalidTimestampError(f"{what} ({seconds} unix seconds) is outside 0..2**48-1")
    return seconds


def parse_window(not_before: Timestamp, expires_at: Timestamp) -> tuple[int, int]:
    start, end = parse_seconds(not_before, "not_before"), parse_seconds(expires_at, "expires_at")
    if end != 0 and end <= start:
        raise InvalidGrantError(
            f"invalid validity window: expires_at {iso_time(end)} must be after "
            f"not_before {iso_time(start)}"
        )
    return start, end
