"""HL7 v3 PurposeOfUse codes and their bits in ConsentRegistry's purposes mask."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from imaging_consent.errors import UnknownPurposeError


class Purpose(enum.Enum):
    """A purpose of use (HL7 v3 PurposeOfUse). The value is its bit index on chain."""

    TREAT = 0
    ETREAT = 1
    HRESCH = 2
    PATRQT = 3
    HPAYMT = 4
    HOPERAT = 5
    PUBHLTH = 6

    @property
    def bit(self) -> int:
        """The purpose's bit in a purposes mask."""
        return 1 << self.value

    @property
    def display(self) -> str:
        """The code's display name in HL7 v3 ActReason."""
        return _DISPLAY[self]

    @classmethod
    def parse(cls, value: str | int | Purpose) -> Purpose:
        """Return the purpose named ``value`` (a code such as ``"HRESCH"``, case-insensitive).

        Raises:
            UnknownPurposeError: If ``value`` names no known purpose.
        """
        if isinstance(value, Purpose):
            return value
        try:
            return cls(value) if isinstance(value, int) else cls[value.strip().upper()]
        except (KeyError, ValueError):
            known = ", ".join(p.name for p in cls)
            raise UnknownPurposeError(f"unknown purpose {value!r}; known: {known}") from None


_DISPLAY = {
    Purpose.TREAT: "treatment",
    Purpose.ETREAT: "emergency treatment",
    Purpose.HRESCH: "healthcare research",
    Purpose.PATRQT: "patient requested",
    Purpose.HPAYMT: "healthcare payment",
    Purpose.HOPERAT: "healthcare operations",
    Purpose.PUBHLTH: "public health",
}


def purposes_mask(purposes: Iterable[Purpose | str]) -> int:
    """The on-chain bitmask of ``purposes``.

    Raises:
        UnknownPurposeError: If a name is unknown or no purpose is given.
    """
    mask = 0
    for purpose in purposes:
        mask |= Purpose.parse(purpose).bit
    if mask == 0:
        raise UnknownPurposeError("at least one purpose is required")
    return mask


def purposes_from_mask(mask: int) -> frozenset[Purpose]:
    """The purposes set in ``mask`` (reserved bits are ignored)."""
    return frozenset(p for p in Purpose if mask & p.bit)
