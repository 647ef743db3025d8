"""SQL of the per-study pipeline: segmentation and registration rows, and what is left to do."""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Any

import duckdb

from engine.store.db import Store
from engine.store.ingest import now_utc

if TYPE_CHECKING:
    from engine.types import SegmentationOutput
    from engine.registration import RegistrationResult

Con = duckdb.DuckDBPyConnection


def study_volumes(store: Store, study_uid: str) -> dict[str, str]:
    """{sequence: NIfTI path relative to the volumes dir} of a study's used series."""
    return dict(store.query("SELECT sequence, path FROM volumes WHERE study_uid = ?", [study_uid]))


def study_row(store: Store, study_uid: str) -> dict[str, Any]:
    return store.query_dicts("SELECT * FROM studies WHERE study_uid = ?", [study_uid])[0]


def record_segmentation(con: Con, *, study_uid: str, output: SegmentationOutput) -> None:
    """The current segmentation of a study; rows of other models, or of the same model under
    another config or weights, are kept and marked superseded. The same model identity (name,
    version, weights hash, config hash) segmenting again replaces its own row."""
    con.execute("UPDATE segmentations SET superseded = TRUE WHERE study_uid = ?", [study_uid])
    v = output.volumes_ml
    con.execute(
        """INSERT INTO segmentations (study_uid, model_name, model_version, weights_sha256, config_sha256,
               labels_path, netc_ml, snfh_ml, et_ml, rc_ml, flags, device, elapsed_s, created_at, superseded)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE)
           ON CONFLICT (study_uid, model_name, model_version, weights_sha256, config_sha256) DO UPDATE SET
             labels_path = excluded.labels_path, netc_ml = excluded.netc_ml, snfh_ml = excluded.snfh_ml,
             et_ml = excluded.et_ml, rc_ml = excluded.rc_ml, flags = excluded.flags,
             device = excluded.device, elapsed_s = excluded.elapsed_s,
             created_at = excluded.created_at, superseded = FALSE""",
        [study_uid, output.model_name, output.model_version, output.weights_sha256, output.config_sha256,
         output.labels_path, v.get("NETC"), v.get("SNFH"), v.get("ET"), v.get("RC"), ",".join(output.flags),
         output.device, output.elapsed_s, now_utc()],
    )


def current_segmentation(store: Store, study_uid: str) -> dict[str, Any] | None:
    rows = store.query_dicts(
        "SELECT * FROM segmentations WHERE study_uid = ? AND NOT superseded", [study_uid])
    return rows[0] if rows else None


def record_registration(
    con: Con, *, study_uid: str, reference_study_uid: str, kind: str, result: RegistrationResult | None,
    resampled: dict[str, str] | None,
) -> int:
    """A registration row (``result=None``: the study is its own reference, identity)."""
    con.execute("UPDATE registrations SET superseded = TRUE WHERE study_uid = ? AND kind = ?",
                [study_uid, kind])
    if result is None:
        values = [json.dumps([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]),
                  "identity", None, 1.0, 0.0, 0.0, True, "the study is the reference", 0.0]
    else:
        d = result.to_dict()
        values = [json.dumps(d["matrix"]), result.method, d["stage"], result.similarity,
                  result.rotation_deg, result.translation_mm, result.passed, result.qc_reason,
                  result.elapsed_s]
    row = con.execute(
        """INSERT INTO registrations (study_uid, reference_study_uid, kind, matrix, method, stage,
               similarity, rotation_deg, translation_mm, passed, qc_reason, elapsed_s, resampled,
               created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING registration_id""",
        [study_uid, reference_study_uid, kind, *values, json.dumps(resampled or {}), now_utc()],
    ).fetchone()
    return int(row[0])


def current_registration(store: Store, study_uid: str, kind: str) -> dict[str, Any] | None:
    """The study's current registration of ``kind`` ('baseline' or 'previous'), with its matrix
    (moving RAS mm -> reference RAS mm) as a 4x4 list; None when there is none."""
    rows = store.query_dicts(
        """SELECT registration_id, study_uid, reference_study_uid, kind, matrix, method, passed
           FROM registrations WHERE study_uid = ? AND kind = ? AND NOT superseded
           ORDER BY registration_id""", [study_uid, kind])
    if not rows:
        return None
    row = rows[-1]
    row["matrix"] = json.loads(row["matrix"])
    return row


def patient_studies(store: Store, patient_key: str) -> list[dict[str, Any]]:
    """The patient's studies that reached the pipeline, by date."""
    return store.query_dicts(
        """SELECT study_uid, study_date, status, sequences FROM studies
           WHERE patient_key = ? AND status <> 'QUARANTINED' ORDER BY study_date, study_uid""",
        [patient_key])


def rt_end_date(store: Store, patient_key: str) -> date | None:
    rows = store.query(
        """SELECT max(event_date) FROM clinical_events
           WHERE patient_key = ? AND event = 'RT_END'""", [patient_key])
    return rows[0][0] if rows and rows[0][0] is not None else None


def pending_studies(store: Store, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
    """Studies left in a pipeline status (after a crash, or ingested while a step was off)."""
    marks = ",".join("?" for _ in statuses)
    return store.query_dicts(
        f"SELECT study_uid, patient_key, status FROM studies WHERE status IN ({marks}) "  # noqa: S608
        "ORDER BY study_date, study_uid", list(statuses))


def registered_to_other_reference(store: Store, patient_key: str, reference_study_uid: str) -> list[str]:
    """The patient's current baseline registrations whose reference is not ``reference_study_uid``
    (studies not quarantined)."""
    rows = store.query(
        """SELECT r.study_uid FROM registrations r JOIN studies s USING (study_uid)
           WHERE s.patient_key = ? AND r.kind = 'baseline' AND NOT r.superseded
             AND r.reference_study_uid <> ? AND s.status <> 'QUARANTINED'""",
        [patient_key, reference_study_uid])
    return [r[0] for r in rows]


def studies_to_rescore(store: Store, patient_key: str | None = None) -> list[dict[str, Any]]:
    """``study_uid`` and ``patient_key`` of every study not quarantined (of one patient, when
    given), by date."""
    return store.query_dicts(
        """SELECT study_uid, patient_key FROM studies
           WHERE status <> 'QUARANTINED' AND (?::VARCHAR IS NULL OR patient_key = ?)
           ORDER BY study_date""",
        [patient_key, patient_key])


def segmented_patients(store: Store) -> list[str]:
    """Patients with at least one segmentation row, sorted."""
    return sorted({r[0] for r in store.query(
        "SELECT DISTINCT patient_key FROM segmentations JOIN studies USING (study_uid)")})


def studies_awaiting_assessment(con: Con, patient_key: str) -> list[str]:
    """The patient's studies segmented or registered but not yet assessed (caller's transaction)."""
    return [uid for (uid,) in con.execute(
        "SELECT study_uid FROM studies WHERE patient_key = ? AND status IN ('SEGMENTED', 'REGISTERED')",
        [patient_key]).fetchall()]


def processed_study_count(store: Store) -> int:
    """Studies through the pipeline: assessed or quarantined."""
    return int(store.query(
        "SELECT count(*) FROM studies WHERE status IN ('ASSESSED', 'QUARANTINED')")[0][0])
