"""Conventions of engine.registration: matrices, SimpleITK LPS <-> RAS, resampling, masks, QC.

No optimisation here: every expected value follows from geometry.
"""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
import SimpleITK as sitk

from engine.errors import ConfigError, RegistrationError
from engine.registration import (
    QcThresholds,
    RegistrationResult,
    Stage,
    keep_mask,
    make_registrar,
    require_passed,
    resample_to,
)
from engine.registration import geometry, qc
from engine.registration.sitk_registrar import SimpleItkRegistrar, to_sitk_image, transform_to_matrix
from engine.settings import RegistrationSettings
from engine.types import Volume


@pytest.mark.parametrize("module", [geometry, qc], ids=lambda m: m.__name__)
def test_doctests(module) -> None:  # noqa: ANN001
    failures, tried = doctest.testmod(module, raise_on_error=False, verbose=False)[:2]
    assert tried > 0
    assert failures == 0


def _ramp(shape=(12, 10, 8), affine=None) -> Volume:  # noqa: ANN001
    i, j, k = np.indices(shape, dtype=np.float32)
    return Volume(array=i + 10 * j + 100 * k, affine=np.eye(4) if affine is None else affine)


def _oblique_affine() -> np.ndarray:
    """DICOM-like axial grid (i toward L, j toward P), 1 x 1.5 x 3 mm, tilted 10 deg."""
    rot = geometry.rigid_matrix(rotation_deg=(10, 0, 0))[:3, :3]
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-1.0, -1.5, 3.0])
    affine[:3, 3] = [20.0, 30.0, -40.0]
    return affine


def test_resample_identity_on_shifted_grid_moves_array_by_whole_voxels() -> None:
    reference = _ramp()
    shifted = np.eye(4)
    shifted[0, 3] = 2.0  # moving voxel 0 sits at reference voxel 2
    moving = _ramp(affine=shifted)
    out = resample_to(reference=reference, moving=moving, matrix=np.eye(4))
    np.testing.assert_allclose(out.array[2:], moving.array[:-2], atol=1e-5)
    np.testing.assert_array_equal(out.array[:2], 0.0)


def test_resample_translation_matrix_moves_anatomy_toward_fixed() -> None:
    """matrix maps moving -> fixed: a structure at moving x=3 must land at fixed x=3+2."""
    vol = Volume(array=np.zeros((10, 4, 4), np.uint8), affine=np.eye(4))
    vol.array[3] = 4
    out = resample_to(
        reference=vol, moving=vol, matrix=geometry.rigid_matrix(translation_mm=(2, 0, 0)), interpolation="nearest"
    )
    assert out.array.dtype == np.uint8
    assert np.flatnonzero(out.array[:, 1, 1]).tolist() == [5]


def test_sitk_image_geometry_matches_volume_affine() -> None:
    vol = _ramp(affine=_oblique_affine())
    image = to_sitk_image(vol)
    for index in [(0, 0, 0), (3, 2, 1), (11, 9, 7)]:
        lps = np.asarray(image.TransformIndexToPhysicalPoint(index))
        ras = (vol.affine @ [*index, 1.0])[:3]
        np.testing.assert_allclose(lps, ras * [-1, -1, 1], atol=1e-9)
        assert image[index] == pytest.approx(float(vol.array[index]))


def test_sitk_transform_conversion_agrees_with_sitk_resampling() -> None:
    """A transform applied by SimpleITK's own resampler == resample_to with our converted matrix."""
    fixed = _ramp(shape=(20, 18, 12), affine=_oblique_affine())
    rng = np.random.default_rng(3)
    moving = Volume(array=rng.random((16, 16, 10)).astype(np.float32), affine=np.diag([1.5, 1.5, 2.5, 1.0]))
    moving.affine[:3, 3] = [-5.0, 0.0, -50.0]
    euler = sitk.Euler3DTransform()
    euler.SetCenter((1.0, -2.0, 3.0))
    euler.SetRotation(0.1, -0.05, 0.2)
    euler.SetTranslation((2.0, -3.0, 1.5))
    expected = sitk.GetArrayFromImage(
        sitk.Resample(to_sitk_image(moving), to_sitk_image(fixed), euler, sitk.sitkLinear, 0.0)
    ).transpose(2, 1, 0)
    matrix = geometry.ras_from_sitk_transform(transform_to_matrix(euler))
    ours = resample_to(reference=fixed, moving=moving, matrix=matrix).array
    # compare where the sample falls inside the moving grid (edge handling differs by design)
    vox = geometry.voxel_map(reference_affine=fixed.affine, moving_affine=moving.affine, matrix=matrix)
    index = np.indices(fixed.array.shape).reshape(3, -1)
    coords = vox[:3, :3] @ index + vox[:3, 3:4]
    interior = np.all((coords >= 0.01) & (coords <= np.array(moving.array.shape)[:, None] - 1.01), axis=0)
    assert interior.sum() > 500
    np.testing.assert_allclose(ours.ravel()[interior], expected.ravel()[interior], atol=1e-4)


def test_displacement_error_of_a_pure_rotation_grows_with_radius() -> None:
    truth = geometry.rigid_matrix(rotation_deg=(0, 0, 1))
    points = np.array([[0.0, 0, 0], [100.0, 0, 0]])
    err = geometry.displacement_error_mm(estimated=np.eye(4), truth=truth, points_mm=points)
    assert err[0] == pytest.approx(0.0, abs=1e-12)
    assert err[1] == pytest.approx(2 * 100 * np.sin(np.deg2rad(0.5)))


