"""De-identification: the PS3.15 Annex E Basic Profile, applied to real files."""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from dicom_samples import sample
from pydicom._uid_dict import UID_dictionary
from pydicom.data import get_testdata_files
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID
from release_samples import ROOT, actors, deploy_suite, grant, write_copy

from imaging_consent.chain import LocalChain
from imaging_consent.contracts.deployment import sender_for
from imaging_consent.dicom import (
    SitePepper,
    dataset_bytes,
    deidentify,
    pixel_hash,
    pseudonymous_uid,
    read_dicom,
)
from imaging_consent.dicom.annex_e import BASIC_PROFILE, Action, basic_profile_action
from imaging_consent.dicom.deid import (
    BURNED_IN_TEXT_MODALITIES,
    BURNED_IN_TEXT_SOP_CLASSES,
    RECOGNIZABLE_FEATURES_MODALITIES,
    RECOGNIZABLE_FEATURES_SOP_CLASSES,
)
from imaging_consent.errors import (
    BurnedInAnnotationError,
    DeidentificationError,
    DicomReadError,
    RecognizableVisualFeaturesError,
)
from imaging_consent.gateway import ImageGateway
from imaging_consent.provenance import register_study
from imaging_consent.stores import FolderStore

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


def _reviewed(name: str) -> Dataset:
    """A sample whose pixels the site checked: BurnedInAnnotation NO (as SC files need)."""
    ds = _read(name)
    ds.BurnedInAnnotation = "NO"
    return ds


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
    ds = _with_extras(_reviewed(name))
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
    out = deidentify(_with_extras(_reviewed(name)), SECRET)

    assert not [p for p, e in _walk(out) if e.tag.is_private]


@pytest.mark.parametrize("name", FILES)
def test_deidentify_pixel_data_identical_and_input_unchanged(name: str) -> None:
    ds = _reviewed(name)
    pristine = _reviewed(name)

    out = deidentify(ds, SECRET)

    assert ds == pristine and ds.file_meta == pristine.file_meta
    if "PixelData" in ds:
        assert out.PixelData is ds.PixelData
        assert pixel_hash(io.BytesIO(dataset_bytes(out))) == pixel_hash(sample(name))


@pytest.mark.parametrize("name", FILES)
def test_deidentify_marks_and_remaps_uids(name: str) -> None:
    ds = _with_extras(_reviewed(name))

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


# --- burned-in text and recognizable features ---------------------------------------------------

ULTRASOUND_FILES = [
    "examples_ybr_color.dcm",  # Ultrasound Multi-frame Image Storage
    "examples_rgb_color.dcm",
    "examples_palette.dcm",
    "examples_jpeg2k.dcm",
    "ExplVR_BigEnd.dcm",
]
CT = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
MR = "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage
UNLISTED = [CT, MR, "1.2.840.10008.5.1.4.1.1.481.2", "1.2.840.10008.5.1.4.1.1.1.1"]
ABSENT = None
STATES = [ABSENT, "", "YES", "yes", "NO", "no ", "DOE^JOHN"]  # the last: not a YES/NO value
# Registry names (pydicom's UID dictionary) that select the listed SOP classes.
BURNED_IN_NAMES = (
    r"Ultrasound|US Volume|Photoacoustic|Secondary Capture|Angiographic|XA Image|XRF Image"
    r"|Radiofluoroscopic|Intravascular Optical|^VL |Video|Photography|Microscop.* Image"
    r"|^Encapsulated "
)
FEATURES_NAMES = r"^(VL|Video) Photographic|^Encapsulated (STL|OBJ)"


def _as(
    sop_class: str | None = CT,
    modality: str | list[str] | None = "CT",
    burned: str | None = ABSENT,
    features: str | None = ABSENT,
) -> Dataset:
    """CT_small.dcm dressed as another SOP class and modality, with the two flags set or absent."""
    ds = _read("CT_small.dcm")
    for keyword, value in (
        ("SOPClassUID", sop_class),
        ("Modality", modality),
        ("BurnedInAnnotation", burned),
        ("RecognizableVisualFeatures", features),
    ):
        if value is None:
            ds.pop(keyword, None)
        else:
            setattr(ds, keyword, value)
    if sop_class is None:
        del ds.file_meta.MediaStorageSOPClassUID
    else:
        ds.file_meta.MediaStorageSOPClassUID = sop_class
    return ds


def _outcome(ds: Dataset) -> str:
    """``released`` or the name of the error de-identification refuses with."""
    try:
        deidentify(ds, SECRET)
    except DeidentificationError as exc:
        return type(exc).__name__
    return "released"


def _registry(pattern: str) -> set[str]:
    return {
        uid
        for uid, (name, kind, *_) in UID_dictionary.items()
        if kind == "SOP Class" and re.search(pattern, name)
    }


