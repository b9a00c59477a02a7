"""Real DICOM studies (pydicom's bundled files) and a deployed suite, for the release tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from dicom_samples import sample
from eth_account.signers.local import LocalAccount
from pydicom.uid import generate_uid

from imaging_consent.chain import LocalChain, TransactionSender
from imaging_consent.consent import Purpose, purposes_mask
from imaging_consent.contracts.deployment import Suite, appoint, deploy, sender_for
from imaging_consent.stores import FolderStore

ROOT = "1.2.826.0.1.3680043.10.5432."
CT_STUDY = ROOT + "1"
CT_SERIES_A = ROOT + "1.1"
CT_SERIES_B = ROOT + "1.2"
RLE_STUDY = ROOT + "2"
J2K_STUDY = ROOT + "3"
BURNED_STUDY = ROOT + "4"
MR_STUDY = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"  # MR_small.dcm, as shipped
RTDOSE_STUDY = "1.2.999.999.99.9.9999.8888"  # rtdose.dcm (15 frames), as shipped


def write_copy(
    name: str,
    dest: Path,
    *,
    study: str,
    series: str,
    sop: str,
    number: int = 1,
    burned_in: str | None = None,
) -> Path:
    """Save a pydicom sample under new UIDs (its PixelData bytes unchanged).

    ``burned_in``, if given, is written as BurnedInAnnotation (``"NO"``: the site checked the
    pixels, as de-identifying a secondary capture or ultrasound requires).
    """
    ds = pydicom.dcmread(sample(name))
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.InstanceNumber = number
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    return dest


def build_studies(root: Path) -> Path:
    """Several studies: a 3-instance, 2-series CT; MR; RLE; JPEG 2000; RT dose; bad files."""
    write_copy(
        "CT_small.dcm", root / "ct/a1.dcm", study=CT_STUDY, series=CT_SERIES_A, sop=ROOT + "1.1.1"
    )
    write_copy(
        "CT_small.dcm",
        root / "ct/a2.dcm",
        study=CT_STUDY,
        series=CT_SERIES_A,
        sop=ROOT + "1.1.2",
        number=2,
    )
    write_copy(
        "CT_small.dcm", root / "ct/b1.dcm", study=CT_STUDY, series=CT_SERIES_B, sop=ROOT + "1.2.1"
    )
    shutil.copyfile(sample("MR_small.dcm"), root / "mr.dcm")
    write_copy(
        "MR_small_RLE.dcm",
        root / "rle.dcm",
        study=RLE_STUDY,
        series=ROOT + "2.1",
        sop=ROOT + "2.1.1",
    )
    write_copy(
        "JPEG2000.dcm",
        root / "j2k.dcm",
        study=J2K_STUDY,
        series=ROOT + "3.1",
        sop=ROOT + "3.1.1",
        burned_in="NO",  # a secondary capture: released de-identified only when declared NO
    )
    shutil.copyfile(sample("rtdose.dcm"), root / "rtdose.dcm")
    write_copy(
        "CT_small.dcm",
        root / "burned.dcm",
        study=BURNED_STUDY,
        series=ROOT + "4.1",
        sop=ROOT + "4.1.1",
        burned_in="YES",
    )
    (root / "bad").mkdir()
    shutil.copyfile(sample("MR_truncated.dcm"), root / "bad/truncated.dcm")
    shutil.copyfile(sample("badVR.dcm"), root / "bad/badvr.dcm")
    return root


def build_ct_study(root: Path, count: int = 3) -> Path:
    """Only a CT study of ``count`` instances (for tests that alter files)."""
    for i in range(1, count + 1):
        write_copy(
            "CT_small.dcm",
            root / f"ct{i}.dcm",
            study=CT_STUDY,
            series=CT_SERIES_A,
            sop=f"{ROOT}1.1.{i}",
            number=i,
        )
    return root


def new_uid() -> str:
    return generate_uid(prefix=ROOT + "9.")


@dataclass
class Actors:
    """The accounts of a release scenario on one chain."""

    admin: LocalAccount
    site: LocalAccount
    gateway: LocalAccount
    doctor: LocalAccount  # the site's emergency clinician
    patient: LocalAccount
    requester: LocalAccount
    stranger: LocalAccount


def actors(chain: LocalChain) -> Actors:
    a = chain.accounts
    return Actors(a[0], a[1], a[2], a[3], a[4], a[5], a[6])


def deploy_suite(chain: LocalChain, people: Actors) -> Suite:
    """Deploy; the admin makes ``site`` a site, and the site appoints its gateway and doctor."""
    suite = deploy(
        chain.session,
        sender_for(chain.session, people.admin),
        sites=[people.site.address],
        out_dir=None,
    )
    appoint(
        suite.access_log,
        sender_for(chain.session, people.site),
        gateways=[people.gateway.address],
        emergency=[people.doctor.address],
    )
    return suite


def grant(
    suite: Suite,
    patient: TransactionSender,
    grantee: str,
    *,
    scope: bytes = bytes(32),
    purposes: tuple[Purpose, ...] = (Purpose.TREAT,),
    identified: bool = True,
    expires_at: int = 0,
) -> None:
    patient.transact(
        suite.consent.functions.grant(
            grantee, scope, purposes_mask(purposes), identified, 0, expires_at
        )
    )


def revoke(
    suite: Suite, patient: TransactionSender, grantee: str, scope: bytes = bytes(32)
) -> None:
    patient.transact(suite.consent.functions.revoke(grantee, scope))


class RacingStore:
    """A store whose first ``open`` runs ``on_open`` (the patient's change racing the load)."""

    def __init__(self, inner: FolderStore, on_open: Callable[[], None]) -> None:
        self._inner = inner
        self._on_open: Callable[[], None] | None = on_open

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def open(self, sop_instance_uid: str) -> Any:
        if self._on_open is not None:
            on_open, self._on_open = self._on_open, None
            on_open()
        return self._inner.open(sop_instance_uid)
