"""DICOM side of imaging-consent: reading, keys, pixel hashing, de-identification.

- :mod:`.read`: the one DICOM opener (:func:`read_dicom`) and the one instance record.
- :mod:`.keys`: the site pepper and ``studyKey`` / ``instanceKey``.
- :mod:`.walk`: the byte-level walk: structure checks and the content protocol v2 hashes.
- :mod:`.pixels`: ``pixelHash`` of a file.
- :mod:`.deid` and :mod:`.annex_e`: the PS3.15 Annex E Basic Profile.

This package never touches the chain.
"""

from imaging_consent.dicom.deid import (
    dataset_bytes,
    deidentify,
    pseudonymous_uid,
    release_secret,
)
from imaging_consent.dicom.keys import SitePepper, instance_key, load_pepper, study_key
from imaging_consent.dicom.pixels import pixel_hash
from imaging_consent.dicom.read import InstanceRecord, read_dicom, read_instance

__all__ = [
    "InstanceRecord",
    "SitePepper",
    "dataset_bytes",
    "deidentify",
    "instance_key",
    "load_pepper",
    "pixel_hash",
    "pseudonymous_uid",
    "read_dicom",
    "read_instance",
    "release_secret",
    "study_key",
]
