"""The per-study pipeline after ingestion: segmentation, then registration into the patient's
baseline space. Each step reads its inputs from the store and the state dir, writes files first,
then commits its rows and the study's new status in one transaction, so a crash between steps
leaves the study in the last committed status and the step simply runs again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.dicom.nifti import read_nifti, write_nifti
from engine.errors import RegistrationError, SegmentationError
from engine.ingest import exam_label
from engine.registration import Registrar, RegistrationResult, resample_to
from engine.segmentation import Segmenter
from engine.store import Store
from engine.store import ingest as ingest_sql
from engine.store import pipeline as sql
from engine.types import Sequence, StudyStatus, Volume


@dataclass(frozen=True, slots=True)
class StageOutcome:
    study_uid: str
    stage: str
    ok: bool
    message: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StatePaths:
    volumes_dir: Path
    labels_dir: Path
    registered_dir: Path


def _exam(row: dict) -> str:
    return exam_label(row["patient_key"], row["study_date"])


def load_study_volumes(store: Store, study_uid: str, volumes_dir: Path) -> dict[Sequence, Volume]:
    return {Sequence(seq): read_nifti(volumes_dir / path)
            for seq, path in sql.study_volumes(store, study_uid).items()}


def _quarantine(store: Store, row: dict, *, stage: str, reason: str, detail: str | None = None) -> None:
    with store.transaction() as con:
        ingest_sql.add_quarantine(con, stage=stage, reason=reason, study_uid=row["study_uid"],
                                  archive_study_id=row["archive_study_id"], patient_key=row["patient_key"],
                                  detail=detail)
        ingest_sql.set_study_status(con, row["study_uid"], StudyStatus.QUARANTINED)


def segment_study(store: Store, *, study_uid: str, segmenter: Segmenter, paths: StatePaths) -> StageOutcome:
    """Segment one ingested study; flags are kept for people to see, failures are quarantined."""
    row = sql.study_row(store, study_uid)
    exam = _exam(row)
    volumes = load_study_volumes(store, study_uid, paths.volumes_dir)
    try:
        result = segmenter.segment(volumes, exam=exam)
    except SegmentationError as exc:
        _quarantine(store, row, stage="segmentation", reason=exc.reason, detail=exc.detail)
        return StageOutcome(study_uid, "segmentation", False, exc.reason)
    rel = Path(row["patient_key"]) / study_uid / f"labels_{result.model_name}_{result.weights_sha256[:8]}.nii.gz"
    target = paths.labels_dir / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    write_nifti(result.labels, target, force=True)
    with store.transaction() as con:
        sql.record_segmentation(con, study_uid=study_uid, result=result, labels_path=str(rel))
        ingest_sql.set_study_status(con, study_uid, StudyStatus.SEGMENTED)
    volumes_text = ", ".join(f"{k} {v:.1f} mL" for k, v in result.volumes_ml.items())
    return StageOutcome(study_uid, "segmentation", True, f"{exam}: {volumes_text}", result.flags)


def reference_study(store: Store, patient_key: str) -> str | None:
    """The registration reference: the first scan after RT end when known (the RANO 2.0 baseline),
    else the patient's first usable scan."""
    studies = sql.patient_studies(store, patient_key)
    if not studies:
        return None
    rt_end = sql.rt_end_date(store, patient_key)
    if rt_end is not None:
        after = [s for s in studies if s["study_date"] is not None and s["study_date"] > rt_end]
        if after:
            return str(after[0]["study_uid"])
    return str(studies[0]["study_uid"])


def _reference_image(volumes: dict[Sequence, Volume], preferred: str) -> tuple[Sequence, Volume]:
    order = [Sequence(preferred)] + [s for s in (Sequence.T1C, Sequence.T1) if s.value != preferred]
    for seq in order:
        if seq in volumes:
            return seq, volumes[seq]
    raise RegistrationError("Neither a T1c nor a T1 series is available to register",
                            action="Check the series classification of this study.")


def _labels(store: Store, study_uid: str, labels_dir: Path) -> Volume | None:
    seg = sql.current_segmentation(store, study_uid)
    return read_nifti(labels_dir / seg["labels_path"]) if seg else None


