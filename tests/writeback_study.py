"""A small assessed study for the write-back tests: an axial T1c with a lesion, its SEG and its
RANO report (built by engine.writeback), as files (the viewer test uploads them into Orthanc).
Known geometry: 96 x 96 x 12 voxels of 1 x 1 x 3 mm; ET a disc of radius 12 mm (slices 4-7)
around a necrotic core, oedema around it; the RANO lines on slice 6: d1 along x, d2 along y,
both 24 mm through the centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from engine.dicom import read_series_dir
from engine.types import Label, Volume
from engine.writeback import build_segmentation
from engine.writeback.report import build_report
from engine.writeback.report_content import LesionReport, ReportContent, ResponseReport
from engine.writeback.step import derived_uid
from tests.dicom_factory import write_series

SHAPE = (96, 96, 12)
CENTRE = (48, 48, 6)
RADIUS_VOX = 12
LINE_SLICE = 6


@dataclass(frozen=True, slots=True, eq=False)
class ViewerStudy:
    study_uid: str
    seg_series_uid: str
    sr_series_uid: str
    files: tuple[Path, ...]  # the T1c images, then the SEG, then the SR
    sources: tuple[pydicom.Dataset, ...]  # the T1c datasets
    segmentation: pydicom.Dataset
    content: ReportContent
    labels: Volume  # on the T1c grid


def _labels(t1c: Volume) -> Volume:
    i, j, k = np.indices(t1c.array.shape)
    radius = np.hypot(i - CENTRE[0], j - CENTRE[1])
    array = np.zeros(t1c.array.shape, dtype=np.uint8)
    slab = (k >= 4) & (k <= 7)
    array[(radius <= RADIUS_VOX + 8) & (k >= 2) & (k <= 9)] = Label.SNFH
    array[(radius <= RADIUS_VOX) & slab] = Label.ET
    array[(radius <= 5) & slab] = Label.NETC
    return Volume(array=array, affine=t1c.affine.copy())


def _lps(volume: Volume, i: float, j: float, k: float) -> tuple[float, float, float]:
    ras = volume.affine @ np.array([i, j, k, 1.0])
    return (float(-ras[0]), float(-ras[1]), float(ras[2]))


def lesion_content(study_uid: str, labels: Volume, *, patient_key: str = "P-VIEWER", timepoint: int = 1,
                   track_id: int | None = 1) -> ReportContent:
    """The report content of the study: one lesion (d1 = d2 = 24 mm on slice 6), four volumes."""
    ci, cj, _ = CENTRE
    d1 = (_lps(labels, ci - RADIUS_VOX, cj, LINE_SLICE), _lps(labels, ci + RADIUS_VOX, cj, LINE_SLICE))
    d2 = (_lps(labels, ci, cj - RADIUS_VOX, LINE_SLICE), _lps(labels, ci, cj + RADIUS_VOX, LINE_SLICE))
    return ReportContent(
        patient_key=patient_key, study_uid=study_uid, scan_date=date(2025, 3, 14), timepoint=timepoint,
        is_baseline=timepoint == 1, days_since_rt_end=None if timepoint == 1 else 30 * timepoint,
        volumes_ml=(("NETC", 0.9), ("SNFH", 9.0), ("ET", 5.4), ("RC", 0.0)),
        lesions=(LesionReport(1, track_id, 5.4, 24.0, 24.0, 576.0, True, True, False, d1, d2),),
        response=ResponseReport("BASELINE", "BASELINE", "Baseline: SPD 576 mm² over 1 target lesion",
                                None, "RANO 2.0, criteria v1", 576.0, None, None),
        psp=None, growth=(), model_name="gliowatch-unet", model_version="test", weights_sha256="ab" * 32)


def write_viewer_study(folder: Path) -> ViewerStudy:
    """The T1c files (with a bright lesion), the SEG and the SR, written under ``folder``."""
    study_uid = generate_uid()
    paths = write_series(folder / "T1c", sequence="T1c", patient_id="VIEWER-1", study_uid=study_uid,
                         study_date=date(2025, 3, 14), shape=SHAPE, spacing_mm=(1.0, 1.0, 3.0),
                         origin_lps=(-48.0, -48.0, -18.0))
    frame_of_reference = generate_uid()
    t1c = read_series_dir(paths[0].parent)
    labels = _labels(t1c)
    for k, path in enumerate(paths):  # a frame of reference, and the lesion bright on the images
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_of_reference, ""
        ds.StudyTime, ds.StudyID, ds.AccessionNumber = "101500", "1", "A1"
        pixels = ds.pixel_array.astype(np.uint16) // 4
        pixels[labels.array[:, :, k].T == Label.ET] = 1800
        pixels[labels.array[:, :, k].T == Label.SNFH] += 300
        ds.PixelData = pixels.tobytes()
        ds.save_as(path, enforce_file_format=True)
    sources = [pydicom.dcmread(p) for p in paths]
    seg = build_segmentation(sources, labels, model_name="gliowatch-unet", model_version="test",
                             weights_sha256="ab" * 32, series_number=9901,
                             series_uid=derived_uid(study_uid, "SEG"),
                             sop_instance_uid=derived_uid(study_uid, "SEG", "instance"))
    content = lesion_content(study_uid, labels)
    sr = build_report(content, t1c_datasets=sources, segmentation=seg,
                      series_uid=derived_uid(study_uid, "SR"), sop_instance_uid=derived_uid(study_uid, "SR", "i"),
                      series_number=9902, device_uid=derived_uid("GlioWatch", "device"))
    seg_path, sr_path = folder / "seg.dcm", folder / "sr.dcm"
    seg.save_as(seg_path, enforce_file_format=True)
    sr.save_as(sr_path, enforce_file_format=True)
    return ViewerStudy(study_uid, str(seg.SeriesInstanceUID), str(sr.SeriesInstanceUID),
                       (*paths, seg_path, sr_path), tuple(sources), seg, content, labels)
