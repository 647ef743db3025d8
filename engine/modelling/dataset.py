"""Training cases on the model's working grid, cached as ``.npz`` files.

A case goes through the same geometry as inference (:func:`resample_study` + :func:`crop_to_head`)
but is stored before normalisation, so intensity augmentations act on raw-like signal.

Targets are *soft*: per class, the fraction of each working voxel the class occupies, computed
from the (finer) rendered labels (one-hot, smoothed over about one working voxel, resampled
trilinearly). A thin enhancing rim that covers half a 1.5 mm voxel is taught as 0.5, not as
all-or-nothing, so the network's probabilities resampled onto a finer reference grid put the
boundary where it is and volumes come out unbiased.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.segmentation.model_config import ModelConfig
from engine.segmentation.preprocess import crop_to_head, grid_multiple, resample_study, resample_to_grid
from engine.types import STUDY_SEQUENCES, Label, Volume


@dataclass(frozen=True, slots=True, eq=False)
class CachedCase:
    """One training case on the working grid: raw (C, X, Y, Z) image (float16 as cached), labels,
    head mask and the soft targets as cached (uint8, 255 = the whole voxel).

    Training crops a patch first and converts only the patch (:func:`soft_fractions`).
    """

    seed: int
    image: np.ndarray
    labels: np.ndarray
    head: np.ndarray
    #: (K, X, Y, Z) uint8 class fractions x 255 (K = background + classes).
    soft_u8: np.ndarray
    #: (C, N) float32: the raw image at head voxels on a strided lattice of the whole case
    #: (:func:`head_sample`); training normalises each patch with these statistics, as inference
    #: normalises with the whole head's.
    head_voxels: np.ndarray | None = None

    @property
    def soft(self) -> np.ndarray:
        """(K, X, Y, Z) float32 class fractions summing to 1."""
        return soft_fractions(self.soft_u8)


def soft_fractions(soft: np.ndarray) -> np.ndarray:
    """Cached uint8 fractions (or floats) -> float32 fractions summing to 1 per voxel.

    Voxels whose fractions sum to less than 1 (padding added by a crop) get the rest as background.
    """
    out = soft.astype(np.float32) / (255.0 if soft.dtype == np.uint8 else 1.0)
    out[0] += np.clip(1.0 - out.sum(0), 0.0, None)
    return out / np.maximum(out.sum(0, keepdims=True), 1e-6)


#: arrays of a cached case, one ``.npy`` file each in the case's folder.
CASE_ARRAYS = ("image", "labels", "head", "soft")


#: lattice step of :func:`head_sample` (every 3rd voxel per axis: ~1/27 of the head).
HEAD_SAMPLE_STRIDE = 3


def head_sample(image: np.ndarray, head: np.ndarray, *, stride: int = HEAD_SAMPLE_STRIDE) -> np.ndarray:
    """(C, N) float32: every channel at the head voxels of a ``stride`` lattice of the case.

    >>> img = np.arange(2 * 4 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 4); head = np.ones((4, 4, 4), bool)
    >>> head_sample(img, head, stride=2).shape
    (2, 8)
    """
    lattice = (slice(None, None, stride),) * 3
    mask = np.asarray(head[lattice], dtype=bool)
    sub = np.asarray(image[(slice(None), *lattice)], dtype=np.float32)
    return np.ascontiguousarray(sub[:, mask])


def case_path(cache_dir: Path, seed: int) -> Path:
    """The case's folder (one ``.npy`` per array, memory-mapped when loaded)."""
    return cache_dir / f"case_{seed:07d}"


def _legacy_case_path(cache_dir: Path, seed: int) -> Path:
    return cache_dir / f"case_{seed:07d}.npz"


def _case_exists(cache_dir: Path, seed: int) -> bool:
    return case_path(cache_dir, seed).is_dir() or _legacy_case_path(cache_dir, seed).exists()


