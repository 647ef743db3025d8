"""Training augmentations: spatial, wide domain randomisation and modality dropout.

The model will meet scanners, contrasts, noise levels, resolutions and heads it never saw, so
every case is pushed far beyond what the synthetic generator's defaults produce:

* spatial (MONAI): random 64^3 patch (tumour-biased, class-balanced over the labels present), flips, rotation +-15 deg, scale +-15 %,
  occasional elastic deformation; the soft class-fraction targets follow bilinearly;
* working scale (optional, ``zoom_range``): a smaller crop resized up to the patch, so cases cached
  on one grid (1 mm) are seen at the scale of a finer working grid (0.8 mm: zoom 1.25);
* contrast, per channel: random gamma 0.5-2.0, histogram shift, multiplicative bias field;
* resolution: anisotropic blur + downsample/upsample along a random axis (thick-slice studies,
  2-3x the working spacing) or isotropic Gaussian smoothing;
* noise: Gaussian noise up to 8 % of the channel's 99th percentile;
* modality dropout: a channel set to zero (as a missing sequence is at inference time).

Normalisation after the intensity changes is the inference one: a z-score with the statistics of
the *whole head*, not of the patch. The case's head voxels on a coarse lattice
(:func:`engine.modelling.dataset.head_sample`) go through the same per-voxel intensity
changes as the patch (scaling, gamma, histogram shift and noise, applied to both at once so the
mapping is the same), and their mean and standard deviation normalise the patch. A tumour-centred
64^3 patch has other statistics than the head (at 1 mm it is mostly tumour and oedema), and
normalising with them taught the network other intensities than inference shows it.
Every random draw comes from one ``numpy.random.Generator`` so a step is reproducible from the
seed and the step number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.modelling.dataset import soft_fractions
from engine.segmentation.preprocess import normalise_channels

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, slots=True)
class AugmentationSettings:
    patch_vox: tuple[int, int, int] = (64, 64, 64)
    tumour_centred_p: float = 0.7
    affine_p: float = 0.35
    elastic_p: float = 0.05
    gamma_range: tuple[float, float] = (0.5, 2.0)
    bias_p: float = 0.5
    histogram_shift_p: float = 0.3
    low_resolution_p: float = 0.3
    smooth_p: float = 0.15
    noise_p: float = 0.5
    max_noise_fraction: float = 0.08
    modality_dropout_p: float = 0.35
    #: each patch is a crop of ``patch_vox / zoom`` voxels resized (trilinear; head nearest) up to
    #: ``patch_vox``, zoom drawn uniformly from this range: the cached grid seen at the scale of a
    #: finer working grid. (1, 1), the default, is no zoom and draws nothing from the generator
    #: (earlier recipes keep their random stream). Why: 0.3.0's weights were trained on the 1 mm
    #: grid and run at 0.8 mm (0.3.1), 1.25x outside the scale they were trained at.
    zoom_range: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        """Refuse settings that would silently train on something else than asked (a chance
        outside [0, 1] acts as 0 or 1 under ``rng.random() < p``)."""
        chances = ("tumour_centred_p", "affine_p", "elastic_p", "bias_p", "histogram_shift_p",
                   "low_resolution_p", "smooth_p", "noise_p", "modality_dropout_p")
        outside = [f"{name}={getattr(self, name)}" for name in chances if not 0.0 <= getattr(self, name) <= 1.0]
        if outside:
            msg = f"augmentation chances must lie in [0, 1]: {', '.join(outside)}"
            raise ValueError(msg)
        if len(self.patch_vox) != 3 or min(self.patch_vox) < 1:
            msg = f"patch_vox must be three positive sizes, not {self.patch_vox!r}"
            raise ValueError(msg)
        low, high = self.gamma_range
        if not 0.0 < low <= high:
            msg = f"gamma_range must be (low, high) with 0 < low <= high, not {self.gamma_range!r}"
            raise ValueError(msg)
        if self.max_noise_fraction < 0:
            msg = f"max_noise_fraction must not be negative, not {self.max_noise_fraction}"
            raise ValueError(msg)
        if len(self.zoom_range) != 2 or not 0.0 < self.zoom_range[0] <= self.zoom_range[1]:
            msg = f"zoom_range must be (low, high) with 0 < low <= high, not {self.zoom_range!r}"
            raise ValueError(msg)


#: relative chance that a tumour-centred patch is centred on each label present (NETC, SNFH, ET,
#: RC): class-balanced like nnU-Net's foreground sampling, with the thin enhancing rim, the
#: hardest and clinically most important region, drawn twice as often.
CENTRE_LABEL_WEIGHTS: dict[int, float] = {1: 1.0, 2: 1.0, 3: 2.0, 4: 1.0}


def _patch_slices(labels: np.ndarray, patch: tuple[int, int, int], *, centred: bool, rng: np.random.Generator) -> tuple[slice, ...]:
    shape = labels.shape
    if centred and labels.any():
        present = [k for k in CENTRE_LABEL_WEIGHTS if np.any(labels == k)]
        weights = np.array([CENTRE_LABEL_WEIGHTS[k] for k in present])
        label = present[int(rng.choice(len(present), p=weights / weights.sum()))]
        points = np.argwhere(labels == label)
        centre = points[rng.integers(len(points))]
    else:
        centre = np.array([rng.integers(0, s) for s in shape])
    starts = [int(np.clip(c - p // 2 + rng.integers(-p // 6, p // 6 + 1), 0, max(s - p, 0))) for c, p, s in zip(centre, patch, shape, strict=True)]
    return tuple(slice(st, st + p) for st, p in zip(starts, patch, strict=True))


def random_patch(
    image: np.ndarray, labels: np.ndarray, head: np.ndarray, soft: np.ndarray, *, patch_vox: tuple[int, int, int],
    centred: bool, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``patch_vox`` crop of image, head and soft targets (zero-padded when the case is smaller;
    padded target voxels are background)."""
    pad = [(0, max(p - s, 0)) for p, s in zip(patch_vox, labels.shape, strict=True)]
    if any(after for _, after in pad):
        image = np.pad(image, [(0, 0), *pad])
        labels = np.pad(labels, pad)
        head = np.pad(head, pad)
        soft = np.pad(soft, [(0, 0), *pad])  # all-zero fractions: background (soft_fractions)
    sl = _patch_slices(labels, patch_vox, centred=centred, rng=rng)
    # copies: the cached arrays may be read-only memory maps
    return np.array(image[(slice(None), *sl)]), np.array(head[sl], dtype=bool), np.array(soft[(slice(None), *sl)])


