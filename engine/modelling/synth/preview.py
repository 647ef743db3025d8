"""Contact sheets of a written cohort, read back from its DICOM files (for eyes, docs, tests).

Each row is a visit; columns are T1, T1c, T2, FLAIR and T1c with the truth labels overlaid
(NETC red, SNFH green, ET yellow, RC blue). Every panel is an axial plane of the scanner
world at the level of the tumour centre (template point mapped through the visit's head pose),
shown in radiological convention (patient's right on the image's left), centred on the head.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from scipy import ndimage

_COLOURS = {1: (230, 40, 40), 2: (40, 200, 60), 3: (250, 220, 30), 4: (60, 120, 255)}
_ORDER = ("T1", "T1c", "T2", "FLAIR")
_HEAD_CENTER_Y_MM = -18.0  # MNI152: centre of the head front to back


def read_series_ras(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(array [i, j, k] in real units, RAS+ affine) of a single-frame DICOM series."""
    datasets = [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    datasets.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
    slope = float(datasets[0].RescaleSlope)
    array = np.stack([d.pixel_array.T.astype(np.float32) * slope for d in datasets], axis=-1)
    between_rows, between_cols = (float(v) for v in datasets[0].PixelSpacing)
    first = np.array(datasets[0].ImagePositionPatient, dtype=float)
    last = np.array(datasets[-1].ImagePositionPatient, dtype=float)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = row * between_cols, col * between_rows
    lps[:3, 2] = (last - first) / max(len(datasets) - 1, 1)
    lps[:3, 3] = first
    return array, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def write_contact_sheet(cohort_dir: Path, patient_id: str, out_png: Path, *,
                        half_fov_mm: float = 100.0, pixel_mm: float = 0.8,
                        max_visits: int | None = None) -> Path:
    """Write the contact sheet of one patient; returns ``out_png``."""
    from PIL import Image

    manifest = json.loads((cohort_dir / "cohort.json").read_text())
    patient = next(p for p in manifest["patients"] if p["patient_id"] == patient_id)
    tumour = np.asarray(patient["tumour_center_template_mm"], dtype=float)
    center_template = np.array([0.0, _HEAD_CENTER_Y_MM, tumour[2], 1.0])  # axial level of tumour
    rows = []
    for visit in patient["visits"][:max_visits]:
        pose = np.asarray(visit["truth"]["head_pose"])
        center = (pose @ center_template)[:3]
        axis = np.arange(-half_fov_mm, half_fov_mm, pixel_mm)
        down, across = np.meshgrid(axis, axis, indexing="ij")
        world = np.stack([center[0] - across, center[1] - down,
                          np.full(across.shape, center[2]), np.ones(across.shape)])
        world = world.reshape(4, -1)
        panels = {}
        for series in visit["series"]:
            array, affine = read_series_ras(cohort_dir / series["dir"])
            index = (np.linalg.inv(affine) @ world)[:3]
            plane = ndimage.map_coordinates(array, index, order=1).reshape(across.shape)
            scale = max(float(np.percentile(plane, 99.5)), 1.0)
            panels[series["sequence"]] = np.clip(plane / scale, 0.0, 1.0)
        truth = nib.load(cohort_dir / visit["truth"]["labels"])
        index = (np.linalg.inv(truth.affine) @ world)[:3]
        labels = ndimage.map_coordinates(np.asarray(truth.dataobj), index, order=0)
        labels = labels.reshape(across.shape)
        grey = [np.repeat(panels[s][..., None], 3, axis=-1) for s in _ORDER]
        overlay = grey[1].copy()
        for value, colour in _COLOURS.items():
            mask = labels == value
            overlay[mask] = 0.45 * overlay[mask] + 0.55 * np.asarray(colour) / 255.0
        rows.append(np.concatenate([*grey, overlay], axis=1))
    sheet = (np.concatenate(rows, axis=0) * 255).astype(np.uint8)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out_png)
    return out_png
