"""The key image of one assessed study: one RGB secondary capture (highdicom ``SCImage``) for
viewers that show neither a SEG nor an SR's lines.

:func:`build_key_image` shows the plane in which the largest target lesion was measured (the
largest measured lesion when none is a target; the acquisition plane with the most labelled
voxels when no lesion was measured), chosen and oriented by :mod:`engine.writeback.key_plane`:
a T1c image, or a reformat of the T1c when RANO measured across its images (a sagittal T1c).
It burns in the labels (the SEG's colours, blended at 40 %), the RANO long and short axis lines
(magenta) and the text ``GlioWatch — derived, not for diagnosis`` with the lesion's axes and the
final response (no patient data), and returns the instance: ImageType DERIVED\\SECONDARY,
BurnedInAnnotation YES, conversion type WSD, the T1c image(s) it came from as source images, the
plane's patient orientation, image laterality U (unpaired). The plane is enlarged (nearest
neighbour) to square pixels and at least :data:`MIN_SIDE_PX` pixels so the text stays readable;
PixelSpacing says the enlarged pixel's size. A pure function, like
:func:`~engine.writeback.build_segmentation`: storing is the caller's.
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
from engine.writeback.key_plane import key_plane
from engine.writeback.report_content import LesionReport, ReportContent
from engine.writeback.segment_codes import SEGMENT_CODINGS
from engine.writeback.source_grid import SourceFrames, labels_on_source_frames

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
    lines = [] if lesion is None else [_voxel_indices(np.asarray(line, dtype=float), labels)
                                       for line in (lesion.d1_line, lesion.d2_line) if line is not None]
    plane = key_plane(labels, lines)
    t1c = _t1c_volume(frames, labels.array.shape, exam)
    rgb, pixel_mm = render_key_image(
        plane.cut(t1c), plane.cut(labels.array), [plane.pixels(line, labels.array.shape) for line in lines],
        spacing_mm=plane.spacing_mm, caption=(KEY_IMAGE_TEXT, _caption(content, lesion)))
    if plane.axis == 2:  # the acquisition plane: one image (frame) of the T1c
        frame = frames.slice_to_frame[plane.index]
        references = [_source_reference(frames.images[0], frame + 1) if frames.multi_frame
                      else _source_reference(frames.images[frame], None)]
    else:  # a reformat: every image of the T1c gave a line of it
        references = [_source_reference(image, None) for image in frames.images]
    image = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=frames.images[0], pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", patient_orientation=plane.orientation, pixel_spacing=(pixel_mm, pixel_mm),
        series_instance_uid=series_uid, series_number=series_number, sop_instance_uid=sop_instance_uid,
        instance_number=1, manufacturer=MANUFACTURER, series_description=SERIES_DESCRIPTION)
    image.ImageType = ["DERIVED", "SECONDARY"]
    image.BurnedInAnnotation = "YES"
    image.ImageLaterality = "U"  # the brain is unpaired (dciodvfy asks for Laterality without it)
    image.ConversionType = "WSD"  # made on a workstation, not scanned or captured
    image.DerivationDescription = ("T1c plane with the GlioWatch labels and RANO lines burnt in; "
                                   "derived, not for diagnosis")
    image.ImageComments = "Derived by GlioWatch, not for diagnosis"
    image.SourceImageSequence = references
    return image


def key_lesion(lesions: Sequence[LesionReport]) -> LesionReport | None:
    """The largest target lesion (by bidimensional product) with a measured line, else the
    largest measured lesion, else None."""
    measured = [lesion for lesion in lesions if lesion.d1_line is not None]
    targets = [lesion for lesion in measured if lesion.is_target]
    pool = targets or measured
    return max(pool, key=lambda lesion: lesion.product_mm2) if pool else None


def render_key_image(
    pixels: np.ndarray, label_plane: np.ndarray, lines: Sequence[np.ndarray], *,
    spacing_mm: tuple[float, float], caption: Sequence[str],
) -> tuple[np.ndarray, float]:
    """RGB uint8 and its (square) pixel size in mm: the plane windowed to its 0.5-99.5 percentiles,
    the labels blended in, enlarged (nearest neighbour) to square pixels and at least MIN_SIDE_PX,
    each line (points as (column, row) pixel indices of the plane) and the caption drawn."""
    low, high = np.percentile(pixels, [0.5, 99.5])
    grey = np.clip((pixels - low) / max(high - low, 1e-6), 0.0, 1.0) * 255.0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for coding in SEGMENT_CODINGS:
        mask = label_plane == int(coding.label)
        rgb[mask] = (1 - LABEL_ALPHA) * rgb[mask] + LABEL_ALPHA * np.array(coding.display_rgb, dtype=float)
    rows_mm, columns_mm = spacing_mm[0] * pixels.shape[0], spacing_mm[1] * pixels.shape[1]
    pixel_mm = min(spacing_mm) / enlargement((rows_mm / min(spacing_mm), columns_mm / min(spacing_mm)))
    size = (round(columns_mm / pixel_mm), round(rows_mm / pixel_mm))
    image = Image.fromarray(np.round(rgb).astype(np.uint8), mode="RGB").resize(size, Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    scale = np.array([spacing_mm[1], spacing_mm[0]]) / pixel_mm  # output pixels per plane pixel
    for line in lines:  # a voxel's centre is the centre of its enlarged block
        draw.line([tuple((point + 0.5) * scale - 0.5) for point in line], fill=LINE_RGB,
                  width=max(2, round(float(scale.min())) // 2))
    font = ImageFont.truetype(str(_FONT), size=max(12, image.width // 36))
    y = 4
    for text in caption:
        box = draw.textbbox((6, y), text, font=font)
        draw.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), fill=(0, 0, 0))
        draw.text((6, y), text, font=font, fill=(255, 255, 255))
        y = box[3] + 8
    return np.asarray(image), pixel_mm


def enlargement(shape: Sequence[float]) -> int:
    """The integer factor that brings the longer side of a slice to at least MIN_SIDE_PX pixels.

    >>> enlargement((96, 96)), enlargement((512, 512)), enlargement((240, 200))
    (6, 1, 3)
    """
    return max(1, math.ceil(MIN_SIDE_PX / max(shape)))


def _t1c_volume(frames: SourceFrames, shape: tuple[int, int, int], exam: str | None) -> np.ndarray:
    """The T1c on the label grid (column i, row j, slice k), rescaled to stored values' meaning."""
    if any("PixelData" not in image for image in frames.images):
        raise WriteBackError("A post-contrast T1 image of the key image holds no pixel data", exam=exam,
                             action="No key image was written; the SEG and SR are not affected.")
    volume = np.zeros(shape, dtype=float)
    stack = frames.images[0].pixel_array if frames.multi_frame else None
    for k, frame in enumerate(frames.slice_to_frame):
        if stack is not None:
            volume[:, :, k] = stack[frame].T
        else:
            image = frames.images[frame]
            slope, intercept = float(image.get("RescaleSlope") or 1), float(image.get("RescaleIntercept") or 0)
            volume[:, :, k] = image.pixel_array.T * slope + intercept
    return volume


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
