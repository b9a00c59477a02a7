"""The content Merkle tree shared with StudyRegistry and outside verifiers.

The protocol is fixed (see docs/ARCHITECTURE.md, "Content roots"):

- Content protocol v1: ``leaf = keccak256(keccak256(abi.encode(instanceKey, pixelHash)))``, the
  double-hashed leaf of OpenZeppelin's StandardMerkleTree. ``bytes32`` values ABI-encode to their
  concatenation.
- Content protocol v2: ``leaf = keccak256(keccak256(abi.encode(instanceKey, pixelHash, viewHash,
  fileHash)))`` (128 bytes hashed, so no v2 leaf is ever a v1 leaf or an inner node).
- Inner nodes hash the sorted pair, ``keccak256(min(a, b) ‖ max(a, b))``, which is what
  OpenZeppelin's ``MerkleProof.verify`` recomputes.
- The tree has OpenZeppelin StandardMerkleTree's layout (leaves sorted, stored right to left at the
  end of a complete binary tree), so its root equals the JavaScript library's for the same leaves.
  A one-leaf tree's root is its leaf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_hash.auto import keccak

_HASH_BYTES = 32


def _check_hash(value: bytes, name: str) -> None:
    if len(value) != _HASH_BYTES:
        raise ValueError(f"{name} must be 32 bytes, got {len(value)}")


def leaf_hash(instance_key: bytes, pixel_hash: bytes) -> bytes:
    """Return the content-tree leaf binding an instance key to its pixel hash.

    Args:
        instance_key: 32-byte keyed hash of the SOP Instance UID.
        pixel_hash: 32-byte SHA-256 of the stored PixelData value.

    Raises:
        ValueError: If either value is not 32 bytes.
    """
    _check_hash(instance_key, "instance_key")
    _check_hash(pixel_hash, "pixel_hash")
    return keccak(keccak(instance_key + pixel_hash))


def leaf_hash_v2(
    instance_key: bytes, pixel_hash: bytes, view_hash: bytes, file_hash: bytes
) -> bytes:
    """Return the content protocol v2 leaf of one instance (see the module doc).

    Raises:
        ValueError: If any value is not 32 bytes.
    """
    for value, name in (
        (instance_key, "instance_key"),
        (pixel_hash, "pixel_hash"),
        (view_hash, "view_hash"),
        (file_hash, "file_hash"),
    ):
        _check_hash(value, name)
    return keccak(keccak(instance_key + pixel_hash + view_hash + file_hash))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """Hash two nodes in sorted order, as OpenZeppelin ``MerkleProof`` does."""
    return keccak(a + b) if a < b else keccak(b + a)


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Return the root that ``proof`` leads to from ``leaf``."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node


def verify_proof(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """Return True if ``proof`` proves ``leaf`` against ``root`` (``MerkleProof.verify``)."""
    return process_proof(leaf, proof) == root


@dataclass(frozen=True, slots=True)
class MerkleTree:
    """A sorted-pair Merkle tree over 32-byte leaves, in StandardMerkleTree layout.

    Build it with :meth:`of`. ``nodes[0]`` is the root; the leaves fill the end of the array.
    """

    nodes: tuple[bytes, ...]
    _index: dict[bytes, int]

    @classmethod
    def of(cls, leaves: Sequence[bytes]) -> MerkleTree:
        """Build the tree over ``leaves`` (already hashed with :func:`leaf_hash`).

        Raises:
            ValueError: If there are no leaves, a leaf is not 32 bytes, or a leaf repeats.
        """
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        for leaf in leaves:
            _check_hash(leaf, "leaf")
        ordered = sorted(leaves)
        if len(set(ordered)) != len(ordered):
            raise ValueError("duplicate leaf in Merkle tree")
        size = 2 * len(ordered) - 1
        nodes: list[bytes] = [b""] * size
        for i, leaf in enumerate(ordered):
            nodes[size - 1 - i] = leaf
        for i in range(size - 1 - len(ordered), -1, -1):
            nodes[i] = hash_pair(nodes[2 * i + 1], nodes[2 * i + 2])
        index = {nodes[size - 1 - i]: size - 1 - i for i in range(len(ordered))}
        return cls(nodes=tuple(nodes), _index=index)

    @property
    def root(self) -> bytes:
        """The 32-byte root (``contentRoot`` on chain)."""
        return self.nodes[0]

    @property
    def leaves(self) -> tuple[bytes, ...]:
        """The leaves in tree order."""
        return tuple(sorted(self._index, key=self._index.__getitem__))

    def proof(self, leaf: bytes) -> list[bytes]:
        """Return the sibling path proving ``leaf`` against :attr:`root`.

        Raises:
            KeyError: If ``leaf`` is not in the tree.
        """
        try:
            i = self._index[leaf]
        except KeyError:
            raise KeyError(f"leaf 0x{leaf.hex()} is not in this tree") from None
        path: list[bytes] = []
        while i > 0:
            path.append(self.nodes[i + 1 if i % 2 else i - 1])
            i = (i - 1) // 2
        return path