@pytest.mark.parametrize("name", ULTRASOUND_FILES)
def test_attack_ultrasound_without_burned_in_annotation_refused(name: str) -> None:
    ds = _read(name)
    assert "BurnedInAnnotation" not in ds

    with pytest.raises(BurnedInAnnotationError, match="BurnedInAnnotation is absent for Ultra"):
        deidentify(ds, SECRET)

    ds.BurnedInAnnotation = "NO"  # the site checked the pixels
    assert deidentify(ds, SECRET).PixelData is ds.PixelData


def test_listed_sop_classes_are_pydicom_registry_selections() -> None:
    assert _registry(BURNED_IN_NAMES) == BURNED_IN_TEXT_SOP_CLASSES
    assert _registry(FEATURES_NAMES) == RECOGNIZABLE_FEATURES_SOP_CLASSES
    assert len(BURNED_IN_TEXT_SOP_CLASSES) == 43 and len(RECOGNIZABLE_FEATURES_SOP_CLASSES) == 5
    assert {"US", "SC", "XA", "ES", "OT", "XC", "GM", "SM", "DOC", "IVUS"} <= (
        BURNED_IN_TEXT_MODALITIES
    )
    assert {"XC"} == RECOGNIZABLE_FEATURES_MODALITIES


def _expect_only_no_passes(outcomes: dict[str | None, str], error: str) -> None:
    assert outcomes == {state: "released" if state in ("NO", "no ") else error for state in STATES}


@pytest.mark.parametrize("sop_class", sorted(BURNED_IN_TEXT_SOP_CLASSES))
def test_listed_class_needs_burned_in_annotation_no(sop_class: str) -> None:
    outcomes = {s: _outcome(_as(sop_class, "CT", s, "NO")) for s in STATES}

    _expect_only_no_passes(outcomes, "BurnedInAnnotationError")


@pytest.mark.parametrize("modality", sorted(BURNED_IN_TEXT_MODALITIES))
def test_listed_modality_needs_burned_in_annotation_no(modality: str) -> None:
    outcomes = {s: _outcome(_as(CT, modality, s, "NO")) for s in STATES}

    _expect_only_no_passes(outcomes, "BurnedInAnnotationError")


@pytest.mark.parametrize("sop_class", UNLISTED)
def test_unlisted_class_refuses_only_a_declared_burned_in_annotation(sop_class: str) -> None:
    outcomes = {s: _outcome(_as(sop_class, "CT", s)) for s in STATES}

    refused = "BurnedInAnnotationError"
    assert outcomes == {
        ABSENT: "released", "": "released", "NO": "released", "no ": "released",
        "YES": refused, "yes": refused, "DOE^JOHN": refused,
    }  # fmt: skip


def test_unknown_class_or_multivalued_modality_fails_closed() -> None:
    assert _outcome(_as(None, "CT")) == "BurnedInAnnotationError"
    assert _outcome(_as(None, "CT", "NO")) == "RecognizableVisualFeaturesError"
    assert _outcome(_as(None, "CT", "NO", "NO")) == "released"
    assert _outcome(_as(CT, ["CT", "US"])) == "BurnedInAnnotationError"
    assert _outcome(_as(CT, "us")) == "BurnedInAnnotationError"


@pytest.mark.parametrize("sop_class", sorted(BURNED_IN_TEXT_SOP_CLASSES | set(UNLISTED)))
def test_recognizable_visual_features_yes_refused_for_every_class(sop_class: str) -> None:
    for value in ("YES", "yes", "DOE^JOHN"):
        with pytest.raises(RecognizableVisualFeaturesError, match="may identify the patient"):
            deidentify(_as(sop_class, "CT", "NO", value), SECRET)
    assert _outcome(_as(sop_class, "CT", "NO", "NO")) == "released"


@pytest.mark.parametrize(
    ("sop_class", "modality"),
    [(uid, "CT") for uid in sorted(RECOGNIZABLE_FEATURES_SOP_CLASSES)] + [(CT, "XC")],
)
def test_photographs_and_surface_models_need_recognizable_visual_features_no(
    sop_class: str, modality: str
) -> None:
    outcomes = {s: _outcome(_as(sop_class, modality, "NO", s)) for s in STATES}

    _expect_only_no_passes(outcomes, "RecognizableVisualFeaturesError")


@pytest.mark.parametrize(
    "sop_class",
    sorted(BURNED_IN_TEXT_SOP_CLASSES - RECOGNIZABLE_FEATURES_SOP_CLASSES) + UNLISTED,
)
def test_other_classes_may_omit_recognizable_visual_features(sop_class: str) -> None:
    assert _outcome(_as(sop_class, "CT", "NO", ABSENT)) == "released"
    assert _outcome(_as(sop_class, "CT", "NO", "")) == "released"


