"""PurposeOfUse codes and masks."""

from __future__ import annotations

import pytest

from imaging_consent.consent import Purpose, purposes_from_mask, purposes_mask
from imaging_consent.errors import UnknownPurposeError


def test_bits_match_the_registry() -> None:
    assert [p.name for p in Purpose] == [
        "TREAT",
        "ETREAT",
        "HRESCH",
        "PATRQT",
        "HPAYMT",
        "HOPERAT",
        "PUBHLTH",
    ]
    assert purposes_mask(["treat", Purpose.HRESCH]) == 0b101
    assert purposes_from_mask(0b101 | 1 << 20) == {Purpose.TREAT, Purpose.HRESCH}


def test_unknown_purpose_is_typed() -> None:
    with pytest.raises(UnknownPurposeError, match="unknown purpose 'MARKETING'"):
        Purpose.parse("MARKETING")
    with pytest.raises(UnknownPurposeError, match="at least one"):
        purposes_mask([])
