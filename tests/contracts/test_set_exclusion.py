"""ConsentRegistry.setExclusion: a patient keeps one study out of their all-studies grants."""

from __future__ import annotations

import brownie
from consent_values import ALL_STUDIES, STUDY_A, STUDY_B, TREAT, permitted


def test_set_exclusion_emits_exclusion_set(consent, patient):
    tx = consent.setExclusion(STUDY_A, True, {"from": patient})

    assert dict(tx.events["ExclusionSet"]) == {
        "patient": patient,
        "studyKey": "0x" + STUDY_A.hex(),
        "excluded": True,
    }
    assert consent.isExcluded(patient, STUDY_A)


def test_set_exclusion_wins_over_all_studies_grant_until_lifted(consent, patient, grantee):
    consent.grant(grantee, ALL_STUDIES, 0b1, True, 0, 0, {"from": patient})

    consent.setExclusion(STUDY_A, True, {"from": patient})

    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (False, False)
    assert permitted(consent, patient, grantee, STUDY_B, TREAT) == (True, True)
    consent.setExclusion(STUDY_A, False, {"from": patient})
    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (True, True)
    assert not consent.isExcluded(patient, STUDY_A)


def test_set_exclusion_study_grant_still_decides(consent, patient, grantee):
    consent.grant(grantee, ALL_STUDIES, 0b1, True, 0, 0, {"from": patient})
    consent.grant(grantee, STUDY_A, 0b1, False, 0, 0, {"from": patient})

    consent.setExclusion(STUDY_A, True, {"from": patient})

    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (True, False)


def test_set_exclusion_only_for_the_caller(consent, patient, grantee, stranger):
    consent.grant(grantee, ALL_STUDIES, 0b1, True, 0, 0, {"from": patient})

    consent.setExclusion(STUDY_A, True, {"from": stranger})

    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (True, True)


def test_set_exclusion_all_studies_key_reverts(consent, patient):
    with brownie.reverts(revert_pattern=r"ConsentRegistryInvalidStudyKey: "):
        consent.setExclusion(ALL_STUDIES, True, {"from": patient})
