"""The dashboard's read model: every query its pages make, on the published read-only snapshot.

Each function takes an open :class:`~engine.store.Store` (the snapshot, opened ``read_only``) and
plain values and returns a DataFrame, dicts or plain values; ``dashboard.data`` wraps them in
Streamlit caches keyed by the snapshot. DATE columns stay ``datetime.date`` (read via Arrow), not
Timestamps. Tables a snapshot does not have yet (an older schema, a stage that has not run) read
as empty frames, so a page says "not available" rather than failing.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from engine.store.db import Store
from engine.store.reader import BASIS_SELECT, has_reader_values
from engine.store.review_queue import unreviewed_flags_select
from engine.store.schema_assessment import timeline_select

def table_names(store: Store) -> set[str]:
    """The tables and views of the store."""
    return {r[0] for r in store.query("SELECT table_name FROM information_schema.tables")}


def column_names(store: Store, table: str) -> set[str]:
    return {r[0] for r in store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])}


def _df(store: Store, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
    """Query into a DataFrame; DATE columns stay ``datetime.date`` (via Arrow), not Timestamps."""
    return store.con.sql(sql, params=params or None).to_arrow_table().to_pandas()


def read_worklist(store: Store) -> pd.DataFrame:
    """One row per patient (unordered): last scan, the latest call and its date, the latest scan
    called PD since the last baseline, whether a preliminary PD awaits confirmation, open alerts
    (count and their severities), flagged scans no board decision reviewed (one reason each), open
    quarantine, MGMT status, model versions. The order is :mod:`engine.urgency`'s to decide."""
    tables = table_names(store)
    sql = ("WITH base AS (SELECT s.patient_key, max(s.study_date) AS last_scan_date, count(*) AS n_studies"
           " FROM studies s GROUP BY s.patient_key)")
    joins, cols = [], []
    if "timeline" in tables:
        sql += """, latest AS (SELECT patient_key,
                     arg_max(coalesce(final_response, response), scan_date) AS response,
                     arg_max(response, scan_date) AS response_then,
                     arg_max(final_response, scan_date) AS final_then,
                     max(scan_date) AS latest_call_date,
                     max(scan_date) FILTER (WHERE response = 'BASELINE') AS baseline_date
                   FROM timeline GROUP BY patient_key),
               pd AS (SELECT t.patient_key, max(t.scan_date) AS pd_scan_date
                   FROM timeline t JOIN latest l USING (patient_key)
                   WHERE (t.response = 'PD' OR t.final_response = 'PD')
                     AND (l.baseline_date IS NULL OR t.scan_date >= l.baseline_date)
                   GROUP BY t.patient_key)"""
        joins += ["LEFT JOIN latest USING (patient_key)", "LEFT JOIN pd USING (patient_key)"]
        cols += ["latest.response", "latest.latest_call_date", "pd.pd_scan_date",
                 "coalesce(latest.response_then = 'PRELIM_PD' AND coalesce(latest.final_then, 'PRELIM_PD')"
                 " = 'PRELIM_PD', false) AS awaiting_confirmation"]
    else:
        cols += ["NULL::VARCHAR AS response", "NULL::DATE AS latest_call_date", "NULL::DATE AS pd_scan_date",
                 "false AS awaiting_confirmation"]
    if "alerts" in tables:
        sql += """, open_alerts AS (SELECT patient_key, count(*) AS open_alerts,
                     list(severity ORDER BY severity) AS open_alert_severities
                   FROM alerts WHERE acknowledged_at IS NULL GROUP BY patient_key)"""
        joins.append("LEFT JOIN open_alerts USING (patient_key)")
        cols += ["coalesce(open_alerts.open_alerts, 0) AS open_alerts",
                 "coalesce(open_alerts.open_alert_severities, []::VARCHAR[]) AS open_alert_severities"]
    else:
        cols += ["0 AS open_alerts", "[]::VARCHAR[] AS open_alert_severities"]
    sql += """, q AS (SELECT patient_key, count(*) AS quarantined FROM quarantine
               WHERE resolved_at IS NULL AND patient_key IS NOT NULL GROUP BY patient_key)"""
    joins.append("LEFT JOIN q USING (patient_key)")
    cols.append("coalesce(q.quarantined, 0) AS quarantined")
    sql += f", fl AS ({unreviewed_flags_select(store)})"
    joins.append("LEFT JOIN fl USING (patient_key)")
    cols.append("coalesce(fl.unreviewed_flags, []::VARCHAR[]) AS unreviewed_flags")
    if "clinical_events" in tables:
        sql += """, mg AS (SELECT patient_key, arg_max(value, event_date) AS mgmt FROM clinical_events
                   WHERE event = 'MGMT' GROUP BY patient_key)"""
        joins.append("LEFT JOIN mg USING (patient_key)")
        cols.append("coalesce(mg.mgmt, 'unknown') AS mgmt")
    else:
        cols.append("'unknown' AS mgmt")
    if "measurements" in tables and "model_version" in column_names(store, "measurements"):
        sql += """, mv AS (SELECT st.patient_key, string_agg(DISTINCT m.model_version, ', ') AS model_version
                   FROM measurements m JOIN studies st USING (study_uid) GROUP BY st.patient_key)"""
        joins.append("LEFT JOIN mv USING (patient_key)")
        cols.append("mv.model_version")
    else:
        cols.append("NULL::VARCHAR AS model_version")
    sql += (f" SELECT base.*, {', '.join(cols)} FROM base {' '.join(joins)}")
    return _df(store, sql)