def register_study(
    store: Store, *, study_uid: str, registrar: Registrar, paths: StatePaths, reference_sequence: str = "T1c",
) -> StageOutcome:
    """Register a study to its patient's baseline (resampling every image and the labels into the
    baseline's reference grid) and to the previous study (transform and QC only)."""
    row = sql.study_row(store, study_uid)
    exam = _exam(row)
    ref_uid = reference_study(store, row["patient_key"])
    if ref_uid is None or ref_uid == study_uid:
        with store.transaction() as con:
            sql.record_registration(con, study_uid=study_uid, reference_study_uid=study_uid, kind="baseline",
                                    result=None, resampled=None)
            ingest_sql.set_study_status(con, study_uid, StudyStatus.REGISTERED)
        return StageOutcome(study_uid, "registration", True, f"{exam}: is the patient's reference scan")
    try:
        result, resampled = _register_pair(store, study_uid, ref_uid, registrar, paths, reference_sequence,
                                           resample=True)
    except RegistrationError as exc:
        _quarantine(store, row, stage="registration", reason=exc.reason, detail=exc.detail)
        return StageOutcome(study_uid, "registration", False, exc.reason)
    with store.transaction() as con:
        sql.record_registration(con, study_uid=study_uid, reference_study_uid=ref_uid, kind="baseline",
                                result=result, resampled=resampled)
        if not result.passed:
            ingest_sql.add_quarantine(
                con, stage="registration", study_uid=study_uid, archive_study_id=row["archive_study_id"],
                patient_key=row["patient_key"],
                reason=f"Registration to the baseline failed its quality check: {result.qc_reason} [{exam}]")
        ingest_sql.set_study_status(
            con, study_uid, StudyStatus.REGISTERED if result.passed else StudyStatus.QUARANTINED)
    message = f"{exam}: to baseline {_qc_text(result)}"
    prev_uid = row["previous_study_uid"]
    if result.passed and prev_uid and prev_uid != ref_uid:
        message += "; " + _register_previous(store, study_uid, prev_uid, registrar, paths, reference_sequence)
    return StageOutcome(study_uid, "registration", result.passed, message)


def _register_previous(store: Store, study_uid: str, prev_uid: str, registrar: Registrar, paths: StatePaths,
                       reference_sequence: str) -> str:
    try:
        result, _ = _register_pair(store, study_uid, prev_uid, registrar, paths, reference_sequence,
                                   resample=False)
    except RegistrationError as exc:
        return f"to previous: not done ({exc.message})"
    with store.transaction() as con:
        sql.record_registration(con, study_uid=study_uid, reference_study_uid=prev_uid, kind="previous",
                                result=result, resampled=None)
    return f"to previous {_qc_text(result)}"


def _qc_text(result: RegistrationResult) -> str:
    verdict = "passed" if result.passed else "FAILED"
    return (f"{verdict} (rotation {result.rotation_deg:.1f} deg, translation {result.translation_mm:.1f} mm, "
            f"similarity {result.similarity:.3f}, {result.method}, {result.elapsed_s:.1f} s)")


def _register_pair(
    store: Store, study_uid: str, ref_uid: str, registrar: Registrar, paths: StatePaths, preferred: str,
    *, resample: bool,
) -> tuple[RegistrationResult, dict[str, str] | None]:
    fixed_vols = load_study_volumes(store, ref_uid, paths.volumes_dir)
    moving_vols = load_study_volumes(store, study_uid, paths.volumes_dir)
    _, fixed = _reference_image(fixed_vols, preferred)
    _, moving = _reference_image(moving_vols, preferred)
    fixed_labels = _labels(store, ref_uid, paths.labels_dir)
    moving_labels = _labels(store, study_uid, paths.labels_dir)
    result = registrar.register(fixed=fixed, moving=moving, fixed_mask=fixed_labels, moving_mask=moving_labels)
    if not resample or not result.passed:
        return result, None
    row = sql.study_row(store, study_uid)
    out_dir = paths.registered_dir / row["patient_key"] / study_uid
    out_dir.mkdir(parents=True, exist_ok=True)
    resampled: dict[str, str] = {}
    items: list[tuple[str, Volume, str]] = [(s.value, v, "linear") for s, v in moving_vols.items()]
    if moving_labels is not None:
        items.append(("labels", moving_labels, "nearest"))
    for name, vol, interp in items:
        out = resample_to(reference=fixed, moving=vol, matrix=result.matrix, interpolation=interp)  # type: ignore[arg-type]
        target = out_dir / f"{name}.nii.gz"
        write_nifti(out, target, force=True)
        resampled[name] = str(target.relative_to(paths.registered_dir))
    return result, resampled


def stale_registrations(store: Store, patient_key: str) -> list[str]:
    """Studies registered to a reference that is no longer the patient's baseline."""
    ref = reference_study(store, patient_key)
    rows = store.query(
        """SELECT r.study_uid FROM registrations r JOIN studies s USING (study_uid)
           WHERE s.patient_key = ? AND r.kind = 'baseline' AND NOT r.superseded
             AND r.reference_study_uid <> ?""", [patient_key, ref])
    return [r[0] for r in rows]


def registered_paths(store: Store, study_uid: str) -> dict[str, str]:
    reg = sql.current_registration(store, study_uid)
    return json.loads(reg["resampled"]) if reg and reg["resampled"] else {}


__all__ = ["StageOutcome", "StatePaths", "reference_study", "register_study", "segment_study",
           "stale_registrations"]
