"""The release gate on a real Ganache chain with real DICOM files (pydicom's bundled samples)."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pydicom
import pytest
from eth_hash.auto import keccak
from release_samples import (
    BURNED_STUDY,
    CT_SERIES_B,
    CT_STUDY,
    J2K_STUDY,
    MR_STUDY,
    RLE_STUDY,
    RTDOSE_STUDY,
    Actors,
    actors,
    build_ct_study,
    build_studies,
    deploy_suite,
    grant,
    new_uid,
    revoke,
    write_copy,
)

from imaging_consent import errors
from imaging_consent.access_log import AccessRecord
from imaging_consent.access_log.break_glass import reason_commitment
from imaging_consent.chain import ChainSession, LocalChain, TransactionSender
from imaging_consent.consent import Purpose
from imaging_consent.contracts.access_log import AccessLog
from imaging_consent.contracts.consent_registry import ConsentRegistry
from imaging_consent.contracts.deployment import Suite, sender_for
from imaging_consent.contracts.study_registry import StudyRegistry
from imaging_consent.dicom import SitePepper, dataset_bytes, pixel_hash, study_key
from imaging_consent.dicom.annex_e import Action, basic_profile_action
from imaging_consent.dicom.walk import walk_dicom
from imaging_consent.gateway import ImageGateway, LogMode
from imaging_consent.provenance import (
    ContentProtocol,
    InstanceProof,
    RegistrationAction,
    ReleasedInstance,
    ReleaseProofs,
    read_proofs,
    register_study,
    verify_files,
    verify_released,
    write_release,
)
from imaging_consent.stores import FolderStore, ImageStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PEPPER = SitePepper(bytes(range(32)))
MR_UID = "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"


@pytest.fixture(scope="module", params=["ganache", "anvil"])
def local_chain(request: pytest.FixtureRequest) -> Iterator[LocalChain]:
    """The module's chain: Ganache (required), then Anvil (the same tests, as a bonus)."""
    with LocalChain(request.param) as chain:
        yield chain


@pytest.fixture(scope="module")
def people(local_chain: LocalChain) -> Actors:
    return actors(local_chain)


@pytest.fixture(scope="module")
def suite(local_chain: LocalChain, people: Actors) -> Suite:
    return deploy_suite(local_chain, people)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FolderStore:
    return FolderStore(build_studies(tmp_path_factory.mktemp("studies")))


@dataclass
class World:
    chain: LocalChain
    suite: Suite
    store: FolderStore
    people: Actors
    site: TransactionSender
    patient: TransactionSender
    gateway: ImageGateway
    work: Path

    def register(self, study_uid: str, store: ImageStore | None = None) -> bytes:
        result = register_study(
            self.suite,
            self.site,
            store or self.store,
            PEPPER,
            study_uid,
            self.people.patient.address,
        )
        return result.study_key

    def grant(self, **kwargs: Any) -> None:
        grant(self.suite, self.patient, self.people.requester.address, **kwargs)

    def logs(self, event: str, **match: Any) -> list[Any]:
        found = getattr(self.suite.access_log.events, event)().get_logs(from_block=0)
        return [log for log in found if all(log["args"][k] == v for k, v in match.items())]

    def gateway_for(self, store: ImageStore, **kwargs: Any) -> ImageGateway:
        kwargs.setdefault("outbox_path", self.work / f"outbox-{os.urandom(4).hex()}.sqlite3")
        return ImageGateway(
            self.suite, sender_for(self.chain.session, self.people.gateway), store, PEPPER, **kwargs
        )


