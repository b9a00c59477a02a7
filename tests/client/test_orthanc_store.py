"""OrthancStore against a real Orthanc (Debian's package, started on loopback by the fixture).

The index and the bytes match a FolderStore of the same files; a study registered from Orthanc
is released through the gateway (identified and de-identified) and verifies; a file altered in
Orthanc's storage, or replaced through its API, is refused and recorded; Orthanc down and bad
credentials give typed errors; ``imaging-consent site register --orthanc`` registers from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from orthanc_server import OrthancServer, free_port, orthanc, running_orthanc
from release_samples import (
    CT_SERIES_A,
    CT_SERIES_B,
    CT_STUDY,
    MR_STUDY,
    ROOT,
    Actors,
    actors,
    build_ct_study,
    build_studies,
    deploy_suite,
    grant,
    new_uid,
    write_copy,
)

from imaging_consent import errors
from imaging_consent.chain import LocalChain
from imaging_consent.contracts.deployment import Suite, sender_for
from imaging_consent.dicom import SitePepper, study_key
from imaging_consent.gateway import ImageGateway
from imaging_consent.provenance import RegistrationAction, register_study, verify_release
from imaging_consent.stores import FolderStore, ImageStore, OrthancStore, ProblemKind

__all__ = ["orthanc"]  # the fixture, used by name

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PEPPER = SitePepper(bytes(range(32)))
SRC = Path(__file__).resolve().parents[2] / "src"


def upload_folder(server: OrthancServer, folder: FolderStore) -> dict[str, int]:
    """Upload every file of ``folder``: the indexed ones first, then the problem files.

    Returns each problem file's HTTP status. (Orthanc refuses a truncated file; ``badVR.dcm``
    repeats rtdose.dcm's UIDs, so uploaded after it, it is "AlreadyStored".)
    """
    for study in folder.studies():
        for record in folder.instances(study):
            assert server.upload(folder.path(record.sop_instance_uid))["Status"] == "Success"
    return {p.path.name: server.try_upload(p.path) for p in folder.problems()}


@pytest.fixture(scope="module")
def loaded(
    orthanc: OrthancServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[OrthancServer, FolderStore]:
    """The release samples, in a folder and uploaded to the module's Orthanc."""
    folder = FolderStore(build_studies(tmp_path_factory.mktemp("studies")))
    statuses = upload_folder(orthanc, folder)
    assert statuses == {"truncated.dcm": 400, "badvr.dcm": 200}
    return orthanc, folder


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[OrthancServer]:
    """An Orthanc of the test's own, empty (for tests that change what it holds)."""
    with running_orthanc(tmp_path / "orthanc") as server:
        yield server


# --- the index and the bytes -------------------------------------------------------------------


def test_index_and_bytes_match_a_folder_store_of_the_same_files(
    loaded: tuple[OrthancServer, FolderStore],
) -> None:
    server, folder = loaded

    store = server.store()

    assert store.studies() == folder.studies() and len(store.studies()) == 6
    for study in folder.studies():
        assert store.instances(study) == folder.instances(study)
        for series in {r.series_instance_uid for r in folder.instances(study)}:
            assert store.instances(study, series) == folder.instances(study, series)
        for record in folder.instances(study):
            uid = record.sop_instance_uid
            assert store.instance(uid) == record
            with store.open(uid) as fp:
                assert fp.read() == folder.path(uid).read_bytes()
    assert [r.sop_instance_uid for r in store.instances(CT_STUDY, CT_SERIES_B)] == [ROOT + "1.2.1"]
    assert store.problems() == []
    assert isinstance(store, ImageStore)


def test_unknown_study_series_and_instance_are_typed(
    loaded: tuple[OrthancServer, FolderStore],
) -> None:
    store = loaded[0].store()

    with pytest.raises(errors.UnknownStudyError, match="no such study in Orthanc"):
        store.instances(ROOT + "404")
    with pytest.raises(errors.UnknownStudyError, match="no such study or series"):
        store.instances(CT_STUDY, CT_SERIES_A + ".404")
    with pytest.raises(errors.UnknownInstanceError):
        store.instance(ROOT + "404")
    with pytest.raises(errors.UnknownInstanceError):
        store.open(ROOT + "404").__enter__()


