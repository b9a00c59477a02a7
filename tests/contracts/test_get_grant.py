"""ConsentRegistry.getGrant: the stored slot as is (grant, tombstone or zeros)."""

from __future__ import annotations

from consent_values import NO_GRANT, STUDY_A, stored


def test_get_grant_unknown_is_zeros(consent, patient, grantee):
    assert stored(consent, patient, grantee, STUDY_A) == NO_GRANT


def test_get_grant_returns_expired_grant_as_stored(consent, patient, grantee, chain):
    end = chain.time() + 100
    tx = consent.grant(grantee, STUDY_A, 0b1, True, 0, end, {"from": patient})
    chain.mine(timestamp=end + 1)

    assert stored(consent, patient, grantee, STUDY_A) == (0b1, True, 0, end, tx.timestamp, 0)
