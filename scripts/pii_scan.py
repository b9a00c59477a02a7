"""Search a whole local chain for the identifying values of DICOM files.

What is searched (the haystacks): the input of every transaction in every block (contract
creations included), every log (its topics and data, from ``eth_getLogs`` over all blocks) and
every storage slot (key and value) of every contract account. Storage comes from:

- Anvil: ``anvil_dumpState``, a gzipped JSON dump of every account with its storage (it also
  lists slots that were read and are zero).
- Ganache and other nodes: ``debug_storageRangeAt(blockHash, txIndex, address, start, limit)``,
  paged, for every address that was created by a transaction, called by one or emitted a log.
  Ganache 7.9.2 answers with the storage *before* transaction ``txIndex`` of the block, so the
  scanner first sends one empty self-transfer from the node's last account and reads the state
  before it: the state after every earlier transaction.

What is searched for (the needles): every non-empty text value of an attribute that the DICOM
Basic Confidentiality Profile (PS3.15 Annex E) does not keep, and of every private attribute, in
the files, their sequences and file meta: PatientName, PatientID, dates and times, accession
number, Study/Series/SOP Instance UIDs, institution, physicians... Each value is taken as UTF-8
text, as the bytes stored in the file (with their padding), and split into components (the
values of a multi-valued attribute, the parts of a person name); each of those forms is searched
raw (if at least 4 bytes long and not one repeated byte, so a 1-byte sex code or a "----"
placeholder does not match at random) and as its unkeyed keccak256 and sha256 digests, both as
32 bytes and as 64 lowercase hex characters. Extra secrets (the site pepper) can be added.

Hits name the attribute and the form, never the value.

Usage:
    python scripts/pii_scan.py --rpc http://127.0.0.1:8545 FILE.dcm [FILE.dcm ...]
Exit code 1 if anything is found.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from eth_hash.auto import keccak
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import STR_VR

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from imaging_consent.dicom.annex_e import Action, basic_profile_action  # noqa: E402

#: Shortest value searched raw; shorter ones are searched only as digests.
MIN_RAW = 4
#: debug_storageRangeAt page size.
PAGE = 1024


@dataclass(frozen=True, slots=True)
class Needle:
    """One byte string to look for, and what it stands for (never the value itself)."""

    label: str
    value: bytes


@dataclass(frozen=True, slots=True)
class Haystack:
    """Bytes from the chain, and where they were found."""

    where: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Hit:
    """A needle found in a haystack."""

    needle: str
    where: str


# --- needles -----------------------------------------------------------------------------------


def _is_identifying(tag: int) -> bool:
    if tag >> 16 & 1:  # odd group: a private attribute, removed by the Basic Profile
        return True
    action = basic_profile_action(tag)
    return action is not None and action is not Action.K


def _components(text: str, vr: str) -> set[str]:
    parts = set(text.split("\\"))
    if vr == "PN":
        parts |= {p for part in list(parts) for p in part.replace("=", "^").split("^")}
    return {p.strip() for p in parts} - {""}


def _element_forms(raw: Any, element: DataElement) -> Iterator[tuple[str, bytes]]:
    """(form, bytes) of one identifying text element: stored bytes, UTF-8, components."""
    if element.VR not in STR_VR or element.value in (None, "", b""):  # text only, no pixels
        return
    text = "\\".join(map(str, element.value)) if element.VM > 1 else str(element.value)
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
        yield "stored bytes", raw.value
    yield "UTF-8", text.encode("utf-8")
    for part in _components(text, element.VR):
        yield "component", part.encode("utf-8")


def identifying_values(ds: Dataset, origin: str) -> Iterator[tuple[str, bytes]]:
    """(label, bytes) of every identifying text value in ``ds``, its sequences and file meta."""
    meta = getattr(ds, "file_meta", None)
    for dataset in (meta, ds) if meta is not None else (ds,):
        for tag in list(dataset.keys()):
            raw = dataset.get_item(tag)  # before dataset[tag], which converts it for good
            element = dataset[tag]
            if element.VR == "SQ":
                for index, item in enumerate(element.value):
                    yield from identifying_values(item, f"{origin} {element.keyword}[{index}]")
            elif _is_identifying(int(tag)):
                name = element.keyword or str(element.tag)
                for form, value in _element_forms(raw, element):
                    yield f"{origin} {name} ({form})", value


def _searchable_raw(value: bytes) -> bool:
    return len(value) >= MIN_RAW and len(set(value)) > 1


def needles_for(label: str, value: bytes) -> list[Needle]:
    """``value`` raw (when long enough to mean something) and as unkeyed digests."""
    found = [Needle(label, value)] if _searchable_raw(value) else []
    for name, digest in (("keccak256", keccak(value)), ("sha256", hashlib.sha256(value).digest())):
        found.append(Needle(f"{name} of {label}", digest))
        found.append(Needle(f"{name} hex of {label}", digest.hex().encode()))
    return found


def dicom_needles(paths: Iterable[Path]) -> list[Needle]:
    """Needles for every identifying value of each file, deduplicated by value."""
    by_value: dict[bytes, Needle] = {}
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for label, value in identifying_values(ds, path.name):
            for needle in needles_for(label, value):
                by_value.setdefault(needle.value, needle)
    return list(by_value.values())


# --- haystacks ---------------------------------------------------------------------------------


class Rpc:
    """A minimal JSON-RPC client (no web3 formatting in the way of raw answers)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error'].get('message', answer['error'])}")
        return answer["result"]


