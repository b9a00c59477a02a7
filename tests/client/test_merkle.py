"""The content tree: roots, proofs and the StandardMerkleTree layout."""

from __future__ import annotations

import hashlib

import pytest
from eth_hash.auto import keccak

from imaging_consent.provenance.merkle import MerkleTree, hash_pair, leaf_hash, verify_proof


def _leaves(n: int) -> list[bytes]:
    return [
        leaf_hash(keccak(b"instance-%d" % i), hashlib.sha256(b"pixels-%d" % i).digest())
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 33])
def test_proof_verifies_every_leaf(n: int) -> None:
    leaves = _leaves(n)

    tree = MerkleTree.of(leaves)

    for leaf in leaves:
        assert verify_proof(tree.root, leaf, tree.proof(leaf))


def test_single_leaf_root_is_leaf() -> None:
    (leaf,) = _leaves(1)

    tree = MerkleTree.of([leaf])

    assert tree.root == leaf
    assert tree.proof(leaf) == []


def test_root_matches_standard_layout_for_three_leaves() -> None:
    a, b, c = sorted(_leaves(3))

    tree = MerkleTree.of([c, a, b])

    # StandardMerkleTree puts sorted leaves right to left: nodes = [root, n1, c, b, a], with
    # n1 = hash(b, a) at index 1 and root = hash(n1, c).
    assert tree.root == hash_pair(hash_pair(b, a), c)


def test_wrong_leaf_or_proof_fails() -> None:
    leaves = _leaves(4)
    tree = MerkleTree.of(leaves)
    proof = tree.proof(leaves[0])

    assert not verify_proof(tree.root, leaves[1], proof)
    assert not verify_proof(tree.root, keccak(b"other"), proof)
    assert not verify_proof(MerkleTree.of(_leaves(5)).root, leaves[0], proof)


def test_leaf_binds_both_values() -> None:
    key, pixels = keccak(b"k"), hashlib.sha256(b"p").digest()

    assert leaf_hash(key, pixels) == keccak(keccak(key + pixels))
    assert leaf_hash(key, pixels) != leaf_hash(pixels, key)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MerkleTree.of([])
    with pytest.raises(ValueError, match="duplicate"):
        MerkleTree.of(_leaves(2) * 2)
    with pytest.raises(ValueError, match="instance_key"):
        leaf_hash(b"short", bytes(32))
    with pytest.raises(KeyError):
        MerkleTree.of(_leaves(2)).proof(bytes(32))
