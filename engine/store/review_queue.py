"""Scans that need a reader first, each with its reason (issue 32, routing to review).

A scan is routed to review when its segmentation carries sanity flags (cavity before surgery or in
a ventricle, enhancing tumour without enhancement, implausible jumps, input unlike the model:
skull-stripped, atlas space, missing sequence), its registration into the baseline failed QC, it
is quarantined, its 2D and volumetric assessments disagree (DISCORDANT), or it holds a preliminary
PD still awaiting confirmation. A scan leaves the queue once a reader confirmed or rejected its
segmentation (``reader_values``) or a board decision names it (``board_decisions.study_uid``); a
preliminary PD the reader reviewed still counts as awaiting confirmation in the worklist's urgency
(``engine.urgency``) until the next scan settles it.
"""

from __future__ import annotations

import pandas as pd

from engine.store.db import Store


def _tables(store: Store) -> set[str]:
    return {r[0] for r in store.query("SELECT table_name FROM information_schema.tables")}


def _has_column(store: Store, table: str, column: str) -> bool:
    return bool(store.query("SELECT 1 FROM information_schema.columns WHERE table_name = ? AND column_name = ?",
                            [table, column]))


def flagged_scans_select(store: Store) -> str:
    """SQL of the open review items: ``study_uid, flag, settled_by_reader`` (one row per reason)."""
    tables = _tables(store)
    parts = ["""SELECT study_uid, 'quarantined: ' || reason AS flag, true AS settled_by_reader FROM quarantine
                WHERE resolved_at IS NULL AND study_uid IS NOT NULL"""]
    if "segmentations" in tables:
        parts.append("""SELECT study_uid, 'segmentation flags: ' || replace(flags, ',', ', ') AS flag, true
                        FROM segmentations WHERE NOT superseded AND flags <> ''""")
    if "registrations" in tables:
        current = "AND NOT superseded" if _has_column(store, "registrations", "superseded") else ""
        parts.append(f"""SELECT study_uid, 'registration QC failed: ' || qc_reason AS flag, true
                         FROM registrations WHERE kind = 'baseline' AND NOT passed {current}""")
    if "assessments" in tables:
        parts.append("""SELECT DISTINCT study_uid, '2D and volumetric assessments disagree (discordant)' AS flag, true
                        FROM assessments WHERE response = 'DISCORDANT' OR final_response = 'DISCORDANT'""")
        parts.append("""SELECT DISTINCT study_uid, 'preliminary PD awaiting confirmation' AS flag, true
                        FROM assessments WHERE response = 'PRELIM_PD' AND final_response = 'PRELIM_PD'""")
    reviewed = []
    if "board_decisions" in tables:
        reviewed.append("SELECT study_uid FROM board_decisions WHERE study_uid IS NOT NULL")
    if "reader_values" in tables:
        reviewed.append("SELECT study_uid FROM reader_values WHERE value_kind = 'SEGMENTATION'")
    open_only = (f"WHERE NOT (f.settled_by_reader AND f.study_uid IN ({' UNION '.join(reviewed)}))"
                 if reviewed else "")
    return f"SELECT f.* FROM ({' UNION ALL '.join(parts)}) f {open_only}"  # noqa: S608


def unreviewed_flags_select(store: Store) -> str:
    """SQL: ``patient_key, unreviewed_flags`` — one "YYYY-MM-DD: reason" per open item, newest first."""
    return f"""SELECT s.patient_key,
                   list(strftime(s.study_date, '%Y-%m-%d') || ': ' || f.flag
                        ORDER BY s.study_date DESC, f.flag) AS unreviewed_flags
               FROM ({flagged_scans_select(store)}) f JOIN studies s USING (study_uid)
               GROUP BY s.patient_key"""  # noqa: S608


def read_review_queue(store: Store, patient_key: str | None = None) -> pd.DataFrame:
    """Open review items, oldest scan first: patient, scan date, study UID, reason."""
    where, params = ("WHERE s.patient_key = ?", [patient_key]) if patient_key else ("", [])
    sql = f"""SELECT s.patient_key, s.study_date, f.study_uid, f.flag AS reason
              FROM ({flagged_scans_select(store)}) f JOIN studies s USING (study_uid) {where}
              ORDER BY s.study_date, s.patient_key, f.flag"""  # noqa: S608
    return store.con.sql(sql, params=params or None).to_arrow_table().to_pandas()
