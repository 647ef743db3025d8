"""The key image of one assessed study: one RGB secondary capture (highdicom ``SCImage``) for
viewers that show neither a SEG nor an SR's lines.

:func:`build_key_image` takes the T1c slice on which the largest target lesion was measured (the
largest measured lesion when none is a target; the slice with the most labelled voxels when no
lesion was measured), burns in the labels (the SEG's colours, blended at 40 %), the RANO long and
short axis lines (magenta) and the text ``GlioWatch — derived, not for diagnosis``, and returns
the instance: ImageType DERIVED\\SECONDARY, BurnedInAnnotation YES, conversion type WSD, the T1c
image it came from as source image, that image's patient orientation and pixel spacing (divided
by the enlargement), image laterality U (unpaired). No patient data is burnt in. The slice is
enlarged by an integer factor (nearest neighbour) to at least :data:`MIN_SIDE_PX` pixels so the
text stays readable.
A pure function, like :func:`~engine.writeback.build_segmentation`: storing is the caller's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import highdicom as hd
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from engine.errors import WriteBackError
from engine.types import Volume
from engine.writeback.report_content import LesionReport, ReportContent
from engine.writeback.segment_codes import SEGMENT_CODINGS
from engine.writeback.source_grid import labels_on_source_frames

KEY_IMAGE_TEXT = "GlioWatch — derived, not for diagnosis"
LINE_RGB = (255, 0, 255)  # magenta: none of the label colours
LABEL_ALPHA = 0.4
MIN_SIDE_PX = 512
MANUFACTURER = "GlioWatch"
SERIES_DESCRIPTION = "GlioWatch key image (derived, not for diagnosis)"
# DejaVu Sans (shipped with matplotlib, a pinned dependency) has the em dash; Pillow's own font has not
_FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def build_key_image(
    content: ReportContent, t1c_datasets: Sequence[Any], labels: Volume, *, series_uid: str,
    sop_instance_uid: str, series_number: int, exam: str | None = None,
) -> hd.sc.SCImage:
    """The key image of the study (see the module docstring); the T1c datasets with their pixels."""
    frames = labels_on_source_frames(t1c_datasets, labels, exam=exam)
    lesion = key_lesion(content.lesions)
    k = _lesion_slice(lesion, labels) if lesion is not None else _fullest_slice(labels)
    frame = frames.slice_to_frame[k]
    multi = len(frames.images) == 1 and len(frames.slice_to_frame) > 1
    source = frames.images[0] if multi else frames.images[frame]
    if "PixelData" not in source:
        raise WriteBackError("The post-contrast T1 image of the key image holds no pixel data", exam=exam,
                             action="No key image was written; the SEG and SR are not affected.")
    pixels = source.pixel_array[frame] if multi else source.pixel_array
    lines = [] if lesion is None else [_pixel_line(line, labels) for line in (lesion.d1_line, lesion.d2_line)
                                       if line is not None]
    rgb = render_key_image(np.asarray(pixels, dtype=float), frames.planes[frame], lines,
                           caption=(KEY_IMAGE_TEXT, _caption(content, lesion)))
    enlarged = rgb.shape[0] // pixels.shape[0]
    image = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", patient_orientation=_patient_orientation(source),
        pixel_spacing=tuple(float(v) / enlarged for v in source.PixelSpacing) if "PixelSpacing" in source else None,
        series_instance_uid=series_uid, series_number=series_number, sop_instance_uid=sop_instance_uid,
        instance_number=1, manufacturer=MANUFACTURER, series_description=SERIES_DESCRIPTION)
    image.ImageType = ["DERIVED", "SECONDARY"]
    image.BurnedInAnnotation = "YES"
    image.ImageLaterality = "U"  # the brain is unpaired (dciodvfy asks for Laterality without it)
    image.ConversionType = "WSD"  # made on a workstation, not scanned or captured
    image.DerivationDescription = ("T1c slice with the GlioWatch labels and RANO lines burnt in; "
                                   "derived, not for diagnosis")
    image.ImageComments = "Derived by GlioWatch, not for diagnosis"
    image.SourceImageSequence = [_source_reference(source, frame + 1 if multi else None)]
    return image


def key_lesion(lesions: Sequence[LesionReport]) -> LesionReport | None:
    """The largest target lesion (by bidimensional product) with a measured line, else the
    largest measured lesion, else None."""
    measured = [lesion for lesion in lesions if lesion.d1_line is not None]
    targets = [lesion for lesion in measured if lesion.is_target]
    pool = targets or measured
    return max(pool, key=lambda lesion: lesion.product_mm2) if pool else None


def render_key_image(
    pixels: np.ndarray, label_plane: np.ndarray, lines: Sequence[np.ndarray], *, caption: Sequence[str],
) -> np.ndarray:
    """RGB uint8 (rows * s, columns * s, 3): the slice windowed to its 0.5-99.5 percentiles, the
    labels blended in, each line (points as (column, row) pixel indices) and the caption drawn."""
    low, high = np.percentile(pixels, [0.5, 99.5])
    grey = np.clip((pixels - low) / max(high - low, 1e-6), 0.0, 1.0) * 255.0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for coding in SEGMENT_CODINGS:
        mask = label_plane == int(coding.label)
        rgb[mask] = (1 - LABEL_ALPHA) * rgb[mask] + LABEL_ALPHA * np.array(coding.display_rgb, dtype=float)
    scale = enlargement(pixels.shape)
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    image = Image.fromarray(np.round(rgb).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(image)
    for line in lines:  # a voxel's centre is the centre of its enlarged block
        draw.line([((c + 0.5) * scale - 0.5, (r + 0.5) * scale - 0.5) for c, r in line], fill=LINE_RGB,
                  width=max(2, scale // 2))
    font = ImageFont.truetype(str(_FONT), size=max(12, image.width // 36))
    y = 4
    for text in caption:
        box = draw.textbbox((6, y), text, font=font)
        draw.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), fill=(0, 0, 0))
        draw.text((6, y), text, font=font, fill=(255, 255, 255))
        y = box[3] + 8
    return np.asarray(image)


def enlargement(shape: Sequence[int]) -> int:
    """The integer factor that brings the longer side of a slice to at least MIN_SIDE_PX pixels.

    >>> enlargement((96, 96)), enlargement((512, 512)), enlargement((240, 200))
    (6, 1, 3)
    """
    return max(1, math.ceil(MIN_SIDE_PX / max(shape)))


def _patient_orientation(source: Dataset) -> tuple[str, str]:
    """PatientOrientation of the image's rows and columns: the main patient direction of each
    (LPS: +x L, +y P, +z H)."""
    cosines = np.array([float(v) for v in source.ImageOrientationPatient]).reshape(2, 3)
    letters = (("R", "L"), ("A", "P"), ("F", "H"))
    return tuple(letters[int(np.argmax(np.abs(d)))][int(d[np.argmax(np.abs(d))] > 0)] for d in cosines)


def _lesion_slice(lesion: LesionReport, labels: Volume) -> int:
    ijk = _voxel_indices(np.asarray(lesion.d1_line, dtype=float), labels)
    return int(np.clip(round(float(np.mean(ijk[:, 2]))), 0, labels.array.shape[2] - 1))


def _fullest_slice(labels: Volume) -> int:
    """The slice with the most labelled voxels (the middle one when nothing is labelled)."""
    counts = np.count_nonzero(labels.array, axis=(0, 1))
    return int(np.argmax(counts)) if counts.any() else labels.array.shape[2] // 2


def _pixel_line(points: Any, labels: Volume) -> np.ndarray:
    """LPS mm points as (column, row) indices of the label grid's slice (i is the column)."""
    return _voxel_indices(np.asarray(points, dtype=float), labels)[:, :2]


def _voxel_indices(lps: np.ndarray, labels: Volume) -> np.ndarray:
    ras = np.column_stack([-lps[:, 0], -lps[:, 1], lps[:, 2], np.ones(len(lps))])
    return (ras @ np.linalg.inv(labels.affine).T)[:, :3]


def _caption(content: ReportContent, lesion: LesionReport | None) -> str:
    response = f"; RANO {content.response.final_category}" if content.response is not None else ""
    if lesion is None:
        return f"No measured lesion{response}"
    name = f"Lesion {lesion.track_id}" if lesion.track_id is not None else f"Untracked lesion {lesion.lesion_index}"
    return f"{name}: {lesion.d1_mm:.1f} x {lesion.d2_mm:.1f} mm{response}"


def _source_reference(source: Dataset, frame_number: int | None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    if frame_number is not None:
        item.ReferencedFrameNumber = frame_number
    purpose = hd.sr.CodedConcept.from_code(codes.DCM.SourceImageForImageProcessingOperation)
    item.PurposeOfReferenceCodeSequence = [purpose]
    return item
