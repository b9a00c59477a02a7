"""The DICOMweb service end to end: a real uvicorn server on loopback, real chains, and
``dicomweb-client`` as the imaging app, signed in with a wallet key (Sign-In with Ethereum).

One Ganache chain and one server (sync logging) serve most tests; each test uses its own
accounts, so none depends on another's grants. A second server on Anvil runs batched logging
(flushed on a timer) and then loses its chain.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import jwt
import pydicom
import pytest
import uvicorn
from dicomweb_client.api import DICOMwebClient
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
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
    revoke,
)
from siwe.siwe import ISO8601Datetime, SiweMessage

from imaging_consent.chain import LocalChain
from imaging_consent.consent import Purpose
from imaging_consent.consent.signing import sign_typed_data
from imaging_consent.contracts.deployment import Suite, sender_for
from imaging_consent.dicom import SitePepper
from imaging_consent.gateway import ImageGateway, LogMode
from imaging_consent.provenance import PROOF_FILE, register_study, verify_release
from imaging_consent.server import ServerSettings, create_app
from imaging_consent.server.break_glass import HEADER, REASON_HEADER, header_value
from imaging_consent.stores import FolderStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PEPPER = SitePepper(b"dicomweb-service-tests-pepper-32")
WALLET_BUILD = Path(__file__).resolve().parents[2] / "build" / "contracts" / "MockWallet1271.json"

# --- the harness -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Clock:
    """The server's clock, which a test can move forward."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Server:
    """A running server: its URL, clock and gateway."""

    base: str
    gateway: ImageGateway
    chain_id: int
    clock: Clock = field(default_factory=Clock)

    @property
    def domain(self) -> str:
        return self.base.removeprefix("http://")

    def message(
        self,
        account: LocalAccount | str,
        nonce: str,
        *,
        domain: str | None = None,
        uri: str | None = None,
        chain_id: int | None = None,
        expires_in: float | None = 600,
        issued_at: datetime | None = None,
    ) -> str:
        """An EIP-4361 message for this server (or with one field changed)."""
        now = issued_at or datetime.now(tz=timezone.utc)
        address = account if isinstance(account, str) else account.address
        expiry = None if expires_in is None else now + timedelta(seconds=expires_in)
        return SiweMessage(
            domain=domain or self.domain,
            address=address,
            uri=uri or f"{self.base}/",
            version="1",
            chain_id=self.chain_id if chain_id is None else chain_id,
            issued_at=ISO8601Datetime.from_datetime(now),
            expiration_time=None if expiry is None else ISO8601Datetime.from_datetime(expiry),
            nonce=nonce,
            statement="Sign in to the imaging gateway.",
        ).prepare_message()

    def nonce(self) -> str:
        nonce: str = httpx.post(f"{self.base}/auth/nonce").json()["nonce"]
        return nonce

    def login(self, message: str, signer: LocalAccount) -> httpx.Response:
        signature = signer.sign_message(encode_defunct(text=message)).signature
        return httpx.post(
            f"{self.base}/auth/login",
            json={"message": message, "signature": "0x" + bytes(signature).hex()},
        )

    def sign_in(self, account: LocalAccount) -> str:
        """Sign in with the account's key; return the bearer token."""
        answer = self.login(self.message(account, self.nonce()), account)
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    def get(self, path: str, token: str | None, **headers: str) -> httpx.Response:
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return httpx.get(f"{self.base}{path}", headers=sent, timeout=60)


