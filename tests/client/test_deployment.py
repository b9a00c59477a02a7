"""Deploying the suite with plain web3.py, and loading it back from its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imaging_consent import errors
from imaging_consent.chain import LocalChain
from imaging_consent.contracts.binding import role_id
from imaging_consent.contracts.deployment import appoint, deploy, load, sender_for
from imaging_consent.contracts.manifest import Manifest, manifest_path


def test_deploy_writes_manifest_and_grants_roles(clean_chain: LocalChain, tmp_path: Path) -> None:
    admin, site, gateway, doctor = clean_chain.accounts[:4]
    sender = sender_for(clean_chain.session, admin)

    suite = deploy(
        clean_chain.session,
        sender,
        sites=[admin.address, site.address],
        gateways=[gateway.address],
        emergency=[doctor.address],
        out_dir=tmp_path,
    )

    written = Manifest.read(manifest_path(tmp_path, clean_chain.chain_id))
    assert written == suite.manifest
    assert list(written.contracts) == ["ConsentRegistry", "StudyRegistry", "AccessLog"]
    assert written.deployer == admin.address
    assert [(r.contract, r.role, r.account, r.by) for r in written.roles] == [
        ("StudyRegistry", "SITE_ROLE", admin.address, admin.address),
        ("StudyRegistry", "SITE_ROLE", site.address, admin.address),
        ("AccessLog", "GATEWAY", gateway.address, admin.address),
        ("AccessLog", "EMERGENCY", doctor.address, admin.address),
    ]
    assert suite.studies.functions.hasRole(role_id("SITE_ROLE"), site.address).call()
    assert suite.access_log.site_of(gateway.address) == admin.address
    assert suite.access_log.is_emergency_clinician(admin.address, doctor.address)
    assert not suite.access_log.is_emergency_clinician(site.address, doctor.address)
    assert suite.access_log.functions.consentRegistry().call() == suite.consent.address
    assert suite.consent.functions.eip712Domain().call()[1:3] == ["ConsentRegistry", "2"]


def test_deploy_appointments_need_the_deployer_as_site(clean_chain: LocalChain) -> None:
    admin, site, gateway = clean_chain.accounts[:3]
    before = clean_chain.session.w3.eth.get_transaction_count(admin.address)

    with pytest.raises(ValueError, match="appointed by their site"):
        deploy(
            clean_chain.session,
            sender_for(clean_chain.session, admin),
            sites=[site.address],
            gateways=[gateway.address],
            out_dir=None,
        )

    assert clean_chain.session.w3.eth.get_transaction_count(admin.address) == before


def test_site_appoints_its_own_gateway_and_clinician(clean_chain: LocalChain) -> None:
    admin, site, gateway, doctor, stranger = clean_chain.accounts[:5]
    suite = deploy(
        clean_chain.session, sender_for(clean_chain.session, admin), sites=[site.address],
        out_dir=None,
    )  # fmt: skip

    done = appoint(
        suite.access_log,
        sender_for(clean_chain.session, site),
        gateways=[gateway.address],
        emergency=[doctor.address],
    )

    assert [(r.role, r.account, r.by) for r in done] == [
        ("GATEWAY", gateway.address, site.address),
        ("EMERGENCY", doctor.address, site.address),
    ]
    assert suite.access_log.site_of(gateway.address) == site.address
    assert suite.access_log.is_emergency_clinician(site.address, doctor.address)
    with pytest.raises(errors.MissingRoleError, match="is not a site"):
        appoint(
            suite.access_log, sender_for(clean_chain.session, stranger), gateways=[doctor.address]
        )
    assert suite.access_log.site_of(doctor.address) is None


def test_load_round_trip(clean_chain: LocalChain, tmp_path: Path) -> None:
    suite = deploy(
        clean_chain.session,
        sender_for(clean_chain.session, clean_chain.accounts[0]),
        out_dir=tmp_path,
    )

    loaded = load(clean_chain.session, manifest_path(tmp_path, clean_chain.chain_id))

    assert loaded.consent.address == suite.consent.address
    assert loaded.access_log.address == suite.access_log.address


def test_load_refuses_address_without_code(clean_chain: LocalChain, tmp_path: Path) -> None:
    deploy(
        clean_chain.session,
        sender_for(clean_chain.session, clean_chain.accounts[0]),
        out_dir=tmp_path,
    )
    path = manifest_path(tmp_path, clean_chain.chain_id)
    data = json.loads(path.read_text())
    data["contracts"]["StudyRegistry"]["address"] = clean_chain.accounts[9].address
    path.write_text(json.dumps(data))

    with pytest.raises(errors.ContractError, match=r"no contract code at .*StudyRegistry"):
        load(clean_chain.session, path)


def test_load_refuses_manifest_of_other_chain(clean_chain: LocalChain, tmp_path: Path) -> None:
    suite = deploy(
        clean_chain.session, sender_for(clean_chain.session, clean_chain.accounts[0]), out_dir=None
    )
    other = Manifest.from_json(
        suite.manifest.to_json().replace(f'"chainId": {clean_chain.chain_id}', '"chainId": 5')
    )

    with pytest.raises(errors.WrongChainError, match="chain id 5"):
        load(clean_chain.session, other)


def test_load_missing_manifest_is_typed(clean_chain: LocalChain, tmp_path: Path) -> None:
    with pytest.raises(errors.ManifestError):
        load(clean_chain.session, tmp_path / "nope.json")


def test_revert_is_decoded_and_nothing_sent(clean_chain: LocalChain) -> None:
    patient, stranger = clean_chain.accounts[1], clean_chain.accounts[2]
    suite = deploy(
        clean_chain.session, sender_for(clean_chain.session, clean_chain.accounts[0]), out_dir=None
    )
    sender = sender_for(clean_chain.session, stranger)
    nonce_before = clean_chain.session.w3.eth.get_transaction_count(stranger.address)

    with pytest.raises(errors.NotDelegateError, match="is not a delegate of patient") as info:
        sender.transact(
            suite.consent.functions.revokeFor(patient.address, stranger.address, bytes(32))
        )

    assert info.value.tx_hash is None
    assert info.value.error_args["patient"] == patient.address
    assert clean_chain.session.w3.eth.get_transaction_count(stranger.address) == nonce_before
