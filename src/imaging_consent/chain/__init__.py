"""The chain layer: JSON-RPC sessions, local chains, signing keys and ordered sending.

Nothing here knows about contracts, consent or images; every layer above builds on it.
"""

from __future__ import annotations

from imaging_consent.chain.keys import (
    KEYSTORE_PASSWORD_ENV,
    PRIVATE_KEY_ENV,
    key_from_env,
    load_keystore,
    write_keystore,
)
from imaging_consent.chain.local import (
    TEST_MNEMONIC,
    ChainKind,
    LocalChain,
    dev_accounts,
    find_chain_binary,
)
from imaging_consent.chain.receipts import RevertDecoder, TransactionReceipt
from imaging_consent.chain.sender import TransactionSender
from imaging_consent.chain.session import ChainSession, connect

__all__ = [
    "KEYSTORE_PASSWORD_ENV",
    "PRIVATE_KEY_ENV",
    "TEST_MNEMONIC",
    "ChainKind",
    "ChainSession",
    "LocalChain",
    "RevertDecoder",
    "TransactionReceipt",
    "TransactionSender",
    "connect",
    "dev_accounts",
    "find_chain_binary",
    "key_from_env",
    "load_keystore",
    "write_keystore",
]
