"""SQL of the write-back step (``engine.writeback.step``): the DICOM objects GlioWatch stored into
the archive, the step's status per study, and the reads a study's report is built from.

Tables (migration 5, :mod:`engine.store.writeback_schema`):

* ``writeback_objects``: one row per object written (kind SEG, SR or SC, the key image): its
  series and SOP instance UIDs, what it was made from (``content_key``: the segmentation identity
  for a SEG, the report's content digest for an SR and for the key image), its file under ``<state>/writeback`` (``file_path``, relative), the
  archive's id of the stored instance; ``superseded_by`` names the series that replaced it and
  ``deleted_at`` says when it was deleted from the archive (``[writeback] delete_superseded``).
* ``writeback_status``: per study, the last outcome (``WRITTEN`` or ``FAILED`` with its reason)
  and the assessment time it covers (``assessed_at``): a study is due when it is ASSESSED and its
  latest assessment is newer than that, so a crash between assessment and write-back, or a new
  assessment (new scan of the patient, re-score), is picked up by the next cycle.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import duckdb

from engine.store.db import Store

Con = duckdb.DuckDBPyConnection


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def studies_due(store: Store) -> list[dict[str, Any]]:
    """ASSESSED studies whose latest assessment has not been written back, by patient and date."""
    return store.query_dicts(
        """SELECT s.study_uid, s.patient_key, a.assessed_at FROM studies s
           JOIN (SELECT study_uid, max(assessed_at) AS assessed_at FROM assessments GROUP BY study_uid) a
             USING (study_uid)
           LEFT JOIN writeback_status w USING (study_uid)
           WHERE s.status = 'ASSESSED' AND (w.study_uid IS NULL OR w.assessed_at < a.assessed_at)
           ORDER BY s.patient_key, s.study_date, s.study_uid""")


def set_status(con: Con, *, study_uid: str, status: str, reason: str | None, assessed_at: datetime) -> None:
    con.execute(
        """INSERT INTO writeback_status VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (study_uid) DO UPDATE SET status = excluded.status, reason = excluded.reason,
             assessed_at = excluded.assessed_at, updated_at = excluded.updated_at""",
        [study_uid, status, reason, assessed_at, _now()])


def study_status(store: Store, study_uid: str) -> dict[str, Any] | None:
    rows = store.query_dicts("SELECT * FROM writeback_status WHERE study_uid = ?", [study_uid])
    return rows[0] if rows else None


def current_object(store: Store, study_uid: str, kind: str) -> dict[str, Any] | None:
    """The study's current (not superseded) object of ``kind``, or None."""
    rows = store.query_dicts(
        """SELECT * FROM writeback_objects WHERE study_uid = ? AND kind = ? AND superseded_by IS NULL
           ORDER BY written_at DESC LIMIT 1""", [study_uid, kind])
    return rows[0] if rows else None


def record_object(con: Con, *, series_uid: str, sop_instance_uid: str, study_uid: str, patient_key: str,
                  kind: str, content_key: str, file_path: str, archive_instance_id: str | None) -> None:
    """Add an object; the study's earlier current object of the same kind is marked superseded."""
    con.execute(
        """UPDATE writeback_objects SET superseded_by = ?
           WHERE study_uid = ? AND kind = ? AND superseded_by IS NULL AND series_uid <> ?""",
        [series_uid, study_uid, kind, series_uid])
    con.execute("INSERT INTO writeback_objects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                [series_uid, sop_instance_uid, study_uid, patient_key, kind, content_key, file_path,
                 archive_instance_id, _now()])


def superseded_in_archive(store: Store, study_uid: str) -> list[dict[str, Any]]:
    """The study's superseded objects still in the archive (not deleted)."""
    return store.query_dicts(
        """SELECT * FROM writeback_objects WHERE study_uid = ? AND superseded_by IS NOT NULL
           AND deleted_at IS NULL AND archive_instance_id IS NOT NULL""", [study_uid])


def mark_deleted(con: Con, series_uid: str) -> None:
    con.execute("UPDATE writeback_objects SET deleted_at = ? WHERE series_uid = ?", [_now(), series_uid])


def written_series_uids(store: Store, study_uid: str) -> set[str]:
    """Every series GlioWatch wrote into the study (current, superseded, deleted)."""
    return {r[0] for r in store.query("SELECT series_uid FROM writeback_objects WHERE study_uid = ?",
                                      [study_uid])}


def instance_count_without_writeback(store: Store, study_uid: str) -> int:
    """Instances recorded over the study's series, GlioWatch's own written series left out."""
    return int(store.query(
        """SELECT coalesce(sum(n_instances), 0) FROM series WHERE study_uid = ?
           AND series_uid NOT IN (SELECT series_uid FROM writeback_objects WHERE study_uid = ?)""",
        [study_uid, study_uid])[0][0])


def patient_objects(store: Store, patient_key: str, *, current_only: bool = True) -> list[dict[str, Any]]:
    """The patient's written objects (current ones unless ``current_only`` is False), by date."""
    return store.query_dicts(
        """SELECT o.*, s.study_date FROM writeback_objects o JOIN studies s USING (study_uid)
           WHERE o.patient_key = ? AND (NOT ? OR o.superseded_by IS NULL)
           ORDER BY s.study_date, o.study_uid, o.kind""", [patient_key, current_only])
