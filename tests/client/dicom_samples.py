"""Real DICOM files shipped with pydicom, and folders built from them, for the DICOM tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file


def sample(name: str) -> Path:
    """Return the path of one of pydicom's own test files."""
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(path)


def copy_sample(name: str, dest: Path) -> Path:
    """Copy a pydicom test file to ``dest`` (a file path), creating folders."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample(name), dest)
    return dest


def write_variant(name: str, dest: Path, sop_instance_uid: str, instance_number: int) -> Path:
    """Write a copy of a sample as another instance of the same series (new SOP Instance UID)."""
    ds = pydicom.dcmread(sample(name))
    ds.SOPInstanceUID = sop_instance_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    ds.InstanceNumber = instance_number
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    return dest


CT_SECOND_UID = "1.2.826.0.1.3680043.10.1234.1.2"
GOOD = {
    # name in folder -> pydicom sample; five studies
    "ct/a.dcm": "CT_small.dcm",
    "mr/b.dcm": "MR_small.dcm",
    "nm/c.dcm": "JPEG2000.dcm",
    "sc/d.dcm": "SC_rgb_rle_2frame.dcm",
    "rt/dose.dcm": "rtdose.dcm",
    "rt/plan.dcm": "rtplan.dcm",
}
BAD = {
    "bad/truncated.dcm": "MR_truncated.dcm",
    "bad/badvr.dcm": "badVR.dcm",
    "bad/no_meta.dcm": "no_meta.dcm",
}


def build_folder(root: Path) -> Path:
    """Fill ``root`` with several studies, a second CT instance, bad files and a text file."""
    for rel, name in {**GOOD, **BAD}.items():
        copy_sample(name, root / rel)
    write_variant("CT_small.dcm", root / "ct" / "a2.dcm", CT_SECOND_UID, 2)
    (root / "notes.txt").write_text("not a DICOM file\n")
    (root / ".hidden").write_text("skipped\n")
    return root
