"""FolderStore: a persistent SQLite index over a folder of DICOM files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dicom_samples import BAD, CT_SECOND_UID, GOOD, build_folder, copy_sample, sample

from imaging_consent.dicom import pixel_hash, read_dicom, read_instance
from imaging_consent.errors import (
    StaleIndexError,
    StoreError,
    UnknownInstanceError,
    UnknownStudyError,
)
from imaging_consent.stores import FolderStore, ImageStore
from imaging_consent.stores.folder import INDEX_NAME

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return build_folder(tmp_path / "site")


def test_folder_store_indexes_studies_series_instances(site: Path) -> None:
    store = FolderStore(site)

    assert isinstance(store, ImageStore)
    assert (site / INDEX_NAME).exists()
    assert len(store.studies()) == 6
    ct = store.instances(CT_STUDY)
    assert [i.instance_number for i in ct] == [1, 2]
    assert store.instances(CT_STUDY, ct[0].series_instance_uid) == ct
    assert store.instance(CT_SECOND_UID).study_instance_uid == CT_STUDY


def test_folder_store_reports_bad_files(site: Path) -> None:
    store = FolderStore(site)

    problems = {p.path.relative_to(store.root).as_posix(): p.error for p in store.problems()}

    assert set(problems) == {*BAD, "notes.txt"}
    assert "bad/truncated.dcm" in problems["bad/truncated.dcm"]


def test_folder_store_open_streams_the_file(site: Path) -> None:
    store = FolderStore(site)
    uid = store.instances(CT_STUDY)[0].sop_instance_uid

    with store.open(uid) as fp:
        digest = pixel_hash(fp)
        fp.seek(0)
        ds = read_dicom(fp)

    assert ds.SOPInstanceUID == uid
    assert digest == pixel_hash(store.path(uid))


def test_folder_store_unknown_lookups(site: Path) -> None:
    store = FolderStore(site)

    with pytest.raises(UnknownStudyError):
        store.instances("9.9.9")
    with pytest.raises(UnknownStudyError):
        store.instances(CT_STUDY, "9.9.9")
    with pytest.raises(UnknownInstanceError):
        store.instance("9.9.9")
    with pytest.raises(LookupError), store.open("9.9.9"):
        pass


def test_folder_store_index_persists(site: Path) -> None:
    FolderStore(site)
    calls: list[Path] = []

    again = FolderStore(site, progress=lambda _d, _t, path: calls.append(path))
    cold = FolderStore(site, refresh=False)

    assert calls == []  # nothing re-read: every file's mtime_ns and size match
    assert again.refresh().unchanged == len(GOOD) + len(BAD) + 2
    assert cold.studies() == again.studies()


def test_folder_store_refresh_added_modified_removed(site: Path) -> None:
    store = FolderStore(site)
    mr = read_instance(site / "mr" / "b.dcm").sop_instance_uid

    copy_sample("examples_overlay.dcm", site / "new" / "overlay.dcm")  # added
    copy_sample("rtdose_1frame.dcm", site / "rt" / "dose.dcm")  # modified in place
    (site / "mr" / "b.dcm").unlink()  # removed
    (site / "bad" / "badvr.dcm").unlink()  # a problem file removed
    report = store.refresh()

    assert (report.added, report.updated, report.removed) == (1, 1, 2)
    with pytest.raises(UnknownInstanceError):
        store.instance(mr)
    assert len(store.studies()) == 6
    assert store.instance(read_instance(site / "rt" / "dose.dcm").sop_instance_uid)
    assert "bad/badvr.dcm" not in {p.path.name for p in store.problems()}


def test_folder_store_open_refuses_file_changed_since_indexing(site: Path) -> None:
    store = FolderStore(site)
    uid = store.instances(CT_STUDY)[0].sop_instance_uid
    path = store.path(uid)

    path.write_bytes(path.read_bytes() + b"\x00\x00")

    with pytest.raises(StaleIndexError), store.open(uid):
        pass


def test_folder_store_duplicate_promoted_after_original_removed(tmp_path: Path) -> None:
    copy_sample("MR_small.dcm", tmp_path / "a.dcm")
    copy_sample("MR_small_RLE.dcm", tmp_path / "b.dcm")  # same SOP Instance UID
    store = FolderStore(tmp_path)
    uid = read_instance(tmp_path / "a.dcm").sop_instance_uid
    assert [p.path.name for p in store.problems()] == ["b.dcm"]

    (tmp_path / "a.dcm").unlink()
    store.refresh()

    assert store.path(uid).name == "b.dcm"
    assert store.problems() == []


def test_folder_store_index_elsewhere(tmp_path: Path) -> None:
    site = tmp_path / "ro"
    copy_sample("CT_small.dcm", site / "a.dcm")
    index = tmp_path / "index.sqlite3"

    store = FolderStore(site, index)

    assert index.exists() and not (site / INDEX_NAME).exists()
    assert store.studies() == [CT_STUDY]


def test_folder_store_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        FolderStore(tmp_path / "absent")


def test_folder_store_moved_folder_keeps_index(tmp_path: Path) -> None:
    site = tmp_path / "one"
    copy_sample("CT_small.dcm", site / "a.dcm")
    FolderStore(site)
    moved = tmp_path / "two"
    shutil.move(site, moved)

    store = FolderStore(moved)

    assert store.refresh().unchanged == 1
    assert pixel_hash(store.path(store.instances(CT_STUDY)[0].sop_instance_uid)) == pixel_hash(
        sample("CT_small.dcm")
    )
