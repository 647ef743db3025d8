"""Registration with torch + MONAI: multi-resolution rigid (then optionally affine) alignment
that maximises MONAI's ``GlobalMutualInformationLoss`` (Parzen-window MI) with Adam.

Runs on CUDA when available, else on the CPU. The transform is optimised in world coordinates
(RAS mm) as ``T``: FIXED point -> MOVING point (the pull direction, as for resampling), with
``T(x) = L (x - c_fixed) + c_moving + t`` where ``L`` is a rotation (``exp`` of a skew matrix)
in the rigid stage and a free 3x3 in the affine stage, and ``c_*`` are intensity centroids (the
"moments" initialisation). Our ``matrix`` is ``inv(T)``.

Only a random sample of fixed voxels (outside the dilated tumour/cavity) is warped at each
level -- ``torch.nn.functional.grid_sample`` at those points rather than a whole-grid warp --
which is what makes each iteration cheap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from monai.losses import GlobalMutualInformationLoss

from engine.registration.masks import DEFAULT_EXCLUSION_MARGIN_MM, keep_mask
from engine.registration.protocol import RegistrationResult, Stage
from engine.registration.qc import QcThresholds, evaluate
from engine.torch_threads import torch_threads
from engine.types import Volume

#: rotation parameters are expressed as arc length (mm) at this radius, so one Adam step size fits all.
ROTATION_RADIUS_MM = 60.0


@dataclass(frozen=True, slots=True)
class TorchConfig:
    """Optimiser settings; the defaults were chosen by benchmarks/bench_registration.py."""

    shrink_factors: tuple[int, ...] = (4, 2, 1)
    rigid_iterations: tuple[int, ...] = (80, 50, 30)
    affine_iterations: tuple[int, ...] = (0, 50, 30)
    step_mm: tuple[float, ...] = (2.0, 0.5, 0.2)  # Adam learning rate per level, cosine-decayed 20x
    samples_per_level: int = 10_000
    samples_per_level_cuda: int = 400_000
    histogram_bins: int = 23
    #: torch threads while registering on the CPU (restored after; 0 leaves torch's setting). One
    #: thread: on the shared 2-core machine 2 threads were ~8x slower at 10k samples, not faster.
    cpu_threads: int = 1
    seed: int = 20260101


@dataclass(frozen=True, slots=True)
class _Level:
    fixed_points: torch.Tensor  # (3, N) fixed voxel indices of this level
    fixed_weights: torch.Tensor  # (1, N, bins) Parzen-window weights of the normalised fixed intensities there
    fixed_affine: torch.Tensor  # (4, 4) voxel -> world of the pooled fixed grid
    moving: torch.Tensor  # (1, 2, I, J, K) normalised moving image and its keep mask
    moving_inv_affine: torch.Tensor  # (4, 4) world -> voxel of the pooled moving grid


class TorchRegistrar:
    """Rigid (then optionally affine) registration with torch + MONAI, CUDA or CPU."""

    def __init__(
        self,
        *,
        stage: Stage = Stage.RIGID,
        thresholds: QcThresholds = QcThresholds(),
        margin_mm: float = DEFAULT_EXCLUSION_MARGIN_MM,
        device: str = "auto",
        config: TorchConfig = TorchConfig(),
    ) -> None:
        n = len(config.shrink_factors)
        if not (len(config.rigid_iterations) == len(config.affine_iterations) == len(config.step_mm) == n):
            msg = "TorchConfig per-level tuples must all have the length of 'shrink_factors'"
            raise ValueError(msg)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.stage = Stage(stage)
        self.thresholds = thresholds
        self.margin_mm = margin_mm
        self.config = config

    @property
    def method(self) -> str:
        stages = "rigid+affine" if self.stage is Stage.AFFINE else "rigid"
        return f"torch-monai-mi-{stages}-{self.device.type}"

    def register(
        self,
        *,
        fixed: Volume,
        moving: Volume,
        fixed_mask: Volume | None = None,
        moving_mask: Volume | None = None,
    ) -> RegistrationResult:
        narrow = self.device.type == "cpu" and self.config.cpu_threads > 0
        with torch_threads(self.config.cpu_threads if narrow else 0):
            return self._register(fixed=fixed, moving=moving, fixed_mask=fixed_mask, moving_mask=moving_mask)

    def _register(
        self, *, fixed: Volume, moving: Volume, fixed_mask: Volume | None, moving_mask: Volume | None
    ) -> RegistrationResult:
        start = time.perf_counter()
        fixed_keep = keep_mask(image=fixed, labels=fixed_mask, margin_mm=self.margin_mm)
        moving_keep = keep_mask(image=moving, labels=moving_mask, margin_mm=self.margin_mm)
        dev, dtype = self.device, torch.float32
        f_img = torch.as_tensor(_normalise(fixed.array), dtype=dtype, device=dev)[None, None]
        m_img = torch.as_tensor(_normalise(moving.array), dtype=dtype, device=dev)[None, None]
        f_keep = torch.as_tensor(fixed_keep, dtype=dtype, device=dev)[None, None]
        m_keep = torch.as_tensor(moving_keep, dtype=dtype, device=dev)[None, None]
        c_fixed = _centroid_mm(f_img * f_keep, fixed.affine, dev)
        c_moving = _centroid_mm(m_img * m_keep, moving.affine, dev)
        f_both, m_both = torch.cat([f_img, f_keep], dim=1), torch.cat([m_img, m_keep], dim=1)  # once, pooled per level
        loss_fn = GlobalMutualInformationLoss(num_bins=self.config.histogram_bins)
        generator = np.random.default_rng(self.config.seed)
        cap = self.config.samples_per_level_cuda if dev.type == "cuda" else self.config.samples_per_level

        rot = torch.zeros(3, dtype=torch.float64, device=dev, requires_grad=True)
        trans = torch.zeros(3, dtype=torch.float64, device=dev, requires_grad=True)
        lin_delta = torch.zeros(3, 3, dtype=torch.float64, device=dev, requires_grad=True)
        metric = float("nan")
        cfg = self.config
        for index, shrink in enumerate(cfg.shrink_factors):
            level = _make_level(
                fixed=fixed, moving=moving, f_both=f_both, m_both=m_both, shrink=shrink, cap=cap,
                generator=generator, loss_fn=loss_fn,
            )  # fmt: skip

            def transform(affine: bool) -> torch.Tensor:
                linear = _rotation(rot / ROTATION_RADIUS_MM)
                if affine:
                    linear = linear.detach() + lin_delta / ROTATION_RADIUS_MM
                return _fixed_to_moving(linear, trans, c_fixed, c_moving)

            metric = _optimise(
                level, [rot, trans], lambda: transform(False), loss_fn, cfg.rigid_iterations[index], cfg.step_mm[index]
            )
        if self.stage is Stage.AFFINE:
            for index, shrink in enumerate(cfg.shrink_factors):
                if cfg.affine_iterations[index] == 0:
                    continue
                level = _make_level(
                    fixed=fixed, moving=moving, f_both=f_both, m_both=m_both, shrink=shrink, cap=cap,
                    generator=generator, loss_fn=loss_fn,
                )  # fmt: skip
                metric = _optimise(
                    level, [lin_delta, trans], lambda: transform(True), loss_fn,
                    cfg.affine_iterations[index], cfg.step_mm[index],
                )  # fmt: skip
        with torch.no_grad():
            fixed_to_moving = transform(self.stage is Stage.AFFINE).cpu().numpy()
        matrix = np.linalg.inv(fixed_to_moving)
        return evaluate(
            fixed=fixed,
            moving=moving,
            matrix=matrix,
            fixed_keep=fixed_keep,
            moving_keep=moving_keep,
            thresholds=self.thresholds,
            stage=self.stage,
            metric_name="monai_global_mi_loss",
            final_metric=metric,
            method=self.method,
            elapsed_s=time.perf_counter() - start,
        )


def _optimise(level: _Level, params: list[torch.Tensor], transform, loss_fn, iterations: int, step_mm: float) -> float:  # noqa: ANN001
    if iterations <= 0:
        return float("nan")
    optimiser = torch.optim.Adam(params, lr=step_mm)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=iterations, eta_min=step_mm / 20)
    value = float("nan")
    for _ in range(iterations):
        optimiser.zero_grad()
        loss = _level_loss(level, transform(), loss_fn)
        loss.backward()
        optimiser.step()
        schedule.step()
        value = float(loss.detach())
    return value


def _level_loss(level: _Level, fixed_to_moving: torch.Tensor, loss_fn: GlobalMutualInformationLoss) -> torch.Tensor:
    theta = (level.moving_inv_affine @ fixed_to_moving @ level.fixed_affine).to(level.fixed_points.dtype)
    coords = theta[:3, :3] @ level.fixed_points + theta[:3, 3:4]  # (3, N) moving voxel indices
    sizes = torch.tensor(level.moving.shape[2:], dtype=coords.dtype, device=coords.device)[:, None]
    normalised = 2.0 * coords / (sizes - 1.0).clamp(min=1.0) - 1.0
    grid = normalised.flip(0).T.reshape(1, -1, 1, 1, 3).to(level.moving.dtype)  # grid_sample wants (x, y, z) = (k, j, i)
    sampled = F.grid_sample(level.moving, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    values = sampled[0, 0, :, 0, 0]
    usable = sampled[0, 1, :, 0, 0].detach() > 0.5
    if int(usable.sum()) < 64:
        return values.sum() * 0.0  # no overlap: no gradient to follow
    return mutual_information_loss(loss_fn, values[usable].reshape(1, 1, -1), level.fixed_weights[:, usable])


def mutual_information_loss(loss_fn: GlobalMutualInformationLoss, pred: torch.Tensor,
                            target_weights: torch.Tensor) -> torch.Tensor:
    """``loss_fn(pred, target)`` (MONAI's Gaussian Parzen MI, mean reduction) from the target's
    Parzen weights ``loss_fn.parzen_windowing_gaussian(target)[0]``, computed once by the caller.

    The fixed samples' intensities do not change between iterations, so their weights (an ``exp``
    over samples x bins, a third of the loss's forward pass) need not be recomputed at each; the
    rest is MONAI's ``forward``, line for line, and gives the same value and gradient bit for bit
    (``tests/engine/test_registration_torch.py``).
    """
    if loss_fn.kernel_type != "gaussian" or loss_fn.reduction != "mean":
        msg = "mutual_information_loss reproduces only the Gaussian kernel with mean reduction"
        raise ValueError(msg)
    wa, pa = loss_fn.parzen_windowing_gaussian(pred)
    wb = target_weights
    pb = torch.mean(wb, dim=-2, keepdim=True)
    pab = torch.bmm(wa.permute(0, 2, 1), wb.to(wa)).div(wa.shape[1])
    papb = torch.bmm(pa.permute(0, 2, 1), pb.to(pa))
    mi = torch.sum(pab * torch.log((pab + loss_fn.smooth_nr) / (papb + loss_fn.smooth_dr) + loss_fn.smooth_dr),
                   dim=(1, 2))
    return torch.mean(mi).neg()


def _make_level(
    *,
    fixed: Volume,
    moving: Volume,
    f_both: torch.Tensor,
    m_both: torch.Tensor,
    shrink: int,
    cap: int,
    generator: np.random.Generator,
    loss_fn: GlobalMutualInformationLoss,
) -> _Level:
    """``f_both``, ``m_both``: (1, 2, I, J, K) normalised image and keep mask of each scan."""
    base = min(min(fixed.spacing_mm), min(moving.spacing_mm))
    f_pooled, f_affine = _pool(f_both, fixed.affine, fixed.spacing_mm, shrink * base)
    m_pooled, m_affine = _pool(m_both, moving.affine, moving.spacing_mm, shrink * base)
    usable = torch.nonzero(f_pooled[0, 1].reshape(-1) > 0.99).reshape(-1).cpu()
    if usable.numel() > cap:
        # without replacement, in O(cap): a full permutation of millions of voxels (torch.randperm)
        # was a third of a CPU registration's time
        usable = usable[torch.from_numpy(generator.choice(usable.numel(), size=cap, replace=False))]
    dev = f_both.device
    usable = usable.to(dev)
    shape = f_pooled.shape[2:]
    points = torch.stack(torch.unravel_index(usable, shape)).to(torch.float64)
    values = f_pooled[0, 0].reshape(-1)[usable].reshape(1, 1, -1)
    return _Level(
        fixed_points=points,
        fixed_weights=loss_fn.parzen_windowing_gaussian(values)[0],  # fixed samples: weights never change
        fixed_affine=torch.as_tensor(f_affine, dtype=torch.float64, device=dev),
        moving=m_pooled,
        moving_inv_affine=torch.as_tensor(np.linalg.inv(m_affine), dtype=torch.float64, device=dev),
    )


def _pool(image: torch.Tensor, affine: np.ndarray, spacing_mm: tuple[float, ...], target_mm: float):  # noqa: ANN202
    """Average-pool to about ``target_mm`` per axis; returns the pooled image and its affine."""
    factors = [max(1, round(target_mm / s)) for s in spacing_mm]
    factors = [min(f, n) for f, n in zip(factors, image.shape[2:], strict=True)]
    if factors == [1, 1, 1]:
        return image, np.asarray(affine, dtype=float)
    pooled = F.avg_pool3d(image, kernel_size=factors, stride=factors)
    scale = np.eye(4)
    scale[:3, :3] = np.diag(factors)
    scale[:3, 3] = (np.asarray(factors, dtype=float) - 1.0) / 2.0
    return pooled, np.asarray(affine, dtype=float) @ scale


def _normalise(array: np.ndarray) -> np.ndarray:
    """Intensities to [0, 1] between the 0.5th and 99.5th percentiles (MONAI's MI bins span [0, 1])."""
    data = np.asarray(array, dtype=np.float32)
    lo, hi = np.percentile(data, [0.5, 99.5])
    if hi <= lo:
        return np.zeros_like(data)
    return np.clip((data - lo) / (hi - lo), 0.0, 1.0)


def _centroid_mm(weights: torch.Tensor, affine: np.ndarray, device: torch.device) -> torch.Tensor:
    w = weights[0, 0].to(torch.float64)
    total = w.sum()
    if float(total) <= 0:
        shape = torch.tensor(w.shape, dtype=torch.float64, device=device)
        index = (shape - 1.0) / 2.0
    else:  # the weighted mean index per axis, from the weights' marginal along that axis
        index = torch.stack([
            (w.sum(dim=[d for d in range(3) if d != axis]) * torch.arange(n, dtype=torch.float64, device=device)).sum()
            for axis, n in enumerate(w.shape)
        ]) / total
    a = torch.as_tensor(affine, dtype=torch.float64, device=device)
    return a[:3, :3] @ index + a[:3, 3]


def _rotation(vector: torch.Tensor) -> torch.Tensor:
    zero = vector.new_zeros(())
    skew = torch.stack(
        [
            torch.stack([zero, -vector[2], vector[1]]),
            torch.stack([vector[2], zero, -vector[0]]),
            torch.stack([-vector[1], vector[0], zero]),
        ]
    )
    return torch.linalg.matrix_exp(skew)


def _fixed_to_moving(linear: torch.Tensor, trans: torch.Tensor, c_fixed: torch.Tensor, c_moving: torch.Tensor) -> torch.Tensor:
    out = torch.eye(4, dtype=torch.float64, device=linear.device)
    top = torch.cat([linear, (c_moving + trans - linear @ c_fixed)[:, None]], dim=1)
    return torch.cat([top, out[3:]], dim=0)

