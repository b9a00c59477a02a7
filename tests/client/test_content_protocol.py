"""Content protocol v2 (bytes in, hash out) and the structural checks of the byte-level walk.

The vectors pin pixelHash, viewHash and fileHash of pydicom's own files; the hand-built file
checks the definition in docs/ARCHITECTURE.md ("Content protocol") from first principles.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib
from pathlib import Path

import pydicom
import pytest
from dicom_samples import sample
from pydicom.data import get_testdata_files

from imaging_consent.dicom import dataset_bytes, deidentify, read_dicom, read_instance
from imaging_consent.dicom.annex_e import basic_profile_action
from imaging_consent.dicom.walk import MAX_SEQUENCE_DEPTH, VIEW_TAGS, walk_dicom
from imaging_consent.errors import DicomError, DicomReadError
from imaging_consent.provenance.content import ContentProtocol, content_leaf
from imaging_consent.provenance.merkle import leaf_hash, leaf_hash_v2

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# (file, pixelHash, viewHash, fileHash): change only with a new protocol version.
VECTORS = [
    (
        "CT_small.dcm",
        "7a481f6ffff833aef4d8bd54819bd8f472aaa7232090208e056c90eacf079926",
        "41902fd0d4308527792e954d4f4331f923a103f460cd9a9c697bb2dc06b083c0",
        "123e13ff8d2ab6db54b99620506c7e7e9084e8e93d7a9d83637c81805e660bdd",
    ),
    (
        "MR_small_bigendian.dcm",
        "6d00b5d8e3b090e3aa471638644bf30444e3ebcc75383e7b25a5ceac39cb74d8",
        "b3f3019b11f2bc797a25cdac04b60d748b99c2f4cd008b6efba718f310a7c3e1",
        "0fa1040b0849795bf8b01355bd18f18e8754943bb60b1298ac522c554d2aff98",
    ),
    (
        "MR_small_RLE.dcm",
        "27629e20b89cb49ee78393d4951ed360dbc5612461c683341cfa32063952abd6",
        "b3f3019b11f2bc797a25cdac04b60d748b99c2f4cd008b6efba718f310a7c3e1",
        "aca5222a5e4367c47edcf3d73381a54ecda7527823821f0538d3f5398361d786",
    ),
    (
        "rtdose.dcm",
        "e30a4288ac22902293b3b0144d9cd7866d43a96e2e5cf3ec59c6f78595c3a125",
        "d835c287a9705050632af487be6fc579eb366d109433b6449c7e48a58788c69f",
        "585d5ea68f430909603760a2b0f93ac41d76a5e85f1c4ae9b2ef5fd86914d579",
    ),
    (
        "JPEG2000.dcm",
        "379a47ad376a93820b9abfc856cb10a222340e7754a56e8fc16264d023ff2631",
        "d742f0741cf72ff53809d947e50c6fe837fb3447f3aecc63a7b034434d853aae",
        "1566dfbdf0fc80059ff262647df977df726f1b899a54c0346886f7647158255c",
    ),
]


@pytest.mark.parametrize(("name", "pixel", "view", "file"), VECTORS, ids=[v[0] for v in VECTORS])
def test_vectors(name: str, pixel: str, view: str, file: str) -> None:
    digest = walk_dicom(sample(name).read_bytes()).digest

    assert digest is not None
    assert (digest.pixel_hash.hex(), digest.view_hash.hex(), digest.file_hash.hex()) == (
        pixel,
        view,
        file,
    )
    assert digest.pixel_hash == hashlib.sha256(pydicom.dcmread(sample(name)).PixelData).digest()


def test_view_hash_does_not_depend_on_the_encoding() -> None:
    # The same MR image, big-endian native and RLE compressed: same display attributes.
    assert VECTORS[1][2] == VECTORS[2][2]


# --- a file built by hand, hashed by the definition -------------------------------------------


def _explicit(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHL", group, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def _part10(body: bytes, syntax: bytes = b"1.2.840.10008.1.2.1\x00") -> bytes:
    meta = _explicit(0x0002, 0x0010, b"UI", syntax)
    return bytes(128) + b"DICM" + meta + body


PIXELS = bytes([1, 2, 3, 4])
HEAD = (
    _explicit(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00")
    + _explicit(0x0008, 0x0018, b"UI", b"1.2.3.4 ")
    + _explicit(0x0010, 0x0010, b"PN", b"Doe^Jane")
    + _explicit(0x0020, 0x000D, b"UI", b"1.2.3\x00")
    + _explicit(0x0028, 0x0010, b"US", struct.pack("<H", 2))
    + _explicit(0x0028, 0x0030, b"DS", b"0.5\\0.25 ")
)


def test_hand_built_file_hashes_by_the_definition() -> None:
    data = _part10(HEAD + _explicit(0x7FE0, 0x0010, b"OW", PIXELS))

    walk = walk_dicom(data)

    def element(tag: int, value: bytes) -> bytes:
        return struct.pack(">LL", tag, len(value)) + value

    view = (
        element(0x00080016, b"1.2.840.10008.5.1.4.1.1.7")
        + element(0x00280010, struct.pack("<H", 2))
        + element(0x00280030, b"0.5\\0.25")
    )
    pixel = hashlib.sha256(PIXELS).digest()
    offset = len(data) - len(PIXELS)
    assert walk.digest is not None
    assert walk.digest.pixel_hash == pixel
    assert walk.digest.view_hash == hashlib.sha256(view).digest()
    assert walk.digest.file_hash == hashlib.sha256(data[:offset] + pixel).digest()
    assert (walk.pixel_offset, walk.pixel_length) == (offset, len(PIXELS))
    assert (walk.sop_instance_uid, walk.study_instance_uid) == ("1.2.3.4", "1.2.3")
    key = bytes(range(32))
    assert content_leaf(ContentProtocol.V1, key, walk.digest) == leaf_hash(key, pixel)
    assert content_leaf(ContentProtocol.V2, key, walk.digest) == leaf_hash_v2(
        key, pixel, walk.digest.view_hash, walk.digest.file_hash
    )


def test_without_pixel_data_every_hash_covers_the_whole_file() -> None:
    data = _part10(HEAD)

    digest = walk_dicom(data).digest

    assert digest is not None
    assert digest.pixel_hash == digest.file_hash == hashlib.sha256(data).digest()


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("PixelSpacing", [0.7, 0.7]),
        ("RescaleSlope", 2),
        ("RescaleIntercept", -1000),
        ("WindowCenter", 400),
        ("ImageOrientationPatient", [0, 1, 0, 1, 0, 0]),
        ("ImageLaterality", "L"),
        ("PhotometricInterpretation", "MONOCHROME1"),
        ("FrameTime", 33.3),
    ],
)
def test_a_display_attribute_changes_the_view_hash(keyword: str, value: object) -> None:
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    before = walk_dicom(sample("CT_small.dcm").read_bytes()).digest
    setattr(ds, keyword, value)

    after = walk_dicom(dataset_bytes(ds)).digest

    assert before is not None and after is not None
    assert after.view_hash != before.view_hash and after.pixel_hash == before.pixel_hash


def test_patient_name_changes_only_the_file_hash() -> None:
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    before = walk_dicom(dataset_bytes(ds)).digest
    ds.PatientName = "Someone^Else"

    after = walk_dicom(dataset_bytes(ds)).digest

    assert before is not None and after is not None
    assert after.view_hash == before.view_hash and after.pixel_hash == before.pixel_hash
    assert after.file_hash != before.file_hash


def test_view_tags_are_never_rewritten_by_deidentification() -> None:
    assert VIEW_TAGS and not [tag for tag in VIEW_TAGS if basic_profile_action(tag)]


def test_deidentified_files_keep_pixel_and_view_hashes() -> None:
    """Over every pydicom test file that can be de-identified: pixels and view survive."""
    kept = 0
    for name in sorted(get_testdata_files("*.dcm")):
        raw = Path(name).read_bytes()
        try:
            walk = walk_dicom(raw)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clean = dataset_bytes(deidentify(read_dicom(io.BytesIO(raw)), bytes(32)))
        except DicomError:
            continue
        after = walk_dicom(clean)
        assert walk.digest is not None and after.digest is not None
        assert after.digest.view_hash == walk.digest.view_hash, name
        if walk.pixel_offset is not None:
            assert after.digest.pixel_hash == walk.digest.pixel_hash, name
            kept += 1
    assert kept >= 20  # the rest are refused (burned-in text) or unreadable


# --- structure: what readers would disagree on ------------------------------------------------


def _with_decoy_pixels(path: Path) -> bytes:
    """CT_small.dcm with a second PixelData before the real one: a decoy readers may show."""
    data = path.read_bytes()
    walk = walk_dicom(data)
    assert walk.pixel_offset is not None
    header_at = walk.pixel_offset - 12  # explicit VR OW header
    decoy = data[header_at : walk.pixel_offset] + bytes(walk.pixel_length)
    return data[:header_at] + decoy + data[header_at:]


def test_duplicate_pixel_data_decoy_refused(tmp_path: Path) -> None:
    forged = tmp_path / "decoy.dcm"
    forged.write_bytes(_with_decoy_pixels(sample("CT_small.dcm")))
    # pydicom alone keeps the last PixelData, so the registered pixels would hash as expected.
    assert pydicom.dcmread(forged).PixelData == pydicom.dcmread(sample("CT_small.dcm")).PixelData

    for read in (walk_dicom, lambda data: read_dicom(io.BytesIO(data))):
        with pytest.raises(DicomReadError, match=r"\(7FE0,0010\) is duplicated"):
            read(forged.read_bytes())
    with pytest.raises(DicomReadError, match="duplicated"):
        read_instance(forged)


def _sequence(inner: bytes) -> bytes:
    """An undefined-length Content Sequence holding one undefined-length item."""
    return (
        struct.pack("<HH2sHL", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
        + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
        + inner
        + struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
        + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    )


def test_out_of_order_tag_inside_an_item_refused() -> None:
    item = _explicit(0x0008, 0x0104, b"LO", b"ab") + _explicit(0x0008, 0x0100, b"SH", b"cd")
    data = _part10(HEAD + _sequence(item))

    with pytest.raises(DicomReadError, match=r"\(0008,0100\) is out of order"):
        walk_dicom(data)
    with pytest.raises(DicomReadError, match="out of order"):
        read_dicom(io.BytesIO(data))


@pytest.mark.parametrize("depth", [MAX_SEQUENCE_DEPTH + 1, 3000])
def test_deep_nesting_is_a_typed_error_naming_the_file(tmp_path: Path, depth: int) -> None:
    inner = b""
    for _ in range(depth):
        inner = _sequence(inner)
    path = tmp_path / "deep.dcm"
    path.write_bytes(_part10(HEAD + inner))

    for read in (walk_dicom, read_dicom, read_instance):
        with pytest.raises(DicomReadError, match="nested deeper"):
            read(path.read_bytes() if read is walk_dicom else path)  # type: ignore[operator]


def test_nesting_within_the_bound_is_read() -> None:
    inner = b""
    for _ in range(MAX_SEQUENCE_DEPTH):
        inner = _sequence(inner)

    walk_dicom(_part10(HEAD + inner))


def test_deflate_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from imaging_consent.dicom import walk

    deflated = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflated.compress(HEAD + bytes(1 << 16)) + deflated.flush()
    data = _part10(body, b"1.2.840.10008.1.2.1.99")
    monkeypatch.setattr(walk, "MAX_INFLATED", 1 << 12)

    with pytest.raises(DicomReadError, match="inflates beyond"):
        walk_dicom(data)
