"""De-identification: the PS3.15 Annex E Basic Profile, applied to real files."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pydicom
import pytest
from dicom_samples import sample
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from imaging_consent.dicom import dataset_bytes, deidentify, pixel_hash, pseudonymous_uid
from imaging_consent.dicom.annex_e import BASIC_PROFILE, Action, basic_profile_action
from imaging_consent.errors import BurnedInAnnotationError, DeidentificationError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SECRET = b"release-secret-0123456789abcdef"
FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "JPEG2000.dcm",
    "rtdose.dcm",
    "examples_overlay.dcm",
    "SC_rgb_rle_2frame.dcm",
    "rtplan.dcm",
]


def _walk(ds: Dataset, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], DataElement]]:
    for elem in ds:
        here = (*path, int(elem.tag))
        yield here, elem
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                yield from _walk(item, (*here, i))


def _read(name: str) -> Dataset:
    return pydicom.dcmread(sample(name))


def _with_extras(ds: Dataset) -> Dataset:
    """Add private data, a nested reference and identifying text inside a sequence."""
    ds.add_new(0x00091010, "LO", "private creator")  # (0009,0010) creator
    ds.add_new(0x00091001, "LO", "private value")
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    ref.add_new(0x00111010, "LO", "nested private creator")
    ref.add_new(0x00111001, "LO", "nested private")
    ds.ReferencedImageSequence = Sequence([ref])
    request = Dataset()
    request.RequestingPhysician = "Doe^Jane"
    request.StudyInstanceUID = ds.StudyInstanceUID
    ds.RequestAttributesSequence = Sequence([request])  # X: removed whole
    return ds


@pytest.mark.parametrize("name", FILES)
def test_deidentify_no_listed_attribute_keeps_its_value(name: str) -> None:
    ds = _with_extras(_read(name))
    before = {path: elem.value for path, elem in _walk(ds) if elem.VR != "SQ"}

    out = deidentify(ds, SECRET)

    after = {path: elem for path, elem in _walk(out)}
    for path, value in before.items():
        action = basic_profile_action(path[-1])
        if action is None or action is Action.K or value in (None, "", b""):
            continue
        elem = after.get(path)
        if action is Action.X:
            assert elem is None, f"{path} must be removed"
        elif elem is not None:
            assert elem.is_empty or elem.value != value, f"{path} keeps its value ({action})"


@pytest.mark.parametrize("name", FILES)
def test_deidentify_removes_every_private_element(name: str) -> None:
    out = deidentify(_with_extras(_read(name)), SECRET)

    assert not [p for p, e in _walk(out) if e.tag.is_private]


@pytest.mark.parametrize("name", FILES)
def test_deidentify_pixel_data_identical_and_input_unchanged(name: str) -> None:
    ds = _read(name)
    pristine = _read(name)

    out = deidentify(ds, SECRET)

    assert ds == pristine and ds.file_meta == pristine.file_meta
    if "PixelData" in ds:
        assert out.PixelData is ds.PixelData
        assert pixel_hash(io.BytesIO(dataset_bytes(out))) == pixel_hash(sample(name))


@pytest.mark.parametrize("name", FILES)
def test_deidentify_marks_and_remaps_uids(name: str) -> None:
    ds = _with_extras(_read(name))

    out = deidentify(ds, SECRET)

    assert out.PatientIdentityRemoved == "YES"
    assert out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert out.DeidentificationMethodCodeSequence[0].CodingSchemeDesignator == "DCM"
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert out[keyword].value == pseudonymous_uid(SECRET, ds[keyword].value)
    if "FrameOfReferenceUID" in ds:
        assert out.FrameOfReferenceUID == pseudonymous_uid(SECRET, ds.FrameOfReferenceUID)
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    ref = out.ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == out.SOPInstanceUID
    assert ref.ReferencedSOPClassUID == ds.SOPClassUID
    assert "RequestAttributesSequence" not in out
    assert "PatientName" not in out or not out.PatientName


def test_deidentify_uids_consistent_within_release_only() -> None:
    mr, mr_rle = _read("MR_small.dcm"), _read("MR_small_RLE.dcm")  # same study

    a, b = deidentify(mr, SECRET), deidentify(mr_rle, SECRET)
    c = deidentify(mr, b"another-release-secret-9876543210")

    assert a.StudyInstanceUID == b.StudyInstanceUID
    assert a.StudyInstanceUID != c.StudyInstanceUID
    assert a.StudyInstanceUID != mr.StudyInstanceUID


def test_pseudonymous_uid_is_valid_uid() -> None:
    uid = pseudonymous_uid(SECRET, "1.2.3")

    assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", uid) and len(uid) <= 64


def test_deidentify_written_file_reads_back() -> None:
    out = deidentify(_read("CT_small.dcm"), SECRET)

    back = pydicom.dcmread(io.BytesIO(dataset_bytes(out)))

    assert back.SOPInstanceUID == out.SOPInstanceUID
    assert back.PatientIdentityRemoved == "YES"


def test_deidentify_refuses_burned_in_annotation() -> None:
    ds = _read("CT_small.dcm")
    ds.BurnedInAnnotation = "YES"

    with pytest.raises(BurnedInAnnotationError):
        deidentify(ds, SECRET)


def test_deidentify_strict_mode_needs_explicit_no() -> None:
    ds = _read("CT_small.dcm")

    with pytest.raises(BurnedInAnnotationError):
        deidentify(ds, SECRET, require_no_burned_in_annotation=True)
    ds.BurnedInAnnotation = "NO"
    assert deidentify(ds, SECRET, require_no_burned_in_annotation=True).BurnedInAnnotation == "NO"


@pytest.mark.parametrize("name", ["test-SR.dcm", "reportsi.dcm"])
def test_deidentify_refuses_structured_report_content(name: str) -> None:
    with pytest.raises(DeidentificationError, match="non-empty sequence"):
        deidentify(_read(name), SECRET)


def test_deidentify_refuses_short_secret() -> None:
    with pytest.raises(DeidentificationError):
        deidentify(_read("CT_small.dcm"), b"short")


def test_annex_e_table_covers_key_attributes() -> None:
    assert BASIC_PROFILE[0x00100010] is Action.Z  # PatientName
    assert BASIC_PROFILE[0x00100020] is Action.Z_D  # PatientID
    assert BASIC_PROFILE[0x0020000D] is Action.U  # StudyInstanceUID
    assert BASIC_PROFILE[0x00081155] is Action.U  # ReferencedSOPInstanceUID
    assert BASIC_PROFILE[0x00020003] is Action.U  # MediaStorageSOPInstanceUID
    assert basic_profile_action(0x60023000) is Action.X  # Overlay Data, group 6002
    assert len(BASIC_PROFILE) > 600
