"""A study's content tree: keys, pixel hashes, leaves, root and proofs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dicom_samples import build_folder

from imaging_consent.dicom import (
    SitePepper,
    dataset_bytes,
    deidentify,
    instance_key,
    pixel_hash,
    read_dicom,
    study_key,
)
from imaging_consent.errors import DicomError
from imaging_consent.provenance import StudyContent, build_study_content
from imaging_consent.provenance.merkle import leaf_hash, verify_proof
from imaging_consent.stores import FolderStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
PEPPER = SitePepper(bytes(range(32)))


def _ct_study(tmp_path: Path) -> tuple[str, dict[str, Path]]:
    """The CT study's UID and its instances' files, from a folder store."""
    store = FolderStore(build_folder(tmp_path / "site"))
    uid = next(u for u in store.studies() if store.instances(u)[0].modality == "CT")
    return uid, {i.sop_instance_uid: store.path(i.sop_instance_uid) for i in store.instances(uid)}


def _content(pepper: SitePepper, study: tuple[str, dict[str, Path]]) -> StudyContent:
    uid, files = study
    return build_study_content(pepper, uid, [(sop, pixel_hash(p)) for sop, p in files.items()])


def test_study_content_leaves_and_proofs_verify(tmp_path: Path) -> None:
    study = _ct_study(tmp_path)

    content = _content(PEPPER, study)

    uid, files = study
    assert content.instance_count == 2
    assert content.study_key == study_key(PEPPER, uid)
    for sop, path in files.items():
        record = content.instance(sop)
        assert record.instance_key == instance_key(PEPPER, sop)
        assert record.pixel_hash == pixel_hash(path)
        assert record.leaf == leaf_hash(record.instance_key, record.pixel_hash)
        assert verify_proof(content.root, record.leaf, content.proof(sop))


def test_study_content_is_deterministic(tmp_path: Path) -> None:
    study = _ct_study(tmp_path)

    assert _content(PEPPER, study).root == _content(PEPPER, study).root
    assert _content(PEPPER, study).root != _content(SitePepper(bytes(32)), study).root


def test_deidentified_instance_still_verifies(tmp_path: Path) -> None:
    study = _ct_study(tmp_path)
    content = _content(PEPPER, study)
    sop, path = next(iter(study[1].items()))

    released = dataset_bytes(deidentify(read_dicom(path), b"r" * 32))

    # The gateway hands out the original SOP Instance UID's key next to the released bytes.
    key = instance_key(PEPPER, sop)
    leaf = leaf_hash(key, pixel_hash(io.BytesIO(released)))
    assert verify_proof(content.root, leaf, content.proof(sop))


def test_build_study_content_refuses_duplicates_and_empty() -> None:
    h = bytes(32)

    with pytest.raises(DicomError):
        build_study_content(PEPPER, "1.2.3", [("1.2.3.4", h), ("1.2.3.4", h)])
    with pytest.raises(DicomError):
        build_study_content(PEPPER, "1.2.3", [])


def test_study_content_unknown_instance() -> None:
    content = build_study_content(PEPPER, "1.2.3", [("1.2.3.4", bytes(32))])

    with pytest.raises(KeyError):
        content.proof("9.9.9")