@pytest.fixture
def world(
    local_chain: LocalChain,
    suite: Suite,
    store: FolderStore,
    people: Actors,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    snapshot = local_chain.snapshot()
    session = local_chain.session
    work = tmp_path_factory.mktemp("gateway")
    gateway = ImageGateway(
        suite, sender_for(session, people.gateway), store, PEPPER, outbox_path=work / "ob.db"
    )
    try:
        yield World(
            local_chain,
            suite,
            store,
            people,
            sender_for(session, people.site),
            sender_for(session, people.patient),
            gateway,
            work,
        )
    finally:
        gateway.close()
        local_chain.revert(snapshot)


def _nonce(world: World, who: str) -> int:
    return int(world.chain.session.w3.eth.get_transaction_count(who))


# --- registration ------------------------------------------------------------------------------


def test_register_study_registered_unchanged_updated(world: World, tmp_path: Path) -> None:
    store = FolderStore(build_ct_study(tmp_path / "ct", 2))

    first = register_study(
        world.suite, world.site, store, PEPPER, CT_STUDY, world.people.patient.address
    )
    again = register_study(
        world.suite, world.site, store, PEPPER, CT_STUDY, world.people.patient.address
    )
    write_copy(
        "CT_small.dcm", tmp_path / "ct/new.dcm", study=CT_STUDY, series=new_uid(), sop=new_uid()
    )
    store.refresh()
    updated = register_study(
        world.suite, world.site, store, PEPPER, CT_STUDY, world.people.patient.address
    )

    assert first.action == "registered" and first.tx_hash is not None
    assert first.study_key == study_key(PEPPER, CT_STUDY) and first.instance_count == 2
    assert again.action is RegistrationAction.UNCHANGED and again.tx_hash is None
    assert updated.action is RegistrationAction.UPDATED and updated.instance_count == 3
    on_chain = world.suite.studies.study(world.people.site.address, first.study_key)
    assert on_chain.patient == world.people.patient.address
    assert on_chain.site == world.people.site.address
    assert on_chain.content_root == updated.content_root and on_chain.instance_count == 3
    assert world.suite.studies.content_version(world.people.site.address, first.study_key) == 2


def test_register_study_other_patient_refused_nothing_sent(world: World) -> None:
    world.register(MR_STUDY)
    before = _nonce(world, world.people.site.address)

    with pytest.raises(errors.StudyPatientMismatchError, match="another patient"):
        register_study(
            world.suite, world.site, world.store, PEPPER, MR_STUDY, world.people.stranger.address
        )

    assert _nonce(world, world.people.site.address) == before


# --- release: consent --------------------------------------------------------------------------


def test_release_permitted_identified(world: World) -> None:
    key = world.register(CT_STUDY)
    world.grant(identified=True)

    release = world.gateway.release(CT_STUDY, world.people.requester.address, "TREAT")

    assert release.identified and not release.break_glass and not release.batch_request_logged
    assert release.patient == world.people.patient.address and release.study_key == key
    assert len(release.instances) == 3
    for inst in release.instances:
        assert inst.to_bytes() == world.store.path(inst.sop_instance_uid).read_bytes()
        assert (
            inst.dataset.PatientName
            == pydicom.dcmread(world.store.path(inst.sop_instance_uid)).PatientName
        )
        assert verify_released(world.suite, world.people.site.address, key, inst)
    granted = world.logs("AccessGranted", requestId=release.request_id)
    assert len(granted) == 1 and granted[0]["args"]["accessor"] == world.people.requester.address
    assert release.log_tx == "0x" + bytes(granted[0]["transactionHash"]).hex()


def _walk(ds: pydicom.Dataset, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], Any]]:
    for elem in ds:
        here = (*path, int(elem.tag))
        yield here, elem
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                yield from _walk(item, (*here, i))


