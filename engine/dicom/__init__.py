"""DICOM -> :class:`~engine.types.Volume`: reading, validation, geometry and NIfTI files.

Modules: ``reader`` (files/bytes -> datasets, grouped by series), ``geometry`` (slice sorting,
stack validation, the RAS+ affine and its convention), ``pixels`` (decoding through pydicom and
the pylibjpeg plugins), ``sop_classes`` (images apart from non-image objects), ``volume`` (one
series -> one volume; study folders), ``nifti``.
"""

from engine.dicom.nifti import read_nifti, write_nifti
from engine.dicom.reader import datasets_from_bytes, group_by_series, load_dataset_files
from engine.dicom.sop_classes import IgnoredObjects, split_series_objects
from engine.dicom.volume import (
    RefusedSeries,
    StudyRead,
    assemble_volume,
    read_series_dir,
    read_study_dir,
    read_study_files,
)

__all__ = [
    "IgnoredObjects",
    "RefusedSeries",
    "StudyRead",
    "assemble_volume",
    "datasets_from_bytes",
    "group_by_series",
    "load_dataset_files",
    "read_nifti",
    "read_series_dir",
    "read_study_dir",
    "read_study_files",
    "split_series_objects",
    "write_nifti",
]
