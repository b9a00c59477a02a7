"""A study's content tree: keys, content digests, leaves, root and proofs (protocols v1, v2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_samples import build_folder

from imaging_consent.dicom import (
    SitePepper,
    dataset_bytes,
    deidentify,
    instance_key,
    read_dicom,
    study_key,
)
from imaging_consent.dicom.walk import ContentDigest, walk_dicom
from imaging_consent.errors import DicomError
from imaging_consent.provenance import ContentProtocol, StudyContent, build_study_content
from imaging_consent.provenance.merkle import leaf_hash, leaf_hash_v2, verify_proof
from imaging_consent.stores import FolderStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
PEPPER = SitePepper(bytes(range(32)))


def _ct_study(tmp_path: Path) -> tuple[str, dict[str, Path]]:
    """The CT study's UID and its instances' files, from a folder store."""
    store = FolderStore(build_folder(tmp_path / "site"))
    uid = next(u for u in store.studies() if store.instances(u)[0].modality == "CT")
    return uid, {i.sop_instance_uid: store.path(i.sop_instance_uid) for i in store.instances(uid)}


def _digest(data: bytes) -> ContentDigest:
    digest = walk_dicom(data).digest
    assert digest is not None
    return digest


def _content(
    pepper: SitePepper,
    study: tuple[str, dict[str, Path]],
    protocol: ContentProtocol = ContentProtocol.V2,
) -> StudyContent:
    uid, files = study
    pairs = [(sop, _digest(p.read_bytes())) for sop, p in files.items()]
    return build_study_content(pepper, uid, pairs, protocol)


@pytest.mark.parametrize("protocol", list(ContentProtocol))
def test_study_content_leaves_and_proofs_verify(tmp_path: Path, protocol: ContentProtocol) -> None:
    study = _ct_study(tmp_path)

    content = _content(PEPPER, study, protocol)

    uid, files = study
    assert content.instance_count == 2 and content.protocol is protocol
    assert content.study_key == study_key(PEPPER, uid)
    for sop, path in files.items():
        record = content.instance(sop)
        d = _digest(path.read_bytes())
        assert record.instance_key == instance_key(PEPPER, sop) and record.digest == d
        expected = (
            leaf_hash(record.instance_key, d.pixel_hash)
            if protocol is ContentProtocol.V1
            else leaf_hash_v2(record.instance_key, d.pixel_hash, d.view_hash, d.file_hash)
        )
        assert record.leaf == expected
        assert verify_proof(content.root, record.leaf, content.proof(sop))


def test_study_content_is_deterministic(tmp_path: Path) -> None:
    study = _ct_study(tmp_path)

    assert _content(PEPPER, study).root == _content(PEPPER, study).root
    assert _content(PEPPER, study).root != _content(SitePepper(bytes(32)), study).root
    assert _content(PEPPER, study).root != _content(PEPPER, study, ContentProtocol.V1).root


def test_deidentified_instance_still_verifies(tmp_path: Path) -> None:
    study = _ct_study(tmp_path)
    content = _content(PEPPER, study)
    sop, path = next(iter(study[1].items()))

    released = dataset_bytes(deidentify(read_dicom(path), b"r" * 32))

    # The gateway hands out the original SOP Instance UID's key and fileHash next to the
    # released bytes; pixelHash and viewHash are recomputed from them.
    key = instance_key(PEPPER, sop)
    got = _digest(released)
    registered = content.instance(sop).digest
    leaf = leaf_hash_v2(key, got.pixel_hash, got.view_hash, registered.file_hash)
    assert verify_proof(content.root, leaf, content.proof(sop))
    assert got.file_hash != registered.file_hash  # the file itself did change


def test_build_study_content_refuses_duplicates_and_empty() -> None:
    h = ContentDigest(bytes(32), bytes(32), bytes(32))

    with pytest.raises(DicomError):
        build_study_content(PEPPER, "1.2.3", [("1.2.3.4", h), ("1.2.3.4", h)])
    with pytest.raises(DicomError):
        build_study_content(PEPPER, "1.2.3", [])


def test_study_content_unknown_instance() -> None:
    h = ContentDigest(bytes(32), bytes(32), bytes(32))
    content = build_study_content(PEPPER, "1.2.3", [("1.2.3.4", h)])

    with pytest.raises(KeyError):
        content.proof("9.9.9")