def test_release_permitted_deidentified(world: World) -> None:
    key = world.register(CT_STUDY)
    world.grant(identified=False)

    release = world.gateway.release(CT_STUDY, world.people.requester.address, Purpose.TREAT)

    assert not release.identified
    study_uids = {inst.dataset.StudyInstanceUID for inst in release.instances}
    assert len(study_uids) == 1 and CT_STUDY not in study_uids  # one pseudonym per release
    for inst in release.instances:
        original = pydicom.dcmread(world.store.path(_original_uid(world, inst.instance_key)))
        out = pydicom.dcmread(io.BytesIO(inst.to_bytes()))
        assert out.PixelData == original.PixelData  # byte-equal pixels
        after = dict(_walk(out))
        for path, elem in _walk(original):
            action = basic_profile_action(path[-1])
            if elem.VR == "SQ" or action in (None, Action.K) or elem.value in (None, "", b""):
                continue
            kept = after.get(path)
            assert kept is None or kept.is_empty or kept.value != elem.value, f"{path} survived"
        assert not [p for p, e in _walk(out) if e.tag.is_private]
        assert out.PatientIdentityRemoved == "YES"
        assert inst.sop_instance_uid == out.SOPInstanceUID != original.SOPInstanceUID
        assert verify_released(world.suite, world.people.site.address, key, inst)


def _original_uid(world: World, instance_key: bytes) -> str:
    from imaging_consent.dicom import instance_key as key_of

    for stored in world.store.instances(CT_STUDY):
        if key_of(PEPPER, stored.sop_instance_uid) == instance_key:
            return stored.sop_instance_uid
    raise AssertionError("no such instance")


def test_release_denied_records_access_denied(world: World) -> None:
    world.register(MR_STUDY)

    with pytest.raises(errors.ConsentDeniedError) as caught:
        world.gateway.release(MR_STUDY, world.people.requester.address, "TREAT")

    denied = world.logs("AccessDenied", requestId=caught.value.request_id)
    assert len(denied) == 1
    assert denied[0]["args"]["accessor"] == world.people.requester.address
    assert denied[0]["args"]["patient"] == world.people.patient.address
    assert not world.logs("AccessGranted")


def test_release_other_purpose_denied(world: World) -> None:
    world.register(MR_STUDY)
    world.grant(purposes=(Purpose.TREAT,))

    with pytest.raises(errors.ConsentDeniedError):
        world.gateway.release(MR_STUDY, world.people.requester.address, "HRESCH")


def test_release_expired_grant_denied(world: World) -> None:
    world.register(MR_STUDY)
    now = world.chain.session.w3.eth.get_block("latest")["timestamp"]
    world.grant(expires_at=now + 3600)
    world.gateway.release(MR_STUDY, world.people.requester.address, "TREAT")

    world.chain.increase_time(7200)

    with pytest.raises(errors.ConsentDeniedError):
        world.gateway.release(MR_STUDY, world.people.requester.address, "TREAT")
    assert len(world.logs("AccessDenied")) == 1


def test_release_revoked_between_releases(world: World) -> None:
    world.register(MR_STUDY)
    world.grant()
    first = world.gateway.release(MR_STUDY, world.people.requester.address, "TREAT")

    revoke(world.suite, world.patient, world.people.requester.address)

    with pytest.raises(errors.ConsentDeniedError):
        world.gateway.release(MR_STUDY, world.people.requester.address, "TREAT")
    assert len(first.instances) == 1
    assert len(world.logs("AccessGranted")) == 1 and len(world.logs("AccessDenied")) == 1


class _RevokingStore:
    """A FolderStore whose first open() revokes the grant on chain: the race the gate must lose."""

    def __init__(self, inner: FolderStore, revoke_now: Any) -> None:
        self._inner = inner
        self._revoke = revoke_now

    def studies(self) -> list[str]:
        return self._inner.studies()

    def instances(self, study: str, series: str | None = None) -> Any:
        return self._inner.instances(study, series)

    def instance(self, uid: str) -> Any:
        return self._inner.instance(uid)

    def open(self, uid: str) -> Any:
        if self._revoke is not None:
            self._revoke()
            self._revoke = None
        return self._inner.open(uid)


def test_release_revoked_during_release_refused(world: World) -> None:
    world.register(MR_STUDY)
    world.grant()
    racing = _RevokingStore(
        world.store, lambda: revoke(world.suite, world.patient, world.people.requester.address)
    )
    gateway = world.gateway_for(racing)

    with pytest.raises(errors.ConsentDeniedError, match="withdrawn"):
        gateway.release(MR_STUDY, world.people.requester.address, "TREAT")

    assert len(world.logs("AccessDenied")) == 1 and not world.logs("AccessGranted")