def class_fractions(
    labels: np.ndarray, affine: np.ndarray, *, grid_affine: np.ndarray, shape: tuple[int, ...], num_classes: int
) -> Any:
    """(K, *shape) torch tensor: the fraction of each working voxel every class occupies.

    Each class's indicator on the rendered grid is smoothed with a Gaussian whose width matches a
    box of one working voxel (sigma = spacing / sqrt(12) in each axis) and resampled trilinearly;
    background is what the tumour classes leave, and the fractions are renormalised to sum to 1.
    """
    import torch
    from scipy import ndimage

    source_spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
    target_spacing = np.sqrt((grid_affine[:3, :3] ** 2).sum(0))
    sigma = np.sqrt(np.maximum(target_spacing**2 - source_spacing**2, 0.0) / 12.0) / source_spacing
    out = torch.zeros((num_classes, *shape), dtype=torch.float32)
    for k in range(1, num_classes):
        indicator = (labels == k).astype(np.float32)
        if not indicator.any():
            continue
        smooth = ndimage.gaussian_filter(indicator, sigma=sigma) if np.any(sigma > 0) else indicator
        out[k] = resample_to_grid(Volume(smooth, affine), affine=grid_affine, shape=shape).clamp(0.0, 1.0)  # type: ignore[arg-type]
    tumour = out[1:].sum(0)
    scale = torch.where(tumour > 1.0, 1.0 / tumour.clamp(min=1e-6), torch.ones_like(tumour))
    out[1:] *= scale
    out[0] = (1.0 - out[1:].sum(0)).clamp(min=0.0)
    return out


