"""The DICOMweb service with Orthanc behind it: a real Orthanc (Debian's package, with its
DICOMweb plugin), the studies uploaded through its REST API and registered from it on Anvil,
a uvicorn server on loopback, and ``dicomweb-client`` as the imaging app signed in with a
wallet key.

Search and retrieval (study, series, instance, metadata) give Orthanc's own bytes; a stranger
is refused (403, recorded); a de-identified research retrieval verifies; an instance altered
inside Orthanc's storage is refused (502, recorded); Orthanc down gives a problem+json 502 and
releases nothing. Every release and refusal is then found on chain: an ``AccessGranted`` or
``AccessDenied`` event, or a record proved against an anchored batch root.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from eth_account.signers.local import LocalAccount
from orthanc_server import OrthancServer, running_orthanc
from release_samples import (
    CT_SERIES_A,
    CT_SERIES_B,
    CT_STUDY,
    MR_STUDY,
    RLE_STUDY,
    ROOT,
    Actors,
    actors,
    build_studies,
    deploy_suite,
    grant,
)
from test_server import Server, multipart_parts, problem, serve

from imaging_consent.access_log import AccessRecord
from imaging_consent.chain import LocalChain
from imaging_consent.consent import Purpose
from imaging_consent.contracts.deployment import Suite, sender_for
from imaging_consent.dicom import SitePepper
from imaging_consent.gateway import ImageGateway
from imaging_consent.provenance import PROOF_FILE, register_study, verify_release
from imaging_consent.stores import FolderStore, OrthancStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PEPPER = SitePepper(b"dicomweb-orthanc-tests-pepper-32")
STUDIES = (CT_STUDY, MR_STUDY, RLE_STUDY)


@dataclass
class World:
    chain: LocalChain
    suite: Suite
    people: Actors
    orthanc: OrthancServer
    ids: dict[str, str]  # SOP Instance UID -> Orthanc's instance id
    gateway: ImageGateway
    server: Server
    researcher: LocalAccount

    def logs(self, event: str, **match: Any) -> list[Any]:
        found = getattr(self.suite.access_log.events, event)().get_logs(from_block=0)
        return [log for log in found if all(log["args"][k] == v for k, v in match.items())]

    def client(self, token: str, purpose: str = "TREAT") -> tuple[DICOMwebClient, list[Any]]:
        """dicomweb-client as the imaging app, and the headers of every response it got."""
        seen: list[Any] = []

        def keep(response: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append(response.headers)
            return response

        headers = {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": purpose}
        return DICOMwebClient(f"{self.server.base}/dicom-web", headers=headers, callback=keep), seen

    def orthanc_bytes(self, sop_uid: str) -> bytes:
        """The instance's file as Orthanc serves it (its REST API)."""
        with self.orthanc.http() as http:
            answer = http.get(f"{self.orthanc.url}/instances/{self.ids[sop_uid]}/file", timeout=30)
        answer.raise_for_status()
        return bytes(answer.content)


def upload(server: OrthancServer, folder: FolderStore, studies: tuple[str, ...]) -> dict[str, str]:
    """``POST /instances`` every file of ``studies``; return Orthanc's id of each instance."""
    ids = {}
    for study in studies:
        for record in folder.instances(study):
            answer = server.upload(folder.path(record.sop_instance_uid))
            assert answer["Status"] == "Success"
            ids[record.sop_instance_uid] = str(answer["ID"])
    return ids


def register_all(suite: Suite, chain: LocalChain, people: Actors, store: OrthancStore) -> None:
    site = sender_for(chain.session, people.site)
    for uid in STUDIES:
        register_study(suite, site, store, PEPPER, uid, people.patient.address)


