"""Access-record leaves; tests/contracts/test_access_log_verify_record checks them on chain."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_hash.auto import keccak

from imaging_consent.access_log.record import RECORD_TYPES, AccessRecord
from imaging_consent.provenance.merkle import MerkleTree

A = "0x66aB6D9362d4F35596279692F0251Db635165871"


def _record(**changes: object) -> AccessRecord:
    fields: dict[str, object] = {
        "study_key": keccak(b"s"),
        "patient": A,
        "accessor": A.lower(),
        "purpose": 0,
        "permitted": True,
        "identified": True,
        "break_glass": False,
        "request_id": keccak(b"r"),
        "gateway": A,
        "timestamp": 1_700_000_000,
    }
    fields.update(changes)
    return AccessRecord(**fields)  # type: ignore[arg-type]


def test_leaf_is_double_hash_of_ten_words() -> None:
    record = _record()

    words = encode(RECORD_TYPES, record.as_tuple())

    assert record.accessor == A
    assert len(words) == 10 * 32
    assert record.leaf() == keccak(keccak(words))
    assert record.leaf() != _record(permitted=False).leaf()
    assert record.leaf() != _record(identified=False).leaf()


def test_leaves_build_a_provable_batch() -> None:
    leaves = [_record(timestamp=t).leaf() for t in range(5)]

    tree = MerkleTree.of(leaves)

    assert all(len(tree.proof(leaf)) >= 2 for leaf in leaves)


@pytest.mark.parametrize(
    "changes",
    [{"study_key": b"short"}, {"purpose": 256}, {"timestamp": 2**48}, {"gateway": "0x12"}],
)
def test_record_rejects_bad_fields(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _record(**changes)