def prepare_training_case(
    images: np.ndarray, labels: np.ndarray, affine: np.ndarray, *, config: ModelConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(4, X, Y, Z) images in T1, T1c, T2, FLAIR order + labels -> working grid, head crop.

    Returns raw images, hard labels (the argmax of the fractions), the head mask and the
    (K, X, Y, Z) class fractions (see :func:`class_fractions`).
    """
    volumes = {seq: Volume(images[i], affine) for i, seq in enumerate(STUDY_SEQUENCES)}
    return prepare_training_volumes(volumes, labels, affine, config=config)


def _tumour_crop(labels: np.ndarray, affine: np.ndarray, margin_vox: int) -> tuple[np.ndarray, np.ndarray]:
    """The labels cut to the tumour's bounding box (+ margin) and that box's affine."""
    idx = np.argwhere(labels > 0)
    if idx.size == 0:
        return labels, affine
    lo = np.maximum(idx.min(0) - margin_vox, 0)
    hi = np.minimum(idx.max(0) + margin_vox + 1, labels.shape)
    shift = np.eye(4)
    shift[:3, 3] = lo
    return labels[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))], affine @ shift


def prepare_training_volumes(
    volumes: dict, labels: np.ndarray, labels_affine: np.ndarray, *, config: ModelConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Series on their own grids (``{Sequence: Volume}``, as ingestion delivers them) + labels on
    their grid -> the inference geometry (:func:`resample_study`, :func:`crop_to_head`).

    Same outputs as :func:`prepare_training_case`; the targets are the class fractions of the
    labels on the working grid the reference series defines.
    """
    stack, grid_affine, ref_seq = resample_study(volumes, channels=config.channels, spacing_mm=config.spacing_mm,
                                                 multiple_of=grid_multiple(config.divisible_by))
    shape = tuple(int(s) for s in stack.shape[1:])
    cut, cut_affine = _tumour_crop(np.asarray(labels), np.asarray(labels_affine, dtype=float), margin_vox=8)
    soft = class_fractions(cut, cut_affine, grid_affine=grid_affine, shape=shape, num_classes=config.num_outputs)
    cropped, _, head = crop_to_head(
        stack, affine=grid_affine, ref_channel=config.channels.index(ref_seq), divisible_by=config.divisible_by,
        extra=soft,
    )
    n = len(config.channels)
    image = cropped[:n].numpy().astype(np.float32)
    fractions = cropped[n:].numpy().astype(np.float32)
    fractions[0] += np.clip(1.0 - fractions.sum(0), 0.0, None)  # padding and outside the cut are background
    return image, fractions.argmax(0).astype(np.uint8), head.numpy(), fractions


def cache_cases(
    seeds: Iterable[int],
    *,
    cache_dir: Path,
    config: ModelConfig,
    sample: Callable[[int], Any],
    log: Callable[[str], None] = lambda _: None,
) -> int:
    """Write every missing case (``sample(seed)`` -> object with images, labels, affine); count written."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for seed in seeds:
        if _case_exists(cache_dir, seed):
            continue
        path = case_path(cache_dir, seed)
        case = sample(seed)
        if hasattr(case, "volumes"):  # series on their own scanner grids (sample_acquired_case)
            image, labels, head, soft = prepare_training_volumes(
                case.volumes, np.asarray(case.labels), np.asarray(case.labels_affine), config=config
            )
        else:
            image, labels, head, soft = prepare_training_case(
                np.asarray(case.images, dtype=np.float32), np.asarray(case.labels), np.asarray(case.affine),
                config=config,
            )
        arrays = {"image": image.astype(np.float16), "labels": labels, "head": head,
                  "soft": np.round(soft * 255.0).astype(np.uint8)}
        tmp = path.with_name(path.name + ".tmp")
        if tmp.exists():  # left by an interrupted run
            for old in tmp.iterdir():
                old.unlink()
        tmp.mkdir(exist_ok=True)
        for name in CASE_ARRAYS:
            np.save(tmp / f"{name}.npy", arrays[name])
        os.replace(tmp, path)
        written += 1
        log(f"cached case {seed} shape {labels.shape} tumour voxels {int((labels > 0).sum())}")
    return written


def load_case(cache_dir: Path, seed: int) -> CachedCase:
    """The cached case ``seed``. Arrays are memory-mapped (read-only): a training patch reads only
    the pages it covers, so a cache larger than memory does not thrash the page cache. Cases
    cached as one ``.npz`` by earlier versions load whole."""
    folder = case_path(cache_dir, seed)
    if folder.is_dir():
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in CASE_ARRAYS}
        return CachedCase(seed=seed, image=arrays["image"], labels=arrays["labels"], head=arrays["head"],
                          soft_u8=arrays["soft"], head_voxels=_cached_head_sample(folder, arrays["image"], arrays["head"]))
    with np.load(_legacy_case_path(cache_dir, seed)) as data:
        image, head = data["image"], data["head"].astype(bool)
        return CachedCase(seed=seed, image=image, labels=data["labels"], head=head, soft_u8=data["soft"],
                          head_voxels=head_sample(image, head))


def has_label(cache_dir: Path, seed: int, label: Label) -> bool:
    """Whether the cached case ``seed`` holds any voxel of ``label`` (its labels are memory-mapped)."""
    return bool(np.any(np.asarray(load_case(cache_dir, seed).labels) == int(label)))


def _cached_head_sample(folder: Path, image: np.ndarray, head: np.ndarray) -> np.ndarray:
    """:func:`head_sample` of a cached case, written beside it on first use (atomic; any process)."""
    path = folder / f"head_sample_{HEAD_SAMPLE_STRIDE}.npy"
    if path.exists():
        return np.load(path)
    sample = head_sample(image, head)
    tmp = folder / f"{path.stem}.{os.getpid()}.tmp.npy"
    np.save(tmp, sample)
    os.replace(tmp, path)
    return sample


def _cache_one(args: tuple[int, Path, ModelConfig, Callable[[int], Any]]) -> int:
    seed, cache_dir, config, sample = args
    return cache_cases([seed], cache_dir=cache_dir, config=config, sample=sample)


def cache_cases_parallel(
    seeds: Iterable[int],
    *,
    cache_dir: Path,
    config: ModelConfig,
    sample: Callable[[int], Any],
    workers: int,
    log: Callable[[str], None] = lambda _: None,
) -> int:
    """:func:`cache_cases` over ``workers`` processes (``sample`` must be picklable)."""
    import multiprocessing

    todo = [s for s in seeds if not _case_exists(cache_dir, s)]
    if workers <= 1 or len(todo) <= 1:
        return cache_cases(todo, cache_dir=cache_dir, config=config, sample=sample, log=log)
    cache_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for done, count in enumerate(pool.imap_unordered(_cache_one, [(s, cache_dir, config, sample) for s in todo]), 1):
            written += count
            if done % 10 == 0 or done == len(todo):
                log(f"cached {done}/{len(todo)} cases")
    return written


def cached_seeds(cache_dir: Path) -> list[int]:
    """Seeds of the cases present in ``cache_dir``."""
    found = {int(p.name.split("_")[1]) for p in cache_dir.glob("case_*") if p.is_dir() and not p.name.endswith(".tmp")}
    found |= {int(p.stem.split("_")[1]) for p in cache_dir.glob("case_*.npz") if not p.stem.endswith(".tmp")}
    return sorted(found)


__all__ = [
    "CachedCase", "cache_cases", "cache_cases_parallel", "cached_seeds", "class_fractions", "load_case",
    "prepare_training_case", "prepare_training_volumes", "soft_fractions",
]
