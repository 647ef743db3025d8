"""Sanity checks on a label volume: problems become flags people see, never silent numbers.

Pure functions on arrays (no torch, no I/O).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from engine.types import Label

TUMOUR_LABELS: tuple[Label, ...] = (Label.NETC, Label.SNFH, Label.ET)


@dataclass(frozen=True, slots=True)
class SanityLimits:
    """Thresholds beyond which a result is flagged (not hidden)."""

    #: largest plausible volume per label, mL (an adult brain is ~1,200-1,400 mL).
    max_ml: Mapping[str, float] = field(
        default_factory=lambda: {"NETC": 250.0, "SNFH": 500.0, "ET": 250.0, "RC": 250.0}
    )
    #: largest plausible share of the head taken by tumour + cavity.
    max_head_fraction: float = 0.4
    #: share of tumour voxels allowed outside the head mask before flagging.
    max_outside_fraction: float = 0.05
    #: largest resection cavity not flagged on a scan taken before the patient's first recorded
    #: surgery, mL. There should be none; 0.5 mL is about a sphere of 10 mm diameter (the smallest
    #: measurable lesion), so specks below that are not flagged.
    max_rc_before_surgery_ml: float = 0.5


def label_volumes_ml(labels: np.ndarray, *, voxel_ml: float) -> dict[str, float]:
    """mL per label, keys NETC, SNFH, ET, RC.

    >>> label_volumes_ml(np.array([[[0, 1], [3, 3]]], dtype=np.uint8), voxel_ml=0.5)
    {'NETC': 0.5, 'SNFH': 0.0, 'ET': 1.0, 'RC': 0.0}
    """
    return {label.name: float(np.count_nonzero(labels == label.value)) * voxel_ml for label in Label}


def remove_small_cavities(labels: np.ndarray, *, voxel_ml: float, min_ml: float) -> tuple[np.ndarray, float]:
    """``labels`` with every resection-cavity component (26-connected) under ``min_ml`` mL set to
    background, and the mL removed. ``min_ml`` 0 keeps everything (the input, uncopied).

    A surgical cavity is many mL (the smallest in the calibration cohort: 7.8 mL); specks of
    "cavity" are CSF or necrosis the network mistook, as on pre-operative scans.

    >>> rc = np.zeros((1, 6, 6), np.uint8); rc[0, 0, :4] = 4; rc[0, 5, 5] = 4
    >>> out, removed = remove_small_cavities(rc, voxel_ml=0.1, min_ml=0.2)
    >>> int((out == 4).sum()), round(removed, 3)
    (4, 0.1)
    """
    from scipy import ndimage

    from engine.arrays import bounding_box

    if min_ml <= 0:  # the shipped default: not even a pass over the labels
        return labels, 0.0
    cavity = labels == Label.RC.value
    if not cavity.any():
        return labels, 0.0
    # label only the cavity's bounding box (every component lies inside it)
    box = tuple(slice(int(lo), int(hi)) for lo, hi in zip(*bounding_box(cavity), strict=True))
    components, n = ndimage.label(cavity[box], structure=np.ones((3,) * cavity.ndim, bool))
    sizes = np.bincount(components.ravel(), minlength=n + 1) * voxel_ml
    small = sizes < min_ml
    small[0] = False
    drop = small[components]
    if not drop.any():
        return labels, 0.0
    out = labels.copy()
    out[box][drop] = 0
    return out, float(np.count_nonzero(drop)) * voxel_ml


def sanity_flags(
    *,
    volumes_ml: Mapping[str, float],
    tumour_voxels: int,
    tumour_outside_head_voxels: int,
    head_ml: float,
    limits: SanityLimits = SanityLimits(),
) -> tuple[str, ...]:
    """Flags for an implausible result.

    >>> sanity_flags(volumes_ml={"NETC": 0, "SNFH": 900.0, "ET": 0, "RC": 0}, tumour_voxels=10,
    ...              tumour_outside_head_voxels=0, head_ml=2400.0)
    ('implausible_volume:SNFH=900mL',)
    """
    flags: list[str] = []
    if tumour_voxels == 0:
        flags.append("empty_output")
    elif tumour_outside_head_voxels > limits.max_outside_fraction * tumour_voxels:
        flags.append("tumour_outside_brain")
    for name, ml in volumes_ml.items():
        limit = limits.max_ml.get(name)
        if limit is not None and ml > limit:
            flags.append(f"implausible_volume:{name}={ml:.0f}mL")
    total_ml = float(sum(volumes_ml.values()))
    if head_ml > 0 and total_ml > limits.max_head_fraction * head_ml:
        flags.append(f"implausible_volume:total={total_ml:.0f}mL")
    return tuple(flags)


def cavity_before_surgery_flag(
    *, rc_ml: float, scan_date: date, first_surgery: date | None, limits: SanityLimits = SanityLimits()
) -> str | None:
    """A flag when a scan holds a resection cavity larger than ``limits.max_rc_before_surgery_ml``
    but no surgery precedes it: taken before the patient's first recorded surgery, or with no
    surgery recorded at all. Either a surgery is missing from the record or the model labelled CSF,
    a ventricle or necrosis as cavity. A scan on the day of surgery may follow it (intra- or
    post-operative MRI), so only earlier scans are flagged. The flag carries no date (alerts quote it).

    >>> cavity_before_surgery_flag(rc_ml=0.9, scan_date=date(2026, 1, 5), first_surgery=date(2026, 1, 9))
    'cavity_before_surgery:RC=0.9mL'
    >>> cavity_before_surgery_flag(rc_ml=0.9, scan_date=date(2026, 1, 9), first_surgery=date(2026, 1, 9)) is None
    True
    >>> cavity_before_surgery_flag(rc_ml=3.0, scan_date=date(2026, 1, 9), first_surgery=None)
    'cavity_without_recorded_surgery:RC=3.0mL'
    """
    if not rc_ml > limits.max_rc_before_surgery_ml:
        return None
    if first_surgery is None:
        return f"cavity_without_recorded_surgery:RC={rc_ml:.1f}mL"
    if scan_date >= first_surgery:
        return None
    return f"cavity_before_surgery:RC={rc_ml:.1f}mL"


def check_labels(
    labels: np.ndarray,
    *,
    head_mask: np.ndarray,
    voxel_ml: float,
    limits: SanityLimits = SanityLimits(),
) -> tuple[dict[str, float], tuple[str, ...]]:
    """Volumes and flags of a label volume; ``head_mask`` is on the same grid as ``labels``."""
    if labels.shape != head_mask.shape:
        msg = f"Argument 'head_mask' must have the shape of 'labels' {labels.shape}, got {head_mask.shape}"
        raise ValueError(msg)
    tumour = np.isin(labels, [int(v) for v in TUMOUR_LABELS])
    volumes = label_volumes_ml(labels, voxel_ml=voxel_ml)
    flags = sanity_flags(
        volumes_ml=volumes,
        tumour_voxels=int(tumour.sum()),
        tumour_outside_head_voxels=int((tumour & ~head_mask).sum()),
        head_ml=float(head_mask.sum()) * voxel_ml,
        limits=limits,
    )
    return volumes, flags