def test_refresh_reads_only_what_changed(fresh: OrthancServer, tmp_path: Path) -> None:
    ct = FolderStore(build_ct_study(tmp_path / "ct", 3))
    ids = [fresh.upload(ct.path(r.sop_instance_uid))["ID"] for r in ct.instances(CT_STUDY)]
    store = fresh.store()
    assert len(store.instances(CT_STUDY)) == 3
    extra = write_copy(
        "CT_small.dcm", tmp_path / "extra.dcm", study=CT_STUDY, series=new_uid(), sop=new_uid()
    )
    fresh.upload(extra)
    fresh.delete(ids[0])
    seen: list[str] = []

    report = store.refresh(progress=lambda done, total, orthanc_id: seen.append(orthanc_id))

    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 0, 1, 2)
    assert len(seen) == 1  # only the new instance was read
    assert len(store.instances(CT_STUDY)) == 3
    with pytest.raises(errors.UnknownInstanceError):
        store.instance(ROOT + "1.1.1")


def test_deleted_since_indexed_is_stale(fresh: OrthancServer, tmp_path: Path) -> None:
    ct = FolderStore(build_ct_study(tmp_path / "ct", 1))
    (record,) = ct.instances(CT_STUDY)
    orthanc_id = fresh.upload(ct.path(record.sop_instance_uid))["ID"]
    store = fresh.store()
    fresh.delete(orthanc_id)

    with pytest.raises(errors.StaleIndexError, match="is gone; refresh the index"):
        store.open(record.sop_instance_uid).__enter__()


def test_sop_uid_held_under_two_studies_is_a_problem_of_both(
    fresh: OrthancServer, tmp_path: Path
) -> None:
    shared = new_uid()
    for study in (ROOT + "7", ROOT + "8"):
        path = write_copy(
            "CT_small.dcm", tmp_path / f"{study}.dcm", study=study, series=new_uid(), sop=shared
        )
        assert fresh.upload(path)["Status"] == "Success"  # Orthanc's ids hash the study too

    store = fresh.store()

    assert store.studies() == []
    problems = store.problems()
    assert [p.kind for p in problems] == [ProblemKind.DUPLICATE] * 2
    assert shared not in " ".join(p.error for p in problems)
    with pytest.raises(errors.UnknownInstanceError):
        store.instance(shared)


def test_instance_without_sop_class_is_a_problem(fresh: OrthancServer, tmp_path: Path) -> None:
    path = write_copy(
        "CT_small.dcm", tmp_path / "x.dcm", study=ROOT + "7", series=new_uid(), sop=new_uid()
    )
    ds = pydicom.dcmread(path)
    del ds.SOPClassUID
    ds.save_as(path)
    fresh.upload(path)

    store = fresh.store()

    assert store.studies() == []
    ((problem),) = store.problems()
    assert problem.kind is ProblemKind.MISSING_UID and problem.detail == "SOPClassUID"


