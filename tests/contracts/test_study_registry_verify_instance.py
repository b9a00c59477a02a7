"""StudyRegistry.verifyInstance: content proofs built in Python from real DICOM pixel data."""

import hashlib

import pydicom
import pytest
from eth_hash.auto import keccak
from pydicom.data import get_testdata_file

from imaging_consent.provenance.merkle import MerkleTree, leaf_hash

PEPPER = b"site-pepper"
FILES = ("CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm")


def instance_key(sop_instance_uid):
    return keccak(PEPPER + sop_instance_uid.encode())


def pixel_hash(pixel_data):
    return hashlib.sha256(pixel_data).digest()


@pytest.fixture(scope="module")
def instances():
    """(instanceKey, pixelHash) of each test file, as a site computes them."""
    out = []
    for i, name in enumerate(FILES):
        ds = pydicom.dcmread(get_testdata_file(name))
        # MR_small and MR_small_RLE share a SOP Instance UID; make each key distinct.
        out.append((instance_key(f"{ds.SOPInstanceUID}.{i}"), pixel_hash(ds.PixelData)))
    return out


@pytest.fixture(scope="module")
def tree(instances):
    return MerkleTree.of([leaf_hash(k, p) for k, p in instances])


@pytest.fixture
def study(study_registry, site, patient, study_key, tree, instances):
    study_registry.registerStudy(study_key, patient, tree.root, len(instances), {"from": site})
    return study_key


def test_verify_instance_accepts_every_instance(study_registry, site, study, tree, instances):
    for key, pixels in instances:
        leaf = leaf_hash(key, pixels)

        assert study_registry.verifyInstance(site, study, leaf, tree.proof(leaf))


def test_verify_instance_rejects_changed_pixel_byte(study_registry, site, study, tree, instances):
    ds = pydicom.dcmread(get_testdata_file(FILES[0]))
    pixels = bytearray(ds.PixelData)
    pixels[100] ^= 0x01
    key, original = instances[0]
    proof = tree.proof(leaf_hash(key, original))

    assert not study_registry.verifyInstance(site, study, leaf_hash(key, pixel_hash(pixels)), proof)


def test_verify_instance_rejects_wrong_instance_key(study_registry, site, study, tree, instances):
    key, pixels = instances[1]
    proof = tree.proof(leaf_hash(key, pixels))
    wrong = instance_key("1.2.3.4.5.6")

    assert not study_registry.verifyInstance(site, study, leaf_hash(wrong, pixels), proof)


def test_verify_instance_rejects_proof_for_another_study(
    study_registry, study, site, patient, instances
):
    other_key = keccak(b"another study")
    other = MerkleTree.of([leaf_hash(k, p) for k, p in instances[3:]])
    study_registry.registerStudy(other_key, patient, other.root, 2, {"from": site})
    key, pixels = instances[3]
    leaf = leaf_hash(key, pixels)

    assert study_registry.verifyInstance(site, other_key, leaf, other.proof(leaf))
    assert not study_registry.verifyInstance(site, study, leaf, other.proof(leaf))


def test_verify_instance_single_instance_root_is_leaf(
    study_registry, site, patient, study_key, instances
):
    leaf = leaf_hash(*instances[0])
    study_registry.registerStudy(study_key, patient, leaf, 1, {"from": site})

    assert MerkleTree.of([leaf]).root == leaf
    assert study_registry.verifyInstance(site, study_key, leaf, [])
    assert not study_registry.verifyInstance(site, study_key, leaf_hash(*instances[1]), [])


def test_verify_instance_checks_only_current_version(study_registry, study, site, tree, instances):
    leaf = leaf_hash(*instances[0])
    proof = tree.proof(leaf)
    newer = MerkleTree.of([leaf_hash(k, p) for k, p in instances[1:]])
    study_registry.updateContent(study, newer.root, 4, {"from": site})

    assert not study_registry.verifyInstance(site, study, leaf, proof)
    assert study_registry.verifyInstance(
        site, study, leaf_hash(*instances[1]), newer.proof(leaf_hash(*instances[1]))
    )


def test_verify_instance_rejects_unknown_study(study_registry, site, custom_error, study_key):
    with custom_error("StudyRegistryUnknownStudy", site, study_key):
        study_registry.verifyInstance(site, study_key, bytes(32), [])