def test_release_needs_confirmations_deep_grant(world: World) -> None:
    world.register(MR_STUDY)
    world.grant()
    gateway = world.gateway_for(world.store, confirmations=3)

    with pytest.raises(errors.ConsentDeniedError):
        gateway.release(MR_STUDY, world.people.requester.address, "TREAT")
    world.chain.mine(3)

    assert gateway.release(MR_STUDY, world.people.requester.address, "TREAT").instances


def test_release_series_level(world: World) -> None:
    key = world.register(CT_STUDY)
    world.grant()

    release = world.gateway.release(
        CT_STUDY, world.people.requester.address, "TREAT", series_uid=CT_SERIES_B
    )

    assert [i.dataset.SeriesInstanceUID for i in release.instances] == [CT_SERIES_B]
    assert len(release.instances[0].proof) >= 1  # proven against the three-instance root
    assert verify_released(world.suite, world.people.site.address, key, release.instances[0])


def test_release_unregistered_study_typed_nothing_sent(world: World) -> None:
    world.grant()
    before = _nonce(world, world.people.gateway.address)

    with pytest.raises(errors.StudyNotRegisteredError):
        world.gateway.release(MR_STUDY, world.people.requester.address, "TREAT")

    assert _nonce(world, world.people.gateway.address) == before


@pytest.mark.parametrize(
    "study", [RLE_STUDY, J2K_STUDY, RTDOSE_STUDY], ids=["rle", "jpeg2000", "rtdose"]
)
@pytest.mark.parametrize("identified", [True, False], ids=["identified", "deidentified"])
def test_release_compressed_and_multiframe_verify(
    world: World, study: str, identified: bool
) -> None:
    key = world.register(study)
    world.grant(identified=identified)

    release = world.gateway.release(study, world.people.requester.address, "TREAT")

    (inst,) = release.instances
    assert release.identified is identified
    original = pydicom.dcmread(world.store.path(_stored_uid(world, study)))
    assert pydicom.dcmread(io.BytesIO(inst.to_bytes())).PixelData == original.PixelData
    assert verify_released(world.suite, world.people.site.address, key, inst)


def _stored_uid(world: World, study: str) -> str:
    return world.store.instances(study)[0].sop_instance_uid


def test_release_burned_in_annotation_refused_when_deidentifying(world: World) -> None:
    world.register(BURNED_STUDY)
    world.grant(identified=False)

    with pytest.raises(errors.BurnedInAnnotationError):
        world.gateway.release(BURNED_STUDY, world.people.requester.address, "TREAT")

    assert not world.logs("AccessGranted")
    assert len(world.logs("BatchAnchored")) == 1  # the refusal, as a one-record batch


# --- break-glass -------------------------------------------------------------------------------


def test_break_glass_by_emergency_clinician(world: World) -> None:
    key = world.register(CT_STUDY)
    reason = "unconscious patient in the emergency room"

    signed = world.gateway.break_glass_request(world.people.doctor, CT_STUDY, reason)

    release = world.gateway.release(
        CT_STUDY, world.people.doctor.address, "TREAT", break_glass=signed
    )

    assert release.break_glass and release.identified and release.purpose is Purpose.ETREAT
    assert release.request_id == signed.request_id and release.site == world.people.site.address
    (event,) = world.logs("BreakGlassAccess", requestId=release.request_id)
    assert event["args"]["reasonCommitment"] == reason_commitment(PEPPER, reason)
    assert event["args"]["reasonCommitment"] != keccak(reason.encode())
    assert event["args"]["clinician"] == world.people.doctor.address
    assert event["args"]["patient"] == world.people.patient.address
    assert all(
        verify_released(world.suite, world.people.site.address, key, inst)
        for inst in release.instances
    )


