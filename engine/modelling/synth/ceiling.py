"""What an ideal segmenter could recover of a cohort study's truth: the accuracy ceiling.

The cohort's truth labels (``truth/labels.nii.gz``) are the generator's 1 mm labels sampled at the
*centre* of each T1c voxel (nearest neighbour). The images do not show that: each voxel's signal
is the mean over its slice thickness and pixel (the acquisition's partial volume, see
:func:`engine.modelling.synth.acquisition.resample`). A thin enhancing crescent beside a resection cavity,
seen through 5 mm slices, is a few percent of every voxel it touches, and which voxel centres
it happens to cross is not in the image.

:func:`observable_labels` gives the labels of an *ideal* segmenter: one that knows the generator's
exact class memberships and sees them as the T1c series does (the same slice profile and in-plane
low-pass), taking the class that fills most of each voxel. Its Dice against the truth is the
ceiling a model can be measured against; a target above that ceiling cannot be met by any
segmenter on that study. It is an estimate of the ceiling, not a bound proven for every decision
rule.

The patient is rebuilt from the cohort's seed (:func:`engine.modelling.synth.cohort.patient_model`); the
cohort's own files give each study's head pose, T1c grid and slice thickness.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from engine.modelling.synth.acquisition import AcquisitionGrid, Plane, resample
from engine.modelling.synth.anatomy import HeadModel, build_head
from engine.modelling.synth.cohort import PatientModel, patient_model
from engine.modelling.synth.scenarios import Scenario
from engine.modelling.synth.tumour import TumourMaps, render
from engine.types import Label

#: label channels of :func:`membership_stack` after background (BraTS 2024 numbering).
LABEL_ORDER: tuple[Label, ...] = (Label.NETC, Label.SNFH, Label.ET, Label.RC)


def membership_stack(maps: TumourMaps, head: HeadModel) -> np.ndarray:
    """(5, *head.shape) float32: background, NETC, SNFH, ET, RC memberships on the head grid."""
    stack = np.zeros((len(LABEL_ORDER) + 1, *head.shape), dtype=np.float32)
    for index, label in enumerate(LABEL_ORDER, start=1):
        stack[index][maps.crop] = maps.memberships[label]
    stack[0] = 1.0 - stack[1:].sum(0)
    return stack


def observable_labels(
    maps: TumourMaps, *, head: HeadModel, pose: np.ndarray, grid: AcquisitionGrid
) -> np.ndarray:
    """Labels an ideal segmenter gives on ``grid``: argmax over classes of each class's membership
    as the acquisition sees it (slice profile, in-plane low-pass, through the head ``pose``)."""
    stack = membership_stack(maps, head)
    world_to_template = np.linalg.inv(pose)
    seen = np.stack([
        resample(channel, image_affine=head.affine, world_to_image_space=world_to_template, grid=grid,
                 order=1, slice_profile=True)
        for channel in stack
    ])
    seen[0] += np.float32(1.0) - seen.sum(0)  # outside the head grid: background
    labels = np.zeros(grid.shape, dtype=np.uint8)
    codes = np.array([0, *(int(label) for label in LABEL_ORDER)], dtype=np.uint8)
    labels[...] = codes[np.argmax(seen, axis=0)]
    return labels


@lru_cache(maxsize=4)
def _head(spacing_mm: float) -> HeadModel:
    return build_head(spacing_mm=spacing_mm)


@lru_cache(maxsize=2)
def _patient(manifest_path: str, patient_index: int) -> PatientModel:
    manifest = json.loads(Path(manifest_path).read_text())
    patients = manifest["patients"]
    entry = patients[patient_index]
    return patient_model(
        seed=int(manifest["seed"]), patient_index=patient_index, scenario=Scenario(entry["scenario"]),
        n_visits=len(entry["visits"]), head=_head(float(manifest["working_resolution_mm"])),
    )


def cohort_ceiling_labels(manifest_path: Path, patient_index: int, visit_index: int, *, slice_thickness_mm: float) -> np.ndarray:
    """:func:`observable_labels` for one study of a cohort written by ``generate_cohort``, on the
    grid of its truth labels (the T1c series; ``slice_thickness_mm`` is that series' own).

    Raises ``ValueError`` when the rebuilt patient does not match the manifest (another
    generator version or scenario order).
    """
    manifest = json.loads(Path(manifest_path).read_text())
    entry = manifest["patients"][patient_index]
    model = _patient(str(manifest_path), patient_index)
    visit_entry = entry["visits"][visit_index]
    visit = model.plan.visits[visit_index]
    if visit.study_date.isoformat() != visit_entry["study_date"]:
        msg = (f"Patient {entry['patient_id']} visit {visit_index} rebuilt on {visit.study_date}, "
               f"but the cohort has {visit_entry['study_date']}: not the generator that wrote it")
        raise ValueError(msg)
    root = Path(manifest_path).parent
    truth = nib.load(root / visit_entry["truth"]["labels"])
    pose = np.asarray(visit_entry["truth"]["head_pose"], dtype=float)
    plane = next((s["plane"] for s in visit_entry["series"] if s["sequence"] == "T1c"), "AX")
    grid = AcquisitionGrid(plane=Plane(plane), affine=np.asarray(truth.affine, dtype=float),
                           shape=tuple(int(n) for n in truth.shape), slice_thickness_mm=float(slice_thickness_mm))
    maps = render(model.field, visit.state)
    return observable_labels(maps, head=model.field.head, pose=pose, grid=grid)


def t1c_slice_thickness_mm(cohort_root: Path, visit_entry: dict[str, Any]) -> float:
    """SliceThickness of the study's T1c series, read from its first DICOM file."""
    import pydicom

    series = next(s for s in visit_entry["series"] if s["sequence"] == "T1c")
    first = min((cohort_root / series["dir"]).glob("*.dcm"))
    return float(pydicom.dcmread(first, stop_before_pixels=True).SliceThickness)


__all__ = ["cohort_ceiling_labels", "membership_stack", "observable_labels", "t1c_slice_thickness_mm"]
