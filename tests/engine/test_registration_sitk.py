"""SimpleITK registrar on MNI152 pairs at 4 mm with known head motion.

Targets (issue 5): mean displacement error in the brain <= 0.5 mm, max <= 1 mm, also when the
tumour grew or a cavity appeared (masked); a deliberately failed registration is flagged.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import RegistrationError
from engine.registration import Stage, require_passed, resample_to
from engine.registration.geometry import displacement_error_mm, rotation_angle_deg, rigid_matrix, volume_center_mm
from engine.registration.phantom import Template, acquire, load_template, paint_sphere
from engine.registration.sitk_registrar import SimpleItkRegistrar
from engine.types import Label, Volume

SPACING_MM = 4.0
EXTENT_MM = (180.0, 210.0, 170.0)


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(spacing_mm=SPACING_MM)


@pytest.fixture(scope="module")
def truth(template: Template) -> np.ndarray:
    center = volume_center_mm(template.image.affine, template.image.array.shape)
    return rigid_matrix(rotation_deg=(5.0, -3.0, 7.0), translation_mm=(6.0, -4.0, 5.0), center_mm=center)


def _errors(template: Template, estimated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return displacement_error_mm(estimated=estimated, truth=truth, points_mm=template.brain_points_mm())


def _lesion_center(template: Template) -> np.ndarray:
    return volume_center_mm(template.image.affine, template.image.array.shape) + np.array([25.0, 10.0, 10.0])


def test_known_head_motion_is_recovered_on_an_anisotropic_dicom_grid(template: Template, truth: np.ndarray) -> None:
    moving, _ = acquire(
        image=template.image, truth=truth, spacing_mm=(SPACING_MM, SPACING_MM, 1.5 * SPACING_MM),
        extent_mm=EXTENT_MM, noise_sd=0.03, rng=np.random.default_rng(1), dicom_axial=True,
    )  # fmt: skip
    result = SimpleItkRegistrar().register(fixed=template.image, moving=moving)
    err = _errors(template, result.matrix, truth)
    assert err.mean() <= 0.5, f"mean error {err.mean():.3f} mm"
    assert err.max() <= 1.0, f"max error {err.max():.3f} mm"
    assert result.passed, result.qc_reason
    assert result.rotation_deg == pytest.approx(rotation_angle_deg(truth), abs=0.5)
    assert result.method == "sitk-mattes-rigid"
    assert result.stage is Stage.RIGID


@pytest.mark.parametrize(
    ("name", "radius_mm", "intensity", "label"),
    [("tumour grew 6 -> 22 mm", 22.0, 1.0, Label.ET), ("resection cavity appeared", 20.0, 0.0, Label.RC)],
)
def test_lesion_change_is_masked_out(
    template: Template, truth: np.ndarray, name: str, radius_mm: float, intensity: float, label: Label
) -> None:
    center = _lesion_center(template)
    fixed, fixed_labels = paint_sphere(
        image=template.image, labels=None, center_mm=center, radius_mm=6.0, intensity=1.0, label=Label.ET
    )
    later, later_labels = paint_sphere(
        image=template.image, labels=None, center_mm=center, radius_mm=radius_mm, intensity=intensity, label=label
    )
    moving, moving_labels = acquire(
        image=later, labels=later_labels, truth=truth, spacing_mm=(SPACING_MM, SPACING_MM, 1.5 * SPACING_MM),
        extent_mm=EXTENT_MM, noise_sd=0.03, rng=np.random.default_rng(2),
    )  # fmt: skip
    result = SimpleItkRegistrar().register(
        fixed=fixed, moving=moving, fixed_mask=fixed_labels, moving_mask=moving_labels
    )
    err = _errors(template, result.matrix, truth)
    assert err.mean() <= 0.5, f"{name}: mean error {err.mean():.3f} mm"
    assert err.max() <= 1.0, f"{name}: max error {err.max():.3f} mm"
    assert result.passed, result.qc_reason
    # the follow-up's labels, brought into the baseline grid, sit where the lesion truly is
    back = resample_to(reference=fixed, moving=moving_labels, matrix=result.matrix, interpolation="nearest")
    truth_mask, found = later_labels.array == label, back.array == label
    dice = 2 * np.sum(truth_mask & found) / (truth_mask.sum() + found.sum())
    assert dice > 0.85, f"{name}: Dice {dice:.3f}"


def test_head_turned_90_degrees_is_flagged_and_quarantined(template: Template) -> None:
    center = volume_center_mm(template.image.affine, template.image.array.shape)
    turned = rigid_matrix(rotation_deg=(0.0, 0.0, 90.0), center_mm=center)
    moving, _ = acquire(
        image=template.image, truth=turned, spacing_mm=(SPACING_MM,) * 3, extent_mm=EXTENT_MM,
        noise_sd=0.03, rng=np.random.default_rng(3),
    )  # fmt: skip
    result = SimpleItkRegistrar().register(fixed=template.image, moving=moving)
    assert not result.passed
    assert result.qc_reason.startswith("QC failed")
    with pytest.raises(RegistrationError, match="failed its quality check"):
        require_passed(result, exam="patient P-TEST, MRI 2025-01-01")


def test_moving_image_of_noise_is_flagged(template: Template) -> None:
    rng = np.random.default_rng(4)
    noise = Volume(array=rng.random((45, 52, 42)).astype(np.float32), affine=template.image.affine)
    result = SimpleItkRegistrar().register(fixed=template.image, moving=noise)
    assert not result.passed
    assert "similarity" in result.qc_reason and "is below" in result.qc_reason


def test_affine_stage_stays_within_target_on_a_rigid_motion(template: Template, truth: np.ndarray) -> None:
    moving, _ = acquire(
        image=template.image, truth=truth, spacing_mm=(SPACING_MM,) * 3, extent_mm=EXTENT_MM,
        noise_sd=0.03, rng=np.random.default_rng(5),
    )  # fmt: skip
    result = SimpleItkRegistrar(stage=Stage.AFFINE).register(fixed=template.image, moving=moving)
    err = _errors(template, result.matrix, truth)
    assert result.method == "sitk-mattes-rigid+affine"
    assert err.mean() <= 0.5, f"mean error {err.mean():.3f} mm"
    assert err.max() <= 1.0, f"max error {err.max():.3f} mm"
    assert result.passed, result.qc_reason