@contextmanager
def serve(gateway: ImageGateway, work: Path, chain_id: int, **settings: Any) -> Iterator[Server]:
    """Run the app on a free loopback port in a thread; stop it (and flush) at the end."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    clock = Clock()
    app = create_app(
        ServerSettings(public_url=base, work_dir=work, **settings), gateway, clock=clock
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Server(base, gateway, chain_id, clock)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def multipart_parts(response: httpx.Response) -> list[bytes]:
    """The bodies of a multipart/related response."""
    match = re.search(r'boundary="?([^";]+)', response.headers["content-type"])
    assert match is not None
    marker = b"--" + match.group(1).encode()
    parts = []
    for chunk in response.content.split(marker)[1:]:
        if chunk.startswith(b"--"):
            break
        _head, _, body = chunk.partition(b"\r\n\r\n")
        parts.append(body.removesuffix(b"\r\n"))
    return parts


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem+json body of a refused request, checked to carry no trace."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in response.text and 'File "' not in response.text
    body: dict[str, Any] = json.loads(response.text)
    assert body["status"] == status and body["title"]
    return body


# --- the site: one Ganache chain, one store, one server ----------------------------------------


@dataclass
class World:
    chain: LocalChain
    suite: Suite
    people: Actors
    store: FolderStore
    server: Server
    researcher: LocalAccount
    leaver: LocalAccount  # granted, then revoked
    owner: LocalAccount  # owns the EIP-1271 wallet
    nobody: LocalAccount

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


ORIGIN = "https://viewer.example.org"


def _register(
    suite: Suite, chain: LocalChain, people: Actors, store: FolderStore, uid: str
) -> None:
    register_study(
        suite, sender_for(chain.session, people.site), store, PEPPER, uid, people.patient.address
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with LocalChain("ganache", accounts=12) as chain:
        people = actors(chain)
        suite = deploy_suite(chain, people)
        store = FolderStore(build_studies(tmp_path_factory.mktemp("studies")))
        for uid in (CT_STUDY, MR_STUDY, RLE_STUDY):
            _register(suite, chain, people, store, uid)
        patient = sender_for(chain.session, people.patient)
        researcher, leaver = chain.accounts[7], chain.accounts[8]
        grant(suite, patient, people.requester.address, identified=True)
        grant(suite, patient, researcher.address, purposes=(Purpose.HRESCH,), identified=False)
        grant(suite, patient, leaver.address, identified=True)
        work = tmp_path_factory.mktemp("server")
        gateway = ImageGateway(
            suite,
            sender_for(chain.session, people.gateway),
            store,
            PEPPER,
            outbox_path=work / "outbox.sqlite3",
        )
        with (
            gateway,
            serve(gateway, work / "work", chain.chain_id, allowed_origins=(ORIGIN,)) as server,
        ):
            yield World(
                chain,
                suite,
                people,
                store,
                server,
                researcher,
                leaver,
                chain.accounts[9],
                chain.accounts[10],
            )


def _uids(results: list[dict[str, Any]], keyword: str) -> set[str]:
    return {str(getattr(pydicom.Dataset.from_json(r), keyword)) for r in results}


def _request_id(headers: Any) -> bytes:
    return bytes.fromhex(headers["X-Request-Id"].removeprefix("0x"))


def _save_release(folder: Path, files: list[bytes], proof: dict[str, Any]) -> Path:
    """What a receiver keeps: the files under their released names, and the proofs."""
    folder.mkdir()
    for data in files:
        ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
        (folder / f"{ds.SOPInstanceUID}.dcm").write_bytes(data)
    (folder / PROOF_FILE).write_text(json.dumps(proof))
    return folder / PROOF_FILE


# --- sign in, search, retrieve -----------------------------------------------------------------


def test_search_and_retrieve_what_consent_allows(world: World, tmp_path: Path) -> None:
    token = world.server.sign_in(world.people.requester)
    client, seen = world.client(token)

    studies = client.search_for_studies()
    assert _uids(studies, "StudyInstanceUID") == {CT_STUDY, MR_STUDY, RLE_STUDY}  # registered
    assert _uids(
        client.search_for_studies(search_filters={"ModalitiesInStudy": "CT"}), "StudyInstanceUID"
    ) == {CT_STUDY}
    assert len(client.search_for_studies(limit=1, offset=1)) == 1
    only_mr = client.search_for_studies(search_filters={"StudyInstanceUID": MR_STUDY})
    assert _uids(only_mr, "StudyInstanceUID") == {MR_STUDY} and "00080020" in only_mr[0]
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
    series = client.retrieve_series(CT_STUDY, CT_SERIES_B)
    instance = client.retrieve_instance(CT_STUDY, CT_SERIES_A, ROOT + "1.1.2")
    metadata = client.retrieve_study_metadata(CT_STUDY)

    assert {ds.SOPInstanceUID for ds in study} == {ROOT + "1.1.1", ROOT + "1.1.2", ROOT + "1.2.1"}
    for ds in study:
        original = pydicom.dcmread(world.store.path(ds.SOPInstanceUID))
        assert ds.PixelData == original.PixelData and ds.PatientName == original.PatientName
    assert [ds.SOPInstanceUID for ds in series] == [ROOT + "1.2.1"]
    assert instance.SOPInstanceUID == ROOT + "1.1.2"
    assert len(metadata) == 3 and all("7FE00010" not in m and "00100010" in m for m in metadata)
    releases = seen[searched:]
    for headers in releases:  # each retrieval is its own recorded release
        assert headers["X-Release"] == "identified"
        (granted,) = world.logs("AccessGranted", requestId=_request_id(headers))
        assert granted["args"]["accessor"] == world.people.requester.address
        assert headers["X-Access-Log"].endswith("tx=0x" + bytes(granted["transactionHash"]).hex())

    raw = world.server.get(f"/dicom-web/studies/{MR_STUDY}", token)
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    rid = raw.headers["X-Request-Id"]
    assert raw.headers["Link"] == f'</proofs/{rid}>; rel="proof"'
    proof = world.server.get(f"/proofs/{rid}", token)
    parts = multipart_parts(raw)
    check = verify_release(world.suite, _save_release(tmp_path / "got", parts, proof.json()))
    assert check.ok and len(check.files) == 1
    assert (
        parts[0]
        == world.store.path(
            str(pydicom.dcmread(pydicom.filebase.DicomBytesIO(parts[0])).SOPInstanceUID)
        ).read_bytes()
    )
    other = world.server.sign_in(world.nobody)
    problem(world.server.get(f"/proofs/{rid}", other), 404)  # only the requester reads it


def test_refusal_is_403_recorded_and_search_hides_the_study(world: World) -> None:
    token = world.server.sign_in(world.people.stranger)
    client, _ = world.client(token)

    assert client.search_for_studies() == []
    body = problem(world.server.get(f"/dicom-web/studies/{CT_STUDY}", token), 403)
    problem(world.server.get(f"/dicom-web/studies/{CT_STUDY}/series", token), 404)

    assert CT_STUDY not in json.dumps(body) and "0x" + "" in body["requestId"]
    (denied,) = world.logs("AccessDenied", requestId=bytes.fromhex(body["requestId"][2:]))
    assert denied["args"]["accessor"] == world.people.stranger.address
    assert not world.logs("AccessGranted", accessor=world.people.stranger.address)


def test_revocation_between_two_retrievals(world: World) -> None:
    token = world.server.sign_in(world.leaver)
    first = world.server.get(f"/dicom-web/studies/{MR_STUDY}", token)
    revoke(world.suite, sender_for(world.chain.session, world.people.patient), world.leaver.address)
    second = world.server.get(f"/dicom-web/studies/{MR_STUDY}", token)

    assert first.status_code == 200 and len(multipart_parts(first)) == 1
    refused = problem(second, 403)
    assert world.logs("AccessGranted", requestId=_request_id(first.headers))
    assert world.logs("AccessDenied", requestId=bytes.fromhex(refused["requestId"][2:]))


def test_deidentified_research_retrieval_verifies(world: World, tmp_path: Path) -> None:
    token = world.server.sign_in(world.researcher)
    client, seen = world.client(token, purpose="HRESCH")
    treat, _ = world.client(token, purpose="TREAT")

    studies = client.search_for_studies()
    assert treat.search_for_studies() == []  # the grant is for research only
    named = _uids(studies, "StudyInstanceUID")
    assert len(named) == 3 and not named & {CT_STUDY, MR_STUDY, RLE_STUDY}
    assert all("00080020" not in s for s in studies)  # no dates for de-identified callers
    assert client.search_for_studies(search_filters={"StudyDate": "19000101-"}) == []
    (ct,) = [s for s in studies if s["00080061"]["Value"] == ["CT"]]
    pseudo = ct["0020000D"]["Value"][0]
    assert client.search_for_studies(search_filters={"StudyInstanceUID": pseudo}) == [ct]
    series = client.search_for_series(pseudo)
    assert len(series) == 2 and not _uids(series, "SeriesInstanceUID") & {CT_SERIES_A, CT_SERIES_B}

    study = client.retrieve_study(pseudo)
    rid = seen[-1]["X-Request-Id"]
    one_series = client.retrieve_series(pseudo, series[0]["0020000E"]["Value"][0])
    metadata = client.retrieve_study_metadata(pseudo)

    assert seen[-3]["X-Release"] == "de-identified" and len(study) == 3 and one_series
    for ds in study:
        assert ds.StudyInstanceUID != CT_STUDY and not str(ds.get("PatientName", ""))
        assert ds.PatientIdentityRemoved == "YES"
    assert all(not m.get("00100010", {}).get("Value") for m in metadata)
    assert all(m["0020000D"]["Value"][0] != CT_STUDY for m in metadata)
    folder = tmp_path / "research"
    folder.mkdir()
    for ds in study:  # what the app kept, saved as it received it
        ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    proof = world.server.get(f"/proofs/{rid}", token).json()
    (folder / PROOF_FILE).write_text(json.dumps(proof))
    check = verify_release(world.suite, folder / PROOF_FILE)
    assert check.ok and len(check.files) == 3 and not check.proofs.identified
    assert world.logs("AccessGranted", requestId=bytes.fromhex(rid[2:]))


def test_tampered_file_is_5xx_and_recorded(world: World) -> None:
    token = world.server.sign_in(world.people.requester)
    (record,) = world.store.instances(RLE_STUDY)
    victim = world.store.path(record.sop_instance_uid)
    data = bytearray(victim.read_bytes())
    data[-200] ^= 0x01  # inside the compressed pixels
    victim.write_bytes(bytes(data))
    world.store.refresh()
    anchored = len(world.logs("BatchAnchored"))

    body = problem(world.server.get(f"/dicom-web/studies/{RLE_STUDY}", token), 502)

    assert "integrity" in body["title"].lower() and "content root" in body["detail"]
    assert not world.logs("AccessGranted", requestId=bytes.fromhex(body["requestId"][2:]))
    assert len(world.logs("BatchAnchored")) == anchored + 1  # the refusal, anchored at once


# --- bad input ---------------------------------------------------------------------------------


def test_sign_in_refusals_are_401(world: World) -> None:
    server, me = world.server, world.people.requester
    message = server.message(me, server.nonce())
    assert server.login(message, me).status_code == 200
    cases = {
        "replayed nonce": (message, me),
        "unknown nonce": (server.message(me, "neverissued123"), me),
        "other domain": (server.message(me, server.nonce(), domain="evil.example.org"), me),
        "other uri": (server.message(me, server.nonce(), uri="https://evil.example.org/"), me),
        "other chain": (server.message(me, server.nonce(), chain_id=1), me),
        "expired message": (
            server.message(
                me,
                server.nonce(),
                expires_in=-1,
                issued_at=datetime.now(tz=timezone.utc) - timedelta(seconds=30),
            ),
            me,
        ),
        "someone else's signature": (server.message(me, server.nonce()), world.nobody),
        "not a message": ("hello", me),
    }
    for case, (text, signer) in cases.items():
        body = problem(server.login(text, signer), 401)
        assert body["detail"], case


def test_token_refusals_are_401(world: World) -> None:
    server = world.server
    token = server.sign_in(world.people.requester)
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(claims, "another-secret-of-thirty-two-bytes!", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    path = "/dicom-web/studies"

    assert server.get(path, token).status_code == 200
    for bad in (None, "garbage", forged, unsigned):
        response = problem(server.get(path, bad), 401)
        assert response["title"] == "Not signed in"
    server.clock.offset = 901  # past the 15-minute lifetime
    try:
        assert "expired" in problem(server.get(path, token), 401)["detail"]
    finally:
        server.clock.offset = 0
    assert claims["exp"] - claims["iat"] <= 900 and claims["chain_id"] == world.chain.chain_id


def test_bad_requests_have_their_status(world: World) -> None:
    server = world.server
    token = server.sign_in(world.people.requester)
    long_uid = "1." + "2" * 63
    for path in (
        "/dicom-web/studies/1.2.abc",
        f"/dicom-web/studies/{long_uid}",
        "/dicom-web/studies/1.02.3/metadata",
        "/dicom-web/studies?PatientID=123",
        "/dicom-web/studies?limit=-1",
        "/dicom-web/studies?Foo=bar",
        "/proofs/0x1234",
    ):
        problem(server.get(path, token), 400)
    problem(server.get(f"/dicom-web/studies/{CT_STUDY}", token, X_Purpose_Of_Use="NOPE"), 400)
    problem(server.get("/dicom-web/studies", token, X_Purpose_Of_Use="NOPE"), 400)
    for path in (
        "/dicom-web/studies/1.2.3.4",
        f"/dicom-web/studies/{CT_STUDY}/series/1.2.3",
        f"/dicom-web/studies/{CT_STUDY}/series/{CT_SERIES_A}/instances/1.2.3",
        "/proofs/0x" + "ab" * 32,
        "/no/such/route",
    ):
        problem(server.get(path, token), 404)
    ct = f"/dicom-web/studies/{CT_STUDY}"
    problem(server.get(ct, token, Accept="application/pdf"), 406)
    problem(
        server.get(f"{ct}/metadata", token, Accept='multipart/related; type="application/dicom"'),
        406,
    )
    explicit_be = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.2'
    problem(server.get(ct, token, Accept=explicit_be), 406)
    assert not world.logs("AccessGranted", accessor=world.people.requester.address, purpose=99)


def test_cors_allows_the_configured_origin_only(world: World) -> None:
    preflight = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, x-purpose-of-use",
    }
    url = f"{world.server.base}/dicom-web/studies"
    allowed = httpx.options(url, headers={"Origin": ORIGIN, **preflight})
    refused = httpx.options(url, headers={"Origin": "https://evil.example.org", **preflight})
    token = world.server.sign_in(world.people.requester)
    simple = world.server.get("/dicom-web/studies", token, Origin=ORIGIN)

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-credentials" not in allowed.headers
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "X-Request-Id" in simple.headers["access-control-expose-headers"]


# --- break-glass and contract wallets ---------------------------------------------------------


def _break_glass(world: World, who: LocalAccount, reason: str) -> tuple[str, dict[str, str]]:
    token = world.server.sign_in(who)
    typed = httpx.post(
        f"{world.server.base}/break-glass",
        json={"study": MR_STUDY, "reason": reason},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["typedData"]
    signature = sign_typed_data(typed, who)
    return token, {HEADER: header_value(typed, signature), REASON_HEADER: reason}


def test_break_glass_by_the_emergency_clinician_only(world: World) -> None:
    reason = "unconscious patient in resus"
    token, headers = _break_glass(world, world.people.doctor, reason)
    url = f"{world.server.base}/dicom-web/studies/{MR_STUDY}"

    opened = httpx.get(url, headers={"Authorization": f"Bearer {token}", **headers})
    replayed = httpx.get(url, headers={"Authorization": f"Bearer {token}", **headers})
    other_token, other = _break_glass(world, world.people.requester, reason)
    not_emergency = httpx.get(url, headers={"Authorization": f"Bearer {other_token}", **other})
    _, lied = _break_glass(world, world.people.doctor, reason)
    lied[REASON_HEADER] = "another reason"
    wrong_reason = httpx.get(url, headers={"Authorization": f"Bearer {token}", **lied})

    assert opened.status_code == 200 and "break-glass" in opened.headers["X-Release"]
    (event,) = world.logs("BreakGlassAccess", requestId=_request_id(opened.headers))
    assert event["args"]["clinician"] == world.people.doctor.address
    problem(replayed, 403)
    problem(not_emergency, 403)
    problem(wrong_reason, 403)
    assert len(world.logs("BreakGlassAccess")) == 1


def test_contract_wallet_signs_in_through_eip1271(world: World) -> None:
    if not WALLET_BUILD.is_file():
        pytest.skip(f"{WALLET_BUILD} is missing: run `make compile`")
    build = json.loads(WALLET_BUILD.read_text())
    session = world.chain.session
    factory = session.w3.eth.contract(abi=build["abi"], bytecode=build["bytecode"])
    mined = sender_for(session, world.owner).transact(factory.constructor(world.owner.address))
    wallet = mined.contract_address
    assert wallet is not None
    server = world.server

    signed_in = server.login(server.message(wallet, server.nonce()), world.owner)
    refused = server.login(server.message(wallet, server.nonce()), world.nobody)

    assert signed_in.status_code == 200
    claims = jwt.decode(signed_in.json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == wallet
    problem(refused, 401)


# --- batched logging on a timer, then the chain goes down (Anvil) ------------------------------


def test_batched_flushed_on_timer_then_chain_down_503(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    work = tmp_path_factory.mktemp("batched")
    store = FolderStore(build_studies(tmp_path_factory.mktemp("studies-anvil")))
    chain = LocalChain("anvil").start()
    try:
        people = actors(chain)
        suite = deploy_suite(chain, people)
        _register(suite, chain, people, store, MR_STUDY)
        grant(suite, sender_for(chain.session, people.patient), people.requester.address)
        gateway = ImageGateway(
            suite,
            sender_for(chain.session, people.gateway),
            store,
            PEPPER,
            log_mode=LogMode.BATCHED,
            outbox_path=work / "outbox.sqlite3",
        )
        with gateway, serve(gateway, work / "work", chain.chain_id, flush_interval=0.2) as server:
            token = server.sign_in(people.requester)
            released = server.get(f"/dicom-web/studies/{MR_STUDY}", token)
            assert released.status_code == 200
            assert released.headers["X-Access-Log"].endswith("outbox=batched")
            deadline = time.monotonic() + 15
            while not suite.access_log.events.BatchAnchored().get_logs(from_block=0):
                assert time.monotonic() < deadline, "the timer never anchored the outbox"
                time.sleep(0.1)

            chain.stop()
            down = server.get(f"/dicom-web/studies/{MR_STUDY}", token)
            search = server.get("/dicom-web/studies", token)

            assert "chain" in problem(down, 503)["title"].lower()
            problem(search, 503)
            assert not any((work / "work" / "releases").iterdir())  # nothing released
    finally:
        chain.stop()
