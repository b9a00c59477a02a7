"""Image stores: where the gateway reads DICOM instances from.

:class:`ImageStore` is the interface; :class:`FolderStore` is the embedded default, and
:class:`OrthancStore` reads an Orthanc server over its REST API.
"""

from imaging_consent.stores.base import ImageStore, InstanceRecord
from imaging_consent.stores.folder import FolderStore, Problem, ProblemKind, RefreshReport
from imaging_consent.stores.orthanc import OrthancProblem, OrthancStore

__all__ = [
    "FolderStore",
    "ImageStore",
    "InstanceRecord",
    "OrthancProblem",
    "OrthancStore",
    "Problem",
    "ProblemKind",
    "RefreshReport",
]
