"""Registration benchmark: accuracy and speed on pairs with a known head-pose change.

    python -m benchmarks.bench_registration [--spacing-mm 1] [--no-synth] [--no-torch] [--json OUT]

Pairs
- MNI152 (nilearn, no network) at ``--spacing-mm``: the fixed scan is the template; the moving
  scan is the template moved by a known rigid transform, sampled on its own grid (DICOM-like
  axial, iso or thick slices) with noise; plus a pair where a tumour grew 6 -> 22 mm and one
  where a resection cavity appeared (tumour/cavity labels given as masks).
- engine.modelling.synth (when importable): a small generated cohort (4 mm "test" size, bias field,
  Rician noise, sagittal 3D vs axial 2D T1c); each follow-up T1c is registered to the baseline
  T1c with the truth labels as masks; truth = pose_fixed @ inv(pose_moving).

Error: for every brain voxel of the template (mapped into the fixed scan's world),
``|truth @ inv(estimate) @ x - x|`` in mm; mean and max per pair.

Methods, in the same run on the same pairs
- ``baseline``: SimpleITK Mattes MI (50 bins, 10 % random samples), 3 levels (shrink 4/2/1,
  smoothing 2/1/0 mm), Euler3D from a moments initialiser, regular-step gradient descent, no
  masks -- a standard SimpleITK rigid set-up.
- ``baseline-gd``: the same with plain GradientDescent + convergence window (as in SimpleITK's
  notebooks) -- shown because it stops early here.
- ``ours-sitk``: :class:`SimpleItkRegistrar` (the CPU default): 32 bins, 5 % samples, masks.
- ``ours-sitk-affine``: the same, rigid then affine.
- ``ours-torch``: :class:`TorchRegistrar` on this machine's device (CPU here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from engine.registration import Stage
from engine.registration.geometry import displacement_error_mm, ras_from_sitk_transform, rigid_matrix, volume_center_mm
from engine.registration.phantom import Pair, Template, acquire, load_template, paint_sphere
from engine.registration.sitk_registrar import SimpleItkRegistrar, to_sitk_image, transform_to_matrix
from engine.registration.torch_registrar import TorchRegistrar
from engine.types import Label, Volume


@dataclass(frozen=True, slots=True)
class Row:
    pair: str
    method: str
    seconds: float
    mean_mm: float
    max_mm: float
    passed: bool | None
    similarity: float | None


def mni_pairs(template: Template, spacing_mm: float) -> list[Pair]:
    image = template.image
    center = volume_center_mm(image.affine, image.array.shape)
    extent = (180.0, 216.0, 180.0)
    rng = np.random.default_rng(2026)
    pairs = []
    t1 = rigid_matrix(rotation_deg=(5.0, -3.0, 7.0), translation_mm=(6.0, -4.0, 5.0), center_mm=center)
    moving, _ = acquire(image=image, truth=t1, spacing_mm=(spacing_mm,) * 3, extent_mm=extent,
                        noise_sd=0.03, rng=rng, dicom_axial=True)  # fmt: skip
    pairs.append(Pair("mni-pose-iso", image, moving, t1))
    t2 = rigid_matrix(rotation_deg=(-8.0, 4.0, -3.0), translation_mm=(-3.0, 9.0, -6.0), center_mm=center)
    moving, _ = acquire(image=image, truth=t2, spacing_mm=(spacing_mm, spacing_mm, 3.0 * spacing_mm),
                        extent_mm=extent, noise_sd=0.03, rng=rng, dicom_axial=True)  # fmt: skip
    pairs.append(Pair("mni-pose-thick-slices", image, moving, t2))
    lesion = center + np.array([25.0, 10.0, 10.0])
    fixed, fixed_labels = paint_sphere(image=image, labels=None, center_mm=lesion, radius_mm=6.0,
                                       intensity=1.0, label=Label.ET)  # fmt: skip
    for name, radius, intensity, label in (("mni-growth-6-to-22mm", 22.0, 1.0, Label.ET),
                                           ("mni-resection-cavity", 20.0, 0.0, Label.RC)):  # fmt: skip
        later, later_labels = paint_sphere(image=image, labels=None, center_mm=lesion, radius_mm=radius,
                                           intensity=intensity, label=label)  # fmt: skip
        moving, moving_labels = acquire(image=later, labels=later_labels, truth=t1, extent_mm=extent,
                                        spacing_mm=(spacing_mm, spacing_mm, 2.0 * spacing_mm), noise_sd=0.03,
                                        rng=rng, dicom_axial=True)  # fmt: skip
        pairs.append(Pair(name, fixed, moving, t1, fixed_labels, moving_labels))
    return pairs


def synth_pairs(workdir: Path) -> tuple[list[Pair], dict[str, np.ndarray]]:
    """Follow-up T1c -> baseline T1c pairs of a small generated cohort, and fixed-world brain points."""
    import nibabel as nib

    from engine.dicom import read_series_dir
    from engine.modelling.synth import generate_cohort

    manifest_path = generate_cohort(n_patients=2, seed=5, out_dir=workdir, size="test", n_visits=3,
                                    scenarios=["progression", "partial_response"])  # fmt: skip
    manifest = json.loads(Path(manifest_path).read_text())
    brain_template = load_template(spacing_mm=2.0).brain_points_mm()
    pairs, points = [], {}

    def t1c(visit: dict) -> tuple[Volume, Volume, np.ndarray]:
        (entry,) = [s for s in visit["series"] if s["sequence"] == "T1c"]
        image = read_series_dir(workdir / entry["dir"])
        labels_img = nib.load(workdir / visit["truth"]["labels"])
        labels = Volume(array=np.asarray(labels_img.dataobj, dtype=np.uint8), affine=np.asarray(labels_img.affine))
        return image, labels, np.asarray(visit["truth"]["head_pose"], dtype=float)

    for patient in manifest["patients"]:
        base_image, base_labels, base_pose = t1c(patient["visits"][0])
        for visit in patient["visits"][1:]:
            image, labels, pose = t1c(visit)
            name = f"synth-{patient['patient_id'][-4:]}-v{visit['visit_index']}-{visit['phase'].lower()}"
            truth = base_pose @ np.linalg.inv(pose)  # moving visit world -> baseline visit world
            pairs.append(Pair(name, base_image, image, truth, base_labels, labels))
            points[name] = brain_template @ base_pose[:3, :3].T + base_pose[:3, 3]
    return pairs, points


def baseline_sitk(fixed: Volume, moving: Volume, *, regular_step: bool) -> np.ndarray:
    f_img, m_img = to_sitk_image(fixed), to_sitk_image(moving)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.10, 1)
    reg.SetInterpolator(sitk.sitkLinear)
    if regular_step:
        reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=200,
                                                     relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)  # fmt: skip
    else:
        reg.SetOptimizerAsGradientDescent(learningRate=1.0, numberOfIterations=100, convergenceMinimumValue=1e-6,
                                          convergenceWindowSize=10)  # fmt: skip
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    initial = sitk.CenteredTransformInitializer(f_img, m_img, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)  # fmt: skip
    reg.SetInitialTransform(initial, inPlace=False)
    out = reg.Execute(f_img, m_img)
    return ras_from_sitk_transform(transform_to_matrix(out))


def run(pairs: list[Pair], points: dict[str, np.ndarray], *, with_torch: bool) -> list[Row]:
    ours = {
        "ours-sitk": SimpleItkRegistrar(),
        "ours-sitk-affine": SimpleItkRegistrar(stage=Stage.AFFINE),
    }
    if with_torch:
        ours["ours-torch"] = TorchRegistrar()
    rows = []
    for pair in pairs:
        pts = points[pair.name]
        for name, regular in (("baseline", True), ("baseline-gd", False)):
            start = time.perf_counter()
            matrix = baseline_sitk(pair.fixed, pair.moving, regular_step=regular)
            rows.append(_row(pair, name, time.perf_counter() - start, matrix, pts, None, None))
        for name, registrar in ours.items():
            result = registrar.register(fixed=pair.fixed, moving=pair.moving, fixed_mask=pair.fixed_labels,
                                        moving_mask=pair.moving_labels)  # fmt: skip
            rows.append(_row(pair, name, result.elapsed_s, result.matrix, pts, result.passed, result.similarity))
            if not result.passed:
                print(f"   {pair.name} {name}: {result.qc_reason}", flush=True)
    return rows


def _row(
    pair: Pair, method: str, seconds: float, matrix: np.ndarray, pts: np.ndarray, passed: bool | None,
    similarity: float | None,
) -> Row:
    err = displacement_error_mm(estimated=matrix, truth=pair.truth, points_mm=pts)
    row = Row(pair.name, method, seconds, float(err.mean()), float(err.max()), passed, similarity)
    qc = "" if passed is None else f"QC {'pass' if passed else 'FAIL'} (similarity {similarity:.3f})"
    print(f"{pair.name:34s} {method:18s} {seconds:7.2f} s  mean {row.mean_mm:6.3f} mm  max {row.max_mm:6.3f} mm  {qc}",
          flush=True)  # fmt: skip
    return row


def summarise(rows: list[Row]) -> dict[str, dict[str, float]]:
    methods = sorted({r.method for r in rows}, key=[r.method for r in rows].index)
    summary = {}
    base_time = sum(r.seconds for r in rows if r.method == "baseline")
    print("\nmethod              total s   mean of means mm   worst max mm   speed vs baseline")
    for m in methods:
        sel = [r for r in rows if r.method == m]
        total = sum(r.seconds for r in sel)
        summary[m] = {
            "total_s": total,
            "mean_of_mean_mm": float(np.mean([r.mean_mm for r in sel])),
            "worst_max_mm": float(max(r.max_mm for r in sel)),
            "speed_vs_baseline": base_time / total if total > 0 else float("nan"),
            "pairs": len(sel),
        }
        s = summary[m]
        print(f"{m:18s} {total:8.1f}   {s['mean_of_mean_mm']:16.3f}   {s['worst_max_mm']:12.3f}   "
              f"{s['speed_vs_baseline']:6.2f}x")  # fmt: skip
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing-mm", type=float, default=1.0, help="MNI pair resolution (1 or 2 mm)")
    parser.add_argument("--no-synth", action="store_true", help="skip the engine.modelling.synth cohort pairs")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch registrar")
    parser.add_argument("--json", type=Path, help="write rows and summary as JSON")
    args = parser.parse_args(argv)
    import torch

    print(f"host: {platform.node()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"CUDA {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}, "
          f"SimpleITK {sitk.Version_VersionString()} threads {sitk.ProcessObject_GetGlobalDefaultNumberOfThreads()}")  # fmt: skip
    template = load_template(spacing_mm=args.spacing_mm)
    pairs = mni_pairs(template, args.spacing_mm)
    points = {p.name: template.brain_points_mm() for p in pairs}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_synth:
            try:
                more, more_points = synth_pairs(Path(tmp) / "cohort")
            except ImportError as exc:  # the synthetic-cohort package is optional here
                print(f"engine.modelling.synth pairs skipped: {exc}")
            else:
                pairs += more
                points.update(more_points)
        rows = run(pairs, points, with_torch=not args.no_torch)
    summary = summarise(rows)
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(r) for r in rows], "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