def test_break_glass_refused_for_non_emergency(world: World) -> None:
    world.register(CT_STUDY)
    world.grant()  # even with consent, break-glass needs the role

    signed = world.gateway.break_glass_request(world.people.requester, CT_STUDY, "urgent")

    with pytest.raises(errors.NotEmergencyError):
        world.gateway.release(CT_STUDY, world.people.requester.address, "TREAT", break_glass=signed)

    assert not world.logs("BreakGlassAccess") and not world.logs("AccessGranted")
    (anchor,) = world.logs("BatchAnchored")  # the refused attempt, permitted = false
    assert anchor["args"]["count"] == 1


# --- integrity ---------------------------------------------------------------------------------


def test_tampered_pixel_refused_nothing_returned(world: World, tmp_path: Path) -> None:
    store = FolderStore(build_ct_study(tmp_path, 3))
    world.register(CT_STUDY, store)
    world.grant()
    victim = tmp_path / "ct2.dcm"
    data = bytearray(victim.read_bytes())
    data[-1000] ^= 0x01  # one pixel byte (CT_small ends with 138 bytes of trailing padding)
    victim.write_bytes(bytes(data))
    store.refresh()
    gateway = world.gateway_for(store)

    with pytest.raises(errors.IntegrityError, match="do not match its content root") as caught:
        gateway.release(CT_STUDY, world.people.requester.address, "TREAT")

    assert caught.value.request_id is not None
    assert not world.logs("AccessGranted")
    assert len(world.logs("BatchAnchored")) == 1


def test_tampered_file_without_refresh_refused(world: World, tmp_path: Path) -> None:
    store = FolderStore(build_ct_study(tmp_path, 2))
    world.register(CT_STUDY, store)
    world.grant()
    victim = tmp_path / "ct1.dcm"
    victim.write_bytes(victim.read_bytes() + b"\x00\x00")
    gateway = world.gateway_for(store)

    with pytest.raises(errors.StaleIndexError):
        gateway.release(CT_STUDY, world.people.requester.address, "TREAT")
    assert not world.logs("AccessGranted")


def test_truncated_instance_reported_and_release_refused(world: World, tmp_path: Path) -> None:
    store = FolderStore(build_ct_study(tmp_path, 3))
    world.register(CT_STUDY, store)
    world.grant()
    victim = tmp_path / "ct3.dcm"
    victim.write_bytes(victim.read_bytes()[:-500])
    store.refresh()
    gateway = world.gateway_for(store)

    with pytest.raises(errors.IntegrityError):
        gateway.release(CT_STUDY, world.people.requester.address, "TREAT")

    assert [p.path.name for p in store.problems()] == ["ct3.dcm"]
    assert "truncated" in store.problems()[0].error or "ends" in store.problems()[0].error
    assert not world.logs("AccessGranted")


def test_store_reports_bad_files(world: World) -> None:
    names = sorted(p.path.name for p in world.store.problems())

    assert names == ["badvr.dcm", "truncated.dcm"]


def test_altered_released_instance_does_not_verify(world: World) -> None:
    key = world.register(CT_STUDY)
    world.grant(identified=False)
    inst = world.gateway.release(CT_STUDY, world.people.requester.address, "TREAT").instances[0]
    altered = bytearray(inst.dataset.PixelData)
    altered[10] ^= 0x01
    forged = inst.dataset
    forged.PixelData = bytes(altered)

    def check(candidate: ReleasedInstance) -> bool:
        return verify_released(world.suite, world.people.site.address, key, candidate)

    assert check(inst)
    assert not check(replace(inst, data=dataset_bytes(forged)))
    assert not check(replace(inst, data=b"not dicom"))
    assert not check(replace(inst, proof=inst.proof[::-1]))


