"""Reads one study's report is built from (``engine.writeback.step``): plain rows, no decisions."""

from __future__ import annotations

from typing import Any

from engine.store.db import Store


def _one(store: Store, sql: str, params: list[Any]) -> dict[str, Any] | None:
    rows = store.query_dicts(sql, params)
    return rows[0] if rows else None


def study_for_report(store: Store, study_uid: str) -> dict[str, Any] | None:
    """The study row with its current segmentation (identity, labels path)."""
    return _one(store,
                """SELECT s.study_uid, s.patient_key, s.study_date, s.archive_study_id, s.status,
                          g.labels_path, g.model_name, g.model_version, g.weights_sha256, g.config_sha256
                   FROM studies s JOIN segmentations g ON g.study_uid = s.study_uid AND NOT g.superseded
                   WHERE s.study_uid = ?""", [study_uid])


def t1c_series(store: Store, study_uid: str) -> dict[str, Any] | None:
    """The series the study's T1c volume (and so its labels' grid) came from."""
    return _one(store,
                """SELECT r.series_uid, r.archive_series_id, r.description, s.archive_study_id FROM volumes v
                   JOIN series r ON r.study_uid = v.study_uid AND r.series_uid = v.series_uid
                   JOIN studies s ON s.study_uid = v.study_uid
                   WHERE v.study_uid = ? AND v.sequence = 'T1c'""", [study_uid])


def current_measurement(store: Store, study_uid: str) -> dict[str, Any] | None:
    return _one(store, "SELECT * FROM measurements WHERE study_uid = ? AND NOT superseded", [study_uid])


def measurement_lesions(store: Store, measurement_id: str) -> list[dict[str, Any]]:
    return store.query_dicts("SELECT * FROM lesions WHERE measurement_id = ? ORDER BY lesion_index",
                             [measurement_id])


def registration_for_report(store: Store, registration_id: int) -> dict[str, Any] | None:
    """A registration's matrix (JSON 4x4, moving RAS mm -> reference RAS mm), resampled files,
    its moving and reference study UIDs and their dates."""
    return _one(store,
                """SELECT r.matrix, r.resampled, r.study_uid, r.reference_study_uid,
                          s.study_date, b.study_date AS reference_date
                   FROM registrations r JOIN studies s ON s.study_uid = r.study_uid
                   LEFT JOIN studies b ON b.study_uid = r.reference_study_uid
                   WHERE r.registration_id = ?""", [registration_id])


def latest_assessment(store: Store, study_uid: str) -> dict[str, Any] | None:
    """The study's most recent assessment row, with its PsP estimate when one was made."""
    return _one(store,
                """SELECT a.*, r.probability AS psp_probability, r.low AS psp_low, r.high AS psp_high,
                          r.model AS psp_model
                   FROM assessments a LEFT JOIN psp_risk r
                     ON r.study_uid = a.study_uid AND r.profile = a.profile AND r.mode = a.mode
                   WHERE a.study_uid = ? ORDER BY a.assessed_at DESC LIMIT 1""", [study_uid])


def assessed_study_uids(store: Store, patient_key: str) -> list[str]:
    """The patient's studies with an assessment, oldest first (the report's time points)."""
    return [r[0] for r in store.query(
        """SELECT DISTINCT a.study_uid, a.scan_date FROM assessments a
           WHERE a.patient_key = ? ORDER BY a.scan_date, a.study_uid""", [patient_key])]


def growth_fits(store: Store, patient_key: str) -> list[dict[str, Any]]:
    return store.query_dicts("SELECT * FROM growth WHERE patient_key = ? ORDER BY label, model",
                             [patient_key])
