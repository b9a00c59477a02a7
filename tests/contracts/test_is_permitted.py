"""ConsentRegistry.isPermitted: the most specific grant in force decides; exclusions win."""

from __future__ import annotations

from brownie import chain
from consent_values import (
    ALL_STUDIES,
    DAY,
    HRESCH,
    STUDY_A,
    STUDY_B,
    TREAT,
    latest_time,
    permitted,
)


def test_is_permitted_no_grant_refuses(consent, patient, grantee):
    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (False, False)


def test_is_permitted_study_grant_permits_its_purposes(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 1 << TREAT, True, 0, 0, {"from": patient})

    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (True, True)
    assert permitted(consent, patient, grantee, STUDY_A, HRESCH) == (False, False)
    assert permitted(consent, patient, grantee, STUDY_B, TREAT) == (False, False)


def test_is_permitted_all_studies_grant_covers_every_study(consent, patient, grantee):
    consent.grant(grantee, ALL_STUDIES, 1 << TREAT, False, 0, 0, {"from": patient})

    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (True, False)
    assert permitted(consent, patient, grantee, ALL_STUDIES, TREAT) == (True, False)


def test_is_permitted_deidentified_study_grant_narrows_identified_all_studies(
    consent, patient, grantee
):
    consent.grant(grantee, ALL_STUDIES, 0b101, True, 0, 0, {"from": patient})

    consent.grant(grantee, STUDY_A, 1 << TREAT, False, 0, 0, {"from": patient})

    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (True, False)
    assert permitted(consent, patient, grantee, STUDY_A, HRESCH) == (False, False)
    assert permitted(consent, patient, grantee, STUDY_B, HRESCH) == (True, True)


def test_is_permitted_revoking_study_grant_restores_all_studies(consent, patient, grantee):
    consent.grant(grantee, ALL_STUDIES, 0b101, True, 0, 0, {"from": patient})
    consent.grant(grantee, STUDY_A, 1 << TREAT, False, 0, 0, {"from": patient})

    consent.revoke(grantee, STUDY_A, {"from": patient})

    assert permitted(consent, patient, grantee, STUDY_A, HRESCH) == (True, True)


def test_is_permitted_expired_study_grant_falls_back_to_all_studies(consent, patient, grantee):
    end = latest_time() + DAY
    consent.grant(grantee, ALL_STUDIES, 0b1, True, 0, 0, {"from": patient})
    consent.grant(grantee, STUDY_A, 0b1, False, 0, end, {"from": patient})

    chain.mine(timestamp=end)

    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (True, True)


def test_is_permitted_not_yet_started_grant_does_not_decide(consent, patient, grantee):
    start = latest_time() + DAY
    consent.grant(grantee, STUDY_A, 0b1, True, start, 0, {"from": patient})

    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (False, False)
    chain.mine(timestamp=start)
    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (True, True)


def test_is_permitted_exclusion_beats_all_studies(consent, patient, grantee):
    consent.grant(grantee, ALL_STUDIES, 0b1, True, 0, 0, {"from": patient})
    consent.setExclusion(STUDY_A, True, {"from": patient})

    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (False, False)


def test_is_permitted_purpose_out_of_range_refuses(consent, patient, grantee):
    consent.grant(grantee, ALL_STUDIES, 0x7F, True, 0, 0, {"from": patient})

    for purpose in (7, 31, 32, 255):
        assert permitted(consent, patient, grantee, STUDY_A, purpose) == (False, False)
