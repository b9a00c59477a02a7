"""ConsentRegistry.getGrant: the stored grant for one (patient, grantee, scope)."""

from __future__ import annotations

from brownie import chain
from consent_values import ALL_STUDIES, DAY, NO_GRANT, STUDY_A, stored


def test_get_grant_none_is_all_zero(consent, patient, grantee):
    result = stored(consent, patient, grantee, STUDY_A)

    assert result == NO_GRANT


def test_get_grant_returns_stored_fields(consent, patient, grantee):
    not_before = chain.time() + DAY
    expires_at = not_before + 7 * DAY
    consent.grant(grantee, ALL_STUDIES, 0b1001, True, not_before, expires_at, {"from": patient})

    result = consent.getGrant(patient, grantee, ALL_STUDIES)

    assert result["purposes"] == 0b1001
    assert result["identified"] is True
    assert result["notBefore"] == not_before
    assert result["expiresAt"] == expires_at


def test_get_grant_keeps_expired_grant_until_revoked(consent, patient, grantee):
    expires_at = chain.time() + DAY
    consent.grant(grantee, STUDY_A, 0b1, False, 0, expires_at, {"from": patient})
    chain.sleep(2 * DAY)
    chain.mine()

    result = stored(consent, patient, grantee, STUDY_A)

    assert result == (0b1, False, 0, expires_at)


def test_get_grant_after_revoke_is_all_zero(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})
    consent.revoke(grantee, STUDY_A, {"from": patient})

    result = stored(consent, patient, grantee, STUDY_A)

    assert result == NO_GRANT