def test_write_release_verify_files_round_trip(world: World, tmp_path: Path) -> None:
    world.register(CT_STUDY)
    world.grant(identified=False)
    release = world.gateway.release(CT_STUDY, world.people.requester.address, "TREAT")

    written = write_release(release, tmp_path / "out")
    dicom_files = [p for p in written if p.suffix == ".dcm"]
    results = verify_files(world.suite, dicom_files, tmp_path / "out" / "proof.json")

    assert written[-1].name == "proof.json" and len(dicom_files) == 3
    assert all(results.values()) and len(results) == 3
    assert read_proofs(tmp_path / "out").study_key == release.study_key
    data = bytearray(dicom_files[0].read_bytes())
    data[-3] ^= 0x10
    dicom_files[0].write_bytes(bytes(data))
    stray = tmp_path / "out" / "stray.dcm"
    stray.write_bytes(dicom_files[1].read_bytes())
    again = verify_files(world.suite, [*dicom_files, stray], tmp_path / "out")
    assert again == {
        dicom_files[0]: False,
        dicom_files[1]: True,
        dicom_files[2]: True,
        stray: False,
    }


def test_read_proofs_malformed_typed(tmp_path: Path) -> None:
    (tmp_path / "proof.json").write_text('{"version": 7}')

    with pytest.raises(errors.ReleaseProofError):
        read_proofs(tmp_path)


# --- fail closed: the chain --------------------------------------------------------------------