def test_keep_mask_excludes_lesion_plus_margin_in_millimetres() -> None:
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    image = Volume(array=np.zeros((21, 21, 21), np.float32), affine=affine)
    labels = np.zeros((21, 21, 21), np.uint8)
    labels[10, 10, 10] = 3
    keep = keep_mask(image=image, labels=Volume(array=labels, affine=affine), margin_mm=3.0)
    assert np.flatnonzero(~keep[:, 10, 10]).tolist() == [7, 8, 9, 10, 11, 12, 13]  # 3 mm at 1 mm
    assert np.flatnonzero(~keep[10, 10, :]).tolist() == [9, 10, 11]  # 3 mm at 2 mm: one slice
    assert keep_mask(image=image, labels=None).all()


def test_keep_mask_refuses_labels_on_another_grid() -> None:
    image = Volume(array=np.zeros((4, 4, 4)), affine=np.eye(4))
    with pytest.raises(ValueError, match="must be on the image grid"):
        keep_mask(image=image, labels=Volume(array=np.zeros((4, 4, 5)), affine=np.eye(4)))


def test_entropy_correlation_separates_related_from_independent() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(50_000)
    assert qc.entropy_correlation(a, 3 - 2 * a) > 0.95  # linear, inverted (another contrast)
    assert qc.entropy_correlation(a, a**2) > 0.7  # monotone
    assert qc.entropy_correlation(a, rng.random(50_000)) < 0.02


OK = dict(rotation_deg=5.0, translation_mm=10.0, scale_dev=0.0, similarity=0.3, overlap=0.99)


@pytest.mark.parametrize(
    ("change", "passed", "reason"),
    [
        ({}, True, "QC passed"),
        ({"rotation_deg": 90.0}, False, "rotation 90.0 deg exceeds 20 deg"),
        ({"translation_mm": 55.0}, False, "translation 55.0 mm exceeds 40 mm"),
        ({"scale_dev": 0.2}, False, "scaling 20.0 % exceeds 10 %"),
        ({"similarity": 0.02}, False, "similarity 0.020 is below 0.15"),
        ({"overlap": 0.4}, False, "overlap 40 % is below 80 %"),
        ({"similarity": float("nan")}, False, "similarity nan is below"),
    ],
    ids=["plausible", "head turned 90 deg", "shift beyond 4 cm", "scaling", "dissimilar", "little overlap", "nan"],
)
def test_qc_verdict(change: dict, passed: bool, reason: str) -> None:
    ok, text = qc.judge(**{**OK, **change}, thresholds=QcThresholds())
    assert ok is passed
    assert reason in text


def _result(*, passed: bool) -> RegistrationResult:
    return RegistrationResult(
        matrix=np.eye(4), stage=Stage.RIGID, metric_name="mattes_mi", final_metric=-0.5, similarity=0.3,
        overlap=1.0, rotation_deg=0.0, translation_mm=0.0, scale_deviation=0.0, passed=passed,
        qc_reason="QC failed: rotation 90.0 deg exceeds 20 deg", method="test", elapsed_s=0.1,
    )  # fmt: skip


def test_failed_result_is_raised_for_quarantine() -> None:
    with pytest.raises(RegistrationError, match="failed its quality check: QC failed: rotation 90.0") as info:
        require_passed(_result(passed=False), exam="patient P-0001, MRI 2025-01-02")
    assert info.value.exam == "patient P-0001, MRI 2025-01-02"
    assert json.loads(info.value.detail)["passed"] is False
    assert require_passed(_result(passed=True)).passed


def test_result_is_validated_and_serialisable() -> None:
    record = json.loads(json.dumps(_result(passed=True).to_dict()))
    assert record["matrix"] == np.eye(4).tolist()
    assert "moving RAS mm -> fixed RAS mm" in record["matrix_direction"]
    with pytest.raises(ValueError, match="4x4 homogeneous"):
        RegistrationResult(**_fields(matrix=np.ones((4, 4))))
    with pytest.raises(ValueError, match="finite"):
        RegistrationResult(**_fields(matrix=np.diag([np.nan, 1.0, 1.0, 1.0])))


def _fields(**change: object) -> dict:
    base = _result(passed=True)
    names = RegistrationResult.__dataclass_fields__
    return {**{n: getattr(base, n) for n in names}, **change}


def test_make_registrar_picks_by_device() -> None:
    auto = RegistrationSettings()
    torch_cpu = make_registrar(auto, cuda_available=False)
    assert type(torch_cpu).__name__ == "TorchRegistrar"
    assert torch_cpu.device.type == "cpu"
    assert make_registrar(auto, cuda_available=True).device.type == "cuda"
    assert isinstance(make_registrar(RegistrationSettings(device="cpu")), SimpleItkRegistrar)
    assert isinstance(make_registrar(RegistrationSettings(device="sitk")), SimpleItkRegistrar)
    strict = make_registrar(RegistrationSettings(device="sitk", stage="affine", max_rotation_deg=10.0))
    assert strict.stage is Stage.AFFINE
    assert strict.thresholds.max_rotation_deg == 10.0
    with pytest.raises(ConfigError, match="no CUDA device"):
        make_registrar(RegistrationSettings(device="cuda"), cuda_available=False)
    with pytest.raises(ConfigError, match="registration.device has an invalid value 'gpu'"):
        make_registrar(RegistrationSettings(device="gpu"))
    with pytest.raises(ConfigError, match="registration.stage has an invalid value"):
        make_registrar(RegistrationSettings(stage="bspline"))
