"""What the demo's story is told with: its cast, its sample studies, its narrator, and the
files ``imaging-consent demo --keep`` leaves behind to continue by hand.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
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
from rich.table import Table

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
    "DEMO_MARKER",
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
        exit_code: What the kept chain's wait returned (130 after Ctrl-C), else 0.
    """

    outcomes: tuple[str, ...]
    gas: tuple[GasEntry, ...]
    seconds: float
    keep_dir: Path | None = None
    exit_code: int = 0


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
        self.console.print(text, soft_wrap=False)  # wrapped between words at the width

    def good(self, text: str) -> None:
        self.outcomes.append(text)
        self._outcome("[bold green]✔[/]", text)

    def bad(self, text: str) -> None:
        self.outcomes.append(text)
        self._outcome("[bold red]✘[/]", text)

    def _outcome(self, mark: str, text: str) -> None:
        lines = Table.grid(padding=(0, 1))  # wrapped lines hang under the text, not the mark
        lines.add_column(no_wrap=True)
        lines.add_column()
        lines.add_row(f"  {mark}", text)
        self.console.print(lines)

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


#: Marks a folder ``--keep`` wrote, so that a later run may empty it.
DEMO_MARKER = ".imaging-consent-demo"


@contextmanager
def workdir(keep_dir: Path | None) -> Iterator[Path]:
    """The folder the story writes to: a temporary one, or ``keep_dir`` emptied first.

    A ``keep_dir`` from an earlier run (it holds :data:`DEMO_MARKER`) is emptied, so a rerun
    never mixes its files with old ones; any other folder must be new or empty.

    Raises:
        DemoError: If ``keep_dir`` is a file, or a non-empty folder no demo wrote.
    """
    if keep_dir is None:
        with tempfile.TemporaryDirectory(prefix="imaging-consent-demo-") as folder:
            yield Path(folder)
        return
    if keep_dir.is_dir() and any(keep_dir.iterdir()):
        if not (keep_dir / DEMO_MARKER).is_file():
            raise DemoError(
                f"--dir {keep_dir} is not empty and no demo wrote it: pass a new or empty folder"
            )
        for entry in keep_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    elif keep_dir.exists() and not keep_dir.is_dir():
        raise DemoError(f"--dir {keep_dir} is not a folder")
    keep_dir.mkdir(parents=True, exist_ok=True)
    (keep_dir / DEMO_MARKER).write_text(
        "Written by `imaging-consent demo --keep`: the next run in this folder empties it.\n"
    )
    yield keep_dir.resolve()


def _key_file(role: str) -> str:
    return "keys/" + role.replace("/", "-").replace(" ", "-") + ".json"


def _console_script_folder() -> Path | None:
    """The folder of the ``imaging-consent`` script installed beside this Python, if any."""
    folder = Path(sys.executable).parent
    return folder if (folder / "imaging-consent").is_file() else None


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
    (folder / "keys").mkdir(exist_ok=True)
    for role in ROLES:
        write_keystore(
            story.account(role), folder / _key_file(role), DEMO_KEYSTORE_PASSWORD, iterations=2**12
        )
    (folder / "imaging-consent.toml").write_text(
        f'rpc_url = "{story.chain.rpc_url}"\n'
        f'manifest = "{manifest.relative_to(folder)}"\n'
        'store = "studies"\n'
        'site_pepper_file = "site-pepper"\n'
    )
    scripts = _console_script_folder()
    path_line = f'export PATH={shlex.quote(str(scripts))}:"$PATH"\n' if scripts else ""
    (folder / "env.sh").write_text(
        "# Test accounts on a local chain only. Source it: . ./env.sh\n"
        + path_line
        + f"export IMAGING_CONSENT_RPC_URL={story.chain.rpc_url}\n"
        f"export IMAGING_CONSENT_MANIFEST={shlex.quote(str(manifest))}\n"
        f"export IMAGING_CONSENT_STORE={shlex.quote(str(folder / 'studies'))}\n"
        f"export IMAGING_CONSENT_SITE_PEPPER_FILE={shlex.quote(str(pepper_file))}\n"
        f"export IMAGING_CONSENT_KEYSTORE_PASSWORD={DEMO_KEYSTORE_PASSWORD}\n"
    )


def continue_hints(story: Story, folder: Path) -> None:
    """Print what ``--keep`` left in ``folder`` and the next commands, each line < 80 columns.

    The keys and addresses go into shell variables first, so the commands stay short.
    """
    chain_id = story.the_suite.manifest.chain_id
    files = [
        (f"deployments/{chain_id}.json", "the deployment manifest"),
        ("keys/<role>.json", f"keystores, password '{DEMO_KEYSTORE_PASSWORD}' (TEST KEYS ONLY)"),
        ("studies/", "the site's DICOM files"),
        ("site-pepper", "the site's secret pepper (mode 0600)"),
        ("imaging-consent.toml", "config: RPC URL, manifest, store, pepper file"),
        ("env.sh", "the same as environment variables, and PATH"),
    ]
    roles = ", ".join(_key_file(role).removeprefix("keys/") for role in ROLES)
    story.console.rule("[bold]Continue by hand")
    story.console.print(
        f"The chain keeps running at {story.chain.rpc_url}. The files are in {folder}:",
        soft_wrap=False,
    )
    for name, what in files:
        story.console.print(f"  {name:<22} {what}", highlight=False)
    story.console.print(f"  (keys/: {roles})", soft_wrap=False)
    story.console.print(
        "In another shell:\n"
        f"  cd {shlex.quote(str(folder))} && . ./env.sh\n"
        f"  patient={story.addr('patient')}\n"
        f"  radiologist={story.addr('radiologist')}\n"
        f"  ct_key=0x{story.study_keys['CT'].hex()}\n"
        f"  ct_uid={story.study_uids['CT']}\n"
        "  imaging-consent consent grant --keystore keys/patient.json \\\n"
        '      --grantee "$radiologist" --study-key "$ct_key" \\\n'
        "      --purpose TREAT --identified --expires 7d --yes\n"
        '  imaging-consent fetch "$ct_uid" --purpose TREAT --as "$radiologist" \\\n'
        "      --keystore keys/gateway.json --out received/ct-again\n"
        "  imaging-consent verify received/ct-again\n"
        "  imaging-consent consent revoke --keystore keys/patient.json \\\n"
        '      --grantee "$radiologist" --study-key "$ct_key"\n'
        '  imaging-consent audit --patient "$patient"'
    )
