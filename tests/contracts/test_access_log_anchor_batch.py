"""AccessLog.anchorBatch: a gateway anchors the Merkle root of a batch of access records."""

from eth_hash.auto import keccak

ROOT = keccak(b"batch root")
BATCH = keccak(b"batch-1")


def test_anchor_batch_emits_batch_anchored(access_log, gateway):
    tx = access_log.anchorBatch(ROOT, 1000, BATCH, {"from": gateway})

    assert len(tx.events) == 1
    assert tx.events["BatchAnchored"] == {
        "root": "0x" + ROOT.hex(),
        "count": 1000,
        "batchId": "0x" + BATCH.hex(),
        "gateway": gateway,
    }


def test_anchor_batch_accepts_reused_batch_id(access_log, gateway):
    """Batch ids are not stored (see IAccessLog); a reuse shows in the events for the indexer."""
    access_log.anchorBatch(ROOT, 2, BATCH, {"from": gateway})

    tx = access_log.anchorBatch(keccak(b"other root"), 3, BATCH, {"from": gateway})

    assert tx.events["BatchAnchored"]["batchId"] == "0x" + BATCH.hex()


def test_anchor_batch_rejects_zero_root(access_log, custom_error, gateway):
    with custom_error("AccessLogZeroRoot", BATCH):
        access_log.anchorBatch(bytes(32), 10, BATCH, {"from": gateway})


def test_anchor_batch_rejects_empty_batch(access_log, custom_error, gateway):
    with custom_error("AccessLogEmptyBatch", BATCH):
        access_log.anchorBatch(ROOT, 0, BATCH, {"from": gateway})


def test_anchor_batch_rejects_non_gateway(access_log, custom_error, stranger):
    with custom_error("AccessLogNotGateway", stranger):
        access_log.anchorBatch(ROOT, 10, BATCH, {"from": stranger})