def read_alerts_overview(store: Store) -> pd.DataFrame:
    """Every alert of every patient, open first, then newest: who acknowledged it, when and why."""
    if "alerts" not in table_names(store):
        return pd.DataFrame(columns=["alert_id", "patient_key", "study_date", "alert_type", "severity",
                                     "reason", "created_at", "acknowledged_at", "acknowledged_by",
                                     "acknowledged_note"])
    return _df(store, f"""SELECT alert_id, patient_key, study_date, alert_type, severity, reason,
                              {_BASIS} AS values_basis, created_at, acknowledged_at, acknowledged_by,
                              acknowledged_note
                          FROM alerts {_basis_join(store)}
                          ORDER BY acknowledged_at IS NOT NULL, created_at DESC, alert_id DESC""")


def read_timeline(store: Store, patient_key: str) -> pd.DataFrame:
    """The patient's timepoints (rows of the ``timeline`` view), oldest first.

    With the base tables present, the view's own query with the patient filter pushed down
    (:func:`~engine.store.schema_assessment.timeline_select`); otherwise the view itself.
    """
    tables = table_names(store)
    if "timeline" not in tables:
        return pd.DataFrame()
    if {"assessments", "measurements", "psp_risk"} <= tables:
        return _df(store, timeline_select(patient_param="key"), {"key": patient_key})
    return _df(store, "SELECT * FROM timeline WHERE patient_key = ? ORDER BY scan_date", [patient_key])


def read_events(store: Store, patient_key: str) -> pd.DataFrame:
    if "clinical_events" not in table_names(store):
        return pd.DataFrame(columns=["event_date", "event", "value"])
    return _df(store, "SELECT event_date, event, value FROM clinical_events WHERE patient_key = ?"
                      " ORDER BY event_date, event", [patient_key])


def read_alerts(store: Store, patient_key: str | None = None, *, only_open: bool = False) -> pd.DataFrame:
    if "alerts" not in table_names(store):
        return pd.DataFrame(columns=["alert_id", "alert_type", "severity", "patient_key", "study_date",
                                     "reason", "created_at", "acknowledged_at", "acknowledged_by",
                                     "acknowledged_note"])
    where, params = [], []
    if patient_key is not None:
        where.append("patient_key = ?")
        params.append(patient_key)
    if only_open:
        where.append("acknowledged_at IS NULL")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return _df(store, f"""SELECT alert_id, alert_type, severity, patient_key, study_date, reason,
                              {_BASIS} AS values_basis, created_at, acknowledged_at, acknowledged_by,
                              acknowledged_note
                          FROM alerts {_basis_join(store)} {clause} ORDER BY created_at DESC""", params)


#: whether an alert rests on values a reader confirmed (issue 32): 'proposed' until then
_BASIS = "coalesce(rv.basis, 'proposed')"


def _basis_join(store: Store) -> str:
    if not has_reader_values(store):
        return "LEFT JOIN (SELECT NULL::VARCHAR AS study_uid, NULL::VARCHAR AS basis) rv USING (study_uid)"
    return f"LEFT JOIN ({BASIS_SELECT}) rv USING (study_uid)"


def read_patient_table(store: Store, table: str, patient_key: str) -> pd.DataFrame:
    """Rows of a per-patient assessment table (``psp_risk``, ``growth``, ``board_decisions``).

    ``table`` must be one of the store's tables (checked against the catalog before it is put
    into the query); anything else reads as an empty frame.
    """
    if table not in table_names(store):
        return pd.DataFrame()
    columns = column_names(store, table)
    if "patient_key" in columns:
        return _df(store, f"SELECT * FROM {table} WHERE patient_key = ?", [patient_key])  # noqa: S608
    if "study_uid" in columns:
        return _df(store, f"SELECT t.* FROM {table} t JOIN studies s USING (study_uid)"  # noqa: S608
                          " WHERE s.patient_key = ?", [patient_key])
    return pd.DataFrame()


def read_nadir(store: Store, patient_key: str) -> dict[str, Any] | None:
    """The nadir the patient's latest assessment compared against (date, burden, 2d/3d)."""
    if "assessments" not in table_names(store):
        return None
    rows = store.query_dicts("""SELECT nadir_date, nadir_burden, mode FROM assessments
                                WHERE patient_key = ? ORDER BY scan_date DESC, assessed_at DESC LIMIT 1""",
                             [patient_key])
    return rows[0] if rows else None