def draw_zoom(s: AugmentationSettings, rng: np.random.Generator) -> float:
    """The patch's zoom: fixed when the range is one value (no draw), else uniform in it."""
    low, high = s.zoom_range
    return float(low) if low == high else float(rng.uniform(low, high))


def zoomed_crop_size(patch_vox: tuple[int, int, int], zoom: float) -> tuple[int, int, int]:
    """Voxels per axis of the crop that ``zoom`` resizes to ``patch_vox`` (at least 2).

    >>> zoomed_crop_size((64, 64, 64), 1.25)
    (51, 51, 51)
    """
    return tuple(max(int(round(p / zoom)), 2) for p in patch_vox)  # type: ignore[return-value]


def zoom_patch(
    image: np.ndarray, head: np.ndarray, soft: np.ndarray, *, patch_vox: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize a crop (image (C, ...), head, float soft fractions (K, ...)) to ``patch_vox``: image
    and fractions trilinear when enlarged, area-averaged when shrunk (fractions renormalised), head
    nearest."""
    import torch
    import torch.nn.functional as F

    if tuple(head.shape) == tuple(patch_vox):
        return image, head, soft

    # trilinear up (zoom > 1); area-averaging down (zoom < 1), which does not alias
    up = all(p >= s for p, s in zip(patch_vox, head.shape, strict=True))

    def tri(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
        if up:
            return F.interpolate(t, size=tuple(patch_vox), mode="trilinear", align_corners=False)[0].numpy()
        return F.interpolate(t, size=tuple(patch_vox), mode="area")[0].numpy()

    soft = np.clip(tri(soft), 0.0, None)
    soft = soft / np.maximum(soft.sum(0, keepdims=True), 1e-6)
    h = torch.from_numpy(np.ascontiguousarray(head, dtype=np.float32))[None, None]
    head = F.interpolate(h, size=tuple(patch_vox), mode="nearest")[0, 0].numpy() > 0.5
    return tri(image), head, soft


def _spatial(image: torch.Tensor, soft: torch.Tensor, head: torch.Tensor, *, s: AugmentationSettings, rng: np.random.Generator):  # noqa: ANN202
    """Random affine / elastic / flips, applied alike to image, soft targets (bilinear) and head."""
    import torch
    from monai.transforms import Rand3DElasticd, RandAffined

    data = {"image": image, "soft": soft, "head": head[None].float()}
    keys = ("image", "soft", "head")
    modes = ("bilinear", "bilinear", "nearest")
    if rng.random() < s.affine_p:
        t = RandAffined(keys=keys, prob=1.0, rotate_range=(0.26, 0.26, 0.26), scale_range=(0.15, 0.15, 0.15),
                        translate_range=(4, 4, 4), mode=modes, padding_mode="zeros")
        t.set_random_state(seed=int(rng.integers(2**31)))
        data = t(data)
    if rng.random() < s.elastic_p:
        t = Rand3DElasticd(keys=keys, prob=1.0, sigma_range=(5, 8), magnitude_range=(20, 60), mode=modes, padding_mode="zeros")
        t.set_random_state(seed=int(rng.integers(2**31)))
        data = t(data)
    image, soft, head = (torch.as_tensor(data[k]).float() for k in keys)
    for axis, p in ((1, 0.5), (2, 0.2), (3, 0.2)):
        if rng.random() < p:
            image, soft, head = (torch.flip(x, dims=(axis,)) for x in (image, soft, head))
    soft = soft.clamp(min=0.0)
    soft[0] = soft[0] + (1.0 - soft.sum(0)).clamp(min=0.0)  # zero padding from the affine is background
    return image, soft / soft.sum(0, keepdim=True).clamp(min=1e-6), head[0] > 0.5


def _low_resolution(channel: torch.Tensor, *, rng: np.random.Generator) -> torch.Tensor:
    import torch.nn.functional as F

    axis = int(rng.integers(3))
    factor = float(rng.uniform(1.5, 3.0))
    size = list(channel.shape)
    small = list(size)
    small[axis] = max(int(round(size[axis] / factor)), 2)
    down = F.interpolate(channel[None, None], size=small, mode="area")
    return F.interpolate(down, size=size, mode="trilinear", align_corners=False)[0, 0]


def _upper_percentile(values: torch.Tensor, q: float = 0.99) -> float:
    """The ``q`` quantile by rank (``kthvalue``, linear time; ``torch.quantile`` sorts and took a
    quarter of the batch preparation time)."""
    import torch

    k = max(1, min(values.numel(), int(np.ceil(q * values.numel()))))
    return float(torch.kthvalue(values.flatten(), k).values)


def _intensity(
    image: torch.Tensor, *, s: AugmentationSettings, rng: np.random.Generator, sample: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-channel intensity changes of the patch ``image``; ``sample`` ((C, N) head voxels of the
    whole case) gets the same per-voxel changes (the spatial ones, bias and blur, act on the patch
    only). Returns both."""
    import torch
    from monai.transforms import RandBiasField, RandGaussianSmooth, RandHistogramShift

    out = image.clone()
    seen = sample.clone() if sample is not None else None
    for c in range(out.shape[0]):
        x = out[c]
        ref = seen[c] if seen is not None else x
        top = _upper_percentile(ref[ref > 0]) if (ref > 0).sum() > 10 else 0.0
        if top <= 0:
            continue
        n = x.numel()
        # per-voxel changes on patch and sample together: one mapping for both
        joint = torch.cat([x.flatten(), seen[c]]) if seen is not None else x.flatten()
        joint = (joint / top).clamp(min=0)
        joint = joint ** float(np.exp(rng.uniform(*np.log(s.gamma_range))))
        if rng.random() < s.histogram_shift_p:
            t = RandHistogramShift(num_control_points=(5, 10), prob=1.0)
            t.set_random_state(seed=int(rng.integers(2**31)))
            # numpy in, numpy out: a MONAI MetaTensor would carry the 1-D geometry into the 3-D patch
            joint = torch.from_numpy(np.asarray(t(joint[None].numpy()), dtype=np.float32)[0])
        x = joint[:n].reshape(x.shape)
        if seen is not None:
            seen[c] = joint[n:]
        if rng.random() < s.bias_p:
            t = RandBiasField(degree=3, coeff_range=(0.0, 0.4), prob=1.0)
            t.set_random_state(seed=int(rng.integers(2**31)))
            x = torch.as_tensor(t(x[None]))[0]
        if rng.random() < s.low_resolution_p:
            x = _low_resolution(x, rng=rng)
        elif rng.random() < s.smooth_p:
            t = RandGaussianSmooth(sigma_x=(0.3, 1.2), sigma_y=(0.3, 1.2), sigma_z=(0.3, 1.2), prob=1.0)
            t.set_random_state(seed=int(rng.integers(2**31)))
            x = torch.as_tensor(t(x[None]))[0]
        if rng.random() < s.noise_p:
            sigma = float(rng.uniform(0, s.max_noise_fraction))
            x = x + sigma * torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))
            if seen is not None:
                seen[c] = (seen[c] + sigma * torch.from_numpy(rng.standard_normal(seen[c].shape).astype(np.float32))).clamp(min=0)
        out[c] = x.clamp(min=0)
    return out, seen


