"""AccessLog.recordLeaf and verifyRecord: a record proven against its gateway's anchored root."""

import pytest
from brownie import chain
from eth_abi import encode
from eth_hash.auto import keccak

from imaging_consent.access_log.record import RECORD_TYPES
from imaging_consent.provenance.merkle import MerkleTree

BATCH = keccak(b"batch-7")


def leaf(record):
    """keccak256(bytes.concat(keccak256(abi.encode(record)))), ten words."""
    return keccak(keccak(encode(list(RECORD_TYPES), list(record))))


@pytest.fixture
def records(patient, grantee, emergency, gateway, study_key):
    now = chain.time()
    out = [
        (
            study_key,
            patient.address,
            grantee.address,
            i % 4,
            i % 3 != 0,
            i % 2 == 0,
            False,
            keccak(f"request-{i}".encode()),
            gateway.address,
            now + i,
        )
        for i in range(6)
    ]
    out.append(
        (
            study_key,
            patient.address,
            emergency.address,
            1,
            True,
            True,
            True,
            keccak(b"request-bg"),
            gateway.address,
            now + 9,
        )
    )
    return out


def test_record_leaf_matches_python_encoding(access_log, records):
    for record in records:
        assert access_log.recordLeaf(record) == "0x" + leaf(record).hex()


def test_verify_record_proves_each_record_of_anchored_batch(access_log, gateway, records):
    tree = MerkleTree.of([leaf(r) for r in records])
    tx = access_log.anchorBatch(tree.root, len(records), BATCH, {"from": gateway})
    anchored = tx.events["BatchAnchored"]["root"]

    for record in records:
        assert access_log.verifyRecord(anchored, gateway, record, tree.proof(leaf(record)))


def test_verify_record_refuses_record_naming_other_gateway(
    access_log, gateway, other_gateway, records
):
    # Attack: a valid proof for gateway A's batch presented as if another gateway anchored it.
    tree = MerkleTree.of([leaf(r) for r in records])
    record = records[0]

    assert not access_log.verifyRecord(tree.root, other_gateway, record, tree.proof(leaf(record)))


def test_verify_record_rejects_identified_flipped(access_log, gateway, records):
    tree = MerkleTree.of([leaf(r) for r in records])
    original = records[1]
    altered = (*original[:5], not original[5], *original[6:])

    assert not access_log.verifyRecord(tree.root, gateway, altered, tree.proof(leaf(original)))


def test_verify_record_rejects_proof_against_other_root(access_log, gateway, records):
    tree = MerkleTree.of([leaf(r) for r in records])
    other = MerkleTree.of([leaf(r) for r in records[:3]])

    assert not access_log.verifyRecord(
        other.root, gateway, records[4], tree.proof(leaf(records[4]))
    )


def test_verify_record_single_record_batch_root_is_leaf(access_log, gateway, records):
    assert access_log.verifyRecord(leaf(records[0]), gateway, records[0], [])
