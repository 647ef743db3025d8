"""The reader's values of a scan, and the timepoints they make: pure, no I/O.

Everything the pipeline measured is *proposed* until a reader confirms it. A reader can accept
or reject a scan's segmentation, choose the target lesions (by their tracked identity, so the
choice holds at every timepoint), correct or enter the two diameters of a lesion, and record a
new lesion, non-measurable progression, the steroid dose and the clinical status of a scan.
Each entry is stored as a new row (``engine.store.schema_reader``); the latest entry of a
(study, kind, lesion) is in force, so every value can be revised and its history stays.

:func:`apply_reader_values` turns the automatic timepoints into the ones the response rules see:
the reader's values win over the automatic ones, and a rejected segmentation leaves the scan's
volumes and products unknown (not evaluable), with the reader's reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine.response import Timepoint
from engine.response.inputs import ClinicalStatus


class ReaderValueKind(StrEnum):
    """What a reader entry says (stored as the value)."""

    SEGMENTATION = "SEGMENTATION"  # {"accepted": bool, "reason": str}
    TARGETS = "TARGETS"  # {"track_ids": [int, ...]}: baseline lesion indices, patient-wide
    DIAMETERS = "DIAMETERS"  # {"d1_mm": float, "d2_mm": float} of lesion_index
    NEW_LESION = "NEW_LESION"  # {"present": bool, "d1_mm": float, "d2_mm": float}
    NONMEASURABLE_PROGRESSION = "NONMEASURABLE_PROGRESSION"  # {"present": bool}
    STEROID_DOSE = "STEROID_DOSE"  # {"mg": float}
    CLINICAL_STATUS = "CLINICAL_STATUS"  # {"status": "improved" | "stable" | "worse"}


class Confirmation(StrEnum):
    PROPOSED = "PROPOSED"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class ReaderEntry:
    study_uid: str
    kind: ReaderValueKind
    value: Mapping[str, Any]
    entered_by: str
    entered_at: datetime
    lesion_index: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ReaderValueKind(self.kind))


@dataclass(frozen=True, slots=True)
class LesionRow:
    """One lesion of a study's current measurement, as stored."""

    study_uid: str
    lesion_index: int
    track_id: int | None
    d1_mm: float
    d2_mm: float
    measurable: bool
    is_target: bool
    is_new: bool


@dataclass(frozen=True, slots=True)
class ReaderInputs:
    entries: tuple[ReaderEntry, ...] = ()
    lesions: tuple[LesionRow, ...] = ()
    baseline_uid: str | None = None


def in_force(entries: Iterable[ReaderEntry]) -> dict[tuple[str, ReaderValueKind, int | None], ReaderEntry]:
    """The latest entry of each (study, kind, lesion); TARGETS entries are keyed by study ''
    (one choice per patient)."""
    out: dict[tuple[str, ReaderValueKind, int | None], ReaderEntry] = {}
    for e in sorted(entries, key=lambda e: e.entered_at):
        study = "" if e.kind is ReaderValueKind.TARGETS else e.study_uid
        out[(study, e.kind, e.lesion_index)] = e
    return out


def confirmation(entries: Iterable[ReaderEntry], study_uid: str) -> Confirmation:
    """Whether the reader confirmed, rejected or has not yet looked at a scan's segmentation."""
    entry = in_force(entries).get((study_uid, ReaderValueKind.SEGMENTATION, None))
    if entry is None:
        return Confirmation.PROPOSED
    return Confirmation.CONFIRMED if entry.value.get("accepted") else Confirmation.REJECTED


def chosen_targets(entries: Iterable[ReaderEntry]) -> tuple[int, ...] | None:
    """The reader's target lesions (baseline lesion indices), or None when the reader chose none."""
    entry = in_force(entries).get(("", ReaderValueKind.TARGETS, None))
    return None if entry is None else tuple(int(t) for t in entry.value["track_ids"])


