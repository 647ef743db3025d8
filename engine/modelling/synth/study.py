"""One visit of one synthetic patient: four DICOM series plus the ground truth.

The visit's noise-free images are rendered on the generator's working grid in template space,
then each series samples them on its own scanner grid through the inverse head pose (with the
slice profile as partial volume), gets a bias field and Rician noise, and is written as DICOM.
The truth labels are sampled (nearest neighbour) on the T1c grid; the label volumes are counted
on the working grid.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from engine.modelling.synth.acquisition import AcquisitionGrid, Plane, add_rician_noise, bias_field, \
    plan_grid, resample
from engine.modelling.synth.anatomy import HeadModel
from engine.modelling.synth.contrast import add_tumour
from engine.modelling.synth.dicom_writer import SeriesHeader, deterministic_uid, write_series
from engine.modelling.synth.protocols import Resolution, SeriesProtocol, Vendor, choose_protocols
from engine.modelling.synth.scenarios import PatientPlan, VisitPlan
from engine.modelling.synth.tumour import TumourField, render
from engine.types import Sequence


@dataclass(frozen=True, slots=True)
class StudyContext:
    """Everything a visit needs that is fixed for the patient."""

    plan: PatientPlan
    head: HeadModel
    field: TumourField
    resolution: Resolution
    seed: int
    out_dir: Path
    normal_images: dict[Sequence, np.ndarray]  # the head without tumour, per sequence


def write_study(
    *, context: StudyContext, visit: VisitPlan, pose: np.ndarray, vendor: Vendor,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Write the DICOM series and the truth of ``visit``; return its cohort.json entry."""
    plan, head, res = context.plan, context.head, context.resolution
    rel_dir = f"{plan.patient_id}/{visit.study_date.strftime('%Y%m%d')}"
    study_dir = context.out_dir / rel_dir
    study_uid = deterministic_uid(context.seed, rel_dir, "study")
    header_base = dict(
        patient_id=plan.patient_id, patient_name=f"SYNTHETIC^{plan.patient_id}",
        study_uid=study_uid, frame_of_reference_uid=deterministic_uid(context.seed, rel_dir, "for"),
        study_date=visit.study_date, study_time=f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}00",
        accession_number=f"SYN{visit.study_date.strftime('%y%m%d')}{plan.patient_id[-4:]}",
    )
    maps = render(context.field, visit.state)
    world_to_template = np.linalg.inv(pose)
    center_world = (pose @ np.append(head.center_mm() + [0.0, 0.0, 6.0], 1.0))[:3]
    center_world = center_world + rng.uniform(-4.0, 4.0, size=3)
    series_entries = []
    t1c_grid: AcquisitionGrid | None = None
    for number, protocol in enumerate(choose_protocols(vendor, rng), start=1):
        grid = series_grid(protocol, res, center_world, rng)
        clean = add_tumour(context.normal_images[protocol.sequence].copy(), tumour=maps,
                           sequence=protocol.sequence, rng=rng, jitter=0.03)
        image = acquire(clean, head=head, world_to_template=world_to_template, grid=grid, rng=rng)
        folder = f"{number:03d}_{re.sub(r'[^A-Za-z0-9]+', '_', protocol.description).strip('_')}"
        series_uid = deterministic_uid(context.seed, rel_dir, folder)
        header = SeriesHeader(**header_base, series_uid=series_uid, series_number=number,
                              uid_entropy=f"{context.seed}/{rel_dir}/{folder}")
        write_series(image=image, grid=grid, protocol=protocol, vendor=vendor, header=header,
                     out_dir=study_dir / folder)
        series_entries.append({
            "series_uid": series_uid, "sequence": protocol.sequence.value,
            "description": protocol.description, "plane": protocol.plane.value,
            "dir": f"{rel_dir}/{folder}",
        })
        if protocol.sequence is Sequence.T1C:
            t1c_grid = grid
    if t1c_grid is None:
        msg = "The study protocol has no T1c series"
        raise ValueError(msg)
    volumes = maps.volumes_ml(voxel_ml=head.spacing_mm**3 / 1000.0)
    truth = _write_truth(study_dir / "truth", maps.labels, head, t1c_grid, world_to_template,
                         volumes=volumes, pose=pose, visit=visit, plan=plan)
    return {
        "visit_index": visit.visit_index, "study_date": visit.study_date.isoformat(),
        "phase": visit.phase.value, "study_uid": study_uid, "dir": rel_dir,
        "manufacturer": vendor.manufacturer, "series": series_entries,
        "truth": {"labels": f"{rel_dir}/truth/labels.nii.gz", "volumes_ml": volumes,
                  "head_pose": truth["head_pose"]},
    }