def _bytes(hex_text: str | None) -> bytes:
    return bytes.fromhex((hex_text or "0x")[2:])


def transactions(rpc: Rpc) -> list[dict[str, Any]]:
    """Every transaction of every block, oldest first."""
    latest = int(rpc("eth_blockNumber"), 16)
    return [
        tx
        for number in range(latest + 1)
        for tx in rpc("eth_getBlockByNumber", hex(number), True)["transactions"]
    ]


def input_haystacks(txs: list[dict[str, Any]]) -> Iterator[Haystack]:
    for tx in txs:
        yield Haystack(f"tx {tx['hash']} input", _bytes(tx.get("input") or tx.get("data")))


def log_haystacks(logs: list[dict[str, Any]]) -> Iterator[Haystack]:
    for log in logs:
        data = b"".join(_bytes(topic) for topic in log["topics"]) + _bytes(log["data"])
        where = f"log {int(log['logIndex'], 16)} of tx {log['transactionHash']} ({log['address']})"
        yield Haystack(where, data)


def _storage_haystacks(address: str, slots: dict[int, bytes]) -> Iterator[Haystack]:
    """Slot keys, and values joined over runs of consecutive slots (long values span them)."""
    yield Haystack(
        f"storage of {address}: slot keys", b"".join(k.to_bytes(32, "big") for k in slots)
    )
    run: list[bytes] = []
    start = previous = -2
    for key in sorted(slots):
        if key != previous + 1 and run:
            yield Haystack(f"storage of {address}: slots {hex(start)}+{len(run)}", b"".join(run))
            run = []
        if not run:
            start = key
        run.append(slots[key])
        previous = key
    if run:
        yield Haystack(f"storage of {address}: slots {hex(start)}+{len(run)}", b"".join(run))


def anvil_storage(rpc: Rpc) -> dict[str, dict[int, bytes]]:
    """Storage of every account, from ``anvil_dumpState``."""
    state = json.loads(gzip.decompress(_bytes(rpc("anvil_dumpState"))))
    return {
        address: {int(k, 16): int(v, 16).to_bytes(32, "big") for k, v in account["storage"].items()}
        for address, account in state["accounts"].items()
        if account["storage"]
    }


def _touched_contracts(rpc: Rpc, txs: list[dict[str, Any]], logs: list[dict[str, Any]]) -> set[str]:
    candidates = {tx["to"] for tx in txs if tx.get("to")} | {log["address"] for log in logs}
    for tx in txs:
        if not tx.get("to"):
            candidates.add(rpc("eth_getTransactionReceipt", tx["hash"])["contractAddress"])
    return {a.lower() for a in candidates if a and rpc("eth_getCode", a, "latest") != "0x"}


def ranged_storage(
    rpc: Rpc, txs: list[dict[str, Any]], logs: list[dict[str, Any]]
) -> dict[str, dict[int, bytes]]:
    """Storage of every contract the chain's history touched, from ``debug_storageRangeAt``."""
    contracts = _touched_contracts(rpc, txs, logs)
    sender = rpc("eth_accounts")[-1]
    marker = rpc("eth_sendTransaction", {"from": sender, "to": sender, "value": "0x0"})
    block_hash = rpc("eth_getTransactionReceipt", marker)["blockHash"]
    index = next(
        i
        for i, tx in enumerate(rpc("eth_getBlockByHash", block_hash, True)["transactions"])
        if tx["hash"] == marker
    )
    storage: dict[str, dict[int, bytes]] = {}
    for address in sorted(contracts):
        slots: dict[int, bytes] = {}
        start: str | None = "0x" + "00" * 32
        while start is not None:
            page = rpc("debug_storageRangeAt", block_hash, index, address, start, PAGE)
            for entry in page["storage"].values():
                slots[int(entry["key"], 16)] = _bytes(entry["value"]).rjust(32, b"\0")
            start = page.get("nextKey")
        storage[address] = slots
    return storage


def chain_haystacks(rpc: Rpc) -> list[Haystack]:
    """Every transaction input, every log and every contract storage slot of the chain."""
    txs = transactions(rpc)
    logs = rpc("eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"})
    client = str(rpc("web3_clientVersion")).lower()
    storage = anvil_storage(rpc) if client.startswith("anvil") else ranged_storage(rpc, txs, logs)
    return [
        *input_haystacks(txs),
        *log_haystacks(logs),
        *(h for address, slots in storage.items() for h in _storage_haystacks(address, slots)),
    ]


# --- the scan ----------------------------------------------------------------------------------


def scan(needles: Iterable[Needle], haystacks: Iterable[Haystack]) -> list[Hit]:
    """Every (needle, haystack) pair where the needle's bytes occur in the haystack's."""
    stacks = list(haystacks)
    return [Hit(n.label, h.where) for n in needles for h in stacks if n.value in h.data]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain")
    parser.add_argument("files", nargs="+", type=Path, help="DICOM files whose values to seek")
    args = parser.parse_args(argv)
    needles = dicom_needles(args.files)
    haystacks = chain_haystacks(Rpc(args.rpc))
    hits = scan(needles, haystacks)
    for hit in hits:
        print(f"FOUND {hit.needle} in {hit.where}")
    print(f"pii-scan: {len(needles)} needles, {len(haystacks)} haystacks, {len(hits)} hits")
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
