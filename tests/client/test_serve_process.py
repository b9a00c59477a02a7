"""``imaging-consent serve`` as a real process: started on a free loopback port with the
gateway key from a keystore or the environment, reached by ``dicomweb-client``, stopped by
SIGINT (exit 130) or SIGTERM (exit 0). In batched mode the outbox is anchored at shutdown: the
records of a release and of a refusal are found on chain only after the stop. No traceback on
stderr. Once over a folder and once over Orthanc; Anvil.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from orthanc_server import OrthancServer, free_port, running_orthanc
from release_samples import MR_STUDY, Actors, actors, build_studies, deploy_suite, grant
from test_server import Server, problem

from imaging_consent.access_log import AccessRecord, Outbox
from imaging_consent.chain import LocalChain, write_keystore
from imaging_consent.contracts.deployment import Suite, sender_for
from imaging_consent.dicom import SitePepper
from imaging_consent.provenance import register_study
from imaging_consent.stores import FolderStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SRC = Path(__file__).resolve().parents[2] / "src"
PEPPER = SitePepper(b"serve-process-tests-pepper-32by!")
PASSWORD = "gateway keystore password"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass
class Site:
    chain: LocalChain
    suite: Suite
    people: Actors
    root: Path
    studies: Path
    env: dict[str, str]

    def logs(self, event: str, **match: Any) -> list[Any]:
        found = getattr(self.suite.access_log.events, event)().get_logs(from_block=0)
        return [log for log in found if all(log["args"][k] == v for k, v in match.items())]

    def outbox(self) -> Path:
        gateway = self.people.gateway.address
        return self.root / f"outbox-{self.chain.chain_id}-{gateway}.sqlite3"

    def anchored(self, request_id: bytes) -> bool:
        """Whether the outbox's record of ``request_id`` proves against an anchored root."""
        with Outbox(self.outbox()) as outbox:
            found = outbox.batch_of(request_id)
            entries = {e.request_id: e for e in outbox.entries()}
        if found is None:
            return False
        batch, proof = found
        roots = {bytes(log["args"]["root"]) for log in self.logs("BatchAnchored")}
        record = AccessRecord.from_json(entries[request_id].record).as_tuple()
        gateway = self.people.gateway.address
        return batch.root in roots and self.suite.access_log.verify_record(
            batch.root, gateway, record, proof
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Anvil, a deployed suite, the MR study registered from a folder and granted."""
    root = tmp_path_factory.mktemp("serve-process")
    studies = build_studies(root / "studies")
    pepper_file = root / "site-pepper"
    pepper_file.write_text(PEPPER.reveal().hex())
    pepper_file.chmod(0o600)
    with LocalChain("anvil") as chain:
        people = actors(chain)
        suite = deploy_suite(chain, people)
        suite.manifest.write(root / "manifest.json")
        site_sender = sender_for(chain.session, people.site)
        register_study(
            suite, site_sender, FolderStore(studies), PEPPER, MR_STUDY, people.patient.address
        )
        grant(suite, sender_for(chain.session, people.patient), people.requester.address)
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGING_CONSENT_")}
        env.update(
            PYTHONPATH=str(SRC),
            COLUMNS="200",
            HOME=str(root),
            XDG_CONFIG_HOME=str(root / ".config"),
            IMAGING_CONSENT_RPC_URL=chain.rpc_url,
            IMAGING_CONSENT_MANIFEST=str(root / "manifest.json"),
            IMAGING_CONSENT_SITE_PEPPER_FILE=str(pepper_file),
        )
        yield Site(chain, suite, people, root, studies, env)


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    base: str
    stderr: Path


def start_serve(site: Site, env: dict[str, str], *args: str) -> Running:
    """Start ``imaging-consent serve`` on a free port; wait until it answers (3 port tries)."""
    for attempt in range(3):
        port = free_port()
        stderr = site.root / f"serve-{port}.err"
        with stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "imaging_consent", "serve", "--port", str(port), *args],
                env=env,
                cwd=site.root,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.post(f"{base}/auth/nonce", timeout=2).status_code == 200:
                    return Running(process, base, stderr)
            except httpx.TransportError:
                time.sleep(0.1)
        stop(process, signal.SIGKILL)
        if attempt == 2 or "address already in use" not in stderr.read_text().lower():
            pytest.fail(f"serve did not start:\n{stderr.read_text()[-3000:]}")
    raise AssertionError("unreachable")


def stop(process: subprocess.Popen[bytes], how: signal.Signals) -> int:
    if process.poll() is None:
        process.send_signal(how)
    try:
        return process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)
        raise


@pytest.fixture
def orthanc_mr(site: Site, tmp_path: Path) -> Iterator[OrthancServer]:
    """An Orthanc holding the MR study, uploaded through its REST API."""
    with running_orthanc(tmp_path / "orthanc") as server:
        assert server.upload(site.studies / "mr.dcm")["Status"] == "Success"
        yield server


def _keystore_env(site: Site) -> dict[str, str]:
    path = site.root / "gateway-keystore.json"
    if not path.exists():
        write_keystore(site.people.gateway, path, PASSWORD, iterations=2**12)
    return {"IMAGING_CONSENT_KEYSTORE": str(path), "IMAGING_CONSENT_KEYSTORE_PASSWORD": PASSWORD}


def _env_key(site: Site) -> dict[str, str]:
    return {"IMAGING_CONSENT_PRIVATE_KEY": "0x" + bytes(site.people.gateway.key).hex()}


def _retrieve_and_refuse(site: Site, running: Running) -> tuple[bytes, bytes, Any]:
    """dicomweb-client retrieves the MR study; a stranger is refused. Return both request ids."""
    server = Server(running.base, None, site.chain.chain_id)  # type: ignore[arg-type]
    seen: list[Any] = []

    def keep(response: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(response.headers)
        return response

    token = server.sign_in(site.people.requester)
    client = DICOMwebClient(
        f"{running.base}/dicom-web", headers={"Authorization": f"Bearer {token}"}, callback=keep
    )
    (found,) = client.search_for_studies()
    (instance,) = client.retrieve_study(MR_STUDY)
    assert instance.StudyInstanceUID == MR_STUDY and found["0020000D"]["Value"] == [MR_STUDY]
    refused = problem(
        server.get(f"/dicom-web/studies/{MR_STUDY}", server.sign_in(site.people.stranger)), 403
    )
    released = bytes.fromhex(seen[-1]["X-Request-Id"].removeprefix("0x"))
    return released, bytes.fromhex(refused["requestId"].removeprefix("0x")), seen[-1]


@pytest.mark.parametrize(
    ("backend", "key", "how", "code"),
    [
        ("folder", "keystore", signal.SIGINT, 130),
        ("folder", "env", signal.SIGTERM, 0),
        ("orthanc", "env", signal.SIGTERM, 0),
        ("orthanc", "keystore", signal.SIGINT, 130),
    ],
    ids=["folder-keystore-sigint", "folder-env-sigterm", "orthanc-env-sigterm", "orthanc-sigint"],
)
def test_batched_serve_process_flushes_at_shutdown(
    site: Site,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    backend: str,
    key: str,
    how: signal.Signals,
    code: int,
) -> None:
    env = {**site.env, **(_keystore_env(site) if key == "keystore" else _env_key(site))}
    if backend == "folder":
        store_args: tuple[str, ...] = ("--store", str(site.studies))
    else:
        orthanc: OrthancServer = request.getfixturevalue("orthanc_mr")
        store_args = ("--orthanc", orthanc.url)
        env["IMAGING_CONSENT_ORTHANC_USERNAME"] = orthanc.username
        env["IMAGING_CONSENT_ORTHANC_PASSWORD"] = orthanc.password
    anchors = len(site.logs("BatchAnchored"))
    running = start_serve(
        site, env, *store_args, "--log-mode", "batched", "--flush-interval", "600",
        "--work-dir", str(tmp_path / "work"),
    )  # fmt: skip
    try:
        released, refused, headers = _retrieve_and_refuse(site, running)
        assert headers["X-Access-Log"].endswith("outbox=batched")
        assert len(site.logs("BatchAnchored")) == anchors  # nothing anchored while it runs
    finally:
        exit_code = stop(running.process, how)

    stderr = running.stderr.read_text()
    assert exit_code == code, stderr[-3000:]
    assert "Traceback" not in stderr and 'File "' not in stderr, stderr[-3000:]
    assert len(site.logs("BatchAnchored")) == anchors + 1  # the shutdown flush
    assert site.anchored(released) and site.anchored(refused)
    assert not site.logs("AccessGranted", requestId=released)  # batched: only in the anchor


def test_sync_serve_process_records_before_release_and_stops_cleanly(
    site: Site, tmp_path: Path
) -> None:
    env = {**site.env, **_env_key(site)}
    running = start_serve(
        site, env, "--store", str(site.studies), "--work-dir", str(tmp_path / "work")
    )
    try:
        released, refused, headers = _retrieve_and_refuse(site, running)
        assert "tx=0x" in headers["X-Access-Log"]
        assert site.logs("AccessGranted", requestId=released)
        assert site.logs("AccessDenied", requestId=refused)
    finally:
        exit_code = stop(running.process, signal.SIGTERM)

    stderr = running.stderr.read_text()
    assert exit_code == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert not any((tmp_path / "work" / "releases").iterdir())  # nothing left behind
