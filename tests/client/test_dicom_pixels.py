"""pixelHash: memory-mapped, and equal to sha256 of the stored PixelData value in every case."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_samples import sample

from imaging_consent.dicom import pixel_hash, read_dicom
from imaging_consent.dicom.walk import walk_dicom
from imaging_consent.errors import DicomTruncatedError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NATIVE = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_padded.dcm",
    "rtdose.dcm",  # 15 frames
    "SC_rgb_small_odd.dcm",
    "image_dfl.dcm",  # deflated
]
ENCAPSULATED = [
    "JPEG2000.dcm",
    "JPEG2000-embedded-sequence-delimiter.dcm",
    "MR_small_RLE.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_rle_2frame.dcm",
    "JPEG-lossy.dcm",
]
ITEM = b"\xfe\xff\x00\xe0"
DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


@pytest.mark.parametrize("name", NATIVE + ENCAPSULATED)
def test_pixel_hash_equals_sha256_of_stored_value(name: str) -> None:
    ds = pydicom.dcmread(sample(name))

    assert pixel_hash(sample(name)) == hashlib.sha256(ds.PixelData).digest()


@pytest.mark.parametrize("name", [n for n in NATIVE if n != "image_dfl.dcm"])
def test_pixel_hash_native_is_raw_value_bytes(name: str) -> None:
    data = sample(name).read_bytes()
    walk = walk_dicom(data)

    assert walk.pixel_offset is not None
    assert data[walk.pixel_offset : walk.pixel_offset + 4] != ITEM
    end = walk.pixel_offset + walk.pixel_length
    assert pixel_hash(sample(name)) == hashlib.sha256(data[walk.pixel_offset : end]).digest()


@pytest.mark.parametrize("name", ENCAPSULATED)
def test_pixel_hash_encapsulated_is_items_without_delimiter(name: str) -> None:
    data = sample(name).read_bytes()
    walk = walk_dicom(data)

    assert walk.pixel_offset is not None
    end = walk.pixel_offset + walk.pixel_length
    value = data[walk.pixel_offset : end]
    assert value.startswith(ITEM)  # the Basic Offset Table item
    assert data[end : end + 8] == DELIMITER
    assert pixel_hash(sample(name)) == hashlib.sha256(value).digest()


@pytest.mark.parametrize("name", ["rtplan.dcm", "waveform_ecg.dcm", "test-SR.dcm"])
def test_pixel_hash_without_pixel_data_hashes_whole_file(name: str) -> None:
    assert walk_dicom(sample(name).read_bytes()).pixel_offset is None
    assert pixel_hash(sample(name)) == hashlib.sha256(sample(name).read_bytes()).digest()


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "rtplan.dcm"])
def test_pixel_hash_path_and_stream_agree(name: str) -> None:
    expected = pixel_hash(sample(name))

    assert pixel_hash(io.BytesIO(sample(name).read_bytes())) == expected
    with sample(name).open("rb") as fp:
        assert pixel_hash(fp) == expected


@pytest.mark.parametrize("name", NATIVE + ENCAPSULATED)
def test_pixel_hash_is_sha256_of_the_parsed_value(name: str) -> None:
    parsed = read_dicom(sample(name)).PixelData
    assert hashlib.sha256(parsed).digest() == pixel_hash(sample(name))


def test_pixel_hash_truncated_file_raises() -> None:
    with pytest.raises(DicomTruncatedError):
        pixel_hash(sample("MR_truncated.dcm"))


def test_pixel_hash_streams_large_pixel_data(tmp_path: Path) -> None:
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    ds.Rows, ds.Columns, ds.NumberOfFrames = 2048, 2048, 4  # 32 MiB of 16-bit pixels
    ds.PixelData = np.arange(2048 * 2048 * 4, dtype=np.uint16).tobytes()
    path = tmp_path / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    expected = hashlib.sha256(ds.PixelData).digest()
    del ds

    tracemalloc.start()
    digest = pixel_hash(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert digest == expected
    assert peak < 4 * 1024 * 1024  # memory-mapped: the 32 MiB value is never copied
