"""AccessLog.recordLeaf and verifyRecord: a single record proven against an anchored batch root."""

import pytest
from brownie import chain
from consent_values import ETREAT
from eth_hash.auto import keccak

from imaging_consent.access_log.record import AccessRecord
from imaging_consent.provenance.merkle import MerkleTree

BATCH = keccak(b"batch-7")


@pytest.fixture
def records(patient, grantee, emergency, gateway, study_key):
    now = chain.time()
    out = [
        AccessRecord(
            study_key=study_key,
            patient=patient.address,
            accessor=grantee.address,
            purpose=i % 4,
            permitted=i % 3 != 0,
            break_glass=False,
            request_id=keccak(f"request-{i}".encode()),
            gateway=gateway.address,
            timestamp=now + i,
        )
        for i in range(6)
    ]
    out.append(
        AccessRecord(
            study_key,
            patient.address,
            emergency.address,
            ETREAT,
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
        assert access_log.recordLeaf(record.as_tuple()) == "0x" + record.leaf().hex()


def test_verify_record_proves_each_record_of_anchored_batch(access_log, gateway, records):
    tree = MerkleTree.of([r.leaf() for r in records])
    tx = access_log.anchorBatch(tree.root, len(records), BATCH, {"from": gateway})
    anchored = tx.events["BatchAnchored"]["root"]

    for record in records:
        leaf = record.leaf()
        assert access_log.verifyRecord(anchored, leaf, tree.proof(leaf))


def test_verify_record_rejects_altered_record(access_log, records):
    tree = MerkleTree.of([r.leaf() for r in records])
    original = records[1]
    altered = AccessRecord(
        *original.as_tuple()[:4], not original.permitted, *original.as_tuple()[5:]
    )

    assert not access_log.verifyRecord(tree.root, altered.leaf(), tree.proof(original.leaf()))


def test_verify_record_rejects_proof_against_other_root(access_log, records):
    tree = MerkleTree.of([r.leaf() for r in records])
    other = MerkleTree.of([r.leaf() for r in records[:3]])
    leaf = records[0].leaf()

    assert not access_log.verifyRecord(other.root, leaf, tree.proof(leaf))


def test_verify_record_single_record_batch_root_is_leaf(access_log, records):
    leaf = records[0].leaf()

    assert access_log.verifyRecord(leaf, leaf, [])
