"""CPU registration with SimpleITK: multi-resolution rigid (Euler3D), optionally then affine,
Mattes mutual information, tumour/cavity excluded through metric masks.

SimpleITK images live in LPS+ and its transforms map FIXED physical points to MOVING ones;
:func:`engine.registration.geometry.ras_from_sitk_transform` turns the result into our
moving->fixed RAS ``matrix``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from engine.errors import RegistrationError
from engine.registration.geometry import LPS_FROM_RAS, ras_from_sitk_transform
from engine.registration.masks import DEFAULT_EXCLUSION_MARGIN_MM, keep_mask
from engine.registration.protocol import RegistrationResult, Stage
from engine.registration.qc import QcThresholds, evaluate
from engine.types import Volume


@dataclass(frozen=True, slots=True)
class SitkConfig:
    """Optimiser settings; the defaults were chosen by benchmarks/bench_registration.py."""

    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_mm: tuple[float, ...] = (2.0, 1.0, 0.0)
    histogram_bins: int = 32
    sampling_fraction: float = 0.05
    min_samples: int = 20_000  # small (e.g. 4 mm) images get a larger fraction, up to all voxels
    max_step_mm: float = 2.0
    min_step_mm: float = 1e-3
    rigid_iterations: int = 200
    affine_iterations: int = 100
    affine_levels: int = 2  # the affine refinement runs on the finest N levels only
    seed: int = 20260101


def to_sitk_image(volume: Volume, *, pixel_type: int = sitk.sitkFloat32) -> sitk.Image:
    """A SimpleITK image (LPS geometry) of a RAS :class:`Volume`; array [i, j, k] -> sitk [k, j, i]."""
    lps = LPS_FROM_RAS @ np.asarray(volume.affine, dtype=float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        msg = "Argument 'volume' must have an orthogonal affine (no shear) to become a SimpleITK image"
        raise ValueError(msg)
    numpy_type = np.uint8 if pixel_type == sitk.sitkUInt8 else np.float32
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array.transpose(2, 1, 0), dtype=numpy_type))
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    image.SetDirection(direction.ravel().tolist())
    return image


def transform_to_matrix(transform: sitk.Transform) -> np.ndarray:
    """4x4 of any affine-type SimpleITK transform, read off by mapping the origin and unit axes."""
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    out = np.eye(4)
    out[:3, 3] = origin
    for axis in range(3):
        unit = [0.0, 0.0, 0.0]
        unit[axis] = 1.0
        out[:3, axis] = np.asarray(transform.TransformPoint(tuple(unit))) - origin
    return out


class SimpleItkRegistrar:
    """Rigid (then optionally affine) registration with SimpleITK on the CPU."""

    def __init__(
        self,
        *,
        stage: Stage = Stage.RIGID,
        thresholds: QcThresholds = QcThresholds(),
        margin_mm: float = DEFAULT_EXCLUSION_MARGIN_MM,
        config: SitkConfig = SitkConfig(),
        initial: str = "moments",
    ) -> None:
        """``initial``: ``moments`` starts from the images' centres of mass aligned (scans of
        different sessions); ``identity`` from their DICOM geometry (series of one examination,
        which may cover different parts of the head)."""
        if initial not in ("moments", "identity"):
            msg = f"Argument 'initial' must be 'moments' or 'identity', got {initial!r}"
            raise ValueError(msg)
        if len(config.shrink_factors) != len(config.smoothing_mm):
            msg = "SitkConfig 'shrink_factors' and 'smoothing_mm' must have the same length"
            raise ValueError(msg)
        self.stage = Stage(stage)
        self.thresholds = thresholds
        self.margin_mm = margin_mm
        self.config = config
        self.initial = initial

    @property
    def method(self) -> str:
        return "sitk-mattes-rigid+affine" if self.stage is Stage.AFFINE else "sitk-mattes-rigid"

    def register(
        self,
        *,
        fixed: Volume,
        moving: Volume,
        fixed_mask: Volume | None = None,
        moving_mask: Volume | None = None,
    ) -> RegistrationResult:
        start = time.perf_counter()
        fixed_keep = keep_mask(image=fixed, labels=fixed_mask, margin_mm=self.margin_mm)
        moving_keep = keep_mask(image=moving, labels=moving_mask, margin_mm=self.margin_mm)
        f_img = to_sitk_image(fixed)
        m_img = to_sitk_image(moving)
        f_mask = _mask_image(fixed, fixed_keep)
        m_mask = _mask_image(moving, moving_keep)
        cfg = self.config
        try:
            if self.initial == "moments":
                initial = sitk.CenteredTransformInitializer(
                    f_img, m_img, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
                )
            else:  # rotate about the fixed field of view's centre, from the DICOM geometry
                initial = sitk.Euler3DTransform()
                initial.SetCenter(f_img.TransformContinuousIndexToPhysicalPoint(
                    [(n - 1) / 2.0 for n in f_img.GetSize()]))
            rigid, metric = self._run(
                f_img, m_img, f_mask, m_mask, initial, cfg.shrink_factors, cfg.smoothing_mm, cfg.rigid_iterations
            )
            final: sitk.Transform = rigid
            if self.stage is Stage.AFFINE:
                affine = sitk.AffineTransform(3)
                affine.SetCenter(rigid.GetCenter())
                affine.SetMatrix(rigid.GetMatrix())
                affine.SetTranslation(rigid.GetTranslation())
                n = max(1, min(cfg.affine_levels, len(cfg.shrink_factors)))
                final, metric = self._run(
                    f_img,
                    m_img,
                    f_mask,
                    m_mask,
                    affine,
                    cfg.shrink_factors[-n:],
                    cfg.smoothing_mm[-n:],
                    cfg.affine_iterations,
                )
        except RuntimeError as exc:
            raise RegistrationError(
                "SimpleITK could not register the pair",
                action="Check that both scans contain the head and overlap; the study is quarantined.",
                detail=str(exc),
            ) from exc
        matrix = ras_from_sitk_transform(transform_to_matrix(final))
        return evaluate(
            fixed=fixed,
            moving=moving,
            matrix=matrix,
            fixed_keep=fixed_keep,
            moving_keep=moving_keep,
            thresholds=self.thresholds,
            stage=self.stage,
            metric_name="mattes_mi",
            final_metric=metric,
            method=self.method,
            elapsed_s=time.perf_counter() - start,
        )

    def _run(
        self,
        f_img: sitk.Image,
        m_img: sitk.Image,
        f_mask: sitk.Image | None,
        m_mask: sitk.Image | None,
        initial: sitk.Transform,
        shrink: tuple[int, ...],
        smoothing: tuple[float, ...],
        iterations: int,
    ) -> tuple[sitk.Transform, float]:
        cfg = self.config
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=cfg.histogram_bins)
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        fraction = min(1.0, max(cfg.sampling_fraction, cfg.min_samples / max(1, f_img.GetNumberOfPixels())))
        reg.SetMetricSamplingPercentage(fraction, cfg.seed)
        if f_mask is not None:
            reg.SetMetricFixedMask(f_mask)
        if m_mask is not None:
            reg.SetMetricMovingMask(m_mask)
        reg.SetInterpolator(sitk.sitkLinear)
        # plain GradientDescent with a convergence window stops after ~10 iterations here
        # (errors of 5-10 mm measured); the regular-step variant converges to < 0.1 mm.
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=cfg.max_step_mm,
            minStep=cfg.min_step_mm,
            numberOfIterations=iterations,
            relaxationFactor=0.5,
            gradientMagnitudeTolerance=1e-8,
        )
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetShrinkFactorsPerLevel(list(shrink))
        reg.SetSmoothingSigmasPerLevel(list(smoothing))
        reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
        reg.SetInitialTransform(initial, inPlace=False)
        out = reg.Execute(f_img, m_img)
        if isinstance(out, sitk.CompositeTransform) and out.GetNumberOfTransforms() == 1:
            out = out.GetNthTransform(0)
        return out, float(reg.GetMetricValue())


def _mask_image(volume: Volume, keep: np.ndarray) -> sitk.Image | None:
    if keep.all():
        return None
    return to_sitk_image(Volume(array=keep.astype(np.uint8), affine=volume.affine), pixel_type=sitk.sitkUInt8)
