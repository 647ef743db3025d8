"""Results written back into the archive as standard DICOM objects.

Modules: ``segment_codes`` (what each label means in DICOM codes), ``source_grid`` (labels back
onto the frames of the series they were computed on), ``segmentation`` (the DICOM Segmentation,
highdicom). Pure functions: they build datasets; storing them is the caller's business.
"""

from engine.writeback.segment_codes import SEGMENT_CODINGS, SegmentCoding
from engine.writeback.segmentation import SEGMENTATION_TYPES, build_segmentation

__all__ = ["SEGMENTATION_TYPES", "SEGMENT_CODINGS", "SegmentCoding", "build_segmentation"]