def acquire(
    clean: np.ndarray, *, head: HeadModel, world_to_template: np.ndarray, grid: AcquisitionGrid,
    rng: np.random.Generator, bias_range: tuple[float, float] = (0.15, 0.35),
    noise_range: tuple[float, float] = (0.015, 0.03),
) -> np.ndarray:
    """A noise-free head-grid image as one series acquires it: sampled on ``grid`` through the
    inverse head pose (slice profile as partial volume), times a bias field, plus Rician noise."""
    image = resample(clean, image_affine=head.affine, world_to_image_space=world_to_template,
                     grid=grid)
    image *= bias_field(grid.shape, rng, strength=float(rng.uniform(*bias_range)))
    return add_rician_noise(image, rng, sigma=float(rng.uniform(*noise_range)))


def series_grid(protocol: SeriesProtocol, res: Resolution, center_world: np.ndarray,
                rng: np.random.Generator) -> AcquisitionGrid:
    """The scanner grid of one series: isotropic 3D, or 2D slices of the cohort size's
    thicknesses and gaps (a 2D series is never sagittal here)."""
    if protocol.mr_acquisition_type == "3D":
        return plan_grid(plane=protocol.plane, center_mm=center_world,
                         fov_mm=(res.fov_mm, res.fov_mm, res.sagittal_coverage_mm),
                         pixel_mm=res.voxel_3d_mm, slice_spacing_mm=res.voxel_3d_mm,
                         slice_thickness_mm=res.voxel_3d_mm)
    thickness = float(rng.choice(res.slice_thickness_2d_mm))
    gap = float(rng.choice(res.slice_gap_2d_mm))
    plane = protocol.plane if protocol.plane is not Plane.SAG else Plane.AX
    return plan_grid(plane=plane, center_mm=center_world,
                     fov_mm=(res.fov_mm, res.fov_mm, res.axial_coverage_mm),
                     pixel_mm=res.pixel_2d_mm, slice_spacing_mm=thickness + gap,
                     slice_thickness_mm=thickness)


def _write_truth(truth_dir: Path, labels: np.ndarray, head: HeadModel, grid: AcquisitionGrid,
                 world_to_template: np.ndarray, *, volumes: dict[str, float], pose: np.ndarray,
                 visit: VisitPlan, plan: PatientPlan) -> dict[str, Any]:
    truth_dir.mkdir(parents=True, exist_ok=True)
    on_grid = resample(labels, image_affine=head.affine, world_to_image_space=world_to_template,
                       grid=grid, order=0, slice_profile=False).astype(np.uint8)
    image = nib.Nifti1Image(on_grid, grid.affine)
    image.set_qform(grid.affine, code=1)
    image.set_sform(grid.affine, code=1)
    nib.save(image, truth_dir / "labels.nii.gz")
    truth = {
        "patient_id": plan.patient_id, "visit_index": visit.visit_index,
        "study_date": visit.study_date.isoformat(), "phase": visit.phase.value,
        "scenario": plan.scenario.value,
        "volumes_ml": volumes,
        "volumes_resolution_mm": head.spacing_mm,
        "head_pose": [[round(float(v), 9) for v in row] for row in pose],
        "labels_grid": "T1c series grid (affine of labels.nii.gz, RAS+)",
        "tumour_state": {
            "enhancing_radius_mm": round(visit.state.enhancing_radius_mm, 3),
            "rim_mm": round(visit.state.rim_mm, 3),
            "oedema_margin_mm": round(visit.state.oedema_margin_mm, 3),
            "cavity_radius_mm": round(visit.state.cavity_radius_mm, 3),
            "satellite_radius_mm": round(visit.state.satellite_radius_mm, 3),
        },
        "days_since_rt_end": (visit.study_date - plan.rt_end_date).days,
    }
    (truth_dir / "truth.json").write_text(json.dumps(truth, indent=2))
    return truth

