"""Tiny contracts from raw bytecode for the chain tests (and the shared counting proxy)."""

from __future__ import annotations

from bench.proxy import CountingProxy

__all__ = [
    "ALWAYS_REVERTS",
    "ANSWER_ABI",
    "RETURNS_BLOCK_NUMBER",
    "REVERTS_WITH_DATA",
    "CountingProxy",
    "init_code",
]


def init_code(runtime_hex: str) -> str:
    """Return init code that deploys ``runtime_hex`` (at most 255 bytes) as the contract code."""
    runtime = bytes.fromhex(runtime_hex.removeprefix("0x"))
    size = len(runtime)
    # PUSH1 size, PUSH1 12 (offset of runtime), PUSH1 0, CODECOPY, PUSH1 size, PUSH1 0, RETURN
    prefix = bytes([0x60, size, 0x60, 12, 0x60, 0, 0x39, 0x60, size, 0x60, 0, 0xF3])
    return "0x" + (prefix + runtime).hex()


#: Runtime that always reverts with empty data: PUSH1 0 PUSH1 0 REVERT.
ALWAYS_REVERTS = "60006000fd"
#: Runtime that reverts with 4 bytes 0xdeadbeef: PUSH4 ... PUSH1 0xe0 SHL PUSH1 0 MSTORE
#: PUSH1 4 PUSH1 0 REVERT.
REVERTS_WITH_DATA = "63deadbeef60e01b60005260046000fd"
#: Runtime that returns the current block number as one uint256: NUMBER PUSH1 0 MSTORE
#: PUSH1 32 PUSH1 0 RETURN. Any function selector answers, so any view ABI works.
RETURNS_BLOCK_NUMBER = "4360005260206000f3"
#: ABI for reading it: ``function answer() view returns (uint256)``.
ANSWER_ABI = [
    {
        "type": "function",
        "name": "answer",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint256"}],
    }
]
