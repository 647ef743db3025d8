"""Every read the dashboard makes, from the published read-only snapshot only.

``query_*`` functions take an open :class:`~engine.store.Store` and return DataFrames (the
benchmark and the tests call them directly); the cached functions below them open the snapshot
read-only, query and close, cached with ``st.cache_data`` keyed by the snapshot's path and
modification time, so a newly published snapshot is read on the next rerun and an unchanged one
never twice. The writer publishes only when the store changed (``engine.store.snapshot``), so the
key stays the same, and the caches warm, across cycles that change nothing. Tables that a
snapshot does not have yet (an older schema, a stage that has not run) read as empty frames: a
page says "not available" rather than failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from engine.store import Store, open_store
from engine.store.ingest import stream_health

#: column names of the worklist frame, in display order.
WORKLIST_COLUMNS: tuple[str, ...] = (
    "patient_key", "last_scan_date", "n_studies", "response", "open_alerts", "awaiting_confirmation",
    "quarantined", "mgmt", "model_version", "attention",
)


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    """Which snapshot file, and which version of it (the cache key)."""

    path: str
    mtime_ns: int


def snapshot_ref(path: Path | str) -> SnapshotRef | None:
    """The snapshot's identity, or None when none was published yet."""
    try:
        return SnapshotRef(str(path), Path(path).stat().st_mtime_ns)
    except FileNotFoundError:
        return None


# --------------------------------------------------------------------------- plain queries


def query_tables(store: Store) -> set[str]:
    return {r[0] for r in store.query("SELECT table_name FROM information_schema.tables")}


def query_columns(store: Store, table: str) -> set[str]:
    return {r[0] for r in store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])}


