"""DICOM side of imaging-consent: reading, keys, pixel hashing, content trees, de-identification.

- :mod:`.files`: the one DICOM opener (:func:`read_dicom`), folder scans, study grouping.
- :mod:`.keys`: the site pepper and ``studyKey`` / ``instanceKey``.
- :mod:`.pixels`: the streaming ``pixelHash``.
- :mod:`.content`: a study's Merkle content (root, leaves, proofs).
- :mod:`.deid` and :mod:`.annex_e`: the PS3.15 Annex E Basic Profile.

This package never touches the chain.
"""

from imaging_consent.dicom.content import (
    InstanceContent,
    StudyContent,
    build_study_content,
    study_content,
)
from imaging_consent.dicom.deid import dataset_bytes, deidentify, pseudonymous_uid
from imaging_consent.dicom.files import (
    Instance,
    Problem,
    ScanResult,
    Series,
    Study,
    group_studies,
    read_dicom,
    read_instance,
    scan_folder,
)
from imaging_consent.dicom.keys import SitePepper, instance_key, load_pepper, study_key
from imaging_consent.dicom.pixels import (
    PixelDataLocation,
    dataset_pixel_hash,
    locate_pixel_data,
    pixel_hash,
)

__all__ = [
    "Instance",
    "InstanceContent",
    "PixelDataLocation",
    "Problem",
    "ScanResult",
    "Series",
    "SitePepper",
    "Study",
    "StudyContent",
    "build_study_content",
    "dataset_bytes",
    "dataset_pixel_hash",
    "deidentify",
    "group_studies",
    "instance_key",
    "load_pepper",
    "locate_pixel_data",
    "pixel_hash",
    "pseudonymous_uid",
    "read_dicom",
    "read_instance",
    "scan_folder",
    "study_content",
    "study_key",
]
