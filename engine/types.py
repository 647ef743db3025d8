"""Value types shared across the engine (frozen dataclasses and StrEnums).

StrEnum values are exactly what the store holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

import numpy as np


class Sequence(StrEnum):
    """MR sequence of a series, as classified by the series rules."""

    T1 = "T1"
    T1C = "T1c"
    T2 = "T2"
    FLAIR = "FLAIR"
    OTHER = "OTHER"


#: The four sequences a study needs, in the channel order of the segmentation network.
STUDY_SEQUENCES: tuple[Sequence, ...] = (Sequence.T1, Sequence.T1C, Sequence.T2, Sequence.FLAIR)


class Label(IntEnum):
    """Post-treatment tumour sub-regions, BraTS 2024 numbering (clinical-spec section 6)."""

    NETC = 1  # non-enhancing tumour core / necrosis
    SNFH = 2  # surrounding non-enhancing FLAIR hyperintensity
    ET = 3  # enhancing tissue
    RC = 4  # resection cavity


class Response(StrEnum):
    """Per-timepoint response categories as stored."""

    PRE_BASELINE = "PRE_BASELINE"
    BASELINE = "BASELINE"
    CR = "CR"
    PR = "PR"
    MR = "MR"
    SD = "SD"
    STEROID_WATCH = "STEROID_WATCH"
    PRELIM_PD = "PRELIM_PD"
    PD = "PD"
    PSEUDOPROGRESSION = "PSEUDOPROGRESSION"  # final label of a preliminary-PD scan that was not confirmed
    DISCORDANT = "DISCORDANT"  # 2D and volumetric assessments disagree on progression: a reader decides
    NE = "NE"


class StudyStatus(StrEnum):
    """Where a study stands in the pipeline."""

    INGESTED = "INGESTED"
    QUARANTINED = "QUARANTINED"
    SEGMENTED = "SEGMENTED"
    REGISTERED = "REGISTERED"
    ASSESSED = "ASSESSED"


@dataclass(frozen=True, slots=True, eq=False)
class Volume:
    """A 3D image with its geometry.

    ``array`` is indexed ``[i, j, k]``: i along the columns of a slice, j along its rows and k
    across slices (the NIfTI/nibabel convention). ``affine`` maps voxel indices (i, j, k, 1) to
    world coordinates in millimetres in **RAS+** (+x toward the patient's Right, +y Anterior, +z Superior), as NIfTI
    files store it. DICOM's patient coordinates are LPS+; RAS = diag(-1, -1, 1) @ LPS.
    """

    array: np.ndarray
    affine: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            msg = f"Argument 'array' must be 3D, got shape {self.array.shape}"
            raise ValueError(msg)
        if self.affine.shape != (4, 4):
            msg = f"Argument 'affine' must be 4x4, got shape {self.affine.shape}"
            raise ValueError(msg)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along i, j, k in millimetres."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0


@dataclass(frozen=True, slots=True)
class SegmentationOutput:
    """What the segmentation step of one study produced (or why it could not): the stored row's
    content. Paths are relative to the labels folder (``engine.state_paths``)."""

    study_uid: str
    labels_path: str = ""
    volumes_ml: dict[str, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    model_name: str = ""
    model_version: str = ""
    weights_sha256: str = ""
    config_sha256: str = ""
    device: str = ""
    elapsed_s: float = 0.0
    error: str = ""
    error_detail: str | None = None
