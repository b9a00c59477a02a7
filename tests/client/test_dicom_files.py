"""Reading DICOM: the one opener, bad and truncated files, folder scans and grouping."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dicom_samples import sample

from imaging_consent.dicom import read_dicom, read_instance
from imaging_consent.errors import DicomError, DicomReadError, DicomTruncatedError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_read_dicom_reads_whole_file() -> None:
    ds = read_dicom(sample("CT_small.dcm"))

    assert ds.Modality == "CT"
    assert len(ds.PixelData) == 32768


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("MR_truncated.dcm", DicomTruncatedError),  # PixelData declares 8192, 8130 present
        ("rtplan_truncated.dcm", DicomTruncatedError),  # a sequence runs past the end
        ("badVR.dcm", DicomReadError),  # NumberOfFrames "1A"
        ("no_meta.dcm", DicomReadError),  # no preamble / DICM prefix
        ("README.txt", DicomReadError),  # not DICOM at all
        ("meta_missing_tsyntax.dcm", DicomReadError),
    ],
)
def test_read_instance_bad_file_raises_naming_file(name: str, error: type[DicomError]) -> None:
    path = sample(name)

    with pytest.raises(error) as info:
        read_instance(path)

    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_read_dicom_error_never_echoes_values() -> None:
    with pytest.raises(DicomReadError) as info:
        read_instance(sample("badVR.dcm"))

    assert "1A" not in str(info.value)


def test_read_dicom_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DicomReadError, match="cannot open"):
        read_dicom(tmp_path / "absent.dcm")
    with pytest.raises(DicomReadError):
        read_dicom(tmp_path)


@pytest.mark.parametrize("name", ["CT_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm"])
def test_read_instance_any_truncation_of_pixels_is_detected(tmp_path: Path, name: str) -> None:
    data = sample(name).read_bytes()
    # Cut inside the pixel data value, and just before its last 4 bytes.
    for keep in (len(data) - 200, len(data) - 4):
        cut = tmp_path / f"cut{keep}.dcm"
        cut.write_bytes(data[:keep])

        with pytest.raises(DicomTruncatedError):
            read_instance(cut)


def test_read_instance_truncated_metadata_is_detected(tmp_path: Path) -> None:
    data = sample("CT_small.dcm").read_bytes()
    for keep in (300, 1000, 3000, 6000):
        cut = tmp_path / f"cut{keep}.dcm"
        cut.write_bytes(data[:keep])

        with pytest.raises(DicomError):
            read_instance(cut)


def test_read_instance_identifiers() -> None:
    inst = read_instance(sample("rtdose.dcm"))

    assert inst.sop_instance_uid.endswith("030818153516")
    assert inst.study_instance_uid == "1.2.999.999.99.9.9999.8888"
    assert inst.transfer_syntax_uid == "1.2.840.10008.1.2"
    assert inst.has_pixel_data


def test_read_dicom_from_stream(tmp_path: Path) -> None:
    path = shutil.copy(sample("MR_small.dcm"), tmp_path / "x.dcm")

    with open(path, "rb") as fp:
        fp.seek(100)
        ds = read_dicom(fp)

    assert ds.Modality == "MR"
