"""Fixtures for client tests: a real local chain, Ganache and Anvil in turn.

Each kind starts once per session (pytest groups the tests by parameter and stops one chain
before starting the next). Tests that change state and need a clean chain use ``clean_chain``,
which reverts to a snapshot afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imaging_consent.chain import LocalChain


@pytest.fixture(scope="session", params=["ganache", "anvil"], ids=["ganache", "anvil"])
def chain(request: pytest.FixtureRequest) -> Iterator[LocalChain]:
    """A started local chain of each kind, shared by the whole session."""
    with LocalChain(request.param) as local_chain:
        yield local_chain


@pytest.fixture
def clean_chain(chain: LocalChain) -> Iterator[LocalChain]:
    """The session chain, reverted to its state before the test when the test ends.

    Senders count nonces locally: make them inside the test, not in a wider-scoped fixture.
    """
    snapshot_id = chain.snapshot()
    yield chain
    chain.revert(snapshot_id)
