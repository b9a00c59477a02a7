"""The release path under attack: altered attributes, decoy pixels, v1 studies, a consent change
racing the load (batched), and a release streamed into a folder.

Runs on the chains and fixtures of test_release.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from release_samples import CT_STUDY, MR_STUDY, RacingStore, revoke
from test_content_protocol import _with_decoy_pixels
from test_release import MR_UID, PEPPER, World, local_chain, people, store, suite, world

from imaging_consent import errors
from imaging_consent.access_log import AccessRecord
from imaging_consent.provenance import (
    PROOF_FILE,
    ContentProtocol,
    FileStatus,
    RegistrationAction,
    build_study_content,
    read_proofs,
    register_study,
    verify_release,
    verify_released,
)
from imaging_consent.provenance.instances import instance_digest
from imaging_consent.stores import FolderStore

__all__ = ["local_chain", "people", "store", "suite", "world"]  # the fixtures, used by name

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _own_mr_store(tmp_path: Path, world: World) -> tuple[FolderStore, Path]:
    folder = tmp_path / "store"
    folder.mkdir()
    path = folder / "mr.dcm"
    path.write_bytes(world.store.path(MR_UID).read_bytes())
    return FolderStore(folder), path


def _alter(path: Path, change: Callable[[pydicom.Dataset], None]) -> None:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path, enforce_file_format=True)


ALTERATIONS: dict[str, Callable[[pydicom.Dataset], None]] = {
    "PixelSpacing": lambda ds: setattr(ds, "PixelSpacing", [0.1, 0.1]),
    "RescaleSlope": lambda ds: setattr(ds, "RescaleSlope", 3),
    "ImageLaterality": lambda ds: setattr(ds, "ImageLaterality", "R"),
    "PatientName": lambda ds: setattr(ds, "PatientName", "Other^Patient"),
}


@pytest.mark.parametrize("identified", [True, False], ids=["identified", "deidentified"])
@pytest.mark.parametrize("attribute", sorted(ALTERATIONS))
def test_attribute_altered_in_the_store_after_registration_refused(
    world: World, tmp_path: Path, attribute: str, identified: bool
) -> None:
    own, path = _own_mr_store(tmp_path, world)
    world.register(MR_STUDY, own)
    world.grant(identified=identified)
    _alter(path, ALTERATIONS[attribute])
    own.refresh()
    gateway = world.gateway_for(own)
    out = tmp_path / "out"

    with pytest.raises(errors.IntegrityError, match="do not match its content root"):
        gateway.release(MR_STUDY, world.people.requester.address, "TREAT", destination=out)

    assert not world.logs("AccessGranted")
    assert list(out.iterdir()) == []  # nothing staged is left, nothing in place
    gateway.close()


class _ServingStore:
    """A store whose files are replaced behind its index (as in a store with no such check)."""

    def __init__(self, inner: FolderStore, files: dict[str, bytes]) -> None:
        self._inner = inner
        self._files = files

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def open(self, sop_instance_uid: str) -> Any:
        return contextlib.nullcontext(io.BytesIO(self._files[sop_instance_uid]))


def test_decoy_pixel_data_in_the_store_refused(world: World) -> None:
    world.register(MR_STUDY)
    world.grant()
    decoy: Any = _ServingStore(world.store, {MR_UID: _with_decoy_pixels(world.store.path(MR_UID))})
    gateway = world.gateway_for(decoy)

    with pytest.raises(errors.IntegrityError, match="duplicated"):
        gateway.release(MR_STUDY, world.people.requester.address, "TREAT")

    assert not world.logs("AccessGranted")
    gateway.close()


@pytest.mark.parametrize("identified", [True, False], ids=["identified", "deidentified"])
def test_release_streams_into_a_folder_that_verifies(
    world: World, tmp_path: Path, identified: bool
) -> None:
    key = world.register(CT_STUDY)
    world.grant(identified=identified)
    out = tmp_path / "out"

    release = world.gateway.release(
        CT_STUDY, world.people.requester.address, "TREAT", destination=out
    )

    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in release.files) and PROOF_FILE in names
    assert len(names) == 4 and release.protocol is ContentProtocol.V2
    assert all(inst.data is None and inst.path is not None for inst in release.instances)
    assert all((out / n).stat().st_mode & 0o077 == 0 for n in names)
    assert all(verify_released(world.suite, release.site, key, i) for i in release.instances)
    check = verify_release(world.suite, out)
    assert check.ok and check.proofs.protocol is ContentProtocol.V2
    assert check.proofs.identified is identified


@pytest.mark.parametrize(
    ("identified", "attribute"),
    [
        (True, "PatientName"),  # pixels and display attributes untouched: the file bytes differ
        (False, "PixelSpacing"),
        (False, "RescaleSlope"),
        (False, "ImageLaterality"),
    ],
)
def test_receiver_detects_an_altered_file(
    world: World, tmp_path: Path, identified: bool, attribute: str
) -> None:
    world.register(CT_STUDY)
    world.grant(identified=identified)
    out = tmp_path / "out"
    release = world.gateway.release(
        CT_STUDY, world.people.requester.address, "TREAT", destination=out
    )
    first = release.files[0]

    _alter(first, ALTERATIONS[attribute])

    check = verify_release(world.suite, out)
    assert [(c.path.name, c.status) for c in check.failed] == [(first.name, FileStatus.MISMATCH)]


# --- studies registered under content protocol v1 ---------------------------------------------


def _register_v1(world: World) -> bytes:
    stored = world.store.instances(MR_STUDY)
    digests = [(s.sop_instance_uid, instance_digest(world.store, s, "mr")) for s in stored]
    content = build_study_content(PEPPER, MR_STUDY, digests, ContentProtocol.V1)
    world.site.transact(
        world.suite.studies.register_study(
            content.study_key, world.people.patient.address, content.root, 1
        )
    )
    return content.study_key


def test_v1_study_keeps_verifying_under_v1(world: World, tmp_path: Path) -> None:
    key = _register_v1(world)
    world.grant(identified=True)
    out = tmp_path / "out"

    release = world.gateway.release(
        MR_STUDY, world.people.requester.address, "TREAT", destination=out
    )

    assert release.protocol is ContentProtocol.V1
    assert verify_released(world.suite, release.site, key, release.instances[0])
    assert json.loads((out / PROOF_FILE).read_text())["contentProtocol"] == 1
    assert read_proofs(out).protocol is ContentProtocol.V1
    assert verify_release(world.suite, out).ok


def test_registering_a_v1_study_again_moves_it_to_v2(world: World) -> None:
    _register_v1(world)

    result = register_study(
        world.suite, world.site, world.store, PEPPER, MR_STUDY, world.people.patient.address
    )
    world.grant()

    assert result.action is RegistrationAction.UPDATED
    release = world.gateway.release(MR_STUDY, world.people.requester.address, "TREAT")
    assert release.protocol is ContentProtocol.V2


# --- batched mode: consent is asked again right before the files are returned -------------------


@pytest.mark.parametrize("change", ["revoke", "downgrade"])
def test_batched_release_rechecks_consent_before_returning(
    world: World, tmp_path: Path, change: str
) -> None:
    world.register(CT_STUDY)
    world.grant(identified=True)

    def patient_changes() -> None:
        if change == "revoke":
            revoke(world.suite, world.patient, world.people.requester.address)
        else:
            world.grant(identified=False)

    racing: Any = RacingStore(world.store, patient_changes)
    gateway = world.gateway_for(racing, log_mode="batched", outbox_path=tmp_path / "outbox.db")
    out = tmp_path / "out"

    with pytest.raises(errors.ConsentDeniedError, match=r"withdrawn|narrowed") as refused:
        gateway.release(CT_STUDY, world.people.requester.address, "TREAT", destination=out)

    assert list(out.iterdir()) == []
    assert gateway.outbox is not None
    (entry,) = gateway.outbox.entries()
    record = AccessRecord.from_json(entry.record)
    assert record.request_id == refused.value.request_id
    assert not record.permitted and not record.identified
    gateway.close()


def test_no_personal_data_or_study_key_in_logs_at_info(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own, path = _own_mr_store(tmp_path, world)
    caplog.set_level(logging.INFO)
    key = world.register(MR_STUDY, own)
    world.grant(identified=True)
    gateway = world.gateway_for(own)
    gateway.release(MR_STUDY, world.people.requester.address, "TREAT")
    _alter(path, ALTERATIONS["PatientName"])
    own.refresh()
    with pytest.raises(errors.IntegrityError):
        gateway.release(MR_STUDY, world.people.requester.address, "TREAT")
    with pytest.raises(errors.ConsentDeniedError):
        gateway.release(MR_STUDY, world.people.stranger.address, "TREAT")
    gateway.close()

    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "released" in logged and "refused" in logged  # the log does say what happened
    secrets = [
        key.hex()[:8],
        world.people.patient.address[2:10].lower(),
        world.people.requester.address[2:10].lower(),
        world.people.stranger.address[2:10].lower(),
        MR_STUDY,
        MR_UID,
        str(pydicom.dcmread(world.store.path(MR_UID)).PatientName),
    ]
    assert [s for s in secrets if s in logged.lower() or s in logged] == []