def augment_case(
    image: np.ndarray,
    labels: np.ndarray,
    head: np.ndarray,
    soft: np.ndarray,
    *,
    rng: np.random.Generator,
    settings: AugmentationSettings = AugmentationSettings(),
    head_voxels: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised image (C, *patch) float32, soft targets (K, *patch) float32) for one sample.

    ``labels`` (hard) only steer the tumour-centred patch choice; the targets are ``soft``
    (cached uint8 or float fractions, see :func:`engine.modelling.dataset.soft_fractions`).
    ``head_voxels`` ((C, N), :func:`engine.modelling.dataset.head_sample` of the whole case)
    give the normalisation statistics, as the whole head does at inference; without them the
    patch's own head voxels do (what 0.2.0 and the 1 mm candidate were trained with).
    """
    import torch

    zoom = draw_zoom(settings, rng)
    image, head, soft = random_patch(
        image, labels, head, soft, patch_vox=zoomed_crop_size(settings.patch_vox, zoom),
        centred=bool(rng.random() < settings.tumour_centred_p), rng=rng,
    )
    image, soft = image.astype(np.float32), soft_fractions(soft)  # only the patch is converted
    image, head, soft = zoom_patch(image, head, soft, patch_vox=settings.patch_vox)
    img_t, soft_t, head_t = _spatial(torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(soft)),
                                     torch.from_numpy(np.ascontiguousarray(head)), s=settings, rng=rng)
    sample = torch.from_numpy(np.asarray(head_voxels, dtype=np.float32)) if head_voxels is not None else None
    img_t, sample = _intensity(img_t, s=settings, rng=rng, sample=sample)
    img_t = normalise_channels(img_t, head_t, sample=sample)
    if rng.random() < settings.modality_dropout_p:
        img_t[int(rng.integers(img_t.shape[0]))] = 0.0
    return img_t, soft_t
