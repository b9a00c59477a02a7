"""Image stores: where the gateway reads DICOM instances from.

:class:`ImageStore` is the interface; :class:`FolderStore` is the embedded default.
"""

from imaging_consent.stores.base import ImageStore, InstanceRecord
from imaging_consent.stores.folder import FolderStore, Problem, ProblemKind, RefreshReport

__all__ = ["FolderStore", "ImageStore", "InstanceRecord", "Problem", "ProblemKind", "RefreshReport"]
