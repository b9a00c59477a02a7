"""FolderStore: a persistent SQLite index over a folder of DICOM files."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from dicom_samples import BAD, CT_SECOND_UID, GOOD, build_folder, copy_sample, sample
from hostile_dicom import nested_sequences

from imaging_consent.dicom import pixel_hash, read_dicom, read_instance
from imaging_consent.errors import (
    StaleIndexError,
    StoreError,
    UnknownInstanceError,
    UnknownStudyError,
)
from imaging_consent.stores import FolderStore, ImageStore
from imaging_consent.stores.folder import INDEX_NAME, Problem, ProblemKind

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


# --- hostile folders: one bad file never stops the store ---------------------------------------


def _problems(store: FolderStore) -> dict[str, Problem]:
    return {p.path.relative_to(store.root).as_posix(): p for p in store.problems()}


def test_folder_store_opens_despite_a_deeply_nested_file(tmp_path: Path) -> None:
    copy_sample("CT_small.dcm", tmp_path / "a.dcm")
    nested_sequences(tmp_path / "nested.dcm", depth=3000)

    store = FolderStore(tmp_path)

    assert store.studies() == [CT_STUDY]
    problem = _problems(store)["nested.dcm"]
    assert problem.kind is ProblemKind.UNREADABLE
    assert "nested.dcm" in problem.error
    assert store.refresh().problems == 1  # and it stays listed, without a crash


def test_folder_store_refuses_a_symlink_out_of_the_store(tmp_path: Path) -> None:
    outside = copy_sample("CT_small.dcm", tmp_path / "elsewhere" / "secret.dcm")
    site = tmp_path / "site"
    copy_sample("MR_small.dcm", site / "mr.dcm")
    (site / "link.dcm").symlink_to(outside)
    (site / "sub").mkdir()
    (site / "sub" / "up.dcm").symlink_to(Path("..") / ".." / "elsewhere" / "secret.dcm")
    (site / "z-inside.dcm").symlink_to(site / "mr.dcm")

    store = FolderStore(site)

    assert CT_STUDY not in store.studies()
    assert len(store.studies()) == 1
    problems = _problems(store)
    assert problems["link.dcm"].kind is ProblemKind.OUTSIDE
    assert problems["sub/up.dcm"].kind is ProblemKind.OUTSIDE
    # A link inside the store is the same file twice: the second name is a duplicate.
    assert problems["z-inside.dcm"].kind is ProblemKind.DUPLICATE
    assert problems["z-inside.dcm"].detail == "also in mr.dcm"


def _same_stamp(path: Path, like: Path) -> None:
    st = like.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_folder_store_open_never_follows_a_link_swapped_in_after_indexing(tmp_path: Path) -> None:
    site = tmp_path / "site"
    indexed = copy_sample("CT_small.dcm", site / "ct" / "a.dcm")
    store = FolderStore(site)
    uid = store.instances(CT_STUDY)[0].sop_instance_uid
    # The same bytes and stamp outside the store, then the file (or its folder) becomes a link.
    outside = copy_sample("CT_small.dcm", tmp_path / "outside" / "a.dcm")
    _same_stamp(outside, indexed)
    indexed.unlink()
    indexed.symlink_to(outside)

    with pytest.raises(StaleIndexError, match="outside the store"), store.open(uid):
        pass

    (site / "ct").rename(site / "old")
    (site / "ct").symlink_to(outside.parent, target_is_directory=True)

    with pytest.raises(StaleIndexError, match="outside the store"), store.open(uid):
        pass


def test_folder_store_open_does_not_hang_on_a_fifo(tmp_path: Path) -> None:
    indexed = copy_sample("CT_small.dcm", tmp_path / "a.dcm")
    store = FolderStore(tmp_path)
    uid = store.instances(CT_STUDY)[0].sop_instance_uid
    indexed.unlink()
    os.mkfifo(indexed)

    with pytest.raises(StaleIndexError, match="not a regular file"), store.open(uid):
        pass
    assert store.refresh().removed == 1


def test_folder_store_indexes_a_file_whose_name_is_not_utf8(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/\xff-ct.dcm"
    shutil.copyfile(sample("CT_small.dcm"), raw)
    (tmp_path / "notes.txt").write_text("not DICOM\n")
    with open(os.fsencode(tmp_path) + b"/\xfe.txt", "wb") as bad:
        bad.write(b"not DICOM either\n")

    store = FolderStore(tmp_path)

    assert store.studies() == [CT_STUDY]
    uid = store.instances(CT_STUDY)[0].sop_instance_uid
    assert os.fsencode(store.path(uid)) == raw
    with store.open(uid) as fp:
        assert fp.read(132)[128:] == b"DICM"
    problems = store.problems()
    assert sorted(os.fsencode(p.path.name) for p in problems) == [b"notes.txt", b"\xfe.txt"]
    assert {p.kind for p in problems} == {ProblemKind.UNREADABLE}
    assert FolderStore(tmp_path).refresh().unchanged == 3


def test_folder_store_names_each_problem_precisely(tmp_path: Path) -> None:
    copy_sample("CT_small.dcm", tmp_path / "a.dcm")
    copy_sample("CT_small.dcm", tmp_path / "b" / "copy.dcm")
    ds = read_dicom(sample("MR_small.dcm"))
    del ds.StudyInstanceUID
    del ds.SeriesInstanceUID
    ds.save_as(tmp_path / "no-uids.dcm", enforce_file_format=True)
    copy_sample("MR_truncated.dcm", tmp_path / "truncated.dcm")
    (tmp_path / "notes.txt").write_text("not DICOM\n")

    problems = _problems(FolderStore(tmp_path))

    assert {k: p.kind for k, p in problems.items()} == {
        "b/copy.dcm": ProblemKind.DUPLICATE,
        "no-uids.dcm": ProblemKind.MISSING_UID,
        "truncated.dcm": ProblemKind.UNREADABLE,
        "notes.txt": ProblemKind.UNREADABLE,
    }
    assert problems["b/copy.dcm"].detail == "also in a.dcm"
    assert problems["no-uids.dcm"].detail == "StudyInstanceUID, SeriesInstanceUID"
    assert "truncated.dcm" not in problems["truncated.dcm"].detail  # the reason, not the name
    assert problems["truncated.dcm"].error.startswith(f"{tmp_path / 'truncated.dcm'}: ")
    uid = read_dicom(sample("CT_small.dcm")).SOPInstanceUID
    assert all(uid not in p.error for p in problems.values())


def test_folder_store_index_is_private(tmp_path: Path) -> None:
    copy_sample("CT_small.dcm", tmp_path / "site" / "a.dcm")
    old = os.umask(0o022)
    try:
        store = FolderStore(tmp_path / "site")
        index = store.index_path
        with sqlite3.connect(index) as con:
            con.execute("PRAGMA journal_mode=WAL")
        reader = sqlite3.connect(index)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM files").fetchone()  # keeps -wal and -shm open
        copy_sample("MR_small.dcm", tmp_path / "site" / "b.dcm")
        store.refresh()
        modes = {
            p.name: stat.S_IMODE(p.stat().st_mode) for p in index.parent.glob(f"{INDEX_NAME}*")
        }
        reader.close()
    finally:
        os.umask(old)

    assert set(modes) >= {INDEX_NAME, f"{INDEX_NAME}-wal", f"{INDEX_NAME}-shm"}
    assert set(modes.values()) == {0o600}


def test_folder_store_tightens_an_existing_index(tmp_path: Path) -> None:
    copy_sample("CT_small.dcm", tmp_path / "a.dcm")
    index = FolderStore(tmp_path).index_path
    index.chmod(0o644)

    FolderStore(tmp_path)

    assert stat.S_IMODE(index.stat().st_mode) == 0o600


def test_folder_store_rebuilds_an_index_of_the_previous_schema(tmp_path: Path) -> None:
    copy_sample("CT_small.dcm", tmp_path / "a.dcm")
    with sqlite3.connect(tmp_path / INDEX_NAME) as con:
        con.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO meta VALUES ('schema', '1');"
            "CREATE TABLE files (path TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, "
            "size INTEGER NOT NULL, error TEXT);"
            "INSERT INTO files VALUES ('a.dcm', 1, 2, 'x');"
        )

    store = FolderStore(tmp_path)

    assert store.studies() == [CT_STUDY] and store.problems() == []
    with sqlite3.connect(tmp_path / INDEX_NAME) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(StoreError, match="schema 99"):
        FolderStore(tmp_path)
