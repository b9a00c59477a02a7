"""What the demo's story is told with: its cast, its sample studies, its narrator, and the
files ``imaging-consent demo --keep`` leaves behind to continue by hand.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from eth_account.signers.local import LocalAccount
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from rich.console import Console

from imaging_consent.chain import LocalChain, TransactionSender, write_keystore
from imaging_consent.contracts.deployment import Suite, sender_for
from imaging_consent.contracts.manifest import manifest_path
from imaging_consent.dicom import SitePepper
from imaging_consent.dicom.annex_e import Action, basic_profile_action
from imaging_consent.errors import ImagingConsentError
from imaging_consent.gateway import ImageGateway
from imaging_consent.stores import FolderStore

__all__ = [
    "DEMO_KEYSTORE_PASSWORD",
    "ROLES",
    "SAMPLE_FILES",
    "DemoError",
    "DemoResult",
    "GasEntry",
    "Story",
    "continue_hints",
    "identifying_attributes",
    "prepare_studies",
    "workdir",
    "write_keep_files",
]

#: The dev account index of each character in the story.
ROLES: dict[str, int] = {
    "admin/site": 0,
    "gateway": 1,
    "patient": 2,
    "radiologist": 3,
    "research app": 4,
    "relayer": 5,
    "emergency clinician": 6,
}
#: pydicom's bundled studies the hospital holds (three studies, distinct Study Instance UIDs).
SAMPLE_FILES: dict[str, str] = {"CT": "CT_small.dcm", "MR": "MR_small.dcm", "RT dose": "rtdose.dcm"}
#: Password of the keystores ``--keep`` writes (test accounts only).
DEMO_KEYSTORE_PASSWORD = "demo"


class DemoError(ImagingConsentError, RuntimeError):
    """The system did not behave as the story says it must (a failed check in the demo)."""


@dataclass(frozen=True, slots=True)
class GasEntry:
    """Gas one operation used, from its receipt."""

    operation: str
    actor: str
    gas_used: int
    tx_hash: str


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo did.

    Attributes:
        outcomes: One line per checked outcome, in order (``"released ..."``, ``"refused ..."``).
        gas: Gas per operation.
        seconds: Wall time of the story (chain start to audit).
        keep_dir: Where ``--keep`` wrote its files, if it did.
    """

    outcomes: tuple[str, ...]
    gas: tuple[GasEntry, ...]
    seconds: float
    keep_dir: Path | None = None


@dataclass
class Story:
    """The story's state and its narrator: each outcome is printed, and checked, as it happens."""

    console: Console
    chain: LocalChain
    work: Path
    pepper: SitePepper
    suite: Suite | None = None
    senders: dict[str, TransactionSender] = field(default_factory=dict)
    gas: list[GasEntry] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    study_uids: dict[str, str] = field(default_factory=dict)
    study_keys: dict[str, bytes] = field(default_factory=dict)

    # --- narration -----------------------------------------------------------------------------

    def step(self, number: int, title: str) -> None:
        self.console.rule(f"[bold]{number}. {title}")

    def say(self, text: str) -> None:
        self.console.print(text)

    def good(self, text: str) -> None:
        self.outcomes.append(text)
        self.console.print(f"  [bold green]✔[/] {text}")

    def bad(self, text: str) -> None:
        self.outcomes.append(text)
        self.console.print(f"  [bold red]✘[/] {text}")

    def check(self, condition: bool, failure: str) -> None:
        if not condition:
            raise DemoError(f"demo check failed: {failure}")

    # --- chain helpers -------------------------------------------------------------------------

    def account(self, role: str) -> LocalAccount:
        return self.chain.accounts[ROLES[role]]

    def addr(self, role: str) -> str:
        return self.account(role).address

    def sender(self, role: str) -> TransactionSender:
        if role not in self.senders:
            self.senders[role] = sender_for(self.chain.session, self.account(role))
        return self.senders[role]

    def record_gas(self, operation: str, actor: str, tx_hash: str | None) -> int:
        if tx_hash is None:
            return 0
        receipt = self.chain.session.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        used = int(receipt["gasUsed"])
        self.gas.append(GasEntry(operation, actor, used, tx_hash))
        return used

    @property
    def the_suite(self) -> Suite:
        if self.suite is None:
            raise DemoError("the suite is not deployed yet")
        return self.suite

    def gateway(self, store: FolderStore) -> ImageGateway:
        return ImageGateway(
            self.the_suite,
            self.sender("gateway"),
            store,
            self.pepper,
            outbox_path=self.work / "outbox.sqlite3",
        )

    def balance(self, role: str) -> int:
        return int(self.chain.session.w3.eth.get_balance(self.addr(role)))  # type: ignore[arg-type]

    def chain_now(self) -> int:
        return int(self.chain.session.w3.eth.get_block("latest")["timestamp"])


# --- the studies -----------------------------------------------------------------------------