def test_refusal_messages_name_the_reason_never_personal_data() -> None:
    us = _read("examples_ybr_color.dcm")
    us.BurnedInAnnotation = "DOE^JOHN"
    photo = _as("1.2.840.10008.5.1.4.1.1.77.1.4", "XC", "NO")
    cases = [
        (_read("examples_rgb_color.dcm"), BurnedInAnnotationError,
         "BurnedInAnnotation is absent for Ultrasound Image Storage, Modality US, "
         "which must declare NO: it commonly carries burned-in text"),
        (us, BurnedInAnnotationError,
         "BurnedInAnnotation is not YES or NO for Ultrasound Multi-frame Image Storage, "
         "Modality US: burned-in text may identify the patient; refusing to de-identify"),
        (_as("1.2.840.10008.5.1.4.1.1.6", "CT", ""), BurnedInAnnotationError,
         "BurnedInAnnotation is empty for Ultrasound Image Storage (Retired), which must "
         "declare NO: it commonly carries burned-in text"),
        (_as(CT, "CT", "YES"), BurnedInAnnotationError,
         "BurnedInAnnotation is YES for CT Image Storage: burned-in text may identify"),
        (photo, RecognizableVisualFeaturesError,
         "RecognizableVisualFeatures is absent for VL Photographic Image Storage, Modality XC, "
         "which must declare NO: it commonly shows a face"),
        (_as("1.2.3.4", "NOT^LISTED", "yes"), BurnedInAnnotationError,
         "BurnedInAnnotation is YES for an unregistered SOP class: "),
    ]  # fmt: skip
    for ds, error, message in cases:
        with pytest.raises(error) as caught:
            deidentify(ds, SECRET)
        text = str(caught.value)
        assert text.startswith(message), text
        for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "SOPInstanceUID"):
            if ds.get(keyword):
                assert str(ds[keyword].value) not in text
        assert "DOE" not in text and "NOT^LISTED" not in text


# Every file pydicom ships, read as the gateway reads it: (outcome, SOP class) -> count.
PYDICOM_OUTCOMES = {
    ("unreadable", "-"): 69,  # DICOMDIR-nooffset: an item runs past its sequence
    ("released", "CT Image Storage"): 15,
    ("released", "MR Image Storage"): 27,
    ("released", "Computed Radiography Image Storage"): 3,
    ("released", "RT Dose Storage"): 6,
    ("released", "RT Plan Storage"): 1,
    ("released", "RT Image Storage"): 1,
    ("released", "Segmentation Storage"): 2,
    ("released", "12-lead ECG Waveform Storage"): 1,
    ("released", "Media Storage Directory Storage"): 7,
    ("BurnedInAnnotationError", "Secondary Capture Image Storage"): 35,
    ("BurnedInAnnotationError", "Ultrasound Image Storage"): 4,
    ("BurnedInAnnotationError", "Ultrasound Multi-frame Image Storage"): 1,
    ("BurnedInAnnotationError", "-"): 1,  # empty_charset_LEI.dcm names no SOP class
    ("DeidentificationError", "Basic Text SR Storage"): 2,  # Content Sequence
    ("DeidentificationError", "Comprehensive SR Storage"): 1,
}


def test_every_pydicom_test_file_refused_or_released_as_pinned() -> None:
    outcomes: Counter[tuple[str, str]] = Counter()
    for path in sorted(Path(p) for p in get_testdata_files()):
        if not path.is_file():
            continue
        try:
            ds = read_dicom(path)
        except DicomReadError:
            outcomes["unreadable", "-"] += 1
            continue
        sop_class = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
        outcomes[_outcome(ds), UID(sop_class).name if sop_class else "-"] += 1

    assert dict(outcomes) == PYDICOM_OUTCOMES


# --- end to end: the gateway refuses, and records the refusal ------------------------------------


def test_gateway_deidentified_release_of_ultrasound_refused_and_recorded(
    clean_chain: LocalChain, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    people = actors(clean_chain)
    suite = deploy_suite(clean_chain, people)
    study = ROOT + "77"
    write_copy(
        "examples_ybr_color.dcm", tmp_path / "us.dcm", study=study, series=study + ".1",
        sop=study + ".1.1",
    )  # fmt: skip
    store = FolderStore(tmp_path)
    pepper = SitePepper(bytes(range(32)))
    site = sender_for(clean_chain.session, people.site)
    register_study(suite, site, store, pepper, study, people.patient.address)
    patient = sender_for(clean_chain.session, people.patient)
    grant(suite, patient, people.requester.address, identified=False)
    gateway = ImageGateway(
        suite,
        sender_for(clean_chain.session, people.gateway),
        store,
        pepper,
        outbox_path=tmp_path / ".outbox.sqlite3",  # hidden: not indexed as part of the store
    )

    with caplog.at_level(logging.WARNING), pytest.raises(BurnedInAnnotationError):
        gateway.release(study, people.requester.address, "TREAT")
    (entry,) = gateway.outbox.entries()
    assert entry.reason == "BurnedInAnnotationError"  # the recorded refusal names its reason
    gateway.close()

    log = suite.access_log.events
    assert not log.AccessGranted().get_logs(from_block=0)
    assert len(log.BatchAnchored().get_logs(from_block=0)) == 1  # a one-record refusal
    refusals = [r.getMessage() for r in caplog.records if "refused request" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].endswith(": BurnedInAnnotationError")
