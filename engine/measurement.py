"""Measurements of one timepoint from its label volume (clinical-spec 5.2 step 8): pure, no I/O.

Volumes per label (mL, from the voxel volume of the label grid) and composites: tumour core
TC = ET + NETC and whole tumour WT = ET + NETC + SNFH (RC excluded; BraTS 2024 reading, [R] in
clinical-spec 6.1). ET lesions are measured on the axial view of the label grid (see
``engine.lesions.axial``): SPD over target lesions, sum of ET volumes (SOV) over targets and all.

Targets are chosen at the baseline (the largest measurable products, at most N_TARGET_MAX); at a
follow-up the caller passes the tracked continuation of each target (``followup_spd``), computed
on labels already resampled into the baseline space.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.criteria import MeasurabilityCriteria
from engine.lesions import (
    AxialView,
    Lesion,
    Matching,
    axial_view,
    find_lesions,
    match_lesions,
    select_targets,
    sum_of_products,
)
from engine.types import Label, Volume


@dataclass(frozen=True, slots=True)
class LabelVolumes:
    et_ml: float
    netc_ml: float
    snfh_ml: float
    rc_ml: float

    @property
    def tc_ml(self) -> float:
        """Tumour core: ET + NETC."""
        return self.et_ml + self.netc_ml

    @property
    def wt_ml(self) -> float:
        """Whole tumour: ET + NETC + SNFH (resection cavity excluded)."""
        return self.et_ml + self.netc_ml + self.snfh_ml


@dataclass(frozen=True, slots=True, eq=False)
class StudyMeasurement:
    volumes: LabelVolumes
    lesions: tuple[Lesion, ...]
    component_labels: np.ndarray  # ET components, original voxel order of the label volume
    target_indices: tuple[int, ...]
    spd_mm2: float
    sov_target_ml: float
    sov_all_ml: float
    slice_thickness_mm: float
    min_diameter_mm: float
    obliquity_deg: float
    #: per lesion index, the RANO diameters' endpoints in RAS+ mm of the measured grid's world
    #: (d1 start, d1 end, then d2 start, d2 end): :func:`diameter_lines_ras`
    diameter_lines_ras: Mapping[int, tuple[tuple[float, float, float], ...]] = field(default_factory=dict)
    grid_affine: np.ndarray | None = None  # the voxel -> RAS+ mm affine of the grid measured on

    @property
    def n_measurable(self) -> int:
        return sum(1 for lesion in self.lesions if lesion.measurable)


def label_volumes(labels: Volume) -> LabelVolumes:
    """Per-label volumes in mL. Values outside {0, 1, 2, 3, 4} are refused."""
    values = np.asarray(labels.array)
    if not np.issubdtype(values.dtype, np.integer):
        if not np.array_equal(values, np.round(values)):
            msg = "Argument 'labels' must hold integer labels 0-4"
            raise ValueError(msg)
        values = values.astype(np.int64)
    counts = np.bincount(values.ravel().clip(min=0), minlength=6) if values.size else np.zeros(6, int)
    if values.min(initial=0) < 0 or counts[5:].sum() > 0:
        msg = f"Argument 'labels' holds values outside 0-4: {sorted(set(np.unique(values).tolist()) - set(range(5)))}"
        raise ValueError(msg)
    ml = labels.voxel_ml
    return LabelVolumes(
        et_ml=float(counts[Label.ET]) * ml,
        netc_ml=float(counts[Label.NETC]) * ml,
        snfh_ml=float(counts[Label.SNFH]) * ml,
        rc_ml=float(counts[Label.RC]) * ml,
    )


def measure_study(
    labels: Volume, *, criteria: MeasurabilityCriteria, target_indices: tuple[int, ...] | None = None
) -> StudyMeasurement:
    """Volumes, ET lesions and SPD of one label volume.

    ``target_indices=None`` chooses targets here (a baseline); otherwise the given component
    indices of this volume are the targets.
    """
    volumes = label_volumes(labels)
    view = axial_view(labels)
    view_labels, lesions = find_lesions(view.array == Label.ET, view=view, criteria=criteria)
    targets = select_targets(lesions, n_target_max=criteria.n_target_max) if target_indices is None else target_indices
    chosen = set(targets)
    return StudyMeasurement(
        volumes=volumes,
        lesions=lesions,
        component_labels=view.to_original(view_labels),
        target_indices=tuple(targets),
        spd_mm2=sum_of_products(lesions, tuple(targets)),
        sov_target_ml=float(sum(l.volume_ml for l in lesions if l.lesion_index in chosen)),
        sov_all_ml=float(sum(l.volume_ml for l in lesions)),
        slice_thickness_mm=view.slice_thickness_mm,
        min_diameter_mm=criteria.min_diameter_mm(view.slice_thickness_mm),
        obliquity_deg=view.obliquity_deg,
        diameter_lines_ras=diameter_lines_ras(lesions, view=view, affine=labels.affine),
        grid_affine=np.asarray(labels.affine, dtype=float),
    )


def diameter_lines_ras(
    lesions: tuple[Lesion, ...], *, view: AxialView, affine: np.ndarray
) -> dict[int, tuple[tuple[float, float, float], ...]]:
    """Each lesion's diameter endpoints (view pixels on its slice) as RAS+ mm points of ``affine``.

    >>> from engine.lesions import axial_view
    >>> vol = Volume(np.zeros((4, 4, 3), np.uint8), np.diag([2.0, 2.0, 5.0, 1.0]), {})
    >>> lesion = Lesion(1, 0.1, 1, 4.0, 2.0, 2, True, "", ((0.5, 1.0), (2.5, 1.0), (1.5, 0.5), (1.5, 1.5)))
    >>> diameter_lines_ras((lesion,), view=axial_view(vol), affine=vol.affine)[1][:2]
    ((1.0, 2.0, 10.0), (5.0, 2.0, 10.0))
    """
    lines = {}
    for lesion in lesions:
        if not lesion.ends_px:
            continue
        points = []
        for a, b in lesion.ends_px:
            index = np.zeros(4)
            index[list(view.axes)] = (a, b, lesion.slice_index)
            index[3] = 1.0
            points.append(tuple(round(float(v), 4) for v in (affine @ index)[:3]))
        lines[lesion.lesion_index] = tuple(points)
    return lines


def followup_spd(*, baseline_targets: tuple[int, ...], matching: Matching, lesions: tuple[Lesion, ...]) -> float:
    """SPD at a follow-up: per baseline target, the summed products of the components that continue it
    (a split lesion's fragments are summed; a disappeared target counts 0)."""
    total = 0.0
    for target in baseline_targets:
        total += sum_of_products(lesions, matching.current_for(target))
    return total


@dataclass(frozen=True, slots=True)
class FollowupFindings:
    """What a follow-up adds to the response rules, from lesion tracking against the baseline."""

    spd_mm2: float  # over the continuations of the baseline targets
    matching: Matching
    new_measurable: tuple[int, ...]  # unmatched components that are measurable (current indices)
    became_measurable: tuple[int, ...]  # continuations of non-measurable baseline lesions, now measurable
    emerging_spd_mm2: float = 0.0  # products of the new and the newly measurable lesions (outside the targets)

    @property
    def new_measurable_lesion(self) -> bool:
        return bool(self.new_measurable)

    @property
    def nonmeasurable_progression(self) -> bool:
        """A baseline non-measurable lesion now measurable: unequivocal progression of non-measurable
        disease [H] (clinical-spec 8.4 row 2)."""
        return bool(self.became_measurable)


def followup_findings(
    *, baseline: StudyMeasurement, current: StudyMeasurement, criteria: MeasurabilityCriteria, spacing_mm: float
) -> FollowupFindings:
    """Track ``current`` (already on the baseline grid) against ``baseline``; ``spacing_mm`` is the
    grid's smallest voxel size, used to turn ``criteria.match_gap_mm`` into voxels."""
    gap_vox = int(np.ceil(criteria.match_gap_mm / spacing_mm)) if criteria.match_gap_mm > 0 else 0
    matching = match_lesions(baseline.component_labels, current.component_labels,
                             iou_min=criteria.new_lesion_iou, gap_vox=gap_vox)
    measurable_now = {l.lesion_index for l in current.lesions if l.measurable}
    baseline_non_measurable = [l.lesion_index for l in baseline.lesions if not l.measurable]
    became = tuple(sorted({c for p in baseline_non_measurable for c in matching.current_for(p)} & measurable_now))
    return FollowupFindings(
        spd_mm2=followup_spd(baseline_targets=baseline.target_indices, matching=matching, lesions=current.lesions),
        matching=matching,
        new_measurable=(new := tuple(sorted(set(matching.new) & measurable_now))),
        became_measurable=became,
        emerging_spd_mm2=sum_of_products(current.lesions, tuple(sorted({*new, *became}))),
    )
