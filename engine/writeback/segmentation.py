"""Build the DICOM Segmentation of one assessed study (highdicom).

:func:`build_segmentation` turns GlioWatch's labels (a :class:`~engine.types.Volume` on the T1c
grid, values :class:`~engine.types.Label`) into one Segmentation instance that references the T1c
series frame by frame. It is a pure function: it reads only the given datasets and returns a new
one; storing it (Orthanc, files) is the caller's business.

* Four segments, always: NETC, SNFH, ET, RC (numbers 1-4 = the label values), with the codes of
  :mod:`engine.writeback.segment_codes`, algorithm type AUTOMATIC and the algorithm
  identification (model name, version, family "Artificial Intelligence"; the weights' and the
  configuration's SHA-256 as algorithm parameters).
* **Empty segments are kept.** highdicom leaves out every frame that holds no pixel of a segment
  by default (``omit_empty_frames=True``): an absent label would then be described in the
  Segment Sequence but own no frame at all, and a frame of an empty slice would be missing for
  every segment. GlioWatch passes ``omit_empty_frames=False``: BINARY writes one frame per
  source frame for every segment, all zeros for an empty segment, so "measured and found
  nothing" stays apart from "not measured". LABELMAP writes one frame per source frame; an
  absent label is then a described segment whose value occurs in no pixel.
* ``segmentation_type="BINARY"`` (default, 1 bit per pixel, the SOP class every SEG viewer
  reads) or ``"LABELMAP"`` (highdicom >= 0.24: Label Map Segmentation Storage,
  1.2.840.10008.5.1.4.1.1.66.7, one 8-bit frame per slice; fewer viewers read it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

import engine
from engine.errors import WriteBackError
from engine.types import Volume
from engine.writeback.segment_codes import segment_descriptions
from engine.writeback.source_grid import labels_on_source_frames

SEGMENTATION_TYPES = ("BINARY", "LABELMAP")
MANUFACTURER = "GlioWatch"
#: attributes highdicom copies from the source (type 2 in the SEG): empty when a source lacks them.
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                 "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName")  # fmt: skip
_LO_MAX = 64  # characters of a LO value (AlgorithmName, AlgorithmVersion)


def build_segmentation(
    source_datasets: Sequence[Any],
    labels: Volume,
    *,
    model_name: str,
    model_version: str,
    weights_sha256: str,
    config_sha256: str | None = None,
    series_number: int,
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
    segmentation_type: str = "BINARY",
    series_description: str | None = None,
    device_serial_number: str = "0",
    exam: str | None = None,
) -> hd.seg.Segmentation:
    """The DICOM Segmentation of ``labels``, referencing the T1c series ``source_datasets``.

    ``labels`` must lie on the grid of the source series (same columns, rows and slices, same
    affine within :data:`engine.writeback.source_grid.GRID_TOLERANCE_MM`): otherwise
    :class:`WriteBackError`. New UIDs are generated unless given. The result is a
    :class:`pydicom.Dataset` (``hd.seg.Segmentation``), ready for ``save_as``.
    """
    if segmentation_type not in SEGMENTATION_TYPES:
        msg = (
            f"Argument 'segmentation_type' must be one of {SEGMENTATION_TYPES}, "
            f"got {segmentation_type!r}"
        )
        raise ValueError(msg)
    for name, value in (("model_name", model_name), ("model_version", model_version)):
        if not value or len(value) > _LO_MAX:
            msg = (
                f"Argument '{name}' must hold 1 to {_LO_MAX} characters (a DICOM LO value), "
                f"got {value!r}"
            )
            raise ValueError(msg)
    if not weights_sha256:
        msg = "Argument 'weights_sha256' must not be empty: the SEG says which weights made it"
        raise ValueError(msg)
    frames = labels_on_source_frames(source_datasets, labels, exam=exam)
    sources = [_header_copy(ds, exam) for ds in frames.images]
    parameters = {"weights_sha256": weights_sha256}
    if config_sha256:
        parameters["config_sha256"] = config_sha256
    default_description = f"GlioWatch SEG {model_name} {model_version}"
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model_name,
        family=codes.cid7162.ArtificialIntelligence,
        version=model_version,
        source=MANUFACTURER,
        parameters=parameters,
    )
    segmentation = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames.planes,  # label-map style: each value 1..4 is its segment
        segmentation_type=segmentation_type,
        segment_descriptions=segment_descriptions(algorithm),
        series_instance_uid=series_uid or generate_uid(),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MANUFACTURER,
        software_versions=engine.__version__,
        device_serial_number=device_serial_number,
        content_label="GLIOWATCH",
        content_description=f"Tumour sub-regions by {model_name} {model_version}"[:_LO_MAX],
        omit_empty_frames=False,  # every segment keeps its frames, all zeros when empty
        series_description=(series_description or default_description)[:_LO_MAX],
    )
    return segmentation


def _header_copy(ds: Any, exam: str | None) -> Dataset:
    """The source's header without its pixels, with the type-2 attributes highdicom copies
    present (empty when the source lacks them); the caller's dataset is left untouched."""
    copy = Dataset()
    for element in ds:
        if element.keyword not in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            copy.add(element)
    for keyword in TYPE2_COPIED:
        if keyword not in copy:
            setattr(copy, keyword, "")
    if not copy.get("FrameOfReferenceUID"):
        msg = (
            f"The source series {copy.get('SeriesInstanceUID', '')} has no FrameOfReferenceUID, "
            "so a segmentation cannot say where its pixels lie"
        )
        action = "Nothing was written back. Check the series in the archive."
        raise WriteBackError(msg, exam=exam, action=action)
    return copy
