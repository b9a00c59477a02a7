"""ConsentRegistry.isPermitted: may this grantee see this study for this purpose now?

Ganache runs eth_call with the latest block's timestamp, so `chain.mine(timestamp=t)` puts a
call exactly at second `t` and the window boundaries are tested to the second.
"""

from __future__ import annotations

from brownie import chain
from consent_values import ALL_STUDIES, DAY, ETREAT, HRESCH, STUDY_A, STUDY_B, TREAT, permitted


def test_is_permitted_study_grant_permits(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 1 << TREAT, True, 0, 0, {"from": patient})

    result = permitted(consent, patient, grantee, STUDY_A, TREAT)

    assert result == (True, True)


def test_is_permitted_no_grant_denies(consent, patient, grantee):
    result = permitted(consent, patient, grantee, STUDY_A, TREAT)

    assert result == (False, False)


def test_is_permitted_all_studies_grant_permits_any_study(consent, patient, grantee):
    consent.grant(grantee, ALL_STUDIES, 1 << HRESCH, False, 0, 0, {"from": patient})

    results = [permitted(consent, patient, grantee, key, HRESCH) for key in (STUDY_A, STUDY_B)]

    assert results == [(True, False), (True, False)]


def test_is_permitted_study_grant_does_not_cover_other_study(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 1 << TREAT, True, 0, 0, {"from": patient})

    result = permitted(consent, patient, grantee, STUDY_B, TREAT)

    assert result == (False, False)


def test_is_permitted_study_grant_does_not_answer_all_studies_query(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 1 << TREAT, True, 0, 0, {"from": patient})

    result = permitted(consent, patient, grantee, ALL_STUDIES, TREAT)

    assert result == (False, False)


def test_is_permitted_purpose_bit_not_set_denies(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 1 << TREAT | 1 << HRESCH, True, 0, 0, {"from": patient})

    result = permitted(consent, patient, grantee, STUDY_A, ETREAT)

    assert result == (False, False)


def test_is_permitted_purpose_out_of_range_denies(consent, patient, grantee):
    consent.grant(grantee, ALL_STUDIES, 0x7F, True, 0, 0, {"from": patient})

    results = [permitted(consent, patient, grantee, STUDY_A, p) for p in (7, 31, 32, 255)]

    assert results == [(False, False)] * 4


def test_is_permitted_before_not_before_denies(consent, patient, grantee):
    not_before = chain.time() + DAY
    consent.grant(grantee, STUDY_A, 1, True, not_before, 0, {"from": patient})
    chain.mine(timestamp=not_before - 1)

    result = permitted(consent, patient, grantee, STUDY_A, TREAT)

    assert result == (False, False)


def test_is_permitted_at_not_before_permits(consent, patient, grantee):
    not_before = chain.time() + DAY
    consent.grant(grantee, STUDY_A, 1, True, not_before, 0, {"from": patient})
    chain.mine(timestamp=not_before)

    result = permitted(consent, patient, grantee, STUDY_A, TREAT)

    assert result == (True, True)


def test_is_permitted_just_before_expiry_permits(consent, patient, grantee):
    expires_at = chain.time() + DAY
    consent.grant(grantee, STUDY_A, 1, True, 0, expires_at, {"from": patient})
    chain.mine(timestamp=expires_at - 1)

    result = permitted(consent, patient, grantee, STUDY_A, TREAT)

    assert result == (True, True)


def test_is_permitted_at_expiry_denies(consent, patient, grantee):
    expires_at = chain.time() + DAY
    consent.grant(grantee, STUDY_A, 1, True, 0, expires_at, {"from": patient})
    chain.mine(timestamp=expires_at)

    result = permitted(consent, patient, grantee, STUDY_A, TREAT)

    assert result == (False, False)


def test_is_permitted_after_revoke_denies(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": patient})
    consent.revoke(grantee, STUDY_A, {"from": patient})

    result = permitted(consent, patient, grantee, STUDY_A, TREAT)

    assert result == (False, False)


def test_is_permitted_identified_from_all_studies_grant(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 1, False, 0, 0, {"from": patient})
    consent.grant(grantee, ALL_STUDIES, 1, True, 0, 0, {"from": patient})

    result = permitted(consent, patient, grantee, STUDY_A, TREAT)

    assert result == (True, True)


def test_is_permitted_identified_from_study_grant(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": patient})
    consent.grant(grantee, ALL_STUDIES, 1, False, 0, 0, {"from": patient})

    result = permitted(consent, patient, grantee, STUDY_A, TREAT)

    assert result == (True, True)


def test_is_permitted_identified_not_taken_from_grant_that_does_not_permit(
    consent, patient, grantee
):
    consent.grant(grantee, STUDY_A, 1 << TREAT, False, 0, 0, {"from": patient})
    consent.grant(grantee, ALL_STUDIES, 1 << HRESCH, True, 0, 0, {"from": patient})

    result = permitted(consent, patient, grantee, STUDY_A, TREAT)

    assert result == (True, False)


def test_is_permitted_expired_study_grant_falls_back_to_all_studies(consent, patient, grantee):
    expires_at = chain.time() + DAY
    consent.grant(grantee, STUDY_A, 1, True, 0, expires_at, {"from": patient})
    consent.grant(grantee, ALL_STUDIES, 1, False, 0, 0, {"from": patient})
    chain.mine(timestamp=expires_at)

    result = permitted(consent, patient, grantee, STUDY_A, TREAT)

    assert result == (True, False)


def test_is_permitted_revoked_all_studies_leaves_study_grant(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 1, False, 0, 0, {"from": patient})
    consent.grant(grantee, ALL_STUDIES, 1, True, 0, 0, {"from": patient})
    consent.revoke(grantee, ALL_STUDIES, {"from": patient})

    result = permitted(consent, patient, grantee, STUDY_A, TREAT)

    assert result == (True, False)


def test_is_permitted_other_grantee_or_patient_denied(consent, patient, grantee, stranger):
    consent.grant(grantee, ALL_STUDIES, 1, True, 0, 0, {"from": patient})

    results = [
        permitted(consent, patient, stranger, STUDY_A, TREAT),
        permitted(consent, stranger, grantee, STUDY_A, TREAT),
    ]

    assert results == [(False, False), (False, False)]