def read_image_sources(store: Store, patient_key: str) -> pd.DataFrame:
    """Per study: date, ``native`` {sequence: stored path (StoredFile.VOLUME)}, ``registered``
    {'labels' (and, in stores written before 2026-12-07, each sequence): stored path
    (StoredFile.REGISTERED)} of the files the pipeline resampled into its baseline's space,
    ``to_reference`` the passed baseline registration's matrix (moving RAS mm -> baseline RAS mm,
    a 4x4 tuple; None without one), with which a native volume is resampled into that space when
    shown, ``reference_native`` that baseline's ``native`` (its grid is the space), and
    ``is_reference`` when the study is that baseline itself (its native files are the baseline
    space; nothing is resampled for it)."""
    studies = _df(store, """SELECT s.study_uid, s.study_date, s.status,
                               list(v.sequence ORDER BY v.sequence) AS sequences,
                               list(v.path ORDER BY v.sequence) AS paths
                            FROM studies s LEFT JOIN volumes v USING (study_uid)
                            WHERE s.patient_key = ? GROUP BY ALL ORDER BY s.study_date""", [patient_key])
    studies["native"] = [
        {str(q): str(p) for q, p in zip(seqs, paths, strict=False) if q is not None}
        for seqs, paths in zip(studies["sequences"], studies["paths"], strict=True)]
    studies["registered"] = [{} for _ in range(len(studies))]
    studies["to_reference"] = None
    studies["reference_study_uid"] = None
    studies["is_reference"] = False
    paths_column = _registration_paths_column(store)
    if paths_column is not None:
        current = ("AND NOT r.superseded" if "superseded" in column_names(store, "registrations") else "")
        regs = _df(store, f"""SELECT r.study_uid, r.reference_study_uid, r.{paths_column} AS resampled, r.matrix
                              FROM registrations r JOIN studies s USING (study_uid)
                              WHERE s.patient_key = ? AND r.kind = 'baseline' AND r.passed {current}""",
                   [patient_key])
        by_study = {row.study_uid: row for row in regs.itertuples()}
        for i, uid in enumerate(studies["study_uid"]):
            reg = by_study.get(uid)
            if reg is None or reg.reference_study_uid == uid:
                continue
            studies.at[i, "registered"] = dict(json.loads(reg.resampled)) if reg.resampled else {}
            studies.at[i, "to_reference"] = tuple(tuple(float(v) for v in r) for r in json.loads(reg.matrix))
            studies.at[i, "reference_study_uid"] = reg.reference_study_uid
        references = {row.reference_study_uid for row in by_study.values()}
        studies["is_reference"] = [uid in references for uid in studies["study_uid"]]
    native_of = dict(zip(studies["study_uid"], studies["native"], strict=True))
    studies["reference_native"] = [native_of.get(ref, {}) if ref else {} for ref in studies["reference_study_uid"]]
    return studies.drop(columns=["sequences", "paths"])


def _registration_paths_column(store: Store) -> str | None:
    """The JSON column {sequence: path, 'labels': path} of ``registrations``, by its name."""
    if "registrations" not in table_names(store):
        return None
    columns = column_names(store, "registrations")
    return next((c for c in ("resampled", "resampled_paths", "resampled_json", "paths_json")
                 if c in columns), None)


def read_labels_paths(store: Store, patient_key: str) -> dict[str, str]:
    """Native label map per study: the current segmentation's ``labels_path``."""
    if "segmentations" not in table_names(store):
        return {}
    rows = store.query("""SELECT g.study_uid, g.labels_path FROM segmentations g
                          JOIN studies s USING (study_uid)
                          WHERE s.patient_key = ? AND NOT g.superseded""", [patient_key])
    return {str(u): str(p) for u, p in rows if p}


def builtin_model_used(store: Store) -> bool:
    """True when any number was produced by the built-in model (trained on synthetic data)."""
    tables = table_names(store)
    if "measurements" not in tables or "model_name" not in column_names(store, "measurements"):
        return True  # unknown provenance: keep the warning
    rows = store.query("SELECT count(*) FROM measurements WHERE model_name NOT LIKE 'bundle:%'")
    return bool(rows[0][0]) or not store.query("SELECT 1 FROM measurements LIMIT 1")


def read_models_used(store: Store) -> list[tuple[str, str]]:
    """(name, version) of every built-in model (not a site's bundle) whose measurements are stored."""
    tables = table_names(store)
    if "measurements" not in tables or "model_name" not in column_names(store, "measurements"):
        return []
    rows = store.query("""SELECT DISTINCT model_name, model_version FROM measurements
                          WHERE model_name IS NOT NULL AND model_name NOT LIKE 'bundle:%' ORDER BY 1, 2""")
    return [(str(name), str(version or "")) for name, version in rows]


def count_board_requests(store: Store) -> int:
    """Board requests the writer has applied (0 for a snapshot without the table)."""
    if "board_requests" not in table_names(store):
        return 0
    return store.query("SELECT count(*) FROM board_requests")[0][0]