# --- transport and credentials -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        ("http://10.1.2.3:8042", errors.InsecureStoreEndpointError, "plain-HTTP Orthanc URL"),
        ("http://pacs.example:8042", errors.InsecureStoreEndpointError, "https://"),
        ("ftp://127.0.0.1:8042", errors.StoreError, "expected http:// or https://"),
        ("http://user:hunter2@127.0.0.1:8042", errors.StoreError, "carries credentials"),
        ("http://127.0.0.1:8042/?token=abc", errors.StoreError, "query or fragment"),
    ],
)
def test_url_policy_refuses_before_sending(url: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as caught:
        OrthancStore(url)
    assert "hunter2" not in str(caught.value) and "abc" not in str(caught.value)


def test_remote_plain_http_allowed_explicitly_and_loopback_always() -> None:
    assert OrthancStore("http://10.1.2.3:8042/", allow_insecure_http=True, refresh=False).url == (
        "http://10.1.2.3:8042"
    )
    assert OrthancStore("http://[::1]:8042", refresh=False).studies() == []


@pytest.mark.parametrize("password", ["wrong-password", None], ids=["wrong", "none"])
def test_bad_credentials_are_a_typed_error(
    loaded: tuple[OrthancServer, FolderStore], password: str | None
) -> None:
    server = loaded[0]

    with pytest.raises(errors.StoreAuthError, match="HTTP 401") as caught:
        OrthancStore(server.url, username="tester" if password else None, password=password)

    assert server.url.split("//")[1] in str(caught.value)
    assert "wrong-password" not in str(caught.value)
    assert isinstance(caught.value, PermissionError)


def test_orthanc_down_is_a_typed_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(errors.StoreUnavailableError, match="cannot reach Orthanc at") as caught:
        OrthancStore(url, username="tester", password="s3cret", timeout=2)

    assert url in str(caught.value) and "s3cret" not in str(caught.value)


# --- through the gate, on a real chain --------------------------------------------------------


@dataclass
class Gate:
    chain: LocalChain
    suite: Suite
    people: Actors
    work: Path

    def register(self, store: ImageStore, study: str) -> RegistrationAction:
        site = sender_for(self.chain.session, self.people.site)
        result = register_study(self.suite, site, store, PEPPER, study, self.people.patient.address)
        return result.action

    def grant(self, **kwargs: Any) -> None:
        patient = sender_for(self.chain.session, self.people.patient)
        grant(self.suite, patient, self.people.requester.address, **kwargs)

    def gateway(self, store: ImageStore) -> ImageGateway:
        sender = sender_for(self.chain.session, self.people.gateway)
        outbox = self.work / f"outbox-{os.urandom(4).hex()}.sqlite3"
        return ImageGateway(self.suite, sender, store, PEPPER, outbox_path=outbox)

    def logs(self, event: str) -> list[Any]:
        return list(getattr(self.suite.access_log.events, event)().get_logs(from_block=0))


@pytest.fixture(scope="module")
def deployed(chain: LocalChain) -> Iterator[tuple[Suite, Actors]]:
    """The suite, deployed on the session chain and reverted after this module (others share it)."""
    snapshot = chain.snapshot()
    people = actors(chain)
    try:
        yield deploy_suite(chain, people), people
    finally:
        chain.revert(snapshot)


@pytest.fixture
def gate(clean_chain: LocalChain, deployed: tuple[Suite, Actors], tmp_path: Path) -> Gate:
    return Gate(clean_chain, deployed[0], deployed[1], tmp_path)


@pytest.mark.parametrize("identified", [True, False], ids=["identified", "deidentified"])
def test_registered_from_orthanc_released_and_verified(
    gate: Gate, loaded: tuple[OrthancServer, FolderStore], tmp_path: Path, identified: bool
) -> None:
    server, folder = loaded
    store = server.store()
    assert gate.register(store, CT_STUDY) is RegistrationAction.REGISTERED
    assert gate.register(folder, CT_STUDY) is RegistrationAction.UNCHANGED  # the same content
    gate.grant(identified=identified)
    out = tmp_path / "received"

    with gate.gateway(store) as gateway:
        release = gateway.release(CT_STUDY, gate.people.requester.address, "TREAT", destination=out)

    assert release.identified is identified and len(release.instances) == 3
    check = verify_release(gate.suite, out)
    assert check.ok and len(check.files) == 3
    if identified:
        originals = {
            folder.path(r.sop_instance_uid).read_bytes() for r in folder.instances(CT_STUDY)
        }
        assert {f.path.read_bytes() for f in check.files} == originals
    assert len(gate.logs("AccessGranted")) == 1


def _upload_ct(server: OrthancServer, tmp_path: Path) -> tuple[FolderStore, dict[str, str]]:
    folder = FolderStore(build_ct_study(tmp_path / "ct", 3))
    ids = {
        r.sop_instance_uid: server.upload(folder.path(r.sop_instance_uid))["ID"]
        for r in folder.instances(CT_STUDY)
    }
    return folder, ids


def _refused(gate: Gate, store: ImageStore, error: type[Exception]) -> str:
    """Release CT_STUDY, expect ``error``; return the refusal's reason from the outbox."""
    gateway = gate.gateway(store)
    try:
        with pytest.raises(error):
            gateway.release(CT_STUDY, gate.people.requester.address, "TREAT")
        assert gateway.outbox is not None
        (entry,) = gateway.outbox.entries()
    finally:
        gateway.close()
    assert not gate.logs("AccessGranted")
    return str(entry.reason)


def test_file_altered_in_orthanc_storage_refused_and_recorded(
    gate: Gate, fresh: OrthancServer, tmp_path: Path
) -> None:
    _, ids = _upload_ct(fresh, tmp_path)
    store = fresh.store()
    gate.register(store, CT_STUDY)
    gate.grant()
    stored = fresh.attachment(ids[ROOT + "1.1.2"])
    data = bytearray(stored.read_bytes())
    data[-100] ^= 0xFF  # one pixel byte, in place: same size, same attachment
    stored.write_bytes(bytes(data))

    reason = _refused(gate, store, errors.IntegrityError)

    assert reason == "IntegrityError"
    assert len(gate.logs("BatchAnchored")) == 1  # the refusal, anchored


def test_instance_replaced_through_the_api_refused_and_recorded(
    gate: Gate, fresh: OrthancServer, tmp_path: Path
) -> None:
    folder, ids = _upload_ct(fresh, tmp_path)
    store = fresh.store()
    gate.register(store, CT_STUDY)
    gate.grant()
    uid = ROOT + "1.1.2"
    forged = pydicom.dcmread(folder.path(uid))
    forged.PatientName = "Other^Patient"  # same UIDs, other content
    fresh.delete(ids[uid])
    forged_path = tmp_path / "forged.dcm"
    forged.save_as(forged_path, enforce_file_format=True)
    fresh.upload(forged_path)

    assert _refused(gate, store, errors.StaleIndexError) == "StaleIndexError"
    store.refresh()
    assert _refused(gate, store, errors.IntegrityError) == "IntegrityError"


def test_orthanc_down_during_release_nothing_released(
    gate: Gate, fresh: OrthancServer, tmp_path: Path
) -> None:
    _upload_ct(fresh, tmp_path)
    store = fresh.store(timeout=2)
    gate.register(store, CT_STUDY)
    gate.grant()
    fresh.process.terminate()
    fresh.process.wait(10)

    reason = _refused(gate, store, errors.StoreUnavailableError)

    assert reason == "StoreUnavailableError"


# --- the CLI -----------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imaging_consent", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_site_register_from_orthanc(
    clean_chain: LocalChain,
    loaded: tuple[OrthancServer, FolderStore],
    tmp_path: Path,
) -> None:
    server, folder = loaded
    people = actors(clean_chain)
    suite = deploy_suite(clean_chain, people)
    manifest = tmp_path / "manifest.json"
    suite.manifest.write(manifest)
    pepper_file = tmp_path / "pepper"
    pepper_file.write_text(PEPPER.reveal().hex())
    pepper_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGING_CONSENT_")}
    env.update(
        PYTHONPATH=str(SRC),
        COLUMNS="200",
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / ".config"),
        IMAGING_CONSENT_RPC_URL=clean_chain.rpc_url,
        IMAGING_CONSENT_MANIFEST=str(manifest),
        IMAGING_CONSENT_SITE_PEPPER_FILE=str(pepper_file),
        IMAGING_CONSENT_PRIVATE_KEY="0x" + bytes(people.site.key).hex(),
        IMAGING_CONSENT_ORTHANC_USERNAME=server.username,
        IMAGING_CONSENT_ORTHANC_PASSWORD=server.password,
    )
    patient = people.patient.address
    register = ("site", "register", "--patient", patient)

    done = _cli(*register, "--orthanc", server.url, "--study", CT_STUDY, env=env, cwd=tmp_path)
    from_env = _cli(*register, env={**env, "IMAGING_CONSENT_ORTHANC_URL": server.url}, cwd=tmp_path)
    wrong = _cli(
        *register,
        "--orthanc",
        server.url,
        env={**env, "IMAGING_CONSENT_ORTHANC_PASSWORD": "not-it"},
        cwd=tmp_path,
    )
    both = _cli(*register, str(tmp_path), "--orthanc", server.url, env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "0x" + study_key(PEPPER, CT_STUDY).hex() in done.stdout and "registered" in done.stdout
    on_chain = suite.studies.study(people.site.address, study_key(PEPPER, CT_STUDY))
    assert on_chain.patient == patient and on_chain.instance_count == 3
    site = sender_for(clean_chain.session, people.site)
    from_folder = register_study(suite, site, folder, PEPPER, CT_STUDY, patient)
    assert from_folder.action is RegistrationAction.UNCHANGED
    assert from_env.returncode == 0, from_env.stderr
    assert "0x" + study_key(PEPPER, MR_STUDY).hex() in from_env.stdout
    assert from_env.stdout.count("registered") >= 5 and "unchanged" in from_env.stdout
    assert wrong.returncode == 1 and "HTTP 401" in wrong.stderr
    assert "not-it" not in wrong.stderr + wrong.stdout and "Traceback" not in wrong.stderr
    assert both.returncode == 2 and "not both" in both.stderr
