"""Measure one patient's course, re-measuring only what changed (issue 34: flat reassessment).

Every usable study (segmented, and registered unless registration is off) is measured from its
label map: volumes per label on the study's own T1c grid; ET lesions and the SPD in the baseline
space (labels resampled onto the baseline's T1c grid), where the baseline's target lesions are
chosen and followed by IoU matching, so a follow-up's SPD sums the continuations of the baseline
targets and an unmatched component is a new lesion.

A measurement is stored with the SHA-256 of its inputs (:func:`inputs_fingerprint`): the study,
its date, labels file and segmentation (model identity and when it was written), its baseline
registration, its role (baseline, tracked in the baseline's space, or measured alone), for a
tracked follow-up the baseline's own fingerprint (a new baseline re-tracks every follow-up), the
criteria label and measurability criteria, and :data:`MEASUREMENT_VERSION`. A study whose stored
current measurement has the same fingerprint is not read again, so assessing a patient after a new
study reads the new study's labels (and the baseline's, to track it) instead of the whole history.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from engine.criteria import Criteria
from engine.dicom.nifti import read_nifti
from engine.measurement import StudyMeasurement, followup_findings, label_volumes, measure_study
from engine.state_paths import StatePaths, StoredFile

#: bump when measure_study / followup_findings change what they return for the same labels
MEASUREMENT_VERSION = 2  # 2: the lesions carry their diameter ends (reader in the loop)


@dataclass(frozen=True, slots=True)
class CourseMeasurement:
    """One usable study's measurement: new (``measurement`` set, to be written) or the stored one
    kept (``measurement`` None)."""

    row: Mapping[str, Any]  # the study's row of ``engine.store.course.usable_studies``
    inputs_sha256: str
    rc_ml: float  # resection cavity volume, for the cavity-before-surgery flag
    measurement: StudyMeasurement | None = None
    tracks: Mapping[int, int] = dataclasses.field(default_factory=dict)  # lesion -> baseline lesion
    new_lesions: tuple[int, ...] = ()

    @property
    def study_uid(self) -> str:
        return str(self.row["study_uid"])

    @property
    def scan_date(self) -> date | None:
        return self.row["study_date"]


def inputs_fingerprint(row: Mapping[str, Any], *, role: str, criteria: Criteria, resampled_labels: str | None,
                       baseline_sha256: str | None) -> str:
    """SHA-256 of everything a study's stored measurement depends on (module docstring)."""
    parts = {
        "version": MEASUREMENT_VERSION,
        "study_uid": row["study_uid"], "scan_date": row["study_date"],
        "labels": row["labels_path"], "segmented_at": row["segmented_at"],
        "model": [row["model_name"], row["model_version"], row["weights_sha256"], row["config_sha256"]],
        "registration_id": row["registration_id"], "role": role,
        "resampled_labels": resampled_labels, "baseline": baseline_sha256,
        "criteria": criteria.label, "measurability": dataclasses.asdict(criteria.measurability),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def measure_course(
    rows: Sequence[Mapping[str, Any]], *, baseline_uid: str | None, criteria: Criteria, paths: StatePaths,
    stored: Mapping[str, tuple[str | None, float | None]],
) -> list[CourseMeasurement]:
    """Measure ``rows`` (the patient's usable studies, by date); ``stored``: per study UID, the
    current measurement's (inputs fingerprint, RC mL). Studies whose fingerprint is unchanged keep
    their stored measurement; the others are measured (read from their label files)."""
    measurability = criteria.measurability
    index = next((i for i, r in enumerate(rows) if r["study_uid"] == baseline_uid), None)
    base_sha: str | None = None
    base: StudyMeasurement | None = None  # the baseline's measurement, read only when a follow-up needs it
    out: list[CourseMeasurement] = []
    for i, r in enumerate(rows):
        resampled = json.loads(r["resampled"]) if r["resampled"] else {}
        tracked = (index is not None and i > index and "labels" in resampled
                   and r["reference_study_uid"] == baseline_uid)
        role = "baseline" if i == index else "tracked" if tracked else "alone"
        sha = inputs_fingerprint(r, role=role, criteria=criteria, baseline_sha256=base_sha if tracked else None,
                                 resampled_labels=resampled["labels"] if tracked else None)
        if role == "baseline":
            base_sha = sha
        prior_sha, prior_rc = stored.get(str(r["study_uid"]), (None, None))
        if prior_sha == sha and prior_rc is not None:
            out.append(CourseMeasurement(r, sha, float(prior_rc)))
            continue
        native = read_nifti(paths.resolve(StoredFile.LABELS, r["labels_path"]))
        if not tracked:  # the baseline itself, scans before it, or no registration into its space
            m = measure_study(native, criteria=measurability)
            tracks: dict[int, int] = {}
            new: tuple[int, ...] = ()
            if role == "baseline":
                base = m
                tracks = {lesion.lesion_index: lesion.lesion_index for lesion in m.lesions}
        else:
            if base is None:
                base_row = rows[index]  # type: ignore[index]
                base = measure_study(read_nifti(paths.resolve(StoredFile.LABELS, base_row["labels_path"])),
                                     criteria=measurability)
            labels = read_nifti(paths.resolve(StoredFile.REGISTERED, resampled["labels"]))
            m = measure_study(labels, criteria=measurability, target_indices=())
            found = followup_findings(baseline=base, current=m, criteria=measurability,
                                      spacing_mm=min(labels.spacing_mm))
            m = dataclasses.replace(m, spd_mm2=found.spd_mm2, volumes=label_volumes(native))
            tracks = {match.current_index: match.previous_index for match in found.matching.matches}
            tracks.update({c: p for p, c in found.matching.fragments})
            new = tuple(found.matching.new)
        out.append(CourseMeasurement(r, sha, m.volumes.rc_ml, m, tracks, new))
    return out
