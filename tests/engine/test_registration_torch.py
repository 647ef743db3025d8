"""Torch + MONAI registrar. No GPU in CI: the CPU test is small (4 mm, few iterations, one
thread); the CUDA test runs only where a GPU is present and is skipped otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.registration import Stage
from engine.registration.geometry import displacement_error_mm, rigid_matrix, volume_center_mm
from engine.registration.phantom import Template, acquire, load_template, paint_sphere
from engine.registration.torch_registrar import TorchConfig, TorchRegistrar
from engine.types import Label

SPACING_MM = 4.0
SMALL_CPU = TorchConfig(
    rigid_iterations=(60, 40, 20), affine_iterations=(0, 30, 20), samples_per_level=5_000, cpu_threads=1
)


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(spacing_mm=SPACING_MM)


def _pair(template: Template, *, seed: int):  # noqa: ANN202
    center = volume_center_mm(template.image.affine, template.image.array.shape)
    truth = rigid_matrix(rotation_deg=(-4.0, 3.0, 6.0), translation_mm=(-5.0, 6.0, 3.0), center_mm=center)
    lesion = center + np.array([-25.0, 5.0, 10.0])
    fixed, fixed_labels = paint_sphere(
        image=template.image, labels=None, center_mm=lesion, radius_mm=6.0, intensity=1.0, label=Label.ET
    )
    later, later_labels = paint_sphere(
        image=template.image, labels=None, center_mm=lesion, radius_mm=20.0, intensity=1.0, label=Label.ET
    )
    moving, moving_labels = acquire(
        image=later, labels=later_labels, truth=truth, spacing_mm=(SPACING_MM, SPACING_MM, 6.0),
        extent_mm=(180.0, 210.0, 170.0), noise_sd=0.03, rng=np.random.default_rng(seed), dicom_axial=True,
    )  # fmt: skip
    return fixed, fixed_labels, moving, moving_labels, truth


def test_cpu_recovers_known_motion_with_tumour_growth_masked(template: Template) -> None:
    fixed, fixed_labels, moving, moving_labels, truth = _pair(template, seed=11)
    registrar = TorchRegistrar(device="cpu", config=SMALL_CPU)
    threads_before = torch.get_num_threads()
    result = registrar.register(fixed=fixed, moving=moving, fixed_mask=fixed_labels, moving_mask=moving_labels)
    assert torch.get_num_threads() == threads_before
    err = displacement_error_mm(estimated=result.matrix, truth=truth, points_mm=template.brain_points_mm())
    assert err.mean() <= 0.5, f"mean error {err.mean():.3f} mm"
    assert err.max() <= 1.0, f"max error {err.max():.3f} mm"
    assert result.passed, result.qc_reason
    assert result.method == "torch-monai-mi-rigid-cpu"
    assert result.metric_name == "monai_global_mi_loss"
    assert result.final_metric < 0


def test_cpu_affine_stage_runs_and_stays_close(template: Template) -> None:
    fixed, fixed_labels, moving, moving_labels, truth = _pair(template, seed=12)
    result = TorchRegistrar(device="cpu", stage=Stage.AFFINE, config=SMALL_CPU).register(
        fixed=fixed, moving=moving, fixed_mask=fixed_labels, moving_mask=moving_labels
    )
    err = displacement_error_mm(estimated=result.matrix, truth=truth, points_mm=template.brain_points_mm())
    assert result.stage is Stage.AFFINE
    # 12 parameters fitted to 5,000 samples drift more than 6 do (0.55 mm mean measured here);
    # the 0.5/1 mm targets are for the default rigid stage, this bounds the opt-in affine one.
    assert err.mean() <= 1.0, f"mean error {err.mean():.3f} mm"
    assert err.max() <= 2.0, f"max error {err.max():.3f} mm"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; none on this machine")
def test_cuda_recovers_known_motion(template: Template) -> None:
    fixed, fixed_labels, moving, moving_labels, truth = _pair(template, seed=13)
    result = TorchRegistrar(device="cuda").register(
        fixed=fixed, moving=moving, fixed_mask=fixed_labels, moving_mask=moving_labels
    )
    err = displacement_error_mm(estimated=result.matrix, truth=truth, points_mm=template.brain_points_mm())
    assert result.method.endswith("-cuda")
    assert err.mean() <= 0.5
    assert err.max() <= 1.0
    assert result.passed, result.qc_reason


def test_overlapping_cpu_registrations_restore_torch_threads_once_the_last_ends() -> None:
    """Two registrations side by side (the worker's threads): the first narrows torch to one
    thread, the last one out restores the setting, whatever order they end in."""
    import torch

    from engine.torch_threads import torch_threads as _torch_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        first, second = _torch_threads(1), _torch_threads(1)
        first.__enter__()
        second.__enter__()
        assert torch.get_num_threads() == 1
        first.__exit__(None, None, None)  # the first to start ends first: the other still runs
        assert torch.get_num_threads() == 1
        second.__exit__(None, None, None)
        assert torch.get_num_threads() == 2
        with _torch_threads(0):  # 0: torch's setting untouched
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_mutual_information_from_cached_fixed_weights_is_monais_loss_bit_for_bit() -> None:
    """The registrar computes the fixed samples' Parzen weights once per level; the loss and its
    gradient must still be exactly MONAI's ``GlobalMutualInformationLoss`` on the same samples,
    also when some samples fell outside the moving scan (a subset of the cached weights)."""
    from monai.losses import GlobalMutualInformationLoss

    from engine.registration.torch_registrar import mutual_information_loss

    generator = torch.Generator().manual_seed(3)
    loss_fn = GlobalMutualInformationLoss(num_bins=23)
    fixed = torch.rand(1, 1, 10_000, generator=generator)
    weights = loss_fn.parzen_windowing_gaussian(fixed)[0]
    usable = torch.rand(10_000, generator=generator) > 0.1
    for keep in (torch.ones(10_000, dtype=torch.bool), usable):
        moving = torch.rand(1, 1, int(keep.sum()), generator=generator, dtype=torch.float32)
        ours_in = moving.clone().requires_grad_(True)
        theirs_in = moving.clone().requires_grad_(True)
        ours = mutual_information_loss(loss_fn, ours_in, weights[:, keep])
        theirs = loss_fn(theirs_in, fixed[..., keep])
        ours.backward()
        theirs.backward()
        assert torch.equal(ours, theirs)
        assert torch.equal(ours_in.grad, theirs_in.grad)
    with pytest.raises(ValueError, match="Gaussian kernel"):
        mutual_information_loss(GlobalMutualInformationLoss(kernel_type="b-spline"), fixed, weights)


def test_intensity_centroid_is_the_weighted_mean_voxel_in_world_millimetres() -> None:
    from engine.registration.torch_registrar import _centroid_mm

    rng = np.random.default_rng(4)
    weights = rng.random((7, 5, 6))
    affine = np.array([[2.0, 0, 0, -10], [0, 1.5, 0, 4], [0, 0, 3.0, 1], [0, 0, 0, 1]])
    index = np.indices(weights.shape).reshape(3, -1) @ weights.ravel() / weights.sum()
    expected = affine[:3, :3] @ index + affine[:3, 3]
    got = _centroid_mm(torch.as_tensor(weights)[None, None], affine, torch.device("cpu")).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    empty = _centroid_mm(torch.zeros(1, 1, 7, 5, 6), affine, torch.device("cpu")).numpy()
    np.testing.assert_allclose(empty, affine[:3, :3] @ [3.0, 2.0, 2.5] + affine[:3, 3])
