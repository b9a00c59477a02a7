"""Shared set-up for the benchmarks: a deployed suite with the usual actors on a local chain."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pydicom
from eth_account.signers.local import LocalAccount
from pydicom.data import get_testdata_file

from imaging_consent.chain import LocalChain, TransactionSender
from imaging_consent.contracts.deployment import Suite, appoint, deploy, sender_for

__all__ = ["Actors", "Deployed", "deploy_all", "write_ct_small"]

#: Study and series UIDs of the CT_small copy (a UID root for tests and benchmarks).
CT_SMALL_STUDY = "1.2.826.0.1.3680043.10.5432.77"
CT_SMALL_SERIES = "1.2.826.0.1.3680043.10.5432.77.1"
CT_SMALL_SOP = "1.2.826.0.1.3680043.10.5432.77.1.1"


@dataclass(frozen=True, slots=True)
class Actors:
    """Accounts of the benchmark scenario (the first eight development accounts)."""

    admin: LocalAccount  # StudyRegistry's admin (the deployer)
    site: LocalAccount  # SITE_ROLE; appoints the gateway and the clinician
    gateway: LocalAccount  # the site's gateway
    clinician: LocalAccount  # the site's emergency clinician
    patient: LocalAccount
    requester: LocalAccount
    delegate: LocalAccount
    relayer: LocalAccount


@dataclass(frozen=True, slots=True)
class Deployed:
    """A suite on a chain, with its actors and the senders of the admin and the site."""

    chain: LocalChain
    suite: Suite
    actors: Actors
    admin_sender: TransactionSender
    site_sender: TransactionSender


def deploy_all(chain: LocalChain, admin_sender: TransactionSender | None = None) -> Deployed:
    """Deploy the suite on ``chain``: the admin grants SITE_ROLE to the site, and the site
    appoints its own gateway and emergency clinician with its own key.

    Args:
        chain: A started chain with at least eight accounts.
        admin_sender: The sender of account 0, if the caller already has one (one sender per
            account and process).
    """
    a = chain.accounts
    actors = Actors(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])
    admin = admin_sender or sender_for(chain.session, actors.admin)
    suite = deploy(chain.session, admin, sites=[actors.site.address], out_dir=None)
    site = sender_for(chain.session, actors.site)
    appoint(
        suite.access_log,
        site,
        gateways=[actors.gateway.address],
        emergency=[actors.clinician.address],
    )
    return Deployed(chain, suite, actors, admin, site)


def write_ct_small(folder: Path) -> Path:
    """Copy pydicom's CT_small.dcm (one 128x128 16-bit slice) into ``folder`` under fixed UIDs."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID = CT_SMALL_STUDY
    ds.SeriesInstanceUID = CT_SMALL_SERIES
    ds.SOPInstanceUID = CT_SMALL_SOP
    ds.file_meta.MediaStorageSOPInstanceUID = CT_SMALL_SOP
    target = folder / "ct_small.dcm"
    ds.save_as(target, enforce_file_format=True)
    return target


def remove(path: Path) -> None:
    """Remove a folder tree, ignoring errors."""
    shutil.rmtree(path, ignore_errors=True)
