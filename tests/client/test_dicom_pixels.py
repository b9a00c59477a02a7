"""pixelHash: streaming, and equal to sha256 of the stored PixelData value in every case."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_samples import sample

from imaging_consent.dicom import dataset_pixel_hash, locate_pixel_data, pixel_hash, read_dicom
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
    loc = locate_pixel_data(sample(name))

    assert loc is not None and not loc.encapsulated
    assert (
        pixel_hash(sample(name))
        == hashlib.sha256(data[loc.offset : loc.offset + loc.length]).digest()
    )


@pytest.mark.parametrize("name", ENCAPSULATED)
def test_pixel_hash_encapsulated_is_items_without_delimiter(name: str) -> None:
    data = sample(name).read_bytes()
    loc = locate_pixel_data(sample(name))

    assert loc is not None and loc.encapsulated
    value = data[loc.offset : loc.offset + loc.length]
    assert value.startswith(ITEM)  # the Basic Offset Table item
    assert data[loc.offset + loc.length : loc.offset + loc.length + 8] == DELIMITER
    assert pixel_hash(sample(name)) == hashlib.sha256(value).digest()


@pytest.mark.parametrize("name", ["rtplan.dcm", "waveform_ecg.dcm", "test-SR.dcm"])
def test_pixel_hash_without_pixel_data_hashes_whole_file(name: str) -> None:
    assert locate_pixel_data(sample(name)) is None
    assert pixel_hash(sample(name)) == hashlib.sha256(sample(name).read_bytes()).digest()


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "rtplan.dcm"])
def test_pixel_hash_chunk_size_and_stream_do_not_matter(name: str) -> None:
    expected = pixel_hash(sample(name))

    assert pixel_hash(sample(name), chunk_size=7) == expected
    assert pixel_hash(io.BytesIO(sample(name).read_bytes())) == expected


@pytest.mark.parametrize("name", NATIVE + ENCAPSULATED)
def test_dataset_pixel_hash_matches_streaming(name: str) -> None:
    assert dataset_pixel_hash(read_dicom(sample(name))) == pixel_hash(sample(name))


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
    assert peak < 4 * 1024 * 1024  # one 1 MiB chunk plus metadata, never the 32 MiB value
