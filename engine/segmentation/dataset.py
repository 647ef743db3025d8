"""Training cases on the model's working grid, cached as ``.npz`` files.

A case goes through the same geometry as inference (:func:`resample_study` + :func:`crop_to_head`)
but is stored before normalisation, so intensity augmentations act on raw-like signal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.segmentation.model_config import ModelConfig
from engine.segmentation.preprocess import crop_to_head, resample_study, resample_to_grid
from engine.types import STUDY_SEQUENCES, Volume


@dataclass(frozen=True, slots=True, eq=False)
class CachedCase:
    """One training case: raw (C, X, Y, Z) float32 image, labels and head mask on the working grid."""

    seed: int
    image: np.ndarray
    labels: np.ndarray
    head: np.ndarray


def case_path(cache_dir: Path, seed: int) -> Path:
    return cache_dir / f"case_{seed:07d}.npz"


def prepare_training_case(
    images: np.ndarray, labels: np.ndarray, affine: np.ndarray, *, config: ModelConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(4, X, Y, Z) images in T1, T1c, T2, FLAIR order + labels -> working grid, head crop."""
    import torch

    volumes = {seq: Volume(images[i], affine) for i, seq in enumerate(STUDY_SEQUENCES)}
    stack, grid_affine, ref_seq = resample_study(volumes, channels=config.channels, spacing_mm=config.spacing_mm)
    shape = tuple(int(s) for s in stack.shape[1:])
    lab = resample_to_grid(Volume(labels.astype(np.float32), affine), affine=grid_affine, shape=shape, mode="nearest")  # type: ignore[arg-type]
    cropped, _, head = crop_to_head(
        stack, affine=grid_affine, ref_channel=config.channels.index(ref_seq), divisible_by=config.divisible_by,
        extra=torch.round(lab)[None],
    )
    image = cropped[:-1].numpy().astype(np.float32)
    return image, cropped[-1].round().numpy().astype(np.uint8), head.numpy()


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
        path = case_path(cache_dir, seed)
        if path.exists():
            continue
        case = sample(seed)
        image, labels, head = prepare_training_case(
            np.asarray(case.images, dtype=np.float32), np.asarray(case.labels), np.asarray(case.affine), config=config
        )
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, image=image.astype(np.float16), labels=labels, head=head)
        os.replace(tmp, path)
        written += 1
        log(f"cached case {seed} shape {labels.shape} tumour voxels {int((labels > 0).sum())}")
    return written


def load_case(cache_dir: Path, seed: int) -> CachedCase:
    with np.load(case_path(cache_dir, seed)) as data:
        return CachedCase(
            seed=seed,
            image=data["image"].astype(np.float32),
            labels=data["labels"],
            head=data["head"].astype(bool),
        )


def cached_seeds(cache_dir: Path) -> list[int]:
    """Seeds of the cases present in ``cache_dir``."""
    return sorted(int(p.stem.split("_")[1]) for p in cache_dir.glob("case_*.npz") if not p.stem.endswith(".tmp"))


__all__ = ["CachedCase", "cache_cases", "cached_seeds", "load_case", "prepare_training_case"]
