"""Turn the instances of one DICOM series into a validated :class:`~engine.types.Volume`.

The geometry convention (array ``[column, row, slice]``, RAS+ affine) is documented in
:mod:`engine.dicom.geometry`. Every refusal is an :class:`InvalidSeriesError` (a
:class:`DicomError`) whose message names the series (SeriesDescription + SeriesInstanceUID) and
gives the reason in plain words; :func:`read_study_dir` collects refusals instead of raising, so
one bad series never stops a study (nor the watcher). Non-image objects in a series (raw data,
presentation states, SR, SEG, ...) are left out of the volume and reported, never refused: see
:mod:`engine.dicom.sop_classes`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.dicom.geometry import (
    StackGeometry,
    acquisition_plane,
    series_refusal,
    stack_geometry,
)
from engine.dicom.multiframe import frame_geometry, number_of_frames
from engine.dicom.pixels import (
    DECODE_ERRORS,
    frame_pixels,
    has_pixel_data,
    rescaled,
    rescaled_stack,
)
from engine.dicom.reader import (
    READ_ERRORS,
    dicom_files_under,
    group_by_series,
    load_dataset_files,
    text_value,
)
from engine.dicom.sop_classes import (
    IgnoredObjects,
    describe_ignored,
    sop_class_name,
    split_series_objects,
)
from engine.errors import DicomError, InvalidSeriesError
from engine.series_rules import series_header
from engine.types import Volume

log = logging.getLogger(__name__)

#: a series with fewer slices is refused by default: it is a localizer or an incomplete
#: transfer, not a 3D volume (dicom2nifti draws the same line). Pass ``min_slices=1`` to accept
#: single 2D images.
DEFAULT_MIN_SLICES = 3
MAX_MATRIX = 4096
MAX_SLICES = 4096
#: how far ImageOrientationPatient / PixelSpacing may differ between slices of one stack.
_ORIENTATION_TOLERANCE = 1e-3
_SPACING_TOLERANCE_FRACTION = 1e-3


@dataclass(frozen=True, slots=True)
class RefusedSeries:
    """A series of a study that could not become a volume, and why."""

    series_uid: str
    series_description: str
    instance_count: int
    reason: str
    error: DicomError


@dataclass(frozen=True, slots=True)
class StudyRead:
    """The series of one study folder: ``(series_header, volume)`` pairs, the refusals, and the
    non-image objects left out (of image series, or whole series of them, e.g. a SEG)."""

    volumes: tuple[tuple[dict[str, Any], Volume], ...]
    refused: tuple[RefusedSeries, ...]
    ignored: tuple[IgnoredObjects, ...] = ()


def series_label(ds: Any) -> str:
    """How messages name a series: ``series 'AX T1 POST' (1.2.840...)``."""
    description = text_value(ds, "SeriesDescription") or "(no description)"
    uid = text_value(ds, "SeriesInstanceUID") or "no SeriesInstanceUID"
    return f"Series '{description}' ({uid})"


def assemble_volume(
    datasets: Sequence[Any],
    *,
    exam: str | None = None,
    min_slices: int = DEFAULT_MIN_SLICES,
) -> Volume:
    """Sort, validate and stack the images of one series into a RAS+ volume.

    ``datasets`` are the instances of one series: single-frame images, or one multi-frame
    (enhanced) instance, plus any non-image objects (left out, logged and listed in
    ``metadata["ignored_objects"]``). ``min_slices`` is the fewest slices accepted as a volume.
    """
    if not datasets:
        msg = "No DICOM instances were given: an empty series is not a volume"
        raise InvalidSeriesError(msg, exam=exam)
    objects = split_series_objects(datasets)
    label = series_label(objects.images[0] if objects.images else datasets[0])
    uids = {text_value(ds, "SeriesInstanceUID") for ds in datasets}
    if len(uids) > 1:
        raise series_refusal(label, f"the images belong to {len(uids)} different series", exam=exam)
    if not objects.images:
        reason = (
            f"it holds no image, only non-image objects ({describe_ignored(objects.ignored)})"
        )
        raise series_refusal(label, reason, exam=exam)
    if objects.ignored:
        log.info("%s: left out %s (not images)", label, describe_ignored(objects.ignored))
    return _assemble_images(
        objects.images, ignored=objects.ignored, label=label, exam=exam, min_slices=min_slices
    )


def _assemble_images(
    datasets: Sequence[Any],
    *,
    ignored: tuple[IgnoredObjects, ...],
    label: str,
    exam: str | None,
    min_slices: int,
) -> Volume:
    """:func:`assemble_volume` once the non-image objects are out."""
    first = datasets[0]
    try:
        for index, ds in enumerate(datasets):
            _check_instance(ds, index, label, exam, alone=len(datasets) == 1)
        multi = number_of_frames(first) > 1
        rows, columns = int(first.Rows), int(first.Columns)
    except DECODE_ERRORS as exc:
        reason = f"unreadable image header ({exc})"
        raise series_refusal(label, reason, exam=exam, detail=repr(exc)) from exc
    if multi:
        frames = frame_geometry(first, label=label, exam=exam)
        positions, orientation = frames.positions_mm, frames.orientation
        pixel_spacing, thickness = frames.pixel_spacing_mm, frames.slice_thickness_mm
    else:
        positions, orientation, pixel_spacing = _shared_geometry(datasets, label, exam)
        thickness = _optional_float(first, "SliceThickness")
    count = len(positions)
    if count < min_slices:
        reason = (
            f"only {count} slice(s); a 3D volume needs at least {min_slices} "
            "(a localizer, a single 2D image, or an incomplete transfer with missing slices?)"
        )
        raise series_refusal(label, reason, exam=exam)
    if count > MAX_SLICES:
        raise series_refusal(label, f"{count} slices is more than {MAX_SLICES}", exam=exam)
    geometry = stack_geometry(
        positions_mm=positions,
        orientation=orientation,
        pixel_spacing_mm=pixel_spacing,
        slice_thickness_mm=thickness,
        label=label,
        exam=exam,
    )
    order = list(geometry.order)
    if multi:
        raw = frame_pixels(first, frames=count, rows=rows, columns=columns, label=label, exam=exam)
        raw, slopes, intercepts = raw[:, :, order], frames.slopes[order], frames.intercepts[order]
        array = rescaled(raw, slopes=slopes, intercepts=intercepts, label=label, exam=exam)
    else:
        ordered = [datasets[i] for i in order]
        array = rescaled_stack(ordered, rows=rows, columns=columns, label=label, exam=exam)
    metadata = _metadata(first, len(datasets), array, geometry, thickness)
    metadata["ignored_objects"] = ignored
    return Volume(array=array, affine=geometry.affine, metadata=metadata)


def _check_instance(ds: Any, index: int, label: str, exam: str | None, *, alone: bool) -> None:
    name = f"#{ds.get('InstanceNumber')}" if ds.get("InstanceNumber") else f"{index + 1}"
    if not has_pixel_data(ds):  # an image class without pixels: broken, not left out
        kind = sop_class_name(text_value(ds, "SOPClassUID"))
        reason = f"instance {name} has no pixel data although it is an image ({kind})"
        raise series_refusal(label, reason, exam=exam)
    frames = number_of_frames(ds)
    if frames > 1 and not alone:
        reason = (
            f"instance {name} is a multi-frame image ({frames} frames) among other instances; "
            "a series must be one multi-frame instance or single-frame images only"
        )
        raise series_refusal(label, reason, exam=exam)
    samples = ds.get("SamplesPerPixel", 1)
    if samples not in (None, "") and int(samples) != 1:
        reason = f"instance {name} has {int(samples)} samples per pixel (colour), not greyscale"
        raise series_refusal(label, reason, exam=exam)
    required = ("Rows", "Columns") if frames > 1 else (
        "Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient"
    )  # fmt: skip
    for keyword in required:
        if ds.get(keyword) in (None, ""):
            reason = f"instance {name} lacks {keyword}, so its place in space is unknown"
            raise series_refusal(label, reason, exam=exam)
    rows, columns = int(ds.Rows), int(ds.Columns)
    if not (1 <= rows <= MAX_MATRIX and 1 <= columns <= MAX_MATRIX):
        reason = f"instance {name} has an implausible matrix of {rows}x{columns} pixels"
        raise series_refusal(label, reason, exam=exam)


def _shared_geometry(
    datasets: Sequence[Any], label: str, exam: str | None
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Positions (n, 3), the shared orientation and pixel spacing, refusing mixtures."""
    try:
        positions = np.array([_floats(ds, "ImagePositionPatient", 3) for ds in datasets])
        orientations = np.array([_floats(ds, "ImageOrientationPatient", 6) for ds in datasets])
        spacings = np.array([_pixel_spacing(ds) for ds in datasets])
        shapes = {(int(ds.Rows), int(ds.Columns)) for ds in datasets}
    except DECODE_ERRORS as exc:
        reason = f"unreadable geometry attribute ({exc})"
        raise series_refusal(label, reason, exam=exam, detail=repr(exc)) from exc
    if not np.all(np.isfinite(positions)):
        raise series_refusal(label, "ImagePositionPatient holds non-finite values", exam=exam)
    if len(shapes) > 1:
        sizes = ", ".join(f"{r}x{c}" for r, c in sorted(shapes))
        reason = f"the images have different sizes ({sizes}): not one volume"
        raise series_refusal(label, reason, exam=exam)
    if np.max(np.abs(orientations - orientations[0])) > _ORIENTATION_TOLERANCE:
        distinct = {acquisition_plane(o) for o in orientations}
        planes = "/".join(sorted(distinct)) if len(distinct) > 1 else f"all {distinct.pop()}"
        count = len({tuple(np.round(o, 3)) for o in orientations})
        reason = (
            f"mixed orientations: the images have {count} different ImageOrientationPatient "
            f"values ({planes}), so they are not one stack of parallel slices"
        )
        raise series_refusal(label, reason, exam=exam)
    if np.max(np.abs(spacings - spacings[0])) > _SPACING_TOLERANCE_FRACTION * np.max(spacings[0]):
        reason = "the images have different PixelSpacing values: not one volume"
        raise series_refusal(label, reason, exam=exam)
    return positions, orientations[0], (float(spacings[0][0]), float(spacings[0][1]))