def on_chain(world: World, gateway: ImageGateway, request_id: bytes) -> str:
    """How the record of ``request_id`` is on chain: an event, or anchored in a batch."""
    if world.logs("AccessGranted", requestId=request_id):
        return "AccessGranted"
    if world.logs("AccessDenied", requestId=request_id):
        return "AccessDenied"
    found = gateway.outbox.batch_of(request_id)
    assert found is not None, "the record is neither an event nor in an anchored batch"
    batch, proof = found
    (entry,) = [e for e in gateway.outbox.entries() if e.request_id == request_id]
    record = AccessRecord.from_json(entry.record).as_tuple()
    roots = {bytes(log["args"]["root"]) for log in world.logs("BatchAnchored")}
    assert batch.root in roots
    assert world.suite.access_log.verify_record(batch.root, gateway.address, record, proof)
    return f"anchored: {entry.reason}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = FolderStore(build_studies(tmp_path_factory.mktemp("studies")))
    with (
        running_orthanc(tmp_path_factory.mktemp("orthanc")) as orthanc,
        LocalChain("anvil", accounts=10) as chain,
    ):
        ids = upload(orthanc, folder, STUDIES)
        store = orthanc.store()
        people = actors(chain)
        suite = deploy_suite(chain, people)
        register_all(suite, chain, people, store)
        patient = sender_for(chain.session, people.patient)
        researcher = chain.accounts[7]
        grant(suite, patient, people.requester.address, identified=True)
        grant(suite, patient, researcher.address, purposes=(Purpose.HRESCH,), identified=False)
        work = tmp_path_factory.mktemp("server")
        gateway = ImageGateway(
            suite,
            sender_for(chain.session, people.gateway),
            store,
            PEPPER,
            outbox_path=work / "outbox.sqlite3",
        )
        with gateway, serve(gateway, work / "work", chain.chain_id) as server:
            yield World(chain, suite, people, orthanc, ids, gateway, server, researcher)


def _uids(results: list[dict[str, Any]], keyword: str) -> set[str]:
    return {str(getattr(pydicom.Dataset.from_json(r), keyword)) for r in results}


def _rid(headers: Any) -> bytes:
    return bytes.fromhex(headers["X-Request-Id"].removeprefix("0x"))


def _keep(folder: Path, datasets: list[pydicom.Dataset], proof: dict[str, Any]) -> Path:
    """What a receiver keeps: the files as it received them, and the proofs."""
    folder.mkdir()
    for ds in datasets:
        ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    (folder / PROOF_FILE).write_text(json.dumps(proof))
    return folder / PROOF_FILE


def test_search_and_retrieve_from_orthanc(world: World, tmp_path: Path) -> None:
    token = world.server.sign_in(world.people.requester)
    client, seen = world.client(token)

    assert _uids(client.search_for_studies(), "StudyInstanceUID") == set(STUDIES)
    assert _uids(client.search_for_series(CT_STUDY), "SeriesInstanceUID") == {
        CT_SERIES_A,
        CT_SERIES_B,
    }
    assert _uids(client.search_for_instances(CT_STUDY, CT_SERIES_A), "SOPInstanceUID") == {
        ROOT + "1.1.1",
        ROOT + "1.1.2",
    }
    searched = len(seen)
    study = client.retrieve_study(CT_STUDY)
    study_rid = seen[-1]["X-Request-Id"]
    series = client.retrieve_series(CT_STUDY, CT_SERIES_B)
    instance = client.retrieve_instance(CT_STUDY, CT_SERIES_A, ROOT + "1.1.2")
    metadata = client.retrieve_study_metadata(CT_STUDY)
    raw = world.server.get(f"/dicom-web/studies/{MR_STUDY}", token)

    assert {ds.SOPInstanceUID for ds in study} == {ROOT + "1.1.1", ROOT + "1.1.2", ROOT + "1.2.1"}
    assert [ds.SOPInstanceUID for ds in series] == [ROOT + "1.2.1"]
    assert instance.SOPInstanceUID == ROOT + "1.1.2"
    assert len(metadata) == 3 and all("7FE00010" not in m and "00100010" in m for m in metadata)
    (mr_bytes,) = multipart_parts(raw)
    mr_uid = str(pydicom.dcmread(pydicom.filebase.DicomBytesIO(mr_bytes)).SOPInstanceUID)
    assert mr_bytes == world.orthanc_bytes(mr_uid)  # Orthanc's own bytes, unchanged
    for ds in study:
        assert (
            ds.PixelData
            == pydicom.dcmread(
                pydicom.filebase.DicomBytesIO(world.orthanc_bytes(ds.SOPInstanceUID))
            ).PixelData
        )
    proof = world.server.get(f"/proofs/{study_rid}", token).json()
    check = verify_release(world.suite, _keep(tmp_path / "got", study, proof))
    assert check.ok and len(check.files) == 3 and check.proofs.identified
    releases = [*seen[searched:], raw.headers]
    assert len(releases) == 5
    for headers in releases:  # each retrieval is its own release, on chain
        assert headers["X-Release"] == "identified"
        assert on_chain(world, world.gateway, _rid(headers)) == "AccessGranted"


