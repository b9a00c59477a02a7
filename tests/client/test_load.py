"""Load: 1,000 releases from 8 threads against one gateway on Anvil, sync then batched.

Every release is recorded exactly once (sync: one ``AccessGranted`` per request id; batched: one
anchored outbox record per request id), no nonce is reused or stuck (the gateway account's
nonce equals its number of transactions, its pool is empty), and no release raises.

Both modes together take 30-41 s on this 2-core machine while other work runs, so they run in
``make test``; the figures are in docs/ARCHITECTURE.md, "Faults, measured" (``pytest -s`` prints
them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_faults import Site, _release_many, make_site

from imaging_consent.chain import LocalChain
from imaging_consent.gateway import LogMode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

THREADS = 8
RELEASES = 1000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with LocalChain("anvil") as chain:
        yield make_site(chain, tmp_path_factory.mktemp("load"))


@pytest.fixture
def clean(site: Site) -> Iterator[Site]:
    snapshot = site.chain.snapshot()
    yield site
    site.chain.revert(snapshot)


def _load(site: Site, tmp_path: Path, mode: LogMode, count: int) -> None:
    nonce = site.nonce()
    gateway = site.gateway(mode, tmp_path / "outbox.sqlite3")
    started = time.monotonic()
    ids = _release_many(gateway, site.people.requester.address, count, THREADS)
    released = time.monotonic() - started
    batches = gateway.flush()
    total = time.monotonic() - started
    print(  # shown with -s; the figures in docs/ARCHITECTURE.md come from here
        f"\n{mode.value}: {count} releases from {THREADS} threads in {released:.1f} s "
        f"({count / released:.0f} releases/s); with the flush {total:.1f} s"
    )

    assert len(ids) == len(set(ids)) == count
    granted = [bytes(e["args"]["requestId"]) for e in site.logs("AccessGranted")]
    entries = gateway.outbox.entries()
    assert sorted(e.request_id for e in entries) == sorted(ids)  # each once in the outbox
    assert all(e.reason is None for e in entries)
    if mode is LogMode.SYNC:
        assert sorted(granted) == sorted(ids) and batches == []
        assert all(e.direct and e.final and e.tx_hash is not None for e in entries)
        assert len({e.tx_hash for e in entries}) == count
        assert site.nonce() == nonce + count
    else:
        (batch,) = batches
        assert granted == [] and batch.count == count and batch.final
        assert {e.batch_id for e in entries} == {batch.batch_id}
        (anchor,) = site.logs("BatchAnchored")
        assert anchor["args"]["root"] == batch.root and anchor["args"]["count"] == count
        assert site.nonce() == nonce + 1
    assert site.pool() == 0 and gateway.outbox.pending_count() == 0
    gateway.close()


@pytest.mark.parametrize("mode", list(LogMode), ids=[m.value for m in LogMode])
def test_releases_from_8_threads_recorded_once(clean: Site, tmp_path: Path, mode: LogMode) -> None:
    _load(clean, tmp_path, mode, RELEASES)
