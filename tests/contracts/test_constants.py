"""ConsentRegistry's constants: scope, purposes, signature lifetime and EIP-712 typehashes."""

from __future__ import annotations

from eth_utils import keccak

GRANT_TYPE = (
    "Grant(address patient,address grantee,bytes32 scope,uint32 purposes,bool identified,"
    "uint48 notBefore,uint48 expiresAt,uint48 issuedAt,uint256 deadline)"
)
REVOKE_TYPE = (
    "Revoke(address patient,address grantee,bytes32 scope,uint48 issuedAt,uint256 deadline)"
)
CANCEL_TYPE = (
    "Cancel(address patient,address grantee,bytes32 scope,uint48 issuedAt,uint256 deadline)"
)


def test_all_studies_is_zero(consent):
    assert consent.ALL_STUDIES() == "0x" + "00" * 32


def test_known_purposes_are_seven_bits(consent):
    assert consent.KNOWN_PURPOSES() == 0x7F


def test_max_signature_lifetime_is_thirty_days(consent):
    assert consent.MAX_SIGNATURE_LIFETIME() == 30 * 86_400


def test_grant_typehash_matches_spec(consent):
    assert consent.GRANT_TYPEHASH() == "0x" + keccak(text=GRANT_TYPE).hex()


def test_revoke_typehash_matches_spec(consent):
    assert consent.REVOKE_TYPEHASH() == "0x" + keccak(text=REVOKE_TYPE).hex()


def test_cancel_typehash_matches_spec(consent):
    assert consent.CANCEL_TYPEHASH() == "0x" + keccak(text=CANCEL_TYPE).hex()