def _df(store: Store, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """Query into a DataFrame; DATE columns stay ``datetime.date`` (via Arrow), not Timestamps."""
    return store.con.sql(sql, params=params or None).to_arrow_table().to_pandas()


def query_worklist(store: Store) -> pd.DataFrame:
    """One row per patient with what needs attention, most urgent first."""
    tables = query_tables(store)
    parts = ["SELECT s.patient_key, max(s.study_date) AS last_scan_date, count(*) AS n_studies"
             " FROM studies s GROUP BY s.patient_key"]
    sql = f"WITH base AS ({parts[0]})"
    joins, cols = [], []
    if "timeline" in tables:
        sql += """, latest AS (SELECT patient_key,
                     arg_max(coalesce(final_response, response), scan_date) AS response,
                     arg_max(response, scan_date) AS response_then,
                     arg_max(final_response, scan_date) AS final_then
                   FROM timeline GROUP BY patient_key)"""
        joins.append("LEFT JOIN latest USING (patient_key)")
        cols += ["latest.response",
                 "(latest.response_then = 'PRELIM_PD' AND coalesce(latest.final_then, 'PRELIM_PD')"
                 " = 'PRELIM_PD') AS awaiting_confirmation"]
    else:
        cols += ["NULL::VARCHAR AS response", "false AS awaiting_confirmation"]
    if "alerts" in tables:
        sql += """, open_alerts AS (SELECT patient_key, count(*) AS open_alerts FROM alerts
                   WHERE acknowledged_at IS NULL GROUP BY patient_key)"""
        joins.append("LEFT JOIN open_alerts USING (patient_key)")
        cols.append("coalesce(open_alerts.open_alerts, 0) AS open_alerts")
    else:
        cols.append("0 AS open_alerts")
    sql += """, q AS (SELECT patient_key, count(*) AS quarantined FROM quarantine
               WHERE resolved_at IS NULL AND patient_key IS NOT NULL GROUP BY patient_key)"""
    joins.append("LEFT JOIN q USING (patient_key)")
    cols.append("coalesce(q.quarantined, 0) AS quarantined")
    if "clinical_events" in tables:
        sql += """, mg AS (SELECT patient_key, arg_max(value, event_date) AS mgmt FROM clinical_events
                   WHERE event = 'MGMT' GROUP BY patient_key)"""
        joins.append("LEFT JOIN mg USING (patient_key)")
        cols.append("coalesce(mg.mgmt, 'unknown') AS mgmt")
    else:
        cols.append("'unknown' AS mgmt")
    if "measurements" in tables and "model_version" in query_columns(store, "measurements"):
        sql += """, mv AS (SELECT st.patient_key, string_agg(DISTINCT m.model_version, ', ') AS model_version
                   FROM measurements m JOIN studies st USING (study_uid) GROUP BY st.patient_key)"""
        joins.append("LEFT JOIN mv USING (patient_key)")
        cols.append("mv.model_version")
    else:
        cols.append("NULL::VARCHAR AS model_version")
    sql += (f" SELECT base.*, {', '.join(cols)} FROM base {' '.join(joins)}")
    frame = _df(store, sql)
    frame["awaiting_confirmation"] = frame["awaiting_confirmation"].fillna(False).astype(bool)
    frame["attention"] = (frame["open_alerts"].astype(int) * 100
                          + frame["awaiting_confirmation"].astype(int) * 10
                          + (frame["quarantined"].astype(int) > 0).astype(int))
    frame = frame.sort_values(["attention", "open_alerts", "last_scan_date", "patient_key"],
                              ascending=[False, False, False, True], kind="stable")
    return frame.reset_index(drop=True)[list(WORKLIST_COLUMNS)]


#: the ``timeline`` view's rows for one patient, with the patient filter applied to the base
#: tables *before* the view's window functions (the view itself filters after them, so a query
#: on it ranks every row of the store: ~0.3 s at 100,000 timepoints; see docs/benchmarks).
#: Same columns and the same "latest assessment / current measurement per study" rule as
#: engine/store/schema_assessment.py's view; tests/dashboard/test_data.py checks they agree.
_TIMELINE_PUSHDOWN = """
    WITH a AS (
        SELECT * FROM assessments WHERE patient_key = $key
        QUALIFY row_number() OVER (PARTITION BY study_uid ORDER BY assessed_at DESC) = 1
    ), m AS (
        SELECT * FROM measurements WHERE patient_key = $key AND NOT superseded
        QUALIFY row_number() OVER (PARTITION BY study_uid ORDER BY computed_at DESC) = 1
    )
    SELECT
        coalesce(a.patient_key, m.patient_key) AS patient_key,
        coalesce(a.study_uid, m.study_uid) AS study_uid,
        coalesce(a.scan_date, m.scan_date) AS scan_date,
        m.et_ml, m.netc_ml, m.snfh_ml, m.rc_ml, m.tc_ml, m.wt_ml, m.spd_mm2, m.sov_all_ml,
        a.response, a.final_response, a.pd_date,
        r.probability AS psp_probability, r.low AS psp_low, r.high AS psp_high,
        a.reason, a.final_reason, a.profile, a.mode, a.criteria,
        a.change_vs_baseline, a.change_vs_nadir, a.weeks_post_rt,
        m.model_name, m.model_version
    FROM a
    FULL OUTER JOIN m ON a.study_uid = m.study_uid
    LEFT JOIN (SELECT * FROM psp_risk WHERE patient_key = $key) r
        ON r.study_uid = a.study_uid AND r.profile = a.profile AND r.mode = a.mode
    ORDER BY scan_date, study_uid"""


def query_timeline(store: Store, patient_key: str) -> pd.DataFrame:
    """The patient's timepoints (rows of the assessment's ``timeline`` view), oldest first."""
    tables = query_tables(store)
    if "timeline" not in tables:
        return pd.DataFrame()
    if {"assessments", "measurements", "psp_risk"} <= tables:
        return store.con.sql(_TIMELINE_PUSHDOWN, params={"key": patient_key}).to_arrow_table().to_pandas()
    return _df(store, "SELECT * FROM timeline WHERE patient_key = ? ORDER BY scan_date", [patient_key])


def query_events(store: Store, patient_key: str) -> pd.DataFrame:
    if "clinical_events" not in query_tables(store):
        return pd.DataFrame(columns=["event_date", "event", "value"])
    return _df(store, "SELECT event_date, event, value FROM clinical_events WHERE patient_key = ?"
                      " ORDER BY event_date, event", [patient_key])


def query_alerts(store: Store, patient_key: str | None = None, *, only_open: bool = False) -> pd.DataFrame:
    if "alerts" not in query_tables(store):
        return pd.DataFrame(columns=["alert_id", "alert_type", "severity", "patient_key", "study_date",
                                     "reason", "created_at", "acknowledged_at", "acknowledged_by"])
    where, params = [], []
    if patient_key is not None:
        where.append("patient_key = ?")
        params.append(patient_key)
    if only_open:
        where.append("acknowledged_at IS NULL")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return _df(store, f"""SELECT alert_id, alert_type, severity, patient_key, study_date, reason,
                              created_at, acknowledged_at, acknowledged_by
                          FROM alerts {clause} ORDER BY created_at DESC""", params)


def query_patient_table(store: Store, table: str, patient_key: str) -> pd.DataFrame:
    """Rows of a per-patient assessment table (``psp_risk``, ``growth``, ``board_decisions``)."""
    if table not in query_tables(store):
        return pd.DataFrame()
    columns = query_columns(store, table)
    if "patient_key" in columns:
        return _df(store, f"SELECT * FROM {table} WHERE patient_key = ?", [patient_key])
    if "study_uid" in columns:
        return _df(store, f"SELECT t.* FROM {table} t JOIN studies s USING (study_uid)"
                          " WHERE s.patient_key = ?", [patient_key])
    return pd.DataFrame()


def query_nadir(store: Store, patient_key: str) -> dict[str, Any] | None:
    """The nadir the patient's latest assessment compared against (date, burden, 2d/3d)."""
    if "assessments" not in query_tables(store):
        return None
    rows = store.query_dicts("""SELECT nadir_date, nadir_burden, mode FROM assessments
                                WHERE patient_key = ? ORDER BY scan_date DESC, assessed_at DESC LIMIT 1""",
                             [patient_key])
    return rows[0] if rows else None


def query_image_sources(store: Store, patient_key: str) -> pd.DataFrame:
    """Per study: date, ``native`` {sequence: stored path (StoredFile.VOLUME)}, ``registered``
    {sequence | 'labels': stored path (StoredFile.REGISTERED)} when the study was resampled into
    its baseline's space, and ``is_reference`` when the study is that baseline itself (its native
    files are the baseline space; the pipeline writes no resampled copy of them)."""
    studies = _df(store, """SELECT s.study_uid, s.study_date, s.status,
                               list(v.sequence ORDER BY v.sequence) AS sequences,
                               list(v.path ORDER BY v.sequence) AS paths
                            FROM studies s LEFT JOIN volumes v USING (study_uid)
                            WHERE s.patient_key = ? GROUP BY ALL ORDER BY s.study_date""", [patient_key])
    studies["native"] = [
        {str(q): str(p) for q, p in zip(seqs, paths, strict=False) if q is not None}
        for seqs, paths in zip(studies["sequences"], studies["paths"], strict=True)]
    studies["registered"] = [{} for _ in range(len(studies))]
    studies["reference_study_uid"] = None
    studies["is_reference"] = False
    paths_column = _registration_paths_column(store)
    if paths_column is not None:
        current = ("AND NOT r.superseded" if "superseded" in query_columns(store, "registrations") else "")
        regs = _df(store, f"""SELECT r.study_uid, r.reference_study_uid, r.{paths_column} AS resampled
                              FROM registrations r JOIN studies s USING (study_uid)
                              WHERE s.patient_key = ? AND r.kind = 'baseline' AND r.passed {current}""",
                   [patient_key])
        by_study = {row.study_uid: row for row in regs.itertuples()}
        for i, uid in enumerate(studies["study_uid"]):
            if uid in by_study and by_study[uid].resampled:
                studies.at[i, "registered"] = dict(json.loads(by_study[uid].resampled))
                studies.at[i, "reference_study_uid"] = by_study[uid].reference_study_uid
        references = {row.reference_study_uid for row in by_study.values()}
        studies["is_reference"] = [uid in references for uid in studies["study_uid"]]
    return studies.drop(columns=["sequences", "paths"])


def _registration_paths_column(store: Store) -> str | None:
    """The JSON column {sequence: path, 'labels': path} of ``registrations``, by its name."""
    if "registrations" not in query_tables(store):
        return None
    columns = query_columns(store, "registrations")
    return next((c for c in ("resampled", "resampled_paths", "resampled_json", "paths_json")
                 if c in columns), None)


def query_labels_paths(store: Store, patient_key: str) -> dict[str, str]:
    """Native label map per study: the current segmentation's ``labels_path``."""
    if "segmentations" not in query_tables(store):
        return {}
    rows = store.query("""SELECT g.study_uid, g.labels_path FROM segmentations g
                          JOIN studies s USING (study_uid)
                          WHERE s.patient_key = ? AND NOT g.superseded""", [patient_key])
    return {str(u): str(p) for u, p in rows if p}


def query_builtin_model_used(store: Store) -> bool:
    """True when any number was produced by the built-in model (trained on synthetic data)."""
    tables = query_tables(store)
    if "measurements" not in tables or "model_name" not in query_columns(store, "measurements"):
        return True  # unknown provenance: keep the warning
    rows = store.query("SELECT count(*) FROM measurements WHERE model_name NOT LIKE 'bundle:%'")
    return bool(rows[0][0]) or not store.query("SELECT 1 FROM measurements LIMIT 1")


def query_models_used(store: Store) -> list[tuple[str, str]]:
    """(name, version) of every built-in model (not a site's bundle) whose measurements are stored."""
    tables = query_tables(store)
    if "measurements" not in tables or "model_name" not in query_columns(store, "measurements"):
        return []
    rows = store.query("""SELECT DISTINCT model_name, model_version FROM measurements
                          WHERE model_name IS NOT NULL AND model_name NOT LIKE 'bundle:%' ORDER BY 1, 2""")
    return [(str(name), str(version or "")) for name, version in rows]


# --------------------------------------------------------------------------- cached reads


def _open(ref: SnapshotRef) -> Store:
    return open_store(ref.path, read_only=True)


@st.cache_data(show_spinner=False, max_entries=4)
def worklist(ref: SnapshotRef) -> pd.DataFrame:
    with _open(ref) as store:
        return query_worklist(store)


@st.cache_data(show_spinner=False, max_entries=64)
def patient_bundle(ref: SnapshotRef, patient_key: str) -> dict[str, Any]:
    """Everything the timeline, image and action pages show for one patient."""
    with _open(ref) as store:
        return {
            "timeline": query_timeline(store, patient_key),
            "events": query_events(store, patient_key),
            "alerts": query_alerts(store, patient_key),
            "psp_risk": query_patient_table(store, "psp_risk", patient_key),
            "growth": query_patient_table(store, "growth", patient_key),
            "nadir": query_nadir(store, patient_key),
            "decisions": query_patient_table(store, "board_decisions", patient_key),
            "images": query_image_sources(store, patient_key),
        }


@st.cache_data(show_spinner=False, max_entries=64)
def labels_paths(ref: SnapshotRef, patient_key: str) -> dict[str, str]:
    with _open(ref) as store:
        return query_labels_paths(store, patient_key)


#: "studies in the last hour" is relative to now, and the snapshot (so the cache key) stays the
#: same while nothing changes: recompute at most a minute late.
@st.cache_data(show_spinner=False, max_entries=4, ttl=60)
def health(ref: SnapshotRef) -> dict[str, Any]:
    with _open(ref) as store:
        result = stream_health(store)
        result["queued_requests_applied"] = (
            store.query("SELECT count(*) FROM board_requests")[0][0]
            if "board_requests" in query_tables(store) else 0)
        return result


@st.cache_data(show_spinner=False, max_entries=4)
def builtin_model_used(ref: SnapshotRef) -> bool:
    with _open(ref) as store:
        return query_builtin_model_used(store)


@st.cache_data(show_spinner=False, max_entries=4)
def models_used(ref: SnapshotRef) -> list[tuple[str, str]]:
    with _open(ref) as store:
        return query_models_used(store)