def test_refusal_is_403_recorded_and_search_hides_orthancs_studies(world: World) -> None:
    token = world.server.sign_in(world.people.stranger)
    client, _ = world.client(token)

    assert client.search_for_studies() == []
    body = problem(world.server.get(f"/dicom-web/studies/{CT_STUDY}", token), 403)

    (denied,) = world.logs("AccessDenied", requestId=bytes.fromhex(body["requestId"][2:]))
    assert denied["args"]["accessor"] == world.people.stranger.address
    assert not world.logs("AccessGranted", accessor=world.people.stranger.address)


def test_deidentified_research_retrieval_from_orthanc_verifies(
    world: World, tmp_path: Path
) -> None:
    token = world.server.sign_in(world.researcher)
    client, seen = world.client(token, purpose="HRESCH")
    (ct,) = [s for s in client.search_for_studies() if s["00080061"]["Value"] == ["CT"]]
    pseudo = ct["0020000D"]["Value"][0]

    study = client.retrieve_study(pseudo)
    rid = seen[-1]["X-Request-Id"]
    metadata = client.retrieve_study_metadata(pseudo)

    assert pseudo != CT_STUDY and seen[-2]["X-Release"] == "de-identified" and len(study) == 3
    for ds in study:
        assert ds.StudyInstanceUID != CT_STUDY and not str(ds.get("PatientName", ""))
        assert ds.PatientIdentityRemoved == "YES"
    assert all(not m.get("00100010", {}).get("Value") for m in metadata)
    proof = world.server.get(f"/proofs/{rid}", token).json()
    check = verify_release(world.suite, _keep(tmp_path / "research", study, proof))
    assert check.ok and len(check.files) == 3 and not check.proofs.identified
    for headers in seen[-2:]:
        assert on_chain(world, world.gateway, _rid(headers)) == "AccessGranted"


def test_instance_altered_inside_orthanc_is_refused_and_recorded(world: World) -> None:
    token = world.server.sign_in(world.people.requester)
    (sop_uid,) = [uid for uid in world.ids if uid.startswith(ROOT + "2.")]  # the RLE study
    stored = world.orthanc.attachment(world.ids[sop_uid])
    data = bytearray(stored.read_bytes())
    data[-200] ^= 0x01  # inside the compressed pixels, in place: Orthanc serves it as is
    stored.write_bytes(bytes(data))

    body = problem(world.server.get(f"/dicom-web/studies/{RLE_STUDY}", token), 502)

    assert "integrity" in body["title"].lower() and "content root" in body["detail"]
    request_id = bytes.fromhex(body["requestId"][2:])
    assert on_chain(world, world.gateway, request_id) == "anchored: IntegrityError"


def test_orthanc_down_is_502_problem_and_nothing_released(
    world: World, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = FolderStore(build_studies(tmp_path_factory.mktemp("studies-down")))
    with running_orthanc(tmp_path / "orthanc") as orthanc:
        upload(orthanc, folder, (MR_STUDY,))
        store = orthanc.store(timeout=2)
        gateway = ImageGateway(
            world.suite,
            sender_for(world.chain.session, world.people.gateway),
            store,
            PEPPER,
            outbox_path=tmp_path / "outbox.sqlite3",
        )
        with gateway, serve(gateway, tmp_path / "work", world.chain.chain_id) as server:
            token = server.sign_in(world.people.requester)
            assert server.get(f"/dicom-web/studies/{MR_STUDY}", token).status_code == 200
            orthanc.process.terminate()
            orthanc.process.wait(10)

            retrieval = problem(server.get(f"/dicom-web/studies/{MR_STUDY}", token), 502)
            search = problem(server.get("/dicom-web/studies", token), 502)

            for body in (retrieval, search):
                assert body["title"] == "Image store unavailable"
                assert orthanc.password not in json.dumps(body)
            assert not any((tmp_path / "work" / "releases").iterdir())  # nothing released
            (refusal,) = [e for e in gateway.outbox.entries() if e.reason]
            assert refusal.reason == "StoreUnavailableError"
            assert on_chain(world, gateway, refusal.request_id) == (
                "anchored: StoreUnavailableError"
            )
