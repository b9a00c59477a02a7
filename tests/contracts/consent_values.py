"""Values shared by the ConsentRegistry tests."""

from __future__ import annotations

import re
from typing import Any

from eth_utils import keccak

STUDY_A = keccak(text="study A")  # stands in for keccak256(pepper ‖ StudyInstanceUID)
STUDY_B = keccak(text="study B")
ALL_STUDIES = b"\x00" * 32
TREAT, ETREAT, HRESCH, PATRQT = 0, 1, 2, 3  # PurposeOfUse bit indexes
KNOWN_PURPOSES = 0x7F
DAY = 86_400

NO_GRANT = (0, False, 0, 0)


def stored(consent: Any, patient: Any, grantee: Any, scope: bytes) -> tuple[int, bool, int, int]:
    """`getGrant` as a plain tuple (brownie's ReturnValue does not compare with a tuple of ints)."""
    purposes, identified, not_before, expires_at = consent.getGrant(patient, grantee, scope)
    return int(purposes), bool(identified), int(not_before), int(expires_at)


def permitted(
    consent: Any, patient: Any, grantee: Any, key: bytes, purpose: int
) -> tuple[bool, bool]:
    """`isPermitted` as a plain tuple."""
    allowed, identified = consent.isPermitted(patient, grantee, key, purpose)
    return bool(allowed), bool(identified)


def error(name: str, *args: Any) -> str:
    """The exact revert message brownie decodes for a custom error, as a full-match pattern.

    brownie renders it as ``Name: arg1, arg2``: addresses in lower case, bytes32 as a Python
    bytes literal and integers in decimal.
    """
    rendered = []
    for arg in args:
        if isinstance(arg, bytes):
            rendered.append(repr(arg))
        elif isinstance(arg, int):
            rendered.append(str(int(arg)))
        else:
            rendered.append(str(arg).lower())
    return re.escape(f"{name}: {', '.join(rendered)}")