def apply_reader_values(timepoints: Sequence[Timepoint], inputs: ReaderInputs) -> list[Timepoint]:
    """The timepoints with the reader's values in force applied (automatic values elsewhere).

    SPD: per study, the automatic target products are replaced by the reader's (chosen targets,
    corrected diameters). A lesion is an automatic target when it was chosen at its own
    measurement (``is_target``) or continues a baseline target (``track_id``).

    >>> from datetime import date
    >>> tp = Timepoint(scan_date=date(2025, 1, 1), study_uid="S1", spd_mm2=400.0, et_ml=5.0)
    >>> row = LesionRow("S1", 1, 1, 20.0, 20.0, True, True, False)
    >>> fix = ReaderEntry("S1", ReaderValueKind.DIAMETERS, {"d1_mm": 25.0, "d2_mm": 20.0}, "dr", datetime(2025, 1, 2), 1)
    >>> apply_reader_values([tp], ReaderInputs((fix,), (row,), "S1"))[0].spd_mm2
    500.0
    """
    force = in_force(inputs.entries)
    targets = chosen_targets(inputs.entries)
    baseline_targets = {l.lesion_index for l in inputs.lesions if l.study_uid == inputs.baseline_uid and l.is_target}
    out = []
    for tp in timepoints:
        mine = [l for l in inputs.lesions if l.study_uid == tp.study_uid]
        out.append(_one(tp, mine, force, targets, baseline_targets))
    return out


def _one(tp: Timepoint, lesions: list[LesionRow], force: Mapping, targets: tuple[int, ...] | None,
         baseline_targets: set[int]) -> Timepoint:
    uid = tp.study_uid
    seg = force.get((uid, ReaderValueKind.SEGMENTATION, None))
    if seg is not None and not seg.value.get("accepted"):
        tp = dataclasses.replace(tp, spd_mm2=None, et_ml=None, netc_ml=None, snfh_ml=None, emerging_spd_mm2=None,
                                 new_measurable_lesion=None, became_measurable=None)
    else:
        tp = _with_products(tp, lesions, force, targets, baseline_targets)
    changes: dict[str, Any] = {}
    if (e := force.get((uid, ReaderValueKind.NEW_LESION, None))) is not None:
        auto_new = sum(l.d1_mm * l.d2_mm for l in lesions if l.is_new and l.measurable)
        emerging = (tp.emerging_spd_mm2 or 0.0) - auto_new
        if e.value.get("present"):
            emerging += float(e.value.get("d1_mm") or 0.0) * float(e.value.get("d2_mm") or 0.0) or auto_new
        changes.update(new_measurable_lesion=bool(e.value.get("present")), emerging_spd_mm2=max(emerging, 0.0))
    if (e := force.get((uid, ReaderValueKind.NONMEASURABLE_PROGRESSION, None))) is not None:
        changes["nonmeasurable_progression"] = bool(e.value.get("present"))
    if (e := force.get((uid, ReaderValueKind.STEROID_DOSE, None))) is not None:
        changes["steroid_dose_mg"] = float(e.value["mg"])
    if (e := force.get((uid, ReaderValueKind.CLINICAL_STATUS, None))) is not None:
        changes["clinical_status"] = ClinicalStatus(e.value["status"])
    return dataclasses.replace(tp, **changes) if changes else tp


def _with_products(tp: Timepoint, lesions: list[LesionRow], force: Mapping, targets: tuple[int, ...] | None,
                   baseline_targets: set[int]) -> Timepoint:
    fixes = {l.lesion_index: force[k] for l in lesions
             if (k := (tp.study_uid, ReaderValueKind.DIAMETERS, l.lesion_index)) in force}
    if targets is None and not fixes:
        return tp

    def product(l: LesionRow) -> float:
        fix = fixes.get(l.lesion_index)
        return float(fix.value["d1_mm"]) * float(fix.value["d2_mm"]) if fix else l.d1_mm * l.d2_mm

    auto = [l for l in lesions if l.is_target or (l.track_id is not None and l.track_id in baseline_targets)]
    tracked = any(l.track_id is not None for l in lesions)
    chosen = [l for l in lesions if l.track_id in set(targets)] if targets is not None and tracked else auto
    spd = (tp.spd_mm2 or 0.0) - sum(l.d1_mm * l.d2_mm for l in auto) + sum(product(l) for l in chosen)
    return dataclasses.replace(tp, spd_mm2=max(round(spd, 6), 0.0))
