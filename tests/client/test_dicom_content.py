"""A study's content tree: keys, pixel hashes, leaves, root and proofs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dicom_samples import build_folder

from imaging_consent.dicom import (
    SitePepper,
    build_study_content,
    dataset_bytes,
    deidentify,
    instance_key,
    pixel_hash,
    read_dicom,
    scan_folder,
    study_content,
    study_key,
)
from imaging_consent.errors import DicomError
from imaging_consent.provenance.merkle import leaf_hash, verify_proof

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
PEPPER = SitePepper(bytes(range(32)))


def _ct_study(tmp_path: Path):  # type: ignore[no-untyped-def]
    studies = scan_folder(build_folder(tmp_path / "site")).studies()
    return next(s for s in studies if s.instances[0].modality == "CT")


def test_study_content_leaves_and_proofs_verify(tmp_path: Path) -> None:
    study = _ct_study(tmp_path)

    content = study_content(PEPPER, study)

    assert content.instance_count == 2
    assert content.study_key == study_key(PEPPER, study.study_instance_uid)
    for inst in study.instances:
        record = content.instance(inst.sop_instance_uid)
        assert record.instance_key == instance_key(PEPPER, inst.sop_instance_uid)
        assert record.pixel_hash == pixel_hash(inst.path)
        assert record.leaf == leaf_hash(record.instance_key, record.pixel_hash)
        assert verify_proof(content.root, record.leaf, content.proof(inst.sop_instance_uid))


def test_study_content_is_deterministic(tmp_path: Path) -> None:
    study = _ct_study(tmp_path)

    assert study_content(PEPPER, study).root == study_content(PEPPER, study).root
    assert study_content(PEPPER, study).root != study_content(SitePepper(bytes(32)), study).root


def test_deidentified_instance_still_verifies(tmp_path: Path) -> None:
    study = _ct_study(tmp_path)
    content = study_content(PEPPER, study)
    original = study.instances[0]

    released = dataset_bytes(deidentify(read_dicom(original.path), b"r" * 32))

    # The gateway hands out the original SOP Instance UID's key next to the released bytes.
    key = instance_key(PEPPER, original.sop_instance_uid)
    leaf = leaf_hash(key, pixel_hash(io.BytesIO(released)))
    assert verify_proof(content.root, leaf, content.proof(original.sop_instance_uid))


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
