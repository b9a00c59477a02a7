"""AccessLog.recordBreakGlass: the clinician signs, the gateway relays, the limit holds."""

import pytest
from brownie import chain, web3
from eip712_messages import sign_break_glass
from eth_hash.auto import keccak

REASON = keccak(b"reason commitment")
DAY = 86_400


def _now():
    return web3.eth.get_block("latest").timestamp


@pytest.fixture
def break_glass(access_log, site, emergency, study_key):
    """`break_glass(request, **overrides)`: recordBreakGlass arguments signed by `emergency`."""

    def make(
        request=b"bg-1", *, key=None, site_=None, clinician=None, deadline=None, reason=REASON
    ):
        request_id = keccak(request)
        deadline = deadline or _now() + 3600
        sig = sign_break_glass(
            access_log,
            key or emergency.private_key,
            site=site_ or site,
            study_key=study_key,
            request_id=request_id,
            reason_commitment=reason,
            deadline=deadline,
        )
        return (study_key, clinician or emergency, request_id, reason, deadline, sig)

    return make


def test_record_break_glass_emits_break_glass_access(
    access_log, registered, break_glass, gateway, patient, emergency, study_key, site
):
    args = break_glass()

    tx = access_log.recordBreakGlass(*args, {"from": gateway})

    assert len(tx.events) == 1
    assert dict(tx.events["BreakGlassAccess"]) == {
        "studyKey": "0x" + study_key.hex(),
        "patient": patient,
        "clinician": emergency,
        "requestId": "0x" + args[2].hex(),
        "reasonCommitment": "0x" + REASON.hex(),
        "gateway": gateway,
    }
    assert tuple(access_log.breakGlassUsage(site, emergency)) == (tx.timestamp, 1)


def test_record_break_glass_without_clinician_signature_reverts(
    access_log, custom_error, registered, break_glass, gateway, emergency, other_signer
):
    # Attack (v1: the gateway alone wrote break-glass records naming any clinician).
    args = break_glass(key=other_signer.private_key)

    with custom_error("AccessLogInvalidSigner", emergency):
        access_log.recordBreakGlass(*args, {"from": gateway})


def test_record_break_glass_signature_for_other_site_reverts(
    access_log, custom_error, registered, break_glass, gateway, emergency, other_site
):
    args = break_glass(site_=other_site)

    with custom_error("AccessLogInvalidSigner", emergency):
        access_log.recordBreakGlass(*args, {"from": gateway})


def test_record_break_glass_other_sites_clinician_reverts(
    access_log, custom_error, registered, break_glass, gateway, site, other_site, other_signer
):
    access_log.setEmergencyClinician(other_signer, True, {"from": other_site})
    args = break_glass(key=other_signer.private_key, clinician=other_signer)

    with custom_error("AccessLogNotEmergency", site, other_signer):
        access_log.recordBreakGlass(*args, {"from": gateway})


def test_record_break_glass_other_sites_gateway_reverts(
    access_log, custom_error, registered, break_glass, other_gateway, other_site, study_key
):
    with custom_error("StudyRegistryUnknownStudy", other_site, study_key):
        access_log.recordBreakGlass(*break_glass(), {"from": other_gateway})


def test_record_break_glass_replayed_request_reverts(
    access_log, custom_error, registered, break_glass, gateway
):
    args = break_glass()
    access_log.recordBreakGlass(*args, {"from": gateway})

    with custom_error("AccessLogRequestUsed", args[2]):
        access_log.recordBreakGlass(*args, {"from": gateway})


def test_record_break_glass_beyond_limit_reverts_until_window_ends(
    access_log, custom_error, registered, break_glass, gateway, emergency
):
    first = access_log.recordBreakGlass(*break_glass(b"r0"), {"from": gateway})
    for i in (1, 2):
        access_log.recordBreakGlass(*break_glass(f"r{i}".encode()), {"from": gateway})
    window_end = first.timestamp + DAY

    with custom_error("AccessLogBreakGlassLimit", emergency, window_end):
        access_log.recordBreakGlass(*break_glass(b"r3"), {"from": gateway})
    chain.mine(timestamp=window_end)
    tx = access_log.recordBreakGlass(*break_glass(b"r4"), {"from": gateway})

    assert "BreakGlassAccess" in tx.events


def test_record_break_glass_expired_reverts(
    access_log, custom_error, registered, break_glass, gateway
):
    deadline = _now() + 10
    args = break_glass(deadline=deadline)
    chain.mine(timestamp=deadline + 1)

    with custom_error("AccessLogExpiredSignature", deadline):
        access_log.recordBreakGlass(*args, {"from": gateway})


def test_record_break_glass_zero_reason_reverts(
    access_log, custom_error, registered, break_glass, gateway
):
    args = break_glass(reason=bytes(32))

    with custom_error("AccessLogZeroReason", args[2]):
        access_log.recordBreakGlass(*args, {"from": gateway})


def test_record_break_glass_by_non_gateway_reverts(
    access_log, custom_error, registered, break_glass, stranger
):
    with custom_error("AccessLogNotGateway", stranger):
        access_log.recordBreakGlass(*break_glass(), {"from": stranger})


def test_record_break_glass_removed_clinician_reverts(
    access_log, custom_error, registered, break_glass, gateway, site, emergency
):
    access_log.setEmergencyClinician(emergency, False, {"from": site})

    with custom_error("AccessLogNotEmergency", site, emergency):
        access_log.recordBreakGlass(*break_glass(), {"from": gateway})


def test_record_break_glass_eip1271_clinician_accepted(
    access_log, registered, break_glass, gateway, site, wallet, signer
):
    access_log.setEmergencyClinician(wallet, True, {"from": site})
    args = break_glass(key=signer.private_key, clinician=wallet)

    tx = access_log.recordBreakGlass(*args, {"from": gateway})

    assert tx.events["BreakGlassAccess"]["clinician"] == wallet