def prepare_studies(folder: Path) -> dict[str, str]:
    """Copy pydicom's bundled CT, MR and RT dose files into ``folder``.

    Returns:
        Study Instance UID by label (``"CT"``, ``"MR"``, ``"RT dose"``).

    Raises:
        DemoError: If a sample file is missing or two share a study.
    """
    folder.mkdir(parents=True, exist_ok=True)
    uids: dict[str, str] = {}
    for label, name in SAMPLE_FILES.items():
        source = get_testdata_file(name)
        if source is None:
            raise DemoError(f"pydicom's sample file {name} is missing")
        target = folder / name
        shutil.copyfile(source, target)
        ds = pydicom.dcmread(target, stop_before_pixels=True)
        uids[label] = str(ds.StudyInstanceUID)
    if len(set(uids.values())) != len(uids):
        raise DemoError("the sample files do not hold three distinct studies")
    return uids


def identifying_attributes(original: Dataset, released: Dataset) -> tuple[list[str], list[str]]:
    """Compare top-level attributes the Basic Profile does not keep.

    Returns:
        ``(identifying, survivors)``: keywords of the original's non-empty attributes that the
        profile removes, empties or replaces; and those among them the release still carries
        with the original value.
    """
    identifying: list[str] = []
    survivors: list[str] = []
    for element in original:
        if element.tag == 0x7FE00010 or element.VR == "SQ":
            continue
        action = basic_profile_action(int(element.tag))
        if action is None or action is Action.K or element.value in (None, "", b""):
            continue
        name = element.keyword or str(element.tag)
        identifying.append(name)
        kept = released.get(element.tag)
        if kept is not None and kept.value == element.value:
            survivors.append(name)
    return identifying, survivors


# --- what --keep leaves behind ---------------------------------------------------------------


@contextmanager
def workdir(keep_dir: Path | None) -> Iterator[Path]:
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
        yield keep_dir.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="imaging-consent-demo-") as folder:
        yield Path(folder)


def write_keep_files(story: Story, folder: Path) -> None:
    """Manifest, keys, pepper file, config and an env snippet, to continue by hand."""
    suite = story.the_suite
    manifest = manifest_path(folder / "deployments", suite.manifest.chain_id)
    suite.manifest.write(manifest)
    pepper_file = folder / "site-pepper"
    fd = os.open(pepper_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(story.pepper.reveal().hex() + "\n")
    os.chmod(pepper_file, 0o600)
    keys = folder / "keys"
    keys.mkdir(exist_ok=True)
    for role in ROLES:
        name = role.replace("/", "-").replace(" ", "-")
        write_keystore(
            story.account(role), keys / f"{name}.json", DEMO_KEYSTORE_PASSWORD, iterations=2**12
        )
    (folder / "imaging-consent.toml").write_text(
        f'rpc_url = "{story.chain.rpc_url}"\n'
        f'manifest = "{manifest.relative_to(folder)}"\n'
        'store = "studies"\n'
        'site_pepper_file = "site-pepper"\n'
    )
    (folder / "env.sh").write_text(
        "# Test accounts on a local chain only. Source it: . ./env.sh\n"
        f"export IMAGING_CONSENT_RPC_URL={story.chain.rpc_url}\n"
        f"export IMAGING_CONSENT_MANIFEST={manifest}\n"
        f"export IMAGING_CONSENT_STORE={folder / 'studies'}\n"
        f"export IMAGING_CONSENT_SITE_PEPPER_FILE={pepper_file}\n"
        f"export IMAGING_CONSENT_KEYSTORE_PASSWORD={DEMO_KEYSTORE_PASSWORD}\n"
    )


def continue_hints(story: Story, folder: Path) -> None:
    p = story.addr
    ct_key = "0x" + story.study_keys["CT"].hex()
    story.console.rule("[bold]Continue by hand")
    story.console.print(
        f"The chain keeps running at {story.chain.rpc_url}. Files are in {folder}:\n"
        "deployments/ (manifest), keys/ (keystores, password "
        f"'{DEMO_KEYSTORE_PASSWORD}', TEST KEYS ONLY), studies/, site-pepper, "
        "imaging-consent.toml, env.sh.\n"
        "In another shell:\n"
        f"  cd {folder} && . ./env.sh\n"
        "  imaging-consent consent grant --keystore keys/patient.json "
        f"--grantee {p('radiologist')} --study-key {ct_key} \\\n"
        "      --purpose TREAT --identified --expires 7d\n"
        f"  imaging-consent fetch {story.study_uids['CT']} --purpose TREAT "
        f"--as {p('radiologist')} --keystore keys/gateway.json --out received/ct-again\n"
        "  imaging-consent verify received/ct-again\n"
        f"  imaging-consent consent revoke --keystore keys/patient.json --grantee "
        f"{p('radiologist')} --study-key {ct_key}\n"
        f"  imaging-consent audit --patient {p('patient')}"
    )