def _dead_suite(suite: Suite, url: str, chain_id: int, timeout: float = 10.0) -> Suite:
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
    session = ChainSession(w3=w3, rpc_url=url, chain_id=chain_id)
    return replace(
        suite,
        session=session,
        consent=ConsentRegistry(session, suite.consent.address),
        studies=StudyRegistry(session, suite.studies.address),
        access_log=AccessLog(session, suite.access_log.address),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _gateway_then_dead(world: World, dead: Suite) -> ImageGateway:
    """A gateway set up on the live chain whose contracts then answer from ``dead``."""
    gateway = world.gateway_for(world.store)
    gateway.suite = dead
    return gateway


def test_chain_unreachable_nothing_released(world: World) -> None:
    world.register(MR_STUDY)
    world.grant()
    dead = _dead_suite(world.suite, f"http://127.0.0.1:{_free_port()}", world.chain.chain_id)
    session = dead.session

    with pytest.raises(errors.ChainUnavailableError):  # it cannot even learn its site
        ImageGateway(
            dead,
            TransactionSender(session, world.people.gateway),
            world.store,
            PEPPER,
            outbox_path=world.work / "dead.db",
        )
    with pytest.raises(errors.ChainUnavailableError):
        _gateway_then_dead(world, dead).release(MR_STUDY, world.people.requester.address, "TREAT")
    with pytest.raises(errors.ChainUnavailableError):
        verify_files(dead, [world.store.path(MR_UID)], _proofs_for(world, MR_UID))


def _proofs_for(world: World, uid: str) -> ReleaseProofs:
    digest = walk_dicom(world.store.path(uid).read_bytes()).digest
    assert digest is not None
    entry = InstanceProof(bytes(32), digest, ())
    return ReleaseProofs(
        world.people.site.address,
        study_key(PEPPER, MR_STUDY),
        bytes(32),
        True,
        False,
        ContentProtocol.V2,
        MappingProxyType({world.store.path(uid).name: entry}),
    )


def test_chain_silent_times_out_nothing_released(world: World) -> None:
    world.register(MR_STUDY)
    world.grant()
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        dead = _dead_suite(world.suite, url, world.chain.chain_id, timeout=0.3)
        gateway = _gateway_then_dead(world, dead)

        with pytest.raises(errors.ChainUnavailableError):
            gateway.release(MR_STUDY, world.people.requester.address, "TREAT")


def test_chain_stopped_mid_run(world: World, tmp_path: Path) -> None:
    """A chain of its own, stopped after the first release: the second one fails closed."""
    with LocalChain("ganache") as chain:
        people = actors(chain)
        suite = deploy_suite(chain, people)
        register_study(
            suite,
            sender_for(chain.session, people.site),
            world.store,
            PEPPER,
            MR_STUDY,
            people.patient.address,
        )
        grant(suite, sender_for(chain.session, people.patient), people.requester.address)
        gateway = ImageGateway(
            suite,
            sender_for(chain.session, people.gateway),
            world.store,
            PEPPER,
            outbox_path=tmp_path / "ob.db",
        )
        assert gateway.release(MR_STUDY, people.requester.address, "TREAT").instances
        session = chain.session
        chain.stop()

        with pytest.raises(errors.ChainUnavailableError):
            gateway.release(MR_STUDY, people.requester.address, "TREAT")
        assert session.rpc_url  # the gateway kept the dead session, and failed closed


# --- batched logging ---------------------------------------------------------------------------


def test_batched_release_outbox_then_anchor(world: World, tmp_path: Path) -> None:
    key = world.register(CT_STUDY)
    world.grant()
    gateway = world.gateway_for(
        world.store, log_mode=LogMode.BATCHED, outbox_path=tmp_path / "ob.db"
    )

    release = gateway.release(CT_STUDY, world.people.requester.address, "TREAT")
    with pytest.raises(errors.ConsentDeniedError) as denied:
        gateway.release(CT_STUDY, world.people.stranger.address, "TREAT")
    assert release.batch_request_logged and release.log_tx is None
    assert not world.logs("AccessGranted") and not world.logs("AccessDenied")
    assert gateway.outbox is not None and gateway.outbox.pending_count() == 2
    batches = gateway.flush()
    second = gateway.flush()

    assert len(batches) == 1 and batches[0].count == 2 and second == []
    (anchor,) = world.logs("BatchAnchored")
    assert anchor["args"]["batchId"] == batches[0].batch_id
    assert anchor["args"]["gateway"] == world.people.gateway.address
    log = world.suite.access_log.functions
    for request_id, permitted in ((release.request_id, True), (denied.value.request_id, False)):
        found = gateway.outbox.batch_of(request_id)
        assert found is not None
        _batch, proof = found
        entry = next(e for e in gateway.outbox.entries() if e.request_id == request_id)
        record = AccessRecord.from_json(entry.record)
        assert record.permitted is permitted and record.study_key == key
        assert log.recordLeaf(record.as_tuple()).call() == entry.leaf == record.leaf()
        root, gateway_address = anchor["args"]["root"], world.people.gateway.address
        assert log.verifyRecord(root, gateway_address, record.as_tuple(), proof).call()
        assert not log.verifyRecord(
            root, world.people.stranger.address, record.as_tuple(), proof
        ).call()
    gateway.close()


def test_batched_break_glass_is_sync(world: World, tmp_path: Path) -> None:
    world.register(MR_STUDY)
    gateway = world.gateway_for(world.store, log_mode="batched", outbox_path=tmp_path / "ob.db")

    signed = gateway.break_glass_request(world.people.doctor, MR_STUDY, "x")

    release = gateway.release(MR_STUDY, world.people.doctor.address, "ETREAT", break_glass=signed)

    assert release.log_tx is not None and not release.batch_request_logged
    assert len(world.logs("BreakGlassAccess", requestId=release.request_id)) == 1
    assert gateway.outbox is not None and gateway.outbox.pending_count() == 0
    gateway.close()


def test_gateway_needs_outbox(world: World) -> None:
    for mode in LogMode:
        with pytest.raises(ValueError, match="outbox"):
            world.gateway_for(world.store, log_mode=mode, outbox_path=None)


def test_release_secret_derives_per_release(world: World) -> None:
    world.register(MR_STUDY)
    world.grant(identified=False)
    gateway = world.gateway_for(world.store, release_secret=os.urandom(32))

    a = gateway.release(MR_STUDY, world.people.requester.address, "TREAT")
    b = gateway.release(MR_STUDY, world.people.requester.address, "TREAT")

    assert a.instances[0].sop_instance_uid != b.instances[0].sop_instance_uid
    assert pixel_hash(io.BytesIO(a.instances[0].to_bytes())) == a.instances[0].pixel_hash