def _floats(ds: Any, keyword: str, count: int) -> list[float]:
    values = [float(v) for v in ds.get(keyword)]
    if len(values) != count:
        msg = f"{keyword} has {len(values)} values instead of {count}"
        raise ValueError(msg)
    return values


def _pixel_spacing(ds: Any) -> list[float]:
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if not spacing:
        msg = "PixelSpacing is missing"
        raise ValueError(msg)
    values = [float(v) for v in spacing]
    if len(values) != 2:
        msg = f"PixelSpacing has {len(values)} values instead of 2"
        raise ValueError(msg)
    return values


def _optional_float(ds: Any, keyword: str) -> float | None:
    try:
        value = ds.get(keyword)
        return float(value) if value not in (None, "") else None
    except READ_ERRORS:
        return None


def _metadata(
    ds: Any, count: int, array: np.ndarray, geometry: StackGeometry, thickness_mm: float | None
) -> dict[str, Any]:
    """Technical, non-identifying fields only (no names, IDs, dates or institutions)."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return {
        "series_uid": text_value(ds, "SeriesInstanceUID"),
        "study_uid": text_value(ds, "StudyInstanceUID"),
        "instance_count": count,
        "series_description": text_value(ds, "SeriesDescription"),
        "protocol_name": text_value(ds, "ProtocolName"),
        "modality": text_value(ds, "Modality"),
        "manufacturer": text_value(ds, "Manufacturer"),
        "acquisition_plane": geometry.acquisition_plane,
        "slice_thickness_mm": thickness_mm,
        "spacing_mm": tuple(float(v) for v in np.linalg.norm(geometry.affine[:3, :3], axis=0)),
        "shape": tuple(int(n) for n in array.shape),
        "transfer_syntax": getattr(syntax, "name", str(syntax)) if syntax else "unknown",
        "header": series_header(ds),
    }


def read_series_dir(
    path: Path | str, *, exam: str | None = None, min_slices: int = DEFAULT_MIN_SLICES
) -> Volume:
    """Read a folder that holds exactly one series (like dcm2niix does) into a volume."""
    datasets = load_dataset_files(dicom_files_under(path))
    groups = group_by_series(datasets)
    if len(groups) != 1:
        found = ", ".join(
            f"{series_label(items[0])}: {len(items)} image(s)" for items in groups.values()
        )
        msg = f"Folder {path} holds {len(groups)} series, not exactly one" + (
            f" ({found})" if found else ""
        )
        raise DicomError(msg, exam=exam, action="Give a folder with the files of one series.")
    (series,) = groups.values()
    return assemble_volume(series, exam=exam, min_slices=min_slices)


def read_study_dir(
    path: Path | str, *, exam: str | None = None, min_slices: int = DEFAULT_MIN_SLICES
) -> StudyRead:
    """Read every series under a study folder; refused series are reported, not raised.

    Raises :class:`DicomError` only when the folder is missing or none of its files is DICOM.
    """
    return read_study_files(dicom_files_under(path), exam=exam, min_slices=min_slices)


def read_study_files(
    paths: Iterable[Path | str], *, exam: str | None = None, min_slices: int = DEFAULT_MIN_SLICES
) -> StudyRead:
    """:func:`read_study_dir` over the given files (e.g. only a study's series folders)."""
    datasets = load_dataset_files(paths)
    volumes: list[tuple[dict[str, Any], Volume]] = []
    refused: list[RefusedSeries] = []
    ignored: list[IgnoredObjects] = []
    for uid, series in group_by_series(datasets).items():
        objects = split_series_objects(series)
        ignored.extend(objects.ignored)
        if not objects.images:  # a SEG, SR, presentation state ... series: noted, not refused
            log.info("%s: no image, left out %s", series_label(series[0]),
                     describe_ignored(objects.ignored))
            continue
        try:
            volume = assemble_volume(series, exam=exam, min_slices=min_slices)
        except DicomError as exc:
            refused.append(
                RefusedSeries(
                    series_uid=uid,
                    series_description=text_value(series[0], "SeriesDescription"),
                    instance_count=len(series),
                    reason=exc.message,
                    error=exc,
                )
            )
            continue
        volumes.append((volume.metadata["header"], volume))
    return StudyRead(volumes=tuple(volumes), refused=tuple(refused), ignored=tuple(ignored))
