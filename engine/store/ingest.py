"""Every SQL statement of the ingestion stream (writes take a connection inside a transaction)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb

from engine.ingest import IngestedStudy
from engine.store.db import Store
from engine.types import StudyStatus

Con = duckdb.DuckDBPyConnection


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def get_cursor(store: Store, name: str = "archive") -> int:
    rows = store.query("SELECT seq FROM cursor WHERE name = ?", [name])
    return int(rows[0][0]) if rows else 0


def set_cursor(con: Con, seq: int, name: str = "archive") -> None:
    con.execute(
        """INSERT INTO cursor VALUES (?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET seq = greatest(cursor.seq, excluded.seq),
                                            updated_at = excluded.updated_at""",
        [name, int(seq), now_utc()],
    )


def known_study(store: Store, study_uid: str) -> dict[str, Any] | None:
    rows = store.query_dicts("SELECT * FROM studies WHERE study_uid = ?", [study_uid])
    return rows[0] if rows else None


def known_archive_study_ids(store: Store) -> set[str]:
    ids = {r[0] for r in store.query("SELECT archive_study_id FROM studies")}
    ids |= {r[0] for r in store.query(
        "SELECT archive_study_id FROM quarantine WHERE archive_study_id IS NOT NULL AND study_uid IS NULL")}
    return ids


def stored_instance_count(store: Store, study_uid: str) -> int:
    """Instances recorded over every series of the study (0 when none)."""
    return int(store.query(
        "SELECT coalesce(sum(n_instances), 0) FROM series WHERE study_uid = ?", [study_uid])[0][0])


def record_study(con: Con, study: IngestedStudy, *, change_seq: int | None, seen_at: datetime) -> int:
    """Insert or revise one study with its series, volumes and quarantine rows. Returns revision."""
    now = now_utc()
    con.execute(
        """INSERT INTO patients VALUES (?, ?, ?)
           ON CONFLICT (patient_key) DO UPDATE SET
             last_study_date = greatest(patients.last_study_date, excluded.last_study_date)""",
        [study.patient_key, now, study.study_date],
    )
    prior = con.execute("SELECT revision FROM studies WHERE study_uid = ?", [study.study_uid]).fetchall()
    revision = int(prior[0][0]) + 1 if prior else 1
    if prior:
        con.execute("DELETE FROM volumes WHERE study_uid = ?", [study.study_uid])
        con.execute("DELETE FROM series WHERE study_uid = ?", [study.study_uid])
        con.execute("DELETE FROM studies WHERE study_uid = ?", [study.study_uid])
    status = StudyStatus.QUARANTINED if study.quarantine_reason else StudyStatus.INGESTED
    con.execute(
        """INSERT INTO studies (study_uid, archive_study_id, patient_key, study_date, status, revision,
               sequences, missing_sequences, change_seq, seen_at, ingested_at, ingest_s)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [study.study_uid, study.archive_study_id, study.patient_key, study.study_date, status.value,
         revision, ",".join(s.value for s in study.sequences),
         ",".join(s.value for s in study.missing_sequences), change_seq, seen_at, now, study.elapsed_s],
    )
    for s in study.series:
        con.execute(
            "INSERT INTO series VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [s.series_uid, study.study_uid, s.archive_series_id, s.description, s.sequence.value,
             s.rule, s.explanation, s.plane, s.n_instances, s.status, s.reason],
        )
        if s.status == "USED":
            con.execute(
                "INSERT INTO volumes VALUES (?, ?, ?, ?, ?, ?, ?)",
                [s.series_uid, study.study_uid, s.sequence.value, s.volume_path,
                 json.dumps(list(s.shape)), json.dumps(list(s.spacing_mm)), json.dumps(s.affine_ras)],
            )
        elif s.status == "REFUSED":
            add_quarantine(con, stage="ingest", reason=s.reason, study_uid=study.study_uid,
                           archive_study_id=study.archive_study_id, series_uid=s.series_uid,
                           patient_key=study.patient_key)
    if study.quarantine_reason:
        add_quarantine(con, stage="ingest", reason=study.quarantine_reason, study_uid=study.study_uid,
                       archive_study_id=study.archive_study_id, patient_key=study.patient_key)
    relink_patient(con, study.patient_key)
    return revision


def relink_patient(con: Con, patient_key: str) -> None:
    """Link each study of a patient to the one before it by date (also after out-of-order backfill)."""
    con.execute(
        """UPDATE studies SET previous_study_uid = prev.previous
           FROM (SELECT study_uid,
                        lag(study_uid) OVER (PARTITION BY patient_key ORDER BY study_date, study_uid)
                          AS previous
                 FROM studies WHERE patient_key = ?) AS prev
           WHERE studies.study_uid = prev.study_uid""",
        [patient_key],
    )


def add_quarantine(
    con: Con,
    *,
    stage: str,
    reason: str,
    study_uid: str | None = None,
    archive_study_id: str | None = None,
    series_uid: str | None = None,
    patient_key: str | None = None,
    detail: str | None = None,
) -> None:
    con.execute(
        """INSERT INTO quarantine (study_uid, archive_study_id, series_uid, patient_key, stage, reason,
               detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        [study_uid, archive_study_id, series_uid, patient_key, stage, reason, detail, now_utc()],
    )


def set_study_status(con: Con, study_uid: str, status: StudyStatus) -> None:
    con.execute("UPDATE studies SET status = ? WHERE study_uid = ?", [status.value, study_uid])


def log_event(con: Con, kind: str, message: str) -> None:
    con.execute("INSERT INTO stream_log VALUES (?, ?, ?)", [now_utc(), kind, message])


def patient_summary(store: Store) -> list[dict[str, Any]]:
    """One row per study for the per-patient summary: key, date, status, sequences."""
    return store.query_dicts(
        """SELECT patient_key, study_date, status, sequences, missing_sequences, revision, study_uid
           FROM studies ORDER BY patient_key, study_date, study_uid"""
    )


def stream_health(store: Store) -> dict[str, Any]:
    """Cursor, counts, last error and throughput for `gliowatch status` and the dashboard."""
    cursor = store.query_dicts("SELECT seq, updated_at FROM cursor WHERE name = 'archive'")
    counts = dict(store.query("SELECT status, count(*) FROM studies GROUP BY status"))
    last_error = store.query_dicts(
        "SELECT logged_at, message FROM stream_log WHERE kind = 'error' ORDER BY logged_at DESC LIMIT 1")
    per_hour = store.query(
        "SELECT count(*) FROM studies WHERE ingested_at >= ?", [now_utc() - timedelta(hours=1)]
    )[0][0]
    open_quarantine = store.query("SELECT count(*) FROM quarantine WHERE resolved_at IS NULL")[0][0]
    queued = store.query(
        "SELECT count(*) FROM studies WHERE status IN ('INGESTED', 'SEGMENTED', 'REGISTERED')")[0][0]
    return {
        "cursor": cursor[0]["seq"] if cursor else 0,
        "cursor_updated_at": cursor[0]["updated_at"] if cursor else None,
        "studies_by_status": counts,
        "open_quarantine": int(open_quarantine),
        "queue": int(queued),  # studies ingested but not yet through every pipeline step
        "last_error": last_error[0] if last_error else None,
        "studies_last_hour": int(per_hour),
    }
