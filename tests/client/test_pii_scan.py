"""No personal data on chain: after the whole demo, the chain holds none of the sample files'
identifying values, raw or as unkeyed keccak256/sha256, in any transaction input, log or
storage slot (scripts/pii_scan.py). A planted value is found in each of those places, so the
scan is proven to see them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pydicom
import pytest
from chain_helpers import init_code
from dicom_samples import sample
from eth_hash.auto import keccak
from rich.console import Console
from web3 import Web3

from imaging_consent.chain import LocalChain
from imaging_consent.cli.config import load_config
from imaging_consent.cli.demo import run_demo
from imaging_consent.cli.demo_setup import SAMPLE_FILES
from imaging_consent.contracts.deployment import deploy, sender_for

ROOT = Path(__file__).resolve().parents[2]

#: Runtime of a contract that stores the first calldata word in slot 0 and logs the whole
#: calldata: CALLDATACOPY(0, 0, size), LOG0(0, size), SSTORE(0, CALLDATALOAD(0)), STOP.
KEEPS_AND_LOGS_CALLDATA = "366000600037366000a060003560005500"


def _pii_scan() -> ModuleType:
    # scripts/ is not a package on the client tests' path; load the script by file.
    spec = importlib.util.spec_from_file_location("pii_scan", ROOT / "scripts" / "pii_scan.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


pii_scan = _pii_scan()
# rtdose.dcm's ReferencedSOPInstanceUID has a 21-digit component, which pydicom warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")
DEMO_FILES = [sample(name) for name in SAMPLE_FILES.values()]


@pytest.fixture(scope="module")
def needles():
    return pii_scan.dicom_needles(DEMO_FILES)


def _label(needles, value: bytes) -> str:
    return next(n.label for n in needles if n.value == value)


def _places(hits, label: str) -> set[str]:
    return {hit.where.split(" ")[0] for hit in hits if hit.needle == label}


@pytest.mark.parametrize("kind", ["ganache", "anvil"])
def test_no_identifying_value_on_chain_after_the_demo(kind, needles, tmp_path):
    haystacks = []

    def scan_while_the_chain_is_kept() -> None:
        rpc_url = load_config(tmp_path / "imaging-consent.toml")["rpc_url"]
        haystacks.extend(pii_scan.chain_haystacks(pii_scan.Rpc(rpc_url)))

    run_demo(
        Console(file=io.StringIO()), kind=kind, keep_dir=tmp_path, wait=scan_while_the_chain_is_kept
    )
    pepper = bytes.fromhex((tmp_path / "site-pepper").read_text().strip())
    secrets = pii_scan.needles_for("the site pepper", pepper)

    assert pii_scan.scan([*needles, *secrets], haystacks) == []
    # The scan saw the whole story: inputs, logs and the three contracts' storage.
    places = [h.where for h in haystacks]
    assert sum(p.startswith("tx ") for p in places) >= 15
    assert sum(p.startswith("log ") for p in places) >= 15
    manifest = next((tmp_path / "deployments").glob("*.json")).read_text().lower()
    storage = {p.split(" ")[2].rstrip(":") for p in places if p.startswith("storage ")}
    assert len([a for a in storage if a in manifest]) == 3


@pytest.fixture(params=["ganache", "anvil"])
def fresh_chain(request: pytest.FixtureRequest) -> Iterator[LocalChain]:
    """A chain of its own: the scan reads all of it, not the session chain's other tests."""
    with LocalChain(request.param) as chain:
        yield chain


def test_the_scan_finds_planted_values(fresh_chain: LocalChain, needles):
    ct = pydicom.dcmread(sample("CT_small.dcm"), stop_before_pixels=True)
    raw_name = str(ct.PatientName).encode()
    unkeyed_study_key = hashlib.sha256(str(ct.StudyInstanceUID).encode()).digest()
    unkeyed_root = keccak(str(ct.PatientID).encode())
    admin = sender_for(fresh_chain.session, fresh_chain.accounts[0])

    # A site that forgets its pepper: the study key is a plain sha256 of the Study UID and the
    # content root a keccak256 of the patient ID.
    suite = deploy(fresh_chain.session, admin, out_dir=None)
    admin.transact(suite.studies.grant_role("SITE_ROLE", Web3.to_checksum_address(admin.address)))
    patient = Web3.to_checksum_address(fresh_chain.accounts[2].address)
    admin.transact(suite.studies.register_study(unkeyed_study_key, patient, unkeyed_root, 1))
    # A contract that keeps and logs whatever it is sent: the raw patient name.
    probe = admin.send({"data": init_code(KEEPS_AND_LOGS_CALLDATA)}).contract_address
    admin.send({"to": probe, "data": "0x" + raw_name.hex()})

    hits = pii_scan.scan(needles, pii_scan.chain_haystacks(pii_scan.Rpc(fresh_chain.rpc_url)))

    assert _places(hits, _label(needles, raw_name)) == {"tx", "log", "storage"}
    # The study key only reaches storage hashed with the site into the slot's key.
    assert _places(hits, _label(needles, unkeyed_study_key)) == {"tx", "log"}
    assert _places(hits, _label(needles, unkeyed_root)) == {"tx", "log", "storage"}
    assert all(raw_name not in hit.needle.encode() for hit in hits)


def test_the_command_line_reports_hits_without_values(fresh_chain: LocalChain, capsys):
    admin = sender_for(fresh_chain.session, fresh_chain.accounts[0])
    ct = pydicom.dcmread(sample("CT_small.dcm"), stop_before_pixels=True)
    admin.send({"to": admin.address, "data": "0x" + str(ct.PatientID).encode().hex()})
    files = [str(path) for path in DEMO_FILES]

    assert pii_scan.main(["--rpc", fresh_chain.rpc_url, *files]) == 1

    out = capsys.readouterr().out
    assert "FOUND CT_small.dcm PatientID (stored bytes) in tx 0x" in out
    assert ", 1 hits" in out
    assert str(ct.PatientID) not in out.replace("CT_small.dcm", "")


def test_short_and_placeholder_values_are_sought_only_hashed():
    assert [n.label for n in pii_scan.needles_for("sex", b"O")] == [
        "keccak256 of sex",
        "keccak256 hex of sex",
        "sha256 of sex",
        "sha256 hex of sex",
    ]
    assert pii_scan.needles_for("placeholder", b"----")[0].label.startswith("keccak256")
    assert pii_scan.needles_for("id", b"1CT1")[0].value == b"1CT1"
